import { createHash } from 'node:crypto';
import { type DuckDBConnection, quotedString } from '@duckdb/node-api';
import type { PCA } from 'ml-pca';
import type { PartitionRef } from '../../lake/manifest.js';
import { parquetScan, partitionScan, rowsTable } from '../../lake/duck.js';
import { addDays } from '../../lake/paths.js';
import { publishQuery } from '../../lake/publish-query.js';
import { type ActivityDeps, faultHold, withHeartbeat, withWorkDir } from '../context.js';
import { ErrorType, nonRetryable } from '../errors.js';
import { FEATURES } from '../features.js';
import { describeSegments } from './describe.js';
import { assignClusters, type ClusterModel, dbscan, hierarchical, kmeansSeeded } from './cluster.js';
import { loadMl, ml } from './ml.js';
import { type ModelCard, type ModelName, ModelRegistry } from './registry.js';
import {
  adjustedRandIndex,
  averagePrecision,
  binEdges,
  binShares,
  calibration,
  confusionAt,
  fitLogistic,
  fitScaler,
  ks,
  type LogisticModel,
  type Matrix,
  mmd2,
  precisionAtK,
  predictLogistic,
  psi,
  rocAuc,
  scale,
  silhouette,
  stableUnit,
  thresholdForRecall,
} from './stats.js';

export { adjustedRandIndex };

/** Daily measures (from silver/student_day) that drift is judged on: stationary, unlike windows that fill up. */
export const DRIFT_MEASURES = [
  'events',
  'practice_events',
  'video_minutes',
  'forum_posts',
  'sessions',
  'time_on_task_minutes',
  'activity_events',
] as const;
const DRIFT_DAYS = 7;
const SAMPLE = 400;

/** The gold features segment profiles describe. */
const SEGMENT_FEATURES = [
  'events_28d',
  'activity_events_28d',
  'practice_events_28d',
  'video_events_28d',
  'video_minutes_28d',
  'forum_posts_28d',
  'active_days_28d',
  'accuracy_28d',
];
/**
 * What segmentation clusters on, derived from SEGMENT_FEATURES: the modality mix (shares of events) and the
 * intensity of each modality (log counts). Mix separates how students learn; intensity separates how much.
 */
const SEGMENT_INPUTS: { name: string; of: (f: Record<string, number>) => number }[] = [
  { name: 'practice_share', of: (f) => f.practice_events_28d! / (f.events_28d! + 1) },
  { name: 'video_share', of: (f) => f.video_events_28d! / (f.events_28d! + 1) },
  { name: 'forum_share', of: (f) => f.forum_posts_28d! / (f.events_28d! + 1) },
  { name: 'log_events', of: (f) => Math.log1p(f.events_28d!) },
  { name: 'log_forum_posts', of: (f) => Math.log1p(f.forum_posts_28d!) },
  { name: 'log_video_minutes', of: (f) => Math.log1p(f.video_minutes_28d!) },
  { name: 'log_practice_events', of: (f) => Math.log1p(f.practice_events_28d!) },
];
const EMBEDDING_DIMS = 4;
/** Weight of the behaviour-embedding components next to the behaviour inputs (standardized). */
const EMBEDDING_WEIGHT = 0.3;

interface Student {
  student_key: string;
  course_id: string | null;
  values: number[];
  activeDays: number;
  label: number | null;
  group: string;
  embedding: number[] | null;
}

/** Where the risk model's labels came from: outcomes at a horizon, or earlier-term outcomes on tonight's features. */
export interface LabelSource {
  source: 'horizon' | 'earlier_term';
  horizonDays: number;
  examples: number;
  featureNights?: { from: string; to: string };
  why: string;
}

interface Distribution {
  edges: number[];
  shares: number[];
  sample: number[];
}

interface DriftReference {
  /** Daily measures over the training week: what the drift decision is made on. */
  measures: Record<string, Distribution>;
  /** Every gold feature on the training night: reported each night, not decided on (windows fill up in a term). */
  features?: Record<string, Distribution>;
  embeddings: number[][];
}

function distribution(values: number[]): Distribution {
  const edges = binEdges(values);
  return { edges, shares: binShares(values, edges), sample: sample(values, 2000) };
}

function featureValues(students: Student[], j: number): number[] {
  return students.map((s) => s.values[j]!).filter((v) => Number.isFinite(v));
}

interface Preprocess {
  features: string[];
  medians: number[];
  scaler: { mean: number[]; std: number[] };
}

export interface RiskArtifact {
  algorithm: 'logistic' | 'random_forest';
  pre: Preprocess;
  logistic?: LogisticModel;
  forest?: unknown;
  threshold: number;
  reference: DriftReference;
}

export interface SegmentArtifact {
  pre: Preprocess;
  pca: unknown;
  embeddingScaler: { mean: number[]; std: number[] };
  /** The fitted clustering (k-means, hierarchical or DBSCAN), placing rows by centroid or core point. */
  model: ClusterModel;
  /** Stable cluster id per centroid (matched to the previous version's). */
  ids: number[];
  profiles: { id: number; size: number; means: Record<string, number>; description: string }[];
  k: number;
  silhouette: number;
}

export interface TrainInput {
  name: ModelName;
  date: string;
  reason: string;
}
export interface TrainOutput {
  name: ModelName;
  version: number;
  metrics: Record<string, unknown>;
}
export interface DecideOutput {
  name: ModelName;
  version: number;
  promoted: boolean;
  why: string;
  champion: number | null;
}
export interface DriftOutput {
  date: string;
  drifted: boolean;
  reasons: string[];
  /** Per model: why it must be (re)trained tonight, or null. */
  retrain: Record<ModelName, string | null>;
  partition?: PartitionRef;
}
export interface ScoreOutput {
  partitions: PartitionRef[];
  scored: number;
  atRisk: number;
  notEnoughData: number;
  versions: Record<ModelName, number>;
}

const hashSchema = (names: string[]) =>
  createHash('sha256')
    .update(names.map((n) => `${n}:DOUBLE`).join(','))
    .digest('hex')
    .slice(0, 16);

function median(xs: number[]): number {
  const s = xs.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : 0;
}

function prepare(students: Student[], features: string[], pre?: Preprocess) {
  const idx = features.map((f) => FEATURES.findIndex((x) => x.name === f));
  const raw = students.map((s) => idx.map((i) => s.values[i]!));
  const medians = pre?.medians ?? features.map((_, j) => median(raw.map((r) => r[j]!)));
  const filled: Matrix = raw.map((r) =>
    Float64Array.from(r, (v, j) => {
      return Number.isFinite(v) ? v : medians[j]!;
    }),
  );
  const scaler = pre?.scaler ?? fitScaler(filled);
  return { x: scale(filled, scaler), pre: { features, medians, scaler } };
}

const log1p = (v: number) => Math.log1p(Math.max(0, v));

/** Plain words for a feature's contribution to a risk score. */
function reason(feature: string, z: number): string {
  const f = FEATURES.find((x) => x.name === feature);
  const what = f ? f.definition : feature;
  const window = f?.window ? ` over the last ${f.window} days` : '';
  return `${z < 0 ? 'low' : 'high'} ${what}${window}`;
}

/** At most n items, evenly spaced through the list (deterministic; the lists are ordered by student). */
function sample<T>(xs: T[], n: number): T[] {
  const step = Math.max(1, xs.length / n);
  const out: T[] = [];
  for (let i = 0; i < xs.length && out.length < n; i += step) out.push(xs[Math.floor(i)]!);
  return out;
}

export function createModelActivities(deps: ActivityDeps) {
  const registry = new ModelRegistry(deps.lake.store);

  /** Students on a date's gold features, with labels, sensitive group and behaviour embedding. */
  async function loadStudents(
    conn: DuckDBConnection,
    date: string,
  ): Promise<{ students: Student[]; inputs: string[] }> {
    const { manifest, paths } = await deps.lake.localFiles('gold', 'student_features', date);
    if (!manifest) throw nonRetryable(ErrorType.MissingPartition, `gold/student_features dt=${date} is not committed`);
    const inputs = [`${deps.lake.ref(manifest).uri}#${manifest.writeId}`];
    const attr = deps.config.models.sensitiveAttribute;
    const demoDate = await deps.lake.latestPartition('silver', 'student_demographics', date);
    const demo = demoDate ? (await deps.lake.localFiles('silver', 'student_demographics', demoDate)).paths : [];
    const outcomeFiles: string[] = [];
    for (const d of await deps.lake.listPartitions('silver', 'outcomes')) {
      if (d <= date) outcomeFiles.push(...(await deps.lake.localFiles('silver', 'outcomes', d)).paths);
    }
    const emb = await deps.lake.localFiles('gold', 'behaviour_embeddings', date);
    const rows = (
      await conn.runAndReadAll(`
      SELECT f.*,
        ${outcomeFiles.length ? 'o.label' : 'NULL::INTEGER AS label'},
        ${demo.length ? `CAST(d.${attr} AS VARCHAR)` : 'NULL::VARCHAR'} AS sensitive_group,
        ${emb.paths.length ? 'CAST(e.vector AS VARCHAR)' : 'NULL::VARCHAR'} AS embedding
      FROM ${partitionScan(manifest, paths)} f
      ${outcomeFiles.length ? `LEFT JOIN (SELECT student_key, arg_max(CASE WHEN outcome IN ('fail', 'withdrawn') THEN 1 ELSE 0 END, ts_utc) AS label FROM ${parquetScan(outcomeFiles)} GROUP BY student_key) o USING (student_key)` : ''}
      ${demo.length ? `LEFT JOIN ${parquetScan(demo)} d USING (student_key)` : ''}
      ${emb.paths.length ? `LEFT JOIN ${parquetScan(emb.paths)} e ON e.student_key = f.student_key AND e.course_id IS NOT DISTINCT FROM f.course_id` : ''}
      ORDER BY f.student_key, f.course_id`)
    ).getRowObjects();
    if (emb.manifest) inputs.push(`${deps.lake.ref(emb.manifest).uri}#${emb.manifest.writeId}`);
    const students = rows.map((r) => ({
      student_key: String(r.student_key),
      course_id: r.course_id === null ? null : String(r.course_id),
      values: FEATURES.map((f) => (r[f.name] === null ? NaN : Number(r[f.name]))),
      activeDays: Number(r.active_days_28d ?? 0),
      label: r.label === null || r.label === undefined ? null : Number(r.label),
      group: r.sensitive_group === null ? 'unknown' : String(r.sensitive_group),
      embedding: r.embedding ? (JSON.parse(String(r.embedding)) as number[]) : null,
    }));
    return { students, inputs };
  }

  /**
   * Labelled examples for the risk model. Each outcome decided by `date` (the latest per student and course) is paired
   * with that student's gold features `horizonDays` before the decision (the nearest earlier committed night, at most a
   * week earlier), so the model learns to warn that far ahead. Until the lake holds enough such pairs with both
   * outcomes (a term's first weeks), each student's latest earlier-term outcome labels tonight's features instead;
   * `labels` says which, and goes on the model card.
   */
  async function loadLabelled(
    conn: DuckDBConnection,
    date: string,
  ): Promise<{ students: Student[]; inputs: string[]; labels: LabelSource }> {
    const m = deps.config.models;
    const outcomeFiles: string[] = [];
    const outcomeInputs: string[] = [];
    for (const d of await deps.lake.listPartitions('silver', 'outcomes')) {
      if (d > date) continue;
      const { manifest, paths } = await deps.lake.localFiles('silver', 'outcomes', d);
      outcomeFiles.push(...paths);
      if (manifest) outcomeInputs.push(`${deps.lake.ref(manifest).uri}#${manifest.writeId}`);
    }
    const featureDates = (await deps.lake.listPartitions('gold', 'student_features')).filter((d) => d <= date);
    const decided = outcomeFiles.length
      ? (
          await conn.runAndReadAll(`
            SELECT student_key, course_id, strftime(CAST(ts_utc AS DATE), '%Y-%m-%d') AS decided,
              CASE WHEN outcome IN ('fail', 'withdrawn') THEN 1 ELSE 0 END AS label
            FROM ${parquetScan(outcomeFiles)}
            WHERE CAST(ts_utc AS DATE) <= DATE ${quotedString(date)}
            QUALIFY row_number() OVER (PARTITION BY student_key, course_id ORDER BY ts_utc DESC) = 1`)
        ).getRowObjects()
      : [];
    // The feature night for each decision: the latest committed one in [decided − horizon − 7, decided − horizon].
    const pairs = decided.flatMap((r) => {
      const target = addDays(String(r.decided), -m.horizonDays);
      const asOf = featureDates.filter((d) => d <= target && d >= addDays(target, -7)).at(-1);
      return asOf
        ? [
            {
              student_key: String(r.student_key),
              course_id: r.course_id === null ? null : String(r.course_id),
              label: Number(r.label),
              asOf,
            },
          ]
        : [];
    });
    const positives = pairs.filter((p) => p.label === 1).length;
    if (pairs.length < m.minHorizonExamples || positives < 5 || pairs.length - positives < 5) {
      const { students, inputs } = await loadStudents(conn, date);
      const labelled = students.filter((s) => s.label !== null).length;
      return {
        students,
        inputs,
        labels: {
          source: 'earlier_term',
          horizonDays: m.horizonDays,
          examples: labelled,
          why: `${pairs.length} outcomes decided with features ${m.horizonDays} days before (${positives} fail or withdraw); ${m.minHorizonExamples} with both outcomes are needed, so each student's latest earlier-term outcome labels tonight's features`,
        },
      };
    }
    const asOfDates = [...new Set(pairs.map((p) => p.asOf))].sort();
    const scans: string[] = [];
    const inputs = [...outcomeInputs];
    for (const d of asOfDates) {
      const { manifest, paths } = await deps.lake.localFiles('gold', 'student_features', d);
      scans.push(`SELECT DATE ${quotedString(d)} AS as_of, * FROM ${partitionScan(manifest, paths)}`);
      if (manifest) inputs.push(`${deps.lake.ref(manifest).uri}#${manifest.writeId}`);
    }
    const attr = m.sensitiveAttribute;
    const demoDate = await deps.lake.latestPartition('silver', 'student_demographics', date);
    const demo = demoDate ? (await deps.lake.localFiles('silver', 'student_demographics', demoDate)).paths : [];
    const pairValues = pairs
      .map(
        (p) =>
          `(${quotedString(p.student_key)}, ${p.course_id === null ? 'NULL' : quotedString(p.course_id)}, DATE ${quotedString(p.asOf)}, ${p.label})`,
      )
      .join(',\n');
    const rows = (
      await conn.runAndReadAll(`
        WITH pairs(student_key, course_id, as_of, label) AS (VALUES ${pairValues}),
        f AS (${scans.join(' UNION ALL BY NAME ')})
        SELECT f.*, pairs.label, ${demo.length ? `CAST(d.${attr} AS VARCHAR)` : 'NULL::VARCHAR'} AS sensitive_group
        FROM pairs JOIN f ON f.student_key = pairs.student_key AND f.as_of = pairs.as_of
          AND f.course_id IS NOT DISTINCT FROM pairs.course_id
        ${demo.length ? `LEFT JOIN ${parquetScan(demo)} d ON d.student_key = f.student_key` : ''}
        ORDER BY f.student_key, f.course_id`)
    ).getRowObjects();
    const students = rows.map((r) => ({
      student_key: String(r.student_key),
      course_id: r.course_id === null ? null : String(r.course_id),
      values: FEATURES.map((f) => (r[f.name] === null ? NaN : Number(r[f.name]))),
      activeDays: Number(r.active_days_28d ?? 0),
      label: Number(r.label),
      group: r.sensitive_group === null ? 'unknown' : String(r.sensitive_group),
      embedding: null,
    }));
    return {
      students,
      inputs,
      labels: {
        source: 'horizon',
        horizonDays: m.horizonDays,
        examples: students.length,
        featureNights: { from: asOfDates[0]!, to: asOfDates.at(-1)! },
        why: `${students.length} outcomes decided by ${date}, each with the student's features ${m.horizonDays} days before the decision`,
      },
    };
  }

  /** Per-student daily measures over the last days, for drift references and checks. */
  async function dailyMeasures(conn: DuckDBConnection, date: string, days: number): Promise<Record<string, number[]>> {
    const paths = await deps.lake.lookbackFiles('silver', 'student_day', date, days);
    const out: Record<string, number[]> = Object.fromEntries(DRIFT_MEASURES.map((m) => [m, []]));
    if (!paths.length) return out;
    const rows = (
      await conn.runAndReadAll(
        `SELECT ${DRIFT_MEASURES.join(', ')} FROM ${parquetScan(paths)} ORDER BY student_key, date`,
      )
    ).getRows();
    for (const r of rows) DRIFT_MEASURES.forEach((m, j) => out[m]!.push(Number(r[j] ?? 0)));
    return out;
  }

  async function driftReference(conn: DuckDBConnection, date: string, students: Student[]): Promise<DriftReference> {
    const daily = await dailyMeasures(conn, date, DRIFT_DAYS);
    const measures = Object.fromEntries(DRIFT_MEASURES.map((m) => [m, distribution(daily[m]!)]));
    const features = Object.fromEntries(FEATURES.map((f, j) => [f.name, distribution(featureValues(students, j))]));
    const withEmb = students.filter((s) => s.embedding);
    const embeddings = sample(withEmb, SAMPLE).map((s) => s.embedding!);
    return { measures, features, embeddings };
  }

  function fairness(y: ArrayLike<number>, score: ArrayLike<number>, threshold: number, groups: string[]) {
    const byGroup: Record<string, ReturnType<typeof confusionAt> & { n: number }> = {};
    for (const g of [...new Set(groups)].sort()) {
      const idx = groups.map((x, i) => (x === g ? i : -1)).filter((i) => i >= 0);
      byGroup[g] = {
        n: idx.length,
        ...confusionAt(
          idx.map((i) => score[i]!),
          idx.map((i) => y[i]!),
          threshold,
        ),
      };
    }
    const vals = (k: 'recall' | 'fpr' | 'positiveRate') =>
      Object.values(byGroup)
        .map((g) => g[k])
        .filter((v) => Number.isFinite(v));
    const spread = (xs: number[]) => (xs.length ? Math.max(...xs) - Math.min(...xs) : 0);
    return {
      attribute: deps.config.models.sensitiveAttribute,
      groups: byGroup,
      demographicParityDifference: spread(vals('positiveRate')),
      equalizedOddsDifference: Math.max(spread(vals('recall')), spread(vals('fpr'))),
    };
  }

  function riskScores(a: RiskArtifact, students: Student[]): Float64Array {
    const { x } = prepare(students, a.pre.features, a.pre);
    if (a.algorithm === 'random_forest') {
      const rf = ml().RandomForestClassifier.load(a.forest as never);
      return Float64Array.from(
        rf.predictProbability(
          x.map((r) => Array.from(r)),
          1,
        ),
      );
    }
    return predictLogistic(a.logistic!, x);
  }

  function trainRisk(train: Student[]): Omit<RiskArtifact, 'reference' | 'threshold'> {
    const features = FEATURES.map((f) => f.name);
    const { x, pre } = prepare(train, features);
    const y = Uint8Array.from(train, (s) => s.label!);
    if (deps.config.models.riskAlgorithm === 'random_forest') {
      // Class balance by oversampling the minority class (ml-random-forest takes no sample weights).
      const pos = train.map((_, i) => i).filter((i) => y[i]);
      const neg = train.map((_, i) => i).filter((i) => !y[i]);
      const [few, many] = pos.length < neg.length ? [pos, neg] : [neg, pos];
      const rows = [...many, ...Array.from({ length: many.length }, (_, k) => few[k % Math.max(1, few.length)]!)];
      const rf = new (ml().RandomForestClassifier)({ nEstimators: 100, seed: 7, maxFeatures: 0.3, replacement: true });
      rf.train(
        rows.map((i) => Array.from(x[i]!)),
        rows.map((i) => y[i]!),
      );
      return { algorithm: 'random_forest', pre, forest: rf.toJSON() };
    }
    return { algorithm: 'logistic', pre, logistic: fitLogistic(x, y, 1) };
  }

  function riskMetrics(score: ArrayLike<number>, y: ArrayLike<number>, threshold: number) {
    const prevalence = Array.from(y).reduce((a, b) => a + b, 0) / Math.max(1, y.length);
    return {
      n: y.length,
      prevalence,
      rocAuc: rocAuc(score, y),
      prAuc: averagePrecision(score, y),
      threshold,
      ...(({ recall, precision, fpr }) => ({ recall, precision, fpr }))(confusionAt(score, y, threshold)),
      precisionAtTop10Percent: precisionAtK(score, y, Math.ceil(y.length * 0.1)),
      calibration: calibration(score, y),
    };
  }

  /** Training rows: enough data and a label; 25% of students (stable hash) held out for evaluation. */
  function split(students: Student[]) {
    const usable = students.filter((s) => s.label !== null && s.activeDays >= deps.config.models.minActiveDays);
    return {
      train: usable.filter((s) => stableUnit(`holdout:${s.student_key}`) >= 0.25),
      holdout: usable.filter((s) => stableUnit(`holdout:${s.student_key}`) < 0.25),
    };
  }

  function segmentInputs(students: Student[], a?: Pick<SegmentArtifact, 'pre' | 'pca' | 'embeddingScaler'>) {
    const raw = students.map((st) => {
      const f = Object.fromEntries(
        SEGMENT_FEATURES.map((name) => {
          const v = st.values[FEATURES.findIndex((x) => x.name === name)]!;
          return [name, Number.isFinite(v) ? v : 0];
        }),
      );
      return Float64Array.from(SEGMENT_INPUTS.map((d) => d.of(f)));
    });
    const scaler = a?.pre.scaler ?? fitScaler(raw);
    const x = scale(raw, scaler);
    const pre: Preprocess = { features: SEGMENT_INPUTS.map((d) => d.name), medians: [], scaler };
    const withEmb = students.every((s) => s.embedding);
    let pca: PCA | null = null;
    let embeddingScaler = a?.embeddingScaler ?? { mean: [], std: [] };
    let rows = x.map((r) => Array.from(r));
    if (withEmb && students.length > EMBEDDING_DIMS + 1) {
      pca = a ? ml().PCA.load(a.pca as never) : new (ml().PCA)(students.map((s) => s.embedding!));
      const proj = pca
        .predict(
          students.map((s) => s.embedding!),
          { nComponents: EMBEDDING_DIMS },
        )
        .to2DArray();
      const pm: Matrix = proj.map((r) => Float64Array.from(r));
      if (!a) embeddingScaler = fitScaler(pm);
      const ps = scale(pm, embeddingScaler);
      rows = rows.map((r, i) => [...r, ...Array.from(ps[i]!).map((v) => v * EMBEDDING_WEIGHT)]);
    }
    return { rows, pre, pca: pca?.toJSON() ?? null, embeddingScaler };
  }

  function describe(means: Record<string, number>, overall: Record<string, number>): string {
    const words: string[] = [];
    const rel = (f: string) => (means[f]! + 1) / (overall[f]! + 1);
    if (rel('active_days_28d') < 0.6) words.push('are rarely active');
    if (rel('practice_events_28d') > 1.5) words.push('practise a lot');
    if (rel('video_minutes_28d') > 1.5) words.push('watch a lot of video');
    if (rel('forum_posts_28d') > 1.5) words.push('are active in the forum');
    if (!words.length) words.push('use every part of the course in balance');
    return `Students who ${words.length > 1 ? `${words.slice(0, -1).join(', ')} and ${words.at(-1)}` : words[0]}`;
  }

  function trainSegments(students: Student[], previous: SegmentArtifact | null): SegmentArtifact & { dp: number } {
    const { rows, pre, pca, embeddingScaler } = segmentInputs(students);
    const m = deps.config.models;
    let best: { k: number; clusters: number[]; model: ClusterModel; sil: number; dp: number; score: number } | null =
      null;
    const groups = students.map((s) => s.group);
    const consider = (k: number, model: ClusterModel, clusters: number[]) => {
      // Silhouette and parity over the rows placed in a cluster (DBSCAN's noise is no segment).
      const kept = clusters.map((c, i) => (c >= 0 ? i : -1)).filter((i) => i >= 0);
      if (new Set(kept.map((i) => clusters[i])).size < 2) return;
      const sil = silhouette(
        kept.map((i) => Float64Array.from(rows[i]!)),
        kept.map((i) => clusters[i]!),
      );
      const dp = segmentParity(
        kept.map((i) => clusters[i]!),
        kept.map((i) => groups[i]!),
      );
      const score = sil - m.fairnessWeight * dp;
      if (!best || score > best.score) best = { k, clusters, model, sil, dp, score };
    };
    if (m.segmentAlgorithm === 'dbscan') {
      const model = dbscan(rows);
      consider(model.centroids.length, model, assignClusters(model, rows));
    } else {
      for (let k = m.kMin; k <= Math.min(m.kMax, rows.length - 1); k++) {
        if (m.segmentAlgorithm === 'hierarchical') {
          const model = hierarchical(rows, k);
          consider(k, model, assignClusters(model, rows));
          continue;
        }
        for (let restart = 0; restart < (m.fairnessWeight > 0 ? 5 : 1); restart++) {
          const r = kmeansSeeded(rows, k, 42 + restart);
          consider(k, { algorithm: 'kmeans', centroids: r.centroids }, r.clusters);
        }
      }
    }
    if (!best) throw nonRetryable(ErrorType.ContractViolation, 'too few students with enough data to segment');
    const chosen: { k: number; clusters: number[]; model: ClusterModel; sil: number; dp: number } = best;
    const overall = Object.fromEntries(SEGMENT_FEATURES.map((f) => [f, meanOf(students, f)]));
    const profiles = chosen.model.centroids.map((_, c) => {
      const members = students.filter((_, i) => chosen.clusters[i] === c);
      const means = Object.fromEntries(SEGMENT_FEATURES.map((f) => [f, meanOf(members, f)]));
      return { id: c, size: members.length, means, description: describe(means, overall) };
    });
    // Stable ids: each new cluster takes the id of the nearest unclaimed previous profile (in standardized units).
    const ids = profiles.map((p) => p.id + 1000);
    if (previous) {
      const dist = (a: Record<string, number>, b: Record<string, number>) =>
        SEGMENT_FEATURES.reduce((s, f) => s + (log1p(a[f]!) - log1p(b[f]!)) ** 2, 0);
      const pairs = profiles
        .flatMap((p, i) => previous.profiles.map((q) => ({ i, id: q.id, d: dist(p.means, q.means) })))
        .sort((a, b) => a.d - b.d);
      const usedNew = new Set<number>();
      const usedOld = new Set<number>();
      for (const pr of pairs) {
        if (usedNew.has(pr.i) || usedOld.has(pr.id)) continue;
        ids[pr.i] = pr.id;
        usedNew.add(pr.i);
        usedOld.add(pr.id);
      }
    }
    let next = Math.max(0, ...(previous?.ids ?? []), ...ids.filter((x) => x < 1000)) + 1;
    for (let i = 0; i < ids.length; i++) if (ids[i]! >= 1000) ids[i] = next++;
    return {
      pre,
      pca,
      embeddingScaler,
      model: chosen.model,
      ids,
      profiles: profiles.map((p, i) => ({ ...p, id: ids[i]! })),
      k: chosen.k,
      silhouette: chosen.sil,
      dp: chosen.dp,
    };
  }

  function meanOf(students: Student[], feature: string): number {
    const j = FEATURES.findIndex((f) => f.name === feature);
    const xs = students.map((s) => s.values[j]!).filter((v) => Number.isFinite(v));
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
  }

  /** Largest gap, over clusters, between sensitive groups' shares of membership. */
  function segmentParity(clusters: number[], groups: string[]): number {
    const gs = [...new Set(groups)];
    let worst = 0;
    for (const c of new Set(clusters)) {
      const shares = gs.map((g) => {
        const idx = groups.map((x, i) => (x === g ? i : -1)).filter((i) => i >= 0);
        return idx.filter((i) => clusters[i] === c).length / Math.max(1, idx.length);
      });
      worst = Math.max(worst, Math.max(...shares) - Math.min(...shares));
    }
    return worst;
  }

  return {
    /**
     * Trains a challenger for `risk` or `segments` on the date's gold features and registers it as a new version
     * (metrics, fairness audit, training window, feature-schema hash, inputs). Idempotent per model, date and reason.
     */
    async trainChallenger(input: TrainInput): Promise<TrainOutput> {
      await loadMl();
      await faultHold(deps, 'trainChallenger');
      return withHeartbeat(() =>
        deps.duck.withConnection(async (conn) => {
          const window = { asOf: input.date, from: addDays(input.date, -27), to: input.date };
          const key = `${input.name}:${input.date}:${input.reason}`;
          if (input.name === 'risk') {
            const tonight = await loadStudents(conn, input.date);
            const { students, inputs, labels } = await loadLabelled(conn, input.date);
            const { train, holdout } = split(students);
            const prevalence = train.filter((s) => s.label).length;
            if (train.length < 20 || !prevalence || prevalence === train.length) {
              throw nonRetryable(
                ErrorType.ContractViolation,
                `risk: ${train.length} labelled students with enough data (${prevalence} positive); too few to train`,
              );
            }
            // Threshold from 5-fold stratified cross-validation on the training students, for the target recall.
            const folds = 5;
            const oof = new Float64Array(train.length);
            const order = train
              .map((s, i) => ({ i, y: s.label!, u: stableUnit(`fold:${s.student_key}`) }))
              .sort((a, b) => a.y - b.y || a.u - b.u);
            const fold = new Array<number>(train.length);
            order.forEach((o, r) => (fold[o.i] = r % folds));
            for (let f = 0; f < folds; f++) {
              const tr = train.filter((_, i) => fold[i] !== f);
              const te = train.filter((_, i) => fold[i] === f);
              const scores = riskScores(
                { ...trainRisk(tr), threshold: 0.5, reference: { measures: {}, embeddings: [] } },
                te,
              );
              let k = 0;
              train.forEach((_, i) => fold[i] === f && (oof[i] = scores[k++]!));
            }
            const yTrain = Uint8Array.from(train, (s) => s.label!);
            const threshold = thresholdForRecall(oof, yTrain, deps.config.models.targetRecall);
            const artifact: RiskArtifact = {
              ...trainRisk(train),
              threshold,
              reference: await driftReference(conn, input.date, tonight.students),
            };
            const hs = riskScores(artifact, holdout);
            const yh = Uint8Array.from(holdout, (s) => s.label!);
            const metrics = {
              holdout: riskMetrics(hs, yh, threshold),
              crossValidation: riskMetrics(oof, yTrain, threshold),
              trainingStudents: train.length,
            };
            const fair = fairness(
              yh,
              hs,
              threshold,
              holdout.map((s) => s.group),
            );
            const version = await registry.register(
              {
                name: 'risk',
                algorithm: artifact.algorithm,
                trainedAt: deps.clock().toISOString(),
                trainingWindow: labels.featureNights
                  ? { asOf: input.date, from: addDays(labels.featureNights.from, -27), to: labels.featureNights.to }
                  : window,
                featureSchemaHash: hashSchema(artifact.pre.features),
                inputs,
                labels,
                metrics,
                fairness: fair,
                reason: input.reason,
              },
              artifact,
              key,
            );
            return {
              name: 'risk',
              version,
              metrics: { ...metrics.holdout, calibration: undefined, labels: labels.source },
            };
          }
          const { students, inputs } = await loadStudents(conn, input.date);
          const usable = students.filter((s) => s.activeDays >= deps.config.models.minActiveDays);
          const champion = await registry.current('segments');
          const previous = champion ? await registry.artifact<SegmentArtifact>('segments', champion) : null;
          const { dp, ...artifact } = trainSegments(usable, previous);
          // Descriptions: the language model from aggregates when a key is set, else (or on a failed check) the template.
          const overall = Object.fromEntries(SEGMENT_FEATURES.map((f) => [f, meanOf(usable, f)]));
          const described = await describeSegments(
            deps.config,
            artifact.profiles.map((p) => ({
              size: p.size,
              means: Object.fromEntries(
                SEGMENT_FEATURES.map((f) => [f, [p.means[f]!, overall[f]!] as [number, number]]),
              ),
              template: p.description,
            })),
          );
          artifact.profiles.forEach((p, i) => (p.description = described.descriptions[i]!));
          const version = await registry.register(
            {
              name: 'segments',
              algorithm: artifact.model.algorithm,
              trainedAt: deps.clock().toISOString(),
              trainingWindow: window,
              featureSchemaHash: hashSchema([...SEGMENT_FEATURES, ...SEGMENT_INPUTS.map((d) => d.name)]),
              inputs,
              metrics: {
                k: artifact.k,
                silhouette: artifact.silhouette,
                students: usable.length,
                sizes: artifact.profiles.map((p) => p.size),
                descriptions: described.source,
                ...(described.fallbackReason ? { descriptionFallback: described.fallbackReason } : {}),
              },
              fairness: { attribute: deps.config.models.sensitiveAttribute, demographicParityDifference: dp },
              reason: input.reason,
            },
            artifact,
            key,
          );
          return { name: 'segments', version, metrics: { k: artifact.k, silhouette: artifact.silhouette } };
        }),
      );
    },

    /**
     * Champion or challenger: both are evaluated on the same students (the challenger's holdout for risk, tonight's
     * students for segments). The challenger is promoted unless it is worse beyond the tolerance or its fairness gap
     * is wider; the decision and its reason are written on the challenger's card.
     */
    async decidePromotion(input: { name: ModelName; version: number; date: string }): Promise<DecideOutput> {
      await loadMl();
      await faultHold(deps, 'decidePromotion');
      return deps.duck.withConnection(async (conn) => {
        const card = (await registry.card(input.name, input.version))!;
        if (card.decision) return { name: input.name, version: input.version, ...card.decision };
        const champion = await registry.current(input.name);
        const tol = deps.config.models.promoteTolerance;
        let promoted = true;
        let why = 'no champion yet';
        if (champion !== null && champion !== input.version) {
          if (input.name === 'risk') {
            const { holdout } = split((await loadLabelled(conn, input.date)).students);
            const y = holdout.map((s) => s.label!);
            const groups = holdout.map((s) => s.group);
            const evalOne = async (v: number) => {
              const a = await registry.artifact<RiskArtifact>('risk', v);
              const s = riskScores(a, holdout);
              return { prAuc: averagePrecision(s, y), eo: fairness(y, s, a.threshold, groups).equalizedOddsDifference };
            };
            const ch = await evalOne(input.version);
            const cp = await evalOne(champion);
            const worse = ch.prAuc < cp.prAuc - tol;
            const unfair = ch.eo > cp.eo + tol;
            promoted = !worse && !unfair;
            why = `challenger PR-AUC ${ch.prAuc.toFixed(3)} vs champion v${champion} ${cp.prAuc.toFixed(3)} (tolerance ${tol}); equalized-odds gap ${ch.eo.toFixed(3)} vs ${cp.eo.toFixed(3)}${worse ? ': worse' : unfair ? ': fairness gap wider' : ': not worse'}`;
          } else {
            const { students } = await loadStudents(conn, input.date);
            const usable = students.filter((s) => s.activeDays >= deps.config.models.minActiveDays);
            const groups = usable.map((s) => s.group);
            const evalOne = async (v: number) => {
              const a = await registry.artifact<SegmentArtifact>('segments', v);
              const { rows } = segmentInputs(usable, a);
              const labels = assignClusters(a.model, rows);
              return {
                sil: silhouette(
                  rows.map((r) => Float64Array.from(r)),
                  labels,
                ),
                dp: segmentParity(labels, groups),
              };
            };
            const ch = await evalOne(input.version);
            const cp = await evalOne(champion);
            const worse = ch.sil < cp.sil - tol;
            const unfair = ch.dp > cp.dp + tol;
            promoted = !worse && !unfair;
            why = `challenger silhouette ${ch.sil.toFixed(3)} vs champion v${champion} ${cp.sil.toFixed(3)} (tolerance ${tol}); parity gap ${ch.dp.toFixed(3)} vs ${cp.dp.toFixed(3)}${worse ? ': worse' : unfair ? ': fairness gap wider' : ': not worse'}`;
          }
        }
        const decision = { promoted, why, decidedAt: deps.clock().toISOString(), champion };
        await registry.decide(input.name, input.version, decision);
        return { name: input.name, version: input.version, ...decision };
      });
    },

    /**
     * Drift of tonight's data against the risk champion's training reference: PSI and KS per daily measure, MMD² on
     * behaviour embeddings; stored as `gold/drift`. Also says which models need training (none yet, drift, age).
     */
    async checkDrift(input: { date: string; runId: string; writeId: string }): Promise<DriftOutput> {
      await loadMl();
      await faultHold(deps, 'checkDrift');
      return withWorkDir(deps, 'drift', (dir) =>
        deps.duck.withConnection(async (conn) => {
          const m = deps.config.models;
          const retrain: Record<ModelName, string | null> = { risk: null, segments: null };
          const ages: Record<string, number> = {};
          for (const name of ['risk', 'segments'] as const) {
            const v = await registry.current(name);
            const card = v === null ? null : await registry.card(name, v);
            if (!card) retrain[name] = 'no model yet';
            else {
              ages[name] = Math.round((Date.parse(input.date) - Date.parse(card.trainingWindow.asOf)) / 86_400_000);
              if (ages[name]! > m.maxAgeDays) retrain[name] = `model is ${ages[name]} days old (max ${m.maxAgeDays})`;
            }
          }
          const champion = await registry.current('risk');
          if (champion === null) return { date: input.date, drifted: false, reasons: [], retrain };
          const ref = (await registry.artifact<RiskArtifact>('risk', champion)).reference;
          // Tonight's student-days against the reference week: a shift shows on the night it starts.
          const daily = await dailyMeasures(conn, input.date, 1);
          type Row = { kind: string; measure: string; psi: number; ks: number; drifted: boolean; mmd?: number };
          const compare = (kind: string, measure: string, r: Distribution, values: number[]): Row => {
            const p = psi(r.shares, binShares(values, r.edges));
            return { kind, measure, psi: p, ks: ks(r.sample, values), drifted: p > m.psiThreshold };
          };
          const rows: Row[] = DRIFT_MEASURES.map((name) =>
            compare('daily_measure', name, ref.measures[name]!, daily[name]!),
          );
          const { students } = await loadStudents(conn, input.date);
          const featureRows = FEATURES.flatMap((f, j) =>
            ref.features?.[f.name]
              ? [compare('feature', f.name, ref.features[f.name]!, featureValues(students, j))]
              : [],
          );
          const now = sample(
            students.filter((s) => s.embedding),
            SAMPLE,
          ).map((s) => s.embedding!);
          const mmd = mmd2(ref.embeddings, now);
          rows.push({
            kind: 'embedding',
            measure: 'behaviour_embedding_mmd2',
            psi: NaN,
            ks: NaN,
            drifted: mmd > m.mmdThreshold,
            mmd,
          });
          const drifting = rows.filter((r) => r.drifted);
          // One measure over the line can be noise; drift is two measures, or the embeddings.
          const drifted =
            drifting.filter((r) => r.measure !== 'behaviour_embedding_mmd2').length >= 2 || mmd > m.mmdThreshold;
          const reasons = drifting.map((r) =>
            r.measure === 'behaviour_embedding_mmd2'
              ? `behaviour embeddings MMD² ${mmd.toFixed(4)} > ${m.mmdThreshold}`
              : `${r.measure} PSI ${r.psi.toFixed(3)} > ${m.psiThreshold}`,
          );
          if (drifted) {
            for (const name of ['risk', 'segments'] as const) retrain[name] ??= `drift: ${reasons.join('; ')}`;
          }
          await rowsTable(
            conn,
            dir,
            'drift',
            [...rows, ...featureRows].map((r) => ({
              kind: r.kind,
              measure: r.measure,
              psi: Number.isFinite(r.psi) ? r.psi : null,
              ks: Number.isFinite(r.ks) ? r.ks : null,
              mmd2: r.mmd ?? null,
              drifted: r.drifted,
              decides: r.kind !== 'feature',
            })),
            {
              kind: 'VARCHAR',
              measure: 'VARCHAR',
              psi: 'DOUBLE',
              ks: 'DOUBLE',
              mmd2: 'DOUBLE',
              drifted: 'BOOLEAN',
              decides: 'BOOLEAN',
            },
          );
          const partition = await publishQuery(deps.lake, conn, dir, {
            layer: 'gold',
            dataset: 'drift',
            date: input.date,
            runId: input.runId,
            writeId: input.writeId,
            sql: `SELECT *, ${champion} AS reference_model_version, DATE ${quotedString(input.date)} AS date FROM drift`,
            orderBy: 'kind, measure',
            schemaVersion: 1,
            stats: { drifted: drifted ? 1 : 0, driftingMeasures: drifting.length },
          });
          await conn.run('DROP TABLE drift');
          return { date: input.date, drifted, reasons, retrain, partition };
        }),
      );
    },

    /** `gold/risk_scores` and `gold/segments` for every student on the date's grid, with the model versions. */
    async scoreStudents(input: { date: string; runId: string; writeId: string }): Promise<ScoreOutput> {
      await loadMl();
      await faultHold(deps, 'scoreStudents');
      return withWorkDir(deps, 'score', (dir) =>
        deps.duck.withConnection(async (conn) => {
          const rv = await registry.current('risk');
          const sv = await registry.current('segments');
          if (rv === null || sv === null)
            throw nonRetryable(ErrorType.MissingPartition, 'no champion model to score with');
          const risk = await registry.artifact<RiskArtifact>('risk', rv);
          const seg = await registry.artifact<SegmentArtifact>('segments', sv);
          const { students } = await loadStudents(conn, input.date);
          const enough = students.filter((s) => s.activeDays >= deps.config.models.minActiveDays);
          const scores = riskScores(risk, enough);
          const { x } = prepare(enough, risk.pre.features, risk.pre);
          const labels = assignClusters(seg.model, segmentInputs(enough, seg).rows);
          const byKey = new Map(enough.map((s, i) => [`${s.student_key}|${s.course_id}`, i]));
          const out = students.map((s) => {
            const i = byKey.get(`${s.student_key}|${s.course_id}`);
            if (i === undefined)
              return {
                s,
                risk: null,
                atRisk: null,
                reasons: ['not enough data'],
                segment: null,
                label: 'not enough data',
              };
            const contrib = risk.logistic
              ? risk.logistic.coef
                  .map((c, j) => ({ j, v: c * x[i]![j]! }))
                  .sort((a, b) => b.v - a.v)
                  .slice(0, 3)
                  .filter((c) => c.v > 0)
              : [];
            const id = labels[i]! >= 0 ? seg.ids[labels[i]!]! : null;
            const profile = seg.profiles.find((p) => p.id === id);
            return {
              s,
              risk: scores[i]!,
              atRisk: scores[i]! >= risk.threshold,
              reasons: contrib.map((c) => reason(risk.pre.features[c.j]!, x[i]![c.j]!)),
              segment: id,
              label: profile?.description ?? 'no segment: a pattern unlike the dense groups',
            };
          });
          await rowsTable(
            conn,
            dir,
            'scored',
            out.map((o) => ({
              student_key: o.s.student_key,
              course_id: o.s.course_id,
              risk: o.risk,
              at_risk: o.atRisk,
              reasons: o.reasons,
              segment_id: o.segment,
              segment: o.label,
            })),
            {
              student_key: 'VARCHAR',
              course_id: 'VARCHAR',
              risk: 'DOUBLE',
              at_risk: 'BOOLEAN',
              reasons: 'VARCHAR[]',
              segment_id: 'INTEGER',
              segment: 'VARCHAR',
            },
          );
          const common = { date: input.date, runId: input.runId, writeId: input.writeId, schemaVersion: 1 };
          const partitions = [
            await publishQuery(deps.lake, conn, dir, {
              ...common,
              layer: 'gold',
              dataset: 'risk_scores',
              sql: `SELECT student_key, course_id, DATE ${quotedString(input.date)} AS as_of_date, risk, at_risk, ${risk.threshold} AS threshold,
                      reasons, ${rv} AS model_version FROM scored`,
              orderBy: 'student_key, course_id',
              stats: { modelVersion: rv, atRisk: out.filter((o) => o.atRisk).length },
            }),
            await publishQuery(deps.lake, conn, dir, {
              ...common,
              layer: 'gold',
              dataset: 'segments',
              sql: `SELECT student_key, course_id, DATE ${quotedString(input.date)} AS as_of_date, segment_id, segment, ${sv} AS model_version FROM scored`,
              orderBy: 'student_key, course_id',
              stats: { modelVersion: sv },
            }),
          ];
          await conn.run('DROP TABLE scored');
          return {
            partitions,
            scored: enough.length,
            atRisk: out.filter((o) => o.atRisk).length,
            notEnoughData: students.length - enough.length,
            versions: { risk: rv, segments: sv },
          };
        }),
      );
    },

    /** The registry, for `edlake models`. */
    async listModels(): Promise<ModelCard[]> {
      const out: ModelCard[] = [];
      for (const name of ['risk', 'segments'] as const) {
        for (const v of await registry.versions(name)) out.push((await registry.card(name, v))!);
      }
      return out;
    },
  };
}
