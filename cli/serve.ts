import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import swagger from '@fastify/swagger';
import { quotedString } from '@duckdb/node-api';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { STUDENT_KEY_PATTERN } from '../activities/identity.js';
import { readInterventionStatuses } from '../activities/interventions/index.js';
import type { SegmentArtifact } from '../activities/models/index.js';
import { ModelRegistry } from '../activities/models/registry.js';
import { privacyStatement, publishCount } from '../activities/privacy.js';
import type { Config } from '../config/index.js';
import { parquetScan } from '../lake/duck.js';
import { collectLakeStatus } from './status.js';
import { createDeps } from '../workers/deps.js';

type Key = Config['api']['keys'][number];

const digest = (s: string) => createHash('sha256').update(s).digest();

declare module 'fastify' {
  interface FastifyRequest {
    caller?: Key;
  }
}

const error = { type: 'object', properties: { error: { type: 'string' } } } as const;
const privacy = { type: 'string', description: 'How small groups and counts were protected' } as const;

/**
 * The read API for educators' tools: gold only, never a name or an email. Every request carries an API key with a
 * role — educators read the student records of their own courses, analysts aggregates only — and every read of a
 * student record is written to the audit log in the lake (`audit/api/dt=<date>/`). Aggregates follow the privacy
 * rule (groups under k suppressed, optional Laplace noise). The OpenAPI document is at /openapi.json.
 */
export async function buildApi(config: Config): Promise<FastifyInstance> {
  const deps = createDeps(config);
  const registry = new ModelRegistry(deps.lake.store);
  const app = Fastify({ logger: false });
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'edlake read API',
        version: '1.0.0',
        description: "Gold-layer reads for educators' tools. Pseudonymous student keys only; no names or emails.",
      },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } } },
      security: [{ apiKey: [] }],
    },
  });
  app.addHook('onClose', async () => deps.duck.close());

  const keys = config.api.keys.map((k) => ({ ...k, hash: digest(k.key) }));
  const authenticate = async (req: FastifyRequest, reply: FastifyReply) => {
    const header = req.headers.authorization ?? '';
    const given = header.startsWith('Bearer ') ? header.slice(7) : String(req.headers['x-api-key'] ?? '');
    const h = digest(given);
    const k = given ? keys.find((x) => timingSafeEqual(x.hash, h)) : undefined;
    if (!k) return reply.code(401).send({ error: 'a valid API key is required (Authorization: Bearer <key>)' });
    req.caller = k;
  };
  const query = <T = Record<string, unknown>>(sql: string) =>
    deps.duck.withConnection(async (c) => (await c.runAndReadAll(sql)).getRowObjects() as T[]);
  const latest = async (dataset: string) => (await deps.lake.listPartitions('gold', dataset)).at(-1);
  const audit = async (req: FastifyRequest, studentKey: string, outcome: string) => {
    const at = new Date().toISOString();
    await deps.lake.store.putBytes(
      `audit/api/dt=${at.slice(0, 10)}/${at.replace(/[:.]/g, '-')}-${randomUUID()}.json`,
      JSON.stringify({ at, caller: req.caller!.name, role: req.caller!.role, studentKey, path: req.url, outcome }),
    );
  };

  app.get('/healthz', { schema: { hide: true } }, async () => ({ ok: true }));
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  app.get<{ Params: { key: string } }>(
    '/v1/students/:key/risk',
    {
      preHandler: authenticate,
      schema: {
        summary: "A student's latest risk with reasons, segment and model versions (educators, own courses only)",
        params: {
          type: 'object',
          properties: { key: { type: 'string', pattern: STUDENT_KEY_PATTERN } },
          required: ['key'],
        },
        response: {
          200: {
            type: 'object',
            properties: {
              studentKey: { type: 'string' },
              asOf: { type: 'string' },
              courses: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    course: { type: 'string', nullable: true },
                    risk: { type: 'number', nullable: true },
                    atRisk: { type: 'boolean', nullable: true },
                    threshold: { type: 'number' },
                    reasons: { type: 'array', items: { type: 'string' } },
                    segment: { type: 'string', nullable: true },
                    riskModelVersion: { type: 'integer' },
                    segmentModelVersion: { type: 'integer', nullable: true },
                  },
                },
              },
            },
          },
          403: error,
          404: error,
        },
      },
    },
    async (req, reply) => {
      const caller = req.caller!;
      if (caller.role !== 'educator') {
        await audit(req, req.params.key, 'refused: role');
        return reply.code(403).send({ error: 'student records are for educators; analysts read aggregates' });
      }
      const date = await latest('risk_scores');
      const rows = date
        ? await query(`SELECT r.course_id, r.risk, r.at_risk, r.threshold, CAST(r.reasons AS VARCHAR[]) AS reasons,
              r.model_version, s.segment, s.model_version AS segment_version
            FROM ${parquetScan((await deps.lake.localFiles('gold', 'risk_scores', date)).paths)} r
            LEFT JOIN ${parquetScan((await deps.lake.localFiles('gold', 'segments', date)).paths)} s
              ON s.student_key = r.student_key AND s.course_id IS NOT DISTINCT FROM r.course_id
            WHERE r.student_key = ${quotedString(req.params.key)} ORDER BY r.course_id`)
        : [];
      const mine = rows.filter((r) => caller.courses.includes(String(r.course_id)));
      if (!mine.length) {
        await audit(req, req.params.key, 'not found in caller courses');
        return reply.code(404).send({ error: 'no student with this key in your courses' });
      }
      await audit(req, req.params.key, 'read');
      const list = (v: unknown) => (Array.isArray(v) ? v : ((v as { items?: unknown[] } | null)?.items ?? []));
      return {
        studentKey: req.params.key,
        asOf: date,
        courses: mine.map((r) => ({
          course: r.course_id === null ? null : String(r.course_id),
          risk: r.risk === null ? null : Number(r.risk),
          atRisk: r.at_risk === null ? null : Boolean(r.at_risk),
          threshold: Number(r.threshold),
          reasons: list(r.reasons).map(String),
          segment: r.segment === null ? null : String(r.segment),
          riskModelVersion: Number(r.model_version),
          segmentModelVersion: r.segment_version === null ? null : Number(r.segment_version),
        })),
      };
    },
  );

  app.get(
    '/v1/segments',
    {
      preHandler: authenticate,
      schema: {
        summary: 'The champion segmentation: each segment with its size and profile (small segments suppressed)',
        response: {
          200: {
            type: 'object',
            properties: {
              modelVersion: { type: 'integer', nullable: true },
              privacy,
              segments: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    id: { type: 'integer' },
                    description: { type: 'string' },
                    students: { type: 'integer', nullable: true },
                    suppressed: { type: 'boolean' },
                    profile: { type: 'object', additionalProperties: { type: 'number' } },
                  },
                },
              },
            },
          },
        },
      },
    },
    async () => {
      const v = await registry.current('segments');
      const a = v === null ? null : await registry.artifact<SegmentArtifact>('segments', v);
      return {
        modelVersion: v,
        privacy: privacyStatement(config),
        segments: (a?.profiles ?? []).map((p, i) => {
          const c = publishCount(config, p.size, `api:segment:${v}:${p.id}`);
          return {
            id: a!.ids[i] ?? p.id,
            description: p.description,
            students: c.value,
            suppressed: c.suppressed,
            profile: c.suppressed ? {} : p.means,
          };
        }),
      };
    },
  );

  app.get<{ Params: { date: string } }>(
    '/v1/runs/:date',
    {
      preHandler: authenticate,
      schema: {
        summary: "A night's summary: committed partitions with row counts and the reconciliation per source",
        params: { type: 'object', properties: { date: { type: 'string', format: 'date' } }, required: ['date'] },
        response: {
          200: {
            type: 'object',
            properties: {
              date: { type: 'string' },
              partitions: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: { layer: { type: 'string' }, dataset: { type: 'string' }, rows: { type: 'integer' } },
                },
              },
              reconciliation: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    source: { type: 'string' },
                    raw: { type: 'integer' },
                    accepted: { type: 'integer' },
                    duplicates: { type: 'integer' },
                    quarantined: { type: 'integer' },
                  },
                },
              },
            },
          },
          404: error,
        },
      },
    },
    async (req, reply) => {
      const s = await collectLakeStatus(deps.lake);
      const partitions = s.partitions.filter((p) => p.date === req.params.date);
      if (!partitions.length) return reply.code(404).send({ error: `no partition committed for ${req.params.date}` });
      return {
        date: req.params.date,
        partitions: partitions.map((p) => ({ layer: p.layer, dataset: p.dataset, rows: p.rows })),
        reconciliation: s.reconciliation.filter((r) => r.date === req.params.date),
      };
    },
  );

  app.get<{ Querystring: { status?: string } }>(
    '/v1/interventions',
    {
      preHandler: authenticate,
      schema: {
        summary: 'Interventions by kind and status (counts; small groups suppressed)',
        querystring: { type: 'object', properties: { status: { type: 'string' } } },
        response: {
          200: {
            type: 'object',
            properties: {
              privacy,
              groups: {
                type: 'array',
                items: {
                  type: 'object',
                  properties: {
                    kind: { type: 'string' },
                    status: { type: 'string' },
                    interventions: { type: 'integer', nullable: true },
                    suppressed: { type: 'boolean' },
                  },
                },
              },
            },
          },
        },
      },
    },
    async (req) => {
      const tally = new Map<string, number>();
      for (const r of await readInterventionStatuses(deps.lake.store)) {
        if (req.query.status && r.status !== req.query.status) continue;
        tally.set(`${r.kind}|${r.status}`, (tally.get(`${r.kind}|${r.status}`) ?? 0) + 1);
      }
      return {
        privacy: privacyStatement(config),
        groups: [...tally].sort().map(([k, n]) => {
          const [kind, status] = k.split('|') as [string, string];
          const c = publishCount(config, n, `api:interventions:${k}`);
          return { kind, status, interventions: c.value, suppressed: c.suppressed };
        }),
      };
    },
  );

  return app;
}
