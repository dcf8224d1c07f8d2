import { join } from 'node:path';
import type { ActivityDeps } from '../activities/index.js';
import type { Config } from '../config/index.js';
import { Duck } from '../lake/duck.js';
import { createLake } from '../lake/lake.js';

/** Builds the activities' dependencies from configuration: the composition root's one place for wiring. */
export function createDeps(config: Config): ActivityDeps {
  return {
    config,
    lake: createLake(config),
    duck: new Duck({
      threads: config.pipeline.duckdbThreads,
      memoryLimit: config.pipeline.duckdbMemoryLimit,
      tempDirectory: join(config.home, 'tmp', 'duckdb'),
    }),
    clock: () => new Date(),
  };
}
