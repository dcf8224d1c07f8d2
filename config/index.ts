import { readFileSync, existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';

/** Task queues are named once, here; workers and clients import them. */
export const TASK_QUEUES = {
  pipeline: 'edlake-pipeline',
} as const;

/**
 * Custom search attributes registered on the dev server at start and upserted by workflows, so operators can filter
 * runs in the Web UI (e.g. `EdlakeStage = "failed"`).
 */
export const SEARCH_ATTRIBUTES = {
  EdlakeRunDate: 'Datetime',
  EdlakeStage: 'Keyword',
  EdlakeRows: 'Int',
  EdlakeQuarantined: 'Int',
  EdlakeDrift: 'Bool',
  EdlakeModelVersion: 'Int',
  EdlakeInterventionStatus: 'Keyword',
} as const;

/** Kinds of intervention and the channels that carry them. */
export const INTERVENTION_KINDS = ['nudge', 'study_plan', 'mentor_alert'] as const;
export const CHANNELS = ['email', 'webhook', 'outbox'] as const;

const ruleSchema = z.object({
  kind: z.enum(INTERVENTION_KINDS),
  channel: z.enum(CHANNELS),
  /** Every condition given must hold: the at-risk flag, a minimum risk, feature bounds (gold feature names). */
  when: z.object({
    atRisk: z.boolean().optional(),
    minRisk: z.number().min(0).max(1).optional(),
    features: z.record(z.string(), z.object({ lt: z.number().optional(), gt: z.number().optional() })).optional(),
  }),
  /** High stakes: waits for a person's approve/reject signal. */
  approval: z.boolean().default(false),
});
export type InterventionRule = z.infer<typeof ruleSchema>;

const port = z.coerce.number().int().min(1).max(65535);

const lakeSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('local'),
    root: z.string().min(1),
  }),
  z.object({
    kind: z.literal('s3'),
    bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name'),
    prefix: z.string().default(''),
    endpoint: z.string().url('must be a URL such as http://127.0.0.1:9000').optional(),
    region: z.string().min(1).default('us-east-1'),
    forcePathStyle: z.coerce.boolean().default(true),
    accessKeyId: z.string().min(1, 'is required for an s3 lake'),
    secretAccessKey: z.string().min(1, 'is required for an s3 lake (EDLAKE_S3_SECRET_ACCESS_KEY)'),
    partSizeMb: z.coerce.number().int().min(5).max(512).default(16),
  }),
]);

export const configSchema = z.object({
  /** Working directory for everything the embedded setup keeps: lake, service data, logs, pid files, caches. */
  home: z.string().min(1),
  /** Built service binaries and downloaded models, shared by every checkout on the machine. */
  cacheDir: z.string().min(1),
  lake: lakeSchema,
  /** Where raw drops arrive: `<inbox>/dt=YYYY-MM-DD/<source>/<files>`. */
  inbox: z.string().min(1),
  temporal: z.object({
    /** Set when an existing cluster is used; the dev server is then not managed. */
    external: z.boolean(),
    address: z.string().regex(/^[^:\s]+:\d+$/, 'must be host:port'),
    namespace: z.string().min(1),
    taskQueue: z.string().min(1),
    uiPort: port,
    uiUrl: z.string().url(),
    cli: z.string().optional(),
    /** Seconds without a heartbeat before a long activity is retried on another worker. */
    heartbeatTimeoutSeconds: z.coerce.number().int().min(1).max(3600),
  }),
  minio: z.object({
    address: z.string().regex(/^[^:\s]+:\d+$/, 'must be host:port'),
    consoleAddress: z.string().regex(/^[^:\s]+:\d+$/, 'must be host:port'),
    release: z.string().min(1),
    binary: z.string().optional(),
  }),
  pipeline: z.object({
    /** Events further in the future than this (relative to the landing time) are quarantined. */
    futureSkewMinutes: z.coerce
      .number()
      .int()
      .min(0)
      .max(7 * 24 * 60),
    /** Gaps between consecutive events longer than this end an active period. */
    sessionGapMinutes: z.coerce
      .number()
      .int()
      .min(1)
      .max(24 * 60),
    duckdbThreads: z.coerce.number().int().min(1).max(256),
    duckdbMemoryLimit: z.string().regex(/^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/i, 'must be a size such as 2GB'),
  }),
  embeddings: z.object({
    /** A folder holding the verified model files instead of the cache (machines that cannot run pip). */
    modelDir: z.string().optional(),
    /** onnxruntime intra-op threads of the inference worker (spinning off). */
    threads: z.coerce.number().int().min(1).max(64),
    /** Texts per inference batch (padded to the longest in the batch). */
    batchSize: z.coerce.number().int().min(1).max(1024),
  }),
  models: z.object({
    /** Student-days a student needs in the lookback to be scored or segmented; fewer is "not enough data". */
    minActiveDays: z.coerce.number().int().min(0).max(28),
    /** Range of k tried for k-means; the best silhouette wins. */
    kMin: z.coerce.number().int().min(2).max(50),
    kMax: z.coerce.number().int().min(2).max(50),
    /**
     * Prediction horizon: each decided outcome is paired with the student's features this many days before the
     * decision, so the risk model learns to warn that far ahead.
     */
    horizonDays: z.coerce.number().int().min(1).max(120),
    /** Horizon pairs needed (with both outcomes present) before they replace earlier-term labels. */
    minHorizonExamples: z.coerce.number().int().min(10),
    /** Recall the risk threshold is set for on the holdout. */
    targetRecall: z.coerce.number().min(0.05).max(1),
    /** Drift: a feature drifts when its PSI exceeds this; the nightly run retrains when any top feature does. */
    psiThreshold: z.coerce.number().min(0).max(10),
    /** Drift on text and behaviour embeddings (MMD², RBF kernel) above this also counts. */
    mmdThreshold: z.coerce.number().min(0).max(10),
    /** A model older than this many days is retrained even without drift. */
    maxAgeDays: z.coerce.number().int().min(1).max(3650),
    /** A challenger is promoted unless its PR-AUC is worse than the champion's by more than this. */
    promoteTolerance: z.coerce.number().min(0).max(1),
    /** Segmentation: k-means (default), Ward hierarchical clustering, or DBSCAN (density; sparse students get no segment). */
    segmentAlgorithm: z.enum(['kmeans', 'hierarchical', 'dbscan']),
    /** Risk model: class-weighted logistic regression (explainable default) or a random forest. */
    riskAlgorithm: z.enum(['logistic', 'random_forest']),
    /** Sensitive attribute for fairness audits (a roster demographic column). */
    sensitiveAttribute: z.enum(['gender', 'age_band', 'first_generation']),
    /** Weight of the demographic-parity penalty when choosing among k-means restarts (0: off). */
    fairnessWeight: z.coerce.number().min(0).max(10),
  }),
  /** The language model that writes descriptions and messages; without a key, templates do. */
  llm: z.object({
    /** Anthropic API key (secret, env only). */
    apiKey: z.string().min(1).optional(),
    /** Another Messages API endpoint (a proxy, or a local server in tests). */
    baseUrl: z.string().url().optional(),
    model: z.string().min(1),
    maxTokens: z.coerce.number().int().min(16).max(4096),
    timeoutMs: z.coerce.number().int().min(100).max(600_000),
    maxRetries: z.coerce.number().int().min(0).max(10),
  }),
  /** Who gets what, when and how: rules are data, the first matching rule decides a student's intervention. */
  interventions: z.object({
    enabled: z.preprocess((v) => (typeof v === 'string' ? !['false', '0', 'no', 'off'].includes(v) : v), z.boolean()),
    rules: z.array(ruleSchema),
    /** At most one message per student in this many days. */
    cooldownDays: z.coerce.number().int().min(0).max(365),
    /** Local hours (student's timezone) when nothing is delivered, "21-8" (wrapping midnight) or "none". */
    quietHours: z.string().regex(/^(none|([01]?\d|2[0-3])-([01]?\d|2[0-3]))$/, 'must be like 21-8 or none'),
    /** At most this many interventions started per night (highest risk first). */
    nightlyCap: z.coerce.number().int().min(0),
    /** Share of eligible students held back as a control group (stable hash per student and kind). */
    controlShare: z.coerce.number().min(0).max(0.9),
    /** How long an approval is waited for; on timeout nothing is sent. */
    approvalTimeoutHours: z.coerce
      .number()
      .min(0)
      .max(24 * 60),
    /** A sensitive group whose recall trails the best group's by more than this is flagged: its actions need approval. */
    fairnessFlagGap: z.coerce.number().min(0).max(1),
    maxMessageChars: z.coerce.number().int().min(80).max(5000),
    delivery: z.object({
      maximumAttempts: z.coerce.number().int().min(1).max(50),
      initialIntervalSeconds: z.coerce.number().min(0.1).max(3600),
      maximumIntervalSeconds: z.coerce.number().min(1).max(86_400),
      timeoutMs: z.coerce.number().int().min(100).max(300_000),
    }),
    email: z.object({
      /** smtp://host:port or smtps://host:port; unset: the email channel is not configured. */
      smtpUrl: z.string().url().optional(),
      user: z.string().optional(),
      /** Secret, env only. */
      password: z.string().optional(),
      from: z.string().min(3),
    }),
    webhook: z.object({
      url: z.string().url().optional(),
      /** HMAC-SHA256 key of the signature header. Secret, env only. */
      secret: z.string().min(16, 'must be at least 16 characters (EDLAKE_WEBHOOK_SECRET)').optional(),
    }),
  }),
  /** Aggregates in reports and the read API. */
  privacy: z.object({
    /** Groups of fewer students than this are suppressed in every published aggregate. */
    minGroupSize: z.coerce.number().int().min(1).max(1000),
    /** When set, Laplace noise with this ε is added to published counts (and the output says so). */
    epsilon: z.coerce.number().positive().max(100).optional(),
  }),
  /** The read API for educators' tools (`edlake serve`). */
  api: z.object({
    host: z.string().min(1),
    port,
    /** API keys with their role (secret, env only: EDLAKE_API_KEYS as JSON). */
    keys: z.array(
      z.object({
        name: z.string().min(1),
        key: z.string().min(16, 'API keys must be at least 16 characters'),
        role: z.enum(['educator', 'analyst']),
        /** Educators read the students of these courses only. */
        courses: z.array(z.string()).default([]),
      }),
    ),
  }),
  /** The nightly Temporal Schedule. */
  schedule: z.object({
    id: z.string().regex(/^[A-Za-z0-9._-]+$/),
    /** Cron expression in the schedule's timezone; the run processes the day before its start. */
    cron: z.string().min(9),
    timezone: z.string().refine((tz) => {
      try {
        new Intl.DateTimeFormat('en', { timeZone: tz });
        return true;
      } catch {
        return false;
      }
    }, 'must be an IANA timezone such as Europe/Berlin'),
    /** How late a missed run (server down) may still be started. */
    catchupWindow: z
      .string()
      .regex(/^\d+ ?(seconds?|minutes?|hours?|days?|[smhd])$/, 'must be a duration like "1 day"'),
  }),
  /** Keyed-HMAC secret for pseudonymous student keys. From env only. */
  pseudonymKey: z.string().min(16, 'must be at least 16 characters (EDLAKE_PSEUDONYM_KEY)'),
  /** Test-only fault injection: hold an activity before it starts, e.g. {"buildSilverTables": 30000}. */
  faults: z.object({ holdMs: z.record(z.string(), z.number().int().min(0)) }),
});

export type Config = z.infer<typeof configSchema>;
export type LakeConfig = z.infer<typeof lakeSchema>;

/** Raised for any invalid setting; the message is one line naming the key and the rule. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Keys that hold secrets: accepted from the environment only, never from a file, never printed. */
const SECRET_KEYS = [
  'pseudonymKey',
  'lake.secretAccessKey',
  'llm.apiKey',
  'interventions.email.password',
  'interventions.webhook.secret',
  'api.keys',
];

/** Development-only defaults: the embedded setup works out of the box; real deployments set these in env. */
const DEV_PSEUDONYM_KEY = 'edlake-development-pseudonym-key';
const DEV_MINIO_USER = 'edlake';
const DEV_MINIO_SECRET = 'edlake-dev-secret';

type Env = Record<string, string | undefined>;

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    if (typeof node[part] !== 'object' || node[part] === null) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]!] = value;
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const b = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
        ? deepMerge(b as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

/** Env variables and the config keys they set. Secrets are among them and nowhere else. */
const ENV_KEYS: Record<string, string> = {
  EDLAKE_HOME: 'home',
  EDLAKE_INBOX: 'inbox',
  EDLAKE_CACHE_DIR: 'cacheDir',
  EDLAKE_TEMPORAL_ADDRESS: 'temporal.address',
  EDLAKE_LAKE_KIND: 'lake.kind',
  EDLAKE_LAKE_ROOT: 'lake.root',
  EDLAKE_S3_BUCKET: 'lake.bucket',
  EDLAKE_S3_PREFIX: 'lake.prefix',
  EDLAKE_S3_ENDPOINT: 'lake.endpoint',
  EDLAKE_S3_REGION: 'lake.region',
  EDLAKE_S3_FORCE_PATH_STYLE: 'lake.forcePathStyle',
  EDLAKE_S3_ACCESS_KEY_ID: 'lake.accessKeyId',
  EDLAKE_S3_SECRET_ACCESS_KEY: 'lake.secretAccessKey',
  EDLAKE_S3_PART_SIZE_MB: 'lake.partSizeMb',
  EDLAKE_TEMPORAL_NAMESPACE: 'temporal.namespace',
  EDLAKE_TASK_QUEUE: 'temporal.taskQueue',
  EDLAKE_TEMPORAL_UI_PORT: 'temporal.uiPort',
  EDLAKE_TEMPORAL_CLI: 'temporal.cli',
  EDLAKE_HEARTBEAT_TIMEOUT_SECONDS: 'temporal.heartbeatTimeoutSeconds',
  EDLAKE_MINIO_ADDRESS: 'minio.address',
  EDLAKE_MINIO_CONSOLE_ADDRESS: 'minio.consoleAddress',
  EDLAKE_MINIO_BINARY: 'minio.binary',
  EDLAKE_FUTURE_SKEW_MINUTES: 'pipeline.futureSkewMinutes',
  EDLAKE_SESSION_GAP_MINUTES: 'pipeline.sessionGapMinutes',
  EDLAKE_DUCKDB_THREADS: 'pipeline.duckdbThreads',
  EDLAKE_DUCKDB_MEMORY_LIMIT: 'pipeline.duckdbMemoryLimit',
  EDLAKE_PSEUDONYM_KEY: 'pseudonymKey',
  EDLAKE_MODEL_DIR: 'embeddings.modelDir',
  ANTHROPIC_API_KEY: 'llm.apiKey',
  EDLAKE_LLM_BASE_URL: 'llm.baseUrl',
  EDLAKE_LLM_MODEL: 'llm.model',
  EDLAKE_LLM_MAX_TOKENS: 'llm.maxTokens',
  EDLAKE_LLM_TIMEOUT_MS: 'llm.timeoutMs',
  EDLAKE_LLM_MAX_RETRIES: 'llm.maxRetries',
  EDLAKE_EMBEDDING_THREADS: 'embeddings.threads',
  EDLAKE_EMBEDDING_BATCH_SIZE: 'embeddings.batchSize',
  EDLAKE_MIN_ACTIVE_DAYS: 'models.minActiveDays',
  EDLAKE_K_MIN: 'models.kMin',
  EDLAKE_K_MAX: 'models.kMax',
  EDLAKE_TARGET_RECALL: 'models.targetRecall',
  EDLAKE_HORIZON_DAYS: 'models.horizonDays',
  EDLAKE_MIN_HORIZON_EXAMPLES: 'models.minHorizonExamples',
  EDLAKE_PSI_THRESHOLD: 'models.psiThreshold',
  EDLAKE_MMD_THRESHOLD: 'models.mmdThreshold',
  EDLAKE_MODEL_MAX_AGE_DAYS: 'models.maxAgeDays',
  EDLAKE_PROMOTE_TOLERANCE: 'models.promoteTolerance',
  EDLAKE_SENSITIVE_ATTRIBUTE: 'models.sensitiveAttribute',
  EDLAKE_RISK_ALGORITHM: 'models.riskAlgorithm',
  EDLAKE_SEGMENT_ALGORITHM: 'models.segmentAlgorithm',
  EDLAKE_FAIRNESS_WEIGHT: 'models.fairnessWeight',
  EDLAKE_API_HOST: 'api.host',
  EDLAKE_API_PORT: 'api.port',
  EDLAKE_MIN_GROUP_SIZE: 'privacy.minGroupSize',
  EDLAKE_DP_EPSILON: 'privacy.epsilon',
  EDLAKE_SCHEDULE_ID: 'schedule.id',
  EDLAKE_SCHEDULE_CRON: 'schedule.cron',
  EDLAKE_SCHEDULE_TIMEZONE: 'schedule.timezone',
  EDLAKE_SCHEDULE_CATCHUP: 'schedule.catchupWindow',
  EDLAKE_INTERVENTIONS: 'interventions.enabled',
  EDLAKE_COOLDOWN_DAYS: 'interventions.cooldownDays',
  EDLAKE_QUIET_HOURS: 'interventions.quietHours',
  EDLAKE_NIGHTLY_CAP: 'interventions.nightlyCap',
  EDLAKE_CONTROL_SHARE: 'interventions.controlShare',
  EDLAKE_APPROVAL_TIMEOUT_HOURS: 'interventions.approvalTimeoutHours',
  EDLAKE_DELIVERY_MAX_ATTEMPTS: 'interventions.delivery.maximumAttempts',
  EDLAKE_DELIVERY_RETRY_SECONDS: 'interventions.delivery.initialIntervalSeconds',
  EDLAKE_DELIVERY_MAX_RETRY_SECONDS: 'interventions.delivery.maximumIntervalSeconds',
  EDLAKE_DELIVERY_TIMEOUT_MS: 'interventions.delivery.timeoutMs',
  EDLAKE_SMTP_URL: 'interventions.email.smtpUrl',
  EDLAKE_SMTP_USER: 'interventions.email.user',
  EDLAKE_SMTP_PASSWORD: 'interventions.email.password',
  EDLAKE_MAIL_FROM: 'interventions.email.from',
  EDLAKE_WEBHOOK_URL: 'interventions.webhook.url',
  EDLAKE_WEBHOOK_SECRET: 'interventions.webhook.secret',
};

function defaults(home: string, env: Env): Record<string, unknown> {
  const userCache = env.XDG_CACHE_HOME ?? join(env.HOME ?? homedir(), '.cache');
  return {
    home,
    cacheDir: join(userCache, 'edlake'),
    inbox: resolve(home, 'inbox'),
    lake: { kind: 'local', root: resolve(home, 'lake') },
    temporal: {
      external: false,
      address: '127.0.0.1:7233',
      namespace: 'default',
      taskQueue: TASK_QUEUES.pipeline,
      uiPort: 8233,
      heartbeatTimeoutSeconds: 60,
    },
    minio: {
      address: '127.0.0.1:9000',
      consoleAddress: '127.0.0.1:9001',
      release: MINIO_PSEUDO_VERSION,
    },
    pipeline: {
      futureSkewMinutes: 15,
      sessionGapMinutes: 30,
      duckdbThreads: 2,
      duckdbMemoryLimit: '4GB',
    },
    embeddings: { threads: 2, batchSize: 32 },
    models: {
      minActiveDays: 3,
      kMin: 2,
      kMax: 8,
      targetRecall: 0.8,
      horizonDays: 14,
      minHorizonExamples: 100,
      psiThreshold: 0.25,
      mmdThreshold: 0.2,
      maxAgeDays: 30,
      promoteTolerance: 0.01,
      riskAlgorithm: 'logistic',
      segmentAlgorithm: 'kmeans',
      sensitiveAttribute: 'gender',
      fairnessWeight: 0,
    },
    llm: { model: 'claude-sonnet-5-5', maxTokens: 400, timeoutMs: 30_000, maxRetries: 2 },
    privacy: { minGroupSize: 10 },
    api: { host: '127.0.0.1', port: 8787, keys: [] },
    schedule: { id: 'edlake-nightly', cron: '0 2 * * *', timezone: 'UTC', catchupWindow: '1 day' },
    interventions: {
      enabled: true,
      rules: DEFAULT_RULES,
      cooldownDays: 7,
      quietHours: '21-8',
      nightlyCap: 50,
      controlShare: 0.1,
      approvalTimeoutHours: 48,
      fairnessFlagGap: 0.25,
      maxMessageChars: 700,
      delivery: { maximumAttempts: 5, initialIntervalSeconds: 10, maximumIntervalSeconds: 600, timeoutMs: 10_000 },
      email: { from: 'edlake <noreply@edlake.invalid>' },
      webhook: {},
    },
    pseudonymKey: DEV_PSEUDONYM_KEY,
    faults: { holdMs: {} },
  };
}

/** The default policy: a mentor hears of the most worrying cases (after approval), others get a plan or a nudge. */
const DEFAULT_RULES: InterventionRule[] = [
  { kind: 'mentor_alert', channel: 'webhook', approval: true, when: { atRisk: true, minRisk: 0.97 } },
  {
    kind: 'study_plan',
    channel: 'email',
    approval: false,
    when: { atRisk: true, features: { practice_events_14d: { lt: 10 } } },
  },
  { kind: 'nudge', channel: 'outbox', approval: false, when: { atRisk: true } },
];

/** The MinIO module version built by `edlake services up` (the newest one the Go module proxy serves here). */
export const MINIO_PSEUDO_VERSION = 'v0.0.0-20260212201848-7aac2a2c5b7c';

function readConfigFile(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new ConfigError(`config file ${path}: not found`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`config file ${path}: not valid JSON (${(err as Error).message})`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path}: must hold a JSON object`);
  }
  const flat = JSON.stringify(parsed);
  for (const key of SECRET_KEYS) {
    const leaf = key.split('.').pop()!;
    if (flat.includes(`"${leaf}"`)) {
      throw new ConfigError(`config file ${path}: ${key} is a secret and is read from the environment only`);
    }
  }
  return parsed as Record<string, unknown>;
}

/**
 * Builds the one validated configuration from defaults, an optional JSON file (`EDLAKE_CONFIG` or
 * `<home>/edlake.config.json`) and `EDLAKE_*` environment variables, in that order. Pure apart from reading that file.
 */
export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): Config {
  const home = resolve(cwd, env.EDLAKE_HOME ?? '.edlake');
  let raw = defaults(home, env);

  const filePath = env.EDLAKE_CONFIG ? resolve(cwd, env.EDLAKE_CONFIG) : resolve(home, 'edlake.config.json');
  if (env.EDLAKE_CONFIG || existsSync(filePath)) raw = deepMerge(raw, readConfigFile(filePath));

  const fromEnv: Record<string, unknown> = {};
  for (const [name, key] of Object.entries(ENV_KEYS)) {
    const value = env[name];
    if (value !== undefined && value !== '') setPath(fromEnv, key, value);
  }
  raw = deepMerge(raw, fromEnv);
  if (env.EDLAKE_API_KEYS) {
    try {
      (raw.api as Record<string, unknown>).keys = JSON.parse(env.EDLAKE_API_KEYS);
    } catch {
      throw new ConfigError('EDLAKE_API_KEYS: must be a JSON array of {"name","key","role","courses"}');
    }
  }
  if (env.EDLAKE_FAULT_HOLD_MS) raw.faults = { holdMs: parseHolds(env.EDLAKE_FAULT_HOLD_MS) };

  const temporal = raw.temporal as Record<string, unknown>;
  if (env.TEMPORAL_ADDRESS) {
    temporal.address = env.TEMPORAL_ADDRESS;
    temporal.external = true;
  }
  if (env.TEMPORAL_NAMESPACE) temporal.namespace = env.TEMPORAL_NAMESPACE;
  const uiHost = String(temporal.address).split(':')[0];
  temporal.uiUrl ??= env.EDLAKE_TEMPORAL_UI_URL ?? `http://${uiHost}:${String(temporal.uiPort)}`;

  const lake = raw.lake as Record<string, unknown>;
  if (lake.kind === 's3') {
    const usesManagedMinio = !lake.endpoint || isLoopback(String(lake.endpoint));
    lake.endpoint ??= `http://${String((raw.minio as Record<string, unknown>).address)}`;
    if (usesManagedMinio) {
      lake.accessKeyId ??= DEV_MINIO_USER;
      lake.secretAccessKey ??= DEV_MINIO_SECRET;
    }
    lake.bucket ??= 'edlake';
  }
  for (const key of ['home', 'inbox', 'cacheDir']) raw[key] = resolve(cwd, String(raw[key]));
  if (lake.kind === 'local' && typeof lake.root === 'string') lake.root = resolve(cwd, lake.root);

  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = issue.path.join('.');
    const envName = Object.entries(ENV_KEYS).find(([, k]) => k === key)?.[0];
    const shown = SECRET_KEYS.includes(key) || key === 'lake.secretAccessKey' ? '' : describeValue(raw, issue.path);
    throw new ConfigError(`invalid setting ${key}${envName ? ` (${envName})` : ''}${shown}: ${issue.message}`);
  }
  return result.data;
}

/** `activityName=ms[,activityName=ms]`: test-only fault injection. */
function parseHolds(spec: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of spec.split(',')) {
    const [name, ms] = part.split('=');
    const n = Number(ms);
    if (!name || !Number.isInteger(n) || n < 0) {
      throw new ConfigError(
        `invalid setting faults.holdMs (EDLAKE_FAULT_HOLD_MS): expected name=milliseconds, got ${JSON.stringify(part)}`,
      );
    }
    out[name] = n;
  }
  return out;
}

function describeValue(raw: Record<string, unknown>, path: PropertyKey[]): string {
  let node: unknown = raw;
  for (const p of path) node = node && typeof node === 'object' ? (node as Record<PropertyKey, unknown>)[p] : undefined;
  return node === undefined ? '' : ` = ${JSON.stringify(node)}`;
}

export function isLoopback(urlOrHost: string): boolean {
  const host = urlOrHost.replace(/^[a-z]+:\/\//i, '').split(/[:/]/)[0];
  return host === '127.0.0.1' || host === 'localhost' || host === '::1' || host === '[::1]';
}

/** The lake location as an operator would type it: a path or an s3:// URI. */
export function lakeLocation(config: Config): string {
  const l = config.lake;
  return l.kind === 'local' ? l.root : `s3://${l.bucket}/${l.prefix}`.replace(/\/$/, '');
}

/** Credentials the managed MinIO runs with: the lake's when it is on S3, else the development pair. */
export function minioCredentials(config: Config): { user: string; password: string } {
  return config.lake.kind === 's3'
    ? { user: config.lake.accessKeyId, password: config.lake.secretAccessKey }
    : { user: DEV_MINIO_USER, password: DEV_MINIO_SECRET };
}

/** The configuration minus its secrets, for `edlake config` and logs. */
export function redactedConfig(config: Config): Record<string, unknown> {
  const copy = structuredClone(config) as Record<string, unknown>;
  copy.pseudonymKey = '***';
  const lake = copy.lake as Record<string, unknown>;
  if ('secretAccessKey' in lake) lake.secretAccessKey = '***';
  const llm = copy.llm as Record<string, unknown>;
  if (llm.apiKey) llm.apiKey = '***';
  const iv = copy.interventions as { email: Record<string, unknown>; webhook: Record<string, unknown> };
  if (iv.email.password) iv.email.password = '***';
  if (iv.webhook.secret) iv.webhook.secret = '***';
  const api = copy.api as { keys: { key: string }[] };
  for (const k of api.keys) k.key = '***';
  return copy;
}
