import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DuckDBConnection, DuckDBInstance, quotedIdentifier, quotedString } from '@duckdb/node-api';
import type { Manifest } from './manifest.js';

export interface DuckOptions {
  threads: number;
  memoryLimit: string;
  tempDirectory: string;
}

interface SharedEntry {
  schema: string;
  value: Promise<unknown>;
  refs: number;
  lastUsed: number;
}

/** A set of tables built once and shared by every connection until released (see `Duck.acquireShared`). */
export interface Shared<T> {
  /** The schema holding the tables, quoted for SQL. */
  schema: string;
  value: T;
  release(): void;
}

/** Shared table sets kept once nothing uses them (the newest first), for the next unit of work to reuse. */
const SHARED_KEEP = 2;

/** One DuckDB instance per process; a connection per unit of work, closed in `finally`. */
export class Duck {
  private instance: Promise<DuckDBInstance> | undefined;
  private shared = new Map<string, SharedEntry>();
  private sharedSeq = 0;

  private single: Duck | undefined;

  constructor(private readonly opts: DuckOptions) {}

  /**
   * A sibling database whose queries each run on one thread, for work made of several independent queries at a time
   * (silver cleans a few sources at once): on two cores that keeps them as busy as parallel queries would, without the
   * cost of splitting each query across threads (partitioned hash tables, merged sorts) — about a fifth less CPU for
   * the same rows. Its own instance (DuckDB's thread count is per instance) with the same memory limit; tables made
   * in one are not seen by the other. Closed with this one.
   */
  singleThreaded(): Duck {
    if (this.opts.threads === 1) return this;
    // A spill folder of its own: two instances would otherwise name their temporary files alike.
    this.single ??= new Duck({ ...this.opts, threads: 1, tempDirectory: join(this.opts.tempDirectory, 'single') });
    return this.single;
  }

  private async getInstance(): Promise<DuckDBInstance> {
    this.instance ??= (async () => {
      await mkdir(this.opts.tempDirectory, { recursive: true });
      return DuckDBInstance.create(':memory:', {
        threads: String(this.opts.threads),
        memory_limit: this.opts.memoryLimit,
        temp_directory: this.opts.tempDirectory,
        preserve_insertion_order: 'true',
      });
    })();
    return this.instance;
  }

  async withConnection<T>(fn: (conn: DuckDBConnection) => Promise<T>): Promise<T> {
    const conn = await (await this.getInstance()).connect();
    try {
      return await fn(conn);
    } finally {
      conn.closeSync();
    }
  }

  /**
   * Tables that several units of work read and that depend only on `key` (the roster of a snapshot under one
   * pseudonymization key): built once into their own schema of the in-memory database, visible to every connection,
   * and kept for reuse after release. Unused sets beyond the newest few are dropped; a set in use never is.
   */
  async acquireShared<T>(
    key: string,
    build: (conn: DuckDBConnection, schema: string) => Promise<T>,
  ): Promise<Shared<T>> {
    let entry = this.shared.get(key);
    if (!entry) {
      const schema = quotedIdentifier(`shared_${++this.sharedSeq}`);
      const value = this.withConnection(async (conn) => {
        await conn.run(`CREATE SCHEMA ${schema}`);
        try {
          return await build(conn, schema);
        } catch (err) {
          await conn.run(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
          throw err;
        }
      });
      entry = { schema, value, refs: 0, lastUsed: 0 };
      this.shared.set(key, entry);
      value.catch(() => this.shared.get(key) === entry && this.shared.delete(key));
    }
    entry.refs++;
    entry.lastUsed = ++this.sharedSeq;
    const held = entry;
    try {
      const value = (await held.value) as T;
      let released = false;
      return {
        schema: held.schema,
        value,
        release: () => {
          if (released) return;
          released = true;
          held.refs--;
          void this.evictShared();
        },
      };
    } catch (err) {
      held.refs--;
      throw err;
    }
  }

  private async evictShared(): Promise<void> {
    const idle = [...this.shared].filter(([, e]) => e.refs === 0).sort((a, b) => b[1].lastUsed - a[1].lastUsed);
    for (const [key, e] of idle.slice(SHARED_KEEP)) {
      this.shared.delete(key);
      await this.withConnection((conn) => conn.run(`DROP SCHEMA IF EXISTS ${e.schema} CASCADE`)).catch(() => {});
    }
  }

  async close(): Promise<void> {
    await this.single?.close();
    this.single = undefined;
    this.shared.clear();
    if (this.instance) (await this.instance).closeSync();
    this.instance = undefined;
  }
}

/** A SQL list of string literals, for file paths given to table functions (which take no bound parameters). */
export function sqlList(values: string[]): string {
  return `[${values.map((v) => quotedString(v)).join(', ')}]`;
}

/** DuckDB returns BIGINT as bigint; Temporal payloads and JSON need numbers. */
export function toNumber(v: unknown): number {
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'number') return v;
  if (v === null || v === undefined) return 0;
  return Number(v);
}

/** A scan of lake parquet files. Lake paths contain `dt=…`, which DuckDB would otherwise add as a column. */
export function parquetScan(paths: string[]): string {
  return `read_parquet(${sqlList(paths)}, hive_partitioning = false, union_by_name = true)`;
}

/**
 * A scan of one committed partition that resolves overlays: an overlay file's rows replace, for each key value it
 * holds, the rows of every file before it. Without overlays this is a plain `parquetScan`.
 */
export function partitionScan(manifest: Manifest | null, paths: string[]): string {
  const overlays =
    manifest?.files.flatMap((f, i) => (f.overlayKey ? [{ key: f.overlayKey, path: paths[i]! }] : [])) ?? [];
  if (!overlays.length) return parquetScan(paths);
  const base = paths.filter((_, i) => !manifest!.files[i]!.overlayKey);
  const layers = [
    ...(base.length ? [{ paths: base, n: 0 }] : []),
    ...overlays.map((o, i) => ({ paths: [o.path], n: i + 1 })),
  ];
  const key = quotedIdentifier(overlays[0]!.key);
  const all = layers.map((l) => `SELECT *, ${l.n} AS __layer FROM ${parquetScan(l.paths)}`).join(' UNION ALL BY NAME ');
  const top = overlays
    .map((o, i) => `SELECT DISTINCT ${key} AS __key, ${i + 1} AS __layer FROM ${parquetScan([o.path])}`)
    .join(' UNION ALL ');
  return `(SELECT a.* EXCLUDE (__layer) FROM (${all}) a
    LEFT JOIN (SELECT __key, max(__layer) AS __top FROM (${top}) GROUP BY __key) o ON o.__key = a.${key}
    WHERE a.__layer = coalesce(o.__top, 0))`;
}

/**
 * A temp table from rows computed in JavaScript (scores, drift measures, vectors): written as JSON lines in the work
 * folder and read back with the given column types, so no row is appended value by value.
 */
export async function rowsTable(
  conn: DuckDBConnection,
  dir: string,
  name: string,
  rows: Record<string, unknown>[],
  columns: Record<string, string>,
): Promise<void> {
  const path = join(dir, `${name}.jsonl`);
  await writeFile(path, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const spec = Object.entries(columns).map(([c, t]) => `${quotedString(c)}: ${quotedString(t)}`);
  await conn.run(
    rows.length
      ? `CREATE OR REPLACE TEMP TABLE ${quotedIdentifier(name)} AS SELECT * FROM read_json(${quotedString(path)},
          columns = {${spec.join(', ')}}, format = 'newline_delimited')`
      : `CREATE OR REPLACE TEMP TABLE ${quotedIdentifier(name)} (${Object.entries(columns)
          .map(([c, t]) => `${quotedIdentifier(c)} ${t}`)
          .join(', ')})`,
  );
}
