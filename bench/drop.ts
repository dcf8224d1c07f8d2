import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import type { Config } from '../config/index.js';
import { generate, GENERATOR_VERSION } from '../generator/index.js';
import { DEFAULT_KNOBS, type GeneratorKnobs } from '../generator/knobs.js';

/** LMS log exports carry most events; the rest of the sources keep their usual shares. */
export const BENCH_KNOBS: GeneratorKnobs = {
  ...DEFAULT_KNOBS,
  perActiveDay: { xapi: 4, caliper: 2, lmsCsv: 24 },
  sensorShare: 0.05,
};
/** Measured mean raw records per student and day with BENCH_KNOBS (all sources). */
export const EVENTS_PER_STUDENT_DAY = 18.6;

/** The benchmark drop of about `size` events over `days` days: generated once, cached under the cache folder. */
export async function benchDrop(
  config: Config,
  size: number,
  days: number,
): Promise<{ dir: string; students: number }> {
  return studentsDrop(config, Math.max(50, Math.round(size / days / EVENTS_PER_STUDENT_DAY)), days);
}

/** The benchmark drop of `students` students over `days` days, generated once and cached. */
export async function studentsDrop(
  config: Config,
  students: number,
  days: number,
): Promise<{ dir: string; students: number }> {
  const dir = join(config.cacheDir, 'bench', `drop-v${GENERATOR_VERSION}-${students}x${days}`);
  if (!existsSync(join(dir, '_generator.json'))) {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const bar = new cliProgress.SingleBar(
      { format: `generate ${students} students × ${days} days [{bar}] {value}/{total} days`, stream: process.stderr },
      cliProgress.Presets.shades_classic,
    );
    bar.start(days, 0);
    await generate({
      out: dir,
      students,
      days,
      start: '2026-09-14',
      seed: 1,
      knobs: BENCH_KNOBS,
      onProgress: (d) => bar.update(d),
    });
    bar.stop();
  }
  return { dir, students };
}
