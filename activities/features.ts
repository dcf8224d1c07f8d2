import { FEATURE_LOOKBACK_DAYS } from '../workflows/contracts.js';

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
  /** The definition: an aggregate over student_day rows; `{f}` is replaced by the window's row filter. */
  sql: string;
  /**
   * How the feature is computed: an expression over per-bucket partial aggregates of PARTS — `S(part)` their sum
   * over the buckets the window covers, `MAX(part)` / `MIN(part)` over every bucket (see studentFeaturesSql). Equal
   * to `sql` (tested).
   */
  plan: string;
}

/**
 * Partial aggregates per student, course and lookback bucket (days 0…-6, -7…-13, -14…-27): every windowed feature is
 * a combination of their sums over the buckets its window covers, so the daily rows are aggregated once, not once per
 * window and feature.
 */
const PARTS: Record<string, string> = {
  events: 'sum(events)',
  activity_events: 'sum(activity_events)',
  practice_events: 'sum(practice_events)',
  video_events: 'sum(video_events)',
  forum_posts: 'sum(forum_posts)',
  forum_words: 'sum(forum_words)',
  active_days: 'count(*) FILTER (WHERE events > 0)',
  sessions: 'sum(sessions)',
  session_minutes: 'sum(session_minutes)',
  correct: 'sum(correct)',
  answered: 'sum(answered)',
  practice_attempts: 'sum(practice_attempts)',
  practice_items: 'sum(practice_items)',
  practice_correct: 'sum(practice_correct)',
  time_on_task_minutes: 'sum(time_on_task_minutes)',
  video_minutes: 'sum(video_minutes)',
  video_completion_sum: 'sum(video_completion)',
  video_completion_n: 'count(video_completion)',
  submissions: 'sum(submissions)',
  late_submissions: 'sum(late_submissions)',
  lateness_hours: 'sum(lateness_hours)',
  assessment_score_sum: 'sum(assessment_score)',
  assessment_score_n: 'count(assessment_score)',
  n: 'count(*)',
  sx: 'sum(day_index)',
  sy: 'sum(events)',
  sxy: 'sum(day_index * events)',
  sxx: 'sum(day_index * day_index)',
  last_active: 'max(day_index) FILTER (WHERE events > 0)',
  first_idle: 'min(-day_index) FILTER (WHERE events = 0)',
};

export const WINDOWS = [7, 14, 28] as const;
export const MAX_LOOKBACK_DAYS = Math.max(...WINDOWS);
if (MAX_LOOKBACK_DAYS !== FEATURE_LOOKBACK_DAYS)
  throw new Error(`workflows/contracts.ts FEATURE_LOOKBACK_DAYS must be ${MAX_LOOKBACK_DAYS}, the longest window`);

const windowed: Omit<FeatureDefinition, 'window'>[] = [
  {
    name: 'events',
    definition: 'events of every modality',
    unit: 'events',
    sql: 'sum(events) FILTER ({f})',
    plan: 'S(events)',
  },
  {
    name: 'activity_events',
    definition: 'xAPI statements and Caliper events',
    unit: 'events',
    sql: 'sum(activity_events) FILTER ({f})',
    plan: 'S(activity_events)',
  },
  {
    name: 'practice_events',
    definition: 'practice attempts from LMS log exports',
    unit: 'attempts',
    sql: 'sum(practice_events) FILTER ({f})',
    plan: 'S(practice_events)',
  },
  {
    name: 'video_events',
    definition: 'video-player events',
    unit: 'events',
    sql: 'sum(video_events) FILTER ({f})',
    plan: 'S(video_events)',
  },
  {
    name: 'forum_posts',
    definition: 'forum posts, replies and essays',
    unit: 'posts',
    sql: 'sum(forum_posts) FILTER ({f})',
    plan: 'S(forum_posts)',
  },
  {
    name: 'forum_words',
    definition: 'words written in the forum',
    unit: 'words',
    sql: 'sum(forum_words) FILTER ({f})',
    plan: 'S(forum_words)',
  },
  {
    name: 'active_days',
    definition: 'days with at least one event',
    unit: 'days',
    sql: 'count(*) FILTER (({f}) AND events > 0)',
    plan: 'S(active_days)',
  },
  {
    name: 'sessions',
    definition: 'study sessions (events separated by less than the session gap)',
    unit: 'sessions',
    sql: 'sum(sessions) FILTER ({f})',
    plan: 'S(sessions)',
  },
  {
    name: 'session_minutes_avg',
    definition: 'mean session length',
    unit: 'minutes',
    sql: 'sum(session_minutes) FILTER ({f}) / nullif(sum(sessions) FILTER ({f}), 0)',
    plan: 'S(session_minutes) / nullif(S(sessions), 0)',
  },
  {
    name: 'accuracy',
    definition: 'share of answered items (xAPI answers and practice attempts) that were correct',
    unit: 'ratio',
    sql: 'sum(correct) FILTER ({f}) / nullif(sum(answered) FILTER ({f}), 0)',
    plan: 'S(correct) / nullif(S(answered), 0)',
  },
  {
    name: 'attempts_per_item',
    definition: 'practice attempts per distinct practice problem (problems counted per day)',
    unit: 'attempts',
    sql: 'sum(practice_attempts) FILTER ({f}) / nullif(sum(practice_items) FILTER ({f}), 0)',
    plan: 'S(practice_attempts) / nullif(S(practice_items), 0)',
  },
  {
    name: 'practice_accuracy',
    definition: 'share of practice attempts that were correct',
    unit: 'ratio',
    sql: 'sum(practice_correct) FILTER ({f}) / nullif(sum(practice_events) FILTER ({f}), 0)',
    plan: 'S(practice_correct) / nullif(S(practice_events), 0)',
  },
  {
    name: 'time_on_task_minutes',
    definition: 'time on task reported by the sources (xAPI result.duration, LMS time_spent)',
    unit: 'minutes',
    sql: 'sum(time_on_task_minutes) FILTER ({f})',
    plan: 'S(time_on_task_minutes)',
  },
  {
    name: 'video_minutes',
    definition: 'video watched, re-watched parts counted once per day',
    unit: 'minutes',
    sql: 'sum(video_minutes) FILTER ({f})',
    plan: 'S(video_minutes)',
  },
  {
    name: 'video_completion',
    definition: 'mean share of each watched video that was seen',
    unit: 'ratio',
    sql: 'avg(video_completion) FILTER ({f})',
    plan: 'S(video_completion_sum) / nullif(S(video_completion_n), 0)',
  },
  {
    name: 'submissions',
    definition: 'assessment submissions',
    unit: 'submissions',
    sql: 'sum(submissions) FILTER ({f})',
    plan: 'S(submissions)',
  },
  {
    name: 'late_submissions',
    definition: 'submissions after their due time',
    unit: 'submissions',
    sql: 'sum(late_submissions) FILTER ({f})',
    plan: 'S(late_submissions)',
  },
  {
    name: 'lateness_hours_avg',
    definition: 'mean hours past due per submission (0 when on time)',
    unit: 'hours',
    sql: 'sum(lateness_hours) FILTER ({f}) / nullif(sum(submissions) FILTER ({f}), 0)',
    plan: 'S(lateness_hours) / nullif(S(submissions), 0)',
  },
  {
    name: 'assessment_score_avg',
    definition: 'mean assessment score as a share of the maximum',
    unit: 'ratio',
    sql: 'avg(assessment_score) FILTER ({f})',
    plan: 'S(assessment_score_sum) / nullif(S(assessment_score_n), 0)',
  },
  {
    name: 'events_trend',
    definition: 'least-squares slope of daily events over the window (zero-activity days included)',
    unit: 'events/day',
    sql: 'regr_slope(events, day_index) FILTER ({f})',
    plan: '(S(n) * S(sxy) - S(sx) * S(sy)) / nullif(S(n) * S(sxx) - S(sx) * S(sx), 0)',
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
    plan: `coalesce(-MAX(last_active), ${MAX_LOOKBACK_DAYS + 1})`,
  },
  {
    name: 'active_streak_days',
    definition: 'consecutive days with events ending on the as-of date',
    window: null,
    unit: 'days',
    sql: `coalesce(min(-day_index) FILTER (WHERE events = 0), count(*))`,
    plan: 'coalesce(MIN(first_idle), S(n))',
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

/** The lookback rows of one as-of date with day_index, and the 6-decimal measures as exact decimals. */
function lookbackRows(studentDay: string, asOf: string): string {
  // The student_day measures kept to 6 decimals, as exact decimals: their sums do not depend on the order parallel
  // aggregation adds them in, so a re-run (after a retry, on another worker) gives bit-identical features.
  const exact = DECIMAL_MEASURES.filter((c) => Object.values(PARTS).some((p) => new RegExp(`\\b${c}\\b`).test(p)))
    .map((c) => `CAST(${c} AS DECIMAL(18, 6)) AS ${c}`)
    .join(', ');
  return `SELECT *${exact ? ` REPLACE (${exact})` : ''}, CAST(date - DATE '${asOf}' AS INTEGER) AS day_index FROM ${studentDay}
    WHERE date BETWEEN DATE '${asOf}' - ${MAX_LOOKBACK_DAYS - 1} AND DATE '${asOf}'`;
}

/** Rounded so that parallel aggregation order cannot change the last bits: re-runs give identical rows. */
const rounded = (sql: string, name: string) => `round(CAST(${sql} AS DOUBLE), 9) AS ${name}`;

/**
 * SQL of `gold/student_features` for one as-of date over a `student_day` relation that holds the lookback days.
 * `day_index` is the day's offset from the as-of date (0 on it, -1 the day before…); students are those on the
 * as-of date's grid. The daily rows are reduced once to PARTS per lookback bucket (one bucket per window step), and
 * each feature combines the buckets its window covers, row by row.
 */
export function studentFeaturesSql(studentDay: string, asOf: string): string {
  const bucket = `CASE ${WINDOWS.slice(0, -1)
    .map((w, i) => `WHEN day_index > ${-w} THEN ${i}`)
    .join(' ')} ELSE ${WINDOWS.length - 1} END`;
  const buckets = WINDOWS.map((_, i) => `p${i}`);
  // A part summed over buckets 0…i: NULL only when every bucket's value is (as sum() over the daily rows would be).
  const sum = (part: string, i: number) => {
    const xs = buckets.slice(0, i + 1).map((b) => `${b}.${part}`);
    return xs.length === 1
      ? xs[0]!
      : `(CASE WHEN ${xs.map((x) => `${x} IS NULL`).join(' AND ')} THEN NULL ELSE ${xs.map((x) => `coalesce(${x}, 0)`).join(' + ')} END)`;
  };
  const cols = FEATURES.map((f) => {
    const i = f.window === null ? WINDOWS.length - 1 : WINDOWS.indexOf(f.window as (typeof WINDOWS)[number]);
    const sql = f.plan
      .replace(/S\((\w+)\)/g, (_m, part: string) => sum(part, i))
      .replace(
        /(MAX|MIN)\((\w+)\)/g,
        (_m, fn: string, part: string) =>
          `${fn === 'MAX' ? 'greatest' : 'least'}(${buckets.map((b) => `${b}.${part}`).join(', ')})`,
      );
    return rounded(sql, f.name);
  });
  // Every student on the grid has a row in bucket 0 (the as-of date itself); the other buckets may be missing.
  const joins = buckets
    .slice(1)
    .map(
      (b, k) =>
        `LEFT JOIN parts ${b} ON ${b}.student_key = p0.student_key AND ${b}.course_id IS NOT DISTINCT FROM p0.course_id AND ${b}.b = ${k + 1}`,
    )
    .join('\n    ');
  return `
    WITH d AS (${lookbackRows(studentDay, asOf)}),
    grid AS (SELECT DISTINCT student_key, course_id FROM d WHERE day_index = 0),
    parts AS (
      SELECT d.student_key, d.course_id, ${bucket} AS b,
        ${Object.entries(PARTS)
          .map(([name, sql]) => `${sql} AS ${name}`)
          .join(', ')}
      FROM d JOIN grid ON grid.student_key = d.student_key AND grid.course_id IS NOT DISTINCT FROM d.course_id
      GROUP BY ALL)
    SELECT p0.student_key, p0.course_id, DATE '${asOf}' AS as_of_date,
      ${cols.join(',\n      ')}
    FROM parts p0
    ${joins}
    WHERE p0.b = 0`;
}

/** The same features straight from their definitions (one filtered aggregate each): the reference for tests. */
export function studentFeaturesDefinitionSql(studentDay: string, asOf: string): string {
  const cols = FEATURES.map((f) =>
    rounded(f.sql.replaceAll('{f}', f.window === null ? 'true' : `day_index > ${-f.window}`), f.name),
  );
  return `
    WITH d AS (${lookbackRows(studentDay, asOf)}),
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
