#!/usr/bin/env node
// The edlake command: runs the TypeScript sources through tsx's loader.
import { register } from 'tsx/esm/api';

// The SDK's notice about future Node versions is not actionable at run time; engines in package.json says what we need.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv);
