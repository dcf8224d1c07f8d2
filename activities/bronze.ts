import { readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { ManifestFile, PartitionRef } from '../lake/manifest.js';
import type { Lake } from '../lake/lake.js';
import { assertDate, partitionPrefix } from '../lake/paths.js';
import { type ActivityDeps, faultHold, mapConcurrently, PARALLEL_PIECES, withHeartbeat } from './context.js';
import { ErrorType, nonRetryable } from './errors.js';
import { isSourceKind, sourceKinds } from './sources.js';

export interface LandBronzeFilesInput {
  date: string;
  runId: string;
}

export interface LandedSource {
  source: string;
  partition: PartitionRef;
  filesAdded: number;
  filesAlreadyLanded: number;
}

export interface LandBronzeFilesOutput {
  date: string;
  sources: LandedSource[];
  filesAdded: number;
  bytesAdded: number;
}

async function walkFiles(path: string): Promise<string[]> {
  const s = await stat(path);
  if (s.isFile()) return [path];
  const out: string[] = [];
  for (const e of (await readdir(path, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    if (e.name.startsWith('.') || e.name.startsWith('_')) continue;
    const full = join(path, e.name);
    if (e.isDirectory()) out.push(...(await walkFiles(full)));
    else if (e.isFile()) out.push(full);
  }
  return out;
}

/**
 * Lands files (or every file under folders) in `bronze/<source>/dt=<date>/`, unchanged. Idempotent per checksum:
 * the same bytes land once however often they are ingested. Shared by the nightly run and `edlake ingest`.
 */
export async function ingestFiles(
  lake: Lake,
  input: { source: string; date: string; paths: string[]; runId: string; onFile?: (path: string) => void },
): Promise<{ added: ManifestFile[]; skipped: ManifestFile[]; partition: PartitionRef }> {
  if (!isSourceKind(input.source)) {
    throw nonRetryable(
      ErrorType.BadInput,
      `unknown source kind ${JSON.stringify(input.source)}; expected one of ${sourceKinds().join(', ')}`,
    );
  }
  try {
    assertDate(input.date);
  } catch (err) {
    throw nonRetryable(ErrorType.BadInput, (err as Error).message);
  }
  const files: string[] = [];
  for (const p of input.paths) {
    try {
      files.push(...(await walkFiles(p)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT')
        throw nonRetryable(ErrorType.MissingInput, `input file not found: ${p}`);
      throw err;
    }
  }
  const added: ManifestFile[] = [];
  const skipped: ManifestFile[] = [];
  for (const f of files) {
    const res = await lake.landBronzeFile({ source: input.source, date: input.date, localPath: f, runId: input.runId });
    (res.added ? added : skipped).push(res.file);
    input.onFile?.(f);
  }
  await lake.store.ensureReady();
  const manifest = await lake.readManifest('bronze', input.source, input.date);
  const partition: PartitionRef = manifest
    ? lake.ref(manifest)
    : {
        uri: lake.store.uri(partitionPrefix('bronze', input.source, input.date)),
        layer: 'bronze',
        dataset: input.source,
        date: input.date,
        rowCount: 0,
        schemaVersion: 1,
        stats: { files: 0, bytes: 0 },
      };
  return { added, skipped, partition };
}

export function createBronzeActivities(deps: ActivityDeps) {
  return {
    /**
     * Lands the day's raw drop (`<inbox>/dt=<date>/<source>/…`) in bronze, one partition per source. Idempotent:
     * files already landed (same checksum) are skipped, so a retry or a re-run adds nothing.
     */
    async landBronzeFiles(input: LandBronzeFilesInput): Promise<LandBronzeFilesOutput> {
      await faultHold(deps, 'landBronzeFiles');
      const dayDir = join(deps.config.inbox, `dt=${input.date}`);
      let sources: string[] = [];
      try {
        sources = (await readdir(dayDir, { withFileTypes: true }))
          .filter((e) => e.isDirectory())
          .map((e) => e.name)
          .sort();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      const unknown = sources.filter((s) => !isSourceKind(s));
      if (unknown.length) {
        throw nonRetryable(
          ErrorType.BadInput,
          `${join(dayDir, unknown[0]!)}: unknown source folder ${JSON.stringify(unknown[0])}; expected one of ${sourceKinds().join(', ')}`,
        );
      }
      await deps.lake.store.ensureReady();
      return withHeartbeat(async (progress) => {
        // Each source has its own partition and manifest: a few are landed at a time (checksums and copies overlap).
        const out = await mapConcurrently(sources, PARALLEL_PIECES + 1, async (source) => {
          const res = await ingestFiles(deps.lake, {
            source,
            date: input.date,
            paths: [join(dayDir, source)],
            runId: input.runId,
          });
          progress({ source, files: relative(deps.config.inbox, dayDir).split(sep).join('/') });
          return {
            source,
            partition: res.partition,
            filesAdded: res.added.length,
            filesAlreadyLanded: res.skipped.length,
            bytes: res.added.reduce((n, f) => n + f.bytes, 0),
          };
        });
        const filesAdded = out.reduce((n, o) => n + o.filesAdded, 0);
        const bytesAdded = out.reduce((n, o) => n + o.bytes, 0);
        return {
          date: input.date,
          sources: out.map(({ bytes: _bytes, ...o }) => o),
          filesAdded,
          bytesAdded,
        };
      });
    },
  };
}
