import {
  defineQuery,
  log,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { defineSearchAttributeKey } from '@temporalio/common';
import type { Activities } from '../activities/index.js';
import type { NightlyPipelineInput, NightlyProgress, NightlySummary, Stage } from './contracts.js';

/** Dates from..to inclusive (pure date arithmetic, deterministic). */
function dateSpan(from: string, to: string): string[] {
  const out: string[] = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += 86_400_000) {
    out.push(new Date(t).toISOString().slice(0, 10));
  }
  return out;
}

export const progressQuery = defineQuery<NightlyProgress>('progress');

const RunDate = defineSearchAttributeKey('EdlakeRunDate', 'DATETIME');
const StageAttr = defineSearchAttributeKey('EdlakeStage', 'KEYWORD');
const Rows = defineSearchAttributeKey('EdlakeRows', 'INT');
const Quarantined = defineSearchAttributeKey('EdlakeQuarantined', 'INT');

/** I/O-bound landing: retried often. The summary names the work in the Web UI's event history. */
function ioActivities(heartbeatSeconds: number, summary: string) {
  return proxyActivities<Activities>({
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: `${heartbeatSeconds} seconds`,
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 8 },
    summary,
  });
}

/** DuckDB stages: long, heartbeating, fewer retries. */
function computeActivities(heartbeatSeconds: number, summary: string) {
  return proxyActivities<Activities>({
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: `${heartbeatSeconds} seconds`,
    retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 5 },
    summary,
  });
}

/**
 * The nightly run for one date: bronze → silver → gold. Each stage replaces its partitions whole, so the run is
 * idempotent: running a date again yields the same partitions, never duplicates. ID: `nightly-<date>`.
 */
export async function nightlyPipeline(
  input: NightlyPipelineInput & { heartbeatTimeoutSeconds?: number },
): Promise<NightlySummary> {
  const { runId } = workflowInfo();
  const writeId = `run-${runId}`;
  const hb = input.heartbeatTimeoutSeconds ?? 60;
  const progress: NightlyProgress = {
    date: input.date,
    stage: 'queued',
    stagesDone: [],
    filesLanded: 0,
    rows: { bronzeFiles: 0, silver: 0, quarantined: 0, duplicates: 0, late: 0, timeline: 0, gold: 0 },
    notes: [],
  };
  const partitions: NightlySummary['partitions'] = [];
  setHandler(progressQuery, () => progress);

  const show = (stage: Stage) => {
    progress.stage = stage;
    const r = progress.rows;
    setCurrentDetails(
      [
        `**Nightly run ${input.date}** — stage: \`${stage}\``,
        `- done: ${progress.stagesDone.join(' → ') || '—'}`,
        `- bronze files: ${r.bronzeFiles} (new: ${progress.filesLanded})`,
        `- silver rows: ${r.silver}, duplicates: ${r.duplicates}, quarantined: ${r.quarantined}, late: ${r.late}`,
        `- timeline events: ${r.timeline}`,
        `- gold rows: ${r.gold}`,
        ...progress.notes.map((n) => `- note: ${n}`),
      ].join('\n'),
    );
    upsertSearchAttributes([
      { key: StageAttr, value: stage },
      { key: Rows, value: r.gold },
      { key: Quarantined, value: r.quarantined },
    ]);
  };
  upsertSearchAttributes([{ key: RunDate, value: new Date(`${input.date}T00:00:00Z`) }]);

  try {
    show('bronze');
    const bronze = await ioActivities(hb, `Land the raw drop of ${input.date} in bronze`).landBronzeFiles({
      date: input.date,
      runId,
    });
    progress.filesLanded = bronze.filesAdded;
    progress.rows.bronzeFiles = bronze.sources.reduce((n, s) => n + (s.partition.stats.files ?? 0), 0);
    partitions.push(...bronze.sources.map((s) => ({ ...s.partition, rowCount: s.partition.stats.files ?? 0 })));
    progress.stagesDone.push('bronze');

    show('silver');
    const silver = await computeActivities(
      hb,
      `Clean, deduplicate and pseudonymize the ${input.date} landing into silver`,
    ).buildSilverTables({
      date: input.date,
      runId,
      writeId,
    });
    for (const r of silver.reconciliation) {
      progress.rows.silver += r.accepted;
      progress.rows.duplicates += r.duplicates;
      progress.rows.quarantined += r.quarantined;
      progress.rows.late += r.late;
    }
    progress.notes.push(...silver.notes);
    partitions.push(...silver.partitions);
    progress.stagesDone.push('silver');

    // Late events change earlier days: realign them and recompute their features up to this date.
    const touched = silver.touchedDates.filter((d) => d <= input.date);
    const alignDates = touched.includes(input.date) ? touched : [...touched, input.date].sort();
    show('timeline');
    const timeline = await computeActivities(hb, `Align the timeline of ${alignDates.join(', ')}`).alignTimeline({
      dates: alignDates,
      landingDate: input.date,
      runId,
      writeId,
    });
    progress.rows.timeline =
      timeline.partitions.find((p) => p.dataset === 'timeline' && p.date === input.date)?.rowCount ?? 0;
    partitions.push(...timeline.partitions);
    progress.stagesDone.push('timeline');

    show('gold');
    const goldDates = dateSpan(alignDates[0]!, input.date);
    const gold = await computeActivities(hb, `Student features as of ${goldDates.join(', ')}`).buildGoldFeatures({
      dates: goldDates,
      runId,
      writeId,
    });
    progress.rows.gold = gold.partitions.find((p) => p.date === input.date)?.rowCount ?? 0;
    partitions.push(...gold.partitions);
    progress.stagesDone.push('gold');

    show('done');
    log.info('nightly run complete', { date: input.date, gold: progress.rows.gold });
    return {
      ...progress,
      partitions: partitions.map(({ layer, dataset, date, rowCount, uri }) => ({
        layer,
        dataset,
        date,
        rowCount,
        uri,
      })),
    };
  } catch (err) {
    show('failed');
    throw err;
  }
}
