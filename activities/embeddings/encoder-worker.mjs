// The inference thread: tokenizes and runs the sentence-embedding model off the main thread, so a worker's event
// loop (Temporal heartbeats, activity completions) keeps running while onnxruntime computes.
// Protocol: { id, texts } → { id, vectors (Float32Array, n × dim, transferred), tokens (per text), truncated }.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { Tokenizer } from '@huggingface/tokenizers';
import * as ort from 'onnxruntime-node';

const { modelDir, threads, maxTokens, dimensions } = workerData;
const tokenizer = new Tokenizer(
  JSON.parse(readFileSync(join(modelDir, 'tokenizer.json'), 'utf8')),
  JSON.parse(readFileSync(join(modelDir, 'tokenizer_config.json'), 'utf8')),
);
const session = await ort.InferenceSession.create(join(modelDir, 'model.onnx'), {
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
  // Idle threads sleep instead of spinning: the worker shares two cores with DuckDB.
  extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
});
const sepId = tokenizer.encode('', { add_special_tokens: true }).ids.at(-1);

/** Token ids with [CLS] … [SEP], cut to the model's limit (keeping [SEP] last). */
function encode(text) {
  const ids = tokenizer.encode(text, { add_special_tokens: true }).ids;
  if (ids.length <= maxTokens) return { ids, truncated: false };
  return { ids: [...ids.slice(0, maxTokens - 1), sepId], truncated: true };
}

async function embed(texts) {
  const enc = texts.map(encode);
  const n = texts.length;
  const len = Math.max(...enc.map((e) => e.ids.length));
  const ids = new BigInt64Array(n * len);
  const mask = new BigInt64Array(n * len);
  enc.forEach((e, i) => {
    e.ids.forEach((id, j) => {
      ids[i * len + j] = BigInt(id);
      mask[i * len + j] = 1n;
    });
  });
  const out = await session.run({
    input_ids: new ort.Tensor('int64', ids, [n, len]),
    attention_mask: new ort.Tensor('int64', mask, [n, len]),
    token_type_ids: new ort.Tensor('int64', new BigInt64Array(n * len), [n, len]),
  });
  const hidden = out.last_hidden_state.data;
  const vectors = new Float32Array(n * dimensions);
  for (let i = 0; i < n; i++) {
    const count = enc[i].ids.length;
    const v = vectors.subarray(i * dimensions, (i + 1) * dimensions);
    // Mean over the real tokens (padding excluded), then L2 normalisation.
    for (let j = 0; j < count; j++) {
      const base = (i * len + j) * dimensions;
      for (let d = 0; d < dimensions; d++) v[d] += hidden[base + d];
    }
    let norm = 0;
    for (let d = 0; d < dimensions; d++) {
      v[d] /= count;
      norm += v[d] * v[d];
    }
    norm = Math.sqrt(norm) || 1;
    for (let d = 0; d < dimensions; d++) v[d] /= norm;
  }
  return { vectors, tokens: enc.map((e) => e.ids.length), truncated: enc.filter((e) => e.truncated).length };
}

parentPort.on('message', async ({ id, texts }) => {
  try {
    const r = await embed(texts);
    parentPort.postMessage({ id, ...r }, [r.vectors.buffer]);
  } catch (err) {
    parentPort.postMessage({ id, error: err instanceof Error ? err.message : String(err) });
  }
});
parentPort.postMessage({ ready: true });
