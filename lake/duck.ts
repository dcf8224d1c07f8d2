import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DuckDBConnection, DuckDBInstance, quotedIdentifier, quotedString } from '@duckdb/node-api';
import type { Manifest } from './manifest.js';

export interface DuckOptions {
  threads: number;
  memoryLimit: string;
  tempDirectory: string;
}

/** One DuckDB instance per process; a connection per unit of work, closed in `finally`. */
export class Duck {
  private instance: Promise<DuckDBInstance> | undefined;

  constructor(private readonly opts: DuckOptions) {}

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

  async close(): Promise<void> {
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
