// npm run bench:overhead -- [--events 1000000] [--days 10]
// Orchestration overhead: runs nightly-<date> for every day of the benchmark drop through a real Temporal dev server
// and worker, then reads each run's history: the share of the run's wall time when no activity (and no child
// workflow) was running is the time spent in orchestration — scheduling, task dispatch, history, timers.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import proto from '@temporalio/proto';
import { connectClient } from '../cli/client.js';
import { startNightly } from '../cli/runs.js';
import { loadConfig } from '../config/index.js';
import { servicesDown, servicesUp } from '../scripts/services.js';
import { startWorker } from '../workers/worker.js';
import { benchDrop } from './drop.js';
import { arg } from './args.js';

const events = Number(arg('events', '1000000'));
const days = Number(arg('days', '10'));
const base = loadConfig();
const { dir, students } = await benchDrop(base, events, days);
const home = join(base.home, 'bench', 'overhead');
rmSync(home, { recursive: true, force: true });
const config = loadConfig({
  ...process.env,
  EDLAKE_HOME: home,
  EDLAKE_INBOX: dir,
  EDLAKE_TASK_QUEUE: `bench-overhead-${Date.now()}`,
  EDLAKE_TEMPORAL_ADDRESS: process.env.EDLAKE_TEMPORAL_ADDRESS ?? '127.0.0.1:7233',
});
const say = (l: string) => process.stderr.write(`${l}\n`);
const started = (await servicesUp(config, { say })).filter((s) => s.state === 'started').map((s) => s.name);
const worker = await startWorker(config);
const { client, close } = await connectClient(config);
const E = proto.temporal.api.enums.v1.EventType;
const ms = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
  Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;

/** Total length of the union of intervals. */
function covered(intervals: [number, number][]): number {
  const xs = intervals.filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  let total = 0;
  let [cs, ce] = [-Infinity, -Infinity];
  for (const [a, b] of xs) {
    if (a > ce) {
      if (ce > cs) total += ce - cs;
      [cs, ce] = [a, b];
    } else ce = Math.max(ce, b);
  }
  if (ce > cs) total += ce - cs;
  return total;
}

const nights: { date: string; wallSeconds: number; busySeconds: number; overheadShare: number }[] = [];
try {
  const dates = Array.from({ length: days }, (_, i) =>
    new Date(Date.parse('2026-09-14T00:00:00Z') + i * 86_400_000).toISOString().slice(0, 10),
  );
  for (const date of dates) {
    const handle = await startNightly(client, config, date);
    await handle.result();
    const history = await handle.fetchHistory();
    const evs = history.events ?? [];
    const first = ms(evs[0]?.eventTime);
    const last = ms(evs.at(-1)?.eventTime);
    const open = new Map<string, number>();
    const intervals: [number, number][] = [];
    for (const e of evs) {
      const t = ms(e.eventTime);
      switch (e.eventType) {
        case E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
          open.set(`a${String(e.activityTaskStartedEventAttributes?.scheduledEventId)}`, t);
          break;
        case E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
        case E.EVENT_TYPE_ACTIVITY_TASK_FAILED:
        case E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: {
          const a =
            e.activityTaskCompletedEventAttributes ??
            e.activityTaskFailedEventAttributes ??
            e.activityTaskTimedOutEventAttributes;
          const s = open.get(`a${String(a?.scheduledEventId)}`);
          if (s !== undefined) intervals.push([s, t]);
          break;
        }
        case E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
          open.set(`c${String(e.childWorkflowExecutionStartedEventAttributes?.initiatedEventId)}`, t);
          break;
        case E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
        case E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED: {
          const c = e.childWorkflowExecutionCompletedEventAttributes ?? e.childWorkflowExecutionFailedEventAttributes;
          const s = open.get(`c${String(c?.initiatedEventId)}`);
          if (s !== undefined) intervals.push([s, t]);
          break;
        }
      }
    }
    const wall = last - first;
    const busy = covered(intervals);
    nights.push({
      date,
      wallSeconds: wall / 1000,
      busySeconds: busy / 1000,
      overheadShare: 1 - busy / wall,
    });
    say(
      `${handle.workflowId}: ${(wall / 1000).toFixed(1)} s, outside activities ${(100 * (1 - busy / wall)).toFixed(1)}%`,
    );
  }
} finally {
  await close();
  await worker.stop();
  if (started.length) await servicesDown(config, started);
}
const wall = nights.reduce((n, x) => n + x.wallSeconds, 0);
const busy = nights.reduce((n, x) => n + x.busySeconds, 0);
const report = {
  measuredAt: new Date().toISOString(),
  events,
  students,
  days,
  wallSeconds: wall,
  outsideActivitiesShare: 1 - busy / wall,
  target: '< 10%',
  nights,
};
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/overhead.json', import.meta.url), JSON.stringify(report, null, 2) + '\n');
console.log(
  `\n${events.toLocaleString()} events (${students} students × ${days} nights through Temporal): ${wall.toFixed(1)} s of nightly runs, ${(100 * report.outsideActivitiesShare).toFixed(1)}% outside activities (target < 10%)`,
);
