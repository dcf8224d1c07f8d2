import {
  ApplicationFailure,
  continueAsNew,
  defineQuery,
  executeChild,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import { defineSearchAttributeKey } from '@temporalio/common';
import {
  type BackfillInput,
  type BackfillProgress,
  dateSpan,
  nightlyWorkflowId,
  type NightlySummary,
} from './contracts.js';
import { nightlyPipeline } from './nightly.js';

export const backfillProgressQuery = defineQuery<BackfillProgress>('progress');

const StageAttr = defineSearchAttributeKey('EdlakeStage', 'KEYWORD');
const RunDate = defineSearchAttributeKey('EdlakeRunDate', 'DATETIME');

/** Stages that read earlier dates' output (silver's cross-day dedupe and late events, timelines, models, cooldowns). */
const ORDERED = new Set(['silver', 'timeline', 'models', 'interventions']);
/** Dates handled per run before continuing as new, so the history stays bounded however long the range. */
export const DATES_PER_RUN = 40;

function rootMessage(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  while (e?.cause) e = e.cause as typeof e;
  return e?.message ?? String(err);
}

/**
 * `backfill-<from>-<to>`: runs `nightly-<date>` for every date of the range as child workflows. Stages that need
 * earlier dates run the dates in order; a backfill of independent stages (bronze, gold, embeddings, scoring) runs up to
 * `concurrency` dates at once. Each date whose gold is newer than everything that landed for it is left as it is, so
 * a second identical backfill changes no partition and a restarted one resumes where the first got to. Continues as
 * new every DATES_PER_RUN dates.
 */
export async function backfillRange(input: BackfillInput): Promise<BackfillProgress> {
  const all = dateSpan(input.from, input.to);
  const todo = dateSpan(input.resumeFrom ?? input.from, input.to);
  const ordered = !input.stages || input.stages.some((s) => ORDERED.has(s));
  const width = ordered ? 1 : Math.max(1, input.concurrency);
  const progress: BackfillProgress = {
    from: input.from,
    to: input.to,
    total: all.length,
    done: input.carried?.done ?? 0,
    unchanged: input.carried?.unchanged ?? 0,
    running: [],
    failed: input.carried?.failed ?? [],
    width,
    stages: input.stages ?? null,
    continuedAsNew: input.carried?.continuedAsNew ?? 0,
  };
  setHandler(backfillProgressQuery, () => progress);
  upsertSearchAttributes([{ key: RunDate, value: new Date(`${input.from}T00:00:00Z`) }]);
  const show = (stage: string) => {
    upsertSearchAttributes([{ key: StageAttr, value: stage }]);
    setCurrentDetails(
      [
        `**Backfill ${input.from} … ${input.to}** — ${stage}`,
        `- dates: ${progress.done} of ${progress.total} done (${progress.unchanged} unchanged), ${progress.failed.length} failed`,
        `- running: ${progress.running.join(', ') || '—'}`,
        `- ${ordered ? 'in date order (stages read earlier dates)' : `${width} dates at a time`}; stages: ${input.stages?.join(', ') ?? 'all'}`,
        ...progress.failed.slice(-5).map((f) => `- failed: ${f}`),
      ].join('\n'),
    );
  };
  show('running');

  const batch = todo.slice(0, input.datesPerRun ?? DATES_PER_RUN);
  let next = 0;
  const runOne = async (date: string) => {
    progress.running.push(date);
    show('running');
    try {
      const s: NightlySummary = await executeChild(nightlyPipeline, {
        workflowId: nightlyWorkflowId(date),
        args: [{ ...input.nightly, date, stages: input.stages, skipUnchanged: !input.rebuild }],
        staticSummary: `Backfill ${input.from} … ${input.to}: ${date}`,
      });
      progress.done++;
      if (s.notes.some((n) => n.startsWith('nothing landed since gold was built'))) progress.unchanged++;
    } catch (err) {
      progress.failed.push(`${date}: ${rootMessage(err)}`);
    } finally {
      progress.running = progress.running.filter((d) => d !== date);
      show('running');
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(width, batch.length) }, async () => {
      while (next < batch.length) await runOne(batch[next++]!);
    }),
  );

  if (todo.length > batch.length) {
    await continueAsNew<typeof backfillRange>({
      ...input,
      resumeFrom: todo[batch.length]!,
      carried: {
        done: progress.done,
        unchanged: progress.unchanged,
        failed: progress.failed,
        continuedAsNew: progress.continuedAsNew + 1,
      },
    });
  }
  if (progress.failed.length) {
    show('failed');
    throw ApplicationFailure.nonRetryable(
      `${progress.failed.length} of ${progress.total} dates failed: ${progress.failed.slice(0, 3).join('; ')}`,
      'BackfillFailed',
    );
  }
  show('done');
  return progress;
}
