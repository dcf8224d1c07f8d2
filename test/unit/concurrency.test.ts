import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mapConcurrently } from '../../activities/context.js';
import { Duck } from '../../lake/duck.js';
import { tempDir } from '../helpers.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('pieces of one unit of work run a few at a time', () => {
  it('keeps the items’ order and never has more than the limit in flight', async () => {
    let inFlight = 0;
    let most = 0;
    const items = Array.from({ length: 12 }, (_, i) => i);
    const out = await mapConcurrently(items, 3, async (i) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await sleep(((i * 7) % 5) * 3);
      inFlight--;
      return i * 10;
    });
    expect(out).toEqual(items.map((i) => i * 10));
    expect(most).toBe(3);
  });

  it('with sizes, starts the largest items first and still returns results in the items’ order', async () => {
    const started: string[] = [];
    const items = ['small', 'largest', 'mid', 'large', 'tiny'];
    const size: Record<string, number> = { small: 2, largest: 9, mid: 5, large: 7, tiny: 1 };
    const out = await mapConcurrently(
      items,
      2,
      async (x) => {
        started.push(x);
        await sleep(size[x]!);
        return x.toUpperCase();
      },
      (x) => size[x]!,
    );
    expect(started.slice(0, 2)).toEqual(['largest', 'large']);
    expect(started.indexOf('mid')).toBeLessThan(started.indexOf('small'));
    expect(started.at(-1)).toBe('tiny');
    expect(out).toEqual(items.map((x) => x.toUpperCase()));
  });

  it('starts nothing after a failure and throws the first error once the pieces in flight have settled', async () => {
    const started: number[] = [];
    const finished: number[] = [];
    const run = mapConcurrently([0, 1, 2, 3, 4, 5], 2, async (i) => {
      started.push(i);
      if (i === 1) throw new Error('piece 1 failed');
      await sleep(20);
      finished.push(i);
      return i;
    });
    await expect(run).rejects.toThrow('piece 1 failed');
    // 0 was in flight when 1 failed: it finished before the rejection; nothing after 2 started.
    expect(finished).toContain(0);
    expect(started.every((i) => i <= 2)).toBe(true);
    expect(finished.every((i) => started.includes(i))).toBe(true);
  });
});

describe('shared tables (Duck.acquireShared)', () => {
  it('builds a set once per key, shows it to every connection, and drops idle sets beyond the newest two', async () => {
    const dir = tempDir('shared');
    const duck = new Duck({ threads: 1, memoryLimit: '512MB', tempDirectory: join(dir, 'tmp') });
    const builds: string[] = [];
    const acquire = (key: string) =>
      duck.acquireShared(key, async (conn, schema) => {
        builds.push(key);
        await conn.run(`CREATE TABLE ${schema}.t AS SELECT '${key}' AS v`);
        return key.length;
      });
    try {
      const a1 = await acquire('a');
      const a2 = await acquire('a');
      expect(builds).toEqual(['a']);
      expect(a2.schema).toBe(a1.schema);
      expect(a1.value).toBe(1);
      const seen = await duck.withConnection(async (conn) =>
        (await conn.runAndReadAll(`SELECT v FROM ${a1.schema}.t`)).getRows(),
      );
      expect(seen).toEqual([['a']]);

      // While 'a' is held, newer sets never evict it.
      for (const k of ['b', 'c', 'd']) (await acquire(k)).release();
      a1.release();
      a2.release();
      await sleep(50);
      // Idle now and older than the two newest (c, d): dropped, so the next acquire builds it again.
      const again = await acquire('a');
      expect(builds).toEqual(['a', 'b', 'c', 'd', 'a']);
      expect(again.schema).not.toBe(a1.schema);
      const dropped = await duck.withConnection(async (conn) =>
        (
          await conn.runAndReadAll(
            `SELECT count(*) FROM duckdb_schemas() WHERE schema_name = ${`'${a1.schema.replaceAll('"', '')}'`}`,
          )
        ).getRows(),
      );
      expect(Number(dropped[0]![0])).toBe(0);
      again.release();
    } finally {
      await duck.close();
    }
  });
});
