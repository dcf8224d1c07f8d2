import { DuckDBInstance } from '@duckdb/node-api';
import { beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { studentKey } from '../../activities/identity.js';
import { ModelRegistry, type ModelCard } from '../../activities/models/registry.js';
import { generate, type GenerateResult } from '../../generator/index.js';
import { parquetScan } from '../../lake/duck.js';
import { addDays } from '../../lake/paths.js';
import { createDeps } from '../../workers/deps.js';
import { testConfig } from '../helpers.js';

describe('risk labels at a prediction horizon', () => {
  const config = testConfig({ EDLAKE_HORIZON_DAYS: '2', EDLAKE_MIN_HORIZON_EXAMPLES: '20' });
  const deps = createDeps(config);
  const a = createActivities(deps);
  const registry = new ModelRegistry(deps.lake.store);
  let gen: GenerateResult;
  let early: ModelCard;
  let late: ModelCard;

  beforeAll(async () => {
    // A six-day term inside a six-day drop: withdrawals decided on days 3–4, results on day 5.
    gen = await generate({ out: config.inbox, students: 160, days: 6, start: '2031-05-05', seed: 9, termDays: 6 });
    for (const date of gen.dates) {
      const w = { runId: `r-${date}`, writeId: `w-${date}` };
      await a.landBronzeFiles({ date, runId: w.runId });
      const s = await a.buildSilverTables({ date, ...w });
      const dates = [...new Set([...s.touchedDates.filter((d) => d <= date), date])].sort();
      await a.alignTimeline({ dates, landingDate: date, ...w });
      await a.buildGoldFeatures({ dates, ...w });
    }
    const e = await a.trainChallenger({ name: 'risk', date: gen.dates[2]!, reason: 'test: early' });
    const l = await a.trainChallenger({ name: 'risk', date: gen.dates[5]!, reason: 'test: term decided' });
    early = (await registry.card('risk', e.version))!;
    late = (await registry.card('risk', l.version))!;
  }, 300_000);

  it('the generator decides withdrawals in the second half of a term that ends inside the drop, then stops them', async () => {
    const decided = Object.values(gen.decided);
    expect(decided.length).toBe(160);
    const withdrawn = Object.entries(gen.decided).filter(([, d]) => d.outcome === 'withdrawn');
    expect(withdrawn.length).toBeGreaterThan(0);
    for (const [, d] of withdrawn) expect([gen.dates[3], gen.dates[4]]).toContain(d.date);
    for (const [, d] of Object.entries(gen.decided).filter(([, d]) => d.outcome !== 'withdrawn'))
      expect(d.date).toBe(gen.dates[5]);
    // No activity of a withdrawn student after the day of the decision.
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    const after = gen.dates.slice(4).flatMap((d) => deps.lake.localFiles('silver', 'student_day', d));
    const files = (await Promise.all(after)).flatMap((x) => x.paths);
    const gone = withdrawn
      .filter(([, d]) => d.date === gen.dates[3])
      .map(([id]) => `'${studentKey(config.pseudonymKey, id)}'`);
    expect(gone.length).toBeGreaterThan(0);
    const r = (
      await conn.runAndReadAll(
        `SELECT count(*) FILTER (WHERE events > 0), count(*) FROM ${parquetScan(files)} WHERE student_key IN (${gone.join(',')})`,
      )
    ).getRows();
    expect(Number(r[0]![0])).toBe(0);
    expect(Number(r[0]![1])).toBeGreaterThan(0); // still on the grid, with zero activity
  });

  it('early in the term, earlier-term outcomes label the night’s features, and the card says so', () => {
    expect(early.labels?.source).toBe('earlier_term');
    expect(early.labels?.why).toMatch(/earlier-term/);
    expect(early.trainingWindow.to).toBe(gen.dates[2]);
  });

  it('once outcomes are decided in the lake, each is learned from the features the horizon before its decision', () => {
    expect(late.labels?.source).toBe('horizon');
    expect(late.labels?.horizonDays).toBe(2);
    // Every decided student had a feature night two days before the decision (they were active and on the grid).
    expect(late.labels?.examples).toBe(160);
    const decisionDates = [...new Set(Object.values(gen.decided).map((d) => d.date))].sort();
    const nights = decisionDates.map((d) => addDays(d, -2));
    expect(late.trainingWindow.to).toBe(nights.at(-1));
    for (const n of nights) expect(late.inputs.some((u) => u.includes(`student_features/dt=${n}`))).toBe(true);
    // No features from the night of the decision or later were read.
    expect(late.inputs.some((u) => u.includes(`student_features/dt=${gen.dates[5]}`))).toBe(false);
    const holdout = late.metrics.holdout as { n: number; prevalence: number; rocAuc: number };
    expect(holdout.n).toBeGreaterThan(10);
    expect(holdout.prevalence).toBeGreaterThan(0);
    expect(holdout.prevalence).toBeLessThan(1);
    expect(late.fairness).toHaveProperty('equalizedOddsDifference');
  });
});
