import { type Client, WorkflowExecutionAlreadyStartedError, type WorkflowHandle } from '@temporalio/client';
import { WorkflowIdConflictPolicy, WorkflowIdReusePolicy } from '@temporalio/common';
import { nightlySettings } from './schedule.js';
import type { Config } from '../config/index.js';
import { assertDate } from '../lake/paths.js';
import { type NightlyProgress, type NightlySummary, nightlyWorkflowId } from '../workflows/contracts.js';
import type { nightlyPipeline } from '../workflows/nightly.js';
import { CliError, EXIT } from './errors.js';

export type NightlyHandle = WorkflowHandle<typeof nightlyPipeline>;

/**
 * Starts `nightly-<date>`. A run already in progress for the date is joined rather than duplicated; a finished one
 * is run again (its partitions are replaced, not appended).
 */
export async function startNightly(client: Client, config: Config, date: string): Promise<NightlyHandle> {
  try {
    assertDate(date);
  } catch (err) {
    throw new CliError((err as Error).message, EXIT.usage);
  }
  try {
    return await client.workflow.start<typeof nightlyPipeline>('nightlyPipeline', {
      workflowId: nightlyWorkflowId(date),
      taskQueue: config.temporal.taskQueue,
      args: [{ date, ...nightlySettings(config) }],
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
      staticSummary: `Nightly run for ${date}: bronze → silver → gold → models → interventions`,
      staticDetails: `Lands the raw drop of ${date} in bronze, cleans and pseudonymizes it into silver (bad rows to quarantine), writes per-student features to gold, checks drift and retrains, scores risk and segments, and starts the night's interventions. Re-running replaces the date's partitions and leaves started interventions alone.`,
      memo: { date, lake: config.lake.kind },
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return client.workflow.getHandle(nightlyWorkflowId(date));
    throw err;
  }
}

/** Waits for a run, reporting each change of progress (polled by query). */
export async function followNightly(
  handle: NightlyHandle,
  onProgress: (p: NightlyProgress) => void,
): Promise<NightlySummary> {
  let last = '';
  let finished = false;
  const result = handle.result().finally(() => {
    finished = true;
  });
  const poll = async () => {
    while (!finished) {
      try {
        const p = await handle.query<NightlyProgress>('progress');
        const key = JSON.stringify(p);
        if (key !== last) {
          last = key;
          onProgress(p);
        }
      } catch {
        // The query can fail while no worker holds the workflow (e.g. after a crash); the next poll retries.
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  };
  const [summary] = await Promise.all([result, poll()]);
  if (JSON.stringify({ ...summary, partitions: undefined }) !== last) onProgress(summary);
  return summary;
}
