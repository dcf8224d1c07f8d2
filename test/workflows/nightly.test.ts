import type { ChildProcess } from 'node:child_process';
import { DuckDBInstance } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient } from '../../cli/client.js';
import { followNightly, startNightly } from '../../cli/runs.js';
import { collectLakeStatus } from '../../cli/status.js';
import type { Config } from '../../config/index.js';
import { generate } from '../../generator/index.js';
import { createLake } from '../../lake/lake.js';
import { partitionScan } from '../../lake/duck.js';
import { startWorker, type StartedWorker } from '../../workers/worker.js';
import { spawnWorker, testConfig, uniqueSuffix } from '../helpers.js';

const taskQueue = `test-nightly-${uniqueSuffix()}`;
const config: Config = testConfig({ EDLAKE_TASK_QUEUE: taskQueue, EDLAKE_HEARTBEAT_TIMEOUT_SECONDS: '4' });
const lake = createLake(config);
// Dates of their own: workflow IDs are nightly-<date> on the shared test server.
const DAY = '2031-01-06';
const KILL_DAY = '2031-01-07';

async function goldRows(date: string): Promise<string[]> {
  const { manifest, paths } = await lake.localFiles('gold', 'student_features', date);
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  try {
    const r = await conn.runAndReadAll(`SELECT * FROM ${partitionScan(manifest, paths)} ORDER BY student_key`);
    return r.getRowObjectsJson().map((o) => JSON.stringify(o));
  } finally {
    conn.closeSync();
    db.closeSync();
  }
}

describe('nightlyPipeline on the real Temporal dev server', () => {
  let client: Awaited<ReturnType<typeof connectClient>>;
  let worker: StartedWorker | undefined;
  let expected: Awaited<ReturnType<typeof generate>>['expected'];

  beforeAll(async () => {
    expected = (await generate({ out: config.inbox, students: 80, days: 2, start: DAY, seed: 11 })).expected;
    client = await connectClient(config);
  });
  afterAll(async () => {
    await worker?.stop();
    await client?.close();
  });

  it('runs bronze → silver → timeline → gold for one day with the expected partitions and counts', async () => {
    worker = await startWorker(config);
    const handle = await startNightly(client.client, config, DAY);
    expect(handle.workflowId).toBe(`nightly-${DAY}`);
    const summary = await followNightly(handle, () => undefined);
    const exp = Object.values(expected[DAY]!);
    const sum = (f: (e: (typeof exp)[number]) => number) => exp.reduce((n, e) => n + f(e), 0);
    expect(summary.stage).toBe('done');
    // One day of history is too little to train on: the run says so and scores nothing.
    expect(summary.stagesDone).toEqual(['bronze', 'silver', 'timeline', 'gold', 'embeddings', 'models', 'report']);
    expect(summary.notes).toContain('no champion model yet: nothing scored');
    expect(summary.retrains).toEqual([]);
    expect(summary.notes.filter((n) => n.startsWith('retrain ')).length).toBe(2);
    expect(summary.rows).toMatchObject({
      silver: sum((e) => e.accepted),
      duplicates: sum((e) => e.duplicates),
      quarantined: sum((e) => e.quarantined),
      gold: 80,
    });
    expect(await lake.listPartitions('silver', 'xapi')).toEqual([DAY]);
    expect(await lake.listPartitions('gold', 'student_features')).toEqual([DAY]);
    const status = await collectLakeStatus(lake);
    for (const [source, e] of Object.entries(expected[DAY]!)) {
      expect(status.reconciliation.find((r) => r.source === source && r.date === DAY)).toEqual({
        source,
        date: DAY,
        raw: e.raw,
        accepted: e.accepted,
        duplicates: e.duplicates,
        quarantined: e.quarantined,
      });
    }
    const progress = await handle.query<{ stage: string }>('progress');
    expect(progress.stage).toBe('done');
    const desc = await handle.describe();
    expect(desc.searchAttributes.EdlakeStage).toEqual(['done']);
    expect(desc.searchAttributes.EdlakeRows).toEqual([80]);
  });

  it('re-running a date replaces its partitions instead of adding to them', async () => {
    const before = await goldRows(DAY);
    const silverBefore = await lake.readManifest('silver', 'xapi', DAY);
    const summary = await followNightly(await startNightly(client.client, config, DAY), () => undefined);
    expect(summary.rows.gold).toBe(80);
    const silverAfter = await lake.readManifest('silver', 'xapi', DAY);
    expect(silverAfter!.runId).not.toBe(silverBefore!.runId);
    expect(silverAfter!.rowCount).toBe(silverBefore!.rowCount);
    expect(await goldRows(DAY)).toEqual(before);
    for (const [layer, dataset] of [
      ['silver', 'xapi'],
      ['silver', 'timeline'],
      ['gold', 'student_features'],
      ['quarantine', 'xapi'],
    ] as const) {
      const m = await lake.readManifest(layer, dataset, DAY);
      const objects = (await lake.store.list(`${layer}/${dataset}/dt=${DAY}/`)).map((o) => o.key).sort();
      expect(objects).toEqual([`${layer}/${dataset}/dt=${DAY}/_manifest.json`, ...m!.files.map((f) => f.key)].sort());
    }
    expect((await lake.readManifest('bronze', 'xapi', DAY))!.files.length).toBe(1);
  });

  it('survives a SIGKILLed worker during silver and ends with the same gold rows', async () => {
    await worker?.stop();
    worker = undefined;
    const child: ChildProcess = spawnWorker(config, { EDLAKE_FAULT_HOLD_MS: 'buildSilverTables=600000' });
    const handle = await startNightly(client.client, config, KILL_DAY);
    // Wait until the child worker is inside silver, then kill it without warning.
    const deadline = Date.now() + 120_000;
    for (;;) {
      const pending = (await handle.describe()).raw.pendingActivities ?? [];
      if (
        pending.some(
          (a) => a.activityType?.name === 'buildSilverTables' && Number(a.attempt) === 1 && a.lastStartedTime,
        )
      )
        break;
      if (Date.now() > deadline) throw new Error('silver never started on the child worker');
      await new Promise((r) => setTimeout(r, 200));
    }
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    worker = await startWorker(config);
    const summary = await handle.result();
    expect(summary.stage).toBe('done');
    const history = await handle.fetchHistory();
    const events = history.events ?? [];
    const silverScheduled = new Set(
      events
        .filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'buildSilverTables')
        .map((e) => String(e.eventId)),
    );
    const silverAttempts = events
      .filter((e) => silverScheduled.has(String(e.activityTaskStartedEventAttributes?.scheduledEventId)))
      .map((e) => Number(e.activityTaskStartedEventAttributes!.attempt));
    expect(Math.max(...silverAttempts)).toBeGreaterThanOrEqual(2);
    const afterKill = await goldRows(KILL_DAY);
    expect(afterKill.length).toBe(80);

    // An undisturbed run of the same date yields the same gold rows.
    await followNightly(await startNightly(client.client, config, KILL_DAY), () => undefined);
    expect(await goldRows(KILL_DAY)).toEqual(afterKill);
  });
});
