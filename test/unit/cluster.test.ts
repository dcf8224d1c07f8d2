import { beforeAll, describe, expect, it } from 'vitest';
import { assignClusters, dbscan, hierarchical, kmeansSeeded } from '../../activities/models/cluster.js';
import { loadMl } from '../../activities/models/ml.js';
import { adjustedRandIndex } from '../../activities/models/stats.js';

beforeAll(() => loadMl());

/** Three well-separated blobs of 300 points in 4 dimensions, deterministic. */
function blobs(): { rows: number[][]; truth: number[] } {
  let seed = 3;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const rows: number[][] = [];
  const truth: number[] = [];
  for (let i = 0; i < 900; i++) {
    const c = i % 3;
    rows.push([c * 6 + rnd(), (c === 1 ? 6 : 0) + rnd(), rnd(), rnd()]);
    truth.push(c);
  }
  return { rows, truth };
}

describe('segment clusterers', () => {
  const { rows, truth } = blobs();

  it('k-means with sampled seeds recovers the groups', () => {
    expect(adjustedRandIndex(truth, kmeansSeeded(rows, 3, 1).clusters)).toBeGreaterThan(0.95);
  });

  it('Ward hierarchical clustering recovers the groups and places rows by centroid', () => {
    const model = hierarchical(rows, 3);
    expect(model.centroids).toHaveLength(3);
    expect(adjustedRandIndex(truth, assignClusters(model, rows))).toBeGreaterThan(0.95);
  });

  it('DBSCAN finds the dense groups and leaves a far-away point unsegmented', () => {
    const model = dbscan(rows);
    expect(model.centroids).toHaveLength(3);
    const labels = assignClusters(model, [...rows, [40, 40, 40, 40]]);
    expect(labels.at(-1)).toBe(-1);
    const placed = labels
      .slice(0, -1)
      .map((c, i) => ({ c, t: truth[i]! }))
      .filter((x) => x.c >= 0);
    expect(placed.length).toBeGreaterThan(rows.length * 0.9);
    expect(
      adjustedRandIndex(
        placed.map((x) => x.t),
        placed.map((x) => x.c),
      ),
    ).toBeGreaterThan(0.95);
  });
});
