import { quotedString } from '@duckdb/node-api';
import type { TopLevelSpec } from 'vega-lite';
import { parquetScan, partitionScan } from '../../lake/duck.js';
import { addDays } from '../../lake/paths.js';
import { MAX_LOOKBACK_DAYS } from '../features.js';
import type { ActivityDeps } from '../context.js';
import { readInterventionStatuses } from '../interventions/index.js';
import type { RiskArtifact, SegmentArtifact } from '../models/index.js';
import { ModelRegistry } from '../models/registry.js';
import { privacyStatement, publishCount } from '../privacy.js';

/** Features whose distribution tonight is drawn against the training reference. */
const DISTRIBUTION_FEATURES = ['active_days_28d', 'practice_events_28d', 'video_minutes_28d', 'forum_posts_28d'];

export const reportKey = (date: string) => `reports/dt=${date}/index.html`;

/** Renders a Vega-Lite spec to SVG (the libraries are loaded on first use: only report runs draw charts). */
async function svg(spec: TopLevelSpec): Promise<string> {
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const out = await view.toSVG();
  view.finalize();
  return out;
}

const esc = (s: unknown) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const base = { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', config: { font: 'sans-serif' } } as const;

/**
 * The run report: one self-contained HTML page per night (`reports/dt=<date>/index.html`), charts rendered to SVG on
 * the server with Vega-Lite, no script and no external resource. Every count of students goes through the privacy
 * rule (small groups suppressed, optional Laplace noise), and the page says so.
 */
export function createReportActivities(deps: ActivityDeps) {
  const registry = new ModelRegistry(deps.lake.store);
  const count = (n: number, seed: string) => publishCount(deps.config, n, seed);

  return {
    async writeRunReport(input: { date: string; runId: string }): Promise<{ uri: string; charts: number }> {
      const { date } = input;
      const sections: string[] = [];
      let charts = 0;
      const chart = async (title: string, note: string, spec: TopLevelSpec | null) => {
        if (!spec) {
          sections.push(`<section><h2>${esc(title)}</h2><p class="note">${esc(note)}</p></section>`);
          return;
        }
        charts++;
        sections.push(`<section><h2>${esc(title)}</h2><p class="note">${esc(note)}</p>${await svg(spec)}</section>`);
      };

      await deps.duck.withConnection(async (conn) => {
        const rows = async (sql: string) => (await conn.runAndReadAll(sql)).getRowObjects();

        // 1. Data funnel per source: raw = accepted + duplicates + quarantined (rows, not students).
        const funnel: { source: string; step: string; rows: number }[] = [];
        for (const source of await deps.lake.listDatasets('quarantine')) {
          const m = await deps.lake.readManifest('quarantine', source, date);
          if (!m || m.stats.raw === undefined) continue;
          for (const step of ['raw', 'accepted', 'duplicates', 'quarantined'])
            funnel.push({ source, step, rows: m.stats[step] ?? 0 });
        }
        await chart(
          'Data funnel per source',
          `Records landed for ${date}: raw = accepted + duplicates + quarantined.`,
          funnel.length
            ? {
                ...base,
                data: { values: funnel },
                mark: 'bar',
                width: 120,
                height: 160,
                encoding: {
                  column: { field: 'source', type: 'nominal', title: null },
                  x: {
                    field: 'step',
                    type: 'nominal',
                    sort: ['raw', 'accepted', 'duplicates', 'quarantined'],
                    title: null,
                  },
                  y: { field: 'rows', type: 'quantitative', scale: { type: 'symlog' } },
                  color: { field: 'step', type: 'nominal', legend: null },
                },
              }
            : null,
        );

        // 2. Feature distributions against the training reference.
        const rv = await registry.current('risk');
        const risk = rv === null ? null : await registry.artifact<RiskArtifact>('risk', rv);
        const feats = await deps.lake.localFiles('gold', 'student_features', date);
        const dist: { feature: string; bin: string; share: number; which: string }[] = [];
        if (risk && feats.paths.length) {
          for (const f of DISTRIBUTION_FEATURES) {
            const ref = risk.reference.features?.[f];
            if (!ref) continue;
            const values = (
              await rows(`SELECT ${f} AS v FROM ${partitionScan(feats.manifest, feats.paths)} WHERE ${f} IS NOT NULL`)
            ).map((r) => Number(r.v));
            const counts = new Array<number>(ref.shares.length).fill(0);
            for (const v of values) {
              let i = ref.edges.findIndex((e) => v <= e);
              if (i < 0) i = ref.shares.length - 1;
              counts[Math.min(i, ref.shares.length - 1)]!++;
            }
            ref.shares.forEach((s, i) => {
              const label = `≤ ${Number(ref.edges[i] ?? Infinity).toPrecision(3)}`;
              dist.push({ feature: f, bin: label, share: s, which: `reference (v${rv})` });
              dist.push({ feature: f, bin: label, share: counts[i]! / Math.max(1, values.length), which: date });
            });
          }
        }
        await chart(
          'Feature distributions against the training reference',
          'Share of students per bin of the reference distribution, tonight against the risk model’s training night.',
          dist.length
            ? {
                ...base,
                data: { values: dist },
                mark: { type: 'line', point: true },
                width: 180,
                height: 120,
                encoding: {
                  facet: { field: 'feature', type: 'nominal', columns: 4, title: null },
                  x: { field: 'bin', type: 'ordinal', sort: null, title: null, axis: { labelAngle: -45 } },
                  y: { field: 'share', type: 'quantitative', axis: { format: '%' } },
                  color: { field: 'which', type: 'nominal', title: null },
                },
              }
            : null,
        );

        // 3. Drift per measure over time.
        const driftFiles: string[] = [];
        for (const d of await deps.lake.listPartitions('gold', 'drift', { from: addDays(date, -27), to: date }))
          driftFiles.push(...(await deps.lake.localFiles('gold', 'drift', d)).paths);
        const drift = driftFiles.length
          ? await rows(`SELECT regexp_extract(filename, 'dt=(\\d{4}-\\d{2}-\\d{2})', 1) AS date, measure, psi
              FROM read_parquet([${driftFiles.map(quotedString).join(', ')}], filename = true)
              WHERE kind = 'daily_measure' AND psi IS NOT NULL ORDER BY date`)
          : [];
        await chart(
          'Drift per measure over time',
          `PSI of each daily measure against the training reference; a retrain starts above ${deps.config.models.psiThreshold}.`,
          drift.length
            ? {
                ...base,
                layer: [
                  {
                    data: { values: drift.map((r) => ({ date: r.date, measure: r.measure, psi: Number(r.psi) })) },
                    mark: { type: 'line', point: true },
                    encoding: {
                      x: { field: 'date', type: 'ordinal', title: null },
                      y: { field: 'psi', type: 'quantitative', title: 'PSI' },
                      color: { field: 'measure', type: 'nominal', title: null },
                    },
                  },
                  {
                    data: { values: [{ t: deps.config.models.psiThreshold }] },
                    mark: { type: 'rule', strokeDash: [4, 4], color: 'firebrick' },
                    encoding: { y: { field: 't', type: 'quantitative' } },
                  },
                ],
                width: 640,
                height: 200,
              }
            : null,
        );

        // 4. Risk distribution and threshold (bins of fewer than k students suppressed).
        const scores = await deps.lake.localFiles('gold', 'risk_scores', date);
        const riskRows = scores.paths.length
          ? await rows(`SELECT floor(risk * 20) / 20 AS bin, count(*) AS n, any_value(threshold) AS threshold
              FROM ${parquetScan(scores.paths)} WHERE risk IS NOT NULL GROUP BY ALL ORDER BY bin`)
          : [];
        const threshold = riskRows.length ? Number(riskRows[0]!.threshold) : null;
        const hist = riskRows
          .map((r) => ({ bin: Number(r.bin), ...count(Number(r.n), `risk:${date}:${String(r.bin)}`) }))
          .filter((b) => !b.suppressed)
          .map((b) => ({ bin: b.bin, end: Math.round((b.bin + 0.05) * 100) / 100, students: b.value }));
        await chart(
          'Risk distribution and threshold',
          `Students per risk band tonight; the dashed line is the at-risk threshold${threshold === null ? '' : ` (${threshold.toFixed(3)})`}. Bands with fewer than ${deps.config.privacy.minGroupSize} students are not shown.`,
          hist.length
            ? {
                ...base,
                layer: [
                  {
                    data: { values: hist },
                    mark: 'bar',
                    encoding: {
                      x: {
                        field: 'bin',
                        type: 'quantitative',
                        bin: { binned: true, step: 0.05 },
                        title: 'risk',
                        scale: { domain: [0, 1] },
                      },
                      x2: { field: 'end' },
                      y: { field: 'students', type: 'quantitative' },
                    },
                  },
                  {
                    data: { values: [{ t: threshold ?? 0.5 }] },
                    mark: { type: 'rule', strokeDash: [4, 4], color: 'firebrick' },
                    encoding: { x: { field: 't', type: 'quantitative' } },
                  },
                ],
                width: 640,
                height: 180,
              }
            : null,
        );

        // 5. Segments on a 2-D map: practice against video, sized by the number of students.
        const sv = await registry.current('segments');
        const seg = sv === null ? null : await registry.artifact<SegmentArtifact>('segments', sv);
        const segPoints = (seg?.profiles ?? [])
          .map((p, i) => ({
            segment: p.description,
            id: seg!.ids[i] ?? p.id,
            practice: p.means.practice_events_28d ?? 0,
            video: p.means.video_minutes_28d ?? 0,
            forum: p.means.forum_posts_28d ?? 0,
            ...count(p.size, `segment:${date}:${p.id}`),
          }))
          .filter((p) => !p.suppressed)
          .map(({ value, suppressed: _s, ...p }) => ({ ...p, students: value }));
        await chart(
          'Segments',
          `Each segment (model v${sv ?? '—'}) at its mean practice events and video minutes over 28 days; area is its size.`,
          segPoints.length
            ? {
                ...base,
                data: { values: segPoints },
                mark: { type: 'circle', opacity: 0.7 },
                width: 640,
                height: 260,
                encoding: {
                  x: { field: 'practice', type: 'quantitative', title: 'practice events (28 days)' },
                  y: { field: 'video', type: 'quantitative', title: 'video minutes (28 days)' },
                  size: { field: 'students', type: 'quantitative', scale: { range: [200, 4000] } },
                  color: {
                    field: 'segment',
                    type: 'nominal',
                    title: null,
                    legend: { orient: 'bottom', columns: 1, labelLimit: 600 },
                  },
                },
              }
            : null,
        );

        // 6. Interventions by kind and status, decided in the last 28 days (a night's report reads a bounded window,
        // not the whole history).
        const since = addDays(date, -(MAX_LOOKBACK_DAYS - 1));
        const decided = await deps.lake.listPartitions('gold', 'interventions', { from: since, to: date });
        const statuses = await readInterventionStatuses(deps.lake.store, decided);
        const tally = new Map<string, number>();
        for (const s of statuses) tally.set(`${s.kind}|${s.status}`, (tally.get(`${s.kind}|${s.status}`) ?? 0) + 1);
        for (const d of decided) {
          const files = (await deps.lake.localFiles('gold', 'interventions', d)).paths;
          for (const r of await rows(
            `SELECT kind, status, count(*) AS n FROM ${parquetScan(files)} WHERE status <> 'planned' GROUP BY ALL`,
          ))
            tally.set(
              `${String(r.kind)}|${String(r.status)}`,
              (tally.get(`${String(r.kind)}|${String(r.status)}`) ?? 0) + Number(r.n),
            );
        }
        const iv = [...tally]
          .map(([k, n]) => {
            const [kind, status] = k.split('|') as [string, string];
            return { kind, status, ...count(n, `interventions:${date}:${k}`) };
          })
          .filter((x) => !x.suppressed)
          .map((x) => ({ kind: x.kind, status: x.status, interventions: x.value }));
        await chart(
          'Interventions by kind and status',
          `Every intervention decided from ${since} to ${date} by its latest status (control group and skipped included). Groups of fewer than ${deps.config.privacy.minGroupSize} are not shown.`,
          iv.length
            ? {
                ...base,
                data: { values: iv },
                mark: 'bar',
                width: 640,
                height: 160,
                encoding: {
                  y: { field: 'kind', type: 'nominal', title: null },
                  x: { field: 'interventions', type: 'quantitative', stack: 'zero' },
                  color: { field: 'status', type: 'nominal', title: null },
                },
              }
            : null,
        );

        // 7. Fairness table of the risk champion.
        const card = rv === null ? null : await registry.card('risk', rv);
        const groups = Object.entries(
          (card?.fairness.groups ?? {}) as Record<
            string,
            { n: number; recall: number; fpr: number; positiveRate: number }
          >,
        );
        const pct = (v: number) => (Number.isFinite(v) ? `${(100 * v).toFixed(1)}%` : '—');
        sections.push(
          `<section><h2>Fairness of the risk model${rv === null ? '' : ` v${rv}`}</h2>` +
            (groups.length
              ? `<p class="note">Holdout students per group of ${esc(String(card!.fairness.attribute))}: demographic-parity difference ${Number(card!.fairness.demographicParityDifference).toFixed(3)}, equalized-odds difference ${Number(card!.fairness.equalizedOddsDifference).toFixed(3)}.</p>
                 <table><thead><tr><th>group</th><th>students</th><th>recall</th><th>false-positive rate</th><th>flagged at risk</th></tr></thead><tbody>${groups
                   .map(([g, v]) => {
                     const n = count(v.n, `fairness:${rv}:${g}`);
                     return n.suppressed
                       ? `<tr><td>${esc(g)}</td><td colspan="4">fewer than ${deps.config.privacy.minGroupSize} students: suppressed</td></tr>`
                       : `<tr><td>${esc(g)}</td><td>${n.value}</td><td>${pct(v.recall)}</td><td>${pct(v.fpr)}</td><td>${pct(v.positiveRate)}</td></tr>`;
                   })
                   .join('')}</tbody></table>`
              : '<p class="note">No risk model yet.</p>') +
            '</section>',
        );
      });

      const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edlake run report ${esc(date)}</title>
<style>
body{font-family:sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.6rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
.note{color:#555;font-size:.9rem}table{border-collapse:collapse}td,th{padding:.3rem .8rem;border-bottom:1px solid #eee;text-align:left}
svg{max-width:100%;height:auto}
</style></head><body>
<h1>edlake nightly run — ${esc(date)}</h1>
<p class="note">Run ${esc(input.runId)}. ${esc(privacyStatement(deps.config))} No student is named in this report.</p>
${sections.join('\n')}
</body></html>
`;
      await deps.lake.store.putBytes(reportKey(date), html);
      return { uri: deps.lake.store.uri(reportKey(date)), charts };
    },
  };
}
