import { fileURLToPath } from 'node:url';
import { DefaultLogger, type LogEntry, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import type { Config } from '../config/index.js';
import { createDeps } from './deps.js';
import pino from 'pino';
import { activityQueue, WORK_KINDS, type WorkKind } from '../workflows/contracts.js';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface StartedWorker {
  workers: Worker[];
  /** Resolves when the worker has stopped. */
  done: Promise<void>;
  stop(): Promise<void>;
}

let runtimeInstalled = false;

/**
 * Worker logs as structured JSON through pino (`EDLAKE_LOG_FORMAT=json`, for log shippers) or one readable line each
 * (the default on a terminal). Either way an entry carries what it is about — workflow id (which names the run date),
 * run id, activity or workflow type, the nightly stage when given — and the innermost error message, never payloads
 * or stacks, so no personal data reaches a log line.
 */
const pinoLogger = pino({ base: { service: 'edlake-worker' }, level: 'trace' }, pino.destination(2));
function structured(entry: LogEntry): void {
  // Activity-only workers (see roles) have no workflows by design.
  if (entry.message.startsWith('No workflows registered')) return;
  const m = (entry.meta ?? {}) as Record<string, unknown>;
  let err = m.error as { message?: string; cause?: unknown } | undefined;
  while (err?.cause) err = err.cause as typeof err;
  const fields = {
    workflowId: m.workflowId,
    runId: m.workflowRunId ?? m.runId,
    activityType: m.activityType,
    workflowType: m.workflowType,
    stage: m.stage,
    taskQueue: m.taskQueue,
    attempt: m.attempt,
    ...(err?.message ? { error: err.message.split('\n')[0] } : {}),
  };
  if (process.env.EDLAKE_LOG_FORMAT === 'json') {
    const level = entry.level.toLowerCase() as 'trace' | 'debug' | 'info' | 'warn' | 'error';
    pinoLogger[level === 'trace' ? 'trace' : level](fields, entry.message);
    return;
  }
  const where = [fields.workflowId, fields.activityType ?? fields.workflowType].filter(Boolean).join(' ');
  process.stderr.write(
    `[worker] ${entry.level} ${entry.message}${where ? ` (${where})` : ''}${fields.error ? `: ${fields.error}` : ''}\n`,
  );
}

/** What a worker process serves: workflow tasks, and activity tasks of each kind of work on their own queue. */
export type WorkerRole = 'workflows' | WorkKind;
export const WORKER_ROLES: WorkerRole[] = ['workflows', ...WORK_KINDS];

/** Activity slots per kind: DuckDB work is CPU- and memory-bound, I/O and deliveries mostly wait. */
const SLOTS: Record<WorkKind, number> = { io: 8, compute: 2, delivery: 16 };

/**
 * Connects to Temporal and starts workers for the pipeline: workflow tasks on the task queue, and activities on
 * `<queue>-io`, `<queue>-compute` and `<queue>-delivery`. By default one process serves all of them; `roles` picks
 * some, so each kind of work scales on its own (see the README's deployment guide).
 */
export async function startWorker(
  config: Config,
  opts: { taskQueue?: string; roles?: WorkerRole[] } = {},
): Promise<StartedWorker> {
  if (!runtimeInstalled) {
    runtimeInstalled = true;
    try {
      Runtime.install({
        logger: new DefaultLogger((process.env.EDLAKE_LOG_LEVEL as 'WARN' | undefined) ?? 'WARN', structured),
      });
    } catch {
      // Already installed by the host process (e.g. a test harness); keep its logger.
    }
  }
  const deps = createDeps(config);
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const queue = opts.taskQueue ?? config.temporal.taskQueue;
  const roles = opts.roles ?? WORKER_ROLES;
  const activities = createActivities(deps);
  const workers: Worker[] = [];
  for (const role of roles) {
    workers.push(
      await Worker.create(
        role === 'workflows'
          ? { connection, namespace: config.temporal.namespace, taskQueue: queue, workflowsPath: WORKFLOWS_PATH }
          : {
              connection,
              namespace: config.temporal.namespace,
              taskQueue: activityQueue(queue, role),
              activities,
              maxConcurrentActivityTaskExecutions: SLOTS[role],
            },
      ),
    );
  }
  const done = Promise.all(workers.map((w) => w.run()))
    .then(() => undefined)
    .finally(async () => {
      await deps.duck.close();
      await connection.close();
    });
  return {
    workers,
    done,
    async stop() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
      await done;
    },
  };
}
