import { createHmac } from 'node:crypto';

/**
 * The pseudonymous key of a student: a keyed HMAC of the roster's student id. Stable for a given key; without the
 * key it cannot be linked back. Rotating the key re-keys every student (see README).
 */
export function studentKey(secret: string, studentId: string): string {
  return createHmac('sha256', secret).update(`student:${studentId}`).digest('hex').slice(0, 32);
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
