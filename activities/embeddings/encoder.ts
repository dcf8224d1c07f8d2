import { Worker } from 'node:worker_threads';
import type { Config } from '../../config/index.js';
import { EMBEDDING_MODEL, installModel } from '../../scripts/model.js';

export interface EmbedResult {
  /** One L2-normalised vector per input, in input order. */
  vectors: Float32Array[];
  /** Inputs cut to the model's token limit. */
  truncated: number;
  /** Token count per input (after truncation, with [CLS] and [SEP]). */
  tokens: number[];
}

interface Reply {
  id: number;
  vectors?: Float32Array;
  tokens?: number[];
  truncated?: number;
  error?: string;
}

/**
 * all-MiniLM-L6-v2 (int8 ONNX) on CPU in a worker thread. Inputs are sorted by length and batched so that each batch
 * is padded only to its own longest input; results come back in input order.
 */
export class Encoder {
  readonly modelId = EMBEDDING_MODEL.id;
  readonly dimensions = EMBEDDING_MODEL.dimensions;
  private next = 0;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();

  private constructor(
    private readonly worker: Worker,
    private readonly batchSize: number,
  ) {
    worker.on('message', (m: Reply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error) p.reject(new Error(`embedding failed: ${m.error}`));
      else p.resolve(m);
    });
    worker.on('error', (e) => {
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    });
  }

  static async open(config: Config): Promise<Encoder> {
    const modelDir = await installModel(config);
    const worker = new Worker(new URL('./encoder-worker.mjs', import.meta.url), {
      workerData: {
        modelDir,
        threads: config.embeddings.threads,
        maxTokens: EMBEDDING_MODEL.maxTokens,
        dimensions: EMBEDDING_MODEL.dimensions,
      },
    });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: { ready?: boolean }) => {
        if (m.ready) {
          worker.off('error', reject);
          resolve();
        }
      };
      worker.once('message', onMessage);
      worker.once('error', reject);
    });
    return new Encoder(worker, config.embeddings.batchSize);
  }

  private run(texts: string[]): Promise<Reply> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, texts });
    });
  }

  async embed(texts: string[], onBatch?: (done: number) => void): Promise<EmbedResult> {
    const order = texts.map((t, i) => ({ i, n: t.length })).sort((a, b) => a.n - b.n);
    const vectors = new Array<Float32Array>(texts.length);
    const tokens = new Array<number>(texts.length);
    let truncated = 0;
    for (let s = 0; s < order.length; s += this.batchSize) {
      const batch = order.slice(s, s + this.batchSize);
      const r = await this.run(batch.map((b) => texts[b.i]!));
      batch.forEach((b, k) => {
        vectors[b.i] = r.vectors!.slice(k * this.dimensions, (k + 1) * this.dimensions);
        tokens[b.i] = r.tokens![k]!;
      });
      truncated += r.truncated ?? 0;
      onBatch?.(Math.min(s + this.batchSize, order.length));
    }
    return { vectors, truncated, tokens };
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

export function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!;
  return dot;
}
