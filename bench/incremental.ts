// npm run bench:incremental -- [--students 1000] [--days 120] [--measure 30,120]
// The nightly incremental cost against the history behind it: lands a drop of the same daily volume night after
// night (bronze → silver → timeline → gold, as the nightly run does) and, on each measured night, times the whole
// night — the data stages, embeddings, drift, scoring, interventions, outcomes and the run report — with the
// previous night embedded as it would have been. A night must cost about the same with 120 days of history as with
// 30: its work tracks the new day's data, not the lake's size.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { createActivities } from '../activities/index.js';
import { loadConfig } from '../config/index.js';
import { addDays } from '../lake/paths.js';
import { goldDatesFor } from '../workflows/contracts.js';
import { createDeps } from '../workers/deps.js';
import { studentsDrop } from './drop.js';
import { arg } from './args.js';

const studentsWanted = Number(arg('students', '1000'));
const days = Number(arg('days', '120'));
const measure = arg('measure', '30,120').split(',').map(Number);
if (measure.some((m) => m < 2 || m > days)) throw new Error(`--measure nights must lie in 2…${days}`);

const base = loadConfig();
const { dir, students } = await studentsDrop(base, studentsWanted, days);
const home = join(base.home, 'bench', `incremental-${students}x${days}`);
rmSync(home, { recursive: true, force: true });
const config = loadConfig({ ...process.env, EDLAKE_HOME: home, EDLAKE_INBOX: dir, ANTHROPIC_API_KEY: '' });
const deps = createDeps(config);
const acts = createActivities(deps);
const dates = Array.from({ length: days }, (_, i) => addDays('2026-09-14', i));

type Timed = Record<string, number>;
async function timed<T>(into: Timed, name: string, fn: () => Promise<T>): Promise<T> {
  const t = process.hrtime.bigint();
  try {
    return await fn();
  } finally {
    into[name] = (into[name] ?? 0) + Number(process.hrtime.bigint() - t) / 1e9;
  }
}

/** One night's data stages, as the nightly workflow runs them; returns the raw records that landed. */
async function dataStages(date: string, t: Timed): Promise<number> {
  const ids = { runId: `inc-${date}`, writeId: `run-${date}` };
  await timed(t, 'bronze', () => acts.landBronzeFiles({ date, runId: ids.runId }));
  const s = await timed(t, 'silver', () => acts.buildSilverTables({ date, ...ids }));
  const touched = s.touchedDates.filter((d) => d <= date);
  const align = touched.includes(date) ? touched : [...touched, date].sort();
  await timed(t, 'timeline', () => acts.alignTimeline({ dates: align, landingDate: date, ...ids }));
  const gold = goldDatesFor(align, date);
  await timed(t, 'gold', () => acts.buildGoldFeatures({ dates: gold, landingDate: date, ...ids }));
  return s.reconciliation.reduce((n, r) => n + r.raw, 0);
}

const results: {
  night: number;
  date: string;
  historyDays: number;
  rawRecords: number;
  seconds: number;
  stages: Timed;
}[] = [];
const bar = new cliProgress.SingleBar(
  { format: `nights ${students} students [{bar}] {value}/{total} {note}`, stream: process.stderr },
  cliProgress.Presets.shades_classic,
);
bar.start(days, 0, { note: '' });
let trained = false;
for (const [i, date] of dates.entries()) {
  const night = i + 1;
  const t: Timed = {};
  const raw = await dataStages(date, t);
  const measured = measure.includes(night);
  if (measure.includes(night + 1) || measured) {
    // The night before a measured one is embedded too, so the content-hash cache is as a nightly run leaves it.
    await timed(t, 'embeddings', () => acts.embedBehaviour({ date, runId: `inc-${date}`, writeId: `run-${date}` }));
  }
  if (measure.includes(night + 1) && !trained) {
    for (const name of ['risk', 'segments'] as const) {
      const c = await acts.trainChallenger({ name, date, reason: 'benchmark: first model' });
      await acts.decidePromotion({ name, version: c.version, date });
    }
    trained = true;
  }
  if (measured) {
    const ids = { date, runId: `inc-${date}`, writeId: `run-${date}` };
    await timed(t, 'drift', () => acts.checkDrift(ids));
    await timed(t, 'scoring', () => acts.scoreStudents(ids));
    await timed(t, 'interventions', () => acts.decideInterventions(ids));
    await timed(t, 'outcomes', () => acts.measureInterventionOutcomes(ids));
    await timed(t, 'report', () => acts.writeRunReport({ date, runId: ids.runId }));
    const seconds = Object.values(t).reduce((a, b) => a + b, 0);
    results.push({ night, date, historyDays: night - 1, rawRecords: raw, seconds, stages: t });
    bar.update(night, { note: `night ${night}: ${seconds.toFixed(1)} s for ${raw} records` });
  } else bar.update(night, { note: '' });
}
bar.stop();
await deps.duck.close();

console.log(`\nnightly cost against history (${students} students, same daily volume)`);
const stageNames = [...new Set(results.flatMap((r) => Object.keys(r.stages)))];
console.log(`night  history  records   seconds  ${stageNames.map((s) => s.padStart(14)).join('')}`);
for (const r of results) {
  console.log(
    `${String(r.night).padStart(5)}  ${String(r.historyDays).padStart(7)}  ${String(r.rawRecords).padStart(7)}  ${r.seconds
      .toFixed(1)
      .padStart(8)}  ${stageNames.map((s) => (r.stages[s] ?? 0).toFixed(2).padStart(14)).join('')}`,
  );
}
const [first, last] = [results[0]!, results.at(-1)!];
const perRecord = (r: (typeof results)[number]) => r.seconds / r.rawRecords;
const ratio = perRecord(last) / perRecord(first);
console.log(
  `seconds per new record, night ${last.night} against night ${first.night}: ${ratio.toFixed(2)}× (history ${last.historyDays} vs ${first.historyDays} days)`,
);
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('./results/incremental.json', import.meta.url),
  JSON.stringify(
    { measuredAt: new Date().toISOString(), students, days, results, costPerRecordRatio: ratio, target: '≈ 1' },
    null,
    2,
  ) + '\n',
);
rmSync(home, { recursive: true, force: true });
