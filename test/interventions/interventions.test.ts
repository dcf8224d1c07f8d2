import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { studentKey } from '../../activities/identity.js';
import {
  type PlannedIntervention,
  readInterventionStatuses,
  readLedger,
} from '../../activities/interventions/index.js';
import { FIRST_NAME } from '../../activities/interventions/compose.js';
import { ModelRegistry } from '../../activities/models/registry.js';
import { collectInterventions } from '../../cli/status.js';
import { pauseDeliveries, resumeDeliveries } from '../../cli/deliveries.js';
import { connectClient } from '../../cli/client.js';
import type { Config } from '../../config/index.js';
import { generate, type GenerateResult } from '../../generator/index.js';
import { parquetScan } from '../../lake/duck.js';
import { startSinks, type Sinks } from '../../scripts/sinks.js';
import { createDeps } from '../../workers/deps.js';
import { startWorker, type StartedWorker } from '../../workers/worker.js';
import type { InterventionState } from '../../workflows/contracts.js';
import type { InterventionInput } from '../../workflows/intervention.js';
import { type MessagesReply, spawnWorker, startMessagesApi, tempDir, testConfig, uniqueSuffix } from '../helpers.js';

const SECRET = 'webhook-secret-for-the-tests';
const START = '2031-06-02';

/** Policy for the tests: everyone scored matches a rule, so opt-outs and missing consent are certainly among them. */
const RULES = [
  { kind: 'mentor_alert', channel: 'webhook', approval: true, when: { minRisk: 0.98 } },
  { kind: 'study_plan', channel: 'email', when: { atRisk: true } },
  { kind: 'nudge', channel: 'outbox', when: {} },
];

type Answer = (n: number) => number | 'hang' | undefined;
const answers = new Map<string, Answer>();

describe('interventions', () => {
  let sinks: Sinks;
  let config: Config;
  let gen: GenerateResult;
  let worker: StartedWorker | undefined;
  let client: Awaited<ReturnType<typeof connectClient>>;
  let nightA: { planned: PlannedIntervention[]; counts: { control: number; skipped: Record<string, number> } };
  let nightB: typeof nightA;
  const rows: Record<string, Record<string, unknown>[]> = {};
  const roster = new Map<string, { first: string; last: string; email: string }>();
  const pool: PlannedIntervention[] = [];
  /** A planned intervention not used by another test yet (each has its own ledger). */
  const take = () =>
    pool.splice(
      pool.findIndex((p) => p.kind !== 'mentor_alert'),
      1,
    )[0]!;

  async function run(p: PlannedIntervention, over: Partial<InterventionInput> = {}) {
    const input: InterventionInput = {
      intervention: p,
      approvalTimeoutHours: 48,
      retry: { maximumAttempts: 3, initialIntervalSeconds: 0.2, maximumIntervalSeconds: 1 },
      heartbeatTimeoutSeconds: 5,
      ...over,
    };
    return client.client.workflow.start('interventionWorkflow', {
      workflowId: `${p.id}-${uniqueSuffix()}`,
      taskQueue: config.temporal.taskQueue,
      args: [input],
    });
  }

  beforeAll(async () => {
    sinks = await startSinks({ secret: SECRET, webhookAnswer: (n, key) => answers.get(key)?.(n) });
    const rulesFile = join(tempDir('rules'), 'edlake.config.json');
    writeFileSync(rulesFile, JSON.stringify({ interventions: { rules: RULES } }));
    config = testConfig({
      EDLAKE_CONFIG: rulesFile,
      EDLAKE_TASK_QUEUE: `test-interventions-${uniqueSuffix()}`,
      EDLAKE_WEBHOOK_URL: sinks.webhookUrl,
      EDLAKE_WEBHOOK_SECRET: SECRET,
      EDLAKE_SMTP_URL: sinks.smtpUrl,
      EDLAKE_QUIET_HOURS: 'none',
      EDLAKE_CONTROL_SHARE: '0.2',
      EDLAKE_NIGHTLY_CAP: '40',
      EDLAKE_MIN_ACTIVE_DAYS: '1',
      EDLAKE_DELIVERY_TIMEOUT_MS: '1500',
    });
    gen = await generate({ out: config.inbox, students: 200, days: 3, start: START, seed: 13 });
    const rosterCsv = readFileSync(join(config.inbox, `dt=${START}`, 'roster', 'roster.csv'), 'utf8')
      .trim()
      .split('\n');
    for (const line of rosterCsv.slice(1)) {
      const [id, first, last, email] = line.split(',');
      roster.set(studentKey(config.pseudonymKey, id!), { first: first!, last: last!, email: email! });
    }
    const deps = createDeps(config);
    const a = createActivities(deps);
    for (const date of gen.dates) {
      const w = { runId: `r-${date}`, writeId: `w-${date}` };
      await a.landBronzeFiles({ date, runId: w.runId });
      await a.buildSilverTables({ date, ...w });
      await a.alignTimeline({ dates: [date], landingDate: date, ...w });
      await a.buildGoldFeatures({ dates: [date], ...w });
    }
    const [d1, d2] = [gen.dates[1]!, gen.dates[2]!];
    for (const name of ['risk', 'segments'] as const) {
      const t = await a.trainChallenger({ name, date: d1, reason: 'test' });
      await a.decidePromotion({ name, version: t.version, date: d1 });
    }
    await a.scoreStudents({ date: d1, runId: 'r', writeId: 'score-1' });
    await a.scoreStudents({ date: d2, runId: 'r', writeId: 'score-2' });
    nightA = await a.decideInterventions({ date: d1, runId: 'r', writeId: 'decide-1' });
    nightB = await a.decideInterventions({ date: d2, runId: 'r', writeId: 'decide-2' });
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    for (const d of [d1, d2]) {
      const files = (await deps.lake.localFiles('gold', 'interventions', d)).paths;
      rows[d] = (await conn.runAndReadAll(`SELECT * FROM ${parquetScan(files)}`)).getRowObjects();
    }
    const st = (
      await deps.lake.localFiles('silver', 'students', (await deps.lake.latestPartition('silver', 'students', d1))!)
    ).paths;
    rows.students = (await conn.runAndReadAll(`SELECT * FROM ${parquetScan(st)}`)).getRowObjects();
    await deps.duck.close();
    pool.push(...nightA.planned);
    client = await connectClient(config);
    worker = await startWorker(config);
  }, 600_000);

  afterAll(async () => {
    await worker?.stop();
    await client?.close();
    await sinks?.stop();
  });

  describe('deciding', () => {
    it('respects opt-out and consent, and holds back a stable control group', () => {
      const d1 = gen.dates[1]!;
      const byKey = new Map(rows[d1]!.map((r) => [String(r.student_key), r]));
      const optedOut = rows.students!.filter((s) => s.opt_out === true).map((s) => String(s.student_key));
      const noConsent = rows
        .students!.filter((s) => s.consent === false && s.opt_out !== true)
        .map((s) => String(s.student_key));
      const decidedOptOut = optedOut.filter((k) => byKey.has(k));
      expect(decidedOptOut.length).toBeGreaterThan(0);
      for (const k of decidedOptOut) expect(byKey.get(k)!.status).toBe('skipped');
      for (const k of decidedOptOut) expect(byKey.get(k)!.reason).toBe('opted out');
      const decidedNoConsent = noConsent.filter((k) => byKey.has(k));
      expect(decidedNoConsent.length).toBeGreaterThan(0);
      for (const k of decidedNoConsent) expect(byKey.get(k)!.reason).toBe('no consent');
      const control = rows[d1]!.filter((r) => r.status === 'control');
      const eligible = rows[d1]!.filter(
        (r) => r.status === 'control' || r.status === 'planned' || String(r.reason).startsWith('nightly cap'),
      );
      expect(control.length).toBe(nightA.counts.control);
      expect(control.length / eligible.length).toBeGreaterThan(0.1);
      expect(control.length / eligible.length).toBeLessThan(0.3);
      // Stable: the same students are controls the next night too (where the cooldown lets them be decided).
      const next = new Map(rows[gen.dates[2]!]!.map((r) => [String(r.student_key), r]));
      for (const c of control) {
        const n = next.get(String(c.student_key));
        if (n && n.kind === c.kind) expect(n.status).toBe('control');
      }
      // Nothing personal in the decisions.
      const text = JSON.stringify(rows[d1], (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v));
      for (const r of roster.values()) {
        expect(text).not.toContain(r.email);
        expect(text).not.toContain(`"${r.last}"`);
      }
    });

    it('starts at most the nightly cap, highest risk first', () => {
      const d1 = rows[gen.dates[1]!]!;
      const planned = d1.filter((r) => r.status === 'planned');
      const capped = d1.filter((r) => String(r.reason) === 'nightly cap (40)');
      expect(planned).toHaveLength(40);
      expect(nightA.planned).toHaveLength(40);
      expect(capped.length).toBeGreaterThan(0);
      const lowestPlanned = Math.min(...planned.map((r) => Number(r.risk)));
      for (const c of capped) expect(Number(c.risk)).toBeLessThanOrEqual(lowestPlanned);
    });

    it('sends actions for a group flagged by the fairness audit to a person first', async () => {
      // With no tolerated gap, every group whose recall trails the best group's is flagged.
      const strict = { ...config, interventions: { ...config.interventions, fairnessFlagGap: 0 } };
      const deps = createDeps(strict);
      const d2 = gen.dates[2]!;
      const decided = await createActivities(deps).decideInterventions({ date: d2, runId: 'r', writeId: 'strict' });
      const registry = new ModelRegistry(deps.lake.store);
      const card = (await registry.card('risk', (await registry.current('risk'))!))!;
      const groups = card.fairness.groups as Record<string, { n: number; recall: number }>;
      const best = Math.max(
        ...Object.values(groups)
          .filter((g) => g.n >= 10)
          .map((g) => g.recall),
      );
      const flagged = Object.entries(groups)
        .filter(([, g]) => g.n >= 10 && g.recall < best)
        .map(([k]) => k);
      expect(flagged.length).toBeGreaterThan(0);
      const db = await DuckDBInstance.create(':memory:');
      const conn = await db.connect();
      const demo = (
        await deps.lake.localFiles(
          'silver',
          'student_demographics',
          (await deps.lake.latestPartition('silver', 'student_demographics', d2))!,
        )
      ).paths;
      const groupOf = new Map(
        (await conn.runAndReadAll(`SELECT student_key, gender FROM ${parquetScan(demo)}`))
          .getRows()
          .map(([k, g]) => [String(k), String(g)]),
      );
      const byFairness = decided.planned.filter((p) => /fairness audit/.test(p.approvalReason ?? ''));
      expect(byFairness.length).toBeGreaterThan(0);
      for (const p of decided.planned) {
        const inFlagged = flagged.includes(groupOf.get(p.studentKey)!);
        if (p.kind !== 'mentor_alert') expect(p.needsApproval, p.id).toBe(inFlagged);
      }
      await deps.duck.close();
    });

    it('applies the cooldown: who was planned last night is not messaged again tonight', () => {
      const plannedA = new Set(nightA.planned.map((p) => p.studentKey));
      expect(plannedA.size).toBeGreaterThan(20);
      const b = rows[gen.dates[2]!]!;
      for (const r of b.filter((x) => plannedA.has(String(x.student_key)))) {
        expect(r.status).toBe('skipped');
        expect(String(r.reason)).toMatch(/^cooldown/);
      }
      expect(nightB.planned.some((p) => plannedA.has(p.studentKey))).toBe(false);
      const again = b.filter((x) => plannedA.has(String(x.student_key))).length;
      expect(again).toBeGreaterThan(0);
      expect(nightB.counts.skipped['cooldown (7 days)']).toBe(again);
    });
  });

  describe('delivering', () => {
    it('writes the in-app outbox once, with the first name left for the app', async () => {
      const p = { ...take(), channel: 'outbox' as const, needsApproval: false };
      const state = (await (await run({ ...p })).result()) as InterventionState;
      expect(state.status).toBe('delivered');
      const store = createDeps(config).lake.store;
      const objects = await store.list(`interventions/outbox/${p.studentKey}/`);
      expect(objects.map((o) => o.key)).toEqual([`interventions/outbox/${p.studentKey}/${p.id}.json`]);
      const body = JSON.parse((await store.getBytes(objects[0]!.key))!.toString('utf8')) as { body: string };
      expect(body.body).toContain(FIRST_NAME);
      expect(body.body).not.toContain(roster.get(p.studentKey)!.first);
      const statuses = await readInterventionStatuses(store, [p.date]);
      expect(statuses.find((s) => s.id === p.id)?.status).toBe('delivered');
    });

    it('sends email over SMTP with the idempotency key as Message-ID and the first name filled in locally', async () => {
      const p = { ...take(), channel: 'email' as const, needsApproval: false };
      const before = sinks.mail.length;
      const state = (await (await run(p)).result()) as InterventionState;
      expect(state.status).toBe('delivered');
      expect(sinks.mail.length).toBe(before + 1);
      const m = sinks.mail.at(-1)!;
      const who = roster.get(p.studentKey)!;
      expect(m.messageId).toBe(`<${p.id}@edlake>`);
      expect(m.to).toBe(who.email);
      expect(m.text.startsWith(`Hi ${who.first},`)).toBe(true);
      expect(m.text).not.toContain('{{');
    });

    it('retries a failing webhook with backoff and delivers once; every request is signed and carries one key', async () => {
      const p = { ...take(), channel: 'webhook' as const, needsApproval: false };
      answers.set(p.id, (n) => (n <= 2 ? 503 : undefined));
      const state = (await (await run(p)).result()) as InterventionState;
      expect(state.status).toBe('delivered');
      expect(state.attempts).toBe(3);
      const reqs = sinks.webhook.requests.filter((r) => r.key === p.id);
      expect(reqs.map((r) => r.status)).toEqual([503, 503, 200]);
      expect(reqs.every((r) => r.signatureValid)).toBe(true);
      expect(sinks.webhook.deliveries.has(p.id)).toBe(true);
      const ledger = await readLedger(createDeps(config).lake.store, p.id);
      expect(Object.keys(ledger).sort()).toEqual([
        'attempt-1',
        'attempt-2',
        'attempt-3',
        'confirmed',
        'failure-1',
        'failure-2',
      ]);
    });

    it('fails fast on a 4xx answer and dead-letters; exhausted retries dead-letter too; edlake status lists both', async () => {
      const p400 = { ...take(), channel: 'webhook' as const, needsApproval: false };
      answers.set(p400.id, () => 422);
      const p503 = { ...take(), channel: 'webhook' as const, needsApproval: false };
      answers.set(p503.id, () => 503);
      const [s400, s503] = (await Promise.all([
        (await run(p400)).result(),
        (await run(p503)).result(),
      ])) as InterventionState[];
      expect(s400!.status).toBe('dead_letter');
      expect(s400!.detail).toMatch(/cannot succeed: .*HTTP 422/);
      expect(sinks.webhook.requests.filter((r) => r.key === p400.id)).toHaveLength(1);
      expect(s503!.status).toBe('dead_letter');
      expect(s503!.detail).toMatch(/retries exhausted: .*HTTP 503/);
      expect(sinks.webhook.requests.filter((r) => r.key === p503.id)).toHaveLength(3);
      const status = await collectInterventions(createDeps(config).lake);
      const dead = status.deadLetters.map((d) => d.id);
      expect(dead).toContain(p400.id);
      expect(dead).toContain(p503.id);
    });

    it('retries a webhook that times out', async () => {
      const p = { ...take(), channel: 'webhook' as const, needsApproval: false };
      answers.set(p.id, (n) => (n === 1 ? 'hang' : undefined));
      const state = (await (await run(p)).result()) as InterventionState;
      expect(state.status).toBe('delivered');
      expect(sinks.webhook.requests.filter((r) => r.key === p.id).map((r) => r.status)).toEqual([0, 200]);
    });

    it('sleeps on a durable timer until the delivery time outside quiet hours', async () => {
      const p = {
        ...take(),
        channel: 'webhook' as const,
        needsApproval: false,
        deliverAt: new Date(Date.now() + 5000).toISOString(),
      };
      const h = await run(p);
      await new Promise((r) => setTimeout(r, 1500));
      expect(((await h.query('intervention')) as InterventionState).status).toBe('scheduled');
      expect(sinks.webhook.requests.some((r) => r.key === p.id)).toBe(false);
      const state = (await h.result()) as InterventionState;
      expect(state.status).toBe('delivered');
      const delivered = await readLedger(createDeps(config).lake.store, p.id);
      expect(Date.parse((delivered.confirmed as { at: string }).at)).toBeGreaterThanOrEqual(Date.parse(p.deliverAt));
    });
  });

  describe('approval', () => {
    it('an approved high-stakes action is delivered; a rejected one and one nobody answers are not', async () => {
      const [pa, pr, pt] = [take(), take(), take()].map((p) => ({
        ...p,
        channel: 'webhook' as const,
        needsApproval: true,
        approvalReason: 'mentor alert needs a person',
      }));
      const ha = await run(pa!);
      const hr = await run(pr!);
      const ht = await run(pt!, { approvalTimeoutHours: 2 / 3600 });
      for (const h of [ha, hr]) {
        const deadline = Date.now() + 30_000;
        while (((await h.query('intervention')) as InterventionState).status !== 'awaiting_approval') {
          if (Date.now() > deadline) throw new Error('never waited for approval');
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      // The CLI's pending list shows them while they wait.
      const pending = (await collectInterventions(createDeps(config).lake)).pendingApprovals.map((x) => x.id);
      expect(pending).toContain(pa!.id);
      // Approve from the command line, reject by signal (as the Web UI sends it).
      const cli = (args: string[]) =>
        new Promise<{ code: number; out: string; err: string }>((resolve) => {
          const c = spawn(process.execPath, ['bin/edlake.js', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
          let out = '';
          let err = '';
          c.stdout.on('data', (b: Buffer) => (out += b.toString()));
          c.stderr.on('data', (b: Buffer) => (err += b.toString()));
          c.on('close', (code) => resolve({ code: code ?? -1, out, err }));
        });
      const approved = await cli(['approve', ha.workflowId, '--by', 'mentor-coordinator', '--json']);
      expect(approved.code).toBe(0);
      expect((JSON.parse(approved.out) as InterventionState).status).not.toBe('awaiting_approval');
      await hr.signal('reject', { by: 'mentor-coordinator', note: 'already in touch' });
      const [a, r, t] = (await Promise.all([ha.result(), hr.result(), ht.result()])) as InterventionState[];
      expect(a!.status).toBe('delivered');
      expect(a!.approval?.by).toBe('mentor-coordinator');
      expect(r!.status).toBe('rejected');
      expect(t!.status).toBe('expired');
      expect(sinks.webhook.requests.some((x) => x.key === pr!.id || x.key === pt!.id)).toBe(false);
      expect(sinks.webhook.deliveries.has(pa!.id)).toBe(true);
      // Deciding twice is refused with a clear message and the input exit code.
      const again = await cli(['reject', ha.workflowId]);
      expect(again.code).toBe(5);
      expect(again.err).toMatch(/is not waiting for approval \(status: delivered\)/);
    });
  });

  describe('pausing deliveries', () => {
    it('holds a due intervention until resumed, and the next night decides with its interventions paused', async () => {
      const p = {
        ...take(),
        channel: 'webhook' as const,
        needsApproval: false,
        deliverAt: new Date(Date.now() + 3000).toISOString(),
      };
      const h = await run(p);
      const seen = async () => {
        for await (const wf of client.client.workflow.list({
          query: `WorkflowType = 'interventionWorkflow' AND ExecutionStatus = 'Running'`,
        }))
          if (wf.workflowId === h.workflowId) return true;
        return false;
      };
      const deadline = Date.now() + 20_000;
      while (!(await seen())) {
        if (Date.now() > deadline) throw new Error('the intervention never showed in the list of running workflows');
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(await pauseDeliveries(client.client, config, 'ops-desk', 'mail incident')).toBeGreaterThanOrEqual(1);
      await new Promise((r) => setTimeout(r, 5000));
      expect(((await h.query('intervention')) as InterventionState).status).toBe('paused');
      expect(sinks.webhook.requests.some((r) => r.key === p.id)).toBe(false);
      const status = await collectInterventions(createDeps(config).lake);
      expect(status.paused?.by).toBe('ops-desk');
      const deps = createDeps(config);
      const night = await createActivities(deps).decideInterventions({
        date: gen.dates[2]!,
        runId: 'r',
        writeId: 'paused-night',
      });
      expect(night.paused).toBe(true);
      await deps.duck.close();
      await resumeDeliveries(client.client, config, 'ops-desk');
      expect(((await h.result()) as InterventionState).status).toBe('delivered');
      expect((await collectInterventions(createDeps(config).lake)).paused).toBeNull();
    });
  });

  describe('exactly once', () => {
    it('a worker killed after the send and before completion: one outbox row, one webhook delivery', async () => {
      await worker?.stop();
      worker = undefined;
      const child: ChildProcess = spawnWorker(config, {
        EDLAKE_WEBHOOK_URL: sinks.webhookUrl,
        EDLAKE_WEBHOOK_SECRET: SECRET,
        EDLAKE_FAULT_HOLD_MS: 'deliverIntervention.afterSend=600000',
      });
      try {
        const po = { ...take(), channel: 'outbox' as const, needsApproval: false };
        const pw = { ...take(), channel: 'webhook' as const, needsApproval: false };
        const ho = await run(po);
        const hw = await run(pw);
        const store = createDeps(config).lake.store;
        const deadline = Date.now() + 120_000;
        while (
          !sinks.webhook.deliveries.has(pw.id) ||
          !(await store.exists(`interventions/outbox/${po.studentKey}/${po.id}.json`))
        ) {
          if (Date.now() > deadline) throw new Error('the child worker never sent');
          await new Promise((r) => setTimeout(r, 200));
        }
        child.kill('SIGKILL');
        worker = await startWorker(config);
        const [so, sw] = (await Promise.all([ho.result(), hw.result()])) as InterventionState[];
        expect(so!.status).toBe('delivered');
        expect(sw!.status).toBe('delivered');
        // The activity ran again (attempt 2) and sent again with the same key; the effect happened once.
        expect(so!.attempts).toBeGreaterThanOrEqual(2);
        expect(await store.list(`interventions/outbox/${po.studentKey}/`)).toHaveLength(1);
        const reqs = sinks.webhook.requests.filter((r) => r.key === pw.id);
        expect(reqs.length).toBeGreaterThanOrEqual(2);
        expect(new Set(reqs.map((r) => r.key)).size).toBe(1);
        expect([...sinks.webhook.deliveries.keys()].filter((k) => k === pw.id)).toHaveLength(1);
        const ledger = await readLedger(store, pw.id);
        expect(ledger['attempt-1']).toBeDefined();
        expect((ledger.confirmed as { attempt: number }).attempt).toBeGreaterThanOrEqual(2);
      } finally {
        child.kill('SIGKILL');
      }
    }, 300_000);
  });

  describe('outcomes', () => {
    it('compares the engagement after the decision of delivered students with the control group, per kind', async () => {
      const deps = createDeps(config);
      const a = createActivities(deps);
      const [d1, d2] = [gen.dates[1]!, gen.dates[2]!];
      const out = await a.measureInterventionOutcomes({ date: d2, runId: 'r', writeId: 'outcomes' });
      expect(out.partition).not.toBeNull();
      const db = await DuckDBInstance.create(':memory:');
      const conn = await db.connect();
      const got = (
        await conn.runAndReadAll(
          `SELECT kind, arm, students, student_days FROM ${parquetScan((await deps.lake.localFiles('gold', 'intervention_outcomes', d2)).paths)}`,
        )
      ).getRowObjects();
      const delivered = (await readInterventionStatuses(deps.lake.store, [d1])).filter((r) => r.status === 'delivered');
      const expectArm = (arm: string, byKind: Map<string, number>) => {
        for (const [kind, n] of byKind) {
          const row = got.find((r) => r.kind === kind && r.arm === arm);
          expect(Number(row?.students), `${kind} ${arm}`).toBe(n);
          expect(Number(row?.student_days)).toBe(n); // one follow-up day so far
        }
      };
      const count = (keys: string[]) => keys.reduce((m, k) => m.set(k, (m.get(k) ?? 0) + 1), new Map<string, number>());
      expectArm('delivered', count(delivered.map((r) => r.kind)));
      expectArm('control', count(rows[d1]!.filter((r) => r.status === 'control').map((r) => String(r.kind))));
      expect(got.some((r) => r.arm === 'control')).toBe(true);
      expect(got.some((r) => r.arm === 'delivered')).toBe(true);
      const status = await collectInterventions(deps.lake);
      expect(status.outcomes?.date).toBe(d2);
      await deps.duck.close();
    });
  });

  describe('composing with the language model', () => {
    let api: Awaited<ReturnType<typeof startMessagesApi>>;
    let requests: string[] = [];
    let script: ((n: number) => MessagesReply) | null = null;
    let calls = 0;
    beforeAll(async () => {
      api = await startMessagesApi(() => script?.(++calls) ?? { status: 200, text: '{}' });
      requests = api.requests;
    });
    afterAll(() => api.close());

    const llmActs = () =>
      createActivities(
        createDeps({
          ...config,
          llm: {
            ...config.llm,
            apiKey: 'sk-test-key-not-real',
            baseUrl: api.baseUrl,
            timeoutMs: 800,
            maxRetries: 2,
          },
        }),
      );
    const good = JSON.stringify({
      subject: 'A small step this week',
      body: `Hi ${FIRST_NAME}, a short practice session this week would be a great way back in. Your teachers are glad to help whenever you need it.`,
    });

    it("uses the model's message after 429, 529 and 500 answers (the SDK retries), and falls back on slow answers", async () => {
      const a = llmActs();
      const p = nightA.planned.find((x) => x.kind !== 'mentor_alert')!;
      for (const first of [429, 529, 500]) {
        calls = 0;
        script = (n) => (n === 1 ? { status: first } : { status: 200, text: good });
        const m = await a.composeIntervention({ id: p.id, date: p.date });
        expect(m.source).toBe('llm');
        expect(calls).toBe(2);
      }
      calls = 0;
      script = () => ({ status: 200, text: good, delayMs: 3000 });
      const slow = await a.composeIntervention({ id: p.id, date: p.date });
      expect(slow.source).toBe('template');
      expect(slow.fallbackReason).toMatch(/language model call failed/);
      calls = 0;
      script = () => ({ status: 200, text: JSON.stringify({ subject: 'Hi', body: 'Dear [Name], you are failing.' }) });
      const bad = await a.composeIntervention({ id: p.id, date: p.date });
      expect(bad.source).toBe('template');
      expect(bad.fallbackReason).toMatch(/check failed/);
    }, 60_000);

    it('no request the model server received holds a name, email or external id of any student', async () => {
      const a = llmActs();
      script = () => ({ status: 200, text: good });
      for (const p of nightA.planned.slice(0, 15)) await a.composeIntervention({ id: p.id, date: p.date });
      expect(requests.length).toBeGreaterThan(15);
      const all = requests.join('\n').toLowerCase();
      const rosterLines = readFileSync(join(config.inbox, `dt=${START}`, 'roster', 'roster.csv'), 'utf8')
        .trim()
        .split('\n')
        .slice(1);
      for (const line of rosterLines) {
        const [id, first, last, email, phone, lms, sis] = line.split(',');
        for (const v of [id, email, phone, lms, sis]) expect(all).not.toContain(v!.toLowerCase());
        for (const n of [first, last]) expect(all).not.toMatch(new RegExp(`\\b${n!.toLowerCase()}\\b`));
      }
      // What the prompt is made of: the factors and segment in plain words.
      expect(all).toMatch(/over the last \d+ days/);
    }, 60_000);
  });
});
