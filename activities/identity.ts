import { createHmac } from 'node:crypto';

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** What a `student_key` looks like: 12 characters of lowercase base32 (RFC 4648 alphabet). */
export const STUDENT_KEY_PATTERN = '^[a-z2-7]{12}$';

/**
 * The pseudonymous key of a student: the first 60 bits of a keyed HMAC-SHA256 of the roster's student id, as 12
 * characters of lowercase base32. Stable for a given key; without the key it cannot be linked back. Rotating the key
 * re-keys every student (see README). Twelve characters are stored inline by DuckDB (no pointer to follow when
 * hashing, comparing or sorting by student), which the timeline's and gold's per-student passes feel; the roster
 * refuses a snapshot in which two students would share a key (`keyCollision`), so 60 bits never merge two students.
 */
export function studentKey(secret: string, studentId: string): string {
  let v = createHmac('sha256', secret).update(`student:${studentId}`).digest().readBigUInt64BE(0) >> 4n;
  let out = '';
  for (let i = 0; i < 12; i++, v >>= 5n) out = BASE32[Number(v & 31n)]! + out;
  return out;
}

/** The first pair of roster rows (1-based, in the order given) whose keys are equal, or null when all differ. */
export function keyCollision(keys: Iterable<string>): [number, number] | null {
  const seen = new Map<string, number>();
  let row = 0;
  for (const k of keys) {
    row++;
    const first = seen.get(k);
    if (first !== undefined) return [first, row];
    seen.set(k, row);
  }
  return null;
}

/** Normalised identity strings under which a source may name a student; used only in memory, never written. */
export function identityForms(
  row: { student_id: string; email: string | null; lms_id: string | null },
  lmsHome: string,
): string[] {
  const out = [`id:${row.student_id}`];
  if (row.email) out.push(`mbox:mailto:${row.email.trim().toLowerCase()}`);
  if (row.lms_id) out.push(`account:${lmsHome}|${row.lms_id.trim()}`, `lms:${row.lms_id.trim()}`);
  return out;
}
