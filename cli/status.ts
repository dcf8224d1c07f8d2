import type { Client } from '@temporalio/client';
import type { Config } from '../config/index.js';
import { lakeLocation } from '../config/index.js';
import type { Lake } from '../lake/lake.js';
import { LAYERS } from '../lake/paths.js';
import { PAUSED_KEY, readInterventionStatuses } from '../activities/interventions/index.js';
import { MODEL_NAMES, ModelRegistry } from '../activities/models/registry.js';

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
  interventions: InterventionSummary;
  /** Champion and newest version per model, with the newest version's decision. */
  models: { name: string; champion: number | null; latest: number | null; decision: string | null }[];
  /** Drift per night checked (recent first). */
  drift: { date: string; drifted: boolean; driftingMeasures: number }[];
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

export interface InterventionSummary {
  /** Set while deliveries are paused. */
  paused: { by: string; note: string | null; at: string } | null;
  /** Interventions by their latest status, per kind. */
  byKind: Record<string, Record<string, number>>;
  pendingApprovals: { id: string; channel: string; since: string; detail: string }[];
  deadLetters: { id: string; channel: string; at: string; detail: string }[];
  /** Engagement after the decision, delivered vs control, pooled over the latest outcome partition's nights. */
  outcomes: { date: string; byKind: Record<string, Record<string, Record<string, number>>> } | null;
}

export async function collectInterventions(lake: Lake): Promise<InterventionSummary> {
  const records = await readInterventionStatuses(lake.store);
  const byKind: InterventionSummary['byKind'] = {};
  for (const r of records) {
    byKind[r.kind] ??= {};
    byKind[r.kind]![r.status] = (byKind[r.kind]![r.status] ?? 0) + 1;
  }
  // Control-group members and skipped students have no workflow: counted from the decisions.
  for (const date of await lake.listPartitions('gold', 'interventions')) {
    const m = await lake.readManifest('gold', 'interventions', date);
    if (!m) continue;
    byKind.all ??= {};
    byKind.all.control = (byKind.all.control ?? 0) + (m.stats.control ?? 0);
  }
  const pick = (status: string) =>
    records
      .filter((r) => r.status === status)
      .sort((a, b) => (a.at < b.at ? -1 : 1))
      .map((r) => ({ id: r.id, channel: r.channel, at: r.at, detail: r.detail ?? '' }));
  const latest = (await lake.listPartitions('gold', 'intervention_outcomes')).at(-1);
  let outcomes: InterventionSummary['outcomes'] = null;
  if (latest) {
    const m = await lake.readManifest('gold', 'intervention_outcomes', latest);
    const out: Record<string, Record<string, Record<string, number>>> = {};
    for (const [k, v] of Object.entries(m?.stats ?? {})) {
      const [kind, arm, measure] = k.split('.') as [string, string, string];
      if (!measure) continue;
      ((out[kind] ??= {})[arm] ??= {})[measure] = v;
    }
    outcomes = { date: latest, byKind: out };
  }
  const flag = await lake.store.getBytes(PAUSED_KEY);
  return {
    paused: flag ? (JSON.parse(flag.toString('utf8')) as InterventionSummary['paused']) : null,
    byKind,
    pendingApprovals: pick('awaiting_approval').map(({ at, ...r }) => ({ ...r, since: at })),
    deadLetters: pick('dead_letter'),
    outcomes,
  };
}

export async function collectModels(lake: Lake): Promise<LakeStatus['models']> {
  const registry = new ModelRegistry(lake.store);
  const out: LakeStatus['models'] = [];
  for (const name of MODEL_NAMES) {
    const latest = (await registry.versions(name)).at(-1) ?? null;
    const card = latest === null ? null : await registry.card(name, latest);
    out.push({
      name,
      champion: await registry.current(name),
      latest,
      decision: card?.decision
        ? `${card.decision.promoted ? 'promoted' : 'kept champion'}: ${card.decision.why}`
        : null,
    });
  }
  return out;
}

export async function collectDrift(lake: Lake, limit = 14): Promise<LakeStatus['drift']> {
  const out: LakeStatus['drift'] = [];
  for (const date of (await lake.listPartitions('gold', 'drift')).slice(-limit).reverse()) {
    const m = await lake.readManifest('gold', 'drift', date);
    if (m) out.push({ date, drifted: m.stats.drifted === 1, driftingMeasures: m.stats.driftingMeasures ?? 0 });
  }
  return out;
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
    interventions: await collectInterventions(lake),
    models: await collectModels(lake),
    drift: await collectDrift(lake),
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
  lines.push('', 'models (champion / newest version):');
  for (const m of s.models)
    lines.push(
      `  ${m.name.padEnd(9)} ${m.champion === null ? 'no champion' : `v${m.champion}`} / ${m.latest === null ? '—' : `v${m.latest}`}${m.decision ? `  ${m.decision}` : ''}`,
    );
  lines.push(
    `drift (recent nights): ${
      s.drift.map((d) => `${d.date} ${d.drifted ? `DRIFT (${d.driftingMeasures} measures)` : 'none'}`).join(', ') ||
      'not checked yet'
    }`,
  );
  const iv = s.interventions;
  lines.push('', 'interventions (latest status per kind):');
  if (iv.paused)
    lines.push(
      `  DELIVERIES PAUSED by ${iv.paused.by} at ${iv.paused.at}${iv.paused.note ? `: ${iv.paused.note}` : ''}`,
    );
  const kinds = Object.entries(iv.byKind);
  for (const [kind, counts] of kinds)
    lines.push(
      `  ${kind.padEnd(13)} ${Object.entries(counts)
        .map(([k, n]) => `${k}=${n}`)
        .join(' ')}`,
    );
  if (!kinds.length) lines.push('  (none)');
  lines.push(`pending approvals (edlake approve|reject ID): ${iv.pendingApprovals.length}`);
  for (const a of iv.pendingApprovals.slice(0, 20)) lines.push(`  ${a.id}  via ${a.channel}  since ${a.since}`);
  lines.push(`dead letters: ${iv.deadLetters.length}`);
  for (const d of iv.deadLetters.slice(0, 20)) lines.push(`  ${d.id}  via ${d.channel}  ${d.detail}`);
  if (iv.outcomes) {
    lines.push(
      `outcomes (as of ${iv.outcomes.date}; events per student-day after the decision, delivered vs control):`,
    );
    for (const [kind, arms] of Object.entries(iv.outcomes.byKind)) {
      const f = (a: string) =>
        arms[a]
          ? `${arms[a]!.events_per_day!.toFixed(2)} (${arms[a]!.students} students, active ${(100 * arms[a]!.active_day_share!).toFixed(0)}% of days)`
          : '—';
      lines.push(`  ${kind.padEnd(13)} delivered ${f('delivered')}  control ${f('control')}`);
    }
  }
  return lines.join('\n');
}
