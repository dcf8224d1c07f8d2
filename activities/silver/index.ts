import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type DuckDBConnection, quotedIdentifier, quotedString } from '@duckdb/node-api';
import { loadSourceDefinitions, type SourceDefinition } from '../../config/source-definition.js';
import type { PartitionRef } from '../../lake/manifest.js';
import { publishFile, type PublishFileInput, publishQuery, type PublishQueryInput } from '../../lake/publish-query.js';
import { parquetScan } from '../../lake/duck.js';
import { addDays, landedDateOf, landedSlice } from '../../lake/paths.js';
import { type ActivityDeps, faultHold, onConnections, withHeartbeat, withWorkDir } from '../context.js';
import { ErrorType, nonRetryable } from '../errors.js';
import { cleanSource, dropCleaned, type Reconciliation } from './engine.js';
import { gunzipFiles } from './gzip.js';
import { loadRoster, type RosterLoad } from './roster.js';

/** Version 3: 12-character student keys (see `studentKey`), so content keys differ from version 2's. */
export const SILVER_SCHEMA_VERSION = 3;
/** Landings are deduplicated against this many earlier days of accepted events. */
export const DEDUPE_LOOKBACK_DAYS = 7;
/** Sources cleaned at the same time (each on its own connection of the shared DuckDB instance). */
const SOURCE_CONCURRENCY = 3;

export interface BuildSilverTablesInput {
  date: string;
  runId: string;
  writeId: string;
}

export interface BuildSilverTablesOutput {
  date: string;
  partitions: PartitionRef[];
  reconciliation: Reconciliation[];
  /** Event dates whose silver partitions this landing changed (late events touch earlier dates). */
  touchedDates: string[];
  notes: string[];
}

/** The silver table of a source: its name with `-` made `_` (e.g. lms-csv → silver/lms_csv). */
/** A zero-row relation with the source's silver columns, for a landing that brought no file of it. */
async function emptySilverSql(conn: DuckDBConnection, table: string, def: SourceDefinition): Promise<string> {
  const name = quotedIdentifier(`empty_${table}`);
  const cols = Object.entries(def.fields).map(([n, f]) => `NULL::${f.type} AS ${quotedIdentifier(n)}`);
  await conn.run(`CREATE OR REPLACE TEMP TABLE ${name} AS SELECT NULL::VARCHAR AS event_id, NULL::VARCHAR AS student_key,
    NULL::VARCHAR AS course_id, NULL::TIMESTAMP AS ts_utc, NULL::INTEGER AS ts_offset_minutes, NULL::DATE AS event_date,
    NULL::DATE AS landed_date, ${cols.join(', ')}${cols.length ? ',' : ''} NULL::VARCHAR AS source_file, NULL::BIGINT AS source_line LIMIT 0`);
  return name;
}

export function silverTable(source: string): string {
  return source.replaceAll('-', '_');
}

/** Writes a query as a silver or quarantine partition. */
function publishTable(
  deps: ActivityDeps,
  conn: DuckDBConnection,
  dir: string,
  p: Omit<PublishQueryInput, 'schemaVersion'>,
): Promise<PartitionRef> {
  return publishQuery(deps.lake, conn, dir, { ...p, schemaVersion: SILVER_SCHEMA_VERSION });
}

/**
 * A roster table of the night before taken over unchanged (its file copied into this night's partition) when it holds
 * the same snapshot (`stats.rosterSnapshot`) at the current schema; null otherwise.
 */
async function carryRosterTable(
  deps: ActivityDeps,
  conn: DuckDBConnection,
  dir: string,
  p: Omit<PublishFileInput, 'path' | 'rows' | 'schemaVersion'> & { stats: { rosterSnapshot: number } },
): Promise<PartitionRef | null> {
  const before = await deps.lake.latestPartition('silver', p.dataset, addDays(p.date, -1));
  if (!before) return null;
  // The manifest decides first; the file is fetched (a download on S3) only when it is taken over.
  const manifest = await deps.lake.readManifest('silver', p.dataset, before);
  if (
    !manifest ||
    manifest.schemaVersion !== SILVER_SCHEMA_VERSION ||
    manifest.stats.rosterSnapshot !== p.stats.rosterSnapshot ||
    manifest.files.length !== 1
  )
    return null;
  const path = join(dir, `carried-${p.dataset}.parquet`);
  await copyFile(await deps.lake.store.localCopy(manifest.files[0]!.key), path);
  return publishFile(
    deps.lake,
    conn,
    { ...p, path, rows: manifest.files[0]!.rows, schemaVersion: SILVER_SCHEMA_VERSION },
    manifest.schema,
  );
}

/**
 * Cleans one source's landing and writes its accepted rows into their event-date partitions: rows landed on other
 * dates are kept, rows of this landing replaced, so re-running a landing changes nothing and late events join the
 * partition of the day they happened.
 */
async function silverForSource(
  deps: ActivityDeps,
  conn: DuckDBConnection,
  dir: string,
  def: SourceDefinition,
  input: BuildSilverTablesInput,
  roster: Promise<RosterLoad>,
): Promise<{ rec: Reconciliation; partitions: PartitionRef[]; touched: string[]; notes: string[] }> {
  const table = silverTable(def.name);
  const { manifest, paths } = await deps.lake.localFiles('bronze', def.name, input.date);
  const unzipped = await gunzipFiles(
    manifest ? manifest.files.map((f, i) => ({ key: f.key, path: paths[i]! })) : [],
    dir,
  );
  const files = unzipped.files;
  const notes = unzipped.truncated.map(
    (k) => `${k}: gzip stream truncated; its readable part was checked, the file stays in bronze`,
  );

  // Event ids accepted from earlier landings, for duplicates across days (read only where this landing repeats one):
  // the event-date partitions of the lookback window, or only those tonight's rows fall on (see CleanContext.seen).
  const seen = async (eventDates: string[] | null) => {
    const window = Array.from({ length: DEDUPE_LOOKBACK_DAYS + 1 }, (_, k) => addDays(input.date, -k));
    const dates = eventDates ? window.filter((d) => eventDates.includes(d)) : window;
    // A file of tonight's or a later landing (its slice says so) holds nothing earlier: it is neither fetched nor read.
    const earlierLanding = (slice: string | undefined) => {
      const landed = landedDateOf(slice);
      return !landed || landed < input.date;
    };
    const earlier = (
      await Promise.all(dates.map((d) => deps.lake.sliceFiles('silver', table, d, earlierLanding)))
    ).flat();
    return earlier.length
      ? `(SELECT event_id FROM ${parquetScan(earlier)} WHERE landed_date < DATE ${quotedString(input.date)})`
      : '(SELECT NULL::VARCHAR AS event_id WHERE false)';
  };

  const prefix = `s_${table}`;
  const skew = deps.config.pipeline.futureSkewMinutes * 60_000;
  const rec = files.length
    ? await cleanSource(
        conn,
        def,
        files,
        roster.then((r) => ({
          date: input.date,
          futureBound: new Date(Date.parse(`${addDays(input.date, 1)}T00:00:00Z`) + skew).toISOString(),
          identities: r.tables.identities,
          enrolments: r.tables.enrolments,
          seen,
          names: r.names,
        })),
        prefix,
      )
    : { source: def.name, raw: 0, accepted: 0, duplicates: 0, quarantined: 0, late: 0, byRule: {} };
  if (rec.raw !== rec.accepted + rec.duplicates + rec.quarantined) {
    throw nonRetryable(
      ErrorType.ContractViolation,
      `${def.name} ${input.date}: reconciliation failed (${JSON.stringify(rec)})`,
    );
  }
  const partitions: PartitionRef[] = [];
  const stats = {
    raw: rec.raw,
    accepted: rec.accepted,
    duplicates: rec.duplicates,
    quarantined: rec.quarantined,
    late: rec.late,
    bronzeFiles: files.length,
  };
  const clean = quotedIdentifier(`${prefix}_clean`);
  const quarantine = quotedIdentifier(`${prefix}_quarantine`);
  let touched: string[] = [];
  if (files.length) {
    touched = (
      await conn.runAndReadAll(
        `SELECT strftime(d, '%Y-%m-%d') FROM (SELECT DISTINCT event_date AS d FROM ${clean}) ORDER BY 1`,
      )
    )
      .getRows()
      .map((r) => String(r[0]));
  }
  // The landing date's own partition is always written, so a day without data is a committed, empty partition.
  if (!touched.includes(input.date)) touched.push(input.date);
  for (const eventDate of touched.sort()) {
    // Each landing is its own slice of the event-date partition: re-running it replaces that slice only.
    const sql = files.length
      ? `SELECT * FROM ${clean} WHERE event_date = DATE ${quotedString(eventDate)}`
      : `SELECT * FROM ${await emptySilverSql(conn, table, def)}`;
    partitions.push(
      await publishTable(deps, conn, dir, {
        layer: 'silver',
        dataset: table,
        date: eventDate,
        runId: input.runId,
        writeId: input.writeId,
        sql,
        stats: eventDate === input.date ? stats : {},
        slice: landedSlice(input.date),
        eventRows: true,
      }),
    );
  }
  if (files.length) {
    partitions.push(
      await publishTable(deps, conn, dir, {
        layer: 'quarantine',
        dataset: def.name,
        date: input.date,
        runId: input.runId,
        writeId: input.writeId,
        sql: `SELECT * FROM ${quarantine}`,
        orderBy: 'source_file, line_no',
        eventRows: true,
        stats: { ...stats, ...Object.fromEntries(Object.entries(rec.byRule).map(([k, v]) => [`rule:${k}`, v])) },
      }),
    );
    await dropCleaned(conn, prefix);
  }
  return { rec, partitions, touched: files.length && def.modality !== 'outcome' ? touched : [], notes };
}

/**
 * Where a landing's sources are cleaned. Sources are cleaned a few at a time; when the others can keep the remaining
 * cores busy while the largest is cleaned (it holds at most its share of the landing's bronze bytes), each query runs on
 * one thread (see `Duck.singleThreaded`): the same work for less CPU. A landing dominated by one source (a night of one
 * export) is cleaned with every thread. The roster's shared tables live in the same database.
 */
async function cleaningDeps(deps: ActivityDeps, sources: string[], date: string): Promise<ActivityDeps> {
  const bytes = await Promise.all(
    sources.map(async (source) =>
      ((await deps.lake.readManifest('bronze', source, date))?.files ?? []).reduce((n, f) => n + f.bytes, 0),
    ),
  );
  const total = bytes.reduce((a, b) => a + b, 0);
  return Math.max(0, ...bytes) * deps.config.pipeline.duckdbThreads <= total
    ? { ...deps, duck: deps.duck.singleThreaded() }
    : deps;
}

export function createSilverActivities(deps: ActivityDeps) {
  const definitions = loadSourceDefinitions();
  return {
    /**
     * Builds the landing date's silver tables from bronze, for every declared source: clean, typed, deduplicated,
     * pseudonymized rows in their event-date partitions, failing rows in `quarantine/<source>/dt=<landing date>`
     * with rule, field and reason, and the roster snapshot (`students`, `student_demographics`, `enrolments`).
     * Idempotent: re-running a landing replaces exactly what that landing wrote.
     */
    async buildSilverTables(input: BuildSilverTablesInput): Promise<BuildSilverTablesOutput> {
      await faultHold(deps, 'buildSilverTables');
      return withHeartbeat((progress) =>
        withWorkDir(deps, 'silver', (dir) =>
          (async () => {
            progress({ step: 'roster' });
            const cleaning = await cleaningDeps(deps, [...definitions.keys()], input.date);
            // The roster snapshot is built while the sources' files are being read (reading needs no roster).
            const roster = loadRoster(cleaning, input.date);
            try {
              const base = { date: input.date, runId: input.runId, writeId: input.writeId };
              // The roster snapshot in force tonight, pseudonymous; the files of the night before are taken over
              // when they hold the same snapshot.
              const snapshot = roster.then((r) =>
                cleaning.duck.withConnection(async (conn) => {
                  const out: PartitionRef[] = [];
                  for (const [dataset, table, orderBy, stats] of [
                    ['students', r.tables.students, 'student_key', { students: r.students }],
                    ['student_demographics', r.tables.demographics, 'student_key', {}],
                    ['enrolments', r.tables.enrolments, 'student_key, course_id', { enrolments: r.enrolments }],
                  ] as const) {
                    const p = {
                      ...base,
                      layer: 'silver' as const,
                      dataset,
                      stats: { ...stats, rosterSnapshot: r.snapshot },
                    };
                    out.push(
                      (await carryRosterTable(cleaning, conn, dir, p)) ??
                        (await publishTable(cleaning, conn, dir, { ...p, sql: `SELECT * FROM ${table}`, orderBy })),
                    );
                  }
                  return out;
                }),
              );
              // Its failure is reported where it is awaited, after the sources have settled.
              snapshot.catch(() => undefined);
              // Sources are independent: each is cleaned on its own connection, a few at a time and each query on
              // one thread, so the cores stay busy without the cost of splitting every query across them.
              const results = await onConnections(
                cleaning,
                [...definitions.values()],
                SOURCE_CONCURRENCY,
                progress,
                (def) => def.name,
                async (conn, def) => {
                  const sub = join(dir, silverTable(def.name));
                  await mkdir(sub, { recursive: true });
                  return silverForSource(cleaning, conn, sub, def, input, roster);
                },
              );
              const partitions: PartitionRef[] = [...(await snapshot)];
              const reconciliation: Reconciliation[] = [];
              const touched = new Set<string>();
              const notes: string[] = [];
              for (const r of results) {
                reconciliation.push(r.rec);
                partitions.push(...r.partitions);
                for (const d of r.touched) touched.add(d);
                notes.push(...r.notes);
              }
              if (reconciliation.every((r) => r.raw === 0)) notes.push(`no event data landed for ${input.date}`);
              return { date: input.date, partitions, reconciliation, touchedDates: [...touched].sort(), notes };
            } finally {
              await roster.then(
                (r) => r.release(),
                () => undefined,
              );
            }
          })(),
        ),
      );
    },
  };
}
