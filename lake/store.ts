import type { Readable } from 'node:stream';

/**
 * Chunk size for streaming files (checksums, uploads, reads, gunzip): with the streams' 16–64 KiB defaults, per-chunk
 * overhead cost three to four times the CPU.
 */
export const FILE_CHUNK = 1 << 20;

export interface ObjectInfo {
  key: string;
  size: number;
  lastModified: Date;
}

/**
 * The one object-store interface of the lake. Keys are `/`-separated and relative to the lake root; implementations
 * stream bodies, so memory does not grow with object size.
 */
export interface ObjectStore {
  /** Human-readable location of a key (a path or an s3:// URI). */
  uri(key: string): string;
  putStream(key: string, body: Readable): Promise<void>;
  /**
   * Stores a local file. With `move`, the caller no longer needs the file: a store on the same filesystem may rename
   * it into place instead of copying it.
   */
  putFile(key: string, localPath: string, opts?: { move?: boolean }): Promise<void>;
  putBytes(key: string, body: Uint8Array | string): Promise<void>;
  /** Returns null when the key does not exist. */
  getBytes(key: string): Promise<Buffer | null>;
  getStream(key: string): Promise<Readable>;
  /** Streams the object to a local file; returns its size. */
  getFile(key: string, localPath: string): Promise<number>;
  exists(key: string): Promise<boolean>;
  /** Lists objects whose key starts with prefix, recursively, in key order. */
  list(prefix: string): Promise<ObjectInfo[]>;
  /** Lists the immediate "folders" under prefix (which must end with `/`). */
  listPrefixes(prefix: string): Promise<string[]>;
  delete(keys: string[]): Promise<void>;
  /**
   * A local file holding the object's bytes, for engines that read files (DuckDB). Local stores return the file
   * itself; remote stores stage a copy under the cache directory.
   */
  localCopy(key: string): Promise<string>;
  /** Creates the bucket or root folder if missing. Idempotent. */
  ensureReady(): Promise<void>;
}

export class ObjectNotFoundError extends Error {
  override name = 'ObjectNotFoundError';
  constructor(readonly key: string) {
    super(`object not found: ${key}`);
  }
}

/** Rejects keys that could escape the lake root or confuse a store. */
export function assertSafeKey(key: string): void {
  if (
    key.length === 0 ||
    key.startsWith('/') ||
    key.split('/').some((p) => p === '..' || p === '.') ||
    key.includes('\\') ||
    key.includes('\0')
  ) {
    throw new Error(`unsafe lake key: ${JSON.stringify(key)}`);
  }
}

/** The object store cannot be reached (connection refused, DNS, timeout): one line for the operator. */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}
