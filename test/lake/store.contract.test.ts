import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, minioCredentials } from '../../config/index.js';
import { Lake } from '../../lake/lake.js';
import { LocalObjectStore } from '../../lake/local-store.js';
import { S3ObjectStore } from '../../lake/s3-store.js';
import type { ObjectStore } from '../../lake/store.js';
import { tempDir, uniqueSuffix } from '../helpers.js';

const env = loadConfig(process.env);
const cred = minioCredentials(env);

const stores: [string, () => ObjectStore][] = [
  ['local filesystem', () => new LocalObjectStore(join(tempDir('store'), 'lake'))],
  [
    'MinIO (S3)',
    () =>
      new S3ObjectStore({
        bucket: `edlake-test-${uniqueSuffix()}`,
        prefix: 'lake',
        endpoint: `http://${env.minio.address}`,
        region: 'us-east-1',
        forcePathStyle: true,
        accessKeyId: cred.user,
        secretAccessKey: cred.password,
        partSizeMb: 5,
        cacheDir: tempDir('s3cache'),
      }),
  ],
];

/** Generates `size` pseudo-random bytes in 1 MiB chunks without holding them all. */
function bigStream(size: number, seed: Buffer): { stream: Readable; sha256: Promise<string> } {
  const hash = createHash('sha256');
  let sent = 0;
  let done: (v: string) => void;
  const sha256 = new Promise<string>((r) => (done = r));
  const stream = new Readable({
    read() {
      if (sent >= size) {
        done(hash.digest('hex'));
        this.push(null);
        return;
      }
      const n = Math.min(1 << 20, size - sent);
      const chunk = Buffer.alloc(n, seed[sent % seed.length]);
      seed.copy(chunk, 0, 0, Math.min(seed.length, n));
      hash.update(chunk);
      sent += n;
      this.push(chunk);
    },
  });
  return { stream, sha256 };
}

describe.each(stores)('object store contract: %s', (_name, make) => {
  const store = make();
  const lake = new Lake(store, 'test');
  afterAll(async () => {
    const all = await store.list('');
    await store.delete(all.map((o) => o.key));
  });

  it('creates its bucket or root on first use, idempotently', async () => {
    await store.ensureReady();
    await store.ensureReady();
    expect(await store.list('')).toEqual([]);
  });

  it('puts and gets bytes, reports existence and missing keys', async () => {
    await store.putBytes('a/b/c.txt', 'hello');
    expect((await store.getBytes('a/b/c.txt'))?.toString()).toBe('hello');
    expect(await store.exists('a/b/c.txt')).toBe(true);
    expect(await store.exists('a/b/missing.txt')).toBe(false);
    expect(await store.getBytes('a/b/missing.txt')).toBeNull();
    await expect(store.getStream('a/b/missing.txt')).rejects.toThrow(/not found/);
  });

  it('lists recursively in key order and lists folders', async () => {
    await store.putBytes('l/x/2.txt', '2');
    await store.putBytes('l/x/1.txt', '1');
    await store.putBytes('l/y/3.txt', '3');
    expect((await store.list('l/')).map((o) => o.key)).toEqual(['l/x/1.txt', 'l/x/2.txt', 'l/y/3.txt']);
    expect(await store.listPrefixes('l/')).toEqual(['l/x/', 'l/y/']);
    expect((await store.list('l/x/'))[0]!.size).toBe(1);
  });

  it('deletes objects', async () => {
    await store.delete(['l/x/1.txt', 'l/x/2.txt']);
    expect((await store.list('l/')).map((o) => o.key)).toEqual(['l/y/3.txt']);
  });

  it('streams a multi-part object up and down intact', async () => {
    const size = 23 * 1024 * 1024 + 17;
    const { stream, sha256 } = bigStream(size, randomBytes(4096));
    await store.putStream('big/blob.bin', stream);
    const dest = join(tempDir('dl'), 'blob.bin');
    expect(await store.getFile('big/blob.bin', dest)).toBe(size);
    const got = createHash('sha256')
      .update(await readFile(dest))
      .digest('hex');
    expect(got).toBe(await sha256);
    const local = await store.localCopy('big/blob.bin');
    expect((await readFile(local)).length).toBe(size);
  });

  it('stores a file the caller gives up (move) with the same bytes, replacing what the key held', async () => {
    const dir = tempDir('move');
    const f = join(dir, 'staged.parquet');
    writeFileSync(f, 'old');
    await store.putFile('silver/move/x.parquet', f);
    writeFileSync(f, 'staged bytes');
    await store.putFile('silver/move/x.parquet', f, { move: true });
    expect((await store.getBytes('silver/move/x.parquet'))?.toString()).toBe('staged bytes');
    expect((await store.list('silver/move/')).map((o) => o.key)).toEqual(['silver/move/x.parquet']);
  });

  it('rejects keys that escape the lake', async () => {
    await expect(store.putBytes('../outside.txt', 'x')).rejects.toThrow(/unsafe lake key/);
  });

  it('commits a partition only when its manifest is written, and replaces it whole on re-publish', async () => {
    const dir = tempDir('parts');
    const f1 = join(dir, 'one.parquet');
    writeFileSync(f1, 'first version');
    expect(await lake.listPartitions('silver', 'demo')).toEqual([]);

    // Files staged by a write that never committed are invisible to readers.
    await store.putBytes('silver/demo/dt=2026-01-05/run-crashed/part-00000.parquet', 'half');
    expect(await lake.listPartitions('silver', 'demo')).toEqual([]);
    expect((await lake.localFiles('silver', 'demo', '2026-01-05')).paths).toEqual([]);

    const m1 = await lake.publishPartition({
      layer: 'silver',
      dataset: 'demo',
      date: '2026-01-05',
      runId: 'r1',
      writeId: 'run-1',
      files: [{ localPath: f1, rows: 3 }],
      schema: [{ name: 'x', type: 'INTEGER' }],
      schemaVersion: 1,
      stats: { raw: 3 },
    });
    expect(m1.rowCount).toBe(3);
    expect(m1.files[0]!.sha256).toBe(createHash('sha256').update('first version').digest('hex'));
    expect(await lake.listPartitions('silver', 'demo')).toEqual(['2026-01-05']);

    const f2 = join(dir, 'two.parquet');
    writeFileSync(f2, 'second version');
    await lake.publishPartition({
      layer: 'silver',
      dataset: 'demo',
      date: '2026-01-05',
      runId: 'r2',
      writeId: 'run-2',
      files: [{ localPath: f2, rows: 5 }],
      schema: [{ name: 'x', type: 'INTEGER' }],
      schemaVersion: 1,
    });
    const keys = (await store.list('silver/demo/dt=2026-01-05/')).map((o) => o.key);
    expect(keys).toEqual([
      'silver/demo/dt=2026-01-05/_manifest.json',
      'silver/demo/dt=2026-01-05/run-2/part-00000.parquet',
    ]);
    const read = await lake.localFiles('silver', 'demo', '2026-01-05');
    expect(read.manifest?.runId).toBe('r2');
    expect(read.manifest?.rowCount).toBe(5);
    expect((await readFile(read.paths[0]!)).toString()).toBe('second version');
  });

  it('replaces one slice of a partition and keeps the others', async () => {
    const dir = tempDir('slices');
    const put = async (slice: string, writeId: string, text: string, rows: number) => {
      const f = join(dir, `${slice}-${writeId}.parquet`);
      writeFileSync(f, text);
      return lake.publishPartition({
        layer: 'silver',
        dataset: 'sliced',
        date: '2026-01-06',
        runId: writeId,
        writeId,
        slice,
        files: [{ localPath: f, rows }],
        schema: [],
        schemaVersion: 1,
      });
    };
    await put('landed=2026-01-06', 'run-a', 'a', 2);
    await put('landed=2026-01-07', 'run-b', 'b', 3);
    const m = await put('landed=2026-01-06', 'run-c', 'c', 4);
    expect(m.rowCount).toBe(7);
    expect(m.files.map((f) => [f.slice, f.rows])).toEqual([
      ['landed=2026-01-07', 3],
      ['landed=2026-01-06', 4],
    ]);
    const keys = (await store.list('silver/sliced/dt=2026-01-06/')).map((o) => o.key);
    expect(keys).toHaveLength(3);
    expect(keys.some((k) => k.includes('run-a'))).toBe(false);
  });

  it('lands bronze files once per checksum', async () => {
    const dir = tempDir('bronze');
    const f = join(dir, 'statements.jsonl');
    writeFileSync(f, '{"id":1}\n');
    const a = await lake.landBronzeFile({ source: 'xapi', date: '2026-01-05', localPath: f, runId: 'r' });
    const b = await lake.landBronzeFile({ source: 'xapi', date: '2026-01-05', localPath: f, runId: 'r' });
    expect(a.added).toBe(true);
    expect(b.added).toBe(false);
    const m = await lake.readManifest('bronze', 'xapi', '2026-01-05');
    expect(m?.files.map((x) => x.originalName)).toEqual(['statements.jsonl']);
    expect((await store.getBytes(m!.files[0]!.key))?.toString()).toBe('{"id":1}\n');
  });
});

describe('local store', () => {
  it('takes a file given up with move by renaming it (no second copy left behind)', async () => {
    const store = new LocalObjectStore(join(tempDir('store-move'), 'lake'));
    const f = join(tempDir('move-src'), 'staged.parquet');
    writeFileSync(f, 'bytes');
    await store.putFile('gold/x/part.parquet', f, { move: true });
    expect(existsSync(f)).toBe(false);
    expect(readFileSync(await store.localCopy('gold/x/part.parquet'), 'utf8')).toBe('bytes');
    // Without move the caller keeps its file.
    writeFileSync(f, 'kept');
    await store.putFile('gold/x/part.parquet', f);
    expect(readFileSync(f, 'utf8')).toBe('kept');
  });
});
