import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { createActivities } from '../activities/index.js';
import type { BuildGoldFeaturesOutput } from '../activities/gold.js';
import { type Config, loadConfig } from '../config/index.js';
import { goldDatesFor } from '../workflows/contracts.js';

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `edlake-${prefix}-`));
}

/**
 * One night's data stages as the nightly workflow runs them: bronze, silver, the timeline of the dates the landing
 * touched (its own among them), gold for the as-of dates those reach. Returns the aligned dates and gold's output.
 */
export async function dataNight(
  acts: ReturnType<typeof createActivities>,
  date: string,
): Promise<{ aligned: string[]; gold: BuildGoldFeaturesOutput }> {
  const ids = { runId: `r-${date}`, writeId: `run-${date}` };
  await acts.landBronzeFiles({ date, runId: ids.runId });
  const s = await acts.buildSilverTables({ date, ...ids });
  const aligned = [...new Set([...s.touchedDates.filter((d) => d <= date), date])].sort();
  await acts.alignTimeline({ dates: aligned, landingDate: date, ...ids });
  const gold = await acts.buildGoldFeatures({ dates: goldDatesFor(aligned, date), landingDate: date, ...ids });
  return { aligned, gold };
}

/** A configuration for one test: its own lake and inbox, the shared test services. */
export function testConfig(overrides: Record<string, string> = {}): Config {
  const dir = tempDir('cfg');
  return loadConfig({
    ...process.env,
    EDLAKE_LAKE_ROOT: join(dir, 'lake'),
    EDLAKE_INBOX: join(dir, 'inbox'),
    EDLAKE_HOME: join(dir, 'home'),
    EDLAKE_CACHE_DIR: loadConfig(process.env).cacheDir,
    // Tests never reach a real language model; the ones that need one start a local Messages API server.
    ANTHROPIC_API_KEY: undefined,
    ...overrides,
  });
}

export function uniqueSuffix(): string {
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

/**
 * A worker in a process of its own (so a test can SIGKILL it) for the lake, inbox and task queue of `config`, with
 * extra environment such as a fault hold.
 */
export function spawnWorker(config: Config, extraEnv: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ['bin/edlake.js', 'worker'], {
    env: {
      ...process.env,
      EDLAKE_HOME: config.home,
      EDLAKE_LAKE_ROOT: config.lake.kind === 'local' ? config.lake.root : '',
      EDLAKE_INBOX: config.inbox,
      EDLAKE_TASK_QUEUE: config.temporal.taskQueue,
      ...extraEnv,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

/** What the loopback Messages API answers to the n-th request (its body given): text, or an error status. */
export type MessagesReply = { status?: number; text?: string; delayMs?: number };

/**
 * A Messages API on loopback for the language-model tests: answers each request as `answer` says (status 200 with the
 * text, or the status with an API error body after an optional delay) and keeps every request body.
 */
export async function startMessagesApi(
  answer: (n: number, body: string) => MessagesReply,
): Promise<{ baseUrl: string; requests: string[]; close: () => Promise<void> }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      requests.push(body);
      const a = answer(requests.length, body);
      const status = a.status ?? 200;
      setTimeout(() => {
        if (res.destroyed) return;
        res.writeHead(status, { 'content-type': 'application/json', 'retry-after-ms': '10' });
        res.end(
          JSON.stringify(
            status === 200
              ? {
                  id: 'msg_test',
                  type: 'message',
                  role: 'assistant',
                  model: 'test-model',
                  content: [{ type: 'text', text: a.text ?? '' }],
                  stop_reason: 'end_turn',
                  stop_sequence: null,
                  usage: { input_tokens: 10, output_tokens: 10 },
                }
              : {
                  type: 'error',
                  error: { type: status === 529 ? 'overloaded_error' : 'api_error', message: 'busy' },
                },
          ),
        );
      }, a.delayMs ?? 0);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
