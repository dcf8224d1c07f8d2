import { executeChild, workflowInfo } from '@temporalio/workflow';
import { defineSearchAttributeKey } from '@temporalio/common';
import { nightlyWorkflowId, type NightlySummary, type ScheduledNightlyInput } from './contracts.js';
import { nightlyPipeline } from './nightly.js';

const ScheduledStart = defineSearchAttributeKey('TemporalScheduledStartTime', 'DATETIME');

/** The calendar date of an instant in a timezone, minus one day: the night processes the day that just ended. */
export function partitionDateFor(at: Date, timezone: string): string {
  const local = new Intl.DateTimeFormat('en-CA', {
    timeZone: timezone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  }).format(at);
  const d = new Date(`${local}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() - 1);
  return d.toISOString().slice(0, 10);
}

/**
 * The Schedule's action. Its partition date comes from the schedule's start time (`TemporalScheduledStartTime`, which
 * a Schedule backfill sets to the time it stands in for), so catch-up and backfilled runs process their own dates.
 * The work itself runs as the child `nightly-<date>`.
 */
export async function scheduledNightly(input: ScheduledNightlyInput): Promise<NightlySummary> {
  const info = workflowInfo();
  const start = info.typedSearchAttributes.get(ScheduledStart) ?? info.startTime;
  const date = partitionDateFor(new Date(start), input.timezone);
  return executeChild(nightlyPipeline, {
    workflowId: nightlyWorkflowId(date),
    args: [{ heartbeatTimeoutSeconds: input.heartbeatTimeoutSeconds, interventions: input.interventions, date }],
    staticSummary: `Scheduled nightly run for ${date}`,
  });
}
