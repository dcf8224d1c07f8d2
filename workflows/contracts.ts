/** Types shared by workflows, clients and the CLI. No I/O, no Node built-ins: safe inside the workflow sandbox. */

export type Stage =
  | 'queued'
  | 'bronze'
  | 'silver'
  | 'timeline'
  | 'gold'
  | 'embeddings'
  | 'models'
  | 'scoring'
  | 'interventions'
  | 'report'
  | 'done'
  | 'failed';

export interface NightlyPipelineInput {
  /** The partition date, YYYY-MM-DD. */
  date: string;
}

export interface NightlyProgress {
  date: string;
  stage: Stage;
  stagesDone: string[];
  filesLanded: number;
  rows: {
    bronzeFiles: number;
    silver: number;
    quarantined: number;
    duplicates: number;
    late: number;
    timeline: number;
    gold: number;
    embedded: number;
    scored: number;
    atRisk: number;
  };
  drift: { drifted: boolean; reasons: string[] } | null;
  /** Retrain decisions taken tonight, per model. */
  retrains: { name: string; version: number; promoted: boolean; why: string }[];
  models: Record<string, number>;
  /** Tonight's decisions: started workflows, control group, skipped by reason. */
  interventions: { eligible: number; started: number; control: number; skipped: Record<string, number> };
  notes: string[];
  /** Where tonight's run report is (reports/dt=<date>/index.html). */
  report: string | null;
}

export interface NightlySummary extends NightlyProgress {
  partitions: { layer: string; dataset: string; date: string; rowCount: number; uri: string }[];
}

export const NIGHTLY_WORKFLOW_PREFIX = 'nightly-';

export function nightlyWorkflowId(date: string): string {
  return `${NIGHTLY_WORKFLOW_PREFIX}${date}`;
}

export interface RetrainInput {
  name: 'risk' | 'segments';
  date: string;
  reason: string;
}

export function retrainWorkflowId(name: string, date: string): string {
  return `retrain-${name}-${date}`;
}

/** The approve/reject signal's optional payload: who decided, and why. */
export interface ApprovalDecision {
  by?: string;
  note?: string;
}

/** An intervention workflow's state, returned by its query and as its result. */
export interface InterventionState {
  id: string;
  kind: string;
  channel: string;
  status: string;
  deliverAt: string;
  approval: { reason: string; by?: string; note?: string } | null;
  message: { subject: string; source: string; fallbackReason: string | null } | null;
  attempts: number;
  detail: string | null;
}

export const INTERVENTION_WORKFLOW_PREFIX = 'intervention-';

/** Settings every nightly run takes from the configuration of whoever starts it (CLI, schedule, backfill). */
export interface NightlySettings {
  heartbeatTimeoutSeconds?: number;
  interventions?: {
    approvalTimeoutHours: number;
    retry: { maximumAttempts: number; initialIntervalSeconds: number; maximumIntervalSeconds: number };
  };
}

export interface BackfillInput {
  from: string;
  to: string;
  concurrency: number;
  /** Only these stages (default: all). */
  stages?: string[];
  nightly: NightlySettings;
  /** Rebuild every date even when nothing new landed (after a pseudonymization key rotation, a logic fix). */
  rebuild?: boolean;
  /** Dates per run before continuing as new (default 40). */
  datesPerRun?: number;
  /** Set when the workflow continues as new: the first date not yet handled, and the counts so far. */
  resumeFrom?: string;
  carried?: { done: number; unchanged: number; failed: string[]; continuedAsNew: number };
}

export interface BackfillProgress {
  from: string;
  to: string;
  total: number;
  done: number;
  /** Dates left as they were: nothing had landed since their gold was built. */
  unchanged: number;
  running: string[];
  failed: string[];
  /** Dates run at once (1 when stages read earlier dates). */
  width: number;
  stages: string[] | null;
  continuedAsNew: number;
}

export function backfillWorkflowId(from: string, to: string): string {
  return `backfill-${from}-${to}`;
}

/** The schedule's action: the scheduled run, which derives its partition date from the schedule's start time. */
export interface ScheduledNightlyInput extends NightlySettings {
  /** The schedule's timezone: the partition date is the day before the scheduled start, there. */
  timezone: string;
}

/** Kinds of activity work, each on its own task queue (`<queue>-io`, `<queue>-compute`, `<queue>-delivery`). */
export type WorkKind = 'io' | 'compute' | 'delivery';
export const WORK_KINDS: WorkKind[] = ['io', 'compute', 'delivery'];
export function activityQueue(workflowQueue: string, kind: WorkKind): string {
  return `${workflowQueue}-${kind}`;
}

/** The longest feature lookback in days (gold's 28-day windows; activities/features.ts checks it matches). */
export const FEATURE_LOOKBACK_DAYS = 28;

/** Dates from..to inclusive (pure date arithmetic, deterministic). */
export function dateSpan(from: string, to: string): string[] {
  const out: string[] = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += 86_400_000) {
    out.push(new Date(t).toISOString().slice(0, 10));
  }
  return out;
}

/**
 * The as-of dates whose features a landing changes: its own date, and each day from every earlier date its late
 * events touched up to that date's lookback (a change on day d reaches the features of d … d + 27, no further) —
 * never the whole history between an old late event and tonight.
 */
export function goldDatesFor(touched: string[], landing: string): string[] {
  const out = new Set<string>([landing]);
  for (const t of touched.filter((d) => d < landing)) {
    const last = dateSpan(t, landing).slice(0, FEATURE_LOOKBACK_DAYS);
    last.forEach((d) => out.add(d));
  }
  return [...out].sort();
}
