import { describe, expect, it } from 'vitest';
import {
  adjustedRandIndex,
  averagePrecision,
  binEdges,
  binShares,
  fitLogistic,
  fitScaler,
  ks,
  mmd2,
  predictLogistic,
  psi,
  rocAuc,
  scale,
  silhouette,
  thresholdForRecall,
} from '../../activities/models/stats.js';

describe('model statistics', () => {
  it('ROC-AUC and average precision match hand-computed values', () => {
    const score = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
    const y = [1, 0, 1, 0, 0, 1];
    // Positive/negative pairs ranked correctly: (0.9>all 3 neg)=3, (0.7>0.6,0.5)=2, (0.4)=0 → 5/9.
    expect(rocAuc(score, y)).toBeCloseTo(5 / 9, 10);
    // Precision at each positive: 1/1, 2/3, 3/6 → mean.
    expect(averagePrecision(score, y)).toBeCloseTo((1 + 2 / 3 + 0.5) / 3, 10);
    expect(rocAuc([1, 1, 1, 1], [1, 0, 1, 0])).toBeCloseTo(0.5, 10);
  });

  it('picks the highest threshold that reaches the target recall', () => {
    expect(thresholdForRecall([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [1, 0, 1, 0, 0, 1], 0.6)).toBe(0.7);
  });

  it('class-weighted logistic regression separates a planted signal', () => {
    const x: Float64Array[] = [];
    const y: number[] = [];
    for (let i = 0; i < 400; i++) {
      const a = Math.sin(i * 12.9898) * 0.5 + Math.cos(i * 3.1) * 0.5;
      const b = Math.sin(i * 78.233);
      x.push(Float64Array.from([a, b]));
      y.push(a + 0.2 * b > 0.4 ? 1 : 0);
    }
    const s = fitScaler(x);
    const m = fitLogistic(scale(x, s), Uint8Array.from(y));
    expect(m.coef[0]!).toBeGreaterThan(m.coef[1]!);
    expect(rocAuc(predictLogistic(m, scale(x, s)), y)).toBeGreaterThan(0.95);
  });

  it('PSI and KS are zero for the same sample and large for a shifted one', () => {
    const ref = Array.from({ length: 1000 }, (_, i) => (i % 100) / 10);
    const edges = binEdges(ref);
    expect(psi(binShares(ref, edges), binShares(ref, edges))).toBeCloseTo(0, 10);
    const shifted = ref.map((v) => v + 5);
    expect(psi(binShares(ref, edges), binShares(shifted, edges))).toBeGreaterThan(1);
    expect(ks(ref, ref)).toBe(0);
    expect(ks(ref, shifted)).toBeCloseTo(0.5, 1);
  });

  it('MMD² is near zero for samples of one distribution and clearly positive across two', () => {
    const a = Array.from({ length: 60 }, (_, i) => [Math.sin(i), Math.cos(i * 1.3)]);
    const b = Array.from({ length: 60 }, (_, i) => [Math.sin(i + 0.5), Math.cos(i * 1.3 + 0.5)]);
    const far = a.map(([x, y]) => [x! + 3, y! + 3]);
    expect(Math.abs(mmd2(a, b))).toBeLessThan(0.05);
    expect(mmd2(a, far)).toBeGreaterThan(0.5);
  });

  it('silhouette and adjusted Rand index score a clean clustering high and a scrambled one low', () => {
    const x = Array.from({ length: 90 }, (_, i) =>
      Float64Array.from([Math.floor(i / 30) * 10 + (i % 7) * 0.1, (i % 5) * 0.1]),
    );
    const truth = x.map((_, i) => Math.floor(i / 30));
    expect(silhouette(x, truth)).toBeGreaterThan(0.9);
    expect(
      adjustedRandIndex(
        truth,
        truth.map((t) => (t + 1) % 3),
      ),
    ).toBeCloseTo(1, 10);
    expect(
      Math.abs(
        adjustedRandIndex(
          truth,
          x.map((_, i) => i % 3),
        ),
      ),
    ).toBeLessThan(0.1);
  });
});
