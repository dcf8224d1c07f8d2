// npm run bench [-- --sizes 1000000,10000000 --days 10 --skip-models --skip-peers]
// The pipeline benchmark (bench/pipeline.ts: rows/s and peak RSS per stage), then the model stages against their
// Python peers (bench/models.ts: embeddings/s and k-means time, as ratios) and the pipeline against the pandas peer
// (bench/peers.ts: time and memory ratios on the same LMS exports), each in its own process.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--skip-'));
const run = (script: string, extra: string[]) => {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(new URL(script, import.meta.url)), ...extra],
    {
      stdio: 'inherit',
    },
  );
  if (r.status !== 0) process.exit(r.status ?? 1);
};
run('./pipeline.ts', args);
if (!process.argv.includes('--skip-models')) run('./models.ts', []);
if (!process.argv.includes('--skip-peers')) run('./peers.ts', args);
