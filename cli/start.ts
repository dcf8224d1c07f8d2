import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Config, lakeLocation } from '../config/index.js';
import { generate, GENERATOR_VERSION, type GenerateResult } from '../generator/index.js';
import { installModel } from '../scripts/model.js';
import { servicesDown, servicesUp } from '../scripts/services.js';
import { startWorker } from '../workers/worker.js';
import type { NightlySummary } from '../workflows/contracts.js';
import { connectClient } from './client.js';
import { followNightly, startNightly } from './runs.js';

export const DEMO = { start: '2026-09-14', seed: 42 };

/**
 * The main job: bring services up if needed, write the demo raw drop into the inbox if absent, start a worker,
 * run `nightly-<date>` for every demo day in order, print a summary. Without keep, stops what it started.
 */
export async function runMainJob(
  config: Config,
  o: { keep: boolean; students: number; days: number; say: (l: string) => void; print: (l: string) => void },
): Promise<void> {
  const t0 = Date.now();
  await installModel(config, o.say);
  const states = await servicesUp(config, { say: o.say });
  const startedHere = states.filter((s) => s.state === 'started').map((s) => s.name);
  let keepRunning = false;
  try {
    keepRunning = await runDemo(config, o, t0);
  } finally {
    if (!keepRunning && startedHere.length) await servicesDown(config, startedHere);
  }
}

async function runDemo(
  config: Config,
  o: { keep: boolean; students: number; days: number; say: (l: string) => void; print: (l: string) => void },
  t0: number,
): Promise<boolean> {
  const marker = join(config.inbox, '_generator.json');
  const previous = existsSync(marker)
    ? (JSON.parse(readFileSync(marker, 'utf8')) as GenerateResult & { generatorVersion?: number })
    : null;
  let demo: Pick<GenerateResult, 'dates'>;
  if (previous && previous.generatorVersion === GENERATOR_VERSION) {
    demo = previous;
    o.say(`using the raw drop in ${config.inbox}`);
  } else {
    o.say(`generating demo data: ${o.students} students × ${o.days} days into ${config.inbox}…`);
    demo = await generate({
      out: config.inbox,
      students: o.students,
      days: o.days,
      start: DEMO.start,
      seed: DEMO.seed,
    });
  }

  const worker = await startWorker(config);
  const { client, close } = await connectClient(config);
  const summaries: NightlySummary[] = [];
  try {
    for (const [i, date] of demo.dates.entries()) {
      const handle = await startNightly(client, config, date);
      const s = await followNightly(handle, (p) =>
        o.say(`[${i + 1}/${demo.dates.length}] ${handle.workflowId}: ${p.stage}`),
      );
      summaries.push(s);
    }
  } catch (err) {
    await worker.stop();
    throw err;
  } finally {
    await close();
  }

  const total = (f: (s: NightlySummary) => number) => summaries.reduce((n, s) => n + f(s), 0);
  const elapsed = ((Date.now() - t0) / 1000).toFixed(1);
  const ui = `${config.temporal.uiUrl}/namespaces/${config.temporal.namespace}/workflows?query=${encodeURIComponent("WorkflowType='nightlyPipeline'")}`;
  o.print(
    [
      '',
      `edlake: ${summaries.length} nightly run(s) completed (${demo.dates[0]} … ${demo.dates.at(-1)})`,
      `  bronze   ${total((s) => s.rows.bronzeFiles)} files`,
      `  silver   ${total((s) => s.rows.silver)} rows   (duplicates ${total((s) => s.rows.duplicates)}, quarantined ${total((s) => s.rows.quarantined)}, late ${total((s) => s.rows.late)})`,
      `  timeline ${total((s) => s.rows.timeline)} events on per-student timelines`,
      `  gold     ${total((s) => s.rows.gold)} rows   (student_features)`,
      `  models   ${
        summaries
          .flatMap((s) =>
            s.retrains.map((r) => `${r.name} v${r.version} ${r.promoted ? 'promoted' : 'kept champion'} (${s.date})`),
          )
          .join('; ') || 'none trained'
      }; drift on ${summaries.filter((s) => s.drift?.drifted).length} night(s)`,
      `  scored   ${summaries.at(-1)?.rows.scored ?? 0} students on ${summaries.at(-1)?.date ?? '—'}, at risk ${summaries.at(-1)?.rows.atRisk ?? 0}`,
      `  elapsed  ${elapsed}s`,
      `  lake     ${lakeLocation(config)}`,
      `  web ui   ${ui}`,
      '',
    ].join('\n'),
  );

  if (o.keep) {
    o.say('services and worker keep running (Ctrl-C stops the worker; `edlake services down` stops the services)');
    const stop = () => void worker.stop();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    await worker.done;
    return true;
  }
  await worker.stop();
  return false;
}
