import { createBronzeActivities } from './bronze.js';
import type { ActivityDeps } from './context.js';
import { createEmbeddingActivities } from './embeddings/index.js';
import { createGoldActivities } from './gold.js';
import { createInterventionActivities } from './interventions/index.js';
import { createLakeActivities } from './lake-ops.js';
import { createReportActivities } from './report/index.js';
import { createModelActivities } from './models/index.js';
import { createSilverActivities } from './silver/index.js';
import { createTimelineActivities } from './timeline.js';

export type { ActivityDeps } from './context.js';

/** Every activity of edlake, bound to its dependencies. Workflows import only this function's type. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createBronzeActivities(deps),
    ...createSilverActivities(deps),
    ...createTimelineActivities(deps),
    ...createGoldActivities(deps),
    ...createEmbeddingActivities(deps),
    ...createModelActivities(deps),
    ...createInterventionActivities(deps),
    ...createLakeActivities(deps),
    ...createReportActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
