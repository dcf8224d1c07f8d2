import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readInterventionStatuses, readLedger } from '../../activities/interventions/index.js';
import { connectClient } from '../../cli/client.js';
import { followBackfill, startBackfill } from '../../cli/schedule.js';
import { approveSignal } from '../../workflows/intervention.js';
import { type Config, loadConfig } from '../../config/index.js';
import { generate } from '../../generator/index.js';
import { partitionScan } from '../../lake/duck.js';
import { createLake, type Lake } from '../../lake/lake.js';
import { minioUp, servicesDown, servicesUp, temporalUp } from '../../scripts/services.js';
import { startSinks, type Sinks } from '../../scripts/sinks.js';
import { tempDir } from '../helpers.js';

// npm test runs the short version; `npm run chaos` the long one (CHAOS_LONG=1: more students, days and kills).
const LONG = process.env.CHAOS_LONG === '1';
const STUDENTS = LONG ? 200 : 40;
const DAYS = 7;
const KILLS = LONG ? 25 : 10;
const SEED = Number(process.env.CHAOS_SEED ?? 20261123);
const START = '2034-03-06';
const SECRET = 'chaos-webhook-secret-0123456789';

/** Dedicated services on ports of their own: this test restarts them, which the shared test servers must not see. */
const slot = Number(process.env.EDLAKE_TEST_SLOT ?? 0);
const PORT = 41233 + 100 * slot;

const say = (l: string) => process.stderr.write(`[chaos] ${l}\n`);

describe('chaos: a 7-day backfill with interventions under worker kills and service restarts', () => {
  const base = tempDir('chaos');
  let sinks: Sinks;
  let env: NodeJS.ProcessEnv;
  let config: Config;
  let reference: Map<string, string>;
  const counts = {
    approvals: 0,
    kills: 0,
    minioRestarts: 0,
    temporalRestarts: 0,
    webhookRepeats: 0,
    deliveryRetries: 0,
  };

  const configFor = (over: Record<string, string>) => loadConfig({ ...(env as Record<string, string>), ...over });

  /** Every committed gold partition as a hash of its sorted rows (decision times left out: they are wall-clock). */
  async function goldHashes(lake: Lake): Promise<Map<string, string>> {
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    const out = new Map<string, string>();
    for (const ds of await lake.listDatasets('gold')) {
      if (ds === 'intervention_outcomes') continue; // depends on which deliveries had finished when it was measured
      for (const d of await lake.listPartitions('gold', ds)) {
        const { manifest, paths } = await lake.localFiles('gold', ds, d);
        if (!paths.length) continue;
        const cols = ds === 'interventions' ? '* EXCLUDE (decided_at, deliver_at)' : '*';
        const rows = (
          await conn.runAndReadAll(`SELECT ${cols} FROM ${partitionScan(manifest, paths)}`)
        ).getRowObjects();
        const lines = rows
          .map((r) => JSON.stringify(r, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)))
          .sort();
        out.set(`${ds}/${d}`, createHash('sha256').update(lines.join('\n')).digest('hex'));
      }
    }
    return out;
  }

  async function runBackfill(c: Config) {
    const client = await connectClient(c);
    try {
      return await followBackfill(
        await startBackfill(client.client, c, { from: START, to: addDays(START, DAYS - 1), concurrency: 2 }),
        () => undefined,
      );
    } finally {
      await client.close();
    }
  }

  const addDays = (d: string, n: number) =>
    new Date(Date.parse(`${d}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);

  beforeAll(async () => {
    sinks = await startSinks({ secret: SECRET });
    const rules = join(base, 'edlake.config.json');
    // Outbox and webhook: the channels whose effect is exactly once (email is at least once, see the README).
    writeFileSync(
      rules,
      JSON.stringify({
        interventions: {
          rules: [
            { kind: 'study_plan', channel: 'webhook', when: { atRisk: true, minRisk: 0.9 } },
            { kind: 'nudge', channel: 'outbox', when: { atRisk: true } },
          ],
        },
      }),
    );
    env = {
      ...process.env,
      EDLAKE_HOME: join(base, 'home'),
      EDLAKE_INBOX: join(base, 'inbox'),
      EDLAKE_CONFIG: rules,
      EDLAKE_TEMPORAL_ADDRESS: `127.0.0.1:${PORT}`,
      EDLAKE_TEMPORAL_UI_PORT: String(PORT + 1),
      EDLAKE_MINIO_ADDRESS: `127.0.0.1:${PORT + 2}`,
      EDLAKE_MINIO_CONSOLE_ADDRESS: `127.0.0.1:${PORT + 3}`,
      EDLAKE_TASK_QUEUE: 'chaos',
      EDLAKE_WEBHOOK_URL: sinks.webhookUrl,
      EDLAKE_WEBHOOK_SECRET: SECRET,
      EDLAKE_QUIET_HOURS: 'none',
      EDLAKE_MIN_ACTIVE_DAYS: '1',
      EDLAKE_HEARTBEAT_TIMEOUT_SECONDS: '3',
      EDLAKE_DELIVERY_RETRY_SECONDS: '0.5',
      EDLAKE_DELIVERY_MAX_ATTEMPTS: '20',
      EDLAKE_DELIVERY_MAX_RETRY_SECONDS: '5',
      ANTHROPIC_API_KEY: '',
      EDLAKE_LAKE_KIND: 's3',
      EDLAKE_S3_BUCKET: 'chaos',
    };
    config = configFor({});
    await servicesUp(config, { minio: true, say });
    await generate({ out: config.inbox, students: STUDENTS, days: DAYS, start: START, seed: 31 });

    // The undisturbed run: same drop, a local lake, one worker that is never disturbed.
    const refEnv = { EDLAKE_LAKE_KIND: 'local', EDLAKE_LAKE_ROOT: join(base, 'reference-lake') };
    const refConfig = configFor(refEnv);
    const worker = spawn(process.execPath, ['bin/edlake.js', 'worker'], {
      env: { ...env, ...refEnv },
      stdio: 'ignore',
    });
    try {
      const r = await runBackfill(refConfig);
      expect(r.done).toBe(DAYS);
    } finally {
      worker.kill('SIGKILL');
    }
    reference = await goldHashes(createLake(refConfig));
    say(`reference run: ${reference.size} gold partitions`);
    // A fresh server for the disturbed run: workflow IDs are the same.
    await servicesDown(config, ['temporal']);
    rmSync(join(config.home, 'temporal'), { recursive: true, force: true });
    await temporalUp(config, say);
    sinks.webhook.requests.length = 0;
    sinks.webhook.deliveries.clear();
  }, 900_000);

  afterAll(async () => {
    if (config) await servicesDown(config);
    await sinks?.stop();
  });

  it('completes with the undisturbed gold, nothing half-written and no intervention delivered twice', async () => {
    const delays = fc.sample(fc.integer({ min: 1200, max: 4500 }), { numRuns: KILLS, seed: SEED });
    const spawnWorker = (): ChildProcess =>
      spawn(process.execPath, ['bin/edlake.js', 'worker'], { env, stdio: 'ignore' });
    let worker = spawnWorker();
    const client = await connectClient(config);
    const handle = await startBackfill(client.client, config, {
      from: START,
      to: addDays(START, DAYS - 1),
      concurrency: 2,
    });
    await client.close();
    for (const [i, ms] of delays.entries()) {
      await new Promise((r) => setTimeout(r, ms));
      worker.kill('SIGKILL');
      counts.kills++;
      if (i === Math.floor(KILLS * 0.4)) {
        await servicesDown(config, ['minio']);
        await minioUp(config, say);
        counts.minioRestarts++;
      }
      if (i === Math.floor(KILLS * 0.7)) {
        await servicesDown(config, ['temporal']);
        await temporalUp(config, say);
        counts.temporalRestarts++;
      }
      worker = spawnWorker();
    }
    try {
      const client2 = await connectClient(config);
      const result = await followBackfill(client2.client.workflow.getHandle(handle.workflowId), () => undefined);
      await client2.close();
      expect(result.done).toBe(DAYS);
      expect(result.failed).toEqual([]);
      // Interventions live on after the backfill. The test acts as the operator for those the policy holds for
      // approval (the fairness audit can flag a group), then waits until no intervention workflow is running.
      const lake = createLake(config);
      const client3 = await connectClient(config);
      const approved = new Set<string>();
      const deadline = Date.now() + 600_000;
      try {
        for (;;) {
          const running: string[] = [];
          for await (const w of client3.client.workflow.list({
            query: `TaskQueue="chaos" AND WorkflowType="interventionWorkflow" AND ExecutionStatus="Running"`,
          }))
            running.push(w.workflowId);
          const s = await readInterventionStatuses(lake.store);
          for (const r of s.filter((x) => x.status === 'awaiting_approval' && !approved.has(x.id))) {
            await client3.client.workflow.getHandle(r.id).signal(approveSignal, { by: 'chaos-operator' });
            approved.add(r.id);
          }
          if (s.length && !running.length) break;
          if (Date.now() > deadline) {
            const left = s.filter((r) => running.includes(r.id)).map((r) => `${r.id}: ${r.status}`);
            throw new Error(`interventions still running after 10 minutes: ${left.join(', ')}`);
          }
          await new Promise((r) => setTimeout(r, 1000));
        }
      } finally {
        await client3.close();
      }
      counts.approvals = approved.size;

      // Same gold as the undisturbed run.
      const got = await goldHashes(lake);
      expect([...got.keys()].sort()).toEqual([...reference.keys()].sort());
      const differing = [...got].filter(([k, h]) => reference.get(k) !== h).map(([k]) => k);
      expect(differing).toEqual([]);

      // Nothing visible half-written: every committed manifest's files exist with the recorded size.
      for (const layer of ['silver', 'gold'] as const)
        for (const ds of await lake.listDatasets(layer))
          for (const d of await lake.listPartitions(layer, ds)) {
            const m = (await lake.readManifest(layer, ds, d))!;
            for (const f of m.files) expect(await lake.store.exists(f.key), f.key).toBe(true);
          }

      // Exactly-once effects: one outbox object and one recorded webhook delivery per delivered intervention.
      const statuses = await readInterventionStatuses(lake.store);
      const delivered = statuses.filter((s) => s.status === 'delivered');
      expect(delivered.length).toBeGreaterThan(0);
      for (const s of delivered) {
        if (s.channel === 'outbox')
          expect(await lake.store.list(`interventions/outbox/${s.studentKey}/`)).toHaveLength(1);
        else expect(sinks.webhook.deliveries.has(s.id)).toBe(true);
        const ledger = await readLedger(lake.store, s.id);
        counts.deliveryRetries += Object.keys(ledger).filter((k) => k.startsWith('attempt-')).length - 1;
      }
      const perKey = new Map<string, number>();
      for (const r of sinks.webhook.requests) perKey.set(r.key, (perKey.get(r.key) ?? 0) + 1);
      counts.webhookRepeats = [...perKey.values()].reduce((n, c) => n + c - 1, 0);
      expect(sinks.webhook.deliveries.size).toBe(delivered.filter((s) => s.channel === 'webhook').length);
      say(
        `kills ${counts.kills}, MinIO restarts ${counts.minioRestarts}, Temporal restarts ${counts.temporalRestarts}; ` +
          `${got.size} gold partitions equal the undisturbed run; ${delivered.length} interventions delivered once ` +
          `(${counts.approvals} approved by the test as operator) ` +
          `(${counts.deliveryRetries} delivery attempts repeated, ${counts.webhookRepeats} webhook repeats absorbed by the key)`,
      );
    } finally {
      worker.kill('SIGKILL');
    }
  }, 1_200_000);
});
