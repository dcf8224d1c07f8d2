import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applySchedule, backfillSchedule, followBackfill, startBackfill } from '../../cli/schedule.js';
import { connectClient } from '../../cli/client.js';
import { LAYERS } from '../../lake/paths.js';
import { createLake } from '../../lake/lake.js';
import { generate } from '../../generator/index.js';
import type { BackfillProgress } from '../../workflows/contracts.js';
import { partitionDateFor } from '../../workflows/scheduled.js';
import { startWorker, type StartedWorker } from '../../workers/worker.js';
import { spawnWorker, testConfig, uniqueSuffix } from '../helpers.js';

describe('partition date of a scheduled run', () => {
  it('is the day before the scheduled start, in the schedule timezone', () => {
    expect(partitionDateFor(new Date('2031-03-10T02:00:00Z'), 'UTC')).toBe('2031-03-09');
    // 23:30 UTC on the 9th is already the 10th in Berlin: the run processes the 9th.
    expect(partitionDateFor(new Date('2031-03-09T23:30:00Z'), 'Europe/Berlin')).toBe('2031-03-09');
    expect(partitionDateFor(new Date('2031-03-10T03:00:00Z'), 'America/New_York')).toBe('2031-03-08');
  });
});

describe('operations on the real dev server', () => {
  const suffix = uniqueSuffix();
  const config = testConfig({
    EDLAKE_TASK_QUEUE: `test-ops-${suffix}`,
    EDLAKE_SCHEDULE_ID: `test-nightly-${suffix}`,
    EDLAKE_HEARTBEAT_TIMEOUT_SECONDS: '4',
    EDLAKE_INTERVENTIONS: 'false',
  });
  let client: Awaited<ReturnType<typeof connectClient>>;
  let worker: StartedWorker | undefined;

  beforeAll(async () => {
    client = await connectClient(config);
    worker = await startWorker(config);
  });
  afterAll(async () => {
    await worker?.stop();
    await client?.close();
  });

  it('schedule apply twice leaves one schedule; pause, unpause, trigger and delete work', async () => {
    expect(await applySchedule(client.client, config)).toBe('created');
    expect(
      await applySchedule(client.client, { ...config, schedule: { ...config.schedule, cron: '30 3 * * *' } }),
    ).toBe('updated');
    const ids: string[] = [];
    for await (const s of client.client.schedule.list())
      if (s.scheduleId === config.schedule.id) ids.push(s.scheduleId);
    expect(ids).toHaveLength(1);
    const h = client.client.schedule.getHandle(config.schedule.id);
    const d = await h.describe();
    expect(d.spec.calendars?.length ?? d.spec.intervals?.length ?? 0).toBeGreaterThanOrEqual(0);
    expect(JSON.stringify(d.spec)).toContain('3');
    expect(d.policies.overlap).toBe('SKIP');
    await h.pause('maintenance');
    expect((await h.describe()).state.paused).toBe(true);
    await h.unpause();
    expect((await h.describe()).state.paused).toBe(false);
    // A triggered run processes yesterday (UTC) as the child nightly-<date>.
    await h.trigger();
    const date = partitionDateFor(new Date(), 'UTC');
    const deadline = Date.now() + 60_000;
    for (;;) {
      const desc = await client.client.workflow
        .getHandle(`nightly-${date}`)
        .describe()
        .catch(() => null);
      if (desc) break;
      if (Date.now() > deadline) throw new Error(`nightly-${date} never started`);
      await new Promise((r) => setTimeout(r, 500));
    }
    // The schedule's own backfill goes in chunks of at most 500 dates: 1,200 dates are three requests.
    expect(await backfillSchedule(client.client, { ...config }, '2001-01-01', '2004-04-14')).toBe(3);
    await h.delete();
    await expect(h.describe()).rejects.toThrow();
  });

  it('a 30-day backfill survives a killed worker, continues as new, and a second run changes no partition', async () => {
    const from = '2032-01-05';
    const gen = await generate({ out: config.inbox, students: 25, days: 30, start: from, seed: 21 });
    const to = gen.dates.at(-1)!;
    await worker?.stop();
    worker = undefined;
    const child: ChildProcess = spawnWorker(config, { EDLAKE_INTERVENTIONS: 'false' });
    let first: BackfillProgress;
    try {
      const handle = await startBackfill(client.client, config, { from, to, concurrency: 4, datesPerRun: 12 });
      expect(handle.workflowId).toBe(`backfill-${from}-${to}`);
      let killed = false;
      first = await followBackfill(handle, (p) => {
        if (!killed && p.done >= 4) {
          killed = true;
          child.kill('SIGKILL');
          void startWorker(config).then((w) => (worker = w));
        }
      });
      expect(killed).toBe(true);
    } finally {
      child.kill('SIGKILL');
    }
    expect(first.total).toBe(30);
    expect(first.done).toBe(30);
    expect(first.failed).toEqual([]);
    expect(first.continuedAsNew).toBe(2);
    const lake = createLake(config);
    for (const d of gen.dates) expect(await lake.readManifest('gold', 'student_features', d)).not.toBeNull();

    const snapshot = async () => {
      const out: Record<string, string> = {};
      for (const layer of LAYERS)
        for (const ds of await lake.listDatasets(layer))
          for (const d of await lake.listPartitions(layer, ds)) {
            const m = await lake.readManifest(layer, ds, d);
            if (m) out[`${layer}/${ds}/${d}`] = `${m.writeId}@${m.committedAt}`;
          }
      return out;
    };
    const before = await snapshot();
    expect(Object.keys(before).length).toBeGreaterThan(30 * 5);
    const again = await followBackfill(
      await startBackfill(client.client, config, { from, to, concurrency: 4, datesPerRun: 12 }),
      () => undefined,
    );
    expect(again.done).toBe(30);
    expect(again.unchanged).toBe(30);
    expect(await snapshot()).toEqual(before);
  }, 900_000);
});
