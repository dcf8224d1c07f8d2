import { DuckDBInstance } from '@duckdb/node-api';
import { beforeAll, describe, expect, it } from 'vitest';
import { FEATURES } from '../../activities/features.js';
import { parquetScan } from '../../lake/duck.js';
import { connectClient } from '../../cli/client.js';
import { startNightly } from '../../cli/runs.js';
import { createActivities } from '../../activities/index.js';
import type { Config } from '../../config/index.js';
import { generate } from '../../generator/index.js';
import type { NightlySummary } from '../../workflows/contracts.js';
import { createDeps } from '../../workers/deps.js';
import { startWorker } from '../../workers/worker.js';
import { testConfig, uniqueSuffix } from '../helpers.js';

/** Runs every day of a generated drop through the nightly workflow and returns each night's summary. */
async function runNights(config: Config, start: string, driftDay?: number): Promise<NightlySummary[]> {
  const gen = await generate({ out: config.inbox, students: 150, days: 7, start, seed: 5, driftDay });
  const client = await connectClient(config);
  const worker = await startWorker(config);
  try {
    const out: NightlySummary[] = [];
    for (const date of gen.dates) {
      const handle = await startNightly(client.client, config, date);
      out.push((await handle.result()) as NightlySummary);
    }
    return out;
  } finally {
    await worker.stop();
    await client.close();
  }
}

describe('drift detection and retraining in the nightly run', () => {
  const configs = {
    shift: testConfig({ EDLAKE_TASK_QUEUE: `test-drift-${uniqueSuffix()}` }),
    steady: testConfig({ EDLAKE_TASK_QUEUE: `test-steady-${uniqueSuffix()}` }),
  };
  let shift: NightlySummary[];
  let steady: NightlySummary[];
  beforeAll(async () => {
    // Distinct dates: workflow IDs are nightly-<date> on the shared test server.
    shift = await runNights(configs.shift, '2031-03-03', 5);
    steady = await runNights(configs.steady, '2031-04-07');
  }, 600_000);

  it('trains the first models once students have enough history, then scores every night', () => {
    for (const nights of [shift, steady]) {
      const first = nights.findIndex((n) => n.retrains.length > 0);
      expect(first).toBeGreaterThanOrEqual(1);
      expect(nights[first]!.retrains.map((r) => [r.name, r.promoted])).toEqual([
        ['risk', true],
        ['segments', true],
      ]);
      for (const n of nights.slice(first)) {
        expect(n.stagesDone).toContain('scoring');
        expect(n.rows.scored).toBeGreaterThan(0);
        expect(n.models.risk).toBeGreaterThanOrEqual(1);
      }
    }
  });

  it('a generated shift triggers drift and a retrain on the night it starts', () => {
    const night = shift[5]!;
    expect(night.drift?.drifted).toBe(true);
    expect(night.drift?.reasons.some((r) => /PSI/.test(r))).toBe(true);
    expect(night.retrains.map((r) => r.name).sort()).toEqual(['risk', 'segments']);
    for (const n of shift.slice(0, 5)) expect(n.drift?.drifted ?? false).toBe(false);
  });

  it('data without a shift triggers no drift and no retrain after the first training', () => {
    const first = steady.findIndex((n) => n.retrains.length > 0);
    for (const n of steady.slice(first + 1)) {
      expect(n.drift?.drifted).toBe(false);
      expect(n.retrains).toEqual([]);
    }
  });

  it('stores PSI and KS per daily measure and per feature, and MMD² on embeddings, every night', async () => {
    const deps = createDeps(configs.steady);
    const last = steady.at(-1)!.date;
    const files = (await deps.lake.localFiles('gold', 'drift', last)).paths;
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    const rows = (
      await conn.runAndReadAll(
        `SELECT kind, count(*) AS n, count(psi) AS psi, count(ks) AS ks, count(mmd2) AS mmd, bool_and(decides) AS decides
         FROM ${parquetScan(files)} GROUP BY kind ORDER BY kind`,
      )
    ).getRowObjects();
    conn.closeSync();
    expect(rows.map((r) => [r.kind, Number(r.n), Number(r.psi), Number(r.ks), Number(r.mmd), r.decides])).toEqual([
      ['daily_measure', 7, 7, 7, 0, true],
      ['embedding', 1, 0, 0, 1, true],
      ['feature', FEATURES.length, FEATURES.length, FEATURES.length, 0, false],
    ]);
  });

  it('records every decision in the registry with metrics, fairness audit and training window', async () => {
    const acts = createActivities(createDeps(configs.shift));
    const cards = await acts.listModels();
    const risk = cards.filter((c) => c.name === 'risk');
    expect(risk.length).toBeGreaterThanOrEqual(2);
    for (const c of cards) {
      expect(c.decision?.why).toBeTruthy();
      expect(c.featureSchemaHash).toMatch(/^[0-9a-f]{16}$/);
      expect(c.trainingWindow.asOf).toMatch(/^\d{4}-\d{2}-\d{2}$/);
      expect(Object.keys(c.fairness)).toContain('demographicParityDifference');
    }
    expect(risk.at(-1)!.reason).toMatch(/^drift: /);
  });
});
