import { ml } from './ml.js';

/** Rows used to place k-means seeds, and to fit the quadratic-cost clusterers (hierarchical, DBSCAN). */
const SAMPLE_ROWS = 2000;

export type SegmentAlgorithm = 'kmeans' | 'hierarchical' | 'dbscan';

/**
 * A fitted clustering that can place new rows: by nearest centroid (k-means, hierarchical), or for DBSCAN by the
 * cluster of the nearest clustered sample point when it lies within eps — farther rows are noise (-1).
 */
export interface ClusterModel {
  algorithm: SegmentAlgorithm;
  centroids: number[][];
  cores?: { point: number[]; cluster: number }[];
  eps?: number;
}

function sampleRows(rows: number[][]): number[][] {
  const step = Math.max(1, Math.floor(rows.length / SAMPLE_ROWS));
  return step > 1 ? rows.filter((_, i) => i % step === 0) : rows;
}

const dist2 = (a: number[], b: number[]) => a.reduce((s, v, j) => s + (v - b[j]!) ** 2, 0);

function nearest(points: number[][], r: number[]): { index: number; d2: number } {
  let index = 0;
  let d2 = Infinity;
  points.forEach((p, i) => {
    const d = dist2(p, r);
    if (d < d2) {
      d2 = d;
      index = i;
    }
  });
  return { index, d2 };
}

function means(rows: number[][], groups: number[][]): number[][] {
  return groups.map((g) => rows[0]!.map((_, j) => g.reduce((s, i) => s + rows[i]![j]!, 0) / g.length));
}

export function assignClusters(model: ClusterModel, rows: number[][]): number[] {
  if (model.algorithm !== 'dbscan') return rows.map((r) => nearest(model.centroids, r).index);
  const points = model.cores!.map((c) => c.point);
  return rows.map((r) => {
    const n = nearest(points, r);
    return n.d2 <= model.eps! ** 2 ? model.cores![n.index]!.cluster : -1;
  });
}

/**
 * k-means with good initial centres: ml-kmeans' k-means++ start costs O(n²) distance work, so it runs on an evenly
 * spaced sample of the rows, and Lloyd iterations over all rows start from the centres it found.
 */
export function kmeansSeeded(rows: number[][], k: number, seed: number): { clusters: number[]; centroids: number[][] } {
  const { kmeans } = ml();
  const start = kmeans(sampleRows(rows), k, { seed, initialization: 'kmeans++', maxIterations: 100 }).centroids;
  const r = kmeans(rows, k, { seed, initialization: start, maxIterations: 100 });
  return { clusters: r.clusters, centroids: r.centroids };
}

/** Ward-linkage agglomerative clustering (ml-hclust) of a sample, cut into k groups; all rows by nearest centroid. */
export function hierarchical(rows: number[][], k: number): ClusterModel {
  const sample = sampleRows(rows);
  const tree = ml().agnes(sample, { method: 'ward' });
  const groups = tree.group(k).children.map((c) => c.indices());
  return { algorithm: 'hierarchical', centroids: means(sample, groups) };
}

/**
 * DBSCAN (density-clustering) on a sample. eps is the 90th percentile of each point's distance to its minPts-th
 * neighbour unless given: dense groups become clusters, sparse points noise.
 */
export function dbscan(rows: number[][], minPts = 10, eps?: number): ClusterModel {
  const sample = sampleRows(rows);
  const radius =
    eps ??
    (() => {
      const kd = sample
        .map((p) => sample.map((q) => dist2(p, q)).sort((a, b) => a - b)[Math.min(minPts, sample.length - 1)]!)
        .sort((a, b) => a - b);
      return Math.sqrt(kd[Math.floor(kd.length * 0.9)] ?? 1);
    })();
  const db = new (ml().DBSCAN)();
  const clusters = db.run(sample, radius, minPts, (p, q) => Math.sqrt(dist2(p, q)));
  const cores = clusters.flatMap((members, c) => members.map((i) => ({ point: sample[i]!, cluster: c })));
  return { algorithm: 'dbscan', centroids: means(sample, clusters), cores, eps: radius };
}
