import { defineConfig } from 'vitest/config';

/**
 * Tests share one Temporal dev server and one MinIO, started by test/setup/services.ts on ports of their own and
 * under .edlake-test/, so they never touch a developer's running `npm start`.
 */
const slot = Number(process.env.EDLAKE_TEST_SLOT ?? 0);
/** `EDLAKE_TEST_SLOT=N` (1, 2, …) runs a second test session beside the first, on ports and a home of its own. */
export const TEST_ENV = {
  EDLAKE_HOME: slot ? `.edlake-test-${slot}` : '.edlake-test',
  EDLAKE_TEMPORAL_ADDRESS: `127.0.0.1:${17233 + 10_000 * slot}`,
  EDLAKE_TEMPORAL_UI_PORT: String(18233 + 10_000 * slot),
  EDLAKE_MINIO_ADDRESS: `127.0.0.1:${19000 + 10_000 * slot}`,
  EDLAKE_MINIO_CONSOLE_ADDRESS: `127.0.0.1:${19001 + 10_000 * slot}`,
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};

export default defineConfig({
  test: {
    env: TEST_ENV,
    globalSetup: ['test/setup/services.ts'],
    include: ['test/**/*.test.ts'],
    testTimeout: 180_000,
    hookTimeout: 600_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
