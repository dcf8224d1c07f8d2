import { join } from 'node:path';
import { type DuckDBConnection, quotedString } from '@duckdb/node-api';
import type { PartitionRef } from '../lake/manifest.js';
import { sqlList, toNumber } from '../lake/duck.js';
import { addDays } from '../lake/paths.js';
import { type ActivityDeps, faultHold, withHeartbeat, withWorkDir } from './context.js';
import { ErrorType, nonRetryable } from './errors.js';
import { identityForms, studentKey } from './identity.js';

export const SILVER_SCHEMA_VERSION = 1;
export const LMS_HOME = 'https://lms.example.edu';

export interface BuildSilverTablesInput {
  date: string;
  runId: string;
  writeId: string;
}

export interface SourceReconciliation {
  source: string;
  raw: number;
  accepted: number;
  duplicates: number;
  quarantined: number;
  byRule: Record<string, number>;
}

export interface BuildSilverTablesOutput {
  date: string;
  partitions: PartitionRef[];
  reconciliation: SourceReconciliation[];
  /** Set when the day had no xAPI data: the run still succeeds and says so. */
  note?: string;
}

/** Reads every line of the given files (plain or gzip) as one VARCHAR, keeping file and line number. */
function rawLinesSql(files: { path: string; key: string }[]): string {
  return files
    .map(
      (f) => `SELECT ${quotedString(f.key)} AS source_file, row_number() OVER () AS line_no, line
        FROM read_csv(${quotedString(f.path)}, columns = {'line': 'VARCHAR'}, header = false, delim = '\\x1f',
                      quote = '', escape = '', auto_detect = false, strict_mode = false, new_line = '\\n')`,
    )
    .join('\nUNION ALL\n');
}

async function loadRoster(
  deps: ActivityDeps,
  conn: DuckDBConnection,
  date: string,
): Promise<{ rosterDate: string; students: number }> {
  const dates = (await deps.lake.listPartitions('bronze', 'roster')).filter((d) => d <= date);
  const rosterDate = dates.at(-1);
  if (!rosterDate) {
    throw nonRetryable(
      ErrorType.MissingPartition,
      `no roster in bronze on or before ${date}: ingest one with edlake ingest FILE --source roster`,
    );
  }
  const { manifest, paths } = await deps.lake.localFiles('bronze', 'roster', rosterDate);
  await conn.run(`CREATE OR REPLACE TEMP TABLE roster_raw AS
    SELECT * FROM read_csv(${sqlList(paths)}, header = true, all_varchar = true, union_by_name = true, filename = true)`);
  const cols = (await conn.runAndReadAll(`SELECT column_name FROM (DESCRIBE roster_raw)`))
    .getRows()
    .map((r) => String(r[0]));
  for (const required of ['student_id', 'email']) {
    if (!cols.includes(required)) {
      throw nonRetryable(
        ErrorType.ContractViolation,
        `${manifest!.files[0]!.originalName ?? 'roster'}: row 1 (header): required field ${required} is missing`,
      );
    }
  }
  const opt = (c: string) => (cols.includes(c) ? c : 'NULL');
  const rows = (
    await conn.runAndReadAll(
      `SELECT student_id, email, ${opt('lms_id')} AS lms_id, ${opt('timezone')} AS timezone, ${opt('program')} AS program,
              ${opt('course')} AS course, ${opt('consent')} AS consent, ${opt('opt_out')} AS opt_out
       FROM roster_raw WHERE student_id IS NOT NULL AND trim(student_id) <> ''`,
    )
  ).getRowObjects() as Record<string, string | null>[];

  await conn.run(`CREATE OR REPLACE TEMP TABLE identities (identity VARCHAR, student_key VARCHAR)`);
  await conn.run(
    `CREATE OR REPLACE TEMP TABLE students (student_key VARCHAR, timezone VARCHAR, program VARCHAR, course VARCHAR, consent BOOLEAN, opt_out BOOLEAN)`,
  );
  const ids = await conn.createAppender('identities', 'main', 'temp');
  const st = await conn.createAppender('students', 'main', 'temp');
  const seen = new Set<string>();
  for (const r of rows) {
    const id = r.student_id!.trim();
    if (seen.has(id)) continue;
    seen.add(id);
    const key = studentKey(deps.config.pseudonymKey, id);
    for (const form of identityForms({ student_id: id, email: r.email ?? null, lms_id: r.lms_id ?? null }, LMS_HOME)) {
      ids.appendVarchar(form);
      ids.appendVarchar(key);
      ids.endRow();
    }
    st.appendVarchar(key);
    for (const v of [r.timezone, r.program, r.course]) {
      if (v) st.appendVarchar(v);
      else st.appendNull();
    }
    for (const v of [r.consent, r.opt_out]) {
      if (v === null || v === undefined || v === '') st.appendNull();
      else st.appendBoolean(v.toLowerCase() === 'true' || v === '1');
    }
    st.endRow();
  }
  ids.closeSync();
  st.closeSync();
  await conn.run(`DROP TABLE roster_raw`);
  return { rosterDate, students: seen.size };
}

/** The xAPI contract, in the order rules are checked; the first failing rule is the row's quarantine reason. */
const XAPI_RULES_SQL = `
  CASE
    WHEN NOT is_json THEN 'invalid_json'
    WHEN json_type(j) <> 'OBJECT' THEN 'invalid_json'
    WHEN stmt_id IS NULL THEN 'missing_required'
    WHEN verb_id IS NULL THEN 'missing_required'
    WHEN ts_raw IS NULL THEN 'missing_required'
    WHEN NOT regexp_full_match(stmt_id, '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}') THEN 'invalid_value'
    WHEN ts IS NULL OR NOT regexp_full_match(ts_raw, '\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?(Z|[+-]\\d{2}:?\\d{2})?') THEN 'malformed_timestamp'
    WHEN ts > $future_bound THEN 'future_timestamp'
    WHEN student_key IS NULL THEN 'unknown_student'
    WHEN score_raw IS NOT NULL AND (score_scaled IS NULL OR score_scaled < -1 OR score_scaled > 1) THEN 'out_of_range'
  END`;

const XAPI_REASON_SQL = `
  CASE rule
    WHEN 'invalid_json' THEN CASE WHEN NOT is_json THEN 'line is not valid JSON' ELSE 'statement is not a JSON object' END
    WHEN 'missing_required' THEN 'required field ' || CASE WHEN stmt_id IS NULL THEN 'id' WHEN verb_id IS NULL THEN 'verb.id' ELSE 'timestamp' END || ' is missing or null'
    WHEN 'invalid_value' THEN 'field id is not a UUID'
    WHEN 'malformed_timestamp' THEN 'field timestamp ' || to_json(ts_raw)::VARCHAR || ' is not an ISO 8601 date-time'
    WHEN 'future_timestamp' THEN 'field timestamp ' || ts_raw || ' is beyond the landing day plus the allowed skew'
    WHEN 'unknown_student' THEN 'field actor matches no roster identity'
    WHEN 'out_of_range' THEN 'field result.score.scaled must be a number in [-1, 1]'
  END`;

const XAPI_FIELD_SQL = `
  CASE rule
    WHEN 'invalid_json' THEN '(line)'
    WHEN 'missing_required' THEN CASE WHEN stmt_id IS NULL THEN 'id' WHEN verb_id IS NULL THEN 'verb.id' ELSE 'timestamp' END
    WHEN 'invalid_value' THEN 'id'
    WHEN 'malformed_timestamp' THEN 'timestamp'
    WHEN 'future_timestamp' THEN 'timestamp'
    WHEN 'unknown_student' THEN 'actor'
    WHEN 'out_of_range' THEN 'result.score.scaled'
  END`;

/**
 * Cleans one day of xAPI statements: parse, type, check the contract, resolve identities to pseudonymous keys,
 * deduplicate by statement id. Leaves temp tables xapi_clean and xapi_quarantine on the connection.
 */
async function cleanXapi(
  conn: DuckDBConnection,
  files: { path: string; key: string }[],
  date: string,
  futureSkewMinutes: number,
): Promise<SourceReconciliation> {
  await conn.run(`CREATE OR REPLACE TEMP TABLE xapi_raw AS
    SELECT * FROM (${rawLinesSql(files)}) WHERE line IS NOT NULL AND trim(line) <> ''`);
  await conn.run(`CREATE OR REPLACE TEMP TABLE xapi_parsed AS
    WITH v AS (SELECT source_file, line_no, line, coalesce(json_valid(line), false) AS is_json FROM xapi_raw),
    f AS (
      SELECT *, CASE WHEN is_json THEN json(line) END AS j FROM v
    ),
    g AS (
      SELECT source_file, line_no, line, is_json, j,
        CASE WHEN json_type(j) = 'OBJECT' THEN j->>'$.id' END AS stmt_id,
        CASE WHEN json_type(j) = 'OBJECT' THEN j->>'$.verb.id' END AS verb_id,
        CASE WHEN json_type(j) = 'OBJECT' THEN j->>'$.timestamp' END AS ts_raw,
        CASE WHEN json_type(j) = 'OBJECT' THEN j->>'$.object.id' END AS object_id,
        CASE WHEN json_type(j) = 'OBJECT' THEN j->>'$.context.contextActivities.grouping[0].id' END AS course_iri,
        CASE WHEN json_type(j) = 'OBJECT' THEN coalesce(
          'mbox:' || lower(trim(j->>'$.actor.mbox')),
          'account:' || (j->>'$.actor.account.homePage') || '|' || (j->>'$.actor.account.name'),
          'openid:' || (j->>'$.actor.openid'),
          'sha1:' || lower(j->>'$.actor.mbox_sha1sum')) END AS actor_identity,
        CASE WHEN json_type(j) = 'OBJECT' THEN j->>'$.result.score.scaled' END AS score_raw,
        CASE WHEN json_type(j) = 'OBJECT' THEN j->>'$.result.success' END AS success_raw,
        CASE WHEN json_type(j) = 'OBJECT' THEN j->>'$.result.duration' END AS duration_raw
      FROM f
    )
    SELECT g.* EXCLUDE (j), g.j,
      try_cast(ts_raw AS TIMESTAMPTZ) AS ts,
      try_cast(score_raw AS DOUBLE) AS score_scaled,
      i.student_key
    FROM g LEFT JOIN identities i ON i.identity = g.actor_identity`);
  await conn.run(`CREATE OR REPLACE TEMP TABLE xapi_checked AS SELECT *, ${XAPI_RULES_SQL} AS rule FROM xapi_parsed`, {
    future_bound: new Date(Date.parse(`${addDays(date, 1)}T00:00:00Z`) + futureSkewMinutes * 60_000).toISOString(),
  });
  // Keep the first occurrence of each statement id (file order, then line order); later copies are duplicates.
  await conn.run(`CREATE OR REPLACE TEMP TABLE xapi_ranked AS
    SELECT *, CASE WHEN rule IS NULL THEN row_number() OVER (PARTITION BY stmt_id ORDER BY source_file, line_no) END AS occurrence
    FROM xapi_checked`);
  await conn.run(`CREATE OR REPLACE TEMP TABLE xapi_clean AS
    SELECT
      stmt_id AS event_id,
      student_key,
      regexp_extract(course_iri, '/course/([^/]+)', 1) AS course_id,
      verb_id AS verb,
      object_id,
      (ts AT TIME ZONE 'UTC') AS ts_utc,
      CASE WHEN ts_raw LIKE '%Z' OR NOT regexp_matches(ts_raw, '[+-]\\d{2}:?\\d{2}$') THEN 0
           ELSE (CASE WHEN substr(ts_raw, -6, 1) = '-' THEN -1 ELSE 1 END) *
                (CAST(substr(regexp_extract(ts_raw, '([+-]\\d{2}:?\\d{2})$', 1), 2, 2) AS INTEGER) * 60 +
                 CAST(right(regexp_extract(ts_raw, '([+-]\\d{2}:?\\d{2})$', 1), 2) AS INTEGER)) END AS ts_offset_minutes,
      CAST((ts AT TIME ZONE 'UTC') AS DATE) AS event_date,
      CASE lower(success_raw) WHEN 'true' THEN true WHEN 'false' THEN false END AS success,
      score_scaled,
      coalesce(try_cast(regexp_extract(duration_raw, '(\\d+(?:\\.\\d+)?)H', 1) AS DOUBLE), 0) * 3600 +
      coalesce(try_cast(regexp_extract(duration_raw, 'T(?:\\d+(?:\\.\\d+)?H)?(\\d+(?:\\.\\d+)?)M', 1) AS DOUBLE), 0) * 60 +
      coalesce(try_cast(regexp_extract(duration_raw, '(\\d+(?:\\.\\d+)?)S', 1) AS DOUBLE), 0) AS duration_s,
      source_file,
      line_no AS source_line
    FROM xapi_ranked WHERE rule IS NULL AND occurrence = 1`);
  await conn.run(`CREATE OR REPLACE TEMP TABLE xapi_quarantine AS
    SELECT source_file, line_no, rule, ${XAPI_REASON_SQL} AS reason, ${XAPI_FIELD_SQL} AS field, line AS raw
    FROM xapi_ranked WHERE rule IS NOT NULL`);

  const counts = (
    await conn.runAndReadAll(`SELECT count(*) AS raw,
        count(*) FILTER (WHERE rule IS NULL AND occurrence = 1) AS accepted,
        count(*) FILTER (WHERE rule IS NULL AND occurrence > 1) AS duplicates,
        count(*) FILTER (WHERE rule IS NOT NULL) AS quarantined
      FROM xapi_ranked`)
  ).getRowObjects()[0]!;
  const byRule: Record<string, number> = {};
  for (const r of (
    await conn.runAndReadAll(
      `SELECT rule, count(*) AS n FROM xapi_ranked WHERE rule IS NOT NULL GROUP BY rule ORDER BY rule`,
    )
  ).getRowObjects()) {
    byRule[String(r.rule)] = toNumber(r.n);
  }
  for (const t of ['xapi_raw', 'xapi_parsed', 'xapi_checked', 'xapi_ranked']) await conn.run(`DROP TABLE ${t}`);
  return {
    source: 'xapi',
    raw: toNumber(counts.raw),
    accepted: toNumber(counts.accepted),
    duplicates: toNumber(counts.duplicates),
    quarantined: toNumber(counts.quarantined),
    byRule,
  };
}

export const XAPI_SILVER_SCHEMA = [
  { name: 'event_id', type: 'VARCHAR' },
  { name: 'student_key', type: 'VARCHAR' },
  { name: 'course_id', type: 'VARCHAR' },
  { name: 'verb', type: 'VARCHAR' },
  { name: 'object_id', type: 'VARCHAR' },
  { name: 'ts_utc', type: 'TIMESTAMP' },
  { name: 'ts_offset_minutes', type: 'INTEGER' },
  { name: 'event_date', type: 'DATE' },
  { name: 'success', type: 'BOOLEAN' },
  { name: 'score_scaled', type: 'DOUBLE' },
  { name: 'duration_s', type: 'DOUBLE' },
  { name: 'source_file', type: 'VARCHAR' },
  { name: 'source_line', type: 'BIGINT' },
];

async function copyToParquet(conn: DuckDBConnection, table: string, path: string, orderBy: string): Promise<number> {
  const res = await conn.runAndReadAll(
    `COPY (SELECT * FROM ${table} ORDER BY ${orderBy}) TO ${quotedString(path)} (FORMAT parquet, COMPRESSION zstd)`,
  );
  return toNumber(res.getRows()[0]?.[0] ?? 0);
}

export function createSilverActivities(deps: ActivityDeps) {
  return {
    /**
     * Builds the day's silver tables from bronze: `silver/students` (pseudonymous roster snapshot),
     * `silver/xapi_statements` (clean, typed, deduplicated) and `quarantine/xapi` (failing rows with rule and
     * reason). Each partition is replaced whole, so re-running a date yields the same rows, never more.
     */
    async buildSilverTables(input: BuildSilverTablesInput): Promise<BuildSilverTablesOutput> {
      await faultHold(deps, 'buildSilverTables');
      return withHeartbeat((progress) =>
        withWorkDir(deps, 'silver', (dir) =>
          deps.duck.withConnection(async (conn) => {
            await conn.run(`SET TimeZone = 'UTC'`);
            progress({ step: 'roster' });
            const roster = await loadRoster(deps, conn, input.date);
            const partitions: PartitionRef[] = [];
            const studentsPath = join(dir, 'students.parquet');
            const studentRows = await copyToParquet(conn, 'students', studentsPath, 'student_key');
            partitions.push(
              deps.lake.ref(
                await deps.lake.publishPartition({
                  layer: 'silver',
                  dataset: 'students',
                  date: input.date,
                  runId: input.runId,
                  writeId: input.writeId,
                  files: [{ localPath: studentsPath, rows: studentRows }],
                  schema: [
                    { name: 'student_key', type: 'VARCHAR' },
                    { name: 'timezone', type: 'VARCHAR' },
                    { name: 'program', type: 'VARCHAR' },
                    { name: 'course', type: 'VARCHAR' },
                    { name: 'consent', type: 'BOOLEAN' },
                    { name: 'opt_out', type: 'BOOLEAN' },
                  ],
                  schemaVersion: SILVER_SCHEMA_VERSION,
                  stats: { students: roster.students },
                }),
              ),
            );

            progress({ step: 'xapi' });
            const { manifest, paths } = await deps.lake.localFiles('bronze', 'xapi', input.date);
            const files = manifest ? manifest.files.map((f, i) => ({ key: f.key, path: paths[i]! })) : [];
            let rec: SourceReconciliation;
            if (files.length) {
              rec = await cleanXapi(conn, files, input.date, deps.config.pipeline.futureSkewMinutes);
            } else {
              await conn.run(
                `CREATE OR REPLACE TEMP TABLE xapi_clean AS SELECT ${XAPI_SILVER_SCHEMA.map((c) => `CAST(NULL AS ${c.type}) AS ${c.name}`).join(', ')} LIMIT 0`,
              );
              await conn.run(
                `CREATE OR REPLACE TEMP TABLE xapi_quarantine AS SELECT NULL::VARCHAR AS source_file, NULL::BIGINT AS line_no, NULL::VARCHAR AS rule, NULL::VARCHAR AS reason, NULL::VARCHAR AS field, NULL::VARCHAR AS raw LIMIT 0`,
              );
              rec = { source: 'xapi', raw: 0, accepted: 0, duplicates: 0, quarantined: 0, byRule: {} };
            }
            if (rec.raw !== rec.accepted + rec.duplicates + rec.quarantined) {
              throw nonRetryable(
                ErrorType.ContractViolation,
                `xapi ${input.date}: reconciliation failed (${JSON.stringify(rec)})`,
              );
            }
            const stats = {
              raw: rec.raw,
              accepted: rec.accepted,
              duplicates: rec.duplicates,
              quarantined: rec.quarantined,
              bronzeFiles: files.length,
            };
            progress({ step: 'write' });
            const cleanPath = join(dir, 'xapi.parquet');
            const cleanRows = await copyToParquet(conn, 'xapi_clean', cleanPath, 'student_key, ts_utc, event_id');
            partitions.push(
              deps.lake.ref(
                await deps.lake.publishPartition({
                  layer: 'silver',
                  dataset: 'xapi_statements',
                  date: input.date,
                  runId: input.runId,
                  writeId: input.writeId,
                  files: [{ localPath: cleanPath, rows: cleanRows }],
                  schema: XAPI_SILVER_SCHEMA,
                  schemaVersion: SILVER_SCHEMA_VERSION,
                  stats,
                }),
              ),
            );
            const qPath = join(dir, 'xapi-quarantine.parquet');
            const qRows = await copyToParquet(conn, 'xapi_quarantine', qPath, 'source_file, line_no');
            partitions.push(
              deps.lake.ref(
                await deps.lake.publishPartition({
                  layer: 'quarantine',
                  dataset: 'xapi',
                  date: input.date,
                  runId: input.runId,
                  writeId: input.writeId,
                  files: [{ localPath: qPath, rows: qRows }],
                  schema: [
                    { name: 'source_file', type: 'VARCHAR' },
                    { name: 'line_no', type: 'BIGINT' },
                    { name: 'rule', type: 'VARCHAR' },
                    { name: 'reason', type: 'VARCHAR' },
                    { name: 'field', type: 'VARCHAR' },
                    { name: 'raw', type: 'VARCHAR' },
                  ],
                  schemaVersion: SILVER_SCHEMA_VERSION,
                  stats: {
                    ...stats,
                    ...Object.fromEntries(Object.entries(rec.byRule).map(([k, v]) => [`rule:${k}`, v])),
                  },
                }),
              ),
            );
            for (const t of ['xapi_clean', 'xapi_quarantine', 'identities', 'students'])
              await conn.run(`DROP TABLE IF EXISTS ${t}`);
            return {
              date: input.date,
              partitions,
              reconciliation: [rec],
              ...(files.length ? {} : { note: `no xapi data landed for ${input.date}` }),
            };
          }),
        ),
      );
    },
  };
}
