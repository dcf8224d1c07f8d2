import { kmeans } from 'ml-kmeans';

/** Rows used to place the k-means++ seeds: enough to find every sizeable cluster, few enough to be cheap. */
const SEED_SAMPLE = 2000;

/**
 * k-means with good initial centres: ml-kmeans' k-means++ start costs O(n²) distance work, so it runs on an evenly
 * spaced sample of the rows, and Lloyd iterations over all rows start from the centres it found.
 */
export function kmeansSeeded(rows: number[][], k: number, seed: number): { clusters: number[]; centroids: number[][] } {
  const step = Math.max(1, Math.floor(rows.length / SEED_SAMPLE));
  const sample = step > 1 ? rows.filter((_, i) => i % step === 0) : rows;
  const start = kmeans(sample, k, { seed, initialization: 'kmeans++', maxIterations: 100 }).centroids;
  const r = kmeans(rows, k, { seed, initialization: start, maxIterations: 100 });
  return { clusters: r.clusters, centroids: r.centroids };
}
