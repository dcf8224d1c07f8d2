// npm run bench:peers [-- --sizes 1000000,10000000 --days 10]
// edlake against the classic pandas pipeline (bench/peers/pipeline.py) on the same input: the LMS log exports and the
// roster of the benchmark drop. Both run end to end in fresh processes (edlake: bronze → silver → timeline → gold over
// every night; pandas: ingest, validate, pseudonymize, deduplicate, aggregate as of every day). Their outputs are
// checked to agree — contract counts, and practice features per student and day — then time and peak memory are
// reported as ratios (target: edlake at least 2× faster at no more memory).
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  linkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { loadConfig } from '../config/index.js';
import { partitionScan } from '../lake/duck.js';
import { createLake } from '../lake/lake.js';
import { peersPython } from './python.js';
import { benchDrop } from './drop.js';
import { arg } from './args.js';

const sizes = arg('sizes', '1000000,10000000').split(',').map(Number);
const days = Number(arg('days', '10'));
const config = loadConfig();
const python = peersPython(config);
const say = (l: string) => process.stderr.write(`${l}\n`);

/** The LMS exports and the roster of a benchmark drop, hard-linked into a drop of their own. */
function lmsDrop(dir: string): string {
  const out = `${dir}-lms`;
  if (existsSync(join(out, '_generator.json'))) return out;
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  for (const d of readdirSync(dir).filter((x) => x.startsWith('dt='))) {
    mkdirSync(join(out, d));
    for (const src of ['lms-csv', 'roster']) {
      if (!existsSync(join(dir, d, src))) continue;
      mkdirSync(join(out, d, src));
      for (const f of readdirSync(join(dir, d, src))) linkSync(join(dir, d, src, f), join(out, d, src, f));
    }
  }
  copyFileSync(join(dir, '_generator.json'), join(out, '_generator.json'));
  return out;
}

const results: unknown[] = [];
for (const size of sizes) {
  const { dir, students } = await benchDrop(config, size, days);
  const drop = lmsDrop(dir);
  const dates = (JSON.parse(readFileSync(join(drop, '_generator.json'), 'utf8')) as { dates: string[] }).dates;
  const home = join(config.home, 'bench', `peers-${students}x${days}`);
  rmSync(home, { recursive: true, force: true });

  say(`edlake over ${drop}`);
  let t = process.hrtime.bigint();
  const e = spawnSync(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(new URL('./stages.ts', import.meta.url)), drop, join(home, 'edlake')],
    { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 1 << 24 },
  );
  if (e.status !== 0) throw new Error(`edlake stages failed with ${String(e.status)}`);
  const edlakeSeconds = Number(process.hrtime.bigint() - t) / 1e9;
  const er = JSON.parse(e.stdout.trim().split('\n').pop()!) as { raw: number; peakRssMb: number };

  say(`pandas over ${drop}`);
  t = process.hrtime.bigint();
  const p = spawnSync(
    python,
    [fileURLToPath(new URL('./peers/pipeline.py', import.meta.url)), drop, join(home, 'pandas'), config.pseudonymKey],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      encoding: 'utf8',
    },
  );
  if (p.status !== 0) throw new Error(`pandas peer failed with ${String(p.status)}`);
  const pandasSeconds = Number(process.hrtime.bigint() - t) / 1e9;
  const pr = JSON.parse(p.stdout.trim().split('\n').pop()!) as {
    raw: number;
    accepted: number;
    duplicates: number;
    quarantined: number;
    byRule: Record<string, number>;
    rows: number;
    peakRssMb: number;
  };

  // Agreement: the contract's counts, then every student and day with practice in the last 28 days.
  const lake = createLake(loadConfig({ ...process.env, EDLAKE_HOME: join(home, 'edlake') }));
  const counts = { raw: 0, accepted: 0, duplicates: 0, quarantined: 0, byRule: {} as Record<string, number> };
  for (const d of dates) {
    const m = await lake.readManifest('quarantine', 'lms-csv', d);
    const st = (m?.stats ?? {}) as Record<string, unknown>;
    for (const k of ['raw', 'accepted', 'duplicates', 'quarantined'] as const) counts[k] += Number(st[k] ?? 0);
    for (const [k, n] of Object.entries(st))
      if (k.startsWith('rule:')) counts.byRule[k.slice(5)] = (counts.byRule[k.slice(5)] ?? 0) + Number(n);
  }
  const countsAgree =
    counts.raw === pr.raw &&
    counts.accepted === pr.accepted &&
    counts.duplicates === pr.duplicates &&
    counts.quarantined === pr.quarantined &&
    JSON.stringify(Object.entries(counts.byRule).sort()) === JSON.stringify(Object.entries(pr.byRule).sort());

  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  const gold: string[] = [];
  for (const d of dates) {
    const { manifest, paths } = await lake.localFiles('gold', 'student_features', d);
    if (paths.length) gold.push(`SELECT * FROM ${partitionScan(manifest, paths)}`);
  }
  const w = [7, 14, 28];
  const diffs = (
    await conn.runAndReadAll(`
    WITH e AS (
      SELECT student_key, strftime(as_of_date, '%Y-%m-%d') AS as_of_date,
        ${w.map((n) => `practice_events_${n}d AS ev${n}, practice_accuracy_${n}d AS acc${n}, attempts_per_item_${n}d AS api${n}, time_on_task_minutes_${n}d AS min${n}`).join(', ')}
      FROM (${gold.join(' UNION ALL BY NAME ')}) WHERE practice_events_28d > 0),
    p AS (SELECT *, strftime(as_of_date::DATE, '%Y-%m-%d') AS as_of FROM read_csv('${join(home, 'pandas', 'features.csv')}', header = true))
    SELECT count(*) FILTER (WHERE e.student_key IS NULL OR p.student_key IS NULL) AS unmatched,
      count(*) FILTER (WHERE e.student_key IS NOT NULL AND p.student_key IS NOT NULL) AS compared,
      count(*) FILTER (WHERE ${w
        .map(
          (n) => `coalesce(e.ev${n}, 0) <> p.practice_events_${n}d
          OR (p.practice_events_${n}d > 0 AND abs(e.acc${n} - p.practice_correct_${n}d / p.practice_events_${n}d) > 1e-9)
          OR (p.practice_events_${n}d > 0 AND abs(e.api${n} - p.practice_attempts_${n}d / p.practice_items_${n}d) > 1e-9)
          OR abs(coalesce(e.min${n}, 0) - p.practice_minutes_${n}d) > 1e-6`,
        )
        .join(' OR ')}) AS differing
    FROM e FULL JOIN p ON p.student_key = e.student_key AND p.as_of = e.as_of_date`)
  ).getRowObjects()[0]!;
  conn.closeSync();
  const agreement = {
    counts: countsAgree,
    compared: Number(diffs.compared),
    unmatched: Number(diffs.unmatched),
    differing: Number(diffs.differing),
  };
  const row = {
    lmsEvents: er.raw,
    students,
    days,
    edlake: { seconds: edlakeSeconds, peakRssMb: er.peakRssMb },
    pandas: { seconds: pandasSeconds, peakRssMb: pr.peakRssMb },
    speedup: pandasSeconds / edlakeSeconds,
    memoryRatio: er.peakRssMb / pr.peakRssMb,
    agreement,
    target: 'speedup >= 2 and memoryRatio <= 1',
  };
  results.push(row);
  console.log(
    `\n${er.raw.toLocaleString()} LMS events (${students} students × ${days} days): edlake ${edlakeSeconds.toFixed(1)} s, ` +
      `${er.peakRssMb} MB; pandas ${pandasSeconds.toFixed(1)} s, ${pr.peakRssMb} MB → edlake ${row.speedup.toFixed(2)}× ` +
      `the speed at ${row.memoryRatio.toFixed(2)}× the memory`,
  );
  console.log(
    `agreement: counts ${countsAgree ? 'equal' : `DIFFER (edlake ${JSON.stringify(counts)}, pandas ${JSON.stringify(pr)})`}; ` +
      `${agreement.compared} student-days compared, ${agreement.differing} differing, ${agreement.unmatched} on one side only`,
  );
  if (!countsAgree || agreement.differing || agreement.unmatched) process.exitCode = 1;
  rmSync(home, { recursive: true, force: true });
}
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('./results/peers.json', import.meta.url),
  JSON.stringify({ measuredAt: new Date().toISOString(), results }, null, 2) + '\n',
);
