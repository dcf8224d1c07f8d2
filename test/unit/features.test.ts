import { readFileSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { describe, expect, it } from 'vitest';
import {
  FEATURES,
  featureCatalogueMarkdown,
  studentFeaturesDefinitionSql,
  studentFeaturesSql,
} from '../../activities/features.js';
import { goldDatesFor } from '../../workflows/contracts.js';

describe('feature catalogue', () => {
  it('docs/FEATURES.md is generated from the code (npm run docs:features)', () => {
    expect(readFileSync(new URL('../../docs/FEATURES.md', import.meta.url), 'utf8')).toBe(featureCatalogueMarkdown());
  });

  it('computes windows, trends, recency and streaks on a small grid', async () => {
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    // One student over 10 days: active on days -9, -2, -1, 0 with 1, 2, 3, 4 events; idle otherwise.
    const events: Record<number, number> = { [-9]: 1, [-2]: 2, [-1]: 3, [0]: 4 };
    const rows = Array.from({ length: 10 }, (_, i) => i - 9).map((k) => {
      const e = events[k] ?? 0;
      return `('s1', 'C1', DATE '2026-05-10' + ${k}, ${e}, ${e}, 0, 0, 0, 0, ${e ? 1 : 0}, ${e ? 10 : 0}, ${e}, ${e ? e - 1 : 0}, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL)`;
    });
    await conn.run(`CREATE TABLE sd AS SELECT * FROM (VALUES ${rows.join(',')}) t(student_key, course_id, date, events, activity_events,
      practice_events, video_events, forum_posts, forum_words, sessions, session_minutes, answered, correct, submissions,
      late_submissions, lateness_hours, attempts, items, practice_correct, practice_attempts, practice_items, time_on_task_minutes,
      video_minutes, videos_watched, video_completion, assessment_score)`);
    const r = (await conn.runAndReadAll(studentFeaturesSql('sd', '2026-05-10'))).getRowObjectsJson()[0]!;
    conn.closeSync();
    db.closeSync();
    expect(Object.keys(r)).toEqual(['student_key', 'course_id', 'as_of_date', ...FEATURES.map((f) => f.name)]);
    expect(r.events_7d).toBe(9);
    expect(r.events_14d).toBe(10);
    expect(r.active_days_7d).toBe(3);
    expect(r.sessions_7d).toBe(3);
    expect(r.session_minutes_avg_7d).toBe(10);
    expect(r.accuracy_7d).toBeCloseTo((1 + 2 + 3) / 9, 8);
    expect(r.days_since_last_activity).toBe(0);
    expect(r.active_streak_days).toBe(3);
    expect(Number(r.events_trend_7d)).toBeGreaterThan(0);
  });

  it('computes every feature as its definition does, on a random grid with gaps and missing values', async () => {
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    // 300 students × 2 courses over 40 days (the lookback and days outside it), some days missing, measures random,
    // assessment score and video completion often NULL, some students idle for whole windows.
    await conn.run(`SELECT setseed(0.42)`);
    await conn.run(`CREATE TABLE sd AS
      WITH g AS (SELECT 's' || s AS student_key, 'C' || c AS course_id, DATE '2026-05-10' - CAST(k AS INTEGER) AS date, s
                 FROM range(300) a(s), range(2) b(c), range(40) t(k) WHERE random() > 0.1),
      v AS (SELECT *, CASE WHEN s % 7 = 0 THEN 0 ELSE CAST(floor(random() * 3) AS INTEGER) END AS busy FROM g)
      SELECT student_key, course_id, date,
        busy * CAST(floor(random() * 20) AS INTEGER) AS events, CAST(floor(random() * 5) AS INTEGER) AS activity_events,
        CAST(floor(random() * 5) AS INTEGER) AS practice_events, CAST(floor(random() * 5) AS INTEGER) AS video_events,
        CAST(floor(random() * 2) AS INTEGER) AS forum_posts, CAST(floor(random() * 90) AS INTEGER) AS forum_words,
        CAST(floor(random() * 3) AS INTEGER) AS sessions, round(random() * 90, 6) AS session_minutes,
        CAST(floor(random() * 9) AS INTEGER) AS answered, CAST(floor(random() * 5) AS INTEGER) AS correct,
        CAST(floor(random() * 2) AS INTEGER) AS submissions, CAST(floor(random() * 2) AS INTEGER) AS late_submissions,
        round(random() * 30, 6) AS lateness_hours, CAST(floor(random() * 9) AS INTEGER) AS attempts,
        CAST(floor(random() * 9) AS INTEGER) AS items, CAST(floor(random() * 4) AS INTEGER) AS practice_correct,
        CAST(floor(random() * 9) AS INTEGER) AS practice_attempts, CAST(floor(random() * 4) AS INTEGER) AS practice_items,
        round(random() * 120, 6) AS time_on_task_minutes, round(random() * 40, 6) AS video_minutes,
        CAST(floor(random() * 3) AS INTEGER) AS videos_watched,
        CASE WHEN random() < 0.5 THEN round(random(), 6) END AS video_completion,
        CASE WHEN random() < 0.3 THEN round(random(), 6) END AS assessment_score
      FROM v`);
    const read = async (sql: string) =>
      (await conn.runAndReadAll(`${sql} ORDER BY student_key, course_id`)).getRowObjectsJson();
    const plan = await read(studentFeaturesSql('sd', '2026-05-10'));
    const definition = await read(studentFeaturesDefinitionSql('sd', '2026-05-10'));
    conn.closeSync();
    db.closeSync();
    expect(plan.length).toBeGreaterThan(500);
    expect(plan.length).toBe(definition.length);
    for (const [i, row] of plan.entries()) {
      for (const f of FEATURES) {
        const [a, b] = [row[f.name], definition[i]![f.name]];
        if (b === null) expect(a, `${f.name} of ${String(row.student_key)}`).toBeNull();
        else expect(Number(a), `${f.name} of ${String(row.student_key)}`).toBeCloseTo(Number(b), 8);
      }
    }
  });

  it('recomputes the as-of dates a late event reaches (its lookback), not the history up to tonight', () => {
    const day = (n: number) => new Date(Date.parse('2027-01-31T00:00:00Z') + n * 86_400_000).toISOString().slice(0, 10);
    const got = goldDatesFor([day(-100), day(-2), day(0)], day(0));
    const want = [
      ...Array.from({ length: 28 }, (_, i) => day(-100 + i)), // -100 … -73
      day(-2),
      day(-1),
      day(0),
    ];
    expect(got).toEqual(want);
    expect(goldDatesFor([], day(0))).toEqual([day(0)]);
  });
});
