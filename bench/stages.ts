// Runs the nightly stages (bronze → silver → timeline → gold) over every day of a raw drop, in this process, and
// prints one JSON line: per stage, seconds, CPU seconds (all threads), rows and peak RSS. Used by bench/pipeline.ts in a fresh process per size.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createActivities } from '../activities/index.js';
import { loadConfig } from '../config/index.js';
import { goldDatesFor } from '../workflows/contracts.js';
import { createDeps } from '../workers/deps.js';

const [inbox, home] = process.argv.slice(2) as [string, string];
const config = loadConfig({ ...process.env, EDLAKE_HOME: home, EDLAKE_INBOX: inbox });
const deps = createDeps(config);
const acts = createActivities(deps);
const gen = JSON.parse(readFileSync(join(inbox, '_generator.json'), 'utf8')) as { dates: string[] };

const stages = ['bronze', 'silver', 'timeline', 'gold'] as const;
const out = Object.fromEntries(stages.map((s) => [s, { seconds: 0, cpuSeconds: 0, rows: 0, peakRssMb: 0 }]));
let current: (typeof stages)[number] = 'bronze';
const sample = () => {
  const mb = process.memoryUsage.rss() / 2 ** 20;
  if (mb > out[current]!.peakRssMb) out[current]!.peakRssMb = Math.round(mb);
};
const timer = setInterval(sample, 50);
async function stage<T>(name: (typeof stages)[number], fn: () => Promise<T>, rows: (r: T) => number): Promise<T> {
  current = name;
  const t = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const r = await fn();
  out[name]!.seconds += Number(process.hrtime.bigint() - t) / 1e9;
  const used = process.cpuUsage(cpu);
  out[name]!.cpuSeconds += (used.user + used.system) / 1e6;
  out[name]!.rows += rows(r);
  sample();
  return r;
}

let raw = 0;
for (const date of gen.dates) {
  const runId = `bench-${date}`;
  const writeId = `run-${date}`;
  await stage(
    'bronze',
    () => acts.landBronzeFiles({ date, runId }),
    (r) => r.filesAdded,
  );
  const s = await stage(
    'silver',
    () => acts.buildSilverTables({ date, runId, writeId }),
    (r) => r.reconciliation.reduce((n, x) => n + x.raw, 0),
  );
  raw += s.reconciliation.reduce((n, x) => n + x.raw, 0);
  const dates = [...new Set([...s.touchedDates.filter((d) => d <= date), date])].sort();
  await stage(
    'timeline',
    () => acts.alignTimeline({ dates, landingDate: date, runId, writeId }),
    (r) => r.events,
  );
  const gold = goldDatesFor(dates, date);
  await stage(
    'gold',
    () => acts.buildGoldFeatures({ dates: gold, landingDate: date, runId, writeId }),
    (r) => r.rows,
  );
  process.stderr.write(`  ${date} done (${raw} raw records so far)\n`);
}
clearInterval(timer);
await deps.duck.close();
process.stdout.write(
  JSON.stringify({ raw, stages: out, peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024) }) + '\n',
);
