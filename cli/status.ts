import type { Client } from '@temporalio/client';
import type { Config } from '../config/index.js';
import { lakeLocation } from '../config/index.js';
import type { Lake } from '../lake/lake.js';
import { LAYERS } from '../lake/paths.js';

export interface PartitionStatus {
  layer: string;
  dataset: string;
  date: string;
  rows: number;
  files: number;
  committedAt: string;
  runId: string;
  stats: Record<string, number>;
}

export interface RunStatus {
  workflowId: string;
  runId: string;
  status: string;
  startTime: string;
  closeTime?: string;
  stage?: string;
}

export interface LakeStatus {
  lake: string;
  webUi: string;
  runs: RunStatus[] | { error: string };
  partitions: PartitionStatus[];
  /** Per source and date: raw = accepted + duplicates + quarantined. */
  reconciliation: {
    source: string;
    date: string;
    raw: number;
    accepted: number;
    duplicates: number;
    quarantined: number;
  }[];
}

export async function collectLakeStatus(lake: Lake): Promise<Pick<LakeStatus, 'partitions' | 'reconciliation'>> {
  const partitions: PartitionStatus[] = [];
  for (const layer of LAYERS) {
    for (const dataset of await lake.listDatasets(layer)) {
      for (const date of await lake.listPartitions(layer, dataset)) {
        const m = await lake.readManifest(layer, dataset, date);
        if (!m) continue;
        partitions.push({
          layer,
          dataset,
          date,
          rows: layer === 'bronze' ? 0 : m.rowCount,
          files: m.files.length,
          committedAt: m.committedAt,
          runId: m.runId,
          stats: m.stats,
        });
      }
    }
  }
  const reconciliation = partitions
    .filter((p) => p.layer === 'quarantine' && p.stats.raw !== undefined)
    .map((p) => ({
      source: p.dataset,
      date: p.date,
      raw: p.stats.raw!,
      accepted: p.stats.accepted!,
      duplicates: p.stats.duplicates!,
      quarantined: p.stats.quarantined!,
    }));
  return { partitions, reconciliation };
}

export async function collectRuns(client: Client, limit = 20): Promise<RunStatus[]> {
  const runs: RunStatus[] = [];
  for await (const wf of client.workflow.list({ query: `WorkflowType = 'nightlyPipeline'` })) {
    const stage = wf.searchAttributes.EdlakeStage?.[0];
    runs.push({
      workflowId: wf.workflowId,
      runId: wf.runId,
      status: wf.status.name,
      startTime: wf.startTime.toISOString(),
      ...(wf.closeTime ? { closeTime: wf.closeTime.toISOString() } : {}),
      ...(stage !== undefined ? { stage: String(stage) } : {}),
    });
    if (runs.length >= limit) break;
  }
  return runs;
}

export async function collectStatus(
  config: Config,
  lake: Lake,
  client: Client | null,
  clientError?: string,
): Promise<LakeStatus> {
  const l = await collectLakeStatus(lake);
  return {
    lake: lakeLocation(config),
    webUi: config.temporal.uiUrl,
    runs: client ? await collectRuns(client) : { error: clientError ?? 'Temporal unreachable' },
    ...l,
  };
}

export function formatStatus(s: LakeStatus): string {
  const lines: string[] = [`lake: ${s.lake}`, `web ui: ${s.webUi}`, '', 'recent runs:'];
  if (Array.isArray(s.runs)) {
    if (!s.runs.length) lines.push('  (none)');
    for (const r of s.runs)
      lines.push(`  ${r.workflowId.padEnd(24)} ${r.status.padEnd(11)} stage=${r.stage ?? '-'}  started ${r.startTime}`);
  } else lines.push(`  unavailable: ${s.runs.error}`);
  lines.push('', 'partitions (layer/dataset dt=date: rows):');
  for (const p of s.partitions) {
    lines.push(
      `  ${`${p.layer}/${p.dataset}`.padEnd(32)} dt=${p.date}  ${p.layer === 'bronze' ? `${p.files} files` : `${p.rows} rows`}`,
    );
  }
  if (!s.partitions.length) lines.push('  (none)');
  lines.push('', 'reconciliation (raw = accepted + duplicates + quarantined):');
  for (const r of s.reconciliation) {
    lines.push(
      `  ${r.source.padEnd(12)} dt=${r.date}  raw=${r.raw} accepted=${r.accepted} duplicates=${r.duplicates} quarantined=${r.quarantined}`,
    );
  }
  if (!s.reconciliation.length) lines.push('  (none)');
  return lines.join('\n');
}
