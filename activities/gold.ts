import { join } from 'node:path';
import { quotedString } from '@duckdb/node-api';
import type { PartitionRef } from '../lake/manifest.js';
import { parquetScan, toNumber } from '../lake/duck.js';
import { type ActivityDeps, faultHold, withHeartbeat, withWorkDir } from './context.js';
import { ErrorType, nonRetryable } from './errors.js';

export const GOLD_SCHEMA_VERSION = 1;

export interface BuildGoldFeaturesInput {
  date: string;
  runId: string;
  writeId: string;
}

export interface BuildGoldFeaturesOutput {
  date: string;
  partitions: PartitionRef[];
  students: number;
  activeStudents: number;
}

export const STUDENT_DAILY_FEATURES_SCHEMA = [
  { name: 'student_key', type: 'VARCHAR' },
  { name: 'as_of_date', type: 'DATE' },
  { name: 'events', type: 'BIGINT' },
  { name: 'answered', type: 'BIGINT' },
  { name: 'correct', type: 'BIGINT' },
  { name: 'accuracy', type: 'DOUBLE' },
  { name: 'sessions', type: 'BIGINT' },
  { name: 'active_minutes', type: 'DOUBLE' },
];

/**
 * Per-student daily features from one day of silver xAPI: every student of the roster snapshot gets a row, zero
 * when inactive. Active minutes add up the gaps between consecutive events that are shorter than the session gap.
 */
export function studentDailyFeaturesSql(
  studentsFiles: string[],
  eventsFiles: string[],
  date: string,
  gapMinutes: number,
): string {
  const events = eventsFiles.length
    ? `SELECT student_key, verb, success, ts_utc FROM ${parquetScan(eventsFiles)}`
    : `SELECT NULL::VARCHAR AS student_key, NULL::VARCHAR AS verb, NULL::BOOLEAN AS success, NULL::TIMESTAMP AS ts_utc LIMIT 0`;
  return `
    WITH ev AS (${events}),
    gaps AS (
      SELECT student_key, verb, success,
        epoch(ts_utc - lag(ts_utc) OVER (PARTITION BY student_key ORDER BY ts_utc)) AS gap_s
      FROM ev
    ),
    agg AS (
      SELECT student_key,
        count(*) AS events,
        count(*) FILTER (WHERE verb LIKE '%/answered') AS answered,
        count(*) FILTER (WHERE verb LIKE '%/answered' AND success) AS correct,
        count(*) FILTER (WHERE gap_s IS NULL OR gap_s > ${gapMinutes * 60}) AS sessions,
        coalesce(sum(gap_s) FILTER (WHERE gap_s <= ${gapMinutes * 60}), 0) / 60.0 AS active_minutes
      FROM gaps GROUP BY student_key
    )
    SELECT s.student_key,
      DATE ${quotedString(date)} AS as_of_date,
      coalesce(a.events, 0) AS events,
      coalesce(a.answered, 0) AS answered,
      coalesce(a.correct, 0) AS correct,
      CASE WHEN a.answered > 0 THEN a.correct / a.answered END AS accuracy,
      coalesce(a.sessions, 0) AS sessions,
      round(coalesce(a.active_minutes, 0), 3) AS active_minutes
    FROM (SELECT DISTINCT student_key FROM ${parquetScan(studentsFiles)}) s
    LEFT JOIN agg a USING (student_key)
    ORDER BY s.student_key`;
}

export function createGoldActivities(deps: ActivityDeps) {
  return {
    /**
     * Writes `gold/student_daily_features` for the date from committed silver partitions. Replaces the partition
     * whole; the same silver input always yields the same rows.
     */
    async buildGoldFeatures(input: BuildGoldFeaturesInput): Promise<BuildGoldFeaturesOutput> {
      await faultHold(deps, 'buildGoldFeatures');
      return withHeartbeat(() =>
        withWorkDir(deps, 'gold', (dir) =>
          deps.duck.withConnection(async (conn) => {
            const students = await deps.lake.localFiles('silver', 'students', input.date);
            if (!students.manifest) {
              throw nonRetryable(
                ErrorType.MissingPartition,
                `silver/students dt=${input.date} is not committed; run silver first`,
              );
            }
            const events = await deps.lake.localFiles('silver', 'xapi', input.date);
            const out = join(dir, 'features.parquet');
            await conn.run(
              `COPY (${studentDailyFeaturesSql(students.paths, events.paths, input.date, deps.config.pipeline.sessionGapMinutes)})
               TO ${quotedString(out)} (FORMAT parquet, COMPRESSION zstd)`,
            );
            const counts = (
              await conn.runAndReadAll(
                `SELECT count(*) AS n, count(*) FILTER (WHERE events > 0) AS active FROM ${parquetScan([out])}`,
              )
            ).getRowObjects()[0]!;
            const n = toNumber(counts.n);
            const manifest = await deps.lake.publishPartition({
              layer: 'gold',
              dataset: 'student_daily_features',
              date: input.date,
              runId: input.runId,
              writeId: input.writeId,
              files: [{ localPath: out, rows: n }],
              schema: STUDENT_DAILY_FEATURES_SCHEMA,
              schemaVersion: GOLD_SCHEMA_VERSION,
              stats: { students: n, activeStudents: toNumber(counts.active) },
            });
            return {
              date: input.date,
              partitions: [deps.lake.ref(manifest)],
              students: n,
              activeStudents: toNumber(counts.active),
            };
          }),
        ),
      );
    },
  };
}
