import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config/index.js';

/**
 * The Python interpreter of the benchmark peers: a virtual environment under the cache folder, built on first use
 * from bench/peers/requirements.txt (pip reinstalls when the requirements gained a package).
 */
export function peersPython(config: Config): string {
  const requirements = fileURLToPath(new URL('./peers/requirements.txt', import.meta.url));
  const venv = join(config.cacheDir, 'peers-venv');
  const python = join(venv, 'bin', 'python');
  const steps: [string, string[]][] = [];
  if (!existsSync(python)) steps.push(['python3', ['-m', 'venv', venv]]);
  const check = existsSync(python)
    ? spawnSync(python, ['-c', 'import numpy, pandas, sklearn, onnxruntime, tokenizers'], { stdio: 'ignore' }).status
    : 1;
  if (check !== 0) steps.push([python, ['-m', 'pip', 'install', '--quiet', '-r', requirements]]);
  if (steps.length) process.stderr.write('building the Python peers environment…\n');
  for (const [cmd, args] of steps) {
    const r = spawnSync(cmd, args, { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed`);
  }
  return python;
}
