import { join } from 'node:path';
import { type DuckDBConnection, quotedString } from '@duckdb/node-api';
import { toNumber } from './duck.js';
import type { Lake } from './lake.js';
import type { PartitionRef } from './manifest.js';
import type { Layer } from './paths.js';

export interface PublishQueryInput {
  layer: Layer;
  dataset: string;
  date: string;
  runId: string;
  writeId: string;
  /** Any relation: a SELECT, a table name in parentheses, a UNION. */
  sql: string;
  /** Sort before writing; omitted for large tables, whose row order carries no meaning. */
  orderBy?: string;
  schemaVersion: number;
  stats?: Record<string, number>;
  /** Replace only this slice of the partition (see Lake.publishPartition). */
  slice?: string;
  /** With `slice`: the slice is an overlay keyed by this column (see ManifestFile.overlayKey). */
  overlayKey?: string;
  /** One row per event or record (see `copyToParquet`). */
  eventRows?: boolean;
}

/** How every lake file is written; returns the number of rows. */
export async function copyToParquet(
  conn: DuckDBConnection,
  sql: string,
  path: string,
  opts: { eventRows?: boolean } = {},
): Promise<number> {
  // zstd at level 1: about three quarters of the write time of the default level for files a third larger. Format
  // version 2 pages (delta and byte-stream-split encodings) take a sixth less CPU to write than version 1, read
  // faster and are smaller; DuckDB, Arrow (pyarrow, polars) and Spark 3 read them. Event rows (ids and keys that are
  // mostly distinct values) get an 8 KB dictionary limit: the writer gives up on them sooner, a seventh less CPU for
  // files of the same size; aggregate tables (numbers of few values) keep the default, which suits them.
  const copied = await conn.runAndReadAll(
    `COPY (${sql}) TO ${quotedString(path)} (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, PARQUET_VERSION V2${opts.eventRows ? ', DICTIONARY_SIZE_LIMIT 8192' : ''})`,
  );
  return toNumber(copied.getRows()[0]![0]);
}

export type PublishFileInput = Omit<PublishQueryInput, 'sql' | 'orderBy'> & {
  /** A parquet file written by `copyToParquet` in a work folder; the lake takes it over (it is moved, not copied). */
  path: string;
  rows: number;
};

/** The columns and types of a relation (DESCRIBE only binds the query). */
async function describe(conn: DuckDBConnection, relation: string): Promise<{ name: string; type: string }[]> {
  return (await conn.runAndReadAll(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM ${relation})`))
    .getRows()
    .map((r) => ({ name: String(r[0]), type: String(r[1]) }));
}

/**
 * Commits a parquet file already written as a lake partition (or slice); its schema is the one given (the query's
 * types) or read from the file.
 */
export async function publishFile(
  lake: Lake,
  conn: DuckDBConnection,
  p: PublishFileInput,
  schema?: { name: string; type: string }[],
): Promise<PartitionRef> {
  schema ??= await describe(conn, `read_parquet(${quotedString(p.path)})`);
  const m = await lake.publishPartition({
    layer: p.layer,
    dataset: p.dataset,
    date: p.date,
    runId: p.runId,
    writeId: p.writeId,
    files: [{ localPath: p.path, rows: p.rows, movable: true }],
    schema,
    schemaVersion: p.schemaVersion,
    stats: p.stats ?? {},
    ...(p.slice ? { slice: p.slice } : {}),
    ...(p.overlayKey ? { overlayKey: p.overlayKey } : {}),
  });
  return { ...lake.ref(m), rowsWritten: p.rows };
}

/**
 * Writes a DuckDB query to a parquet file in the work folder (no intermediate table; COPY reports the row count) and
 * commits it as a lake partition.
 */
export async function publishQuery(
  lake: Lake,
  conn: DuckDBConnection,
  dir: string,
  p: PublishQueryInput,
): Promise<PartitionRef> {
  const path = join(
    dir,
    `${p.layer}-${p.dataset}-${p.date}${p.slice ? `-${p.slice.replace(/[^A-Za-z0-9-]/g, '_')}` : ''}.parquet`,
  );
  const query = `SELECT * FROM (${p.sql})${p.orderBy ? ` ORDER BY ${p.orderBy}` : ''}`;
  const rows = await copyToParquet(conn, query, path, { eventRows: !!p.eventRows });
  // The schema is read from the file written (what readers see), not by binding the query again: a wide query (gold's
  // features) takes longer to bind than its file takes to describe.
  return publishFile(lake, conn, { ...p, path, rows });
}
