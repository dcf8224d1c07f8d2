import { mkdirSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { ingestFiles } from '../../activities/bronze.js';
import { generate } from '../../generator/index.js';
import { addDays } from '../../lake/paths.js';
import { createDeps } from '../../workers/deps.js';
import { tempDir, testConfig } from '../helpers.js';

const config = testConfig();
const deps = createDeps(config);
const acts = createActivities(deps);
const START = '2033-02-01';
let day = 1;
/** Each case lands on a date of its own, after the roster. */
const nextDate = () => addDays(START, day++);
const dir = tempDir('bad-input');

/** Lands one file for a source on a fresh date and builds silver; returns that source's reconciliation. */
async function landAndClean(source: string, name: string, body: string | Buffer) {
  const date = nextDate();
  const path = join(dir, `${date}-${name}`);
  writeFileSync(path, body);
  await ingestFiles(deps.lake, { source, date, paths: [path], runId: `bad-${date}` });
  const s = await acts.buildSilverTables({ date, runId: `bad-${date}`, writeId: `bad-${date}` });
  return s.reconciliation.find((r) => r.source === source)!;
}

const csvCell = (v: string) => `"${v.replaceAll('"', '""')}"`;
/** Values that have broken pipelines: SQL, huge and special numbers, odd unicode, empty and blank strings. */
const nasty = fc.oneof(
  fc.constantFrom(
    "'; DROP TABLE silver; --",
    "Robert'); DELETE FROM x;--",
    '1e309',
    '-1e309',
    'NaN',
    'Infinity',
    '-0',
    '99999999999999999999999999999',
    '',
    '   ',
    '\u0000',
    '\u202e',
    '😀',
    'null',
    '{"a":',
    '2026-02-30T25:61:00Z',
  ),
  fc.string({ maxLength: 40 }),
  fc.double().map(String),
  fc.integer().map(String),
);

beforeAll(async () => {
  await generate({ out: config.inbox, students: 20, days: 1, start: START, seed: 3 });
  await acts.landBronzeFiles({ date: START, runId: 'r0' });
  await acts.buildSilverTables({ date: START, runId: 'r0', writeId: 'w0' });
  mkdirSync(dir, { recursive: true });
}, 120_000);

describe('property: malformed input never crashes a stage and always reconciles', () => {
  it('LMS CSV exports with arbitrary values', async () => {
    const lmsIds = ['lms-100001', 'lms-100002', 'lms-100003', 'lms-999999'];
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            student_id: fc.oneof(fc.constantFrom(...lmsIds), nasty),
            timestamp: fc.oneof(fc.constant(`${addDays(START, 0)} 10:00:00`), nasty),
            problem_id: nasty,
            correct: fc.oneof(fc.constantFrom('1', '0', 'true'), nasty),
            attempts: nasty,
            time_spent: nasty,
          }),
          { minLength: 1, maxLength: 30 },
        ),
        async (rows) => {
          const header = 'student_id,timestamp,problem_id,correct,attempts,time_spent';
          const body = [header, ...rows.map((r) => Object.values(r).map(csvCell).join(','))].join('\n') + '\n';
          const rec = await landAndClean('lms-csv', 'export.csv', body);
          expect(rec.raw).toBe(rows.length);
          expect(rec.accepted + rec.duplicates + rec.quarantined).toBe(rec.raw);
        },
      ),
      { numRuns: 12, seed: 7 },
    );
  }, 300_000);

  it('xAPI statements as JSON Lines, including lines that are not JSON', async () => {
    const statement = fc.record(
      {
        id: fc.oneof(fc.uuid(), nasty),
        actor: fc.oneof(
          fc.record({ mbox: fc.oneof(fc.constant('mailto:nobody@example.org'), nasty) }),
          fc.record({ account: fc.record({ homePage: nasty, name: nasty }) }),
          nasty,
        ),
        verb: fc.oneof(fc.record({ id: nasty }), nasty),
        object: fc.record({ id: nasty }),
        timestamp: nasty,
        result: fc.record({ score: fc.record({ scaled: fc.oneof(fc.double(), nasty) }), success: fc.anything() }),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            statement.map((s) => JSON.stringify(s)),
            nasty.filter((s) => s.trim() !== '' && !s.includes('\n')),
          ),
          {
            minLength: 1,
            maxLength: 30,
          },
        ),
        async (lines) => {
          const rec = await landAndClean('xapi', 'statements.jsonl', lines.join('\n') + '\n');
          expect(rec.raw).toBe(lines.length);
          expect(rec.accepted + rec.duplicates + rec.quarantined).toBe(rec.raw);
        },
      ),
      { numRuns: 12, seed: 11 },
    );
  }, 300_000);
});

describe('explicit bad files', () => {
  const line = (o: object) => JSON.stringify(o);
  const good = (i: number) =>
    line({
      id: `00000000-0000-4000-8000-00000000000${i}`,
      actor: { mbox: 'mailto:nobody@example.org' },
      verb: { id: 'http://adlnet.gov/expapi/verbs/answered' },
      object: { id: 'http://example.org/q1' },
      timestamp: `${START}T10:00:00Z`,
    });

  it('an empty file lands and counts nothing', async () => {
    const rec = await landAndClean('xapi', 'empty.jsonl', '');
    expect(rec.raw).toBe(0);
    // A CSV export with no bytes, and one with a header only.
    expect((await landAndClean('lms-csv', 'empty.csv', '')).raw).toBe(0);
    expect((await landAndClean('lms-csv', 'header.csv', 'student_id,timestamp,problem_id\n')).raw).toBe(0);
  });

  it('a byte-order mark, UTF-16 and invalid UTF-8 end accepted or quarantined, never lost', async () => {
    const bom = await landAndClean('xapi', 'bom.jsonl', `\uFEFF${good(1)}\n${good(2)}\n`);
    expect(bom.raw).toBe(2);
    expect(bom.accepted + bom.duplicates + bom.quarantined).toBe(2);
    const utf16 = await landAndClean('xapi', 'utf16.jsonl', Buffer.from(`\uFEFF${good(3)}\n`, 'utf16le'));
    expect(utf16.raw).toBe(1);
    expect(utf16.accepted + utf16.duplicates + utf16.quarantined).toBe(1);
    const invalid = await landAndClean(
      'xapi',
      'invalid.jsonl',
      Buffer.concat([
        Buffer.from(`${good(4)}\n{"id":"x","verb":"`),
        Buffer.from([0xff, 0xfe, 0xc3]),
        Buffer.from('"}\n'),
      ]),
    );
    expect(invalid.raw).toBe(2);
    expect(invalid.accepted + invalid.duplicates + invalid.quarantined).toBe(2);
    // The same for a CSV export (its dialect is sniffed before it is read).
    const csv = `student_id,timestamp,problem_id,correct,attempts,time_spent\nlms-100001,${START} 10:00:00,p1,1,1,30\n`;
    for (const [name, body] of [
      ['bom.csv', `\uFEFF${csv}`],
      ['utf16.csv', Buffer.from(`\uFEFF${csv}`, 'utf16le')],
      [
        'invalid.csv',
        Buffer.concat([
          Buffer.from(csv),
          Buffer.from('lms-100002,'),
          Buffer.from([0xff, 0xfe]),
          Buffer.from(',p2,1,1,30\n'),
        ]),
      ],
    ] as const) {
      const rec = await landAndClean('lms-csv', name, body);
      expect(rec.raw, name).toBe(name === 'invalid.csv' ? 2 : 1);
      expect(rec.accepted + rec.duplicates + rec.quarantined, name).toBe(rec.raw);
    }
  });

  it('Caliper documents of every shape: envelopes, arrays, single events, odd data and documents that are not JSON', async () => {
    const event = (n: number) => ({
      '@context': 'http://purl.imsglobal.org/ctx/caliper/v1p2',
      id: `urn:uuid:00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
      type: 'ViewEvent',
      actor: 'https://lms.example.edu/users/lms-100001',
      action: 'Viewed',
      object: 'https://lms.example.edu/course/MATH101/page/1',
      eventTime: `${START}T10:00:00.000Z`,
    });
    const doc = (name: string, body: unknown) => landAndClean('caliper', name, JSON.stringify(body));
    const counts = async (name: string, body: unknown) => {
      const r = await doc(name, body);
      expect(r.raw).toBe(r.accepted + r.duplicates + r.quarantined);
      return { raw: r.raw, accepted: r.accepted, invalid: r.byRule.invalid_json ?? 0 };
    };
    const envelope = { sensor: 'https://lms.example.edu/sensor', sendTime: `${START}T23:00:00.000Z` };
    expect(await counts('envelope.json', { ...envelope, data: [event(1), event(2)] })).toEqual({
      raw: 2,
      accepted: 2,
      invalid: 0,
    });
    expect(await counts('array.json', [event(3), event(4), event(5)])).toEqual({ raw: 3, accepted: 3, invalid: 0 });
    expect(await counts('single.json', event(6))).toEqual({ raw: 1, accepted: 1, invalid: 0 });
    expect(await counts('empty-envelope.json', { ...envelope, data: [] })).toEqual({ raw: 0, accepted: 0, invalid: 0 });
    // Elements that are not events — a number, a string, null — are records of their own, quarantined as unreadable.
    expect(await counts('odd-data.json', { ...envelope, data: [event(7), 1, 'a', null] })).toEqual({
      raw: 4,
      accepted: 1,
      invalid: 3,
    });
    const odd = await deps.lake.localFiles('quarantine', 'caliper', addDays(START, day - 1));
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    const raws = (
      await conn.runAndReadAll(`SELECT raw FROM read_parquet(['${odd.paths.join("', '")}']) ORDER BY line_no`)
    )
      .getRows()
      .map((r) => String(r[0]));
    conn.closeSync();
    expect(raws).toEqual(['1', '"a"', 'null']);
    // An envelope whose data is not a list is one record (it is no event: quarantined).
    expect(await counts('data-object.json', { ...envelope, data: event(8) })).toEqual({
      raw: 1,
      accepted: 0,
      invalid: 0,
    });
    const broken = await landAndClean('caliper', 'broken.json', '{"data": [{"id": 1}');
    expect(broken.raw).toBe(1);
    expect(broken.byRule.invalid_json).toBe(1);
  });

  it('CSV dialects and SQL-looking column names: the detected dialect and every header are read as they are', async () => {
    // Semicolons, CRLF line ends, quoted delimiters, and an extra column named like SQL (with a quote in it).
    const header = `student_id;timestamp;problem_id;correct;attempts;time_spent;"it's'); DROP TABLE t; --"`;
    // Problem 4 is named with RFC 4180's doubled quotes.
    const rows = Array.from(
      { length: 9 },
      (_, i) => `lms-10000${1 + (i % 2)};${START} 10:0${i}:00;"p;${i === 4 ? '""4""' : i}";${i % 2};${i + 1};30;x${i}`,
    );
    const rec = await landAndClean('lms-csv', 'dialect.csv', [header, ...rows].join('\r\n') + '\r\n');
    expect(rec).toMatchObject({ raw: 9, accepted: 9, duplicates: 0, quarantined: 0 });
    const { paths } = await deps.lake.localFiles('silver', 'lms_csv', START);
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    const got = (
      await conn.runAndReadAll(
        `SELECT problem_id, correct, attempts FROM read_parquet(['${paths.join("', '")}'])
        WHERE source_file LIKE '%dialect.csv' ORDER BY problem_id`,
      )
    ).getRows();
    conn.closeSync();
    expect(got).toEqual(
      Array.from({ length: 9 }, (_, i) => [`p;${i === 4 ? '"4"' : i}`, i % 2 === 1, i + 1]).sort((a, b) =>
        String(a[0]) < String(b[0]) ? -1 : 1,
      ),
    );
  });

  it('deeply nested JSON and a 50 MB single line end accepted or quarantined, not fatal', async () => {
    const deep = '{"a":'.repeat(5000) + '1' + '}'.repeat(5000);
    const huge = line({ id: 'big', actor: { mbox: 'mailto:nobody@example.org' }, text: 'x'.repeat(50 * 1024 * 1024) });
    const rec = await landAndClean('xapi', 'odd.jsonl', `${deep}\n${huge}\n${good(5)}\n`);
    expect(rec.raw).toBe(3);
    expect(rec.accepted + rec.duplicates + rec.quarantined).toBe(3);
  }, 120_000);

  it('a truncated gzip is refused at landing with the file named, and nothing else is lost', async () => {
    const full = gzipSync(Buffer.from(`${good(6)}\n${good(7)}\n`));
    const date = nextDate();
    const path = join(dir, `${date}-cut.jsonl.gz`);
    writeFileSync(path, full.subarray(0, full.length - 12));
    await ingestFiles(deps.lake, { source: 'xapi', date, paths: [path], runId: `cut-${date}` });
    const err = await acts.buildSilverTables({ date, runId: 'cut', writeId: 'cut' }).catch((e: Error) => e);
    if (err instanceof Error) expect(err.message).toMatch(/cut\.jsonl\.gz/);
    else {
      const rec = err.reconciliation.find((r) => r.source === 'xapi')!;
      expect(rec.accepted + rec.duplicates + rec.quarantined).toBe(rec.raw);
    }
    // The raw file stays in bronze, unchanged.
    expect((await deps.lake.readManifest('bronze', 'xapi', date))!.files).toHaveLength(1);
  });

  it('path traversal and odd characters in file and source names are refused or kept inside the lake', async () => {
    const date = nextDate();
    const odd = join(dir, `${date} ünïcødé ; rm -rf $(x) 'quote'.jsonl`);
    writeFileSync(odd, `${good(8)}\n`);
    const res = await ingestFiles(deps.lake, { source: 'xapi', date, paths: [odd], runId: 'odd' });
    expect(res.added).toHaveLength(1);
    expect(res.added[0]!.key.startsWith(`bronze/xapi/dt=${date}/`)).toBe(true);
    expect(res.added[0]!.key).not.toMatch(/\.\.|\s|;|\$|'/);
    await expect(ingestFiles(deps.lake, { source: '../../etc', date, paths: [odd], runId: 'odd' })).rejects.toThrow(
      /unknown source kind/,
    );
    await expect(
      ingestFiles(deps.lake, { source: "xapi'; DROP TABLE x; --", date, paths: [odd], runId: 'odd' }),
    ).rejects.toThrow(/unknown source kind/);
  });
});
