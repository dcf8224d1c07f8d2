import { describe, expect, it } from 'vitest';
import {
  checkMessage,
  FIRST_NAME,
  templateMessage,
  type MessageContext,
} from '../../activities/interventions/compose.js';
import { deliveryTime, isControl, matchRule, parseQuietHours } from '../../activities/interventions/policy.js';
import { signBody } from '../../activities/interventions/channels.js';
import { loadConfig } from '../../config/index.js';

const rules = loadConfig({}).interventions.rules;

describe('intervention policy', () => {
  it('takes the first rule whose every condition holds', () => {
    const quiet = { active_days_7d: 1, practice_events_14d: 2 };
    expect(matchRule(rules, { risk: 0.99, atRisk: true, features: quiet })?.kind).toBe('mentor_alert');
    expect(matchRule(rules, { risk: 0.99, atRisk: false, features: quiet })).toBeNull();
    expect(matchRule(rules, { risk: 0.7, atRisk: true, features: quiet })?.kind).toBe('study_plan');
    expect(matchRule(rules, { risk: 0.7, atRisk: true, features: { ...quiet, practice_events_14d: 40 } })?.kind).toBe(
      'nudge',
    );
    expect(matchRule(rules, { risk: 0.2, atRisk: false, features: quiet })).toBeNull();
    // A missing feature never satisfies a bound.
    expect(matchRule(rules, { risk: 0.9, atRisk: true, features: {} })?.kind).toBe('nudge');
  });

  it('holds back a stable share of students as the control group', () => {
    const keys = Array.from({ length: 4000 }, (_, i) => `k${i}`);
    const ctl = keys.filter((k) => isControl(k, 'nudge', 0.1));
    expect(ctl.length / keys.length).toBeGreaterThan(0.08);
    expect(ctl.length / keys.length).toBeLessThan(0.12);
    expect(keys.filter((k) => isControl(k, 'nudge', 0.1))).toEqual(ctl);
    expect(keys.filter((k) => isControl(k, 'nudge', 0))).toEqual([]);
  });

  it("moves delivery out of the quiet hours in the student's own timezone", () => {
    const q = parseQuietHours('21-8');
    const at = (iso: string, tz: string) => new Date(deliveryTime(Date.parse(iso), tz, q)).toISOString();
    // 02:00 UTC is 03:00 in Berlin (winter): quiet until 08:00 local = 07:00 UTC.
    expect(at('2026-11-23T02:00:00Z', 'Europe/Berlin')).toBe('2026-11-23T07:00:00.000Z');
    // 14:10 UTC is 09:10 in New York: not quiet, delivered at once.
    expect(at('2026-11-23T14:10:00Z', 'America/New_York')).toBe('2026-11-23T14:10:00.000Z');
    // 02:00 UTC is 21:00 the evening before in New York: quiet until 08:00 local = 13:00 UTC.
    expect(at('2026-11-23T02:00:00Z', 'America/New_York')).toBe('2026-11-23T13:00:00.000Z');
    // Half-hour offset: 20:00 UTC is 01:30 in Kolkata; 08:00 local is 02:30 UTC.
    expect(at('2026-11-23T20:00:00Z', 'Asia/Kolkata')).toBe('2026-11-24T02:30:00.000Z');
    // Summer time: 05:30 UTC in July is 07:30 in Berlin (UTC+2): 08:00 local = 06:00 UTC.
    expect(at('2026-07-01T05:30:00Z', 'Europe/Berlin')).toBe('2026-07-01T06:00:00.000Z');
    // An unknown timezone counts as UTC; "none" disables quiet hours.
    expect(at('2026-11-23T23:00:00Z', 'Mars/Olympus')).toBe('2026-11-24T08:00:00.000Z');
    expect(deliveryTime(Date.parse('2026-11-23T02:00:00Z'), 'Europe/Berlin', parseQuietHours('none'))).toBe(
      Date.parse('2026-11-23T02:00:00Z'),
    );
  });
});

describe('message checks', () => {
  const ctx: MessageContext = {
    kind: 'nudge',
    course: 'MATH101',
    factors: ['low practice events over the last 14 days', 'low active days over the last 7 days'],
    segment: 'Students who are rarely active',
  };

  it('the template passes every check for every kind', () => {
    for (const kind of ['nudge', 'study_plan', 'mentor_alert'] as const) {
      const m = templateMessage({ ...ctx, kind });
      expect(checkMessage(m, { ...ctx, kind }, 700)).toBeNull();
      expect(m.body.includes(FIRST_NAME)).toBe(kind !== 'mentor_alert');
    }
  });

  it('rejects leftover placeholders, blame, contact details, wrong naming and length', () => {
    const ok = `Hi ${FIRST_NAME}, it would be lovely to see you back in MATH101 this week for a short practice session.`;
    const check = (body: string, kind: MessageContext['kind'] = 'nudge') =>
      checkMessage({ subject: 'Hello', body }, { ...ctx, kind }, 300);
    expect(check(ok)).toBeNull();
    expect(check(`${ok} [Name]`)).toMatch(/placeholder/);
    expect(check(`${ok} {{course}}`)).toMatch(/placeholder/);
    expect(check(ok.replace('lovely', 'important, since you are failing,'))).toMatch(/tone/);
    expect(check(`${ok} Your risk score is high.`)).toMatch(/tone/);
    expect(check(`${ok} Write to tutor@school.example.`)).toMatch(/contact/);
    expect(check(`${ok} See https://example.org`)).toMatch(/contact/);
    expect(check(ok.replace(FIRST_NAME, 'there'))).toMatch(/placeholder/);
    expect(check(ok, 'mentor_alert')).toMatch(/names the student/);
    expect(check(ok + ' more'.repeat(60))).toMatch(/over 300/);
    expect(check(`${ok} COME BACK NOW!!`)).toMatch(/shouting/);
  });

  it('signs webhook bodies with HMAC-SHA256', () => {
    expect(signBody('k'.repeat(16), '{"a":1}')).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(signBody('k'.repeat(16), '{"a":1}')).not.toBe(signBody('k'.repeat(16), '{"a":2}'));
  });
});
