import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomUUID } from 'node:crypto';
import { assertSafeKey, FILE_CHUNK, ObjectNotFoundError, type ObjectInfo, type ObjectStore } from './store.js';

/**
 * The embedded lake: a folder on the local filesystem. Writes go to a temporary sibling and are renamed into place,
 * so a reader never sees a half-written object.
 */
export class LocalObjectStore implements ObjectStore {
  constructor(readonly root: string) {}

  private path(key: string): string {
    assertSafeKey(key);
    return join(this.root, ...key.split('/'));
  }

  uri(key: string): string {
    return this.path(key);
  }

  async ensureReady(): Promise<void> {
    await mkdir(this.root, { recursive: true });
  }

  private async atomically(key: string, write: (tmp: string) => Promise<void>): Promise<void> {
    const target = this.path(key);
    await mkdir(dirname(target), { recursive: true });
    const tmp = `${target}.tmp-${randomUUID()}`;
    try {
      await write(tmp);
      await rename(tmp, target);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  putStream(key: string, body: Readable): Promise<void> {
    return this.atomically(key, (tmp) => pipeline(body, createWriteStream(tmp)));
  }

  async putFile(key: string, localPath: string, opts: { move?: boolean } = {}): Promise<void> {
    if (opts.move) {
      // A rename is atomic on its own; across filesystems the file is copied like any other.
      const target = this.path(key);
      await mkdir(dirname(target), { recursive: true });
      try {
        await rename(localPath, target);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      }
    }
    return this.atomically(key, (tmp) => copyFile(localPath, tmp));
  }

  putBytes(key: string, body: Uint8Array | string): Promise<void> {
    return this.atomically(key, (tmp) => writeFile(tmp, body));
  }

  async getBytes(key: string): Promise<Buffer | null> {
    try {
      return await readFile(this.path(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async getStream(key: string): Promise<Readable> {
    const p = this.path(key);
    if (!(await this.exists(key))) throw new ObjectNotFoundError(key);
    return createReadStream(p, { highWaterMark: FILE_CHUNK });
  }

  async getFile(key: string, localPath: string): Promise<number> {
    await mkdir(dirname(localPath), { recursive: true });
    await pipeline(await this.getStream(key), createWriteStream(localPath));
    return (await stat(localPath)).size;
  }

  async exists(key: string): Promise<boolean> {
    try {
      return (await stat(this.path(key))).isFile();
    } catch {
      return false;
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    const base = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    const start = base ? this.path(base) : this.root;
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      for (const e of entries) {
        const full = join(dir, e.name);
        if (e.isDirectory()) await walk(full);
        else if (e.isFile() && !e.name.includes('.tmp-')) {
          const key = relative(this.root, full).split(sep).join('/');
          if (key.startsWith(prefix)) {
            const s = await stat(full);
            out.push({ key, size: s.size, lastModified: s.mtime });
          }
        }
      }
    };
    await walk(start);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async listPrefixes(prefix: string): Promise<string[]> {
    const dir = prefix ? this.path(prefix.replace(/\/$/, '')) : this.root;
    try {
      const entries = await readdir(dir, { withFileTypes: true });
      return entries
        .filter((e) => e.isDirectory())
        .map((e) => `${prefix}${e.name}/`)
        .sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  async delete(keys: string[]): Promise<void> {
    for (const key of keys) await rm(this.path(key), { force: true });
  }

  async localCopy(key: string): Promise<string> {
    if (!(await this.exists(key))) throw new ObjectNotFoundError(key);
    return this.path(key);
  }
}
