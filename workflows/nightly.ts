import {
  defineQuery,
  executeChild,
  log,
  proxyActivities,
  setCurrentDetails,
  ParentClosePolicy,
  setHandler,
  startChild,
  upsertSearchAttributes,
  WorkflowIdReusePolicy,
  workflowInfo,
} from '@temporalio/workflow';
import { defineSearchAttributeKey } from '@temporalio/common';
import type { Activities } from '../activities/index.js';
import {
  activityQueue,
  goldDatesFor,
  type NightlyPipelineInput,
  type NightlyProgress,
  type NightlySummary,
  retrainWorkflowId,
  type Stage,
} from './contracts.js';
import { interventionWorkflow } from './intervention.js';
import { retrainModel } from './retrain.js';

/** The innermost message of a failure (activity and child failures wrap the one that says what went wrong). */
function rootMessage(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  while (e?.cause) e = e.cause as typeof e;
  return e?.message ?? String(err);
}

export const progressQuery = defineQuery<NightlyProgress>('progress');

const RunDate = defineSearchAttributeKey('EdlakeRunDate', 'DATETIME');
const StageAttr = defineSearchAttributeKey('EdlakeStage', 'KEYWORD');
const Rows = defineSearchAttributeKey('EdlakeRows', 'INT');
const Quarantined = defineSearchAttributeKey('EdlakeQuarantined', 'INT');
const Drift = defineSearchAttributeKey('EdlakeDrift', 'BOOL');
const ModelVersion = defineSearchAttributeKey('EdlakeModelVersion', 'INT');

/** I/O-bound landing: retried often. The summary names the work in the Web UI's event history. */
function ioActivities(heartbeatSeconds: number, summary: string) {
  return proxyActivities<Activities>({
    taskQueue: activityQueue(workflowInfo().taskQueue, 'io'),
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: `${heartbeatSeconds} seconds`,
    retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 8 },
    summary,
  });
}

/** DuckDB stages: long, heartbeating, fewer retries. */
function computeActivities(heartbeatSeconds: number, summary: string) {
  return proxyActivities<Activities>({
    taskQueue: activityQueue(workflowInfo().taskQueue, 'compute'),
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
  input: NightlyPipelineInput & {
    heartbeatTimeoutSeconds?: number;
    /** Delivery settings handed to each intervention workflow (from config, at start). */
    /** Run only these stages (a backfill's `--stages`); all by default. */
    stages?: string[];
    /** For backfills: when nothing landed since the date's gold was built, change nothing. */
    skipUnchanged?: boolean;
    interventions?: {
      approvalTimeoutHours: number;
      retry: { maximumAttempts: number; initialIntervalSeconds: number; maximumIntervalSeconds: number };
    };
  },
): Promise<NightlySummary> {
  const { runId } = workflowInfo();
  const writeId = `run-${runId}`;
  const hb = input.heartbeatTimeoutSeconds ?? 60;
  const progress: NightlyProgress = {
    date: input.date,
    stage: 'queued',
    stagesDone: [],
    filesLanded: 0,
    rows: {
      bronzeFiles: 0,
      silver: 0,
      quarantined: 0,
      duplicates: 0,
      late: 0,
      timeline: 0,
      gold: 0,
      embedded: 0,
      scored: 0,
      atRisk: 0,
    },
    drift: null,
    retrains: [],
    models: {},
    interventions: { eligible: 0, started: 0, control: 0, skipped: {} },
    notes: [],
    report: null,
  };
  const partitions: NightlySummary['partitions'] = [];
  setHandler(progressQuery, () => progress);

  const show = (stage: Stage) => {
    progress.stage = stage;
    log.info(`stage ${stage}`, { stage, date: input.date });
    const r = progress.rows;
    setCurrentDetails(
      [
        `**Nightly run ${input.date}** — stage: \`${stage}\``,
        `- done: ${progress.stagesDone.join(' → ') || '—'}`,
        `- bronze files: ${r.bronzeFiles} (new: ${progress.filesLanded})`,
        `- silver rows: ${r.silver}, duplicates: ${r.duplicates}, quarantined: ${r.quarantined}, late: ${r.late}`,
        `- timeline events: ${r.timeline}`,
        `- gold rows: ${r.gold}`,
        `- embedded: ${r.embedded}; drift: ${progress.drift ? (progress.drift.drifted ? `yes (${progress.drift.reasons.join('; ')})` : 'no') : '—'}`,
        ...progress.retrains.map(
          (x) => `- retrained ${x.name} → v${x.version}: ${x.promoted ? 'promoted' : 'kept champion'} (${x.why})`,
        ),
        `- scored: ${r.scored}, at risk: ${r.atRisk}; models: ${
          Object.entries(progress.models)
            .map(([k, v]) => `${k} v${v}`)
            .join(', ') || '—'
        }`,
        `- interventions: ${progress.interventions.started} started, ${progress.interventions.control} in the control group, ${Object.values(
          progress.interventions.skipped,
        ).reduce((a, b) => a + b, 0)} skipped`,
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

  const want = (stage: Stage) => !input.stages || input.stages.includes(stage);
  const summary = (): NightlySummary => ({
    ...progress,
    partitions: partitions.map(({ layer, dataset, date, rowCount, uri }) => ({ layer, dataset, date, rowCount, uri })),
  });
  let alignDates = [input.date];
  try {
    if (want('bronze')) {
      show('bronze');
      const bronze = await ioActivities(hb, `Land the raw drop of ${input.date} in bronze`).landBronzeFiles({
        date: input.date,
        runId,
      });
      progress.filesLanded = bronze.filesAdded;
      progress.rows.bronzeFiles = bronze.sources.reduce((n, s) => n + (s.partition.stats.files ?? 0), 0);
      partitions.push(...bronze.sources.map((s) => ({ ...s.partition, rowCount: s.partition.stats.files ?? 0 })));
      progress.stagesDone.push('bronze');
      if (input.skipUnchanged) {
        const done = await ioActivities(hb, `Is ${input.date} already built from everything that landed?`).goldUpToDate(
          {
            date: input.date,
          },
        );
        if (done) {
          progress.notes.push('nothing landed since gold was built: every partition kept as it is');
          show('done');
          return summary();
        }
      }
    }

    if (want('silver')) {
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
      alignDates = touched.includes(input.date) ? touched : [...touched, input.date].sort();
    }
    if (want('timeline')) {
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
    }

    if (want('gold')) {
      show('gold');
      const goldDates = goldDatesFor(alignDates, input.date);
      const gold = await computeActivities(hb, `Student features as of ${goldDates.join(', ')}`).buildGoldFeatures({
        dates: goldDates,
        landingDate: input.date,
        runId,
        writeId,
      });
      progress.rows.gold = gold.partitions.find((p) => p.date === input.date)?.rowCount ?? 0;
      partitions.push(...gold.partitions);
      progress.stagesDone.push('gold');
    }

    if (want('embeddings')) {
      show('embeddings');
      const emb = await computeActivities(hb, `Embed forum posts and behaviour of ${input.date}`).embedBehaviour({
        date: input.date,
        runId,
        writeId,
      });
      progress.rows.embedded = emb.embedded;
      partitions.push(...emb.partitions);
      if (emb.truncated) progress.notes.push(`${emb.truncated} behaviour texts cut to the model's token limit`);
      progress.stagesDone.push('embeddings');
    }

    if (want('models')) {
      show('models');
      const drift = await computeActivities(hb, `Drift of ${input.date} against the training reference`).checkDrift({
        date: input.date,
        runId,
        writeId,
      });
      progress.drift = { drifted: drift.drifted, reasons: drift.reasons };
      if (drift.partition) partitions.push(drift.partition);
      upsertSearchAttributes([{ key: Drift, value: drift.drifted }]);
      for (const name of ['risk', 'segments'] as const) {
        const reason = drift.retrain[name];
        if (!reason) continue;
        try {
          const d = await executeChild(retrainModel, {
            workflowId: retrainWorkflowId(name, input.date),
            args: [{ name, date: input.date, reason, heartbeatTimeoutSeconds: hb }],
            staticSummary: `Retrain ${name} for ${input.date}: ${reason}`,
          });
          progress.retrains.push({ name, version: d.version, promoted: d.promoted, why: d.why });
        } catch (err) {
          // A model that cannot be trained tonight (e.g. too few labelled students) leaves the champion in place.
          progress.notes.push(`retrain ${name} failed: ${rootMessage(err)}`);
        }
      }
      progress.stagesDone.push('models');
    }

    if (want('scoring')) {
      show('scoring');
      try {
        const scored = await computeActivities(hb, `Risk scores and segments as of ${input.date}`).scoreStudents({
          date: input.date,
          runId,
          writeId,
        });
        progress.rows.scored = scored.scored;
        progress.rows.atRisk = scored.atRisk;
        progress.models = scored.versions;
        partitions.push(...scored.partitions);
        upsertSearchAttributes([{ key: ModelVersion, value: scored.versions.risk }]);
        progress.stagesDone.push('scoring');
      } catch (err) {
        if (!/no champion model/.test(rootMessage(err))) throw err;
        progress.notes.push('no champion model yet: nothing scored');
      }
    }

    if (want('interventions') && progress.stagesDone.includes('scoring')) {
      show('interventions');
      const acts = ioActivities(hb, `Decide interventions for ${input.date}`);
      const decided = await acts.decideInterventions({ date: input.date, runId, writeId });
      if (decided.partition) partitions.push(decided.partition);
      if (decided.paused) progress.notes.push("deliveries are paused: tonight's interventions wait for a resume");
      progress.interventions = {
        eligible: decided.counts.eligible,
        started: 0,
        control: decided.counts.control,
        skipped: decided.counts.skipped,
      };
      const settings = input.interventions ?? {
        approvalTimeoutHours: 48,
        retry: { maximumAttempts: 5, initialIntervalSeconds: 10, maximumIntervalSeconds: 600 },
      };
      // Each intervention lives on after tonight's run (delivery times, approvals): started, not awaited. A re-run of
      // the night finds them started already and leaves them alone.
      for (const p of decided.planned) {
        try {
          await startChild(interventionWorkflow, {
            workflowId: p.id,
            args: [{ intervention: p, heartbeatTimeoutSeconds: hb, startPaused: decided.paused, ...settings }],
            parentClosePolicy: ParentClosePolicy.ABANDON,
            workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
            staticSummary: `${p.kind.replace('_', ' ')} via ${p.channel} for ${p.studentKey}`,
            staticDetails: `Decided by nightly-${input.date}; deliver at ${p.deliverAt}${p.needsApproval ? `; needs approval: ${p.approvalReason}` : ''}`,
          });
          progress.interventions.started++;
        } catch (err) {
          if (!/already (started|exists)/i.test(rootMessage(err))) throw err;
        }
      }
      const outcomes = await acts.measureInterventionOutcomes({ date: input.date, runId, writeId });
      if (outcomes.partition) partitions.push(outcomes.partition);
      progress.stagesDone.push('interventions');
    }

    if (want('report')) {
      show('report');
      try {
        const r = await ioActivities(hb, `Run report of ${input.date}`).writeRunReport({ date: input.date, runId });
        progress.report = r.uri;
        progress.stagesDone.push('report');
      } catch (err) {
        // The report describes the run; failing to write it does not undo the run.
        progress.notes.push(`run report not written: ${rootMessage(err)}`);
      }
    }

    show('done');
    log.info('nightly run complete', { date: input.date, gold: progress.rows.gold });
    return summary();
  } catch (err) {
    show('failed');
    throw err;
  }
}
