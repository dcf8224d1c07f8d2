import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Config, loadConfig } from '../config/index.js';

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `edlake-${prefix}-`));
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
