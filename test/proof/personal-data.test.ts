import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readInterventionStatuses } from '../../activities/interventions/index.js';
import { connectClient } from '../../cli/client.js';
import { startNightly } from '../../cli/runs.js';
import { buildApi } from '../../cli/serve.js';
import { generate, type GenerateResult } from '../../generator/index.js';
import { createLake } from '../../lake/lake.js';
import { startSinks, type Sinks } from '../../scripts/sinks.js';
import { startMessagesApi, testConfig, tempDir, uniqueSuffix } from '../helpers.js';

/** Distinctive secrets: none of them may appear in any output, log or error. */
const SECRETS = {
  pseudonymKey: 'pseudonym-SECRET-9f2c7d1e4b6a',
  webhookSecret: 'webhook-SECRET-77a1c3e5f9b2',
  llmKey: 'sk-ant-SECRET-5d8e2f1a0c3d',
  apiKey: 'api-SECRET-3b6d9f2a7e1c',
};

function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, ['bin/edlake.js', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (b: Buffer) => (out += b.toString()));
    c.stderr.on('data', (b: Buffer) => (out += b.toString()));
    c.on('close', (code) => resolve({ code: code ?? -1, out }));
  });
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

describe('personal data and secrets never leave bronze', () => {
  let sinks: Sinks;
  let llm: Awaited<ReturnType<typeof startMessagesApi>> | undefined;
  let prompts: string[] = [];
  let env: NodeJS.ProcessEnv;
  let gen: GenerateResult;
  /** Every output, by where it came from. */
  const outputs = new Map<string, string>();

  beforeAll(async () => {
    llm = await startMessagesApi((_n, body) => ({
      text: body.includes('JSON array')
        ? JSON.stringify(['Students who study steadily.', 'Students who watch more than they practise.'])
        : JSON.stringify({
            subject: 'A small step this week',
            body: 'Hi {{first_name}}, a short practice session this week would be a good way back in. Your teachers are glad to help.',
          }),
    }));
    prompts = llm.requests;
    sinks = await startSinks({ secret: SECRETS.webhookSecret });
    const dir = tempDir('pii');
    env = {
      ...process.env,
      EDLAKE_HOME: join(dir, 'home'),
      EDLAKE_LAKE_ROOT: join(dir, 'lake'),
      EDLAKE_INBOX: join(dir, 'inbox'),
      EDLAKE_TASK_QUEUE: `test-pii-${uniqueSuffix()}`,
      EDLAKE_PSEUDONYM_KEY: SECRETS.pseudonymKey,
      EDLAKE_WEBHOOK_URL: sinks.webhookUrl,
      EDLAKE_WEBHOOK_SECRET: SECRETS.webhookSecret,
      EDLAKE_SMTP_URL: sinks.smtpUrl,
      ANTHROPIC_API_KEY: SECRETS.llmKey,
      EDLAKE_LLM_BASE_URL: llm.baseUrl,
      EDLAKE_API_KEYS: JSON.stringify([
        { name: 'ed', key: SECRETS.apiKey, role: 'educator', courses: ['MATH101', 'HIST205', 'BIO110', 'CS101'] },
      ]),
      EDLAKE_QUIET_HOURS: 'none',
      EDLAKE_MIN_ACTIVE_DAYS: '1',
      EDLAKE_HEARTBEAT_TIMEOUT_SECONDS: '10',
    };
    const config = testConfig(env as Record<string, string>);
    gen = await generate({ out: config.inbox, students: 120, days: 4, start: '2032-05-03', seed: 29 });

    // A worker process logging everything it can (INFO, structured), as a deployment would.
    let logs = '';
    const worker: ChildProcess = spawn(process.execPath, ['bin/edlake.js', 'worker'], {
      env: { ...env, EDLAKE_LOG_LEVEL: 'INFO', EDLAKE_LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    worker.stdout!.on('data', (b: Buffer) => (logs += b.toString()));
    worker.stderr!.on('data', (b: Buffer) => (logs += b.toString()));
    const client = await connectClient(config);
    try {
      for (const date of gen.dates) await (await startNightly(client.client, config, date)).result();
      // Let the night's deliveries finish (mentor alerts wait for a person).
      const lake = createLake(config);
      const deadline = Date.now() + 90_000;
      for (;;) {
        const s = await readInterventionStatuses(lake.store);
        if (
          s.length &&
          s.every((r) => ['delivered', 'dead_letter', 'awaiting_approval', 'rejected', 'expired'].includes(r.status))
        )
          break;
        if (Date.now() > deadline) throw new Error('interventions never settled');
        await new Promise((r) => setTimeout(r, 500));
      }
    } finally {
      worker.kill('SIGTERM');
      await new Promise((r) => worker.once('exit', r));
      await client.close();
    }
    outputs.set('worker logs', logs);

    for (const args of [
      ['status', '--json'],
      ['status'],
      ['models', '--json'],
      ['quarantine', '--json', '--limit', '5000'],
      ['report', '--date', gen.dates.at(-1)!],
      ['config'],
      ['run', '--date', 'not-a-date'],
    ]) {
      const r = await run(args, env);
      outputs.set(`edlake ${args.join(' ')}`, r.out);
    }

    const app = await buildApi(config);
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const keys = new Set<string>();
    const lakeRoot = config.lake.kind === 'local' ? config.lake.root : '';
    for (const f of walk(join(lakeRoot, 'gold', 'risk_scores'))) if (f.endsWith('.parquet')) keys.add(f);
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    const studentKeys = (
      await conn.runAndReadAll(
        `SELECT DISTINCT student_key FROM read_parquet([${[...keys].map((k) => `'${k}'`).join(',')}]) LIMIT 15`,
      )
    )
      .getRows()
      .map((r) => String(r[0]));
    let api = '';
    for (const path of [
      ...studentKeys.map((k) => `/v1/students/${k}/risk`),
      '/v1/segments',
      `/v1/runs/${gen.dates.at(-1)}`,
      '/v1/interventions',
      '/openapi.json',
    ]) {
      const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${SECRETS.apiKey}` } });
      api += `${path} ${res.status} ${await res.text()}\n`;
    }
    await app.close();
    outputs.set('API responses', api);
    outputs.set('prompts to the language model', prompts.join('\n'));

    // Everything written to the lake outside the raw layers (bronze, and quarantine's raw rows).
    for (const f of walk(lakeRoot)) {
      const rel = relative(lakeRoot, f);
      if (rel.startsWith('bronze/') || rel.startsWith('quarantine/')) continue;
      if (f.endsWith('.parquet')) {
        const rows = (await conn.runAndReadAll(`SELECT * FROM read_parquet('${f}')`)).getRowObjects();
        outputs.set(
          `lake ${rel}`,
          JSON.stringify(rows, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)),
        );
      } else outputs.set(`lake ${rel}`, readFileSync(f, 'utf8'));
    }
  }, 600_000);

  afterAll(async () => {
    await sinks?.stop();
    await llm?.close();
  });

  it('produced every kind of output it scans', () => {
    const kinds = [...outputs.keys()];
    for (const k of [
      'lake silver/',
      'lake gold/',
      'lake reports/',
      'lake models/',
      'lake interventions/',
      'lake audit/',
    ])
      expect(
        kinds.some((x) => x.startsWith(k)),
        k,
      ).toBe(true);
    expect(outputs.get('worker logs')!.length).toBeGreaterThan(1000);
    expect(prompts.length).toBeGreaterThan(0);
    expect(outputs.get('API responses')).toMatch(/\/v1\/students\/[a-z2-7]{12}\/risk 200/);
    expect(JSON.parse(outputs.get('edlake quarantine --json --limit 5000')!.trim()).length).toBeGreaterThan(0);
    expect(sinks.mail.length + sinks.webhook.deliveries.size).toBeGreaterThan(0);
  });

  it('finds no roster name, email, phone or external id in any output', () => {
    const roster = readFileSync(join(env.EDLAKE_INBOX!, `dt=${gen.dates[0]}`, 'roster', 'roster.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(','));
    const hits: string[] = [];
    for (const [where, text] of outputs) {
      const words = new Set(text.match(/\p{L}+/gu) ?? []);
      for (const [id, first, last, email, phone, lms, sis] of roster) {
        for (const v of [email!, phone!, lms!, sis!, `${first} ${last}`, `"${id}"`])
          if (text.includes(v)) hits.push(`${where}: ${v}`);
        // Names as words, as written (capitalized): free text and prompts are where they would hide.
        for (const n of [first!, last!]) if (words.has(n)) hits.push(`${where}: name ${n}`);
      }
    }
    expect(hits).toEqual([]);
  });

  it('finds no secret in any output, log or error', () => {
    const hits: string[] = [];
    for (const [where, text] of outputs)
      for (const [name, s] of Object.entries(SECRETS)) if (text.includes(s)) hits.push(`${where}: ${name}`);
    expect(hits).toEqual([]);
    expect(outputs.get('edlake config')).toContain('***');
  });
});
