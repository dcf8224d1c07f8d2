import {
  ActivityFailure,
  ApplicationFailure,
  condition,
  defineQuery,
  defineSignal,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { defineSearchAttributeKey } from '@temporalio/common';
import type { Activities } from '../activities/index.js';
import type { InterventionStatus, PlannedIntervention } from '../activities/interventions/index.js';
import { activityQueue, type ApprovalDecision, type InterventionState } from './contracts.js';

export const approveSignal = defineSignal<[ApprovalDecision?]>('approve');
export const rejectSignal = defineSignal<[ApprovalDecision?]>('reject');
export const interventionQuery = defineQuery<InterventionState>('intervention');
/** Operators hold deliveries (all of them with `edlake deliveries pause`, or one from the Web UI) and let them go. */
export const pauseDeliverySignal = defineSignal<[{ by?: string; note?: string }?]>('pauseDelivery');
export const resumeDeliverySignal = defineSignal<[{ by?: string }?]>('resumeDelivery');

const RunDate = defineSearchAttributeKey('EdlakeRunDate', 'DATETIME');
const StatusAttr = defineSearchAttributeKey('EdlakeInterventionStatus', 'KEYWORD');

export interface InterventionInput {
  intervention: PlannedIntervention;
  approvalTimeoutHours: number;
  retry: { maximumAttempts: number; initialIntervalSeconds: number; maximumIntervalSeconds: number };
  heartbeatTimeoutSeconds?: number;
  /** Deliveries were paused when the night decided: wait for a resume before delivering. */
  startPaused?: boolean;
}

/**
 * `intervention-<student_key>-<kind>-<date>`: composes the message, waits for a person's approval when the stakes are
 * high (timing out to doing nothing), sleeps on a durable timer until the delivery time outside the student's quiet
 * hours, and delivers through its channel with retries and backoff. After the last attempt it is dead-lettered.
 */
export async function interventionWorkflow(input: InterventionInput): Promise<InterventionState> {
  const p = input.intervention;
  const state: InterventionState = {
    id: p.id,
    kind: p.kind,
    channel: p.channel,
    status: 'scheduled',
    deliverAt: p.deliverAt,
    approval: p.needsApproval ? { reason: p.approvalReason ?? 'approval required' } : null,
    message: null,
    attempts: 0,
    detail: null,
  };
  setHandler(interventionQuery, () => state);
  let decision: { approved: boolean; by?: string; note?: string } | undefined;
  setHandler(approveSignal, (d) => void (decision ??= { approved: true, ...d }));
  setHandler(rejectSignal, (d) => void (decision ??= { approved: false, ...d }));
  let paused = input.startPaused ?? false;
  setHandler(pauseDeliverySignal, () => void (paused = true));
  setHandler(resumeDeliverySignal, () => void (paused = false));

  const queue = activityQueue(workflowInfo().taskQueue, 'delivery');
  const light = proxyActivities<Activities>({
    taskQueue: queue,
    startToCloseTimeout: '5 minutes',
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10 },
    summary: `${p.kind.replace('_', ' ')} for ${p.studentKey}`,
  });
  // The status is recorded in the lake before the query shows it, so whoever sees a status (the Web UI, the CLI)
  // finds it in `edlake interventions` too.
  const show = async (status: InterventionStatus, detail: string | null = null) => {
    upsertSearchAttributes([{ key: StatusAttr, value: status }]);
    setCurrentDetails(
      [
        `**${p.kind.replace('_', ' ')}** for student \`${p.studentKey}\` via ${p.channel} — ${status.replace('_', ' ')}`,
        `- deliver at: ${p.deliverAt} (outside the student's quiet hours)`,
        state.approval
          ? `- approval: ${state.approval.reason}${state.approval.by ? ` — ${state.approval.by}` : ''}`
          : '',
        state.message ? `- message (${state.message.source}): ${state.message.subject}` : '',
        state.message?.fallbackReason ? `- template used: ${state.message.fallbackReason}` : '',
        detail ? `- ${detail}` : '',
      ]
        .filter(Boolean)
        .join('\n'),
    );
    await light.recordInterventionStatus({
      id: p.id,
      date: p.date,
      studentKey: p.studentKey,
      kind: p.kind,
      channel: p.channel,
      status,
      at: new Date().toISOString(),
      ...(detail ? { detail } : {}),
    });
    state.status = status;
    state.detail = detail;
  };
  upsertSearchAttributes([{ key: RunDate, value: new Date(`${p.date}T00:00:00Z`) }]);

  const message = await light.composeIntervention({ id: p.id, date: p.date });
  state.message = { subject: message.subject, source: message.source, fallbackReason: message.fallbackReason ?? null };
  upsertMemo({
    message: `${message.source}: ${message.subject}`,
    ...(message.fallbackReason ? { fallback: message.fallbackReason } : {}),
  });

  if (p.needsApproval) {
    await show('awaiting_approval', `waiting up to ${input.approvalTimeoutHours} h for approve or reject`);
    const answered = await condition(() => decision !== undefined, `${input.approvalTimeoutHours} hours`);
    if (!answered) {
      await show('expired', `no answer within ${input.approvalTimeoutHours} h: nothing sent`);
      return state;
    }
    state.approval = { ...state.approval!, by: decision!.by ?? 'an operator', note: decision!.note };
    if (!decision!.approved) {
      await show('rejected', `rejected by ${state.approval.by}${decision!.note ? `: ${decision!.note}` : ''}`);
      return state;
    }
    await show('approved', `approved by ${state.approval.by}`);
  } else {
    await show('scheduled');
  }

  const wait = Date.parse(p.deliverAt) - Date.now();
  if (wait > 0) await sleep(wait);

  if (paused) {
    await show('paused', 'deliveries are paused: waiting for resumeDelivery (edlake deliveries resume)');
    await condition(() => !paused);
  }
  await show('delivering');
  const deliver = proxyActivities<Activities>({
    taskQueue: queue,
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: `${input.heartbeatTimeoutSeconds ?? 60} seconds`,
    retry: {
      initialInterval: `${input.retry.initialIntervalSeconds} seconds`,
      backoffCoefficient: 2,
      maximumInterval: `${input.retry.maximumIntervalSeconds} seconds`,
      maximumAttempts: input.retry.maximumAttempts,
      nonRetryableErrorTypes: ['DeliveryRejected', 'MissingInput'],
    },
    summary: `deliver ${p.kind.replace('_', ' ')} via ${p.channel}`,
  });
  try {
    const r = await deliver.deliverIntervention({ intervention: p, message });
    state.attempts = r.attempt;
    await show(
      'delivered',
      `${r.receipt.channel}: ${r.receipt.detail} (attempt ${r.attempt}${r.repeated ? ', already confirmed' : ''})`,
    );
  } catch (err) {
    if (!(err instanceof ActivityFailure)) throw err;
    const cause = err.cause instanceof ApplicationFailure ? err.cause : undefined;
    const why = cause?.message ?? err.message;
    await show('dead_letter', `${cause?.nonRetryable ? 'cannot succeed' : 'retries exhausted'}: ${why}`);
  }
  return state;
}
