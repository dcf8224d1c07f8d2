import type { PartitionRef } from '../lake/manifest.js';
import type { DuckDBConnection } from '@duckdb/node-api';
import { parquetScan } from '../lake/duck.js';
import { addDays, realignedSlice } from '../lake/paths.js';
import { publishQuery } from '../lake/publish-query.js';
import { type ActivityDeps, faultHold, onConnections, PARALLEL_PIECES, withHeartbeat, withWorkDir } from './context.js';
import { ErrorType, nonRetryable } from './errors.js';
import { MAX_LOOKBACK_DAYS, studentFeaturesSql } from './features.js';

/** Version 3: 12-character student keys (see `studentKey`); an earlier partition is never partially recomputed. */
export const GOLD_SCHEMA_VERSION = 3;

export interface BuildGoldFeaturesInput {
  /** As-of dates to (re)compute. */
  dates: string[];
  /**
   * The landing this run processed. An earlier as-of date whose features exist already is recomputed only for the
   * students the landing's late events realigned within its lookback (silver/timeline slices `realigned=<landing>`);
   * everyone else's rows are kept, so a night costs its new day, not the history its late events reach back into.
   */
  landingDate?: string;
  runId: string;
  writeId: string;
}

export interface BuildGoldFeaturesOutput {
  partitions: PartitionRef[];
  /** Rows written by this run (a partial recompute writes only its overlay's rows). */
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
          (async () => {
            const changes = await realignedStudents(deps, input);
            // As-of dates are independent (each reads its own lookback): a few are computed at a time.
            const partitions = (
              await onConnections(
                deps,
                input.dates,
                PARALLEL_PIECES,
                progress,
                (d) => d,
                (conn, asOf) => goldForDate(deps, conn, dir, input, asOf, changes),
                // Dates computed whole first; earlier ones are mostly overlays of a few students.
                (asOf) => (input.landingDate && asOf < input.landingDate ? 0 : 1),
              )
            ).filter((p): p is PartitionRef => p !== null);
            return { partitions, rows: partitions.reduce((n, p) => n + (p.rowsWritten ?? p.rowCount), 0) };
          })(),
        ),
      );
    },
  };
}

/** One as-of date's `gold/student_features` partition (null for a day no event was ever aligned to). */
async function goldForDate(
  deps: ActivityDeps,
  conn: DuckDBConnection,
  dir: string,
  input: BuildGoldFeaturesInput,
  asOf: string,
  changes: Realigned | null,
): Promise<PartitionRef | null> {
  const paths = await deps.lake.lookbackFiles('silver', 'student_day', asOf, MAX_LOOKBACK_DAYS);
  if (!(await deps.lake.readManifest('silver', 'student_day', asOf))) {
    // A day before the landing that no event has ever been aligned to (e.g. between a late event dated
    // before the lake's first night and that night) has no grid and no features.
    if (input.landingDate && asOf < input.landingDate) return null;
    throw nonRetryable(
      ErrorType.MissingPartition,
      `silver/student_day dt=${asOf} is not committed; align the timeline first`,
    );
  }
  const partial = await partialInput(deps, conn, input, asOf, changes);
  // A partial recompute writes only the recomputed students' rows, as an overlay slice of the partition keyed by
  // student (readers resolve it with partitionScan); everyone else's rows stay in the files already there.
  const sql = partial
    ? studentFeaturesSql(
        `(SELECT * FROM ${parquetScan(paths)} WHERE student_key IN (SELECT student_key FROM gold_changed)) sd`,
        asOf,
      )
    : studentFeaturesSql(parquetScan(paths), asOf);
  const ref = await publishQuery(deps.lake, conn, dir, {
    layer: 'gold',
    dataset: 'student_features',
    date: asOf,
    runId: input.runId,
    writeId: input.writeId,
    sql,
    orderBy: 'student_key, course_id',
    schemaVersion: GOLD_SCHEMA_VERSION,
    stats: {
      lookbackPartitions: paths.length,
      ...(partial ? { studentsRecomputed: partial.students } : {}),
    },
    ...(partial ? { slice: realignedSlice(input.landingDate!), overlayKey: 'student_key' } : {}),
  });
  await conn.run('DROP TABLE IF EXISTS gold_changed');
  return ref;
}

interface Realigned {
  /** Dates (in the lookback of some requested as-of date) this run rebuilt for every student. */
  full: Set<string>;
  /** Per date, the timeline files of the students the landing realigned there. */
  slices: Map<string, string[]>;
}

/** What the landing changed in the student_day lookback of the requested dates: whole dates or realigned students. */
async function realignedStudents(deps: ActivityDeps, input: BuildGoldFeaturesInput): Promise<Realigned | null> {
  if (!input.landingDate || !input.dates.some((d) => d < input.landingDate!)) return null;
  const sorted = [...input.dates].sort();
  const out: Realigned = { full: new Set(), slices: new Map() };
  const slice = realignedSlice(input.landingDate!);
  for (let d = addDays(sorted[0]!, -(MAX_LOOKBACK_DAYS - 1)); d < input.landingDate; d = addDays(d, 1)) {
    const day = await deps.lake.readManifest('silver', 'student_day', d);
    if (!day) continue;
    const files = await deps.lake.sliceFiles('silver', 'timeline', d, slice);
    if (files.length) out.slices.set(d, files);
    else if (day.runId === input.runId) out.full.add(d);
  }
  return out;
}

/**
 * For an as-of date before the landing whose features were committed at the current schema: loads the students to
 * recompute into `gold_changed` and returns how many; null when the date is computed whole.
 */
async function partialInput(
  deps: ActivityDeps,
  conn: DuckDBConnection,
  input: BuildGoldFeaturesInput,
  asOf: string,
  changes: Realigned | null,
): Promise<{ students: number } | null> {
  if (!changes || asOf >= input.landingDate!) return null;
  const manifest = await deps.lake.readManifest('gold', 'student_features', asOf);
  if (!manifest || manifest.schemaVersion !== GOLD_SCHEMA_VERSION || !manifest.files.length) return null;
  const window: string[] = [];
  for (let d = addDays(asOf, -(MAX_LOOKBACK_DAYS - 1)); d <= asOf; d = addDays(d, 1)) {
    if (changes.full.has(d)) return null;
    window.push(...(changes.slices.get(d) ?? []));
  }
  await conn.run(
    window.length
      ? `CREATE OR REPLACE TEMP TABLE gold_changed AS SELECT DISTINCT student_key FROM ${parquetScan(window)}`
      : 'CREATE OR REPLACE TEMP TABLE gold_changed (student_key VARCHAR)',
  );
  const n = (await conn.runAndReadAll('SELECT count(*) FROM gold_changed')).getRows()[0]![0];
  return { students: Number(n) };
}
