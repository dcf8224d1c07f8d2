import { quotedString } from '@duckdb/node-api';
import type { ActivityDeps } from '../activities/context.js';

export interface QuarantinedRow {
  source: string;
  date: string;
  file: string;
  line: number;
  rule: string;
  field: string | null;
  reason: string;
}

const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/g;
/** Phone numbers as people write them (international, or grouped 3-3-4), not dates or timestamps. */
const PHONE = /\+\d[\d ().-]{6,}\d|\(\d{3}\)\s?\d{3}[-.\s]\d{4}|\b\d{3}[.\s]\d{3}[.\s]\d{4}\b/g;
const mask = (s: string) => s.replace(EMAIL, '[EMAIL]').replace(PHONE, '[PHONE]');

/**
 * The analysts' view of quarantine: where each rejected row came from (file and line), the rule, the field and the
 * reason — without the raw row, which stays with bronze for the people allowed to read raw data. Reasons quote field
 * values, so email addresses and phone numbers in them are masked as well.
 */
export async function quarantineView(
  deps: ActivityDeps,
  o: { source?: string; date?: string; limit: number },
): Promise<QuarantinedRow[]> {
  const files: string[] = [];
  for (const source of await deps.lake.listDatasets('quarantine')) {
    if (o.source && source !== o.source) continue;
    for (const date of await deps.lake.listPartitions('quarantine', source)) {
      if (o.date && date !== o.date) continue;
      files.push(...(await deps.lake.localFiles('quarantine', source, date)).paths);
    }
  }
  if (!files.length) return [];
  const rows = await deps.duck.withConnection(async (c) =>
    (
      await c.runAndReadAll(`SELECT regexp_extract(filename, 'quarantine/([^/]+)/', 1) AS source,
            strftime(dt, '%Y-%m-%d') AS date, source_file, line_no, rule, field, reason
          FROM read_parquet([${files.map(quotedString).join(', ')}], filename = true)
          ORDER BY date, source, source_file, line_no LIMIT ${Math.max(1, Math.floor(o.limit))}`)
    ).getRowObjects(),
  );
  return rows.map((r) => ({
    source: String(r.source),
    date: String(r.date),
    file: String(r.source_file),
    line: Number(r.line_no),
    rule: String(r.rule),
    field: r.field === null ? null : String(r.field),
    reason: mask(String(r.reason)),
  }));
}
