// npm run eval -- [--json] [--students 1500] [--days 28] [--term-days 28]
// Model quality on generated data with planted truth: the outcome mechanism (risk) and personas (segments). Runs the
// pipeline over a fresh drop in a scratch home whose term ends on its last day (withdrawals decided in its second
// half, results on the last day), embeds, trains both models on the last day and reports holdout metrics, the
// adjusted Rand index of segments against the planted personas, and the fairness audits. Risk learns each outcome from
// the features the horizon (EDLAKE_HORIZON_DAYS, 14) before its decision: a true early warning.
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createActivities } from '../activities/index.js';
import { studentKey } from '../activities/identity.js';
import { adjustedRandIndex } from '../activities/models/stats.js';
import { ModelRegistry } from '../activities/models/registry.js';
import { loadConfig } from '../config/index.js';
import { generate, GENERATOR_VERSION } from '../generator/index.js';
import { parquetScan } from '../lake/duck.js';
import { createDeps } from '../workers/deps.js';
import { arg } from './args.js';

const asJson = process.argv.includes('--json');
const students = Number(arg('students', '1500'));
const days = Number(arg('days', '28'));
const termDays = Number(arg('term-days', String(days)));
const base = loadConfig();
const drop = join(base.cacheDir, 'eval', `drop-v${GENERATOR_VERSION}-${students}x${days}-t${termDays}`);
const say = (s: string) => asJson || process.stderr.write(`${s}\n`);
const gen = existsSync(join(drop, '_generator.json'))
  ? (JSON.parse((await import('node:fs')).readFileSync(join(drop, '_generator.json'), 'utf8')) as Awaited<
      ReturnType<typeof generate>
    >)
  : await generate({ out: drop, students, days, start: '2026-09-14', seed: 11, termDays });
const home = join(base.home, 'eval');
rmSync(home, { recursive: true, force: true });
const config = loadConfig({ ...process.env, EDLAKE_HOME: home, EDLAKE_INBOX: drop });
const deps = createDeps(config);
const a = createActivities(deps);
for (const date of gen.dates) {
  const w = { runId: `eval-${date}`, writeId: `eval-${date}` };
  await a.landBronzeFiles({ date, runId: w.runId });
  const s = await a.buildSilverTables({ date, ...w });
  const dates = [...new Set([...s.touchedDates.filter((d) => d <= date), date])].sort();
  await a.alignTimeline({ dates, landingDate: date, ...w });
  await a.buildGoldFeatures({ dates: [date], ...w });
  say(`  ${date} aligned`);
}
const last = gen.dates.at(-1)!;
const w = { runId: 'eval', writeId: 'eval' };
await a.embedBehaviour({ date: last, ...w });
say('  embedded');
const risk = await a.trainChallenger({ name: 'risk', date: last, reason: 'evaluation' });
const seg = await a.trainChallenger({ name: 'segments', date: last, reason: 'evaluation' });
await a.decidePromotion({ name: 'risk', version: risk.version, date: last });
await a.decidePromotion({ name: 'segments', version: seg.version, date: last });
await a.scoreStudents({ date: last, ...w });
const registry = new ModelRegistry(deps.lake.store);
const riskCard = (await registry.card('risk', risk.version))!;
const segCard = (await registry.card('segments', seg.version))!;
// Planted personas by pseudonymous key, against the segments the model assigned.
const byKey = new Map(Object.entries(gen.planted.personas).map(([id, p]) => [studentKey(config.pseudonymKey, id), p]));
const assigned = await deps.duck.withConnection(async (conn) =>
  (
    await conn.runAndReadAll(
      `SELECT student_key, segment_id FROM ${parquetScan((await deps.lake.localFiles('gold', 'segments', last)).paths)} WHERE segment_id IS NOT NULL`,
    )
  ).getRows(),
);
const truth = assigned.map((r) => byKey.get(String(r[0]))!);
const ari = adjustedRandIndex(
  truth,
  assigned.map((r) => Number(r[1])),
);
const holdout = riskCard.metrics.holdout as Record<string, number>;
const report = {
  students,
  days,
  risk: {
    version: risk.version,
    labels: riskCard.labels,
    rocAuc: holdout.rocAuc,
    prAuc: holdout.prAuc,
    prevalence: holdout.prevalence,
    recall: holdout.recall,
    precision: holdout.precision,
    precisionAtTop10Percent: holdout.precisionAtTop10Percent,
    threshold: holdout.threshold,
    holdoutStudents: holdout.n,
    fairness: riskCard.fairness,
  },
  segments: {
    version: seg.version,
    algorithm: segCard.algorithm,
    segmented: assigned.length,
    ...segCard.metrics,
    adjustedRandIndex: ari,
    fairness: segCard.fairness,
  },
  targets: { rocAuc: '>= 0.80', prAuc: 'well above prevalence', adjustedRandIndex: '>= 0.7' },
};
await deps.duck.close();
if (asJson) console.log(JSON.stringify(report, null, 2));
else {
  console.log(
    `risk v${risk.version}: ROC-AUC ${holdout.rocAuc!.toFixed(3)}, PR-AUC ${holdout.prAuc!.toFixed(3)} (prevalence ${holdout.prevalence!.toFixed(3)}), recall ${holdout.recall!.toFixed(2)} / precision ${holdout.precision!.toFixed(2)} at ${holdout.threshold!.toFixed(3)}`,
  );
  console.log(`risk labels: ${riskCard.labels?.why ?? 'unknown'}`);
  console.log(
    `segments v${seg.version} (${segCard.algorithm}): k=${String(segCard.metrics.k)}, silhouette ${Number(segCard.metrics.silhouette).toFixed(3)}, ARI vs planted personas ${ari.toFixed(3)}`,
  );
  console.log('fairness (risk):', JSON.stringify(riskCard.fairness));
}
