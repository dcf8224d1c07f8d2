import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { keyCollision, STUDENT_KEY_PATTERN, studentKey } from '../../activities/identity.js';

describe('student keys', () => {
  it('are 12 base32 characters carrying the first 60 bits of the keyed HMAC', () => {
    const key = studentKey('secret', 'S000123');
    expect(key).toMatch(new RegExp(STUDENT_KEY_PATTERN));
    // Decoding the 12 characters gives back the top 60 bits of HMAC-SHA256(secret, "student:<id>").
    const bits = [...key].reduce((v, c) => (v << 5n) | BigInt('abcdefghijklmnopqrstuvwxyz234567'.indexOf(c)), 0n);
    const mac = createHmac('sha256', 'secret').update('student:S000123').digest().readBigUInt64BE(0);
    expect(bits).toBe(mac >> 4n);
    expect(studentKey('secret', 'S000123')).toBe(key);
    expect(studentKey('other secret', 'S000123')).not.toBe(key);
  });

  it('differ for 200,000 students, and a collision is found with the rows that share a key', () => {
    const keys = Array.from({ length: 200_000 }, (_, i) => studentKey('secret', `S${i}`));
    expect(new Set(keys).size).toBe(keys.length);
    expect(keyCollision(keys)).toBeNull();
    expect(keyCollision(['aaaaaaaaaaaa', 'bbbbbbbbbbbb', 'cccccccccccc', 'bbbbbbbbbbbb'])).toEqual([2, 4]);
  });
});
