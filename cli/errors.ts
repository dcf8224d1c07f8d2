import { ApplicationFailure, WorkflowFailedError } from '@temporalio/client';
import { ConfigError } from '../config/index.js';
import { StoreUnavailableError } from '../lake/store.js';
import { ServiceError } from '../scripts/services.js';

/** Documented exit codes of the edlake command. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  config: 3,
  service: 4,
  input: 5,
  runFailed: 6,
} as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly code: number,
  ) {
    super(message);
  }
}

function rootCause(err: unknown): unknown {
  let e = err as { cause?: unknown };
  while (e && typeof e === 'object' && e.cause && !(e instanceof ApplicationFailure))
    e = e.cause as { cause?: unknown };
  return e;
}

/** One line and an exit code for any error, never a stack trace. */
export function describeError(err: unknown): { line: string; code: number } {
  if (err instanceof CliError) return { line: err.message, code: err.code };
  if (err instanceof ConfigError) return { line: err.message, code: EXIT.config };
  if (err instanceof ServiceError || err instanceof StoreUnavailableError)
    return { line: err.message, code: EXIT.service };
  if (err instanceof WorkflowFailedError) {
    const cause = rootCause(err);
    const msg = cause instanceof Error ? cause.message : String(cause);
    return {
      line: `workflow ${err.message.replace(/^Workflow execution failed.*$/, 'failed')}: ${msg}`,
      code: EXIT.runFailed,
    };
  }
  if (err instanceof ApplicationFailure) {
    const code = err.type === 'MissingInput' || err.type === 'BadInput' ? EXIT.input : EXIT.failure;
    return { line: err.message, code };
  }
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOENT' && e.path) return { line: `no such file: ${e.path}`, code: EXIT.input };
  return { line: e?.message ? e.message.split('\n')[0]! : String(err), code: EXIT.failure };
}
