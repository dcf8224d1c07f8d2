import type { Client } from '@temporalio/client';
import { PAUSED_KEY } from '../activities/interventions/index.js';
import type { Config } from '../config/index.js';
import { createLake } from '../lake/lake.js';

/** Intervention workflows still running (waiting for approval, a delivery time, or a resume). */
async function runningInterventions(client: Client): Promise<string[]> {
  const ids: string[] = [];
  for await (const wf of client.workflow.list({
    query: `WorkflowType = 'interventionWorkflow' AND ExecutionStatus = 'Running'`,
  }))
    ids.push(wf.workflowId);
  return ids;
}

/**
 * Pauses every delivery: a flag in the lake makes the coming nights start their interventions paused, and every
 * running intervention is signalled to hold before it delivers. Returns how many were signalled.
 */
export async function pauseDeliveries(client: Client, config: Config, by: string, note?: string): Promise<number> {
  await createLake(config).store.putBytes(
    PAUSED_KEY,
    JSON.stringify({ by, note: note ?? null, at: new Date().toISOString() }),
  );
  const ids = await runningInterventions(client);
  for (const id of ids) await client.workflow.getHandle(id).signal('pauseDelivery', { by, ...(note ? { note } : {}) });
  return ids.length;
}

/** Lifts the pause: removes the flag and signals every running intervention to go on. */
export async function resumeDeliveries(client: Client, config: Config, by: string): Promise<number> {
  await createLake(config).store.delete([PAUSED_KEY]);
  const ids = await runningInterventions(client);
  for (const id of ids) await client.workflow.getHandle(id).signal('resumeDelivery', { by });
  return ids.length;
}
