import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { loadConfig } from '../../config/index.js';
import { installModel } from '../../scripts/model.js';
import { servicesDown, servicesUp } from '../../scripts/services.js';
import { TEST_ENV } from '../../vitest.config.js';

/** Starts the test Temporal dev server and MinIO (building them once if needed) and stops what it started. */
export default async function setup(_project: TestProject) {
  const config = loadConfig({ ...process.env, ...TEST_ENV });
  // A fresh test server every session: no workflow left over from an earlier session can answer for this one.
  await servicesDown(config, ['temporal']);
  await rm(join(config.home, 'temporal'), { recursive: true, force: true });
  const states = await servicesUp(config, { minio: true, say: (l) => process.stderr.write(`[services] ${l}\n`) });
  // The embedding model is fetched and verified once, before any test's activity needs it.
  await installModel(config, (l) => process.stderr.write(`[model] ${l}\n`));
  const started = states.filter((s) => s.state === 'started').map((s) => s.name);
  return async () => {
    if (started.length) await servicesDown(config, started);
  };
}
