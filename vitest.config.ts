import { defineConfig } from 'vitest/config';

/**
 * Tests share one Temporal dev server and one MinIO, started by test/setup/services.ts on ports of their own and
 * under .edlake-test/, so they never touch a developer's running `npm start`.
 */
export const TEST_ENV = {
  EDLAKE_HOME: '.edlake-test',
  EDLAKE_TEMPORAL_ADDRESS: '127.0.0.1:17233',
  EDLAKE_TEMPORAL_UI_PORT: '18233',
  EDLAKE_MINIO_ADDRESS: '127.0.0.1:19000',
  EDLAKE_MINIO_CONSOLE_ADDRESS: '127.0.0.1:19001',
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
