import { createReadStream, createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { FILE_CHUNK } from '../../lake/store.js';
import type { SourceFile } from './engine.js';

/**
 * Gunzips `.gz` bronze files into the work folder (streaming) so every reader sees plain bytes. A truncated gzip
 * stream keeps what could be read: its records are checked like any other (a cut-off last record is quarantined) and
 * the file is reported, while the original stays in bronze.
 */
export async function gunzipFiles(
  files: SourceFile[],
  dir: string,
): Promise<{ files: SourceFile[]; truncated: string[] }> {
  const out: SourceFile[] = [];
  const truncated: string[] = [];
  for (const [i, f] of files.entries()) {
    if (!f.key.endsWith('.gz')) {
      out.push(f);
      continue;
    }
    const path = join(dir, `gunzip-${i}-${f.key.split('/').pop()!.slice(0, -3)}`);
    try {
      await pipeline(
        createReadStream(f.path, { highWaterMark: FILE_CHUNK }),
        createGunzip({ chunkSize: FILE_CHUNK }),
        createWriteStream(path, { highWaterMark: FILE_CHUNK }),
      );
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'Z_BUF_ERROR' && code !== 'Z_DATA_ERROR') throw err;
      truncated.push(f.key);
    }
    out.push({ key: f.key, path });
  }
  return { files: out, truncated };
}
