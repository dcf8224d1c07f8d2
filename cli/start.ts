import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { readInterventionStatuses } from '../activities/interventions/index.js';
import { createLake } from '../lake/lake.js';
import { startSinks, type Sinks } from '../scripts/sinks.js';
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

  // Without configured endpoints, deliveries go to local ones: an SMTP server and a webhook receiver on loopback that
  // keep what they receive under <home>/sinks (the demo's stand-ins for a mail server and a mentor tool).
  let sinks: Sinks | null = null;
  const iv = config.interventions;
  if (iv.enabled && (!iv.email.smtpUrl || !iv.webhook.url)) {
    const secret = iv.webhook.secret ?? randomBytes(24).toString('hex');
    sinks = await startSinks({ secret, dir: join(config.home, 'sinks') });
    config = {
      ...config,
      interventions: {
        ...iv,
        email: { ...iv.email, smtpUrl: iv.email.smtpUrl ?? sinks.smtpUrl },
        webhook: { url: iv.webhook.url ?? sinks.webhookUrl, secret },
      },
    };
    o.say(
      `deliveries go to local endpoints: SMTP ${sinks.smtpUrl}, webhook ${sinks.webhookUrl} (kept in ${join(config.home, 'sinks')})`,
    );
  }
  const worker = await startWorker(config);
  const { client, close } = await connectClient(config);
  const summaries: NightlySummary[] = [];
  let deliveries: Awaited<ReturnType<typeof settleInterventions>> | null = null;
  try {
    for (const [i, date] of demo.dates.entries()) {
      const handle = await startNightly(client, config, date);
      const s = await followNightly(handle, (p) =>
        o.say(`[${i + 1}/${demo.dates.length}] ${handle.workflowId}: ${p.stage}`),
      );
      summaries.push(s);
    }
    if (iv.enabled) deliveries = await settleInterventions(config, client, o.say);
  } catch (err) {
    await worker.stop();
    await sinks?.stop();
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
      `  interventions ${total((s) => s.interventions.started)} started, ${total((s) => s.interventions.control)} in the control group${
        deliveries
          ? `; delivered ${
              Object.entries(deliveries.delivered)
                .map(([c, n]) => `${c} ${n}`)
                .join(', ') || 'none yet'
            }; ${deliveries.waiting} waiting for the students' mornings (quiet hours)${
              deliveries.approved ? `; ${deliveries.approved} mentor alerts approved by the demo operator` : ''
            }${deliveries.dead ? `; ${deliveries.dead} dead letters` : ''}`
          : ''
      }`,
      `  elapsed  ${elapsed}s`,
      `  lake     ${lakeLocation(config)}`,
      `  web ui   ${ui}`,
      '',
    ].join('\n'),
  );

  await sinks?.stop();
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

/**
 * The demo's operator: approves the mentor alerts waiting for a person (a deployment leaves this to people, in the Web
 * UI or with `edlake approve`), then waits until every intervention that is due has been delivered or dead-lettered.
 * Interventions whose delivery time lies in a student's quiet hours stay on their durable timers.
 */
async function settleInterventions(config: Config, client: Client, say: (l: string) => void) {
  const store = createLake(config).store;
  const terminal = new Set(['delivered', 'dead_letter', 'rejected', 'expired']);
  const approved = new Set<string>();
  const deadline = Date.now() + 180_000;
  for (;;) {
    const records = await readInterventionStatuses(store);
    for (const r of records.filter((x) => x.status === 'awaiting_approval' && !approved.has(x.id))) {
      await client.workflow
        .getHandle(r.id)
        .signal('approve', { by: 'edlake start (demo operator)' })
        .then(() => approved.add(r.id))
        .catch(() => undefined);
    }
    const timed = (s: string) => s === 'scheduled' || s === 'approved';
    const pending = records.filter((r) => !terminal.has(r.status) && !timed(r.status));
    const handles = records.filter((r) => timed(r.status));
    let due = 0;
    for (const r of handles) {
      const st = await client.workflow
        .getHandle(r.id)
        .query<{ deliverAt: string }>('intervention')
        .catch(() => null);
      if (st && Date.parse(st.deliverAt) <= Date.now() + 2000) due++;
    }
    if ((!pending.length && !due) || Date.now() > deadline) {
      const delivered: Record<string, number> = {};
      for (const r of records.filter((x) => x.status === 'delivered'))
        delivered[r.channel] = (delivered[r.channel] ?? 0) + 1;
      return {
        delivered,
        waiting: handles.length - due,
        approved: approved.size,
        dead: records.filter((r) => r.status === 'dead_letter').length,
      };
    }
    say(`interventions: ${pending.length + due} on their way…`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}
