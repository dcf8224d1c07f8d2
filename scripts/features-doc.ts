// Writes docs/FEATURES.md from the feature definitions in activities/features.ts.
import { writeFileSync } from 'node:fs';
import { featureCatalogueMarkdown } from '../activities/features.js';

const path = new URL('../docs/FEATURES.md', import.meta.url);
writeFileSync(path, featureCatalogueMarkdown());
process.stdout.write(`wrote ${path.pathname}\n`);
