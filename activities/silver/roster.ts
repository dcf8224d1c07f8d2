import { createHash } from 'node:crypto';
import type { DuckDBConnection } from '@duckdb/node-api';
import { sqlList } from '../../lake/duck.js';
import type { ActivityDeps } from '../context.js';
import { ErrorType, nonRetryable } from '../errors.js';
import { keyCollision, studentKey } from '../identity.js';

/**
 * Pseudonymous keys already computed in this process, for one pseudonymization key at a time (identified by its
 * hash, so the secret itself is not kept): a new roster snapshot mostly repeats the last one's students.
 */
let keyCache: { secretHash: string; keys: Map<string, string> } = { secretHash: '', keys: new Map() };
const KEY_CACHE_LIMIT = 2_000_000;

/** Raised whenever the roster tables are built differently from the same files (it is part of the snapshot's id). */
const ROSTER_TABLES_REVISION = 2;

function keyCacheFor(secret: string): Map<string, string> {
  const secretHash = createHash('sha256').update(secret).digest('hex');
  if (keyCache.secretHash !== secretHash || keyCache.keys.size > KEY_CACHE_LIMIT)
    keyCache = { secretHash, keys: new Map() };
  return keyCache.keys;
}

/** The roster snapshot's tables, schema-qualified for SQL (shared by every connection; see `Duck.acquireShared`). */
export interface RosterTables {
  /** kind:value → student_key; in memory only, never written. */
  identities: string;
  students: string;
  demographics: string;
  enrolments: string;
}

export interface RosterLoad {
  rosterDate: string;
  /**
   * The snapshot's identity as a number (48 bits of a hash of the roster files, the pseudonymization key's hash and
   * ROSTER_TABLES_REVISION): equal for two nights means equal tables.
   */
  snapshot: number;
  students: number;
  enrolments: number;
  /** First and last names, lower-cased, for masking free text. Held in memory only. */
  names: ReadonlySet<string>;
  tables: RosterTables;
  /** Lets the tables go (they stay cached for the next night while the snapshot is unchanged). */
  release(): void;
}

/**
 * The latest roster on or before the date as tables: `identities` (kind:value → student_key, in memory only),
 * `students` (pseudonymous attributes), `demographics` (for fairness audits) and `enrolments`. Built once per roster
 * snapshot and pseudonymization key and shared until either changes, so a night without a new roster reuses them.
 */
export async function loadRoster(deps: ActivityDeps, date: string): Promise<RosterLoad> {
  const rosterDate = await deps.lake.latestPartition('bronze', 'roster', date);
  const manifest = rosterDate ? await deps.lake.readManifest('bronze', 'roster', rosterDate) : null;
  if (!rosterDate || !manifest) {
    throw nonRetryable(
      ErrorType.MissingPartition,
      `no roster in bronze on or before ${date}: ingest one with edlake ingest FILE --source roster`,
    );
  }
  const snapshot = createHash('sha256')
    .update(
      JSON.stringify({
        rosterDate,
        files: manifest.files.map((f) => [f.key, f.sha256]),
        key: createHash('sha256').update(deps.config.pseudonymKey).digest('hex'),
        revision: ROSTER_TABLES_REVISION,
      }),
    )
    .digest('hex');
  const shared = await deps.duck.acquireShared(`roster:${snapshot}`, (conn, schema) =>
    buildRoster(deps, conn, schema, rosterDate),
  );
  const t = (name: string) => `${shared.schema}.${name}`;
  return {
    ...shared.value,
    snapshot: parseInt(snapshot.slice(0, 12), 16),
    tables: {
      identities: t('identities'),
      students: t('students'),
      demographics: t('student_demographics'),
      enrolments: t('enrolments'),
    },
    release: shared.release,
  };
}

async function buildRoster(
  deps: ActivityDeps,
  conn: DuckDBConnection,
  schema: string,
  rosterDate: string,
): Promise<Pick<RosterLoad, 'rosterDate' | 'students' | 'enrolments' | 'names'>> {
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
  const t = (name: string) => `${schema}.${name}`;

  await conn.run(`CREATE OR REPLACE TEMP TABLE roster_raw AS
    SELECT *, row_number() OVER () AS roster_row
    FROM read_csv(${sqlList(rosterFiles.map((f) => f.path))}, header = true, all_varchar = true, union_by_name = true, hive_partitioning = false)`);
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
  const col = (c: string) => (cols.includes(c) ? `nullif(${c}, '')` : 'NULL::VARCHAR');
  const bool = (c: string) => `CASE WHEN ${col(c)} IS NOT NULL THEN lower(trim(${col(c)})) IN ('true', '1', 'yes') END`;
  // One row per student id (the first one wins), then its pseudonymous key: the only step done outside DuckDB.
  await conn.run(`CREATE OR REPLACE TEMP TABLE roster_rows AS
    SELECT trim(student_id) AS id, * EXCLUDE (student_id) FROM roster_raw
    WHERE nullif(trim(student_id), '') IS NOT NULL
    QUALIFY row_number() OVER (PARTITION BY trim(student_id) ORDER BY roster_row) = 1`);
  await conn.run(`DROP TABLE roster_raw`);
  const ids = (await conn.runAndReadAll(`SELECT id FROM roster_rows ORDER BY roster_row`)).getRows();
  await conn.run(`CREATE OR REPLACE TEMP TABLE roster_keys (id VARCHAR, student_key VARCHAR)`);
  const keys = await conn.createAppender('roster_keys', 'main', 'temp');
  const cache = keyCacheFor(deps.config.pseudonymKey);
  const studentKeys: string[] = [];
  for (const [value] of ids) {
    const id = String(value);
    let key = cache.get(id);
    if (key === undefined) cache.set(id, (key = studentKey(deps.config.pseudonymKey, id)));
    keys.appendVarchar(id);
    keys.appendVarchar(key);
    keys.endRow();
    studentKeys.push(key);
  }
  keys.closeSync();
  const clash = keyCollision(studentKeys);
  if (clash) {
    throw nonRetryable(
      ErrorType.ContractViolation,
      `roster dt=${rosterDate}: students ${clash[0]} and ${clash[1]} of the snapshot (in file order) have the same ` +
        'pseudonymous key; set a new EDLAKE_PSEUDONYM_KEY and rebuild (README: rotating the pseudonymization key)',
    );
  }
  const form = (kind: string, c: string, lower = false) =>
    `SELECT '${kind}:' || ${lower ? `lower(trim(${col(c)}))` : `trim(${col(c)})`} AS identity, k.student_key
     FROM roster_rows r JOIN roster_keys k USING (id) WHERE ${col(c)} IS NOT NULL`;
  await conn.run(`CREATE TABLE ${t('identities')} AS
    SELECT 'student_id:' || id AS identity, student_key FROM roster_keys
    UNION ALL ${form('email', 'email', true)}
    UNION ALL ${form('lms_id', 'lms_id')}
    UNION ALL ${form('sis_id', 'sis_id')}`);
  await conn.run(`CREATE TABLE ${t('students')} AS
    SELECT k.student_key, ${col('timezone')} AS timezone, ${col('program')} AS program,
      ${bool('consent')} AS consent, ${bool('opt_out')} AS opt_out
    FROM roster_rows r JOIN roster_keys k USING (id) ORDER BY r.roster_row`);
  await conn.run(`CREATE TABLE ${t('student_demographics')} AS
    SELECT k.student_key, ${col('gender')} AS gender, ${col('age_band')} AS age_band,
      ${bool('first_generation')} AS first_generation
    FROM roster_rows r JOIN roster_keys k USING (id) ORDER BY r.roster_row`);
  const names = new Set(
    (
      await conn.runAndReadAll(`SELECT DISTINCT lower(trim(n)) FROM (
        SELECT ${col('first_name')} AS n FROM roster_rows UNION ALL SELECT ${col('last_name')} FROM roster_rows)
        WHERE length(trim(n)) >= 2`)
    )
      .getRows()
      .map((r) => String(r[0])),
  );
  await conn.run(`DROP TABLE roster_rows`);
  await conn.run(`DROP TABLE roster_keys`);

  await conn.run(
    `CREATE TABLE ${t('enrolments')} (student_key VARCHAR, course_id VARCHAR, start_date DATE, end_date DATE)`,
  );
  if (enrolFiles.length) {
    await conn.run(`INSERT INTO ${t('enrolments')}
      SELECT i.student_key, trim(e.course), try_cast(e.start_date AS DATE), try_cast(e.end_date AS DATE)
      FROM read_csv(${sqlList(enrolFiles.map((f) => f.path))}, header = true, all_varchar = true, union_by_name = true, hive_partitioning = false) e
      JOIN ${t('identities')} i ON i.identity = 'student_id:' || trim(e.student_id)`);
  }
  const enrolments = Number((await conn.runAndReadAll(`SELECT count(*) FROM ${t('enrolments')}`)).getRows()[0]![0]);
  return {
    rosterDate,
    students: ids.length,
    enrolments,
    names,
  };
}
