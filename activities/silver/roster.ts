import type { DuckDBConnection } from '@duckdb/node-api';
import { sqlList } from '../../lake/duck.js';
import type { ActivityDeps } from '../context.js';
import { ErrorType, nonRetryable } from '../errors.js';
import { studentKey } from '../identity.js';

export interface RosterLoad {
  rosterDate: string;
  students: number;
  enrolments: number;
  /** First and last names, lower-cased, for masking free text. Held in memory only. */
  names: ReadonlySet<string>;
}

/**
 * Loads the latest roster on or before the date into temp tables: `identities` (kind:value → student_key, in memory
 * only), `students` (pseudonymous attributes), `student_demographics` (for fairness audits) and `enrolments`.
 */
export async function loadRoster(deps: ActivityDeps, conn: DuckDBConnection, date: string): Promise<RosterLoad> {
  const rosterDate = (await deps.lake.listPartitions('bronze', 'roster')).filter((d) => d <= date).at(-1);
  if (!rosterDate) {
    throw nonRetryable(
      ErrorType.MissingPartition,
      `no roster in bronze on or before ${date}: ingest one with edlake ingest FILE --source roster`,
    );
  }
  const { manifest, paths } = await deps.lake.localFiles('bronze', 'roster', rosterDate);
  // The newest file wins when a partition holds several rosters (a corrected export landed later the same day).
  const files = manifest!.files
    .map((f, i) => ({ name: f.originalName ?? f.key, path: paths[i]!, arrivedAt: f.arrivedAt ?? '' }))
    .sort((a, b) => (a.arrivedAt < b.arrivedAt ? 1 : a.arrivedAt > b.arrivedAt ? -1 : 0));
  const isEnrolment = (name: string) => /enrol/i.test(name);
  const rosterFiles = files.filter((f) => !isEnrolment(f.name));
  const enrolFiles = files.filter((f) => isEnrolment(f.name));
  if (!rosterFiles.length)
    throw nonRetryable(ErrorType.MissingInput, `bronze/roster dt=${rosterDate} has no student file`);

  await conn.run(`CREATE OR REPLACE TEMP TABLE roster_raw AS
    SELECT * FROM read_csv(${sqlList(rosterFiles.map((f) => f.path))}, header = true, all_varchar = true, union_by_name = true, hive_partitioning = false)`);
  const cols = (await conn.runAndReadAll(`SELECT column_name FROM (DESCRIBE roster_raw)`))
    .getRows()
    .map((r) => String(r[0]));
  for (const required of ['student_id']) {
    if (!cols.includes(required)) {
      throw nonRetryable(
        ErrorType.ContractViolation,
        `${rosterFiles[0]!.name}: row 1 (header): required field ${required} is missing`,
      );
    }
  }
  const col = (c: string) => (cols.includes(c) ? c : 'NULL');
  const rows = (
    await conn.runAndReadAll(`SELECT student_id, ${col('first_name')} AS first_name, ${col('last_name')} AS last_name,
        ${col('email')} AS email, ${col('lms_id')} AS lms_id, ${col('sis_id')} AS sis_id, ${col('timezone')} AS timezone,
        ${col('program')} AS program, ${col('consent')} AS consent, ${col('opt_out')} AS opt_out,
        ${col('gender')} AS gender, ${col('age_band')} AS age_band, ${col('first_generation')} AS first_generation
      FROM roster_raw WHERE nullif(trim(student_id), '') IS NOT NULL`)
  ).getRowObjects() as Record<string, string | null>[];
  await conn.run(`DROP TABLE roster_raw`);

  await conn.run(`CREATE OR REPLACE TEMP TABLE identities (identity VARCHAR, student_key VARCHAR)`);
  await conn.run(
    `CREATE OR REPLACE TEMP TABLE students (student_key VARCHAR, timezone VARCHAR, program VARCHAR, consent BOOLEAN, opt_out BOOLEAN)`,
  );
  await conn.run(
    `CREATE OR REPLACE TEMP TABLE student_demographics (student_key VARCHAR, gender VARCHAR, age_band VARCHAR, first_generation BOOLEAN)`,
  );
  const ids = await conn.createAppender('identities', 'main', 'temp');
  const st = await conn.createAppender('students', 'main', 'temp');
  const dem = await conn.createAppender('student_demographics', 'main', 'temp');
  const bool = (v: string | null | undefined) => (v ? ['true', '1', 'yes'].includes(v.trim().toLowerCase()) : null);
  const str = (a: typeof st, v: string | null | undefined) => (v ? a.appendVarchar(v) : a.appendNull());
  const boolApp = (a: typeof st, v: boolean | null) => (v === null ? a.appendNull() : a.appendBoolean(v));
  const names = new Set<string>();
  const seen = new Set<string>();
  for (const r of rows) {
    const id = r.student_id!.trim();
    if (seen.has(id)) continue;
    seen.add(id);
    const key = studentKey(deps.config.pseudonymKey, id);
    const forms = [`student_id:${id}`];
    if (r.email) forms.push(`email:${r.email.trim().toLowerCase()}`);
    if (r.lms_id) forms.push(`lms_id:${r.lms_id.trim()}`);
    if (r.sis_id) forms.push(`sis_id:${r.sis_id.trim()}`);
    for (const f of forms) {
      ids.appendVarchar(f);
      ids.appendVarchar(key);
      ids.endRow();
    }
    for (const n of [r.first_name, r.last_name]) if (n && n.trim().length >= 2) names.add(n.trim().toLowerCase());
    st.appendVarchar(key);
    str(st, r.timezone);
    str(st, r.program);
    boolApp(st, bool(r.consent));
    boolApp(st, bool(r.opt_out));
    st.endRow();
    dem.appendVarchar(key);
    str(dem, r.gender);
    str(dem, r.age_band);
    boolApp(dem, bool(r.first_generation));
    dem.endRow();
  }
  ids.closeSync();
  st.closeSync();
  dem.closeSync();

  await conn.run(
    `CREATE OR REPLACE TEMP TABLE enrolments (student_key VARCHAR, course_id VARCHAR, start_date DATE, end_date DATE)`,
  );
  if (enrolFiles.length) {
    await conn.run(`INSERT INTO enrolments
      SELECT i.student_key, trim(e.course), try_cast(e.start_date AS DATE), try_cast(e.end_date AS DATE)
      FROM read_csv(${sqlList(enrolFiles.map((f) => f.path))}, header = true, all_varchar = true, union_by_name = true, hive_partitioning = false) e
      JOIN identities i ON i.identity = 'student_id:' || trim(e.student_id)`);
  }
  const enrolments = Number((await conn.runAndReadAll(`SELECT count(*) FROM enrolments`)).getRows()[0]![0]);
  return {
    rosterDate,
    students: seen.size,
    enrolments,
    names,
  };
}
