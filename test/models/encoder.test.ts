import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cosine, Encoder } from '../../activities/embeddings/encoder.js';
import { loadConfig } from '../../config/index.js';

const reference = JSON.parse(
  readFileSync(new URL('../fixtures/embedding-reference.json', import.meta.url), 'utf8'),
) as {
  texts: string[];
  vectors: number[][];
};

describe('sentence encoder (all-MiniLM-L6-v2 int8, onnxruntime-node in a worker thread)', () => {
  let enc: Encoder;
  beforeAll(async () => {
    enc = await Encoder.open(loadConfig());
  }, 300_000);
  afterAll(async () => enc?.close());

  it('places paraphrases closer than unrelated sentences', async () => {
    const { vectors: v } = await enc.embed([
      'The student watched the whole lecture video on photosynthesis.',
      'A learner viewed the entire recorded class about how plants make energy.',
      'The invoice for the office chairs is three weeks overdue.',
      'She submitted the statistics quiz late after three attempts.',
      'Her stats test was handed in after the deadline, on the third try.',
    ]);
    expect(cosine(v[0]!, v[1]!)).toBeGreaterThan(cosine(v[0]!, v[2]!) + 0.3);
    expect(cosine(v[3]!, v[4]!)).toBeGreaterThan(cosine(v[3]!, v[2]!) + 0.3);
    expect(cosine(v[3]!, v[4]!)).toBeGreaterThan(cosine(v[3]!, v[0]!));
  });

  it('matches the Python onnxruntime + tokenizers reference vectors', async () => {
    const { vectors } = await enc.embed(reference.texts);
    reference.vectors.forEach((ref, i) => {
      const v = vectors[i]!;
      expect(v.length).toBe(384);
      const maxDiff = Math.max(...ref.map((x, d) => Math.abs(x - v[d]!)));
      expect(maxDiff).toBeLessThan(1e-4);
      let norm = 0;
      for (const x of v) norm += x * x;
      expect(Math.sqrt(norm)).toBeCloseTo(1, 5);
    });
  });

  it('returns results in input order whatever the batching, and counts truncations', async () => {
    const long = Array.from({ length: 400 }, (_, i) => `word${i}`).join(' ');
    const texts = ['short one', long, 'a slightly longer sentence about video watching', 'x'];
    const all = await enc.embed(texts);
    const single = await Promise.all(texts.map(async (t) => (await enc.embed([t])).vectors[0]!));
    all.vectors.forEach((v, i) => expect(cosine(v, single[i]!)).toBeGreaterThan(0.9999));
    expect(all.truncated).toBe(1);
    expect(all.tokens[1]).toBe(256);
  });
});
