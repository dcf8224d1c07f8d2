/** The kinds of raw source edlake lands. Each is a bronze dataset name. */
export const SOURCE_KINDS = [
  'xapi',
  'caliper',
  'lms-csv',
  'assessments',
  'video',
  'forum',
  'sensor',
  'roster',
  'outcomes',
] as const;
export type SourceKind = (typeof SOURCE_KINDS)[number];

export function isSourceKind(s: string): s is SourceKind {
  return (SOURCE_KINDS as readonly string[]).includes(s);
}
