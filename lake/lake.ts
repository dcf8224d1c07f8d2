import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Config } from '../config/index.js';
import { LocalObjectStore } from './local-store.js';
import type { ColumnSpec, Manifest, ManifestFile, PartitionRef } from './manifest.js';
import {
  addDays,
  bronzeFileKey,
  dataFileKey,
  datasetPrefix,
  type Layer,
  manifestKey,
  MANIFEST_FILE,
  partitionPrefix,
} from './paths.js';
import { S3ObjectStore } from './s3-store.js';
import { FILE_CHUNK, type ObjectStore } from './store.js';

export interface StagedFile {
  localPath: string;
  rows: number;
  /** The file is not read again after publishing: a local lake takes it by renaming instead of copying. */
  movable?: boolean;
}

export interface PublishInput {
  layer: Layer;
  dataset: string;
  date: string;
  runId: string;
  /** Unique per attempt at writing this partition; retries of the same attempt reuse it. */
  writeId: string;
  files: StagedFile[];
  schema: ColumnSpec[];
  schemaVersion: number;
  stats?: Record<string, number>;
  /**
   * Replace only this slice of the partition (files tagged with it), keeping the other slices' files: rows landed on
   * different days live in one event-date partition without being rewritten. Without it, the partition is replaced
   * whole.
   */
  slice?: string;
  /** With `slice`: the slice is an overlay keyed by this column (see ManifestFile.overlayKey). */
  overlayKey?: string;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path, { highWaterMark: FILE_CHUNK }), hash);
  return hash.digest('hex');
}

/**
 * The lake: owns the layout, atomic partition commits and reads of committed data. Stage code never knows whether it
 * writes to a folder or a bucket.
 */
export class Lake {
  constructor(
    readonly store: ObjectStore,
    readonly location: string,
  ) {}

  /**
   * Uploads the staged files under a write-scoped prefix, then commits the partition by writing its manifest last,
   * then removes whatever the partition held before. Re-publishing a date replaces the partition whole; a crash before
   * the manifest leaves the previous commit visible and untouched.
   */
  async publishPartition(input: PublishInput): Promise<Manifest> {
    const previous = input.slice ? await this.readManifest(input.layer, input.dataset, input.date) : null;
    const files: ManifestFile[] = (previous?.files ?? []).filter((f) => f.slice !== input.slice);
    const writeId = input.slice ? `${input.writeId}.${input.slice}` : input.writeId;
    for (const [i, f] of input.files.entries()) {
      const ext = f.localPath.split('.').pop() ?? 'bin';
      const key = dataFileKey(input.layer, input.dataset, input.date, writeId, i, ext);
      const sha256 = await sha256File(f.localPath);
      const bytes = (await stat(f.localPath)).size;
      await this.store.putFile(key, f.localPath, { move: !!f.movable });
      files.push({
        key,
        rows: f.rows,
        bytes,
        sha256,
        ...(input.slice ? { slice: input.slice } : {}),
        ...(input.slice && input.overlayKey ? { overlayKey: input.overlayKey } : {}),
      });
    }
    const manifest: Manifest = {
      formatVersion: 1,
      layer: input.layer,
      dataset: input.dataset,
      date: input.date,
      runId: input.runId,
      writeId: input.writeId,
      committedAt: new Date().toISOString(),
      schemaVersion: input.schemaVersion,
      schema: input.schema,
      files,
      rowCount: files.reduce((n, f) => n + f.rows, 0),
      stats: input.stats && Object.keys(input.stats).length ? input.stats : (previous?.stats ?? {}),
    };
    await this.commit(manifest);
    return manifest;
  }

  private async commit(manifest: Manifest): Promise<void> {
    const key = manifestKey(manifest.layer, manifest.dataset, manifest.date);
    await this.store.putBytes(key, JSON.stringify(manifest, null, 2));
    const keep = new Set([key, ...manifest.files.map((f) => f.key)]);
    const stale = (await this.store.list(partitionPrefix(manifest.layer, manifest.dataset, manifest.date)))
      .map((o) => o.key)
      .filter((k) => !keep.has(k));
    if (stale.length) await this.store.delete(stale);
  }

  async readManifest(layer: Layer, dataset: string, date: string): Promise<Manifest | null> {
    const bytes = await this.store.getBytes(manifestKey(layer, dataset, date));
    return bytes ? (JSON.parse(bytes.toString('utf8')) as Manifest) : null;
  }

  /** Dates of a dataset's partition folders, ascending, committed or not. */
  private async partitionFolders(layer: Layer, dataset: string): Promise<string[]> {
    return (await this.store.listPrefixes(datasetPrefix(layer, dataset)))
      .map((p) => /dt=(\d{4}-\d{2}-\d{2})\/$/.exec(p)?.[1])
      .filter((d): d is string => !!d)
      .sort();
  }

  private isCommitted(layer: Layer, dataset: string, date: string): Promise<boolean> {
    return this.store.exists(`${datasetPrefix(layer, dataset)}dt=${date}/${MANIFEST_FILE}`);
  }

  /** Committed partition dates of a dataset, oldest first; with a range, only those in it (bounds included). */
  async listPartitions(layer: Layer, dataset: string, range: { from?: string; to?: string } = {}): Promise<string[]> {
    const dates: string[] = [];
    for (const d of await this.partitionFolders(layer, dataset)) {
      if ((range.from && d < range.from) || (range.to && d > range.to)) continue;
      if (await this.isCommitted(layer, dataset, d)) dates.push(d);
    }
    return dates;
  }

  async listDatasets(layer: Layer): Promise<string[]> {
    return (await this.store.listPrefixes(`${layer}/`)).map((p) => p.slice(layer.length + 1, -1));
  }

  /** The latest committed partition date of a dataset on or before `date`, if any. */
  async latestPartition(layer: Layer, dataset: string, date: string): Promise<string | undefined> {
    // Newest first, stopping at the first committed one: one listing and usually one existence check, however long
    // the history.
    const dates = (await this.partitionFolders(layer, dataset)).filter((d) => d <= date);
    for (let i = dates.length - 1; i >= 0; i--) if (await this.isCommitted(layer, dataset, dates[i]!)) return dates[i];
    return undefined;
  }

  /** Local paths of the committed partitions of the `days` days ending on `date` (a lookback window). */
  async lookbackFiles(layer: Layer, dataset: string, date: string, days: number): Promise<string[]> {
    const paths: string[] = [];
    for (let k = 0; k < days; k++) paths.push(...(await this.localFiles(layer, dataset, addDays(date, -k))).paths);
    return paths;
  }

  /** Local paths of a committed partition's files, for DuckDB. Empty when the partition does not exist. */
  async localFiles(
    layer: Layer,
    dataset: string,
    date: string,
  ): Promise<{ manifest: Manifest | null; paths: string[] }> {
    const manifest = await this.readManifest(layer, dataset, date);
    if (!manifest) return { manifest, paths: [] };
    const paths: string[] = [];
    for (const f of manifest.files) paths.push(await this.store.localCopy(f.key));
    return { manifest, paths };
  }

  /**
   * Local paths of the files of one slice of a committed partition (e.g. `realigned=<landing>`), or of the slices a
   * predicate keeps; only those are fetched.
   */
  async sliceFiles(
    layer: Layer,
    dataset: string,
    date: string,
    slice: string | ((slice: string | undefined) => boolean),
  ): Promise<string[]> {
    const manifest = await this.readManifest(layer, dataset, date);
    const keep = typeof slice === 'string' ? (s: string | undefined) => s === slice : slice;
    const paths: string[] = [];
    for (const f of manifest?.files ?? []) if (keep(f.slice)) paths.push(await this.store.localCopy(f.key));
    return paths;
  }

  /**
   * Lands one raw file in bronze unchanged. Idempotent: a file whose checksum the partition already holds is not
   * landed again. Returns whether it was new.
   */
  async landBronzeFile(input: {
    source: string;
    date: string;
    localPath: string;
    runId: string;
    originalName?: string;
  }): Promise<{ file: ManifestFile; added: boolean }> {
    const sha256 = await sha256File(input.localPath);
    const name = input.originalName ?? basename(input.localPath);
    const existing = await this.readManifest('bronze', input.source, input.date);
    const found = existing?.files.find((f) => f.sha256 === sha256);
    if (found) return { file: found, added: false };
    const key = bronzeFileKey(input.source, input.date, sha256, name);
    await this.store.putFile(key, input.localPath);
    const file: ManifestFile = {
      key,
      rows: 0,
      bytes: (await stat(input.localPath)).size,
      sha256,
      originalName: name,
      arrivedAt: new Date().toISOString(),
    };
    const files = [...(existing?.files ?? []), file];
    const manifest: Manifest = {
      formatVersion: 1,
      layer: 'bronze',
      dataset: input.source,
      date: input.date,
      runId: input.runId,
      writeId: 'raw',
      committedAt: new Date().toISOString(),
      schemaVersion: 1,
      schema: [],
      files,
      rowCount: 0,
      stats: { files: files.length, bytes: files.reduce((n, f) => n + f.bytes, 0) },
    };
    await this.store.putBytes(manifestKey('bronze', input.source, input.date), JSON.stringify(manifest, null, 2));
    return { file, added: true };
  }

  ref(manifest: Manifest): PartitionRef {
    return {
      uri: this.store.uri(manifestKey(manifest.layer, manifest.dataset, manifest.date)),
      layer: manifest.layer,
      dataset: manifest.dataset,
      date: manifest.date,
      rowCount: manifest.rowCount,
      schemaVersion: manifest.schemaVersion,
      stats: manifest.stats,
    };
  }
}

export function createObjectStore(config: Config): ObjectStore {
  const l = config.lake;
  if (l.kind === 'local') return new LocalObjectStore(l.root);
  return new S3ObjectStore({ ...l, cacheDir: join(config.home, 'cache', 's3') });
}

export function createLake(config: Config): Lake {
  const store = createObjectStore(config);
  const l = config.lake;
  return new Lake(store, l.kind === 'local' ? l.root : `s3://${l.bucket}/${l.prefix}`.replace(/\/$/, ''));
}
