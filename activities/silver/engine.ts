import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { type DuckDBConnection, quotedIdentifier, quotedString } from '@duckdb/node-api';
import { ErrorType, nonRetryable } from '../errors.js';
import type { FieldDefinition, SourceDefinition } from '../../config/source-definition.js';
import { toNumber } from '../../lake/duck.js';
import { maskPersonalData } from './mask.js';

/** The rules every source's contract is made of, in the order they are checked. */
export const RULES = [
  'invalid_json',
  'missing_required',
  'bad_type',
  'out_of_range',
  'invalid_enum',
  'invalid_offset',
  'malformed_timestamp',
  'future_timestamp',
  'unknown_student',
  'out_of_term',
] as const;
export type Rule = (typeof RULES)[number];

export interface Reconciliation {
  source: string;
  raw: number;
  accepted: number;
  duplicates: number;
  quarantined: number;
  /** Accepted rows whose event date is before the landing date. */
  late: number;
  byRule: Record<string, number>;
}

export interface CleanContext {
  /** Landing date of the partition being cleaned. */
  date: string;
  /** Events after this instant (ISO) are future_timestamp. */
  futureBound: string;
  /** Temp table (identity VARCHAR, student_key VARCHAR) of `kind:value` forms. */
  identities: string;
  /** Temp table (student_key, course_id, start_date, end_date). */
  enrolments: string;
  /**
   * A relation (table name or parenthesized query) of the `event_id`s accepted on earlier landing dates that could
   * repeat tonight's: given the event dates of tonight's accepted rows when every key of the source embeds its
   * instant (content keys: a repeat lies in the same event-date partition), null when any may repeat across dates.
   */
  seen: (eventDates: string[] | null) => Promise<string>;
  /** Roster first and last names, lower-cased, for masking free text. */
  names: ReadonlySet<string>;
}

export interface SourceFile {
  key: string;
  path: string;
}

const SEP = '\\x1f';

/** Days before the landing date whose minutes get a precomputed UTC offset (zone-less sources; see `cleanSource`). */
const ZONE_DAYS_BEFORE = 7;

/**
 * Reader options for long lines: DuckDB's CSV reader stops at 2 MB per line by default; a file with longer lines (one
 * huge record) gets a line limit and buffer to match its size, so the record is read (and judged by the contract).
 * Only such files get them: a buffer as large as the file is read by one thread.
 */
function lineLimit(path: string): string {
  const size = statSync(path).size;
  if (size < 1_900_000 || !hasLongLine(path, size)) return '';
  const max = Math.min(size + 1024, 1 << 30);
  return `, max_line_size = ${max}, buffer_size = ${Math.max(max * 2, 32 << 20)}`;
}

const LONG_LINE_PROBE = 1 << 20;

/**
 * Whether some aligned 1 MB stretch of the file holds no line break — true for every file with a line over 2 MB (such
 * a line covers a whole stretch), and for a few with lines of 1–2 MB, which then get the larger buffer too. Stops at
 * each stretch's first break, so a file of ordinary lines costs a read of it from the page cache.
 */
function hasLongLine(path: string, size: number): boolean {
  const buf = Buffer.allocUnsafe(LONG_LINE_PROBE);
  const fd = openSync(path, 'r');
  try {
    for (let at = 0; at + LONG_LINE_PROBE <= size; at += LONG_LINE_PROBE) {
      const n = readSync(fd, buf, 0, LONG_LINE_PROBE, at);
      if (n === LONG_LINE_PROBE && buf.indexOf(10) < 0) return true;
    }
    return false;
  } finally {
    closeSync(fd);
  }
}

/**
 * A copy of a text file as valid UTF-8, for files DuckDB refuses: UTF-16 (by its byte-order mark) is decoded, invalid
 * UTF-8 byte sequences become U+FFFD. Lines stay where they were, so line numbers still point into the bronze file,
 * which is kept unchanged.
 */
async function asUtf8(f: SourceFile): Promise<SourceFile> {
  const buf = await readFile(f.path);
  const text =
    buf[0] === 0xff && buf[1] === 0xfe
      ? buf.subarray(2).toString('utf16le')
      : buf[0] === 0xfe && buf[1] === 0xff
        ? Buffer.from(buf.subarray(2)).swap16().toString('utf16le')
        : buf.toString('utf8');
  const path = `${f.path}.utf8`;
  await writeFile(path, text);
  return { ...f, path };
}

/** A reading failure as a one-line error naming the files, without DuckDB's echo of the offending line. */
function readFailure(def: SourceDefinition, files: SourceFile[], err: unknown): Error {
  const lines = String((err as Error).message ?? err)
    .split('\n')
    .filter((l) => l.trim() && !/^\s*(Original Line|Possible Solution|file =|[a-z_]+ = )/.test(l));
  const why = lines.slice(0, 2).join(' — ').slice(0, 300);
  return nonRetryable(
    ErrorType.BadInput,
    `${def.name}: cannot read ${files.map((f) => f.key.split('/').pop()).join(', ')}: ${why}`,
  );
}

function paths(p: string | string[]): string[] {
  return Array.isArray(p) ? p : [p];
}

/**
 * Every JSON path a definition reads, extracted in one pass per record (`json_extract_string(j, [paths])` parses the
 * record once); `at(p)` is the SQL for the first of p's paths that holds a value.
 */
function pathRegistry(def: SourceDefinition): { all: string[]; list: string; at: (p: string | string[]) => string } {
  const all: string[] = [];
  const add = (p: string | string[]) => paths(p).forEach((x) => all.includes(x) || all.push(x));
  Object.values(def.fields).forEach((f) => add(f.path));
  add(def.timestamp.path);
  def.identity.forEach((i) => add(i.path));
  const at = (p: string | string[]) => {
    const xs = paths(p).map((x) => `v[${all.indexOf(x) + 1}]`);
    return xs.length === 1 ? xs[0]! : `coalesce(${xs.join(', ')})`;
  };
  return { all, list: `[${all.map((x) => quotedString(x)).join(', ')}]`, at };
}

/**
 * SQL for `trim(x)` that skips the call for the usual value. trim removes the Unicode space separators (category Zs:
 * the ASCII space and some non-ASCII ones, not tabs) from both ends; a value of ASCII characters that neither starts nor
 * ends with a space is already trimmed, and the checks that say so cost a fraction of a trim, which copies the string.
 * Every field of every record is trimmed a few times (types, contract, content key): skipping the copies takes about
 * a third off cleaning a CSV export.
 */
export function trimmed(x: string): string {
  return `(CASE WHEN starts_with(${x}, ' ') OR ends_with(${x}, ' ') OR strlen(${x}) <> length(${x}) THEN trim(${x}) ELSE ${x} END)`;
}

function typed(col: string, f: FieldDefinition): string {
  const raw = quotedIdentifier(`${col}__raw`);
  switch (f.type) {
    case 'VARCHAR':
      return raw;
    case 'BOOLEAN':
      // One CASE on the value (an IN list here is planned as two joins against constant tables).
      return `CASE lower(${trimmed(raw)}) ${['true', '1', 'yes', 't', 'y'].map((v) => `WHEN '${v}' THEN true`).join(' ')} ${['false', '0', 'no', 'f', 'n'].map((v) => `WHEN '${v}' THEN false`).join(' ')} END`;
    default:
      return `try_cast(${trimmed(raw)} AS ${f.type})`;
  }
}

/** A top-level column of a CSV or parquet row: `$.name`. */
const COLUMN_PATH = /^\$\.([A-Za-z_][A-Za-z0-9_]*)$/;

/** How every CSV file is read: all text, short rows padded, bad rows kept (the contract judges them). */
const CSV_OPTIONS = 'header = true, all_varchar = true, null_padding = true, strict_mode = false';

/**
 * A CSV file's dialect and columns, detected once: the read that follows names them (`auto_detect = false`) instead of
 * detecting them again — the sniffer costs up to a tenth of a second per file, whatever its size. The read is built from
 * the detected fields, each quoted here (the sniffer's own prompt does not escape column names).
 */
async function sniffedCsv(conn: DuckDBConnection, path: string): Promise<{ src: string; cols: string[] }> {
  const limit = lineLimit(path);
  const sniff = async (options: string) =>
    (
      await conn.runAndReadAll(
        `SELECT Delimiter, Quote, Escape, NewLineDelimiter, Comment, SkipRows, Columns
        FROM sniff_csv(${quotedString(path)}, ${options}${limit})`,
      )
    ).getRowObjectsJson()[0]!;
  // The dialect of a well-formed file is detected strictly: a lenient sniff settles for no escape character, which
  // leaves RFC 4180's doubled quotes doubled (`"say ""hi"""` read as `say ""hi""`). A file with malformed rows is
  // sniffed leniently. Either way the rows are then read leniently, so a bad row is kept for the contract to judge.
  const row = await sniff(CSV_OPTIONS.replace(', strict_mode = false', '')).catch(() => sniff(CSV_OPTIONS));
  const text = (v: unknown) => (v === '(empty)' || v === null ? '' : String(v));
  const cols = (row.Columns as { name: string }[]).map((c) => c.name);
  // The sniffer reports a line break as its escape sequence; only the three it detects are passed on.
  const newLine = ['\\n', '\\r', '\\r\\n'].includes(text(row.NewLineDelimiter))
    ? `, new_line = ${quotedString(text(row.NewLineDelimiter))}`
    : '';
  const src = `read_csv(${quotedString(path)}, auto_detect = false, delim = ${quotedString(text(row.Delimiter))},
    quote = ${quotedString(text(row.Quote))}, escape = ${quotedString(text(row.Escape))}${newLine},
    skip = ${Number(row.SkipRows)}, comment = ${quotedString(text(row.Comment))},
    columns = {${cols.map((c) => `${quotedString(c)}: 'VARCHAR'`).join(', ')}},
    ${CSV_OPTIONS}, hive_partitioning = false${limit})`;
  return { src, cols };
}

/**
 * CSV and parquet rows read column by column (no JSON round trip): every column of the files as text under `c:<name>`
 * (NULL where a file lacks it). Returns one SELECT per file and the column names in order.
 */
async function tabularReader(
  conn: DuckDBConnection,
  def: SourceDefinition,
  files: SourceFile[],
): Promise<{ selects: string[]; columns: string[] }> {
  const perFile: { src: string; cols: string[] }[] = [];
  for (const f of files) {
    // A file the sniffer gives up on (an empty one, say) is read as before, detecting on its own.
    const sniffed = def.format === 'csv' ? await sniffedCsv(conn, f.path).catch(() => null) : null;
    if (sniffed) {
      perFile.push(sniffed);
      continue;
    }
    const src =
      def.format === 'csv'
        ? `read_csv(${quotedString(f.path)}, ${CSV_OPTIONS}, auto_detect = true, hive_partitioning = false${lineLimit(f.path)})`
        : `read_parquet(${quotedString(f.path)}, hive_partitioning = false)`;
    const cols = (await conn.runAndReadAll(`SELECT column_name FROM (DESCRIBE SELECT * FROM ${src})`))
      .getRows()
      .map((r) => String(r[0]));
    perFile.push({ src, cols });
  }
  const columns = [...new Set(perFile.flatMap((p) => p.cols))];
  const selects = perFile.map(
    ({ src, cols }) =>
      `SELECT ${columns
        .map(
          (c) =>
            `${cols.includes(c) ? `CAST(t.${quotedIdentifier(c)} AS VARCHAR)` : 'NULL::VARCHAR'} AS ${quotedIdentifier(`c:${c}`)}`,
        )
        .join(', ')} FROM ${src} t`,
  );
  return { selects, columns };
}

/**
 * One SELECT per file giving its records in file order as `raw` text (JSON, or a CSV/parquet row as a JSON object),
 * and the number of the first record (2 under a CSV header). Blank JSON lines are kept here, so that record numbers
 * are line numbers, and skipped when the records are read.
 */
function readerSelects(def: SourceDefinition, files: SourceFile[]): { sql: string; first: number }[] {
  return files.map((f) => {
    const path = quotedString(f.path);
    switch (def.format) {
      case 'jsonl':
        return {
          sql: `SELECT line AS raw FROM read_csv(${path}, columns = {'line': 'VARCHAR'}, header = false,
            delim = '${SEP}', quote = '', escape = '', auto_detect = false, strict_mode = false, new_line = '\\n', hive_partitioning = false${lineLimit(f.path)})`,
          first: 1,
        };
      case 'csv':
        return {
          sql: `SELECT to_json(t)::VARCHAR AS raw
            FROM read_csv(${path}, ${CSV_OPTIONS}, auto_detect = true, hive_partitioning = false${lineLimit(f.path)}) t`,
          first: 2,
        };
      case 'parquet':
        return {
          sql: `SELECT to_json(t)::VARCHAR AS raw FROM read_parquet(${path}, hive_partitioning = false) t`,
          first: 1,
        };
      case 'json':
        return { sql: jsonReaderSql(def, f), first: 1 };
    }
  });
}

/**
 * A file's number: its place among the landing's files in key order, so ordering by (file_no, line_no) is ordering by
 * (file key, line). Rows carry the number; the key is written only into the outputs (`fileKeySql`).
 */
function fileNumbers(files: SourceFile[]): string[] {
  return [...new Set(files.map((f) => f.key))].sort();
}

/** SQL for the file key of a `file_no` expression. */
function fileKeySql(files: SourceFile[], fileNo: string): string {
  return `([${fileNumbers(files)
    .map((k) => quotedString(k))
    .join(', ')}])[${fileNo} + 1]`;
}

/**
 * Loads every file's records into one table in file order (parallel readers keep it: insertion order is preserved),
 * so a record's file and number follow from its row id — no numbering pass over the rows. Returns the SQL of the
 * records with `rid`, `file_no` and `line_no` in front.
 */
async function loadRecords(
  conn: DuckDBConnection,
  table: string,
  files: SourceFile[],
  selects: { sql: string; first: number }[],
  where: string,
): Promise<string> {
  const numbers = fileNumbers(files);
  const ranges: { key: string; start: number; end: number; first: number }[] = [];
  let start = 0;
  for (const [i, sel] of selects.entries()) {
    await conn.run(i === 0 ? `CREATE OR REPLACE TEMP TABLE ${table} AS ${sel.sql}` : `INSERT INTO ${table} ${sel.sql}`);
    const end = toNumber((await conn.runAndReadAll(`SELECT count(*) FROM ${table}`)).getRows()[0]![0]);
    ranges.push({ key: files[i]!.key, start, end, first: sel.first });
    start = end;
  }
  const pick = (f: (r: (typeof ranges)[number]) => string) =>
    ranges.length === 1
      ? f(ranges[0]!)
      : `CASE ${ranges.map((r) => `WHEN rowid < ${r.end} THEN ${f(r)}`).join(' ')} END`;
  return `SELECT rowid AS rid, ${pick((r) => String(numbers.indexOf(r.key)))} AS file_no,
      ${pick((r) => `rowid - ${r.start} + ${r.first}`)} AS line_no, * FROM ${table} ${where}`;
}

/**
 * Cleans one landing of one source per its definition: reads every record, types the fields, checks the contract,
 * resolves the student to a pseudonymous key, masks free text, converts time to UTC keeping the original offset, and
 * separates duplicates (within the landing and against earlier landings). Leaves `<prefix>_clean` and
 * `<prefix>_quarantine` on the connection and returns the reconciliation.
 */
export async function cleanSource(
  conn: DuckDBConnection,
  def: SourceDefinition,
  files: SourceFile[],
  context: CleanContext | Promise<CleanContext>,
  prefix: string,
): Promise<Reconciliation> {
  // Awaited once the files are read; a failure to build it is thrown there, not reported as unhandled meanwhile.
  if (context instanceof Promise) context.catch(() => undefined);
  const t = (name: string) => quotedIdentifier(`${prefix}_${name}`);
  const fields = Object.entries(def.fields);
  const ts = def.timestamp;
  const { all: allPaths, list: pathList, at: jsonAt } = pathRegistry(def);
  // CSV and parquet rows with top-level paths are read as columns; everything else goes through JSON.
  const direct = (def.format === 'csv' || def.format === 'parquet') && allPaths.every((p) => COLUMN_PATH.test(p));
  let columns: string[] = [];
  let records = '';
  const read = async (fs: SourceFile[]) => {
    if (direct) {
      const reader = await tabularReader(conn, def, fs);
      columns = reader.columns;
      records = await loadRecords(
        conn,
        t('raw'),
        fs,
        reader.selects.map((sql) => ({ sql, first: def.format === 'csv' ? 2 : 1 })),
        '',
      );
    } else {
      records = await loadRecords(
        conn,
        t('raw'),
        fs,
        readerSelects(def, fs),
        // A blank line is spaces only (what trim removes); a pattern test reads no further than its first other
        // character, where trim would copy the whole line.
        def.format === 'jsonl' ? `WHERE regexp_matches(raw, '[^ ]')` : '',
      );
    }
  };
  try {
    await read(files);
  } catch (err) {
    // Text that is not UTF-8 (UTF-16, stray bytes) is read again from a UTF-8 copy; anything else is a bad file.
    if (def.format === 'parquet' || !/unicode|utf-?8|encoding/i.test(String((err as Error).message))) {
      throw readFailure(def, files, err);
    }
    try {
      await read(await Promise.all(files.map(asUtf8)));
    } catch (again) {
      throw readFailure(def, files, again);
    }
  }
  // Reading needs no roster: the context (identities, enrolments) may still be being built meanwhile.
  const ctx = await context;
  const column = (p: string) => {
    const name = COLUMN_PATH.exec(p)![1]!;
    return columns.includes(name) ? quotedIdentifier(`c:${name}`) : 'NULL::VARCHAR';
  };
  const extract = direct
    ? (p: string | string[]) => {
        const xs = paths(p).map(column);
        return xs.length === 1 ? xs[0]! : `coalesce(${xs.join(', ')})`;
      }
    : jsonAt;
  // The record as quarantine shows it: the JSON text as read, or the row's columns as a JSON object.
  const rawSql = direct
    ? `to_json(struct_pack(${columns.map((c) => `${quotedIdentifier(c)} := ${quotedIdentifier(`c:${c}`)}`).join(', ')}))::VARCHAR`
    : 'raw';
  // The timestamp as written, from the record as read (for reasons given after the checking pass).
  const rawTs = direct
    ? extract(ts.path)
    : `coalesce(${paths(ts.path)
        .map((p) => `json_extract_string(raw, ${quotedString(p)})`)
        .join(', ')})`;

  const identityValue = (id: (typeof def.identity)[number]) => {
    let v = trimmed(extract(id.path));
    if (id.stripPrefix)
      v = `regexp_replace(${v}, ${quotedString(`^${id.stripPrefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`)}, '', 'i')`;
    if (id.lastSegment) v = `regexp_extract(${v}, '([^/]+)/?$', 1)`;
    if (id.kind === 'email') v = `lower(${v})`;
    return v;
  };
  // A record's identity as the roster knows it: `kind:value` of the first identity field it holds. A source with one
  // identity field is looked up by the value alone, against the roster's forms of its kind with the prefix cut (one
  // short table) instead of a string built for every record.
  const oneKind = def.identity.length === 1 ? def.identity[0]!.kind : null;
  const identityForm = oneKind
    ? identityValue(def.identity[0]!)
    : def.identity
        .map(
          (id) =>
            `CASE WHEN ${extract(id.path)} IS NOT NULL THEN ${quotedString(`${id.kind}:`)} || ${identityValue(id)} END`,
        )
        .join(', ');

  const xSql = direct
    ? `SELECT rid, file_no, line_no, true AS is_object,
      ${fields.map(([name, f]) => `${extract(f.path)} AS ${quotedIdentifier(`${name}__raw`)}`).join(',\n      ')}${fields.length ? ',' : ''}
      ${extract(ts.path)} AS ts_raw,
      coalesce(${identityForm}) AS identity_form
    FROM (${records})`
    : `
    WITH r AS (
      SELECT rid, file_no, line_no, raw,
        CASE WHEN coalesce(json_valid(raw), false) AND regexp_matches(raw, '^ *[{]') THEN raw END AS j
      FROM (${records})
    ),
    e AS (SELECT rid, file_no, line_no, raw, j, CASE WHEN j IS NOT NULL THEN json_extract_string(j, ${pathList}) END AS v FROM r)
    SELECT rid, file_no, line_no, raw, j IS NOT NULL AS is_object,
      ${fields.map(([name, f]) => `${extract(f.path)} AS ${quotedIdentifier(`${name}__raw`)}`).join(',\n      ')}${fields.length ? ',' : ''}
      ${extract(ts.path)} AS ts_raw,
      coalesce(${identityForm}) AS identity_form
    FROM e`;

  // Time: one regular expression splits an ISO 8601 value into local part and zone; explicit offsets are applied by
  // arithmetic, and only zone-less values go through the time-zone database. ts_utc is a UTC TIMESTAMP.
  const tz = quotedString(ts.timezone);
  const toUtc = (local: string) => (ts.timezone === 'UTC' ? local : `timezone('UTC', timezone(${tz}, ${local}))`);
  const isoRe = `'^(\\d{4}-\\d{2}-\\d{2}[T ]\\d{2}:\\d{2}(?::\\d{2}(?:\\.\\d+)?)?)(Z|([+-])(\\d{2}):?(\\d{2})?)?$'`;
  const timeCte = ts.format
    ? `SELECT x.*, try_strptime(${trimmed('ts_raw')}, ${quotedString(ts.format)}) AS ts_local, NULL::INTEGER AS explicit_offset FROM x`
    : `SELECT x.*, try_cast(nullif(p.base, '') AS TIMESTAMP) AS ts_local,
        CASE WHEN p.zone = 'Z' THEN 0 WHEN p.sign <> '' THEN (CASE WHEN p.sign = '-' THEN -1 ELSE 1 END) *
          (CAST(p.hh AS INTEGER) * 60 + coalesce(try_cast(nullif(p.mm, '') AS INTEGER), 0)) END AS explicit_offset
      FROM (SELECT *, regexp_extract(${trimmed('ts_raw')}, ${isoRe}, ['base', 'zone', 'sign', 'hh', 'mm']) AS p FROM x) x`;
  // Zone-less local times: the time-zone database is asked once per minute of the days around the landing (offsets
  // change on minute boundaries) and looked up from there; a time outside them (an old late event) asks it itself.
  const zoned = ts.timezone !== 'UTC';
  const tsUtcSql = `CASE WHEN explicit_offset IS NOT NULL THEN ts_local - to_minutes(explicit_offset) ELSE ${
    zoned ? `ts_local + coalesce(z.zone_offset, ${toUtc('ts_local')} - ts_local)` : 'ts_local'
  } END`;
  const zoneCte = zoned
    ? `zone AS (SELECT range AS minute, ${toUtc('range')} - range AS zone_offset
        FROM range(DATE ${quotedString(ctx.date)} - INTERVAL ${ZONE_DAYS_BEFORE} DAY, DATE ${quotedString(ctx.date)} + INTERVAL 2 DAY, INTERVAL 1 MINUTE)),`
    : '';

  const courseSql = def.course
    ? def.course.pattern
      ? `nullif(regexp_extract(${quotedIdentifier(`${def.course.field}__raw`)}, ${quotedString(def.course.pattern)}, 1), '')`
      : quotedIdentifier(`${def.course.field}__raw`)
    : 'NULL::VARCHAR';

  // Only the identity kinds the source names are hashed for the lookup (a smaller table to probe).
  const kinds = [...new Set(def.identity.map((id) => id.kind))];
  const identities = oneKind
    ? `(SELECT substr(identity, ${oneKind.length + 2}) AS identity, student_key FROM ${ctx.identities}
        WHERE starts_with(identity, ${quotedString(`${oneKind}:`)}))`
    : `(SELECT identity, student_key FROM ${ctx.identities} WHERE ${kinds
        .map((k) => `starts_with(identity, ${quotedString(`${k}:`)})`)
        .join(' OR ')})`;
  const typedSql = `
    SELECT x.*,
      ${fields.map(([name, f]) => `${typed(name, f)} AS ${quotedIdentifier(name)}`).join(',\n      ')}${fields.length ? ',' : ''}
      ${tsUtcSql} AS ts_utc,
      i.student_key,
      ${courseSql} AS course_id
    FROM t0 x LEFT JOIN ${identities} i ON i.identity = x.identity_form
    ${zoned ? `LEFT JOIN zone z ON z.minute = date_trunc('minute', x.ts_local)` : ''}`;

  // The contract: the first failing rule names the row's quarantine reason and field.
  const checks: { rule: Rule; when: string; field: string; reason: string }[] = [
    {
      rule: 'invalid_json',
      when: 'NOT is_object',
      field: "'(record)'",
      reason: direct
        ? "'record is not readable'"
        : `CASE WHEN coalesce(json_valid(raw), false) THEN 'record is not a JSON object' ELSE 'record is not valid JSON' END`,
    },
  ];
  const shown = (name: string, f: FieldDefinition) =>
    f.freeText ? "''" : `' ' || to_json(left(${quotedIdentifier(`${name}__raw`)}, 80))::VARCHAR`;
  for (const [name, f] of fields) {
    if (f.required) {
      checks.push({
        rule: 'missing_required',
        when: `nullif(${trimmed(quotedIdentifier(`${name}__raw`))}, '') IS NULL`,
        field: quotedString(name),
        reason: quotedString(`required field ${name} is missing or empty`),
      });
    }
  }
  checks.push({
    rule: 'missing_required',
    when: `nullif(${trimmed('ts_raw')}, '') IS NULL`,
    field: "'timestamp'",
    reason: "'required timestamp is missing or empty'",
  });
  for (const [name, f] of fields) {
    if (f.type !== 'VARCHAR') {
      checks.push({
        rule: 'bad_type',
        when: `${quotedIdentifier(`${name}__raw`)} IS NOT NULL AND ${quotedIdentifier(name)} IS NULL`,
        field: quotedString(name),
        reason: `'field ${name}' || ${shown(name, f)} || ' is not ${f.type === 'BOOLEAN' ? 'a boolean' : f.type === 'INTEGER' ? 'an integer' : 'a number'}'`,
      });
    }
  }
  for (const [name, f] of fields) {
    const c = quotedIdentifier(name);
    const conds = [
      f.min !== undefined ? `${c} < ${f.min}` : null,
      f.max !== undefined ? `${c} > ${f.max}` : null,
    ].filter(Boolean);
    if (conds.length) {
      checks.push({
        rule: 'out_of_range',
        when: conds.join(' OR '),
        field: quotedString(name),
        reason: `'field ${name}' || ${shown(name, f)} || ' is outside [${f.min ?? '-∞'}, ${f.max ?? '∞'}]'`,
      });
    }
    if (f.enum) {
      checks.push({
        rule: 'invalid_enum',
        when: `${c} IS NOT NULL AND ${c} NOT IN (${f.enum.map((e) => quotedString(e)).join(', ')})`,
        field: quotedString(name),
        reason: `'field ${name}' || ${shown(name, f)} || ' is not one of ${f.enum.join(', ')}'`,
      });
    }
  }
  checks.push(
    {
      rule: 'invalid_offset',
      when: 'abs(explicit_offset) > 14 * 60',
      field: "'timestamp'",
      reason: `'timestamp ' || to_json(ts_raw)::VARCHAR || ' has a UTC offset beyond ±14:00'`,
    },
    {
      rule: 'malformed_timestamp',
      when: 'ts_utc IS NULL',
      field: "'timestamp'",
      reason: `'timestamp ' || to_json(left(ts_raw, 80))::VARCHAR || ' is not ${ts.format ? `in the format ${ts.format}` : 'an ISO 8601 date-time'}'`,
    },
    {
      rule: 'future_timestamp',
      when: `ts_utc > CAST(${quotedString(ctx.futureBound)}::TIMESTAMPTZ AT TIME ZONE 'UTC' AS TIMESTAMP)`,
      field: "'timestamp'",
      reason: `'timestamp ' || ts_raw || ' is after the landing day plus the allowed skew'`,
    },
    {
      rule: 'unknown_student',
      when: 'student_key IS NULL',
      field: "'identity'",
      reason: `CASE WHEN identity_form IS NULL THEN 'no student identity in the record' ELSE 'student identity matches no roster entry' END`,
    },
  );
  // Most rows pass: the per-rule branches are only evaluated for the rows that failed.
  const fieldCase = `CASE WHEN rule_index IS NOT NULL THEN CASE ${checks.map((c, i) => `WHEN rule_index = ${i} THEN ${c.field}`).join(' ')} END END`;
  const reasonCase = `CASE WHEN rule_index IS NOT NULL THEN CASE ${checks.map((c, i) => `WHEN rule_index = ${i} THEN ${c.reason}`).join(' ')} END END`;
  const indexCase = `CASE ${checks.map((c, i) => `WHEN ${c.when} THEN ${i}`).join(' ')} END`;

  // Without an id field, an event is its content once resolved: the same student, instant and field values as
  // written (the text of each field, so no number is formatted back to text per row).
  const contentKey = `md5(concat_ws('|', student_key, CAST(epoch_ms(ts_utc) AS VARCHAR), ${fields.map(([n]) => `coalesce(${trimmed(quotedIdentifier(`${n}__raw`))}, '')`).join(', ') || "''"}))`;
  const eventKey = def.eventId ? `coalesce(${quotedIdentifier(def.eventId)}, ${contentKey})` : contentKey;
  // One pass: extract, type, resolve, check and key. Every row that passed starts as the first occurrence of its key.
  await conn.run(`CREATE OR REPLACE TEMP TABLE ${t('ranked')} AS
    WITH x AS (${xSql}),
    t0 AS (${timeCte}),
    ${zoneCte}
    typed AS (${typedSql}),
    checked AS (SELECT typed_row.*, ${indexCase} AS rule_index FROM typed typed_row)
    -- Only what the outputs need is kept: the raw record, typed fields, time, identity, verdict and key.
    SELECT rid, file_no, line_no,
      ${fields.map(([name]) => `${quotedIdentifier(name)}, `).join('')}ts_utc,
      coalesce(explicit_offset, CAST(round((epoch(ts_local) - epoch(ts_utc)) / 60) AS INTEGER)) AS ts_offset_minutes,
      student_key, course_id,
      ([${checks.map((c) => quotedString(c.rule)).join(', ')}])[rule_index + 1] AS rule,
      ${fieldCase} AS field, ${reasonCase} AS reason, ${eventKey} AS event_key,
      CASE WHEN rule_index IS NULL THEN 1 END AS occurrence
    FROM checked`);
  // Duplicates are rare, so only their rows are touched: within the landing, the keys that occur more than once are
  // ranked by file and line; then every key an earlier landing accepted is a repeat (occurrence 2). Earlier landings'
  // ids are streamed past this landing's keys (the smaller side is the one hashed).
  await conn.run(`UPDATE ${t('ranked')} k SET occurrence = r.rn FROM (
      SELECT rid, row_number() OVER (PARTITION BY event_key ORDER BY file_no, line_no) AS rn
      FROM ${t('ranked')} WHERE rule IS NULL AND event_key IN (
        SELECT event_key FROM ${t('ranked')} WHERE rule IS NULL GROUP BY event_key HAVING count(*) > 1)
    ) r WHERE k.rid = r.rid AND r.rn > 1`);
  const eventDates = def.eventId
    ? null
    : (
        await conn.runAndReadAll(
          `SELECT strftime(d, '%Y-%m-%d') FROM (SELECT DISTINCT CAST(ts_utc AS DATE) AS d FROM ${t('ranked')} WHERE rule IS NULL)`,
        )
      )
        .getRows()
        .map((r) => String(r[0]));
  await conn.run(`UPDATE ${t('ranked')} SET occurrence = 2
    WHERE rule IS NULL AND event_key IN (
      SELECT event_id FROM ${await ctx.seen(eventDates)} WHERE event_id IN (SELECT event_key FROM ${t('ranked')} WHERE rule IS NULL))`);

  // Enrolment, the last rule: judged once per student, course and day among the rows that passed every other rule — a
  // student with enrolments whose events fall outside every one of them (±1 day; any course when the event names
  // none). Rows with the same content share the verdict, so duplicates ranked above stay consistent. The reason,
  // which quotes the timestamp as written, is filled in with the quarantine from the record as read.
  if (def.termCheck) {
    await conn.run(`UPDATE ${t('ranked')} r
      SET rule = 'out_of_term', field = 'timestamp', occurrence = NULL,
        reason = NULL
      FROM (
        SELECT student_key, course_id, day FROM (
          SELECT DISTINCT student_key, course_id, CAST(ts_utc AS DATE) AS day FROM ${t('ranked')} WHERE rule IS NULL) c
        WHERE EXISTS (SELECT 1 FROM ${ctx.enrolments} e WHERE e.student_key = c.student_key)
          AND NOT EXISTS (SELECT 1 FROM ${ctx.enrolments} e WHERE e.student_key = c.student_key
            AND (c.course_id IS NULL OR e.course_id = c.course_id) AND c.day BETWEEN e.start_date - 1 AND e.end_date + 1)
      ) o
      WHERE r.rule IS NULL AND o.student_key = r.student_key AND o.course_id IS NOT DISTINCT FROM r.course_id
        AND o.day = CAST(r.ts_utc AS DATE)`);
  }

  // Free text is masked row by row in JS (names are a set lookup per word), then written back before output.
  for (const [name, f] of fields) {
    if (!f.freeText) continue;
    const col = quotedIdentifier(name);
    const rows = (
      await conn.runAndReadAll(
        `SELECT rid, ${col} AS v FROM ${t('ranked')} WHERE rule IS NULL AND occurrence = 1 AND ${col} IS NOT NULL`,
      )
    ).getRows();
    const maskTable = `${prefix}_mask_${name}`;
    await conn.run(`CREATE OR REPLACE TEMP TABLE ${quotedIdentifier(maskTable)} (rid BIGINT, v VARCHAR)`);
    const app = await conn.createAppender(maskTable, 'main', 'temp');
    for (const [rid, v] of rows) {
      app.appendBigInt(BigInt(rid as bigint));
      app.appendVarchar(maskPersonalData(String(v), ctx.names));
      app.endRow();
    }
    app.closeSync();
    await conn.run(`UPDATE ${t('ranked')} r SET ${col} = m.v FROM ${quotedIdentifier(maskTable)} m
      WHERE r.rid = m.rid`);
    await conn.run(`DROP TABLE ${quotedIdentifier(maskTable)}`);
  }
  const outputFields = fields.map(([name]) => quotedIdentifier(name));
  // Accepted rows are a view over the ranked table (written out per event date by the caller, then dropped with
  // `dropCleaned`), not a copy of them.
  await conn.run(`CREATE OR REPLACE TEMP VIEW ${t('clean')} AS
    SELECT event_key AS event_id, student_key, course_id, ts_utc, ts_offset_minutes,
      CAST(ts_utc AS DATE) AS event_date,
      DATE ${quotedString(ctx.date)} AS landed_date,
      ${outputFields.join(', ')}${outputFields.length ? ',' : ''}
      ${fileKeySql(files, 'file_no')} AS source_file, line_no AS source_line
    FROM ${t('ranked')} WHERE rule IS NULL AND occurrence = 1`);
  // The record as read is joined back only for the rows that fail (carrying it through every row costs more).
  await conn.run(`CREATE OR REPLACE TEMP TABLE ${t('quarantine')} AS
    SELECT ${fileKeySql(files, 'q.file_no')} AS source_file, q.line_no, q.rule, q.field,
      CASE WHEN q.rule = 'out_of_term' THEN 'timestamp ' || ${rawTs} || ' is outside the student''s enrolment' ELSE q.reason END AS reason,
      ${rawSql} AS raw
    FROM (SELECT * FROM ${t('ranked')} WHERE rule IS NOT NULL) q
    JOIN ${t('raw')} r ON r.rowid = q.rid`);
  await conn.run(`DROP TABLE ${t('raw')}`);

  // Every count in one pass: per rule (NULL for rows that passed) and, among those, first occurrences or repeats.
  const rec: Reconciliation = {
    source: def.name,
    raw: 0,
    accepted: 0,
    duplicates: 0,
    quarantined: 0,
    late: 0,
    byRule: {},
  };
  const counts = await conn.runAndReadAll(`SELECT rule, occurrence = 1 AS first, count(*) AS n,
      count(*) FILTER (WHERE ${def.termCheck ? 'true' : 'false'} AND rule IS NULL AND occurrence = 1 AND CAST(ts_utc AS DATE) < DATE ${quotedString(ctx.date)}) AS late
    FROM ${t('ranked')} GROUP BY ALL ORDER BY rule`);
  for (const r of counts.getRowObjects()) {
    const n = toNumber(r.n);
    rec.raw += n;
    rec.late += toNumber(r.late);
    if (r.rule !== null) {
      rec.quarantined += n;
      rec.byRule[String(r.rule)] = (rec.byRule[String(r.rule)] ?? 0) + n;
    } else if (r.first) rec.accepted += n;
    else rec.duplicates += n;
  }
  return rec;
}

/** Drops what `cleanSource` left on the connection under the prefix. */
export async function dropCleaned(conn: DuckDBConnection, prefix: string): Promise<void> {
  const t = (name: string) => quotedIdentifier(`${prefix}_${name}`);
  await conn.run(`DROP VIEW IF EXISTS ${t('clean')}`);
  for (const name of ['quarantine', 'ranked', 'raw']) await conn.run(`DROP TABLE IF EXISTS ${t(name)}`);
}

/** JSON documents (arrays, envelopes or single records); a document that is not JSON is one invalid record. */
function jsonReaderSql(def: SourceDefinition, f: SourceFile): string {
  // A document is parsed as few times as possible (each parse of a large envelope costs): an envelope's records come
  // out of one `from_json` into a list of JSON texts (a JSON null stays the text null); anything else is a top-level
  // array of records or a single record.
  const keys = def.records
    ? /^\$((?:\.[A-Za-z_][A-Za-z0-9_]*)+)$/.exec(def.records)?.[1]?.slice(1).split('.')
    : undefined;
  const other = `CASE WHEN json_type(content) = 'ARRAY' THEN json_extract(content, '$[*]')::VARCHAR[] ELSE [content] END`;
  let recs = other;
  if (keys) {
    const shape = keys.reduceRight<unknown>((inner, k) => ({ [k]: inner }), ['JSON']);
    const list = `from_json(content, ${quotedString(JSON.stringify(shape))})${keys.map((k) => `.${quotedIdentifier(k)}`).join('')}`;
    recs = `coalesce(list_transform(${list}::VARCHAR[], x -> coalesce(x, 'null')), ${other})`;
  } else if (def.records) {
    const path = quotedString(def.records);
    recs = `CASE WHEN json_type(content, ${path}) = 'ARRAY' THEN json_extract(content, ${quotedString(`${def.records}[*]`)})::VARCHAR[] ELSE ${other} END`;
  }
  return `SELECT raw FROM (
      SELECT unnest(generate_series(1, len(recs))) AS line_no, unnest(recs) AS raw FROM (
        SELECT CASE WHEN NOT coalesce(json_valid(content), false) THEN [content] ELSE ${recs} END AS recs
        FROM read_text(${quotedString(f.path)})))
    ORDER BY line_no`;
}
