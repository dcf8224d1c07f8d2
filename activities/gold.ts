import type { PartitionRef } from '../lake/manifest.js';
import { parquetScan } from '../lake/duck.js';
import { publishQuery } from '../lake/publish-query.js';
import { type ActivityDeps, faultHold, withHeartbeat, withWorkDir } from './context.js';
import { ErrorType, nonRetryable } from './errors.js';
import { MAX_LOOKBACK_DAYS, studentFeaturesSql } from './features.js';

export const GOLD_SCHEMA_VERSION = 2;

export interface BuildGoldFeaturesInput {
  /** As-of dates to (re)compute. */
  dates: string[];
  runId: string;
  writeId: string;
}

export interface BuildGoldFeaturesOutput {
  partitions: PartitionRef[];
  rows: number;
}

export function createGoldActivities(deps: ActivityDeps) {
  return {
    /**
     * Writes `gold/student_features` (one row per student, course and as-of date; see docs/FEATURES.md) for each date
     * from the `silver/student_day` partitions of its lookback. Replaces each partition whole; the same silver input
     * always yields the same rows.
     */
    async buildGoldFeatures(input: BuildGoldFeaturesInput): Promise<BuildGoldFeaturesOutput> {
      await faultHold(deps, 'buildGoldFeatures');
      return withHeartbeat((progress) =>
        withWorkDir(deps, 'gold', (dir) =>
          deps.duck.withConnection(async (conn) => {
            const partitions: PartitionRef[] = [];
            for (const asOf of input.dates) {
              progress({ asOf });
              const paths = await deps.lake.lookbackFiles('silver', 'student_day', asOf, MAX_LOOKBACK_DAYS);
              if (!(await deps.lake.readManifest('silver', 'student_day', asOf))) {
                throw nonRetryable(
                  ErrorType.MissingPartition,
                  `silver/student_day dt=${asOf} is not committed; align the timeline first`,
                );
              }
              partitions.push(
                await publishQuery(deps.lake, conn, dir, {
                  layer: 'gold',
                  dataset: 'student_features',
                  date: asOf,
                  runId: input.runId,
                  writeId: input.writeId,
                  sql: studentFeaturesSql(parquetScan(paths), asOf),
                  orderBy: 'student_key, course_id',
                  schemaVersion: GOLD_SCHEMA_VERSION,
                  stats: { lookbackPartitions: paths.length },
                }),
              );
            }
            return { partitions, rows: partitions.reduce((n, p) => n + p.rowCount, 0) };
          }),
        ),
      );
    },
  };
}
