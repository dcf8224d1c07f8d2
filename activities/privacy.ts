import { createHash } from 'node:crypto';
import type { Config } from '../config/index.js';

/** A published count: the value (noised when ε is set), or null when the group is too small to show. */
export interface PublishedCount {
  value: number | null;
  suppressed: boolean;
}

/** Laplace(0, 1/ε) from a uniform in (0, 1) derived from the seed: the same output for the same published count. */
function laplace(seed: string, epsilon: number): number {
  const h = createHash('sha256').update(seed).digest();
  const u = (h.readUInt32BE(0) + 0.5) / 2 ** 32 - 0.5;
  return -(1 / epsilon) * Math.sign(u) * Math.log(1 - 2 * Math.abs(u));
}

/**
 * How every aggregate leaves edlake: a group of fewer than `minGroupSize` students is suppressed (null), and with ε
 * set the count gets Laplace noise of scale 1/ε (a count query has sensitivity 1), rounded and never below zero. The
 * seed names the count, so re-publishing gives the same noise rather than averaging it away.
 */
export function publishCount(config: Config, n: number, seed: string): PublishedCount {
  const { minGroupSize, epsilon } = config.privacy;
  if (n > 0 && n < minGroupSize) return { value: null, suppressed: true };
  if (!epsilon) return { value: n, suppressed: false };
  return { value: Math.max(0, Math.round(n + laplace(seed, epsilon))), suppressed: false };
}

/** The sentence every output with aggregates carries. */
export function privacyStatement(config: Config): string {
  const { minGroupSize, epsilon } = config.privacy;
  return (
    `Groups of fewer than ${minGroupSize} students are suppressed.` +
    (epsilon ? ` Counts carry Laplace noise with ε = ${epsilon} (differential privacy).` : ' Counts are exact.')
  );
}
