import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { sourceKinds } from '../../activities/sources.js';
import { silverTable } from '../../activities/silver/index.js';
import { parquetScan, partitionScan } from '../../lake/duck.js';
import { addDays } from '../../lake/paths.js';
import { generate, type GenerateResult } from '../../generator/index.js';
import { createDeps } from '../../workers/deps.js';
import { dataNight, testConfig } from '../helpers.js';

const config = testConfig();
const deps = createDeps(config);
const acts = createActivities(deps);
const START = '2026-03-02';
const DAYS = 6;
const STUDENTS = 60;
let gen: GenerateResult;

type Row = Record<string, unknown>;
async function query(sql: string): Promise<Row[]> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    await conn.run(`SET TimeZone = 'UTC'`);
    return (await conn.runAndReadAll(sql)).getRowObjectsJson() as Row[];
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}
const scan = async (layer: 'silver' | 'gold' | 'quarantine', dataset: string, date: string) => {
  const { manifest, paths } = await deps.lake.localFiles(layer, dataset, date);
  return partitionScan(manifest, paths);
};

const nightly = (date: string) => dataNight(acts, date);

describe('multi-modal landing, cleaning and alignment over generated days', () => {
  beforeAll(async () => {
    gen = await generate({ out: config.inbox, students: STUDENTS, days: DAYS, start: START, seed: 7 });
    for (const date of gen.dates) await nightly(date);
  });
  afterAll(() => deps.duck.close());

  it('generates all nine sources', () => {
    const sources = new Set(gen.files.map((f) => f.split('/').at(-2)));
    expect([...sources].sort()).toEqual([...sourceKinds()].sort());
  });

  it('reconciles every source and landing exactly: raw = accepted + duplicates + quarantined, by rule', async () => {
    for (const date of gen.dates) {
      for (const [source, exp] of Object.entries(gen.expected[date]!)) {
        const stats = (await deps.lake.readManifest('quarantine', source, date))!.stats;
        const got = {
          raw: stats.raw,
          accepted: stats.accepted,
          duplicates: stats.duplicates,
          quarantined: stats.quarantined,
          late: stats.late,
        };
        const want = {
          raw: exp.raw,
          accepted: exp.accepted,
          duplicates: exp.duplicates,
          quarantined: exp.quarantined,
          late: exp.late,
        };
        expect({ source, date, ...got }).toEqual({ source, date, ...want });
        const rules = Object.fromEntries(
          Object.entries(stats)
            .filter(([k]) => k.startsWith('rule:'))
            .map(([k, v]) => [k.slice(5), v]),
        );
        expect(rules, `${source} ${date}`).toEqual(exp.byRule);
        expect(stats.raw).toBe(stats.accepted! + stats.duplicates! + stats.quarantined!);
      }
    }
  });

  it('injects every defect kind and finds each under its rule', () => {
    const rules = new Set<string>();
    let duplicates = 0;
    let late = 0;
    for (const bySource of Object.values(gen.expected)) {
      for (const e of Object.values(bySource)) {
        for (const [r, n] of Object.entries(e.byRule)) if (n > 0) rules.add(r);
        duplicates += e.duplicates;
        late += e.late;
      }
    }
    expect([...rules].sort()).toEqual([
      'bad_type',
      'future_timestamp',
      'invalid_json',
      'invalid_offset',
      'malformed_timestamp',
      'missing_required',
      'out_of_term',
      'unknown_student',
    ]);
    expect(duplicates).toBeGreaterThan(0);
    expect(late).toBeGreaterThan(0);
  });

  it('names file, row and field in every quarantined row, and keeps the raw record', async () => {
    const date = gen.dates[1]!;
    const q = await query(`SELECT * FROM ${await scan('quarantine', 'xapi', date)}`);
    expect(q.length).toBe(gen.expected[date]!.xapi!.quarantined);
    for (const r of q) {
      expect(String(r.source_file)).toMatch(/^bronze\/xapi\/dt=\d{4}-\d{2}-\d{2}\/[0-9a-f]{16}-statements\.jsonl$/);
      expect(Number(r.line_no)).toBeGreaterThan(0);
      expect(r.field).toBeTruthy();
      expect(r.reason).toBeTruthy();
    }
    const ts = q.find((r) => r.rule === 'malformed_timestamp')!;
    expect(ts.field).toBe('timestamp');
    const lines = readFileSync(await deps.lake.store.localCopy(String(ts.source_file)), 'utf8').split('\n');
    expect(lines[Number(ts.line_no) - 1]).toBe(ts.raw);
    const csv = await query(`SELECT * FROM ${await scan('quarantine', 'lms-csv', date)} WHERE rule = 'bad_type'`);
    expect(csv[0]).toMatchObject({ field: 'attempts', reason: 'field attempts "two" is not an integer' });
    // Out-of-term reasons quote the timestamp as the record wrote it (JSON lines and CSV alike).
    let outOfTerm = 0;
    for (const source of ['xapi', 'lms-csv']) {
      for (const d of gen.dates) {
        const [r] = await query(`SELECT count(*) AS n,
            count(*) FILTER (WHERE field <> 'timestamp' OR reason IS DISTINCT FROM
              'timestamp ' || json_extract_string(raw, '$.timestamp') || ' is outside the student''s enrolment') AS wrong
          FROM ${await scan('quarantine', source, d)} WHERE rule = 'out_of_term'`);
        outOfTerm += Number(r!.n);
        expect(Number(r!.wrong)).toBe(0);
      }
    }
    expect(outOfTerm).toBeGreaterThan(0);
  });

  it('puts late events in the partition of the day they happened', async () => {
    let lateRows = 0;
    for (const source of ['xapi', 'caliper', 'lms-csv']) {
      for (const date of gen.dates) {
        const table = await scan('silver', silverTable(source), date);
        lateRows += Number((await query(`SELECT count(*) AS n FROM ${table} WHERE landed_date > event_date`))[0]!.n);
        expect(
          Number((await query(`SELECT count(*) AS n FROM ${table} WHERE event_date <> DATE '${date}'`))[0]!.n),
        ).toBe(0);
      }
    }
    const expectedLate = Object.values(gen.expected).reduce(
      (n, s) => n + (s.xapi?.late ?? 0) + (s.caliper?.late ?? 0) + (s['lms-csv']?.late ?? 0),
      0,
    );
    expect(lateRows).toBe(expectedLate);
  });

  it('leaves no name, email, phone or external id in silver or gold, and masks them in forum text', async () => {
    const roster = readFileSync(join(config.inbox, `dt=${START}`, 'roster', 'roster.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1);
    const secrets = roster.flatMap((l) => {
      const [id, first, last, email, phone, lms, sis] = l.split(',');
      return [id!, `${first} ${last}`, email!, phone!, lms!, sis!];
    });
    const last = gen.dates.at(-1)!;
    const tables = [
      'students',
      'xapi',
      'caliper',
      'lms_csv',
      'assessments',
      'video',
      'forum',
      'sensor',
      'timeline',
      'student_day',
    ];
    for (const [layer, dataset] of [
      ...tables.map((t) => ['silver', t] as const),
      ['gold', 'student_features'] as const,
    ]) {
      const text = JSON.stringify(await query(`SELECT * FROM ${await scan(layer, dataset, last)}`));
      for (const s of secrets) expect(text.includes(s), `${layer}/${dataset} contains ${s}`).toBe(false);
    }
    let masked = 0;
    let personal = 0;
    for (const date of gen.dates) {
      const posts = await query(
        `SELECT text FROM ${await scan('silver', 'forum', date)} WHERE landed_date = DATE '${date}'`,
      );
      masked += posts.filter((p) => /\[(NAME|EMAIL|PHONE)\]/.test(String(p.text))).length;
      personal += gen.expected[date]!.forum!.personalData!;
    }
    expect(personal).toBeGreaterThan(0);
    expect(masked).toBeGreaterThanOrEqual(personal);
  });

  it('aligns a dense student × day grid with zero-activity days present', async () => {
    for (const date of gen.dates) {
      const days = await query(
        `SELECT count(*) AS n, count(*) FILTER (WHERE events = 0) AS idle FROM ${await scan('silver', 'student_day', date)}`,
      );
      expect(Number(days[0]!.n)).toBe(STUDENTS);
      expect(Number(days[0]!.idle)).toBeGreaterThan(0);
    }
  });

  it('realigning only the students a late landing touched equals a full realignment', async () => {
    const date = gen.dates[3]!;
    expect(gen.expected[gen.dates[4]!]!.xapi!.late).toBeGreaterThan(0);
    const rows = async (dataset: string) =>
      (await query(`SELECT * FROM ${await scan('silver', dataset, date)}`)).map((r) => JSON.stringify(r)).sort();
    // Later landings realigned their late students on this date as overlay slices, not by rewriting the partition.
    const overlays = (await deps.lake.readManifest('silver', 'timeline', date))!.files.filter((f) => f.overlayKey);
    expect(overlays.map((f) => f.slice)).toContain(`realigned=${gen.dates[4]}`);
    const before = { timeline: await rows('timeline'), days: await rows('student_day') };
    await acts.alignTimeline({ dates: [date], runId: 'full', writeId: 'run-full' });
    expect((await deps.lake.readManifest('silver', 'timeline', date))!.files.filter((f) => f.overlayKey)).toEqual([]);
    expect(await rows('timeline')).toEqual(before.timeline);
    expect(await rows('student_day')).toEqual(before.days);
  });

  it('recomputing only the realigned students of earlier as-of dates equals recomputing them whole', async () => {
    // Late events of the last landings reached back into earlier days: those days' features were recomputed for the
    // realigned students only, the rest copied.
    const last = gen.dates.at(-1)!;
    const partial: string[] = [];
    for (const d of gen.dates.slice(0, -1)) {
      const m = (await deps.lake.readManifest('gold', 'student_features', d))!;
      if (m.stats.studentsRecomputed !== undefined) partial.push(d);
    }
    expect(partial.length).toBeGreaterThan(0);
    const rows = async (d: string) =>
      (await query(`SELECT * FROM ${await scan('gold', 'student_features', d)}`)).map((r) => JSON.stringify(r)).sort();
    const before = new Map<string, string[]>();
    for (const d of partial) before.set(d, await rows(d));
    await acts.buildGoldFeatures({ dates: partial, runId: 'full-gold', writeId: 'run-full-gold' });
    for (const d of partial) {
      expect((await deps.lake.readManifest('gold', 'student_features', d))!.stats.studentsRecomputed).toBeUndefined();
      expect(await rows(d), d).toEqual(before.get(d));
    }
    expect(last > partial.at(-1)!).toBe(true);
  });

  it('ties each submission to the study session before it', async () => {
    const date = gen.dates[2]!;
    const rows = await query(`WITH t AS (SELECT * FROM ${await scan('silver', 'timeline', date)})
      SELECT strftime(a.ts_utc, '%Y-%m-%dT%H:%M:%S') AS submitted, strftime(max(s.ts_utc), '%Y-%m-%dT%H:%M:%S') AS session_end
      FROM t a JOIN t s ON s.student_key = a.student_key AND s.session_no = a.study_session_no
      WHERE a.modality = 'assessment' GROUP BY a.event_id, a.ts_utc`);
    expect(rows.length).toBeGreaterThan(0);
    for (const r of rows) expect(String(r.session_end) <= String(r.submitted)).toBe(true);
  });

  it('counts re-watched video once: student_day matches merged intervals computed independently', async () => {
    const date = gen.dates[3]!;
    // From the silver video rows, events at the same instant in the order they were logged (landing, file, line).
    const ev = await query(`SELECT student_key, media_id AS object_id, event AS action,
        CASE WHEN event = 'seek' THEN seek_from ELSE position END AS position,
        count(*) OVER (PARTITION BY student_key, media_id, ts_utc) > 1 AS tied
      FROM ${await scan('silver', 'video', date)}
      ORDER BY student_key, media_id, ts_utc, landed_date, source_file, source_line`);
    // Same-instant events exist, so their order matters here.
    expect(ev.filter((e) => e.tied).length).toBeGreaterThan(0);
    const byKey = new Map<string, Row[]>();
    for (const e of ev) {
      const key = `${String(e.student_key)}|${String(e.object_id)}`;
      byKey.set(key, [...(byKey.get(key) ?? []), e]);
    }
    const minutes = new Map<string, number>();
    let rewatched = 0;
    for (const [key, list] of byKey) {
      if (list.some((e) => e.action === 'seek')) rewatched++;
      const iv: [number, number][] = [];
      for (let i = 0; i + 1 < list.length; i++) {
        const a = list[i]!;
        const b = list[i + 1]!;
        if (
          a.action === 'play' &&
          ['pause', 'seek', 'ended'].includes(String(b.action)) &&
          Number(b.position) > Number(a.position)
        ) {
          iv.push([Number(a.position), Number(b.position)]);
        }
      }
      iv.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
      let total = 0;
      let cur: [number, number] | null = null;
      for (const x of iv) {
        if (cur && x[0] <= cur[1]) cur[1] = Math.max(cur[1], x[1]);
        else {
          if (cur) total += cur[1] - cur[0];
          cur = [x[0], x[1]];
        }
      }
      if (cur) total += cur[1] - cur[0];
      const student = key.split('|')[0]!;
      minutes.set(student, (minutes.get(student) ?? 0) + total / 60);
    }
    expect(rewatched).toBeGreaterThan(0);
    const days = await query(`SELECT student_key, video_minutes FROM ${await scan('silver', 'student_day', date)}`);
    for (const d of days) expect(Number(d.video_minutes)).toBeCloseTo(minutes.get(String(d.student_key)) ?? 0, 6);
  });

  it('lms-csv: gold practice features equal a plain TypeScript recomputation over the same rows', async () => {
    const asOf = gen.dates.at(-1)!;
    const rows: Row[] = [];
    for (let k = 0; k < 7; k++) {
      const files = (await deps.lake.localFiles('silver', 'lms_csv', addDays(asOf, -k))).paths;
      if (files.length) {
        rows.push(
          ...(await query(
            `SELECT student_key, problem_id, correct, attempts, strftime(event_date, '%Y-%m-%d') AS day FROM ${parquetScan(files)}`,
          )),
        );
      }
    }
    const agg = new Map<
      string,
      { n: number; correct: number; attempts: number; itemsPerDay: Map<string, Set<string>> }
    >();
    for (const r of rows) {
      const a = agg.get(String(r.student_key)) ?? {
        n: 0,
        correct: 0,
        attempts: 0,
        itemsPerDay: new Map<string, Set<string>>(),
      };
      a.n++;
      if (r.correct === true) a.correct++;
      a.attempts += Number(r.attempts ?? 0);
      const set = a.itemsPerDay.get(String(r.day)) ?? new Set<string>();
      set.add(String(r.problem_id));
      a.itemsPerDay.set(String(r.day), set);
      agg.set(String(r.student_key), a);
    }
    const gold = await query(
      `SELECT student_key, practice_events_7d, practice_accuracy_7d, attempts_per_item_7d FROM ${await scan('gold', 'student_features', asOf)}`,
    );
    expect(gold.length).toBe(STUDENTS);
    let compared = 0;
    for (const g of gold) {
      const a = agg.get(String(g.student_key));
      expect(Number(g.practice_events_7d)).toBe(a?.n ?? 0);
      if (!a) continue;
      compared++;
      expect(Number(g.practice_accuracy_7d)).toBeCloseTo(a.correct / a.n, 9);
      const items = [...a.itemsPerDay.values()].reduce((n, s) => n + s.size, 0);
      expect(Number(g.attempts_per_item_7d)).toBeCloseTo(a.attempts / items, 9);
    }
    expect(compared).toBeGreaterThan(STUDENTS / 2);
  });

  it('ingesting the same files twice changes nothing; re-running a landing gives the same rows', async () => {
    const date = gen.dates[4]!;
    const sql = async () =>
      `SELECT count(*) AS n, sum(hash(event_id)) AS h FROM ${await scan('silver', 'xapi', addDays(date, -1))}`;
    const before = await query(await sql());
    const again = await acts.landBronzeFiles({ date, runId: 'again' });
    expect(again.filesAdded).toBe(0);
    await acts.buildSilverTables({ date, runId: 'again', writeId: 'run-again' });
    expect(await query(await sql())).toEqual(before);
    expect((await deps.lake.readManifest('quarantine', 'xapi', date))!.stats.accepted).toBe(
      gen.expected[date]!.xapi!.accepted,
    );
  });

  it('takes the roster tables of the night before over while the roster is unchanged, and rebuilds them from a new one', async () => {
    const rows = async (date: string) =>
      query(`SELECT * FROM ${await scan('silver', 'students', date)} ORDER BY student_key`);
    const [first, second] = [gen.dates[0]!, gen.dates[1]!];
    const m1 = (await deps.lake.readManifest('silver', 'students', first))!;
    const m2 = (await deps.lake.readManifest('silver', 'students', second))!;
    expect(m2.stats.rosterSnapshot).toBe(m1.stats.rosterSnapshot);
    expect(m2.files[0]!.sha256).toBe(m1.files[0]!.sha256);
    expect(m2.runId).toBe(`r-${second}`);
    expect(await rows(second)).toEqual(await rows(first));

    // A corrected roster lands: one more student, whose events would otherwise be unknown.
    const date = addDays(START, DAYS + 5);
    const roster = readFileSync(join(config.inbox, `dt=${START}`, 'roster', 'roster.csv'), 'utf8').trimEnd();
    const extra = roster
      .split('\n')[1]!
      .replace(/^[^,]+/, 'S999999')
      .replace(/lms-\d+/, 'lms-999999');
    mkdirSync(join(config.inbox, `dt=${date}`, 'roster'), { recursive: true });
    writeFileSync(join(config.inbox, `dt=${date}`, 'roster', 'roster.csv'), `${roster}\n${extra}\n`);
    await acts.landBronzeFiles({ date, runId: 'roster' });
    await acts.buildSilverTables({ date, runId: 'roster', writeId: 'run-roster' });
    const m3 = (await deps.lake.readManifest('silver', 'students', date))!;
    expect(m3.stats.rosterSnapshot).not.toBe(m1.stats.rosterSnapshot);
    expect(m3.stats.students).toBe(m1.stats.students! + 1);
    expect((await rows(date)).length).toBe((await rows(first)).length + 1);
  });

  it('a day with no data succeeds and says so', async () => {
    const empty = addDays(START, DAYS + 3);
    const s = await acts.buildSilverTables({ date: empty, runId: 'empty', writeId: 'run-empty' });
    expect(s.notes).toEqual([`no event data landed for ${empty}`]);
    expect(s.reconciliation.every((r) => r.raw === 0)).toBe(true);
  });
});
