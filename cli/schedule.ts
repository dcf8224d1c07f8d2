import {
  type Client,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  WorkflowExecutionAlreadyStartedError,
  WorkflowIdConflictPolicy,
  WorkflowIdReusePolicy,
  type WorkflowHandle,
} from '@temporalio/client';
import type { Config } from '../config/index.js';
import { addDays } from '../lake/paths.js';
import {
  type BackfillProgress,
  backfillWorkflowId,
  type NightlySettings,
  type ScheduledNightlyInput,
} from '../workflows/contracts.js';
import type { backfillRange } from '../workflows/backfill.js';
import { CliError, EXIT } from './errors.js';

/** The settings each nightly run takes from this configuration. */
export function nightlySettings(config: Config): NightlySettings {
  const iv = config.interventions;
  return {
    heartbeatTimeoutSeconds: config.temporal.heartbeatTimeoutSeconds,
    interventions: {
      approvalTimeoutHours: iv.approvalTimeoutHours,
      retry: {
        maximumAttempts: iv.delivery.maximumAttempts,
        initialIntervalSeconds: iv.delivery.initialIntervalSeconds,
        maximumIntervalSeconds: iv.delivery.maximumIntervalSeconds,
      },
    },
  };
}

function scheduleBody(config: Config) {
  const s = config.schedule;
  const args: ScheduledNightlyInput = { ...nightlySettings(config), timezone: s.timezone };
  return {
    spec: { cronExpressions: [s.cron], timezone: s.timezone },
    action: {
      type: 'startWorkflow' as const,
      workflowType: 'scheduledNightly',
      workflowId: 'nightly-scheduled',
      taskQueue: config.temporal.taskQueue,
      args: [args],
      staticSummary: `Scheduled nightly run (${s.cron}, ${s.timezone})`,
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: s.catchupWindow },
  };
}

/** Creates the nightly schedule, or updates it to the configuration when it exists: running it twice leaves one. */
export async function applySchedule(client: Client, config: Config): Promise<'created' | 'updated'> {
  const body = scheduleBody(config);
  const handle = client.schedule.getHandle(config.schedule.id);
  try {
    await handle.describe();
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
    await client.schedule.create({
      scheduleId: config.schedule.id,
      ...body,
      state: { note: 'created by edlake schedule apply' },
    });
    return 'created';
  }
  await handle.update((prev) => ({ ...prev, ...body, policies: { ...prev.policies, ...body.policies } }));
  return 'updated';
}

export async function scheduleHandle(client: Client, config: Config) {
  const handle = client.schedule.getHandle(config.schedule.id);
  try {
    await handle.describe();
  } catch (err) {
    if (err instanceof ScheduleNotFoundError)
      throw new CliError(`no schedule ${config.schedule.id}: run edlake schedule apply first`, EXIT.input);
    throw err;
  }
  return handle;
}

/** Midnight of a calendar date in a timezone, as an instant. */
function zonedMidnight(date: string, timezone: string): Date {
  const guess = Date.parse(`${date}T00:00:00Z`);
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-CA', {
      timeZone: timezone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    })
      .formatToParts(new Date(guess))
      .map((p) => [p.type, p.value]),
  );
  const asUtc = Date.parse(`${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}:${parts.second}Z`);
  return new Date(guess - (asUtc - guess));
}

/**
 * The Schedule's own backfill for partition dates from..to: the runs that would have started the mornings after.
 * The server buffers at most 1,000 runs per request and skips overlaps by default, so the range goes in chunks with
 * the overlap policy that runs every date, one after another.
 */
export async function backfillSchedule(client: Client, config: Config, from: string, to: string): Promise<number> {
  const handle = await scheduleHandle(client, config);
  const tz = config.schedule.timezone;
  let chunks = 0;
  for (let start = from; start <= to; start = addDays(start, 500)) {
    const end = [addDays(start, 499), to].sort()[0]!;
    await handle.backfill([
      {
        start: zonedMidnight(addDays(start, 1), tz),
        end: new Date(zonedMidnight(addDays(end, 2), tz).getTime() - 1000),
        overlap: ScheduleOverlapPolicy.BUFFER_ALL,
      },
    ]);
    chunks++;
  }
  return chunks;
}

export type BackfillHandle = WorkflowHandle<typeof backfillRange>;

/** Starts `backfill-<from>-<to>` (or attaches to it while it runs). */
export async function startBackfill(
  client: Client,
  config: Config,
  o: { from: string; to: string; concurrency: number; stages?: string[]; datesPerRun?: number; rebuild?: boolean },
): Promise<BackfillHandle> {
  const workflowId = backfillWorkflowId(o.from, o.to);
  try {
    return await client.workflow.start<typeof backfillRange>('backfillRange', {
      workflowId,
      taskQueue: config.temporal.taskQueue,
      args: [{ ...o, nightly: nightlySettings(config) }],
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
      staticSummary: `Backfill ${o.from} … ${o.to}${o.stages ? ` (${o.stages.join(', ')})` : ''}`,
      staticDetails: `Runs nightly-<date> for every date from ${o.from} to ${o.to}; dates already built from everything that landed are left as they are.`,
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return client.workflow.getHandle(workflowId);
    throw err;
  }
}

/** Waits for a backfill, reporting progress (polled by query) until it ends. */
export async function followBackfill(
  handle: BackfillHandle,
  onProgress: (p: BackfillProgress) => void,
): Promise<BackfillProgress> {
  const result = handle.result();
  let settled = false;
  void result.finally(() => (settled = true)).catch(() => undefined);
  while (!settled) {
    try {
      onProgress(await handle.query<BackfillProgress>('progress'));
    } catch {
      // between runs (continue-as-new) or not picked up yet
    }
    await Promise.race([result.catch(() => undefined), new Promise((r) => setTimeout(r, 1000))]);
  }
  return result;
}
