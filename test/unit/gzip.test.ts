import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { gunzipFiles } from '../../activities/silver/gzip.js';
import { tempDir } from '../helpers.js';

describe('gzip sources', () => {
  const lines = Array.from({ length: 2000 }, (_, i) =>
    JSON.stringify({ id: i, text: `record number ${i} `.repeat(5) }),
  );
  const dir = tempDir('gz');
  const whole = gzipSync(lines.join('\n') + '\n');
  writeFileSync(join(dir, 'ok.jsonl.gz'), whole);
  writeFileSync(join(dir, 'cut.jsonl.gz'), whole.subarray(0, Math.floor(whole.length / 2)));
  writeFileSync(join(dir, 'plain.jsonl'), 'x\n');

  it('reads gzip files whole, passes plain files through, and keeps the readable part of a truncated stream', async () => {
    const out = await gunzipFiles(
      [
        { key: 'bronze/s/dt=2026-01-01/a-ok.jsonl.gz', path: join(dir, 'ok.jsonl.gz') },
        { key: 'bronze/s/dt=2026-01-01/b-cut.jsonl.gz', path: join(dir, 'cut.jsonl.gz') },
        { key: 'bronze/s/dt=2026-01-01/c-plain.jsonl', path: join(dir, 'plain.jsonl') },
      ],
      tempDir('gzwork'),
    );
    expect(out.truncated).toEqual(['bronze/s/dt=2026-01-01/b-cut.jsonl.gz']);
    expect(readFileSync(out.files[0]!.path, 'utf8').trim().split('\n')).toEqual(lines);
    const partial = readFileSync(out.files[1]!.path, 'utf8').split('\n');
    expect(partial.length).toBeGreaterThan(10);
    expect(partial.length).toBeLessThan(lines.length);
    expect(partial.slice(0, -1)).toEqual(lines.slice(0, partial.length - 1));
    expect(out.files[2]!.path).toBe(join(dir, 'plain.jsonl'));
  });
});
