/**
 * Airlock watching itself, from what the Worker can see: each check is an
 * observation of the system (model ''), violating or not, that goes through
 * the same lifecycle and destinations as model alerts.
 *
 * - `dead_letters`: messages in `dead_letters` neither replayed nor
 *   discarded, above ALERT_DEAD_LETTER_THRESHOLD (default 0): results that
 *   are not stored (a poison message, a result Postgres refused, a send the
 *   queue refused, a long database outage).
 * - `ingest_lag`: p95 of the time from request to stored row over results
 *   stored in the last 15 minutes, above 60 s.
 * - `monitoring_failed`: the latest finished monitoring run failed;
 *   `monitoring_late`: no run succeeded in the last 45 minutes (checked by
 *   the hourly job too, since a monitoring run that does not happen cannot
 *   report itself).
 * - `partitions`: a log table has no partition for today or tomorrow, or
 *   rows sit in its DEFAULT partition.
 * - `rollout_outbox`: a model's rollout object holds an audit event that has
 *   not reached Postgres for 10 minutes.
 * Circuit breakers are per model (the `circuit_open` rule).
 */
import { sql } from "drizzle-orm";
import type { ModelRollout } from "../../durable-objects/model-rollout";
import { fingerprintOf, type Observation } from "../../shared/alerts/evaluate";
import { formatNumber, statisticName } from "../../shared/alerts/statistics";
import type { AlertSeverity } from "../../shared/alerts/types";
import type { Database } from "../../shared/db/client";
import { MONITORING_JOB } from "../monitoring/windows";

export const INGEST_LAG_SECONDS = 60;
export const MONITORING_LATE_MINUTES = 45;
export const OUTBOX_STUCK_MINUTES = 10;
const LOG_TABLES = ["predictions", "prediction_refs", "rejected_requests"] as const;

function check(
  rule: string,
  severity: AlertSeverity,
  fields: {
    dimension?: string;
    value: number | null;
    threshold: number;
    violating: boolean;
    summary: string;
  },
): Observation {
  const dimension = fields.dimension ?? "";
  return {
    fingerprint: fingerprintOf(rule, "", "", "", dimension),
    rule,
    severity,
    model: "",
    version: "",
    role: "",
    metric: rule,
    dimension,
    value: fields.value,
    threshold: fields.threshold,
    comparison: "above",
    statistics: [
      {
        metric: rule,
        name: statisticName(rule),
        value: fields.value,
        threshold: fields.threshold,
        comparison: "above",
        violating: fields.violating,
      },
    ],
    windowSeconds: null,
    windowStart: null,
    violating: fields.violating,
    summary: fields.summary,
    forEvaluations: 1,
  };
}

/** The dead-letter threshold from the environment (default 0). */
export function deadLetterThreshold(value: string | undefined): number {
  const n = Number(value ?? "0");
  return Number.isInteger(n) && n >= 0 ? n : 0;
}

export async function healthObservations(
  db: Database,
  env: Pick<Env, "MODEL_ROLLOUT"> & { ALERT_DEAD_LETTER_THRESHOLD?: string },
  now: Date,
): Promise<Observation[]> {
  const out: Observation[] = [];
  const at = now.toISOString();

  const threshold = deadLetterThreshold(env.ALERT_DEAD_LETTER_THRESHOLD);
  const dead = await db.execute<{ n: string }>(
    sql`SELECT count(*) AS n FROM dead_letters WHERE replayed_at IS NULL AND discarded_at IS NULL`,
  );
  const waiting = Number(dead.rows[0]?.n ?? 0);
  out.push(
    check("dead_letters", "critical", {
      value: waiting,
      threshold,
      violating: waiting > threshold,
      summary: `${waiting} message(s) in dead_letters neither replayed nor discarded (threshold ${threshold}): results not stored; see GET /admin/dead-letters?status=pending`,
    }),
  );

  const lag = await db.execute<{ p95: number | null; n: string }>(sql`
    SELECT percentile_cont(0.95) WITHIN GROUP (
      ORDER BY extract(epoch FROM stored_at - created_at)) AS p95, count(*) AS n
    FROM predictions
    WHERE stored_at > ${at}::timestamptz - interval '15 minutes'
      AND stored_at <= ${at}::timestamptz
      AND created_at > ${at}::timestamptz - interval '1 day'`);
  const p95 = lag.rows[0]?.p95 ?? null;
  if (p95 !== null) {
    out.push(
      check("ingest_lag", "warning", {
        value: p95,
        threshold: INGEST_LAG_SECONDS,
        violating: p95 > INGEST_LAG_SECONDS,
        summary: `results take ${formatNumber(p95)} s (p95) from request to Postgres (threshold ${INGEST_LAG_SECONDS} s)`,
      }),
    );
  }

  const runs = await db.execute<{ status: string; error: string | null; last_ok: string | null }>(
    sql`
    SELECT
      (SELECT status FROM monitoring_runs WHERE job = ${MONITORING_JOB} AND status <> 'running'
        ORDER BY started_at DESC LIMIT 1) AS status,
      (SELECT error FROM monitoring_runs WHERE job = ${MONITORING_JOB} AND status <> 'running'
        ORDER BY started_at DESC LIMIT 1) AS error,
      (SELECT max(started_at) FROM monitoring_runs
        WHERE job = ${MONITORING_JOB} AND status = 'succeeded') AS last_ok`,
  );
  const run = runs.rows[0];
  if (run?.status) {
    out.push(
      check("monitoring_failed", "critical", {
        value: run.status === "failed" ? 1 : 0,
        threshold: 0,
        violating: run.status === "failed",
        summary:
          run.status === "failed"
            ? `the latest monitoring run failed: ${(run.error ?? "").slice(0, 300)}`
            : "the latest monitoring run succeeded",
      }),
    );
  }
  if (run?.last_ok) {
    const minutes = (now.getTime() - Date.parse(new Date(run.last_ok).toISOString())) / 60_000;
    out.push(
      check("monitoring_late", "critical", {
        value: minutes,
        threshold: MONITORING_LATE_MINUTES,
        violating: minutes > MONITORING_LATE_MINUTES,
        summary: `no monitoring run has succeeded for ${formatNumber(Math.round(minutes))} minutes`,
      }),
    );
  }

  for (const table of LOG_TABLES) {
    const { rows } = await db.execute<{ ahead: string; stray: string }>(
      sql.raw(`
      SELECT
        (SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
          WHERE i.inhparent = '"${table}"'::regclass
            AND c.relname IN ('${table}_p' || to_char(('${at}'::timestamptz AT TIME ZONE 'UTC')::date, 'YYYYMMDD'),
              '${table}_p' || to_char(('${at}'::timestamptz AT TIME ZONE 'UTC')::date + 1, 'YYYYMMDD'))) AS ahead,
        (SELECT count(*) FROM (SELECT 1 FROM "${table}_default" LIMIT 1000) d) AS stray`),
    );
    const ahead = Number(rows[0]?.ahead ?? 0);
    const stray = Number(rows[0]?.stray ?? 0);
    out.push(
      check("partitions", "warning", {
        dimension: table,
        value: stray,
        threshold: 0,
        violating: ahead < 2 || stray > 0,
        summary:
          ahead < 2
            ? `${table} has no partition for today or tomorrow: the hourly upkeep is not running`
            : stray > 0
              ? `${stray >= 1000 ? "1000 or more" : stray} row(s) of ${table} in its DEFAULT partition`
              : `${table} partitions are in place`,
      }),
    );
  }

  const models = await db.execute<{ name: string }>(sql`SELECT name FROM models ORDER BY name`);
  for (const { name } of models.rows) {
    let oldest: string | null;
    try {
      const stub = env.MODEL_ROLLOUT.getByName(name) as unknown as ModelRollout;
      oldest = (await stub.read(name, 0)).oldestPendingAuditAt;
    } catch {
      continue; // an object that cannot answer now is checked again next run
    }
    const minutes = oldest === null ? 0 : (now.getTime() - Date.parse(oldest)) / 60_000;
    out.push(
      check("rollout_outbox", "critical", {
        dimension: name,
        value: minutes,
        threshold: OUTBOX_STUCK_MINUTES,
        violating: minutes > OUTBOX_STUCK_MINUTES,
        summary:
          oldest === null
            ? `${name}: every rollout change is in the audit log`
            : `${name}: a rollout change from ${oldest} has not reached the audit log`,
      }),
    );
  }
  return out;
}
