import { createHash } from 'node:crypto';
import { quotedString } from '@duckdb/node-api';
import type { PartitionRef } from '../../lake/manifest.js';
import { parquetScan, partitionScan, rowsTable } from '../../lake/duck.js';
import { addDays } from '../../lake/paths.js';
import { publishQuery } from '../../lake/publish-query.js';
import { type ActivityDeps, faultHold, withHeartbeat, withWorkDir } from '../context.js';
import { Encoder } from './encoder.js';

export const BEHAVIOUR_DAYS = 7;

export interface EmbedInput {
  date: string;
  runId: string;
  writeId: string;
}

export interface EmbedOutput {
  partitions: PartitionRef[];
  texts: number;
  behaviours: number;
  /** Inputs embedded tonight; the rest came from the content-hash cache. */
  embedded: number;
  cached: number;
  truncated: number;
}

/**
 * Each student's recent behaviour as one line of text across modalities, newest first, e.g.
 * `practice MATH101-P21: correct after 2 attempts | watched lecture 4, 80% | posted a reply in MATH101-T3`.
 */
function behaviourSql(timeline: string, date: string): string {
  return `
    WITH t AS (SELECT * FROM ${timeline} WHERE CAST(ts_utc AS DATE) BETWEEN DATE ${quotedString(addDays(date, -(BEHAVIOUR_DAYS - 1)))} AND DATE ${quotedString(date)}),
    items AS (
      -- Practice and quizzes are summarised per day, videos and assessments named one by one.
      SELECT student_key, course_id, max(ts_utc) AS last_at,
        'practised ' || CAST(count(DISTINCT object_id) AS VARCHAR) || ' problems, '
          || CAST(CAST(round(100 * avg(CAST(success AS INTEGER))) AS INTEGER) AS VARCHAR) || '% correct, '
          || CAST(round(avg(attempts), 1) AS VARCHAR) || ' attempts each' AS phrase
      FROM t WHERE source = 'lms_csv' GROUP BY student_key, course_id, CAST(ts_utc AS DATE)
      UNION ALL
      SELECT student_key, course_id, max(ts_utc),
        'answered ' || CAST(count(*) AS VARCHAR) || ' quiz items, '
          || CAST(CAST(round(100 * avg(CAST(success AS INTEGER))) AS INTEGER) AS VARCHAR) || '% correct'
      FROM t WHERE source <> 'lms_csv' AND success IS NOT NULL GROUP BY student_key, course_id, CAST(ts_utc AS DATE)
      UNION ALL
      SELECT student_key, course_id, max(ts_utc),
        'watched lecture ' || regexp_extract(object_id, '([^/]+)$', 1) || ', '
          || CAST(CAST(round(100 * least(max(coalesce(position_to, position)) / nullif(max(media_duration), 0), 1)) AS INTEGER) AS VARCHAR) || '%'
      FROM t WHERE modality = 'video' GROUP BY student_key, course_id, object_id
      UNION ALL
      SELECT student_key, course_id, max(ts_utc),
        'wrote ' || CAST(count(*) AS VARCHAR) || ' ' || action || CASE WHEN count(*) > 1 THEN 's' ELSE '' END || ' in the forum'
      FROM t WHERE modality = 'forum' GROUP BY student_key, course_id, action
      UNION ALL
      SELECT student_key, course_id, max(ts_utc),
        'submitted ' || object_id || ', score ' || CAST(CAST(round(100 * max(score)) AS INTEGER) AS VARCHAR) || '%'
          || CASE WHEN bool_or(ts_utc > due_at) THEN ', late' ELSE '' END
      FROM t WHERE modality = 'assessment' GROUP BY student_key, course_id, object_id
      UNION ALL
      SELECT student_key, course_id, max(ts_utc), 'browsed ' || CAST(count(*) AS VARCHAR) || ' course pages'
      FROM t WHERE modality = 'activity' AND success IS NULL GROUP BY student_key, course_id, CAST(ts_utc AS DATE)
    )
    SELECT student_key, course_id, string_agg(phrase, ' | ' ORDER BY last_at DESC, phrase) AS text FROM items GROUP BY ALL`;
}

export function contentHash(modelId: string, text: string): string {
  return createHash('sha256').update(`${modelId}\u0000${text}`).digest('hex').slice(0, 32);
}

export function createEmbeddingActivities(deps: ActivityDeps) {
  return {
    /**
     * Embeds the day's masked forum posts (`gold/text_embeddings`) and every student's recent behaviour rendered as
     * text (`gold/behaviour_embeddings`). Inputs whose content hash was embedded on an earlier night are taken from
     * `gold/embedding_cache` instead of the model.
     */
    async embedBehaviour(input: EmbedInput): Promise<EmbedOutput> {
      await faultHold(deps, 'embedBehaviour');
      return withHeartbeat((progress) =>
        withWorkDir(deps, 'embeddings', (dir) =>
          deps.duck.withConnection(async (conn) => {
            await conn.run(`SET TimeZone = 'UTC'`);
            const encoder = await Encoder.open(deps.config);
            try {
              const dim = encoder.dimensions;
              // Texts: the day's forum posts (already masked in silver).
              const forum = await deps.lake.localFiles('silver', 'forum', input.date);
              await conn.run(
                forum.paths.length
                  ? `CREATE OR REPLACE TEMP TABLE posts AS SELECT event_id, student_key, course_id, text FROM ${parquetScan(forum.paths)}`
                  : `CREATE OR REPLACE TEMP TABLE posts (event_id VARCHAR, student_key VARCHAR, course_id VARCHAR, text VARCHAR)`,
              );
              // Behaviour: the timeline of the last days, for every student on tonight's grid.
              const scans: string[] = [];
              for (let k = 0; k < BEHAVIOUR_DAYS; k++) {
                const { manifest, paths } = await deps.lake.localFiles('silver', 'timeline', addDays(input.date, -k));
                if (paths.length) scans.push(`SELECT * FROM ${partitionScan(manifest, paths)}`);
              }
              const days = await deps.lake.localFiles('silver', 'student_day', input.date);
              const grid = days.paths.length
                ? `SELECT DISTINCT student_key, course_id FROM ${parquetScan(days.paths)}`
                : `SELECT NULL::VARCHAR AS student_key, NULL::VARCHAR AS course_id WHERE false`;
              await conn.run(
                `CREATE OR REPLACE TEMP TABLE behaviour AS
                 SELECT g.student_key, g.course_id, coalesce(b.text, 'no activity in the last ${BEHAVIOUR_DAYS} days') AS text
                 FROM (${grid}) g LEFT JOIN (${scans.length ? behaviourSql(`(${scans.join(' UNION ALL BY NAME ')})`, input.date) : `SELECT NULL::VARCHAR AS student_key, NULL::VARCHAR AS course_id, NULL::VARCHAR AS text WHERE false`}) b
                 ON b.student_key = g.student_key AND b.course_id IS NOT DISTINCT FROM g.course_id`,
              );
              const texts = [
                ...(await conn.runAndReadAll(`SELECT text FROM posts`)).getRows().map((r) => String(r[0])),
                ...(await conn.runAndReadAll(`SELECT text FROM behaviour`)).getRows().map((r) => String(r[0])),
              ];
              const hashes = texts.map((t) => contentHash(encoder.modelId, t));
              const byHash = new Map(hashes.map((h, i) => [h, texts[i]!]));

              // The cache: the latest earlier night's partition (vector and token count per content hash).
              const hashRows = [...byHash].map(([content_hash, text]) => ({ content_hash, text }));
              await rowsTable(conn, dir, 'hashes', hashRows, { content_hash: 'VARCHAR', text: 'VARCHAR' });
              const earlier = await deps.lake.latestPartition('gold', 'embedding_cache', addDays(input.date, -1));
              const cached = new Map<string, { vector: number[]; tokens: number }>();
              if (earlier) {
                const files = (await deps.lake.localFiles('gold', 'embedding_cache', earlier)).paths;
                for (const r of (
                  await conn.runAndReadAll(
                    `SELECT content_hash, CAST(vector AS VARCHAR), tokens FROM ${parquetScan(files)}
                     WHERE content_hash IN (SELECT content_hash FROM hashes)`,
                  )
                ).getRows()) {
                  cached.set(String(r[0]), { vector: JSON.parse(String(r[1])) as number[], tokens: Number(r[2]) });
                }
              }
              const missing = [...byHash.keys()].filter((h) => !cached.has(h));
              progress({ embedding: missing.length, cached: cached.size });
              const fresh = await encoder.embed(
                missing.map((h) => byHash.get(h)!),
                (done) => progress({ embedded: done, of: missing.length }),
              );
              await rowsTable(
                conn,
                dir,
                'vectors',
                [
                  ...[...cached].map(([content_hash, c]) => ({ content_hash, ...c })),
                  ...missing.map((content_hash, i) => ({
                    content_hash,
                    vector: Array.from(fresh.vectors[i]!),
                    tokens: fresh.tokens[i]!,
                  })),
                ],
                { content_hash: 'VARCHAR', vector: `FLOAT[${dim}]`, tokens: 'INTEGER' },
              );

              const common = { date: input.date, runId: input.runId, writeId: input.writeId, schemaVersion: 1 };
              const partitions = [
                await publishQuery(deps.lake, conn, dir, {
                  ...common,
                  layer: 'gold',
                  dataset: 'text_embeddings',
                  sql: `SELECT p.event_id, p.student_key, p.course_id, h.content_hash, '${encoder.modelId}' AS model, v.vector
                        FROM posts p JOIN hashes h ON h.text = p.text JOIN vectors v ON v.content_hash = h.content_hash`,
                  orderBy: 'event_id',
                }),
                await publishQuery(deps.lake, conn, dir, {
                  ...common,
                  layer: 'gold',
                  dataset: 'behaviour_embeddings',
                  sql: `SELECT b.student_key, b.course_id, h.content_hash, v.tokens, '${encoder.modelId}' AS model, v.vector
                        FROM behaviour b JOIN hashes h ON h.text = b.text JOIN vectors v ON v.content_hash = h.content_hash`,
                  orderBy: 'student_key, course_id',
                  stats: { truncated: fresh.truncated },
                }),
                await publishQuery(deps.lake, conn, dir, {
                  ...common,
                  layer: 'gold',
                  dataset: 'embedding_cache',
                  sql: `SELECT content_hash, vector, tokens FROM vectors`,
                  orderBy: 'content_hash',
                }),
              ];
              for (const t of ['posts', 'behaviour', 'vectors', 'hashes']) await conn.run(`DROP TABLE IF EXISTS ${t}`);
              return {
                partitions,
                texts: partitions[0]!.rowCount,
                behaviours: partitions[1]!.rowCount,
                embedded: missing.length,
                cached: cached.size,
                truncated: fresh.truncated,
              };
            } finally {
              await encoder.close();
            }
          }),
        ),
      );
    },
  };
}
