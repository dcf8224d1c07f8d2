"""The Python peer of edlake's encoder: the same ONNX file and tokenizer.json through onnxruntime and the Rust
tokenizers library, mean pooling and L2 norm as sentence-transformers does it.

    python embed.py MODEL_DIR --texts FILE.json [--threads 2] [--batch 32] [--out vectors.json] [--repeat 1]

Prints one JSON line: {"texts": n, "seconds": s, "per_second": r}; with --out also writes the vectors.
"""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

MAX_TOKENS = 256


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("--texts", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--out")
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    texts = json.load(open(a.texts))
    tok = Tokenizer.from_file(f"{a.model_dir}/tokenizer.json")
    tok.no_padding()
    tok.enable_truncation(MAX_TOKENS)
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(f"{a.model_dir}/model.onnx", so, providers=["CPUExecutionProvider"])
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), 384), dtype=np.float32)
    t0 = time.perf_counter()
    for _ in range(a.repeat):
        for s in range(0, len(order), a.batch):
            idx = order[s : s + a.batch]
            enc = tok.encode_batch([texts[i] for i in idx])
            n = max(len(e.ids) for e in enc)
            ids = np.zeros((len(idx), n), dtype=np.int64)
            mask = np.zeros((len(idx), n), dtype=np.int64)
            for k, e in enumerate(enc):
                ids[k, : len(e.ids)] = e.ids
                mask[k, : len(e.ids)] = 1
            hidden = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
            m = mask[:, :, None].astype(np.float32)
            v = (hidden * m).sum(1) / m.sum(1)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            out[idx] = v
    dt = time.perf_counter() - t0
    if a.out:
        json.dump([[round(float(x), 7) for x in row] for row in out], open(a.out, "w"))
    print(json.dumps({"texts": len(texts) * a.repeat, "seconds": dt, "per_second": len(texts) * a.repeat / dt}))


if __name__ == "__main__":
    main()
