import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

const jsonPath = z
  .string()
  .regex(/^\$(\.[A-Za-z_@][A-Za-z0-9_@-]*|\[\d+\])*$/, 'must be a JSON path such as $.result.score');

export const fieldSchema = z.object({
  /** Where the value is: one JSON path, or several tried in order. CSV and parquet columns are `$.<column>`. */
  path: z.union([jsonPath, z.array(jsonPath).min(1)]),
  type: z.enum(['VARCHAR', 'INTEGER', 'DOUBLE', 'BOOLEAN']),
  required: z.boolean().default(false),
  min: z.number().optional(),
  max: z.number().optional(),
  enum: z.array(z.string()).optional(),
  /** Free text that may name people: masked in silver (roster names, emails, phone numbers). */
  freeText: z.boolean().default(false),
  description: z.string().optional(),
});

export const identitySchema = z.object({
  path: z.union([jsonPath, z.array(jsonPath).min(1)]),
  /** Which roster identity the value is. */
  kind: z.enum(['student_id', 'email', 'lms_id', 'sis_id']),
  /** Prefix removed before matching, e.g. "mailto:". */
  stripPrefix: z.string().optional(),
  /** Keep only the last `/`-separated segment, for IRIs such as https://lms/users/lms-100001. */
  lastSegment: z.boolean().default(false),
});

/**
 * A source kind, declared as data: how its files are read, which fields it has and their contract, where its
 * timestamp and student identity are. A new export is onboarded by writing one of these (config/sources/*.json).
 */
export const sourceDefinitionSchema = z.object({
  name: z.string().regex(/^[a-z][a-z0-9-]{0,40}$/),
  description: z.string(),
  format: z.enum(['jsonl', 'json', 'csv', 'parquet']),
  /** json only: where the records are in an envelope (e.g. $.data); a top-level array or object is also accepted. */
  records: jsonPath.optional(),
  modality: z.enum(['activity', 'practice', 'assessment', 'video', 'forum', 'sensor', 'outcome']),
  fields: z.record(z.string().regex(/^[a-z][a-z0-9_]*$/), fieldSchema),
  timestamp: z.object({
    path: z.union([jsonPath, z.array(jsonPath).min(1)]),
    /** strptime format for non-ISO timestamps, e.g. %Y-%m-%d %H:%M:%S; ISO 8601 when absent. */
    format: z.string().optional(),
    /** IANA zone for timestamps without an offset. */
    timezone: z.string().default('UTC'),
  }),
  identity: z.array(identitySchema).min(1),
  /** Quarantine events outside the student's enrolment (false for historical records such as outcomes). */
  termCheck: z.boolean().default(true),
  /** Field that identifies an event across re-sends; a hash of the whole record when absent. */
  eventId: z.string().optional(),
  /** Field holding the course, and a regex whose first group extracts the course id from it. */
  course: z.object({ field: z.string(), pattern: z.string().optional() }).optional(),
});

export type SourceDefinition = z.infer<typeof sourceDefinitionSchema>;
export type FieldDefinition = z.infer<typeof fieldSchema>;

export const SOURCE_DEFINITIONS_DIR = fileURLToPath(new URL('./sources/', import.meta.url));

/** Loads and validates every definition in a folder (default: config/sources). Fails naming the file and key. */
export function loadSourceDefinitions(dir: string = SOURCE_DEFINITIONS_DIR): Map<string, SourceDefinition> {
  const out = new Map<string, SourceDefinition>();
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()) {
    const raw: unknown = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    const res = sourceDefinitionSchema.safeParse(raw);
    if (!res.success) {
      const i = res.error.issues[0]!;
      throw new Error(`source definition ${file}: ${i.path.join('.')}: ${i.message}`);
    }
    const def = res.data;
    for (const key of [def.eventId, def.course?.field].filter(Boolean) as string[]) {
      if (!def.fields[key]) throw new Error(`source definition ${file}: ${key} is not one of its fields`);
    }
    out.set(def.name, def);
  }
  return out;
}
