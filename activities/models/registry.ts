import type { ObjectStore } from '../../lake/store.js';

export type ModelName = 'risk' | 'segments';
export const MODEL_NAMES: ModelName[] = ['risk', 'segments'];

/** What every registered version carries besides its artifact. */
export interface ModelCard {
  name: ModelName;
  version: number;
  algorithm: string;
  trainedAt: string;
  /** The as-of date of the features it learned from, and the lookback they cover. */
  trainingWindow: { asOf: string; from: string; to: string };
  /** sha256 of the feature names and types it expects, in order. */
  featureSchemaHash: string;
  /** Lake partitions read for training (URIs with their manifest write ids). */
  inputs: string[];
  /** Risk: where its labels came from (outcomes at the prediction horizon, or earlier-term outcomes). */
  labels?: { source: string; horizonDays: number; examples: number; why: string };
  metrics: Record<string, unknown>;
  fairness: Record<string, unknown>;
  /** Why it was trained (no model yet, drift, age) and what happened to it. */
  reason: string;
  decision?: { promoted: boolean; why: string; decidedAt: string; champion: number | null };
}

const dir = (name: ModelName, v: number) => `models/${name}/v${v}/`;

/**
 * Versioned models in the lake: `models/<name>/v<k>/` holds `card.json` (metrics, fairness audit, training window,
 * feature-schema hash, inputs) and `artifact.json`; `models/<name>/current.json` points at the champion. A version is
 * complete when its card exists (written last).
 */
export class ModelRegistry {
  constructor(private readonly store: ObjectStore) {}

  async versions(name: ModelName): Promise<number[]> {
    const prefixes = await this.store.listPrefixes(`models/${name}/`);
    const out: number[] = [];
    for (const p of prefixes) {
      const m = /\/v(\d+)\/$/.exec(p);
      if (m && (await this.store.exists(`${p}card.json`))) out.push(Number(m[1]));
    }
    return out.sort((a, b) => a - b);
  }

  async card(name: ModelName, version: number): Promise<ModelCard | null> {
    const b = await this.store.getBytes(`${dir(name, version)}card.json`);
    return b ? (JSON.parse(b.toString('utf8')) as ModelCard) : null;
  }

  async artifact<T>(name: ModelName, version: number): Promise<T> {
    const b = await this.store.getBytes(`${dir(name, version)}artifact.json`);
    if (!b) throw new Error(`model ${name} v${version} has no artifact`);
    return JSON.parse(b.toString('utf8')) as T;
  }

  async current(name: ModelName): Promise<number | null> {
    const b = await this.store.getBytes(`models/${name}/current.json`);
    return b ? (JSON.parse(b.toString('utf8')) as { version: number }).version : null;
  }

  /**
   * Registers a version: artifact first, card last. `key` makes it idempotent: a retried training with the same key
   * finds its earlier version instead of adding another.
   */
  async register(card: Omit<ModelCard, 'version'>, artifact: unknown, key: string): Promise<number> {
    for (const v of await this.versions(card.name)) {
      const c = await this.card(card.name, v);
      if ((c as ModelCard & { key?: string })?.key === key) return v;
    }
    const all = await this.store.listPrefixes(`models/${card.name}/`);
    const taken = all.map((p) => Number(/\/v(\d+)\/$/.exec(p)?.[1] ?? 0));
    const version = Math.max(0, ...taken) + 1;
    await this.store.putBytes(`${dir(card.name, version)}artifact.json`, JSON.stringify(artifact));
    await this.store.putBytes(
      `${dir(card.name, version)}card.json`,
      JSON.stringify({ ...card, version, key }, null, 2),
    );
    return version;
  }

  async decide(name: ModelName, version: number, decision: NonNullable<ModelCard['decision']>): Promise<void> {
    const card = await this.card(name, version);
    if (!card) throw new Error(`model ${name} v${version} does not exist`);
    await this.store.putBytes(`${dir(name, version)}card.json`, JSON.stringify({ ...card, decision }, null, 2));
    if (decision.promoted) {
      await this.store.putBytes(
        `models/${name}/current.json`,
        JSON.stringify({ version, promotedAt: decision.decidedAt }),
      );
    }
  }
}
