import { join } from 'node:path';
import { DuckDBInstance, quotedString } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { studentKey } from '../../activities/identity.js';
import { parquetScan, partitionScan } from '../../lake/duck.js';
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

  it('watches video in logged order whatever order a silver slice stores its rows in', async () => {
    // Play and pause at the same instant are told apart by where they were logged (landing, bronze file, line), not
    // by the order a parallel write happened to leave the rows in: each landing's video rows are stored again in
    // reverse, the date realigned, and the watched minutes must not move.
    const { deps, acts } = runs[0]!;
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    const date = gen.dates[1]!;
    const dir = tempDir('reversed');
    const minutes = async () =>
      (
        await conn.runAndReadAll(
          `SELECT student_key, course_id, video_minutes FROM ${parquetScan((await deps.lake.localFiles('silver', 'student_day', date)).paths)}
          WHERE video_minutes > 0 ORDER BY ALL`,
        )
      ).getRowObjectsJson();
    const before = await minutes();
    const { manifest, paths } = await deps.lake.localFiles('silver', 'video', date);
    // Ties the order decides: the same student and media at the same instant, a play among them.
    const ties = Number(
      (
        await conn.runAndReadAll(`SELECT count(*) FROM (SELECT student_key, media_id, ts_utc FROM ${parquetScan(paths)}
          GROUP BY ALL HAVING count(*) > 1 AND count(*) FILTER (WHERE event = 'play') > 0)`)
      ).getRows()[0]![0],
    );
    expect(ties).toBeGreaterThan(0);
    const firstLines = async (ps: string[]) =>
      (await conn.runAndReadAll(`SELECT source_line FROM ${parquetScan(ps)} LIMIT 3`)).getRows().flat().map(Number);
    const storedBefore = await firstLines(paths);
    const reversed = manifest!.files.map((_, i) => join(dir, `${i}.parquet`));
    for (const [i, path] of paths.entries()) {
      await conn.run(`COPY (SELECT * EXCLUDE (file_row_number) FROM read_parquet(${quotedString(path)}, file_row_number = true)
        ORDER BY file_row_number DESC) TO ${quotedString(reversed[i]!)} (FORMAT parquet)`);
    }
    for (const [i, file] of manifest!.files.entries()) {
      await deps.lake.publishPartition({
        layer: 'silver',
        dataset: 'video',
        date,
        runId: manifest!.runId,
        writeId: `reversed-${i}`,
        files: [{ localPath: reversed[i]!, rows: file.rows }],
        schema: manifest!.schema,
        schemaVersion: manifest!.schemaVersion,
        stats: manifest!.stats,
        ...(file.slice ? { slice: file.slice } : {}),
      });
    }
    const stored = await deps.lake.localFiles('silver', 'video', date);
    expect(await firstLines(stored.paths)).not.toEqual(storedBefore);
    await acts.alignTimeline({ dates: [date], landingDate: date, runId: `r-${date}`, writeId: `realign-${date}` });
    const after = await minutes();
    conn.closeSync();
    expect(before.length).toBeGreaterThan(0);
    expect(after).toEqual(before);
  });
});
