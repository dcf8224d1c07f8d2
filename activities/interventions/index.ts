import { type DuckDBConnection, quotedString } from '@duckdb/node-api';
import { Context } from '@temporalio/activity';
import { parquetScan, partitionScan, rowsTable, sqlList } from '../../lake/duck.js';
import { addDays } from '../../lake/paths.js';
import type { PartitionRef } from '../../lake/manifest.js';
import { publishQuery } from '../../lake/publish-query.js';
import type { ObjectStore } from '../../lake/store.js';
import { type ActivityDeps, faultHold, withWorkDir } from '../context.js';
import { ErrorType, nonRetryable } from '../errors.js';
import { studentKey } from '../identity.js';
import { ModelRegistry } from '../models/registry.js';
import { type Delivery, type DeliveryReceipt, deliverEmail, deliverOutbox, deliverWebhook } from './channels.js';
import { type Composed, composeMessage, type MessageContext } from './compose.js';
import { deliveryTime, isControl, matchRule, parseQuietHours } from './policy.js';

export type InterventionStatus =
  | 'scheduled'
  | 'awaiting_approval'
  | 'approved'
  | 'rejected'
  | 'expired'
  | 'paused'
  | 'delivering'
  | 'delivered'
  | 'dead_letter';

/** One intervention a nightly run starts: a compact reference; the context stays in `gold/interventions`. */
export interface PlannedIntervention {
  id: string;
  date: string;
  studentKey: string;
  course: string | null;
  kind: MessageContext['kind'];
  channel: 'email' | 'webhook' | 'outbox';
  /** ISO instant outside the student's quiet hours. */
  deliverAt: string;
  needsApproval: boolean;
  approvalReason: string | null;
}

export interface DecideInterventionsOutput {
  partition: PartitionRef | null;
  planned: PlannedIntervention[];
  counts: { eligible: number; planned: number; control: number; skipped: Record<string, number> };
  /** Deliveries are paused (`edlake deliveries pause`): tonight's interventions start paused. */
  paused: boolean;
}

export interface StatusRecord {
  id: string;
  date: string;
  studentKey: string;
  kind: string;
  channel: string;
  status: InterventionStatus;
  at: string;
  detail?: string;
}

export function interventionId(key: string, kind: string, date: string): string {
  return `intervention-${key}-${kind}-${date}`;
}

const LEDGER = 'interventions/ledger';
/** Present while deliveries are paused: who paused them, when and why. */
export const PAUSED_KEY = 'interventions/paused.json';
const STATUS = 'interventions/status';

/** Every intervention's latest status (one object per intervention) of the dates given, or of all dates. */
export async function readInterventionStatuses(store: ObjectStore, dates?: string[]): Promise<StatusRecord[]> {
  const prefixes = dates ? dates.map((d) => `${STATUS}/dt=${d}/`) : [`${STATUS}/`];
  const out: StatusRecord[] = [];
  for (const p of prefixes) {
    for (const o of await store.list(p)) {
      const b = await store.getBytes(o.key);
      if (b) out.push(JSON.parse(b.toString('utf8')) as StatusRecord);
    }
  }
  return out;
}

/** A delivery's ledger: every attempt, failure and the confirmation, as written. */
export async function readLedger(store: ObjectStore, id: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const o of await store.list(`${LEDGER}/${id}/`)) {
    const b = await store.getBytes(o.key);
    if (b) out[o.key.slice(o.key.lastIndexOf('/') + 1).replace(/\.json$/, '')] = JSON.parse(b.toString('utf8'));
  }
  return out;
}

export function createInterventionActivities(deps: ActivityDeps) {
  const store = deps.lake.store;
  const cfg = () => deps.config.interventions;
  const now = () => deps.clock().toISOString();

  /** Contacts straight from the bronze roster, in this process's memory only, for the email channel. */
  let contacts: { ref: string; byKey: Map<string, { email: string; firstName: string }> } | null = null;
  async function contact(conn: DuckDBConnection, key: string, date: string) {
    const rosterDate = await deps.lake.latestPartition('bronze', 'roster', date);
    if (!rosterDate) throw nonRetryable(ErrorType.MissingPartition, `no roster in bronze on or before ${date}`);
    const { manifest, paths } = await deps.lake.localFiles('bronze', 'roster', rosterDate);
    const ref = `${rosterDate}#${manifest!.writeId}`;
    if (contacts?.ref !== ref) {
      const files = manifest!.files
        .map((f, i) => ({ name: f.originalName ?? f.key, path: paths[i]! }))
        .filter((f) => !/enrol/i.test(f.name));
      const rows = (
        await conn.runAndReadAll(`SELECT student_id, first_name, email FROM read_csv(${sqlList(files.map((f) => f.path))},
          header = true, all_varchar = true, union_by_name = true, hive_partitioning = false)`)
      ).getRows();
      const byKey = new Map<string, { email: string; firstName: string }>();
      for (const [id, first, email] of rows) {
        if (!id || !email) continue;
        byKey.set(studentKey(deps.config.pseudonymKey, String(id).trim()), {
          email: String(email).trim(),
          firstName: String(first ?? '').trim() || 'there',
        });
      }
      contacts = { ref, byKey };
    }
    const c = contacts.byKey.get(key);
    if (!c) throw nonRetryable(ErrorType.MissingInput, `no email address on the roster for student ${key}`);
    return c;
  }

  async function writeStatus(r: StatusRecord): Promise<void> {
    await store.putBytes(`${STATUS}/dt=${r.date}/${r.id}.json`, JSON.stringify(r));
  }
  const readStatuses = (dates?: string[]) => readInterventionStatuses(store, dates);

  return {
    /**
     * Tonight's policy: the first matching rule per student (highest-risk course), then opt-out and consent, the
     * cooldown, the control group (stable hash), the nightly cap (highest risk first) and approval for high stakes or
     * flagged groups. Every matched student gets a row in `gold/interventions` with its status and reason.
     */
    async decideInterventions(input: {
      date: string;
      runId: string;
      writeId: string;
    }): Promise<DecideInterventionsOutput> {
      await faultHold(deps, 'decideInterventions');
      const c = cfg();
      const paused = await store.exists(PAUSED_KEY);
      const empty = {
        partition: null,
        planned: [],
        counts: { eligible: 0, planned: 0, control: 0, skipped: {} },
        paused,
      };
      const scores = await deps.lake.localFiles('gold', 'risk_scores', input.date);
      if (!scores.manifest || !c.enabled) return empty;
      return withWorkDir(deps, 'interventions', (dir) =>
        deps.duck.withConnection(async (conn) => {
          const feats = await deps.lake.localFiles('gold', 'student_features', input.date);
          const segs = await deps.lake.localFiles('gold', 'segments', input.date);
          const stDate = await deps.lake.latestPartition('silver', 'students', input.date);
          const students = stDate ? (await deps.lake.localFiles('silver', 'students', stDate)).paths : [];
          const attr = deps.config.models.sensitiveAttribute;
          const demoDate = await deps.lake.latestPartition('silver', 'student_demographics', input.date);
          const demo = demoDate ? (await deps.lake.localFiles('silver', 'student_demographics', demoDate)).paths : [];
          const rows = (
            await conn.runAndReadAll(`
              SELECT r.student_key, r.course_id, r.risk, r.at_risk, r.reasons, f.*,
                ${segs.paths.length ? 's.segment' : 'NULL'} AS segment_description,
                ${students.length ? 'st.timezone, st.consent, st.opt_out' : 'NULL AS timezone, NULL AS consent, NULL AS opt_out'},
                ${demo.length ? `CAST(d.${attr} AS VARCHAR)` : 'NULL'} AS sensitive_group
              FROM ${parquetScan(scores.paths)} r
              JOIN ${partitionScan(feats.manifest, feats.paths)} f ON f.student_key = r.student_key AND f.course_id IS NOT DISTINCT FROM r.course_id
              ${segs.paths.length ? `LEFT JOIN ${parquetScan(segs.paths)} s ON s.student_key = r.student_key AND s.course_id IS NOT DISTINCT FROM r.course_id` : ''}
              ${students.length ? `LEFT JOIN ${parquetScan(students)} st ON st.student_key = r.student_key` : ''}
              ${demo.length ? `LEFT JOIN ${parquetScan(demo)} d ON d.student_key = r.student_key` : ''}
              WHERE r.risk IS NOT NULL
              ORDER BY r.risk DESC, r.student_key, r.course_id`)
          ).getRowObjects();

          // Cooldown: anyone with an intervention planned in the last cooldownDays nights (tonight excluded: a re-run
          // of tonight replaces tonight's decisions).
          const recent = new Set<string>();
          for (let k = 1; k < c.cooldownDays; k++) {
            const d = addDays(input.date, -k);
            const prev = await deps.lake.localFiles('gold', 'interventions', d);
            if (!prev.manifest) continue;
            for (const [key] of (
              await conn.runAndReadAll(
                `SELECT DISTINCT student_key FROM ${parquetScan(prev.paths)} WHERE status = 'planned'`,
              )
            ).getRows())
              recent.add(String(key));
          }
          // Groups the risk model's fairness audit flags: recall trailing the best group's by more than the gap.
          const flagged = new Set<string>();
          const riskVersion = await new ModelRegistry(store).current('risk');
          const card = riskVersion === null ? null : await new ModelRegistry(store).card('risk', riskVersion);
          const groups = (card?.fairness.groups ?? {}) as Record<string, { n: number; recall: number }>;
          const recalls = Object.values(groups)
            .filter((g) => g.n >= 10 && Number.isFinite(g.recall))
            .map((g) => g.recall);
          const best = recalls.length ? Math.max(...recalls) : 0;
          for (const [g, v] of Object.entries(groups))
            if (v.n >= 10 && Number.isFinite(v.recall) && best - v.recall > c.fairnessFlagGap) flagged.add(g);

          const quiet = parseQuietHours(c.quietHours);
          const decidedAt = deps.clock().getTime();
          const seen = new Set<string>();
          const skipped: Record<string, number> = {};
          const out: Record<string, unknown>[] = [];
          const planned: PlannedIntervention[] = [];
          let control = 0;
          let eligible = 0;
          for (const r of rows) {
            const key = String(r.student_key);
            if (seen.has(key)) continue; // one intervention per student a night: the highest-risk course decides
            const features = Object.fromEntries(
              Object.entries(r).map(([k, v]) => [k, typeof v === 'number' || typeof v === 'bigint' ? Number(v) : null]),
            );
            const rule = matchRule(c.rules, {
              risk: Number(r.risk),
              atRisk: r.at_risk === null ? null : Boolean(r.at_risk),
              features,
            });
            if (!rule) continue;
            seen.add(key);
            eligible++;
            const group = r.sensitive_group === null ? null : String(r.sensitive_group);
            const skip =
              r.opt_out === true
                ? 'opted out'
                : r.consent === false
                  ? 'no consent'
                  : recent.has(key)
                    ? `cooldown (${c.cooldownDays} days)`
                    : null;
            const isCtl = !skip && isControl(key, rule.kind, c.controlShare);
            const capped = !skip && !isCtl && planned.length >= c.nightlyCap;
            const status = skip ? 'skipped' : isCtl ? 'control' : capped ? 'skipped' : 'planned';
            const why = skip ?? (isCtl ? 'control group' : capped ? `nightly cap (${c.nightlyCap})` : null);
            if (status === 'skipped') skipped[why!] = (skipped[why!] ?? 0) + 1;
            if (status === 'control') control++;
            const id = interventionId(key, rule.kind, input.date);
            const deliverAt = new Date(deliveryTime(decidedAt, r.timezone as string | null, quiet)).toISOString();
            const approvalReason = rule.approval
              ? `${rule.kind.replace('_', ' ')} needs a person's approval`
              : group && flagged.has(group)
                ? `the risk model's fairness audit flags this student's group`
                : null;
            const reasons = Array.isArray(r.reasons)
              ? (r.reasons as unknown[]).map(String)
              : ((r.reasons as { items?: unknown[] } | null)?.items ?? []).map(String);
            out.push({
              intervention_id: id,
              student_key: key,
              course_id: r.course_id,
              kind: rule.kind,
              channel: rule.channel,
              status,
              reason: why,
              risk: Number(r.risk),
              factors: reasons,
              segment: r.segment_description,
              deliver_at: status === 'planned' ? deliverAt : null,
              needs_approval: status === 'planned' ? approvalReason !== null : null,
              approval_reason: status === 'planned' ? approvalReason : null,
              decided_at: new Date(decidedAt).toISOString(),
            });
            if (status === 'planned')
              planned.push({
                id,
                date: input.date,
                studentKey: key,
                course: r.course_id === null ? null : String(r.course_id),
                kind: rule.kind,
                channel: rule.channel,
                deliverAt,
                needsApproval: approvalReason !== null,
                approvalReason,
              });
          }
          await rowsTable(conn, dir, 'decided', out, {
            intervention_id: 'VARCHAR',
            student_key: 'VARCHAR',
            course_id: 'VARCHAR',
            kind: 'VARCHAR',
            channel: 'VARCHAR',
            status: 'VARCHAR',
            reason: 'VARCHAR',
            risk: 'DOUBLE',
            factors: 'VARCHAR[]',
            segment: 'VARCHAR',
            deliver_at: 'TIMESTAMP',
            needs_approval: 'BOOLEAN',
            approval_reason: 'VARCHAR',
            decided_at: 'TIMESTAMP',
          });
          const partition = await publishQuery(deps.lake, conn, dir, {
            date: input.date,
            runId: input.runId,
            writeId: input.writeId,
            schemaVersion: 1,
            layer: 'gold',
            dataset: 'interventions',
            sql: `SELECT *, DATE ${quotedString(input.date)} AS decided_date FROM decided`,
            orderBy: 'intervention_id',
            stats: { planned: planned.length, control, eligible },
          });
          await conn.run('DROP TABLE decided');
          return { partition, planned, counts: { eligible, planned: planned.length, control, skipped }, paused };
        }),
      );
    },

    /** Writes the message for one planned intervention from its pseudonymous context in `gold/interventions`. */
    async composeIntervention(input: { id: string; date: string }): Promise<Composed> {
      await faultHold(deps, 'composeIntervention');
      const { paths } = await deps.lake.localFiles('gold', 'interventions', input.date);
      const row = await deps.duck.withConnection(
        async (conn) =>
          (
            await conn.runAndReadAll(
              `SELECT kind, course_id, CAST(factors AS VARCHAR[]) AS factors, segment FROM ${parquetScan(paths)} WHERE intervention_id = ${quotedString(input.id)}`,
            )
          ).getRowObjects()[0],
      );
      if (!row) throw nonRetryable(ErrorType.MissingInput, `${input.id} is not in gold/interventions dt=${input.date}`);
      const factors = row.factors as { items?: unknown[] } | unknown[] | null;
      const ctx: MessageContext = {
        kind: row.kind as MessageContext['kind'],
        course: row.course_id === null ? null : String(row.course_id),
        factors: (Array.isArray(factors) ? factors : (factors?.items ?? [])).map(String),
        segment: row.segment === null ? null : String(row.segment),
      };
      return composeMessage(deps.config, ctx);
    },

    /**
     * Delivers once: the ledger is read first (a confirmed delivery is never attempted again), the attempt is recorded,
     * the channel is called with the intervention's idempotency key, and the confirmation is written right after.
     */
    async deliverIntervention(input: {
      intervention: PlannedIntervention;
      message: Composed;
    }): Promise<{ attempt: number; receipt: DeliveryReceipt; repeated: boolean }> {
      const p = input.intervention;
      const base = `${LEDGER}/${p.id}`;
      const prior = await store.getBytes(`${base}/confirmed.json`);
      if (prior) {
        const c = JSON.parse(prior.toString('utf8')) as { attempt: number; receipt: DeliveryReceipt };
        return { attempt: c.attempt, receipt: c.receipt, repeated: true };
      }
      let attempt = 1;
      try {
        attempt = Context.current().info.attempt;
      } catch {
        // outside a worker (tests calling the activity directly)
      }
      await store.putBytes(
        `${base}/attempt-${attempt}.json`,
        JSON.stringify({ attempt, channel: p.channel, startedAt: now() }),
      );
      const d: Delivery = {
        idempotencyKey: p.id,
        interventionId: p.id,
        studentKey: p.studentKey,
        kind: p.kind,
        course: p.course,
        subject: input.message.subject,
        body: input.message.body,
      };
      let receipt: DeliveryReceipt;
      try {
        receipt =
          p.channel === 'outbox'
            ? await deliverOutbox(store, d, now())
            : p.channel === 'webhook'
              ? await deliverWebhook(deps.config, d)
              : await deps.duck.withConnection(async (conn) =>
                  deliverEmail(deps.config, d, await contact(conn, p.studentKey, p.date)),
                );
      } catch (err) {
        await store.putBytes(
          `${base}/failure-${attempt}.json`,
          JSON.stringify({ attempt, at: now(), error: (err as Error).message }),
        );
        throw err;
      }
      // A crash here (after the far side accepted, before the confirmation) is the one window the README describes.
      await faultHold(deps, 'deliverIntervention.afterSend');
      await store.putBytes(`${base}/confirmed.json`, JSON.stringify({ attempt, at: now(), receipt }));
      return { attempt, receipt, repeated: false };
    },

    /** The intervention's current status, for `edlake status` and outcome measurement. */
    async recordInterventionStatus(input: StatusRecord): Promise<void> {
      await writeStatus(input);
    },

    /**
     * Engagement after delivery against the control group: for every decision night in the last 28 with follow-up
     * days, per kind, mean events and active-day share per student-day after the decision, delivered vs control.
     */
    async measureInterventionOutcomes(input: {
      date: string;
      runId: string;
      writeId: string;
    }): Promise<{ partition: PartitionRef | null; rows: number }> {
      const decisionDates = await deps.lake.listPartitions('gold', 'interventions', {
        from: addDays(input.date, -28),
        to: addDays(input.date, -1),
      });
      if (!decisionDates.length) return { partition: null, rows: 0 };
      return withWorkDir(deps, 'outcomes', (dir) =>
        deps.duck.withConnection(async (conn) => {
          const statuses = await readStatuses(decisionDates);
          await rowsTable(
            conn,
            dir,
            'statuses',
            statuses.map((s) => ({ intervention_id: s.id, status: s.status })),
            { intervention_id: 'VARCHAR', status: 'VARCHAR' },
          );
          const decisions: string[] = [];
          for (const d of decisionDates)
            decisions.push(...(await deps.lake.localFiles('gold', 'interventions', d)).paths);
          const days = await deps.lake.lookbackFiles('silver', 'student_day', input.date, 29);
          if (!days.length) return { partition: null, rows: 0 };
          await conn.run(`CREATE OR REPLACE TEMP TABLE outcomes AS
              WITH d AS (
                SELECT i.intervention_id, i.student_key, i.course_id, i.kind, i.decided_date,
                  CASE WHEN i.status = 'control' THEN 'control' ELSE 'delivered' END AS arm
                FROM ${parquetScan(decisions)} i LEFT JOIN statuses s USING (intervention_id)
                WHERE i.status = 'control' OR s.status = 'delivered'
              )
              SELECT d.decided_date, d.kind, d.arm, count(DISTINCT d.student_key) AS students,
                count(sd.date) AS student_days,
                avg(sd.events) AS events_per_day,
                avg(CASE WHEN sd.events > 0 THEN 1 ELSE 0 END) AS active_day_share
              FROM d JOIN ${parquetScan(days)} sd
                ON sd.student_key = d.student_key AND sd.course_id IS NOT DISTINCT FROM d.course_id
                AND sd.date > d.decided_date AND sd.date <= least(d.decided_date + 7, DATE ${quotedString(input.date)})
              GROUP BY ALL`);
          // Pooled over decision nights, per kind and arm, for the manifest (read by edlake status).
          const stats: Record<string, number> = {};
          for (const r of (
            await conn.runAndReadAll(`SELECT kind, arm, sum(students) AS students,
                sum(events_per_day * student_days) / sum(student_days) AS events_per_day,
                sum(active_day_share * student_days) / sum(student_days) AS active_day_share
              FROM outcomes GROUP BY ALL`)
          ).getRowObjects()) {
            const k = `${String(r.kind)}.${String(r.arm)}`;
            stats[`${k}.students`] = Number(r.students);
            stats[`${k}.events_per_day`] = Number(r.events_per_day);
            stats[`${k}.active_day_share`] = Number(r.active_day_share);
          }
          const partition = await publishQuery(deps.lake, conn, dir, {
            date: input.date,
            runId: input.runId,
            writeId: input.writeId,
            schemaVersion: 1,
            layer: 'gold',
            dataset: 'intervention_outcomes',
            sql: 'SELECT * FROM outcomes',
            orderBy: 'decided_date, kind, arm',
            stats,
          });
          await conn.run('DROP TABLE outcomes');
          await conn.run('DROP TABLE statuses');
          return { partition, rows: partition.rowCount };
        }),
      );
    },

    /** Status records of the given dates (or all), newest first: for the CLI and tests. */
    async listInterventionStatuses(input: { dates?: string[] }): Promise<StatusRecord[]> {
      return (await readStatuses(input.dates)).sort((a, b) => (a.at < b.at ? 1 : -1));
    },
  };
}
