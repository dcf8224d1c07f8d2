import { loadSourceDefinitions } from '../config/source-definition.js';

let kinds: readonly string[] | undefined;

/**
 * The kinds of raw source edlake lands: every declared source definition (config/sources/*.json) plus the roster,
 * which has a loader of its own. Onboarding a new export adds a definition file and nothing else.
 */
export function sourceKinds(): readonly string[] {
  kinds ??= [...loadSourceDefinitions().keys(), 'roster'].sort();
  return kinds;
}

export function isSourceKind(s: string): boolean {
  return sourceKinds().includes(s);
}
