import type { InterventionRule } from '../../config/index.js';
import { stableUnit } from '../models/stats.js';

/** What the policy knows of one student tonight (pseudonymous). */
export interface PolicyInput {
  risk: number | null;
  atRisk: boolean | null;
  features: Record<string, number | null>;
}

/** The first rule whose every condition holds, or null. */
export function matchRule(rules: InterventionRule[], s: PolicyInput): InterventionRule | null {
  for (const r of rules) {
    const w = r.when;
    if (w.atRisk !== undefined && (s.atRisk ?? false) !== w.atRisk) continue;
    if (w.minRisk !== undefined && (s.risk === null || s.risk < w.minRisk)) continue;
    const bounds = Object.entries(w.features ?? {});
    if (
      bounds.some(([name, b]) => {
        const v = s.features[name];
        if (v === null || v === undefined || !Number.isFinite(v)) return true;
        return (b.lt !== undefined && !(v < b.lt)) || (b.gt !== undefined && !(v > b.gt));
      })
    )
      continue;
    return r;
  }
  return null;
}

/** Held back as a control: a stable hash of student and kind, so the same students stay controls night after night. */
export function isControl(studentKey: string, kind: string, share: number): boolean {
  return stableUnit(`control:${studentKey}:${kind}`) < share;
}

export interface QuietHours {
  start: number;
  end: number;
}

export function parseQuietHours(spec: string): QuietHours | null {
  if (spec === 'none') return null;
  const [start, end] = spec.split('-').map(Number) as [number, number];
  return start === end ? null : { start, end };
}

function inQuiet(hour: number, q: QuietHours): boolean {
  return q.start > q.end ? hour >= q.start || hour < q.end : hour >= q.start && hour < q.end;
}

const formats = new Map<string, Intl.DateTimeFormat>();
function localTime(ms: number, timezone: string): { hour: number; minute: number; second: number } {
  let f = formats.get(timezone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', {
      timeZone: timezone,
      hourCycle: 'h23',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formats.set(timezone, f);
  }
  const p = Object.fromEntries(f.formatToParts(new Date(ms)).map((x) => [x.type, Number(x.value)]));
  return { hour: p.hour!, minute: p.minute!, second: p.second! };
}

export function validTimezone(tz: string | null | undefined): tz is string {
  if (!tz) return false;
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/**
 * The first moment at or after `fromMs` outside the quiet hours in the student's own timezone (UTC when unknown): the
 * start of the first local hour that is not quiet. Half-hour and DST offsets are handled by stepping local hours.
 */
export function deliveryTime(fromMs: number, timezone: string | null | undefined, quiet: QuietHours | null): number {
  if (!quiet) return fromMs;
  const tz = validTimezone(timezone) ? timezone : 'UTC';
  let t = fromMs;
  for (let i = 0; i < 48; i++) {
    const l = localTime(t, tz);
    if (!inQuiet(l.hour, quiet)) return t;
    // The start of the next local hour.
    t = t - (t % 1000) - l.second * 1000 - l.minute * 60_000 + 3_600_000;
  }
  return t;
}
