import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers.js';

function edlake(args: string[], env: Record<string, string> = {}) {
  const home = tempDir('cli');
  const res = spawnSync(process.execPath, ['bin/edlake.js', ...args], {
    env: { ...process.env, EDLAKE_HOME: home, ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return {
    code: res.status,
    stdout: res.stdout,
    stderr: res.stderr
      .split('\n')
      .filter(
        (l) =>
          l &&
          !/Warning|AWS|node >=22|a\.co|trace-warnings|^$|To continue|security updates|versions published|will require/.test(
            l,
          ),
      ),
  };
}

describe('edlake command errors: one clear line, non-zero exit, no stack trace', () => {
  it('a bad config value names the key and the rule', () => {
    const r = edlake(['status'], { EDLAKE_DUCKDB_THREADS: 'lots' });
    expect(r.code).toBe(3);
    expect(r.stderr).toEqual([
      expect.stringMatching(/^edlake: invalid setting pipeline\.duckdbThreads \(EDLAKE_DUCKDB_THREADS\) = "lots": /),
    ]);
  });

  it('an unreachable Temporal says where it looked', () => {
    const r = edlake(['run', '--date', '2026-01-05'], { EDLAKE_TEMPORAL_ADDRESS: '127.0.0.1:1' });
    expect(r.code).toBe(4);
    expect(r.stderr).toEqual(['edlake: Temporal at 127.0.0.1:1 is unreachable (start it with: edlake services up)']);
  });

  it('an unreachable MinIO says which endpoint', () => {
    const dir = tempDir('in');
    const r = edlake(['ingest', dir, '--source', 'xapi', '--date', '2026-01-05'], {
      EDLAKE_LAKE_KIND: 's3',
      EDLAKE_S3_ENDPOINT: 'http://127.0.0.1:1',
    });
    expect(r.code).toBe(4);
    expect(r.stderr).toHaveLength(1);
    expect(r.stderr[0]).toMatch(/^edlake: object store at http:\/\/127\.0\.0\.1:1 is unreachable/);
  });

  it('a missing input file is named', () => {
    const r = edlake(['ingest', '/no/such/statements.jsonl', '--source', 'xapi']);
    expect(r.code).toBe(5);
    expect(r.stderr).toEqual(['edlake: input file not found: /no/such/statements.jsonl']);
  });

  it('an unknown option is a usage error', () => {
    const r = edlake(['run', '--dte', '2026-01-05']);
    expect(r.code).toBe(2);
    expect(r.stderr.join('\n')).toContain("required option '--date <date>' not specified");
  });
});
