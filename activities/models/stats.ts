/**
 * The statistics the model stages need and no maintained JavaScript library offers in one place: ranking metrics,
 * calibration, drift measures (PSI, KS, MMD), silhouette, adjusted Rand index and a class-weighted logistic
 * regression. Each is a few lines of textbook formula over typed arrays.
 */

export type Matrix = Float64Array[];

/** Column means and standard deviations (population), with zero spread replaced by 1. */
export function fitScaler(x: Matrix): { mean: number[]; std: number[] } {
  const d = x[0]?.length ?? 0;
  const mean = new Array<number>(d).fill(0);
  const std = new Array<number>(d).fill(0);
  for (const row of x) for (let j = 0; j < d; j++) mean[j]! += row[j]! / x.length;
  for (const row of x) for (let j = 0; j < d; j++) std[j]! += (row[j]! - mean[j]!) ** 2 / x.length;
  return { mean, std: std.map((v) => (v > 1e-12 ? Math.sqrt(v) : 1)) };
}

export function scale(x: Matrix, s: { mean: number[]; std: number[] }): Matrix {
  return x.map((row) => Float64Array.from(row, (v, j) => (v - s.mean[j]!) / s.std[j]!));
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

export interface LogisticModel {
  intercept: number;
  coef: number[];
}

/**
 * Logistic regression with class weights (each class weighs n / (2 · n_class), as scikit-learn's "balanced") and L2
 * penalty `l2` on the coefficients, fitted by Newton's method (IRLS) on standardized inputs.
 */
export function fitLogistic(x: Matrix, y: Uint8Array, l2 = 1, iterations = 25): LogisticModel {
  const n = x.length;
  const d = x[0]?.length ?? 0;
  const pos = y.reduce((a, b) => a + b, 0);
  const w1 = pos ? n / (2 * pos) : 1;
  const w0 = n - pos ? n / (2 * (n - pos)) : 1;
  const beta = new Float64Array(d + 1);
  for (let it = 0; it < iterations; it++) {
    const grad = new Float64Array(d + 1);
    const hess = Array.from({ length: d + 1 }, () => new Float64Array(d + 1));
    for (let i = 0; i < n; i++) {
      const row = x[i]!;
      let z = beta[0]!;
      for (let j = 0; j < d; j++) z += beta[j + 1]! * row[j]!;
      const p = sigmoid(z);
      const w = y[i] ? w1 : w0;
      const g = w * (p - y[i]!);
      const h = w * Math.max(p * (1 - p), 1e-9);
      for (let a = 0; a <= d; a++) {
        const xa = a === 0 ? 1 : row[a - 1]!;
        grad[a]! += g * xa;
        const ha = hess[a]!;
        for (let b = a; b <= d; b++) ha[b]! += h * xa * (b === 0 ? 1 : row[b - 1]!);
      }
    }
    for (let a = 1; a <= d; a++) {
      grad[a]! += l2 * beta[a]!;
      hess[a]![a]! += l2;
    }
    for (let a = 0; a <= d; a++) for (let b = 0; b < a; b++) hess[a]![b] = hess[b]![a]!;
    const step = solve(hess, grad);
    let change = 0;
    for (let a = 0; a <= d; a++) {
      beta[a]! -= step[a]!;
      change = Math.max(change, Math.abs(step[a]!));
    }
    if (change < 1e-8) break;
  }
  return { intercept: beta[0]!, coef: Array.from(beta.slice(1)) };
}

export function predictLogistic(m: LogisticModel, x: Matrix): Float64Array {
  return Float64Array.from(x, (row) => sigmoid(m.intercept + m.coef.reduce((s, c, j) => s + c * row[j]!, 0)));
}

/** Gaussian elimination with partial pivoting (the Hessian is small: features + 1). */
function solve(a: Float64Array[], b: Float64Array): Float64Array {
  const n = b.length;
  const m = a.map((row, i) => Float64Array.from([...row, b[i]!]));
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[p]![c]!)) p = r;
    [m[c], m[p]] = [m[p]!, m[c]!];
    const piv = m[c]![c]! || 1e-12;
    for (let r = c + 1; r < n; r++) {
      const f = m[r]![c]! / piv;
      if (f) for (let k = c; k <= n; k++) m[r]![k]! -= f * m[c]![k]!;
    }
  }
  const out = new Float64Array(n);
  for (let r = n - 1; r >= 0; r--) {
    let s = m[r]![n]!;
    for (let k = r + 1; k < n; k++) s -= m[r]![k]! * out[k]!;
    out[r] = s / (m[r]![r]! || 1e-12);
  }
  return out;
}

/** ROC-AUC by the rank statistic (ties get half credit). */
export function rocAuc(score: ArrayLike<number>, y: ArrayLike<number>): number {
  const idx = Array.from({ length: y.length }, (_, i) => i).sort((a, b) => score[a]! - score[b]!);
  let pos = 0;
  let rankSum = 0;
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && score[idx[j + 1]!] === score[idx[i]!]) j++;
    const rank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) {
      if (y[idx[k]!]) {
        pos++;
        rankSum += rank;
      }
    }
    i = j + 1;
  }
  const neg = y.length - pos;
  return pos && neg ? (rankSum - (pos * (pos + 1)) / 2) / (pos * neg) : NaN;
}

/** PR-AUC as average precision (the step-wise area scikit-learn reports). */
export function averagePrecision(score: ArrayLike<number>, y: ArrayLike<number>): number {
  const idx = Array.from({ length: y.length }, (_, i) => i).sort((a, b) => score[b]! - score[a]!);
  const pos = Array.from(y).reduce((a, b) => a + b, 0);
  if (!pos) return NaN;
  let tp = 0;
  let ap = 0;
  idx.forEach((i, k) => {
    if (y[i]) {
      tp++;
      ap += tp / (k + 1);
    }
  });
  return ap / pos;
}

/** The highest threshold whose recall reaches the target (so precision is as high as the target allows). */
export function thresholdForRecall(score: ArrayLike<number>, y: ArrayLike<number>, target: number): number {
  const pos = Array.from(y).reduce((a, b) => a + b, 0);
  const sorted = Array.from({ length: y.length }, (_, i) => i).sort((a, b) => score[b]! - score[a]!);
  let tp = 0;
  for (const i of sorted) {
    if (y[i]) tp++;
    if (pos && tp / pos >= target) return score[i]!;
  }
  return 0;
}

export function confusionAt(score: ArrayLike<number>, y: ArrayLike<number>, threshold: number) {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let tn = 0;
  for (let i = 0; i < y.length; i++) {
    const p = score[i]! >= threshold;
    if (p && y[i]) tp++;
    else if (p) fp++;
    else if (y[i]) fn++;
    else tn++;
  }
  return {
    tp,
    fp,
    fn,
    tn,
    recall: tp + fn ? tp / (tp + fn) : NaN,
    precision: tp + fp ? tp / (tp + fp) : NaN,
    fpr: fp + tn ? fp / (fp + tn) : NaN,
    positiveRate: y.length ? (tp + fp) / y.length : NaN,
  };
}

export function precisionAtK(score: ArrayLike<number>, y: ArrayLike<number>, k: number): number {
  const idx = Array.from({ length: y.length }, (_, i) => i).sort((a, b) => score[b]! - score[a]!);
  const top = idx.slice(0, Math.max(1, k));
  return top.filter((i) => y[i]).length / top.length;
}

/** Reliability table in equal-width bins, and the Brier score. */
export function calibration(score: ArrayLike<number>, y: ArrayLike<number>, bins = 10) {
  const rows = Array.from({ length: bins }, (_, b) => ({
    from: b / bins,
    to: (b + 1) / bins,
    n: 0,
    predicted: 0,
    observed: 0,
  }));
  let brier = 0;
  for (let i = 0; i < y.length; i++) {
    const b = rows[Math.min(bins - 1, Math.floor(score[i]! * bins))]!;
    b.n++;
    b.predicted += score[i]!;
    b.observed += y[i]!;
    brier += (score[i]! - y[i]!) ** 2;
  }
  return {
    brier: brier / Math.max(1, y.length),
    bins: rows.filter((r) => r.n).map((r) => ({ ...r, predicted: r.predicted / r.n, observed: r.observed / r.n })),
  };
}

/** Quantile bin edges of a reference sample (unique, so zero-inflated measures get fewer, wider bins). */
export function binEdges(values: number[], bins = 10): number[] {
  const s = [...values].sort((a, b) => a - b);
  const edges: number[] = [];
  for (let b = 1; b < bins; b++) {
    const v = s[Math.floor((b * s.length) / bins)];
    if (v !== undefined && !edges.includes(v)) edges.push(v);
  }
  return edges;
}

export function binShares(values: number[], edges: number[]): number[] {
  const counts = new Array<number>(edges.length + 1).fill(0);
  for (const v of values) {
    let b = 0;
    while (b < edges.length && v > edges[b]!) b++;
    counts[b]!++;
  }
  return counts.map((c) => c / Math.max(1, values.length));
}

/** Population stability index between reference and current bin shares (shares floored at 1e-4). */
export function psi(reference: number[], current: number[]): number {
  return reference.reduce((s, r, i) => {
    const a = Math.max(r, 1e-4);
    const b = Math.max(current[i] ?? 0, 1e-4);
    return s + (b - a) * Math.log(b / a);
  }, 0);
}

/** Two-sample Kolmogorov–Smirnov statistic (largest gap between the empirical CDFs). */
export function ks(a: number[], b: number[]): number {
  const x = [...a].sort((p, q) => p - q);
  const y = [...b].sort((p, q) => p - q);
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < x.length && j < y.length) {
    const v = Math.min(x[i]!, y[j]!);
    while (i < x.length && x[i]! <= v) i++;
    while (j < y.length && y[j]! <= v) j++;
    d = Math.max(d, Math.abs(i / x.length - j / y.length));
  }
  return d;
}

function sqDist(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return s;
}

/** Unbiased MMD² with an RBF kernel whose width is the median pairwise distance of the pooled samples. */
export function mmd2(a: ArrayLike<number>[], b: ArrayLike<number>[]): number {
  if (a.length < 2 || b.length < 2) return 0;
  const pooled = [...a, ...b];
  const ds: number[] = [];
  for (let i = 0; i < pooled.length; i += 3)
    for (let j = i + 1; j < pooled.length; j += 7) ds.push(sqDist(pooled[i]!, pooled[j]!));
  ds.sort((p, q) => p - q);
  const gamma = 1 / Math.max(ds[Math.floor(ds.length / 2)] ?? 1, 1e-12);
  const k = (p: ArrayLike<number>, q: ArrayLike<number>) => Math.exp(-gamma * sqDist(p, q));
  let xx = 0;
  let yy = 0;
  let xy = 0;
  for (let i = 0; i < a.length; i++) for (let j = 0; j < a.length; j++) if (i !== j) xx += k(a[i]!, a[j]!);
  for (let i = 0; i < b.length; i++) for (let j = 0; j < b.length; j++) if (i !== j) yy += k(b[i]!, b[j]!);
  for (const p of a) for (const q of b) xy += k(p, q);
  return xx / (a.length * (a.length - 1)) + yy / (b.length * (b.length - 1)) - (2 * xy) / (a.length * b.length);
}

/** Mean silhouette over (at most `sample`) points, deterministic sample. */
export function silhouette(x: Matrix, labels: number[], sample = 1500): number {
  const n = x.length;
  const step = Math.max(1, Math.floor(n / sample));
  const pick: number[] = [];
  for (let i = 0; i < n; i += step) pick.push(i);
  const k = Math.max(...labels) + 1;
  let total = 0;
  let counted = 0;
  for (const i of pick) {
    const sums = new Array<number>(k).fill(0);
    const counts = new Array<number>(k).fill(0);
    for (const j of pick) {
      if (i === j) continue;
      sums[labels[j]!]! += Math.sqrt(sqDist(x[i]!, x[j]!));
      counts[labels[j]!]!++;
    }
    const own = labels[i]!;
    if (!counts[own]) continue;
    const a = sums[own]! / counts[own]!;
    let b = Infinity;
    for (let c = 0; c < k; c++) if (c !== own && counts[c]) b = Math.min(b, sums[c]! / counts[c]!);
    if (!Number.isFinite(b)) continue;
    total += (b - a) / Math.max(a, b);
    counted++;
  }
  return counted ? total / counted : 0;
}

/** Adjusted Rand index between two labelings. */
export function adjustedRandIndex(a: (string | number)[], b: (string | number)[]): number {
  const table = new Map<string, number>();
  const ra = new Map<string | number, number>();
  const rb = new Map<string | number, number>();
  a.forEach((x, i) => {
    const key = `${x}\u0000${b[i]}`;
    table.set(key, (table.get(key) ?? 0) + 1);
    ra.set(x, (ra.get(x) ?? 0) + 1);
    rb.set(b[i]!, (rb.get(b[i]!) ?? 0) + 1);
  });
  const c2 = (n: number) => (n * (n - 1)) / 2;
  const sumIj = [...table.values()].reduce((s, n) => s + c2(n), 0);
  const sumA = [...ra.values()].reduce((s, n) => s + c2(n), 0);
  const sumB = [...rb.values()].reduce((s, n) => s + c2(n), 0);
  const expected = (sumA * sumB) / c2(a.length);
  const max = (sumA + sumB) / 2;
  return max === expected ? 1 : (sumIj - expected) / (max - expected);
}

/** A stable pseudo-random number in [0, 1) from a string (for splits and samples that must not change between runs). */
export function stableUnit(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return (h >>> 0) / 2 ** 32;
}
