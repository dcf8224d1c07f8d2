/**
 * The gold feature catalogue, defined once: each feature's name, plain definition, window and unit, and the SQL
 * that computes it over `silver/student_day` rows. The SQL of `gold/student_features` and the catalogue in
 * docs/FEATURES.md are both generated from this list.
 */
export interface FeatureDefinition {
  name: string;
  definition: string;
  /** Lookback in days ending on the as-of date (inclusive); null for features that are not windowed. */
  window: number | null;
  unit: string;
  /** An aggregate over student_day rows; `{f}` is replaced by the window's row filter. */
  sql: string;
}

export const WINDOWS = [7, 14, 28] as const;
export const MAX_LOOKBACK_DAYS = Math.max(...WINDOWS);

const windowed: Omit<FeatureDefinition, 'window'>[] = [
  { name: 'events', definition: 'events of every modality', unit: 'events', sql: 'sum(events) FILTER ({f})' },
  {
    name: 'activity_events',
    definition: 'xAPI statements and Caliper events',
    unit: 'events',
    sql: 'sum(activity_events) FILTER ({f})',
  },
  {
    name: 'practice_events',
    definition: 'practice attempts from LMS log exports',
    unit: 'attempts',
    sql: 'sum(practice_events) FILTER ({f})',
  },
  { name: 'video_events', definition: 'video-player events', unit: 'events', sql: 'sum(video_events) FILTER ({f})' },
  {
    name: 'forum_posts',
    definition: 'forum posts, replies and essays',
    unit: 'posts',
    sql: 'sum(forum_posts) FILTER ({f})',
  },
  {
    name: 'forum_words',
    definition: 'words written in the forum',
    unit: 'words',
    sql: 'sum(forum_words) FILTER ({f})',
  },
  {
    name: 'active_days',
    definition: 'days with at least one event',
    unit: 'days',
    sql: 'count(*) FILTER (({f}) AND events > 0)',
  },
  {
    name: 'sessions',
    definition: 'study sessions (events separated by less than the session gap)',
    unit: 'sessions',
    sql: 'sum(sessions) FILTER ({f})',
  },
  {
    name: 'session_minutes_avg',
    definition: 'mean session length',
    unit: 'minutes',
    sql: 'sum(session_minutes) FILTER ({f}) / nullif(sum(sessions) FILTER ({f}), 0)',
  },
  {
    name: 'accuracy',
    definition: 'share of answered items (xAPI answers and practice attempts) that were correct',
    unit: 'ratio',
    sql: 'sum(correct) FILTER ({f}) / nullif(sum(answered) FILTER ({f}), 0)',
  },
  {
    name: 'attempts_per_item',
    definition: 'practice attempts per distinct practice problem (problems counted per day)',
    unit: 'attempts',
    sql: 'sum(practice_attempts) FILTER ({f}) / nullif(sum(practice_items) FILTER ({f}), 0)',
  },
  {
    name: 'practice_accuracy',
    definition: 'share of practice attempts that were correct',
    unit: 'ratio',
    sql: 'sum(practice_correct) FILTER ({f}) / nullif(sum(practice_events) FILTER ({f}), 0)',
  },
  {
    name: 'time_on_task_minutes',
    definition: 'time on task reported by the sources (xAPI result.duration, LMS time_spent)',
    unit: 'minutes',
    sql: 'sum(time_on_task_minutes) FILTER ({f})',
  },
  {
    name: 'video_minutes',
    definition: 'video watched, re-watched parts counted once per day',
    unit: 'minutes',
    sql: 'sum(video_minutes) FILTER ({f})',
  },
  {
    name: 'video_completion',
    definition: 'mean share of each watched video that was seen',
    unit: 'ratio',
    sql: 'avg(video_completion) FILTER ({f})',
  },
  {
    name: 'submissions',
    definition: 'assessment submissions',
    unit: 'submissions',
    sql: 'sum(submissions) FILTER ({f})',
  },
  {
    name: 'late_submissions',
    definition: 'submissions after their due time',
    unit: 'submissions',
    sql: 'sum(late_submissions) FILTER ({f})',
  },
  {
    name: 'lateness_hours_avg',
    definition: 'mean hours past due per submission (0 when on time)',
    unit: 'hours',
    sql: 'sum(lateness_hours) FILTER ({f}) / nullif(sum(submissions) FILTER ({f}), 0)',
  },
  {
    name: 'assessment_score_avg',
    definition: 'mean assessment score as a share of the maximum',
    unit: 'ratio',
    sql: 'avg(assessment_score) FILTER ({f})',
  },
  {
    name: 'events_trend',
    definition: 'least-squares slope of daily events over the window (zero-activity days included)',
    unit: 'events/day',
    sql: 'regr_slope(events, day_index) FILTER ({f})',
  },
];

export const FEATURES: FeatureDefinition[] = [
  ...WINDOWS.flatMap((w) => windowed.map((f) => ({ ...f, name: `${f.name}_${w}d`, window: w }))),
  {
    name: 'days_since_last_activity',
    definition: `days since the last day with an event; ${MAX_LOOKBACK_DAYS + 1} when none in the last ${MAX_LOOKBACK_DAYS} days`,
    window: null,
    unit: 'days',
    sql: `coalesce(max(day_index) FILTER (WHERE events > 0) * -1, ${MAX_LOOKBACK_DAYS + 1})`,
  },
  {
    name: 'active_streak_days',
    definition: 'consecutive days with events ending on the as-of date',
    window: null,
    unit: 'days',
    sql: `coalesce(min(-day_index) FILTER (WHERE events = 0), count(*))`,
  },
];

/** student_day measures stored rounded to 6 decimals (the rest are counts). */
const DECIMAL_MEASURES = [
  'lateness_hours',
  'assessment_score',
  'practice_minutes',
  'time_on_task_minutes',
  'session_minutes',
  'video_minutes',
  'video_completion',
  'attention',
];

/**
 * SQL of `gold/student_features` for one as-of date over a `student_day` relation that holds the lookback days.
 * `day_index` is the day's offset from the as-of date (0 on it, -1 the day before…); students are those on the
 * as-of date's grid.
 */
export function studentFeaturesSql(studentDay: string, asOf: string): string {
  const cols = FEATURES.map((f) => {
    const filter = f.window === null ? 'true' : `day_index > ${-f.window}`;
    // Rounded so that parallel aggregation order cannot change the last bits: re-runs give identical rows.
    return `round(CAST(${f.sql.replaceAll('{f}', filter)} AS DOUBLE), 9) AS ${f.name}`;
  });
  // The student_day measures kept to 6 decimals, as exact decimals: their sums do not depend on the order parallel
  // aggregation adds them in, so a re-run (after a retry, on another worker) gives bit-identical features.
  const exact = DECIMAL_MEASURES.filter((c) => FEATURES.some((f) => new RegExp(`\\b${c}\\b`).test(f.sql)))
    .map((c) => `CAST(${c} AS DECIMAL(18, 6)) AS ${c}`)
    .join(', ');
  return `
    WITH d AS (SELECT *${exact ? ` REPLACE (${exact})` : ''}, CAST(date - DATE '${asOf}' AS INTEGER) AS day_index FROM ${studentDay}
               WHERE date BETWEEN DATE '${asOf}' - ${MAX_LOOKBACK_DAYS - 1} AND DATE '${asOf}'),
    grid AS (SELECT DISTINCT student_key, course_id FROM d WHERE day_index = 0)
    SELECT d.student_key, d.course_id, DATE '${asOf}' AS as_of_date,
      ${cols.join(',\n      ')}
    FROM d JOIN grid ON grid.student_key = d.student_key AND grid.course_id IS NOT DISTINCT FROM d.course_id
    GROUP BY d.student_key, d.course_id`;
}

/** The feature catalogue as Markdown, for docs/FEATURES.md. */
export function featureCatalogueMarkdown(): string {
  const lines = [
    '# Feature catalogue',
    '',
    'Generated from `activities/features.ts` by `npm run docs:features`; one row per feature of `gold/student_features`',
    '(one row per student, course and as-of date). Windows end on the as-of date and include it.',
    '',
    '| name | definition | window | unit |',
    '|---|---|---|---|',
    ...FEATURES.map((f) => `| \`${f.name}\` | ${f.definition} | ${f.window ? `${f.window} days` : '—'} | ${f.unit} |`),
    '',
  ];
  return lines.join('\n');
}
