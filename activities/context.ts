import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Context } from '@temporalio/activity';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { Config } from '../config/index.js';
import type { Duck } from '../lake/duck.js';
import type { Lake } from '../lake/lake.js';

/** Everything activities touch, passed in explicitly; tests hand in their own. */
export interface ActivityDeps {
  config: Config;
  lake: Lake;
  duck: Duck;
  clock: () => Date;
}

function inActivity(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/**
 * Runs long work while heartbeating every few seconds with the latest progress, so a killed worker is noticed
 * within the heartbeat timeout and the activity is retried elsewhere. Outside an activity it just runs.
 */
export async function withHeartbeat<T>(fn: (progress: (detail: unknown) => void) => Promise<T>): Promise<T> {
  const ctx = inActivity();
  let detail: unknown = undefined;
  const beat = () => ctx?.heartbeat(detail);
  beat();
  const timer = ctx ? setInterval(beat, 2000) : undefined;
  try {
    return await fn((d) => {
      detail = d;
    });
  } finally {
    if (timer) clearInterval(timer);
  }
}

/** Test-only fault injection: holds the named activity (heartbeating) for the configured time. */
export async function faultHold(deps: ActivityDeps, activity: string): Promise<void> {
  const ms = deps.config.faults.holdMs[activity];
  if (!ms) return;
  await withHeartbeat(() => new Promise((resolve) => setTimeout(resolve, ms)));
}

/** A scratch folder for one unit of work, removed afterwards. */
export async function withWorkDir<T>(deps: ActivityDeps, name: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = join(deps.config.home, 'work', `${name}-${process.pid}-${Date.now()}`);
  await mkdir(dir, { recursive: true });
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Independent pieces of one unit of work (sources, dates) run at the same time, each on its own DuckDB connection. */
export const PARALLEL_PIECES = 2;

/**
 * Runs independent pieces of one unit of work (sources, dates) at most `limit` at a time, each on its own DuckDB
 * connection with the session in UTC, reporting the pieces in flight as progress; results in the items' order.
 */
export function onConnections<T, R>(
  deps: ActivityDeps,
  items: T[],
  limit: number,
  progress: (detail: unknown) => void,
  name: (item: T) => string,
  fn: (conn: DuckDBConnection, item: T) => Promise<R>,
  size?: (item: T) => number,
): Promise<R[]> {
  const running = new Set<string>();
  return mapConcurrently(
    items,
    limit,
    (item) =>
      deps.duck.withConnection(async (conn) => {
        running.add(name(item));
        progress({ running: [...running] });
        try {
          await conn.run(`SET TimeZone = 'UTC'`);
          return await fn(conn, item);
        } finally {
          running.delete(name(item));
        }
      }),
    size,
  );
}

/**
 * Maps items with at most `limit` in flight; results in the items' order. With `size`, larger items start first (the
 * longest piece does not start last and run alone at the end). After a failure no new item starts, and the first
 * error is thrown once the items in flight have settled (none is left writing into a work folder being removed).
 */
export async function mapConcurrently<T, R>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<R>,
  size?: (item: T) => number,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  const order = items.map((_, i) => i);
  if (size) {
    const sizes = items.map(size);
    order.sort((a, b) => sizes[b]! - sizes[a]! || a - b);
  }
  let next = 0;
  let failure: { err: unknown } | undefined;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < order.length && !failure) {
      const i = order[next++]!;
      try {
        out[i] = await fn(items[i]!);
      } catch (err) {
        failure ??= { err };
      }
    }
  });
  await Promise.all(lanes);
  if (failure) throw failure.err;
  return out;
}
