// npm run bench:models — embeddings per second for short texts (edlake's encoder against the same model and inputs
// through Python onnxruntime) and k-means on 100k students (ml-kmeans against scikit-learn KMeans), as ratios.
// The Python peers run in a virtual environment under the cache folder, built from bench/peers/requirements.txt.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Encoder } from '../activities/embeddings/encoder.js';
import { kmeansSeeded } from '../activities/models/cluster.js';
import { loadMl } from '../activities/models/ml.js';
import { loadConfig } from '../config/index.js';
import { modelDir } from '../scripts/model.js';
import { peersPython } from './python.js';

const config = loadConfig();
const peers = fileURLToPath(new URL('./peers/', import.meta.url));
const python = peersPython(config);
const work = join(config.home, 'bench', 'models');
mkdirSync(work, { recursive: true });

// Embeddings: short behaviour-like texts, same order, same batch size and threads on both sides.
const texts = Array.from(
  { length: 2000 },
  (_, i) =>
    `practised ${i % 17} problems, ${(i * 7) % 100}% correct | watched lecture ${i % 12}, ${(i * 13) % 100}% | wrote ${i % 3} replies in the forum`,
);
writeFileSync(join(work, 'texts.json'), JSON.stringify(texts));
await loadMl();
const enc = await Encoder.open(config);
await enc.embed(texts.slice(0, 64));
let t = process.hrtime.bigint();
await enc.embed(texts);
const edlakeEmb = texts.length / (Number(process.hrtime.bigint() - t) / 1e9);
await enc.close();
const py = spawnSync(
  python,
  [
    join(peers, 'embed.py'),
    modelDir(config),
    '--texts',
    join(work, 'texts.json'),
    '--threads',
    String(config.embeddings.threads),
    '--batch',
    String(config.embeddings.batchSize),
  ],
  { encoding: 'utf8' },
);
if (py.status !== 0) throw new Error(`embed.py failed: ${py.stderr}`);
const pyEmb = (JSON.parse(py.stdout.trim().split('\n').pop()!) as { per_second: number }).per_second;

// k-means: 100k students × 11 inputs (7 behaviour inputs + 4 embedding components), 4 planted groups.
const n = 100_000;
let seed = 7;
const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
const matrix = Array.from({ length: n }, (_, i) =>
  Array.from({ length: 11 }, (_, j) => (i % 4 === j % 4 ? 1.5 : 0) + rnd()),
);
writeFileSync(join(work, 'matrix.json'), JSON.stringify(matrix));
t = process.hrtime.bigint();
kmeansSeeded(matrix, 4, 42);
const edlakeKm = Number(process.hrtime.bigint() - t) / 1e9;
const km = spawnSync(python, [join(peers, 'kmeans.py'), join(work, 'matrix.json'), '4'], { encoding: 'utf8' });
if (km.status !== 0) throw new Error(`kmeans.py failed: ${km.stderr}`);
const pyKm = (JSON.parse(km.stdout.trim()) as { seconds: number }).seconds;

const result = {
  measuredAt: new Date().toISOString(),
  embeddings: {
    texts: texts.length,
    edlakePerSecond: edlakeEmb,
    pythonPerSecond: pyEmb,
    ratio: edlakeEmb / pyEmb,
    target: '>= 0.8',
  },
  kmeans: { rows: n, k: 4, edlakeSeconds: edlakeKm, sklearnSeconds: pyKm, ratio: edlakeKm / pyKm, target: '<= 2' },
};
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/models.json', import.meta.url), JSON.stringify(result, null, 2) + '\n');
console.log(
  `embeddings: edlake ${edlakeEmb.toFixed(0)} texts/s, Python onnxruntime ${pyEmb.toFixed(0)} texts/s → ${(edlakeEmb / pyEmb).toFixed(2)}× (target ≥ 0.8×)`,
);
console.log(
  `k-means 100k × 11, k=4: edlake (ml-kmeans, sampled k-means++ start) ${edlakeKm.toFixed(2)} s, scikit-learn ${pyKm.toFixed(2)} s → ${(edlakeKm / pyKm).toFixed(2)}× the time (target ≤ 2×)`,
);
