import { join } from 'node:path';
import { quotedString } from '@duckdb/node-api';
import type { PartitionRef } from '../lake/manifest.js';
import { parquetScan, toNumber } from '../lake/duck.js';
import { addDays } from '../lake/paths.js';
import { type ActivityDeps, faultHold, withHeartbeat, withWorkDir } from './context.js';
import { ErrorType, nonRetryable } from './errors.js';
import { FEATURES, MAX_LOOKBACK_DAYS, studentFeaturesSql } from './features.js';

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
              const paths: string[] = [];
              for (let k = 0; k < MAX_LOOKBACK_DAYS; k++)
                paths.push(...(await deps.lake.localFiles('silver', 'student_day', addDays(asOf, -k))).paths);
              if (!(await deps.lake.readManifest('silver', 'student_day', asOf))) {
                throw nonRetryable(
                  ErrorType.MissingPartition,
                  `silver/student_day dt=${asOf} is not committed; align the timeline first`,
                );
              }
              const out = join(dir, `features-${asOf}.parquet`);
              await conn.run(
                `COPY (${studentFeaturesSql(parquetScan(paths), asOf)} ORDER BY student_key, course_id) TO ${quotedString(out)} (FORMAT parquet, COMPRESSION zstd)`,
              );
              const rows = toNumber(
                (await conn.runAndReadAll(`SELECT count(*) FROM ${parquetScan([out])}`)).getRows()[0]![0],
              );
              const m = await deps.lake.publishPartition({
                layer: 'gold',
                dataset: 'student_features',
                date: asOf,
                runId: input.runId,
                writeId: input.writeId,
                files: [{ localPath: out, rows }],
                schema: [
                  { name: 'student_key', type: 'VARCHAR' },
                  { name: 'course_id', type: 'VARCHAR' },
                  { name: 'as_of_date', type: 'DATE' },
                  ...FEATURES.map((f) => ({ name: f.name, type: 'DOUBLE' })),
                ],
                schemaVersion: GOLD_SCHEMA_VERSION,
                stats: { students: rows, lookbackPartitions: paths.length },
              });
              partitions.push(deps.lake.ref(m));
            }
            return { partitions, rows: partitions.reduce((n, p) => n + p.rowCount, 0) };
          }),
        ),
      );
    },
  };
}
