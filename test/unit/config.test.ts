import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, redactedConfig } from '../../config/index.js';
import { tempDir } from '../helpers.js';

const cwd = '/srv/app';

describe('loadConfig', () => {
  it('defaults to the embedded setup', () => {
    const c = loadConfig({ HOME: '/home/u' }, cwd);
    expect(c.home).toBe('/srv/app/.edlake');
    expect(c.lake).toEqual({ kind: 'local', root: '/srv/app/.edlake/lake' });
    expect(c.temporal.address).toBe('127.0.0.1:7233');
    expect(c.temporal.uiUrl).toBe('http://127.0.0.1:8233');
    expect(c.temporal.external).toBe(false);
    expect(c.cacheDir).toBe('/home/u/.cache/edlake');
  });

  it('takes overrides from EDLAKE_* and TEMPORAL_ADDRESS', () => {
    const c = loadConfig(
      {
        EDLAKE_LAKE_KIND: 's3',
        EDLAKE_S3_BUCKET: 'school-lake',
        EDLAKE_S3_ENDPOINT: 'http://127.0.0.1:9100',
        TEMPORAL_ADDRESS: 'temporal.internal:7233',
        EDLAKE_DUCKDB_THREADS: '8',
      },
      cwd,
    );
    expect(c.lake.kind).toBe('s3');
    if (c.lake.kind !== 's3') throw new Error('unreachable');
    expect(c.lake.bucket).toBe('school-lake');
    expect(c.lake.endpoint).toBe('http://127.0.0.1:9100');
    expect(c.temporal.external).toBe(true);
    expect(c.temporal.address).toBe('temporal.internal:7233');
    expect(c.pipeline.duckdbThreads).toBe(8);
  });

  it('reads an optional JSON file, overridden by env', () => {
    const dir = tempDir('cfgfile');
    const file = join(dir, 'edlake.json');
    writeFileSync(file, JSON.stringify({ pipeline: { sessionGapMinutes: 45, duckdbThreads: 3 } }));
    const c = loadConfig({ EDLAKE_CONFIG: file, EDLAKE_DUCKDB_THREADS: '5' }, cwd);
    expect(c.pipeline.sessionGapMinutes).toBe(45);
    expect(c.pipeline.duckdbThreads).toBe(5);
  });

  it('stops with one line naming the key, its env variable and the rule', () => {
    expect(() => loadConfig({ EDLAKE_DUCKDB_THREADS: 'many' }, cwd)).toThrow(ConfigError);
    try {
      loadConfig({ EDLAKE_TEMPORAL_ADDRESS: 'no-port-here' }, cwd);
      expect.unreachable();
    } catch (err) {
      const msg = (err as Error).message;
      expect(msg).toContain('temporal.address');
      expect(msg).toContain('EDLAKE_TEMPORAL_ADDRESS');
      expect(msg).toContain('must be host:port');
      expect(msg).not.toContain('\n');
    }
  });

  it('refuses secrets in a file and never prints them', () => {
    const dir = tempDir('cfgsecret');
    const file = join(dir, 'edlake.json');
    writeFileSync(file, JSON.stringify({ pseudonymKey: 'a-secret-that-must-not-be-in-files' }));
    expect(() => loadConfig({ EDLAKE_CONFIG: file }, cwd)).toThrow(/secret and is read from the environment only/);

    const c = loadConfig(
      { EDLAKE_PSEUDONYM_KEY: 'k'.repeat(40), EDLAKE_LAKE_KIND: 's3', EDLAKE_S3_SECRET_ACCESS_KEY: 'S3-SECRET-VALUE' },
      cwd,
    );
    const shown = JSON.stringify(redactedConfig(c));
    expect(shown).not.toContain('k'.repeat(40));
    expect(shown).not.toContain('S3-SECRET-VALUE');
    try {
      loadConfig({ EDLAKE_PSEUDONYM_KEY: 'short-key' }, cwd);
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toContain('pseudonymKey');
      expect((err as Error).message).not.toContain('short-key');
    }
  });
});
