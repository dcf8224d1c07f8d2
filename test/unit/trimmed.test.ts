import { DuckDBInstance, quotedString } from '@duckdb/node-api';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { trimmed } from '../../activities/silver/engine.js';

// Every character class that matters at a value's ends: ASCII spaces and other ASCII whitespace (which trim keeps),
// the non-ASCII space separators (which it removes), other non-ASCII letters and marks, and line breaks.
const edge = fc.constantFrom(
  ' ',
  '\t',
  '\n',
  '\r\n',
  '\u00a0',
  '\u2003',
  '\u3000',
  '\u200b',
  '\ufeff',
  'é',
  'e\u0301',
  '漢',
  '😀',
  'a',
  '7',
  '',
);
const value = fc
  .tuple(
    fc.array(edge, { maxLength: 3 }),
    fc.string({ maxLength: 12, unit: 'grapheme' }),
    fc.array(edge, { maxLength: 3 }),
  )
  .map(([a, mid, b]) => a.join('') + mid + b.join(''));

describe('trimmed', () => {
  it('gives what DuckDB trim gives for every value, NULL included', async () => {
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(value, { minLength: 1, maxLength: 40 }), async (values) => {
          const rows = (
            await conn.runAndReadAll(
              `SELECT x, trim(x) AS expected, ${trimmed('x')} AS got
              FROM (SELECT unnest([${values.map((v) => quotedString(v)).join(', ')}, NULL]) AS x)`,
            )
          ).getRowObjectsJson();
          expect(rows).toHaveLength(values.length + 1);
          for (const r of rows) expect(r.got, JSON.stringify(r.x)).toBe(r.expected);
        }),
        { numRuns: 200 },
      );
      // The values the short cut skips are returned as they are; those it does not are trimmed.
      const r = (
        await conn.runAndReadAll(
          `SELECT ${trimmed("'  a '")}, ${trimmed(`'\u00a0b'`)}, ${trimmed(`'c\t'`)}, ${trimmed("'d'")}`,
        )
      ).getRows()[0];
      expect(r).toEqual(['a', 'b', 'c\t', 'd']);
    } finally {
      conn.closeSync();
      db.closeSync();
    }
  });
});
