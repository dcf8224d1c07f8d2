import { fileURLToPath } from 'node:url';
import { DefaultLogger, type LogEntry, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import type { Config } from '../config/index.js';
import { createDeps } from './deps.js';

export const WORKFLOWS_PATH = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface StartedWorker {
  worker: Worker;
  connection: NativeConnection;
  /** Resolves when the worker has stopped. */
  done: Promise<void>;
  stop(): Promise<void>;
}

let runtimeInstalled = false;

/** Worker log entries as one line each: what failed, where, and the innermost message — no stack, no payloads. */
function oneLine(entry: LogEntry): void {
  const m = (entry.meta ?? {}) as Record<string, unknown>;
  const where = [m.workflowId, m.activityType ?? m.workflowType].filter(Boolean).join(' ');
  let err = m.error as { message?: string; cause?: unknown } | undefined;
  while (err?.cause) err = err.cause as typeof err;
  const why = err?.message ? `: ${err.message.split('\n')[0]}` : '';
  process.stderr.write(`[worker] ${entry.level} ${entry.message}${where ? ` (${where})` : ''}${why}\n`);
}

/** Connects to Temporal and starts a worker for the pipeline task queue. */
export async function startWorker(config: Config, opts: { taskQueue?: string } = {}): Promise<StartedWorker> {
  if (!runtimeInstalled) {
    runtimeInstalled = true;
    try {
      Runtime.install({
        logger: new DefaultLogger((process.env.EDLAKE_LOG_LEVEL as 'WARN' | undefined) ?? 'WARN', oneLine),
      });
    } catch {
      // Already installed by the host process (e.g. a test harness); keep its logger.
    }
  }
  const deps = createDeps(config);
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: opts.taskQueue ?? config.temporal.taskQueue,
    workflowsPath: WORKFLOWS_PATH,
    activities: createActivities(deps),
    maxConcurrentActivityTaskExecutions: 4,
  });
  const done = worker.run().finally(async () => {
    await deps.duck.close();
    await connection.close();
  });
  return {
    worker,
    connection,
    done,
    async stop() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await done;
    },
  };
}
