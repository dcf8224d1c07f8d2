import type { Layer } from './paths.js';

export interface ManifestFile {
  key: string;
  rows: number;
  bytes: number;
  sha256: string;
  /** Which slice of the partition the file belongs to (e.g. the landing date of the rows it holds). */
  slice?: string;
  /**
   * An overlay file replaces, for every value of this column it contains, the rows of the files listed before it
   * (e.g. a late landing's realigned students). Readers resolve overlays through `partitionScan`.
   */
  overlayKey?: string;
  /** Bronze only: the file's original name and when it arrived. */
  originalName?: string;
  arrivedAt?: string;
}

export interface ColumnSpec {
  name: string;
  type: string;
}

/**
 * The commit record of one partition. A partition exists for readers exactly when its manifest does, and only the
 * files it lists belong to it.
 */
export interface Manifest {
  formatVersion: 1;
  layer: Layer;
  dataset: string;
  date: string;
  runId: string;
  writeId: string;
  committedAt: string;
  schemaVersion: number;
  schema: ColumnSpec[];
  files: ManifestFile[];
  rowCount: number;
  /** Reconciliation and other counts, e.g. { raw, accepted, duplicates, quarantined }. */
  stats: Record<string, number>;
}

/** What activities return across the workflow boundary: a reference, never rows. */
export interface PartitionRef {
  uri: string;
  layer: Layer;
  dataset: string;
  date: string;
  rowCount: number;
  /** Rows this write added (less than rowCount when it replaced one slice of the partition). */
  rowsWritten?: number;
  schemaVersion: number;
  stats: Record<string, number>;
}
