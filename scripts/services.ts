import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { Connection } from '@temporalio/client';
import { type Config, isLoopback, minioCredentials, SEARCH_ATTRIBUTES } from '../config/index.js';

/** The Temporal CLI tag that `go install` accepts (later tags carry a replace directive). */
export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';
export const MINIO_MODULE = 'github.com/minio/minio';

export class ServiceError extends Error {
  override name = 'ServiceError';
}

export interface ServiceState {
  name: 'temporal' | 'minio';
  /** started: by this `up`; running: started earlier by edlake; external: not ours (TEMPORAL_ADDRESS or a foreign process). */
  state: 'started' | 'running' | 'external' | 'stopped';
  address: string;
  ui?: string;
  pid?: number;
  binary?: string;
  log?: string;
}

interface PidFile {
  pid: number;
  address: string;
  binary: string;
  startedAt: string;
}

type Say = (line: string) => void;

const runDir = (c: Config) => join(c.home, 'run');
const logDir = (c: Config) => join(c.home, 'logs');
const pidPath = (c: Config, name: string) => join(runDir(c), `${name}.pid`);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function readPid(c: Config, name: string): Promise<PidFile | null> {
  try {
    const p = JSON.parse(await readFile(pidPath(c, name), 'utf8')) as PidFile;
    return alive(p.pid) ? p : null;
  } catch {
    return null;
  }
}

function onPath(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, bin);
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}

function goInstall(c: Config, module: string, say: Say): void {
  const go = onPath('go');
  if (!go) throw new ServiceError(`go is not installed; cannot build ${module}`);
  const gobin = join(c.cacheDir, 'bin');
  say(`building ${module} with go install into ${gobin} (first time only, a few minutes)…`);
  const res = spawnSync(go, ['install', module], {
    env: { ...process.env, GOBIN: gobin, GOFLAGS: `${process.env.GOFLAGS ?? ''} -buildvcs=false`.trim() },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (res.status !== 0) throw new ServiceError(`go install ${module} failed with exit code ${String(res.status)}`);
}

/** Finds the Temporal CLI: EDLAKE_TEMPORAL_CLI, PATH, the cache; else builds it with Go; else the SDK's download. */
export async function resolveTemporalCli(c: Config, say: Say): Promise<string> {
  if (c.temporal.cli) {
    if (!existsSync(c.temporal.cli)) throw new ServiceError(`EDLAKE_TEMPORAL_CLI=${c.temporal.cli}: no such file`);
    return c.temporal.cli;
  }
  const cached = join(c.cacheDir, 'bin', 'temporal');
  const found = onPath('temporal') ?? (existsSync(cached) ? cached : undefined);
  if (found) return found;
  if (onPath('go')) {
    goInstall(c, TEMPORAL_CLI_MODULE, say);
    if (existsSync(cached)) return cached;
  }
  say('no Go toolchain: downloading the Temporal dev server through the SDK…');
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  const downloadDir = join(c.cacheDir, 'sdk-download');
  const env = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'cached-download', downloadDir } },
  });
  await env.teardown();
  const hit = (await readdir(downloadDir, { recursive: true })).find((f) => /(^|\/)temporal(-cli)?$/.test(String(f)));
  if (!hit) throw new ServiceError(`the SDK download left no temporal binary in ${downloadDir}`);
  return join(downloadDir, String(hit));
}

export async function resolveMinio(c: Config, say: Say): Promise<string> {
  if (c.minio.binary) {
    if (!existsSync(c.minio.binary)) throw new ServiceError(`EDLAKE_MINIO_BINARY=${c.minio.binary}: no such file`);
    return c.minio.binary;
  }
  const cached = join(c.cacheDir, 'bin', 'minio');
  const found = onPath('minio') ?? (existsSync(cached) ? cached : undefined);
  if (found) return found;
  goInstall(c, `${MINIO_MODULE}@${c.minio.release}`, say);
  if (!existsSync(cached)) throw new ServiceError(`go install left no minio binary in ${join(c.cacheDir, 'bin')}`);
  return cached;
}

async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  exited: () => string | null,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    const why = exited();
    if (why) throw new ServiceError(`${what} exited during start-up: ${why}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new ServiceError(`${what} did not become healthy within ${timeoutMs / 1000}s`);
}

export async function temporalHealthy(address: string, timeoutMs = 2000): Promise<boolean> {
  let conn: Connection | undefined;
  try {
    conn = await Connection.connect({ address, connectTimeout: timeoutMs });
    const res = await conn.healthService.check({});
    return res.status === 1;
  } catch {
    return false;
  } finally {
    await conn?.close().catch(() => undefined);
  }
}

const INDEXED_TYPES: Record<string, number> = {
  Text: 1,
  Keyword: 2,
  Int: 3,
  Double: 4,
  Bool: 5,
  Datetime: 6,
  KeywordList: 7,
};

/**
 * Registers any of edlake's search attributes the server lacks (a dev server started by an older version knows
 * fewer of them). Idempotent.
 */
export async function ensureSearchAttributes(c: Config): Promise<string[]> {
  const conn = await Connection.connect({ address: c.temporal.address, connectTimeout: 5000 });
  try {
    const have = await conn.operatorService.listSearchAttributes({ namespace: c.temporal.namespace });
    const missing = Object.entries(SEARCH_ATTRIBUTES).filter(([k]) => !(k in (have.customAttributes ?? {})));
    if (missing.length) {
      await conn.operatorService.addSearchAttributes({
        namespace: c.temporal.namespace,
        searchAttributes: Object.fromEntries(missing.map(([k, t]) => [k, INDEXED_TYPES[t]!])),
      });
    }
    return missing.map(([k]) => k);
  } finally {
    await conn.close().catch(() => undefined);
  }
}

export async function minioHealthy(address: string): Promise<boolean> {
  try {
    const res = await fetch(`http://${address}/minio/health/live`, { signal: AbortSignal.timeout(2000) });
    return res.ok;
  } catch {
    return false;
  }
}

function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-3).join(' | ');
  } catch {
    return '';
  }
}

async function launch(
  c: Config,
  name: 'temporal' | 'minio',
  binary: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  address: string,
): Promise<{ pid: number; log: string; exited: () => string | null }> {
  await mkdir(runDir(c), { recursive: true });
  await mkdir(logDir(c), { recursive: true });
  const log = join(logDir(c), `${name}.log`);
  const fd = openSync(log, 'a');
  const child = spawn(binary, args, { detached: true, stdio: ['ignore', fd, fd], env });
  closeSync(fd);
  let exit: string | null = null;
  child.on('exit', (code, signal) => {
    exit = `exit ${String(code ?? signal)}; ${tail(log)} (log: ${log})`;
  });
  child.on('error', (err) => {
    exit = err.message;
  });
  child.unref();
  const pid = child.pid;
  if (!pid) throw new ServiceError(`could not start ${binary}`);
  const record: PidFile = { pid, address, binary, startedAt: new Date().toISOString() };
  await writeFile(pidPath(c, name), JSON.stringify(record));
  return { pid, log, exited: () => exit };
}

/** Whether the lake needs the managed MinIO: an s3 lake whose endpoint is on this machine. */
export function needsMinio(c: Config): boolean {
  return c.lake.kind === 's3' && (!c.lake.endpoint || isLoopback(c.lake.endpoint));
}

export async function temporalUp(c: Config, say: Say): Promise<ServiceState> {
  const address = c.temporal.address;
  if (c.temporal.external) {
    if (!(await temporalHealthy(address, 5000))) {
      throw new ServiceError(`Temporal at ${address} (TEMPORAL_ADDRESS) is unreachable`);
    }
    return { name: 'temporal', state: 'external', address };
  }
  const mine = await readPid(c, 'temporal');
  if (mine && (await temporalHealthy(address))) {
    const added = await ensureSearchAttributes(c);
    if (added.length) say(`registered search attributes ${added.join(', ')}`);
    return { name: 'temporal', state: 'running', address, ui: c.temporal.uiUrl, pid: mine.pid, binary: mine.binary };
  }
  if (!mine && (await temporalHealthy(address))) {
    return { name: 'temporal', state: 'external', address, ui: c.temporal.uiUrl };
  }
  const binary = await resolveTemporalCli(c, say);
  const [ip, port] = address.split(':') as [string, string];
  await mkdir(join(c.home, 'temporal'), { recursive: true });
  const args = [
    'server',
    'start-dev',
    '--ip',
    ip,
    '--port',
    port,
    '--ui-port',
    String(c.temporal.uiPort),
    '--db-filename',
    join(c.home, 'temporal', 'temporal.db'),
    '--namespace',
    c.temporal.namespace,
    '--log-level',
    'warn',
    ...Object.entries(SEARCH_ATTRIBUTES).flatMap(([k, t]) => ['--search-attribute', `${k}=${t}`]),
  ];
  say(`starting Temporal dev server on ${address} (Web UI ${c.temporal.uiUrl})…`);
  const started = await launch(c, 'temporal', binary, args, process.env, address);
  await waitFor('Temporal dev server', () => temporalHealthy(address), 90_000, started.exited);
  return {
    name: 'temporal',
    state: 'started',
    address,
    ui: c.temporal.uiUrl,
    pid: started.pid,
    binary,
    log: started.log,
  };
}

export async function minioUp(c: Config, say: Say): Promise<ServiceState> {
  const address = c.minio.address;
  const mine = await readPid(c, 'minio');
  if (mine && (await minioHealthy(address)))
    return { name: 'minio', state: 'running', address, pid: mine.pid, binary: mine.binary };
  if (!mine && (await minioHealthy(address))) return { name: 'minio', state: 'external', address };
  const binary = await resolveMinio(c, say);
  const data = join(c.home, 'minio');
  await mkdir(data, { recursive: true });
  const cred = minioCredentials(c);
  say(`starting MinIO on ${address}…`);
  const started = await launch(
    c,
    'minio',
    binary,
    ['server', data, '--address', address, '--console-address', c.minio.consoleAddress, '--quiet'],
    { ...process.env, MINIO_ROOT_USER: cred.user, MINIO_ROOT_PASSWORD: cred.password, MINIO_BROWSER: 'off' },
    address,
  );
  await waitFor('MinIO', () => minioHealthy(address), 60_000, started.exited);
  return { name: 'minio', state: 'started', address, pid: started.pid, binary, log: started.log };
}

/** Starts what the configuration needs (Temporal; MinIO when the lake is on a local S3 endpoint or asked for). */
export async function servicesUp(c: Config, opts: { minio?: boolean; say?: Say } = {}): Promise<ServiceState[]> {
  const say = opts.say ?? (() => undefined);
  const out = [await temporalUp(c, say)];
  if (opts.minio ?? needsMinio(c)) out.push(await minioUp(c, say));
  return out;
}

async function stopOne(c: Config, name: 'temporal' | 'minio'): Promise<ServiceState | null> {
  const p = await readPid(c, name);
  await rm(pidPath(c, name), { force: true });
  if (!p) return null;
  try {
    process.kill(-p.pid, 'SIGTERM');
  } catch {
    process.kill(p.pid, 'SIGTERM');
  }
  const deadline = Date.now() + 15_000;
  while (alive(p.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (alive(p.pid)) process.kill(p.pid, 'SIGKILL');
  return { name, state: 'stopped', address: p.address, pid: p.pid };
}

/** Stops only what `up` started (by pid file). */
export async function servicesDown(c: Config, only?: ('temporal' | 'minio')[]): Promise<ServiceState[]> {
  const out: ServiceState[] = [];
  for (const name of only ?? (['temporal', 'minio'] as const)) {
    const s = await stopOne(c, name);
    if (s) out.push(s);
  }
  return out;
}

export async function servicesStatus(c: Config): Promise<(ServiceState & { healthy: boolean })[]> {
  const t = await readPid(c, 'temporal');
  const m = await readPid(c, 'minio');
  const th = await temporalHealthy(c.temporal.address);
  const mh = await minioHealthy(c.minio.address);
  return [
    {
      name: 'temporal',
      state: c.temporal.external || (!t && th) ? 'external' : t ? 'running' : 'stopped',
      address: c.temporal.address,
      ui: c.temporal.uiUrl,
      healthy: th,
      ...(t ? { pid: t.pid, binary: t.binary } : {}),
    },
    {
      name: 'minio',
      state: !m && mh ? 'external' : m ? 'running' : 'stopped',
      address: c.minio.address,
      healthy: mh,
      ...(m ? { pid: m.pid, binary: m.binary } : {}),
    },
  ];
}
