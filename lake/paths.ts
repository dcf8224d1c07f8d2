/**
 * The lake's layout, defined once:
 *   bronze/<source>/dt=YYYY-MM-DD/<sha256-prefix>-<file name>      raw files, unchanged
 *   silver|gold/<table>/dt=YYYY-MM-DD/<write id>/part-00000.parquet
 *   quarantine/<source>/dt=YYYY-MM-DD/<write id>/part-00000.parquet
 *   <any partition>/_manifest.json                                  the commit point of a partition
 *   models/…, reports/dt=YYYY-MM-DD/…
 */
export const LAYERS = ['bronze', 'silver', 'gold', 'quarantine'] as const;
export type Layer = (typeof LAYERS)[number];

export const MANIFEST_FILE = '_manifest.json';

const DATASET = /^[a-z][a-z0-9_-]{0,63}$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;
const WRITE_ID = /^[A-Za-z0-9_.=-]{1,128}$/;

export function assertDataset(name: string): void {
  if (!DATASET.test(name)) {
    throw new Error(`invalid dataset or source name ${JSON.stringify(name)}: use lower-case letters, digits, _ and -`);
  }
}

export function assertDate(date: string): void {
  if (
    !DATE.test(date) ||
    Number.isNaN(Date.parse(`${date}T00:00:00Z`)) ||
    isoDay(new Date(`${date}T00:00:00Z`)) !== date
  ) {
    throw new Error(`invalid date ${JSON.stringify(date)}: expected YYYY-MM-DD`);
  }
}

export function isoDay(d: Date): string {
  return d.toISOString().slice(0, 10);
}

export function datasetPrefix(layer: Layer, dataset: string): string {
  assertDataset(dataset);
  return `${layer}/${dataset}/`;
}

export function partitionPrefix(layer: Layer, dataset: string, date: string): string {
  assertDate(date);
  return `${datasetPrefix(layer, dataset)}dt=${date}/`;
}

export function manifestKey(layer: Layer, dataset: string, date: string): string {
  return partitionPrefix(layer, dataset, date) + MANIFEST_FILE;
}

export function dataFileKey(
  layer: Layer,
  dataset: string,
  date: string,
  writeId: string,
  index: number,
  ext: string,
): string {
  if (!WRITE_ID.test(writeId)) throw new Error(`invalid write id ${JSON.stringify(writeId)}`);
  return `${partitionPrefix(layer, dataset, date)}${writeId}/part-${String(index).padStart(5, '0')}.${ext}`;
}

/** Bronze keeps the original file name, made safe, behind its content hash so identical files land once. */
export function bronzeFileKey(source: string, date: string, sha256: string, fileName: string): string {
  const safe =
    fileName
      .normalize('NFKC')
      .replace(/[^A-Za-z0-9._-]+/g, '_')
      .replace(/\.{2,}/g, '.')
      .replace(/^\.+/, '_')
      .slice(0, 120) || 'file';
  return `${partitionPrefix('bronze', source, date)}${sha256.slice(0, 16)}-${safe}`;
}

export function reportKey(date: string, file: string): string {
  assertDate(date);
  return `reports/dt=${date}/${file}`;
}

/** Dates between from and to inclusive, ascending. */
export function dateRange(from: string, to: string): string[] {
  assertDate(from);
  assertDate(to);
  const out: string[] = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += 86_400_000) {
    out.push(isoDay(new Date(t)));
  }
  return out;
}

export function addDays(date: string, days: number): string {
  assertDate(date);
  return isoDay(new Date(Date.parse(`${date}T00:00:00Z`) + days * 86_400_000));
}

/** The slice a landing writes into an event-date partition of silver (`landed=<date>`). */
export function landedSlice(date: string): string {
  return `landed=${date}`;
}

/** The landing date a slice name carries (`landed=<date>`), or null for any other slice. */
export function landedDateOf(slice: string | undefined): string | null {
  return /^landed=(\d{4}-\d{2}-\d{2})$/.exec(slice ?? '')?.[1] ?? null;
}

/** The overlay slice a landing's late events write into an earlier partition (`realigned=<date>`). */
export function realignedSlice(date: string): string {
  return `realigned=${date}`;
}
