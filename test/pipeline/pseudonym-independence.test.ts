import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { studentKey } from '../../activities/identity.js';
import { partitionScan } from '../../lake/duck.js';
import { generate, type GenerateResult } from '../../generator/index.js';
import { createDeps } from '../../workers/deps.js';
import { dataNight, tempDir, testConfig } from '../helpers.js';

// The same drop run under two pseudonymization keys: once the keys are mapped onto each other, every aligned event
// and every feature is the same. Nothing but the keys (and the content-hash event ids built from them) may depend on
// the secret, or rotating it would change what educators see.
const inbox = tempDir('pseudonym-inbox');
const runs = ['the first pseudonymization secret', 'the second pseudonymization secret'].map((key) => {
  const config = testConfig({ EDLAKE_INBOX: inbox, EDLAKE_PSEUDONYM_KEY: key });
  const deps = createDeps(config);
  return { key, deps, acts: createActivities(deps) };
});
let gen: GenerateResult;

describe('pseudonymization key', () => {
  beforeAll(async () => {
    gen = await generate({ out: inbox, students: 40, days: 4, start: '2027-03-01', seed: 21 });
    for (const { acts } of runs) for (const date of gen.dates) await dataNight(acts, date);
  }, 180_000);
  afterAll(async () => {
    for (const { deps } of runs) await deps.duck.close();
  });

  it('changes the keys and nothing else: timeline, student days and features are equal once keys are mapped', async () => {
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    const ids = Object.keys(gen.planted.personas);
    expect(ids.length).toBe(40);
    const pairs = ids.map((id) => `('${studentKey(runs[0]!.key, id)}', '${studentKey(runs[1]!.key, id)}')`);
    await conn.run(`CREATE TABLE m AS SELECT * FROM (VALUES ${pairs.join(', ')}) t(a, b)`);
    let compared = 0;
    for (const [layer, dataset, exclude] of [
      ['silver', 'timeline', 'EXCLUDE (event_id)'],
      ['silver', 'student_day', ''],
      ['gold', 'student_features', ''],
    ] as const) {
      for (const date of gen.dates) {
        const [a, b] = await Promise.all(runs.map((r) => r.deps.lake.localFiles(layer, dataset, date)));
        const left = `(SELECT x.* ${exclude} REPLACE (m.b AS student_key) FROM ${partitionScan(a!.manifest, a!.paths)} x JOIN m ON m.a = x.student_key)`;
        const right = `(SELECT * ${exclude} FROM ${partitionScan(b!.manifest, b!.paths)})`;
        const [n, onlyLeft, onlyRight] = (
          await conn.runAndReadAll(`SELECT (SELECT count(*) FROM ${right}),
            (SELECT count(*) FROM (SELECT * FROM ${left} EXCEPT ALL SELECT * FROM ${right})),
            (SELECT count(*) FROM (SELECT * FROM ${right} EXCEPT ALL SELECT * FROM ${left}))`)
        )
          .getRows()[0]!
          .map(Number);
        expect({ dataset, date, onlyLeft, onlyRight }).toEqual({ dataset, date, onlyLeft: 0, onlyRight: 0 });
        compared += n!;
      }
    }
    conn.closeSync();
    expect(compared).toBeGreaterThan(1000);
  });
});
