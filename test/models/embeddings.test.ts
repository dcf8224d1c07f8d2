import { DuckDBInstance } from '@duckdb/node-api';
import { describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { generate } from '../../generator/index.js';
import { parquetScan } from '../../lake/duck.js';
import { createDeps } from '../../workers/deps.js';
import { testConfig } from '../helpers.js';

describe('embeddings stage', () => {
  it('embeds posts and behaviour, and takes unchanged texts from the content-hash cache the next night', async () => {
    const config = testConfig();
    const gen = await generate({ out: config.inbox, students: 60, days: 2, start: '2026-09-14', seed: 3 });
    const deps = createDeps(config);
    const a = createActivities(deps);
    const nights = [];
    for (const date of gen.dates) {
      const w = { runId: `r-${date}`, writeId: `w-${date}` };
      await a.landBronzeFiles({ date, runId: w.runId });
      await a.buildSilverTables({ date, ...w });
      await a.alignTimeline({ dates: [date], landingDate: date, ...w });
      await a.buildGoldFeatures({ dates: [date], ...w });
      nights.push(await a.embedBehaviour({ date, ...w }));
    }
    expect(nights[0]!.cached).toBe(0);
    expect(nights[0]!.behaviours).toBe(60);
    expect(nights[1]!.cached).toBeGreaterThan(0);
    expect(nights[1]!.embedded + nights[1]!.cached).toBeLessThanOrEqual(nights[1]!.texts + nights[1]!.behaviours);
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    const files = (await deps.lake.localFiles('gold', 'behaviour_embeddings', gen.dates[1]!)).paths;
    const r = (
      await conn.runAndReadAll(
        `SELECT count(*) AS n, count(tokens) AS with_tokens, min(len(vector)) AS dim,
           max(abs(list_dot_product(vector, vector) - 1)) < 1e-4 AS unit FROM ${parquetScan(files)}`,
      )
    ).getRowObjects()[0]!;
    expect(Number(r.n)).toBe(60);
    expect(Number(r.with_tokens)).toBe(60);
    expect(Number(r.dim)).toBe(384);
    expect(r.unit).toBe(true);
    conn.closeSync();
    await deps.duck.close();
  }, 180_000);
});
