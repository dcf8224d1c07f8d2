import { describe, expect, it } from 'vitest';
import { bronzeFileKey, dataFileKey, dateRange, manifestKey, partitionPrefix } from '../../lake/paths.js';
import { assertSafeKey } from '../../lake/store.js';

describe('lake paths', () => {
  it('lays out the medallion partitions', () => {
    expect(partitionPrefix('silver', 'xapi_statements', '2026-09-14')).toBe('silver/xapi_statements/dt=2026-09-14/');
    expect(manifestKey('gold', 'student_daily_features', '2026-09-14')).toBe(
      'gold/student_daily_features/dt=2026-09-14/_manifest.json',
    );
    expect(dataFileKey('quarantine', 'xapi', '2026-09-14', 'run-abc', 3, 'parquet')).toBe(
      'quarantine/xapi/dt=2026-09-14/run-abc/part-00003.parquet',
    );
  });

  it('keeps bronze names but makes them safe', () => {
    const key = bronzeFileKey('xapi', '2026-09-14', 'ab'.repeat(32), '../../etc/pass wd;DROP TABLE.jsonl');
    expect(key.startsWith('bronze/xapi/dt=2026-09-14/abababababababab-')).toBe(true);
    expect(key).not.toContain('..');
    expect(key).not.toContain(' ');
    expect(() => assertSafeKey(key)).not.toThrow();
  });

  it('rejects bad dates, names and keys', () => {
    expect(() => partitionPrefix('silver', 'xapi', '2026-02-30')).toThrow(/invalid date/);
    expect(() => partitionPrefix('silver', 'X;drop', '2026-02-03')).toThrow(/invalid dataset/);
    for (const k of ['/abs', 'a/../b', 'a\\b', '']) expect(() => assertSafeKey(k)).toThrow(/unsafe/);
  });

  it('enumerates date ranges inclusively', () => {
    expect(dateRange('2026-02-27', '2026-03-02')).toEqual(['2026-02-27', '2026-02-28', '2026-03-01', '2026-03-02']);
  });
});
