import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { parquetScan } from '../../lake/duck.js';
import { generate, type GenerateResult } from '../../generator/index.js';
import { createDeps } from '../../workers/deps.js';
import { testConfig } from '../helpers.js';

const config = testConfig();
const deps = createDeps(config);
const acts = createActivities(deps);
let gen: GenerateResult;
const date = '2026-03-02';

async function rows(paths: string[], sql = 'SELECT * FROM t'): Promise<Record<string, unknown>[]> {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    await conn.run(`CREATE VIEW t AS SELECT * FROM ${parquetScan(paths)}`);
    return (await conn.runAndReadAll(sql)).getRowObjectsJson() as Record<string, unknown>[];
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

describe('bronze → silver → gold activities on one generated day', () => {
  beforeAll(async () => {
    gen = generate({ out: config.inbox, students: 60, days: 2, start: date, seed: 7 });
    await acts.landBronzeFiles({ date, runId: 'r1' });
    await acts.buildSilverTables({ date, runId: 'r1', writeId: 'run-r1' });
    await acts.buildGoldFeatures({ date, runId: 'r1', writeId: 'run-r1' });
  });
  afterAll(() => deps.duck.close());

  it('reconciles exactly with the defects the generator injected', async () => {
    const exp = gen.expected[date]!.xapi;
    const q = await deps.lake.readManifest('quarantine', 'xapi', date);
    expect(q?.stats).toMatchObject({
      raw: exp.raw,
      accepted: exp.accepted,
      duplicates: exp.duplicates,
      quarantined: exp.quarantined,
    });
    for (const [rule, n] of Object.entries(exp.byRule)) expect(q?.stats[`rule:${rule}`] ?? 0).toBe(n);
    expect(exp.raw).toBe(exp.accepted + exp.duplicates + exp.quarantined);
    expect((await deps.lake.readManifest('silver', 'xapi_statements', date))?.rowCount).toBe(exp.accepted);
  });

  it('quarantines each bad row with its rule, field and a readable reason', async () => {
    const { paths } = await deps.lake.localFiles('quarantine', 'xapi', date);
    const q = await rows(paths);
    expect(q.length).toBe(gen.expected[date]!.xapi.quarantined);
    for (const r of q) {
      expect(String(r.source_file)).toMatch(/^bronze\/xapi\/dt=2026-03-02\/[0-9a-f]{16}-statements\.jsonl$/);
      expect(Number(r.line_no)).toBeGreaterThan(0);
      expect(r.reason).toBeTruthy();
      expect(r.field).toBeTruthy();
    }
    const ts = q.find((r) => r.rule === 'malformed_timestamp')!;
    expect(ts.field).toBe('timestamp');
    expect(String(ts.reason)).toMatch(/^field timestamp ".*" is not an ISO 8601 date-time$/);
    // The quarantined raw line is the line as it stands in the bronze file.
    const bronze = readFileSync(await deps.lake.store.localCopy(String(ts.source_file)), 'utf8').split('\n');
    expect(bronze[Number(ts.line_no) - 1]).toBe(ts.raw);
  });

  it('leaves no name, email or external id in silver or gold', async () => {
    const roster = readFileSync(join(config.inbox, `dt=${date}`, 'roster', 'roster.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1);
    const secrets = roster.flatMap((l) => {
      const [id, first, last, email, lms] = l.split(',');
      return [id!, `${first} ${last}`, email!, lms!];
    });
    for (const [layer, dataset] of [
      ['silver', 'xapi_statements'],
      ['silver', 'students'],
      ['gold', 'student_daily_features'],
    ] as const) {
      const { paths } = await deps.lake.localFiles(layer, dataset, date);
      const text = JSON.stringify(await rows(paths));
      for (const s of secrets) expect(text.includes(s), `${layer}/${dataset} contains ${s}`).toBe(false);
    }
  });

  it('writes one gold row per roster student and matches a plain recomputation', async () => {
    const gold = await rows((await deps.lake.localFiles('gold', 'student_daily_features', date)).paths);
    expect(gold.length).toBe(60);
    const events = await rows(
      (await deps.lake.localFiles('silver', 'xapi_statements', date)).paths,
      'SELECT student_key, verb, success, epoch_ms(ts_utc) AS t FROM t',
    );
    const byStudent = new Map<string, { n: number; answered: number; correct: number; ts: number[] }>();
    for (const e of events) {
      const s = byStudent.get(String(e.student_key)) ?? { n: 0, answered: 0, correct: 0, ts: [] };
      s.n++;
      if (String(e.verb).endsWith('/answered')) {
        s.answered++;
        if (e.success === true) s.correct++;
      }
      s.ts.push(Number(e.t));
      byStudent.set(String(e.student_key), s);
    }
    let active = 0;
    for (const g of gold) {
      const s = byStudent.get(String(g.student_key));
      expect(Number(g.events)).toBe(s?.n ?? 0);
      expect(Number(g.answered)).toBe(s?.answered ?? 0);
      expect(Number(g.correct)).toBe(s?.correct ?? 0);
      if (!s) continue;
      active++;
      const ts = s.ts.sort((a, b) => a - b);
      let minutes = 0;
      for (let i = 1; i < ts.length; i++) {
        const gap = (ts[i]! - ts[i - 1]!) / 1000;
        if (gap <= config.pipeline.sessionGapMinutes * 60) minutes += gap / 60;
      }
      expect(Number(g.active_minutes)).toBeCloseTo(minutes, 2);
      if (s.answered) expect(Number(g.accuracy)).toBeCloseTo(s.correct / s.answered, 9);
    }
    expect(active).toBe(byStudent.size);
  });

  it('lands a day twice without adding anything, and a day without xAPI still succeeds', async () => {
    const again = await acts.landBronzeFiles({ date, runId: 'r2' });
    expect(again.filesAdded).toBe(0);
    expect(again.sources.every((s) => s.filesAlreadyLanded > 0)).toBe(true);
    const empty = await acts.buildSilverTables({ date: '2026-03-10', runId: 'r3', writeId: 'run-r3' });
    expect(empty.note).toBe('no xapi data landed for 2026-03-10');
    expect(empty.reconciliation[0]).toMatchObject({ raw: 0, accepted: 0 });
  });
});
