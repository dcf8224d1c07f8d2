import { join } from 'node:path';
import { type DuckDBConnection, quotedString } from '@duckdb/node-api';
import type { PartitionRef } from '../lake/manifest.js';
import { parquetScan, toNumber } from '../lake/duck.js';
import { landedDateOf, landedSlice, realignedSlice } from '../lake/paths.js';
import { copyToParquet, publishFile, publishQuery } from '../lake/publish-query.js';
import { type ActivityDeps, faultHold, onConnections, PARALLEL_PIECES, withHeartbeat, withWorkDir } from './context.js';
import { ErrorType, nonRetryable } from './errors.js';

export interface AlignTimelineInput {
  /** Event dates to (re)build. */
  dates: string[];
  /**
   * The landing that caused the rebuild. Earlier dates that already have a timeline are realigned only for the
   * students whose events that landing added (late events); everyone else's rows are kept as they are.
   */
  landingDate?: string;
  runId: string;
  writeId: string;
}

export interface AlignTimelineOutput {
  partitions: PartitionRef[];
  events: number;
  studentDays: number;
}

/**
 * Version 2: a session is numbered within its student and day (`session_no`, 1, 2, …; an assessment's
 * `study_session_no`) instead of a text id repeating the student key and date on every row. Version 3: 12-character
 * student keys (see `studentKey`).
 */
export const TIMELINE_SCHEMA_VERSION = 3;

/** Sensor samples further than this from an event are not joined to it. */
export const SENSOR_TOLERANCE_SECONDS = 30;

/** How each modality's silver table maps onto the common timeline columns. */
const MODALITIES: { table: string; modality: string; select: string }[] = [
  {
    table: 'xapi',
    modality: 'activity',
    select: `regexp_extract(verb, '([^/]+)$', 1) AS action, object_id, success, score_scaled AS score, NULL::INTEGER AS attempts,
      coalesce(try_cast(regexp_extract(duration, '(\\d+(?:\\.\\d+)?)H', 1) AS DOUBLE), 0) * 3600
        + coalesce(try_cast(regexp_extract(duration, 'T(?:\\d+(?:\\.\\d+)?H)?(\\d+(?:\\.\\d+)?)M', 1) AS DOUBLE), 0) * 60
        + coalesce(try_cast(regexp_extract(duration, '(\\d+(?:\\.\\d+)?)S', 1) AS DOUBLE), 0) AS duration_s,
      NULL::DOUBLE AS position, NULL::DOUBLE AS position_to, NULL::DOUBLE AS media_duration, NULL::TIMESTAMP AS due_at, NULL::INTEGER AS words`,
  },
  {
    table: 'caliper',
    modality: 'activity',
    select: `action, object_id, NULL::BOOLEAN AS success, score, NULL::INTEGER AS attempts, NULL::DOUBLE AS duration_s,
      NULL::DOUBLE AS position, NULL::DOUBLE AS position_to, NULL::DOUBLE AS media_duration, NULL::TIMESTAMP AS due_at, NULL::INTEGER AS words`,
  },
  {
    table: 'lms_csv',
    modality: 'practice',
    select: `'attempted' AS action, problem_id AS object_id, correct AS success, NULL::DOUBLE AS score, attempts, time_spent AS duration_s,
      NULL::DOUBLE AS position, NULL::DOUBLE AS position_to, NULL::DOUBLE AS media_duration, NULL::TIMESTAMP AS due_at, NULL::INTEGER AS words`,
  },
  {
    table: 'assessments',
    modality: 'assessment',
    select: `'submitted' AS action, assessment AS object_id, NULL::BOOLEAN AS success, score / nullif(max_score, 0) AS score, NULL::INTEGER AS attempts,
      NULL::DOUBLE AS duration_s, NULL::DOUBLE AS position, NULL::DOUBLE AS position_to, NULL::DOUBLE AS media_duration,
      CAST(try_cast(due_at AS TIMESTAMPTZ) AT TIME ZONE 'UTC' AS TIMESTAMP) AS due_at, NULL::INTEGER AS words`,
  },
  {
    table: 'video',
    modality: 'video',
    select: `event AS action, media_id AS object_id, NULL::BOOLEAN AS success, NULL::DOUBLE AS score, NULL::INTEGER AS attempts,
      NULL::DOUBLE AS duration_s, CASE WHEN event = 'seek' THEN seek_from ELSE position END AS position,
      CASE WHEN event = 'seek' THEN seek_to END AS position_to, media_duration, NULL::TIMESTAMP AS due_at, NULL::INTEGER AS words`,
  },
  {
    table: 'forum',
    modality: 'forum',
    select: `kind AS action, thread AS object_id, NULL::BOOLEAN AS success, NULL::DOUBLE AS score, NULL::INTEGER AS attempts,
      NULL::DOUBLE AS duration_s, NULL::DOUBLE AS position, NULL::DOUBLE AS position_to, NULL::DOUBLE AS media_duration,
      NULL::TIMESTAMP AS due_at, len(string_split(trim(text), ' ')) AS words`,
  },
];

/**
 * The files of a silver event partition in landing order, so a row id's file part orders events by landing, however
 * often a landing was re-run.
 */
async function landingOrder(deps: ActivityDeps, table: string, date: string): Promise<string[]> {
  const { manifest, paths } = await deps.lake.localFiles('silver', table, date);
  const landed = (i: number) => landedDateOf(manifest!.files[i]!.slice) ?? '';
  return paths
    .map((path, i) => ({ path, i }))
    .sort(
      (a, b) =>
        landed(a.i).localeCompare(landed(b.i)) || manifest!.files[a.i]!.key.localeCompare(manifest!.files[b.i]!.key),
    )
    .map((x) => x.path);
}

/** Where assessments sit in MODALITIES: a timeline row id carries its modality's index above bit 48. */
const assessmentModalities = MODALITIES.flatMap((m, i) => (m.modality === 'assessment' ? [i] : [])).join(', ');

/**
 * Aligns one event date: `silver/timeline` (every modality on one timeline per student, sessionized, each event
 * joined as-of to the nearest earlier sensor sample, assessments tied to the study session before them) and
 * `silver/student_day` (the dense student × course × day grid, zero-activity days present, with merged video
 * watching intervals so re-watches are not double counted).
 */
async function alignDate(
  deps: ActivityDeps,
  conn: DuckDBConnection,
  dir: string,
  date: string,
  input: AlignTimelineInput,
): Promise<PartitionRef[]> {
  const gapS = deps.config.pipeline.sessionGapMinutes * 60;
  const d = quotedString(date);
  const previous = {
    timeline: (await deps.lake.readManifest('silver', 'timeline', date)) !== null,
    student_day: (await deps.lake.localFiles('silver', 'student_day', date)).paths,
  };
  const partial =
    !!input.landingDate && date < input.landingDate && previous.timeline && previous.student_day.length > 0;
  if (partial) {
    // Students whose events the landing added to this earlier date: only they are realigned.
    const slice = landedSlice(input.landingDate!);
    const files: string[] = [];
    for (const table of [...MODALITIES.map((m) => m.table), 'sensor']) {
      files.push(...(await deps.lake.sliceFiles('silver', table, date, slice)));
    }
    await conn.run(
      files.length
        ? `CREATE OR REPLACE TEMP TABLE affected AS SELECT DISTINCT student_key FROM ${parquetScan(files)}`
        : `CREATE OR REPLACE TEMP TABLE affected (student_key VARCHAR)`,
    );
  }
  const only = partial ? 'WHERE student_key IN (SELECT student_key FROM affected)' : '';
  // Each event gets a row id from where it is stored (modality, file, row), so the narrow session and sensor pass
  // below joins back to the silver files themselves: the events are read twice and never held in memory whole (the
  // timeline file is written from the join).
  const parts: string[] = [];
  // The same row ids over the three columns sessions need (no course lookup, no other column decoded).
  const keyParts: string[] = [];
  for (const [i, m] of MODALITIES.entries()) {
    const paths = await landingOrder(deps, m.table, date);
    if (!paths.length) continue;
    const rid = `${i}::BIGINT * ${2 ** 48} + file_index * ${2 ** 32} + file_row_number AS rid`;
    // Video events carry where they were logged (bronze file and line) for the watched intervals below.
    const logged =
      m.modality === 'video'
        ? 'source_file AS logged_file, source_line AS logged_line'
        : 'NULL::VARCHAR AS logged_file, NULL::BIGINT AS logged_line';
    parts.push(`SELECT event_id, student_key, course_id, ts_utc, '${m.modality}' AS modality, '${m.table}' AS source, ${m.select},
        ${rid}, ${logged}
      FROM ${parquetScan(paths)} ${only}`);
    keyParts.push(`SELECT ${rid}, student_key, ts_utc FROM ${parquetScan(paths)} ${only}`);
  }
  // The roster snapshot in force on the date: the latest on or before it; for a late event dated before the first
  // snapshot (the term's first day, within the enrolment tolerance), the first snapshot.
  const rosterDate =
    (await deps.lake.latestPartition('silver', 'enrolments', date)) ??
    (await deps.lake.listPartitions('silver', 'enrolments'))[0];
  if (!rosterDate)
    throw nonRetryable(ErrorType.MissingPartition, `no silver/enrolments on or before ${date}; run silver first`);
  const enrol = (await deps.lake.localFiles('silver', 'enrolments', rosterDate)).paths;
  const students = (await deps.lake.localFiles('silver', 'students', rosterDate)).paths;
  await conn.run(`CREATE OR REPLACE TEMP TABLE enrol AS SELECT * FROM ${parquetScan(enrol)}`);
  // Events without a course belong to the student's course when the student has exactly one.
  await conn.run(
    `CREATE OR REPLACE TEMP VIEW ev AS SELECT u.* REPLACE (coalesce(u.course_id, c.course_id) AS course_id) FROM (${
      parts.length
        ? parts.map((p) => `(${p})`).join(' UNION ALL BY NAME ')
        : `SELECT NULL::VARCHAR AS event_id, NULL::VARCHAR AS student_key, NULL::VARCHAR AS course_id, NULL::TIMESTAMP AS ts_utc,
          NULL::VARCHAR AS modality, NULL::VARCHAR AS source, NULL::VARCHAR AS action, NULL::VARCHAR AS object_id, NULL::BOOLEAN AS success,
          NULL::DOUBLE AS score, NULL::INTEGER AS attempts, NULL::DOUBLE AS duration_s, NULL::DOUBLE AS position, NULL::DOUBLE AS position_to,
          NULL::DOUBLE AS media_duration, NULL::TIMESTAMP AS due_at, NULL::INTEGER AS words, NULL::BIGINT AS rid,
          NULL::VARCHAR AS logged_file, NULL::BIGINT AS logged_line LIMIT 0`
    }) u LEFT JOIN (
      SELECT student_key, min(course_id) AS course_id FROM enrol GROUP BY student_key HAVING count(DISTINCT course_id) = 1
    ) c ON c.student_key = u.student_key`,
  );

  // A partial realignment touches a few students: their events are read out of the day's files once, into a table
  // (a full one reads the files twice rather than copy every event).
  if (partial) {
    await conn.run(`CREATE OR REPLACE TEMP TABLE ev_part AS SELECT * FROM ev`);
    await conn.run(`CREATE OR REPLACE TEMP VIEW ev AS SELECT * FROM ev_part`);
  }
  const keys =
    partial || !keyParts.length
      ? 'SELECT rid, student_key, ts_utc FROM ev'
      : keyParts.map((p) => `(${p})`).join(' UNION ALL ');

  const sensor = (await deps.lake.localFiles('silver', 'sensor', date)).paths;
  await conn.run(
    sensor.length
      ? `CREATE OR REPLACE TEMP TABLE sens AS SELECT student_key, ts_utc, heart_rate, attention FROM ${parquetScan(sensor)} ${only}`
      : `CREATE OR REPLACE TEMP TABLE sens AS SELECT NULL::VARCHAR AS student_key, NULL::TIMESTAMP AS ts_utc, NULL::DOUBLE AS heart_rate, NULL::DOUBLE AS attention LIMIT 0`,
  );
  const sensed = toNumber((await conn.runAndReadAll('SELECT count(*) FROM sens')).getRows()[0]![0]) > 0;

  // Sessions and the sensor as-of join run on a narrow projection (row id, student, time): the window sorts then
  // carry three columns instead of the whole event, and the result joins back by row id. Events at the same instant
  // are peers: one of them carries the gap to the previous instant, and the running count over a RANGE frame gives
  // all of them the same session whatever their order, so no tie-breaker has to be sorted.
  await conn.run(`CREATE OR REPLACE TEMP TABLE tl_keys AS
    WITH k AS (${keys}),
    g AS (SELECT *, epoch(ts_utc - lag(ts_utc) OVER (PARTITION BY student_key ORDER BY ts_utc)) AS gap_s FROM k),
    s AS (
      SELECT rid, student_key, ts_utc, count(*) FILTER (WHERE gap_s IS NULL OR gap_s > ${gapS})
        OVER (PARTITION BY student_key ORDER BY ts_utc RANGE UNBOUNDED PRECEDING) AS session_no FROM g
    ),
    ${
      sensed
        ? // Only the events of students with samples that day go through the as-of join (which sorts its input); a
          // hash lookup sets the others aside.
          `ss AS MATERIALIZED (
      SELECT s.*, w.student_key IS NOT NULL AS sensed FROM s LEFT JOIN (SELECT DISTINCT student_key FROM sens) w USING (student_key)),
    j AS (SELECT s.rid, s.student_key, s.ts_utc, s.session_no,
        CASE WHEN x.ts_utc IS NOT NULL AND epoch(s.ts_utc - x.ts_utc) <= ${SENSOR_TOLERANCE_SECONDS} THEN x.heart_rate END AS heart_rate,
        CASE WHEN x.ts_utc IS NOT NULL AND epoch(s.ts_utc - x.ts_utc) <= ${SENSOR_TOLERANCE_SECONDS} THEN x.attention END AS attention
      FROM (SELECT * FROM ss WHERE sensed) s ASOF LEFT JOIN sens x ON s.student_key = x.student_key AND s.ts_utc >= x.ts_utc
      UNION ALL
      SELECT rid, student_key, ts_utc, session_no, NULL::DOUBLE, NULL::DOUBLE FROM ss WHERE NOT sensed)`
        : // No samples that day: nothing to join.
          `j AS (SELECT rid, student_key, ts_utc, session_no, NULL::DOUBLE AS heart_rate, NULL::DOUBLE AS attention FROM s)`
    }
    SELECT rid, student_key, ts_utc, CAST(session_no AS INTEGER) AS session_no, heart_rate, attention,
      rid // ${2 ** 48} IN (${assessmentModalities}) AS is_assessment
    FROM j`);
  // Each submission is tied to the last study session (non-assessment events) that ended before it.
  await conn.run(`CREATE OR REPLACE TEMP TABLE sess AS
    SELECT student_key, session_no, min(ts_utc) AS started, max(ts_utc) AS ended, epoch(max(ts_utc) - min(ts_utc)) / 60 AS minutes
    FROM tl_keys WHERE NOT is_assessment GROUP BY ALL`);
  await conn.run(`CREATE OR REPLACE TEMP TABLE study AS
    SELECT a.rid, p.session_no AS study_session_no
    FROM (SELECT rid, student_key, ts_utc FROM tl_keys WHERE is_assessment) a
    ASOF LEFT JOIN sess p ON a.student_key = p.student_key AND a.ts_utc >= p.ended`);
  // The timeline is written straight from the join back (which hashes the narrow side), into the file that is then
  // committed; the day's aggregates read that file instead of a copy of every event held in memory.
  const timelineFile = join(dir, `silver-timeline-${date}${partial ? `-realigned_${input.landingDate}` : ''}.parquet`);
  const timelineRows = await copyToParquet(
    conn,
    `SELECT ev.* EXCLUDE (rid, logged_file, logged_line), j.session_no, j.heart_rate, j.attention, s.study_session_no
    FROM ev JOIN tl_keys j ON j.rid = ev.rid LEFT JOIN study s ON s.rid = ev.rid`,
    timelineFile,
    { eventRows: true },
  );
  await conn.run(`CREATE OR REPLACE TEMP VIEW tl AS SELECT * FROM ${parquetScan([timelineFile])}`);

  // Video: watched intervals from play → next pause/seek/ended per student and media, merged so re-watches count once.
  // Events at the same instant keep the order the player logged them in (landing — the row id's file part, see
  // landingOrder — then bronze file and line, named explicitly: a slice's rows are not guaranteed to be stored in line
  // order), so the minutes depend neither on how a write was parallelized nor on anything derived from the
  // pseudonymization key, such as a content-hash event id.
  await conn.run(`CREATE OR REPLACE TEMP TABLE watched AS
    WITH v AS (
      SELECT student_key, course_id, object_id AS media_id, ts_utc, action, position, media_duration,
        lead(action) OVER w AS next_action, lead(position) OVER w AS next_position
      FROM ev WHERE modality = 'video'
      WINDOW w AS (PARTITION BY student_key, object_id ORDER BY ts_utc, rid // ${2 ** 32}, logged_file, logged_line)
    ),
    iv AS (
      SELECT student_key, course_id, media_id, max(media_duration) OVER (PARTITION BY student_key, media_id) AS media_duration,
        position AS s, next_position AS e
      FROM v WHERE action = 'play' AND next_action IN ('pause', 'seek', 'ended') AND next_position > position
    ),
    o AS (
      SELECT *, max(e) OVER (PARTITION BY student_key, media_id ORDER BY s, e ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end FROM iv
    ),
    grp AS (
      SELECT *, sum(CASE WHEN prev_end IS NULL OR s > prev_end THEN 1 ELSE 0 END) OVER (PARTITION BY student_key, media_id ORDER BY s, e) AS g FROM o
    ),
    merged AS (SELECT student_key, course_id, media_id, any_value(media_duration) AS media_duration, min(s) AS s, max(e) AS e
      FROM grp GROUP BY student_key, course_id, media_id, g)
    SELECT student_key, course_id, media_id, any_value(media_duration) AS media_duration, sum(e - s) AS watched_s FROM merged GROUP BY ALL`);

  await conn.run(`CREATE OR REPLACE TEMP TABLE student_day AS
    WITH roster AS (SELECT DISTINCT student_key FROM ${parquetScan(students)} ${only}),
    -- Every (student, course) with events, once: the grid takes its pairs from here. Distinct counts are taken from
    -- the distinct values themselves below (DuckDB's DISTINCT aggregates cost more than everything else here together).
    counts AS (
      SELECT student_key, course_id,
        count(*) AS events,
        count(*) FILTER (WHERE modality = 'activity') AS activity_events,
        count(*) FILTER (WHERE modality = 'practice') AS practice_events,
        count(*) FILTER (WHERE modality = 'video') AS video_events,
        count(*) FILTER (WHERE modality = 'forum') AS forum_posts,
        coalesce(sum(words) FILTER (WHERE modality = 'forum'), 0) AS forum_words,
        count(*) FILTER (WHERE modality = 'assessment') AS submissions,
        count(*) FILTER (WHERE modality = 'assessment' AND ts_utc > due_at) AS late_submissions,
        round(coalesce(sum(greatest(epoch(ts_utc - due_at), 0) / 3600) FILTER (WHERE modality = 'assessment'), 0), 6) AS lateness_hours,
        round(avg(score) FILTER (WHERE modality = 'assessment'), 6) AS assessment_score,
        count(*) FILTER (WHERE success IS NOT NULL AND modality IN ('activity', 'practice')) AS answered,
        count(*) FILTER (WHERE success AND modality IN ('activity', 'practice')) AS correct,
        coalesce(sum(attempts), 0) AS attempts,
        count(*) FILTER (WHERE modality = 'practice' AND success) AS practice_correct,
        coalesce(sum(attempts) FILTER (WHERE modality = 'practice'), 0) AS practice_attempts,
        round(coalesce(sum(duration_s) FILTER (WHERE modality = 'practice'), 0) / 60, 6) AS practice_minutes,
        round(coalesce(sum(duration_s), 0) / 60, 6) AS time_on_task_minutes,
        round(avg(attention), 6) AS attention
      FROM tl GROUP BY ALL
    ),
    -- Items answered (practice, or activities with a success verdict), practice items among them, and sessions with
    -- something other than a submission in them.
    item_counts AS (
      SELECT student_key, course_id, count(*) AS items, count(*) FILTER (WHERE practice) AS practice_items FROM (
        SELECT student_key, course_id, object_id, bool_or(modality = 'practice') AS practice FROM tl
        WHERE object_id IS NOT NULL AND (modality = 'practice' OR (modality = 'activity' AND success IS NOT NULL))
        GROUP BY ALL)
      GROUP BY ALL
    ),
    session_counts AS (
      SELECT student_key, course_id, count(*) AS sessions FROM (
        SELECT DISTINCT student_key, course_id, session_no FROM tl WHERE modality <> 'assessment' AND session_no IS NOT NULL)
      GROUP BY ALL
    ),
    agg AS MATERIALIZED (
      SELECT c.*, coalesce(i.practice_items, 0) AS practice_items, coalesce(i.items, 0) AS items,
        coalesce(s.sessions, 0) AS sessions
      FROM counts c
      LEFT JOIN item_counts i ON i.student_key = c.student_key AND i.course_id IS NOT DISTINCT FROM c.course_id
      LEFT JOIN session_counts s ON s.student_key = c.student_key AND s.course_id IS NOT DISTINCT FROM c.course_id
    ),
    grid AS (
      SELECT DISTINCT e.student_key, e.course_id FROM enrol e
      WHERE DATE ${d} BETWEEN e.start_date AND e.end_date AND e.student_key IN (SELECT student_key FROM roster)
      UNION
      -- Accepted events outside the enrolment dates (the contract's one-day tolerance) or without a course still
      -- count: their student and course get the day.
      SELECT student_key, course_id FROM agg WHERE student_key IN (SELECT student_key FROM roster)
      UNION
      -- Students without any enrolment still get their day, under the courses their events name (or none).
      SELECT r.student_key, t.course_id FROM roster r
      LEFT JOIN (SELECT student_key, course_id FROM agg) t USING (student_key)
      WHERE r.student_key NOT IN (SELECT student_key FROM enrol)
    ),
    sm AS (SELECT s.student_key, t.course_id, round(sum(s.minutes), 6) AS session_minutes
      FROM sess s JOIN (SELECT DISTINCT student_key, session_no, course_id FROM tl) t USING (student_key, session_no) GROUP BY ALL),
    vw AS (SELECT student_key, course_id, round(sum(watched_s) / 60, 6) AS video_minutes, count(*) AS videos_watched,
      round(avg(least(watched_s / nullif(media_duration, 0), 1)), 6) AS video_completion FROM watched GROUP BY ALL)
    SELECT g.student_key, g.course_id, DATE ${d} AS date,
      coalesce(a.events, 0) AS events, coalesce(a.activity_events, 0) AS activity_events, coalesce(a.practice_events, 0) AS practice_events,
      coalesce(a.video_events, 0) AS video_events, coalesce(a.forum_posts, 0) AS forum_posts, coalesce(a.forum_words, 0) AS forum_words,
      coalesce(a.submissions, 0) AS submissions, coalesce(a.late_submissions, 0) AS late_submissions,
      coalesce(a.lateness_hours, 0) AS lateness_hours, a.assessment_score,
      coalesce(a.answered, 0) AS answered, coalesce(a.correct, 0) AS correct, coalesce(a.attempts, 0) AS attempts,
      coalesce(a.items, 0) AS items, coalesce(a.practice_correct, 0) AS practice_correct,
      coalesce(a.practice_attempts, 0) AS practice_attempts, coalesce(a.practice_items, 0) AS practice_items,
      coalesce(a.practice_minutes, 0) AS practice_minutes, coalesce(a.time_on_task_minutes, 0) AS time_on_task_minutes,
      coalesce(a.sessions, 0) AS sessions, coalesce(sm.session_minutes, 0) AS session_minutes,
      coalesce(vw.video_minutes, 0) AS video_minutes, coalesce(vw.videos_watched, 0) AS videos_watched, vw.video_completion,
      a.attention
    FROM grid g
    LEFT JOIN agg a ON a.student_key = g.student_key AND a.course_id IS NOT DISTINCT FROM g.course_id
    LEFT JOIN sm ON sm.student_key = g.student_key AND sm.course_id IS NOT DISTINCT FROM g.course_id
    LEFT JOIN vw ON vw.student_key = g.student_key AND vw.course_id IS NOT DISTINCT FROM g.course_id`);

  const out: PartitionRef[] = [];
  // Row order carries no meaning in the lake; not sorting large tables before writing saves a full sort.
  // A partial realignment writes the timeline rows of the affected students as an overlay slice of the partition
  // (readers resolve it with partitionScan) instead of copying everyone else's rows; the small student_day
  // partition is rewritten whole.
  out.push(
    await publishFile(deps.lake, conn, {
      layer: 'silver',
      dataset: 'timeline',
      date,
      runId: input.runId,
      writeId: input.writeId,
      path: timelineFile,
      rows: timelineRows,
      schemaVersion: TIMELINE_SCHEMA_VERSION,
      ...(partial ? { slice: realignedSlice(input.landingDate!), overlayKey: 'student_key' } : {}),
    }),
  );
  out.push(
    await publishQuery(deps.lake, conn, dir, {
      layer: 'silver',
      dataset: 'student_day',
      date,
      runId: input.runId,
      writeId: input.writeId,
      sql: partial
        ? `SELECT * FROM student_day UNION ALL BY NAME
           SELECT * FROM ${parquetScan(previous.student_day)} WHERE student_key NOT IN (SELECT student_key FROM affected)`
        : 'SELECT * FROM student_day',
      schemaVersion: TIMELINE_SCHEMA_VERSION,
    }),
  );
  for (const v of ['tl', 'ev']) await conn.run(`DROP VIEW IF EXISTS ${v}`);
  for (const t of ['ev_part', 'tl_keys', 'enrol', 'sens', 'sess', 'study', 'watched', 'student_day', 'affected']) {
    await conn.run(`DROP TABLE IF EXISTS ${t}`);
  }
  return out;
}

export function createTimelineActivities(deps: ActivityDeps) {
  return {
    /**
     * Rebuilds `silver/timeline` and `silver/student_day` for the given event dates from committed silver tables.
     * Each date's partitions are replaced whole; the same silver input gives the same rows.
     */
    async alignTimeline(input: AlignTimelineInput): Promise<AlignTimelineOutput> {
      await faultHold(deps, 'alignTimeline');
      return withHeartbeat((progress) =>
        withWorkDir(deps, 'timeline', (dir) =>
          (async () => {
            // Dates are independent (each reads its own silver partitions): a few are aligned at a time.
            const partitions = (
              await onConnections(
                deps,
                input.dates,
                PARALLEL_PIECES,
                progress,
                (d) => d,
                (conn, date) => alignDate(deps, conn, dir, date, input),
                // The landing's own day (every student) first; the earlier days its late events touch are partial.
                (date) => (input.landingDate && date < input.landingDate ? 0 : 1),
              )
            ).flat();
            return {
              partitions,
              events: partitions
                .filter((p) => p.dataset === 'timeline')
                .reduce((n, p) => n + (p.rowsWritten ?? p.rowCount), 0),
              studentDays: partitions.filter((p) => p.dataset === 'student_day').reduce((n, p) => n + p.rowCount, 0),
            };
          })(),
        ),
      );
    },
  };
}
