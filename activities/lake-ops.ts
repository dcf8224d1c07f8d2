import type { ActivityDeps } from './context.js';

/** Small questions workflows ask the lake. */
export function createLakeActivities(deps: ActivityDeps) {
  return {
    /**
     * True when the date's gold features are committed and newer than every bronze file that landed for the date:
     * nothing arrived since they were built, so running the date again would change no partition.
     */
    async goldUpToDate(input: { date: string }): Promise<boolean> {
      const gold = await deps.lake.readManifest('gold', 'student_features', input.date);
      if (!gold) return false;
      for (const source of await deps.lake.listDatasets('bronze')) {
        const m = await deps.lake.readManifest('bronze', source, input.date);
        if (m && m.committedAt > gold.committedAt) return false;
      }
      return true;
    },
  };
}
