import { readFileSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { describe, expect, it } from 'vitest';
import { FEATURES, featureCatalogueMarkdown, studentFeaturesSql } from '../../activities/features.js';

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
});
