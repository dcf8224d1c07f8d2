import { proxyActivities, setCurrentDetails, upsertMemo, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { activityQueue, type RetrainInput } from './contracts.js';

export interface RetrainResult {
  name: string;
  version: number;
  promoted: boolean;
  why: string;
  metrics: Record<string, unknown>;
}

/**
 * `retrain-<model>-<date>`: trains a challenger, evaluates it against the champion on the same students and promotes
 * it only if it is not worse beyond the tolerance and not less fair. The decision is in the result, the memo and the
 * current details, so the Web UI shows why.
 */
export async function retrainModel(input: RetrainInput & { heartbeatTimeoutSeconds?: number }): Promise<RetrainResult> {
  const acts = proxyActivities<Activities>({
    taskQueue: activityQueue(workflowInfo().taskQueue, 'compute'),
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: `${input.heartbeatTimeoutSeconds ?? 60} seconds`,
    retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 3 },
    summary: `${input.name} model for ${input.date}`,
  });
  setCurrentDetails(
    `**Retraining ${input.name}** for ${input.date}\n- reason: ${input.reason}\n- stage: training challenger`,
  );
  const trained = await acts.trainChallenger({ name: input.name, date: input.date, reason: input.reason });
  setCurrentDetails(
    `**Retraining ${input.name}** for ${input.date}\n- reason: ${input.reason}\n- challenger: v${trained.version}\n- stage: champion or challenger`,
  );
  const d = await acts.decidePromotion({ name: input.name, version: trained.version, date: input.date });
  const summary = `${d.promoted ? 'promoted' : 'not promoted'} v${d.version}: ${d.why}`;
  upsertMemo({ decision: summary, reason: input.reason });
  setCurrentDetails(
    `**Retraining ${input.name}** for ${input.date}\n- reason: ${input.reason}\n- challenger: v${d.version}\n- decision: ${summary}`,
  );
  return { name: input.name, version: d.version, promoted: d.promoted, why: d.why, metrics: trained.metrics };
}
