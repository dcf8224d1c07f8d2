// npm run bench -- [--sizes 1000000,10000000] [--days 10]
// Generates (once, cached) a raw drop of the given number of events, LMS log events the bulk and the other sources in
// proportion, then times bronze → silver → timeline → gold over its days in a fresh process: rows/s and peak RSS.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../config/index.js';
import { benchDrop } from './drop.js';
import { arg } from './args.js';

const sizes = arg('sizes', '1000000,10000000').split(',').map(Number);
const days = Number(arg('days', '10'));
const config = loadConfig();

const results: unknown[] = [];
for (const size of sizes) {
  const { dir, students } = await benchDrop(config, size, days);
  const home = join(config.home, 'bench', `run-${students}x${days}`);
  rmSync(home, { recursive: true, force: true });
  process.stderr.write(`running stages over ${dir}\n`);
  const t0 = Date.now();
  const res = spawnSync(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(new URL('./stages.ts', import.meta.url)), dir, home],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      encoding: 'utf8',
      maxBuffer: 1 << 24,
    },
  );
  if (res.status !== 0) throw new Error(`bench stages failed with ${String(res.status)}`);
  const r = JSON.parse(res.stdout.trim().split('\n').pop()!) as {
    raw: number;
    peakRssMb: number;
    stages: Record<string, { seconds: number; cpuSeconds: number; rows: number; peakRssMb: number }>;
  };
  const total = Object.values(r.stages).reduce((n, s) => n + s.seconds, 0);
  results.push({
    events: r.raw,
    students,
    days,
    totalSeconds: total,
    eventsPerSecond: r.raw / total,
    peakRssMb: r.peakRssMb,
    stages: r.stages,
    wallSeconds: (Date.now() - t0) / 1000,
  });
  console.log(
    `\n${r.raw.toLocaleString()} events (${students} students × ${days} days): ${total.toFixed(1)} s bronze → gold, ${Math.round(r.raw / total).toLocaleString()} events/s, peak RSS ${r.peakRssMb} MB`,
  );
  console.log('stage      seconds   CPU s   rows          rows/s      peak RSS MB');
  for (const [name, s] of Object.entries(r.stages)) {
    console.log(
      `${name.padEnd(10)} ${s.seconds.toFixed(1).padStart(7)} ${s.cpuSeconds.toFixed(1).padStart(7)}   ${String(s.rows).padEnd(12)}  ${Math.round(
        s.rows / Math.max(s.seconds, 1e-9),
      )
        .toString()
        .padStart(10)}  ${String(s.peakRssMb).padStart(8)}`,
    );
  }
  rmSync(home, { recursive: true, force: true });
}
// Time against size: seconds per million events at each size, relative to the smallest (1.0 = linear).
const sized = results as { events: number; totalSeconds: number }[];
if (sized.length > 1) {
  const unit = (r: { events: number; totalSeconds: number }) => r.totalSeconds / (r.events / 1e6);
  console.log('\ntime against size   seconds per 1 M events   against the smallest size');
  for (const r of sized)
    console.log(
      `${(r.events / 1e6).toFixed(1).padStart(6)} M events   ${unit(r).toFixed(1).padStart(22)}   ${(unit(r) / unit(sized[0]!)).toFixed(2).padStart(25)}×`,
    );
}
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('./results/pipeline.json', import.meta.url),
  JSON.stringify({ measuredAt: new Date().toISOString(), results }, null, 2) + '\n',
);
