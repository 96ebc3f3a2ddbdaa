/**
 * Alert evaluation, after each monitoring run: every model's rules
 * (defaults with its overrides) against the latest ended window of each
 * length, plus Airlock's own health checks (health.ts), through the pure
 * lifecycle (shared/alerts/lifecycle.ts). Changes are written in one
 * transaction with the notices they cause (`alert_deliveries`, one per
 * matching destination), under an advisory lock so two runs never open the
 * same alert twice; the notices then go on the delivery queue. A notice whose
 * queue send was lost is sent again by the next run (`requeueStale`).
 */
import { sql } from "drizzle-orm";
import {
  evaluateRules,
  insufficientEvidence,
  type Observation,
  type ResultRow,
} from "../../shared/alerts/evaluate";
import {
  type AlertAction,
  type LifecycleSettings,
  type OpenAlert,
  planAlerts,
} from "../../shared/alerts/lifecycle";
import {
  type AlertRuleOverrides,
  DEFAULT_LIFECYCLE,
  type ResolvedRules,
  resolveRules,
} from "../../shared/alerts/rules";
import { type Database, openDatabase, type Queryable } from "../../shared/db/client";
import { latestWindows, type WindowLengths, windowLengths } from "../../shared/monitoring/windows";
import { destinationTakes } from "../../shared/notices/types";
import { planOverdueObservations } from "../../shared/plans/overdue";
import type { PlanState } from "../../shared/plans/state";
import { healthObservations } from "./health";

/** What a run did to alerts. */
export interface AlertReport {
  opened: number;
  folded: number;
  resolved: number;
  notices: number[];
  /** Results a rule watches that had too little data to judge (neither pass nor breach). */
  insufficient: number;
}

/** The message on the delivery queue: a delivery's id. */
export interface AlertDeliveryMessage {
  deliveryId: number;
}

const ALERT_LOCK = 7_201_914; // pg_advisory_xact_lock key of alert evaluation

async function modelRules(
  db: Database,
  lengths: WindowLengths,
): Promise<Map<string, ResolvedRules>> {
  const { rows } = await db.execute<{ name: string; alert_rules: AlertRuleOverrides | null }>(
    sql`SELECT name, alert_rules FROM models`,
  );
  const out = new Map<string, ResolvedRules>();
  for (const row of rows) {
    try {
      out.set(row.name, resolveRules(row.alert_rules, lengths));
    } catch (error) {
      // Stored overrides are validated on the way in; a later rule change may not fit them.
      console.error(
        JSON.stringify({
          level: "error",
          event: "alerts.rules_invalid",
          model: row.name,
          error: String(error),
        }),
      );
      out.set(row.name, resolveRules(null, lengths));
    }
  }
  return out;
}

async function latestResults(
  db: Database,
  now: Date,
  lengths: WindowLengths,
): Promise<ResultRow[]> {
  const windows = latestWindows(now, lengths);
  const { rows } = await db.execute<{
    model: string;
    version: string;
    role: string;
    window_seconds: number;
    window_start: string;
    metric: string;
    dimension: string;
    value: number | null;
    status: string;
    details: Record<string, unknown>;
  }>(sql`
    SELECT model, version, role, window_seconds, window_start, metric, dimension, value, status, details
    FROM monitoring_results
    WHERE (window_seconds, window_start) IN (${sql.join(
      windows.map((w) => sql`(${w.seconds}::int, ${w.start.toISOString()}::timestamptz)`),
      sql`, `,
    )})`);
  return rows.map((r) => ({
    model: r.model,
    version: r.version,
    role: r.role,
    windowSeconds: r.window_seconds,
    windowStart: new Date(r.window_start).toISOString(),
    metric: r.metric,
    dimension: r.dimension,
    value: r.value,
    status: r.status,
    details: r.details,
  }));
}

/** Observations of every model's rules over its latest results. */
export async function modelObservations(
  db: Database,
  now: Date,
  lengths: WindowLengths,
): Promise<{
  observations: Observation[];
  rules: Map<string, ResolvedRules>;
  insufficient: number;
}> {
  const rules = await modelRules(db, lengths);
  const byModel = new Map<string, ResultRow[]>();
  for (const row of await latestResults(db, now, lengths)) {
    const list = byModel.get(row.model) ?? [];
    list.push(row);
    byModel.set(row.model, list);
  }
  const observations: Observation[] = [];
  let insufficient = 0;
  for (const [model, rows] of byModel) {
    const resolved = rules.get(model);
    if (!resolved) continue;
    observations.push(...evaluateRules(resolved, rows));
    insufficient += insufficientEvidence(resolved, rows);
  }
  // Rollout plans whose phase is past its target date; ended ones clear their alert.
  const { rows: plans } = await db.execute<{ state: PlanState }>(sql`
    SELECT state FROM rollout_plans
    WHERE status IN ('active', 'paused') OR ended_at > ${now.toISOString()}::timestamptz - interval '1 day'`);
  observations.push(
    ...planOverdueObservations(
      plans.map((row) => row.state),
      now,
    ),
  );
  return { observations, rules, insufficient };
}

/** Applies one evaluation's observations; returns what changed and the notices created. */
export async function applyObservations(
  db: Database,
  observations: Observation[],
  now: Date,
  settings: (model: string) => LifecycleSettings,
  scope: "models" | "system",
): Promise<AlertReport> {
  const report: AlertReport = { opened: 0, folded: 0, resolved: 0, notices: [], insufficient: 0 };
  const at = now.toISOString();
  await db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(${ALERT_LOCK})`);
    // Model evaluations and health checks each own their alerts: neither
    // resolves the other's for want of observations.
    const { rows: open } = await tx.execute<{
      id: number;
      fingerprint: string;
      model: string;
      state: "pending" | "firing";
      count: number;
      last_seen_at: string;
      clear_since: string | null;
      window_seconds: number | null;
      window_start: string | null;
    }>(sql`
      SELECT id, fingerprint, model, state, count, last_seen_at, clear_since, window_seconds,
        window_start FROM alerts
      WHERE state IN ('pending', 'firing')
        AND ${scope === "system" ? sql`model = ''` : sql`model <> ''`}`);
    const openAlerts: OpenAlert[] = open.map((a) => ({
      id: Number(a.id),
      fingerprint: a.fingerprint,
      model: a.model,
      state: a.state,
      count: Number(a.count),
      lastSeenAt: new Date(a.last_seen_at).toISOString(),
      clearSince: a.clear_since === null ? null : new Date(a.clear_since).toISOString(),
      windowSeconds: a.window_seconds === null ? null : Number(a.window_seconds),
      windowStart: a.window_start === null ? null : new Date(a.window_start).toISOString(),
    }));
    const actions = planAlerts(openAlerts, observations, now, settings);
    for (const action of actions) {
      const id = await applyAction(tx, action, at);
      if (id === null) continue;
      const fires =
        (action.kind === "open" && action.state === "firing") || action.kind === "promote";
      if (fires) report.opened += 1;
      if (action.kind === "fold") report.folded += 1;
      if (action.kind === "resolve") report.resolved += 1;
      if (fires || action.kind === "resolve") {
        report.notices.push(...(await createNotices(tx, id, fires ? "firing" : "resolved")));
      }
    }
  });
  return report;
}

/** One action; returns the alert's id, or null when nothing changed. */
async function applyAction(db: Queryable, action: AlertAction, at: string): Promise<number | null> {
  const o = action.observation;
  if (action.kind === "open" && o) {
    const { rows } = await db.execute<{ id: number }>(sql`
      INSERT INTO alerts (fingerprint, rule, severity, state, model, version, role, metric,
        dimension, value, threshold, comparison, statistics, window_seconds, window_start,
        summary, first_seen_at, last_seen_at)
      VALUES (${o.fingerprint}, ${o.rule}, ${o.severity}, ${action.state}, ${o.model}, ${o.version},
        ${o.role}, ${o.metric}, ${o.dimension}, ${o.value}, ${o.threshold}, ${o.comparison},
        ${JSON.stringify(o.statistics)}::jsonb, ${o.windowSeconds}, ${o.windowStart}, ${o.summary},
        ${at}, ${at})
      ON CONFLICT (fingerprint) WHERE state IN ('pending', 'firing') DO NOTHING
      RETURNING id`);
    return rows[0] ? Number(rows[0].id) : null;
  }
  if ((action.kind === "fold" || action.kind === "promote") && o) {
    const { rows } = await db.execute<{ id: number }>(sql`
      UPDATE alerts SET count = count + 1, last_seen_at = ${at}, clear_since = NULL,
        state = CASE WHEN ${action.kind === "promote"} THEN 'firing' ELSE state END,
        severity = ${o.severity}, metric = ${o.metric}, value = ${o.value},
        threshold = ${o.threshold}, comparison = ${o.comparison},
        statistics = ${JSON.stringify(o.statistics)}::jsonb,
        window_seconds = ${o.windowSeconds}, window_start = ${o.windowStart}, summary = ${o.summary}
      WHERE id = ${action.id} AND state IN ('pending', 'firing')
      RETURNING id`);
    return rows[0] ? Number(rows[0].id) : null;
  }
  if (action.kind === "repeat" && o) {
    // The same window again: the latest values, not one more evaluation.
    await db.execute(sql`
      UPDATE alerts SET last_seen_at = ${at}, clear_since = NULL, severity = ${o.severity},
        metric = ${o.metric}, value = ${o.value}, threshold = ${o.threshold},
        comparison = ${o.comparison}, statistics = ${JSON.stringify(o.statistics)}::jsonb,
        summary = ${o.summary}
      WHERE id = ${action.id} AND state IN ('pending', 'firing')`);
    return null;
  }
  if (action.kind === "discard") {
    await db.execute(sql`
      UPDATE alerts SET state = 'resolved', resolved_at = ${at}, resolution = 'unconfirmed'
      WHERE id = ${action.id} AND state = 'pending'`);
    return null;
  }
  if (action.kind === "clearing") {
    await db.execute(sql`
      UPDATE alerts SET clear_since = ${at} WHERE id = ${action.id} AND state = 'firing'`);
    return action.id;
  }
  if (action.kind === "resolve") {
    const { rows } = await db.execute<{ id: number }>(sql`
      UPDATE alerts SET state = 'resolved', resolved_at = ${at}, resolution = ${action.reason},
        metric = coalesce(${o?.metric ?? null}::text, metric),
        value = CASE WHEN ${o !== null} THEN ${o?.value ?? null}::float8 ELSE value END,
        threshold = CASE WHEN ${o !== null} THEN ${o?.threshold ?? null}::float8 ELSE threshold END,
        comparison = coalesce(${o?.comparison ?? null}::text, comparison),
        statistics = coalesce(${o ? JSON.stringify(o.statistics) : null}::jsonb, statistics),
        summary = coalesce(${o?.summary ?? null}::text, summary)
      WHERE id = ${action.id} AND state = 'firing'
      RETURNING id`);
    return rows[0] ? Number(rows[0].id) : null;
  }
  return null;
}

/** The notices of an alert's transition, one per destination that takes it. */
async function createNotices(
  db: Queryable,
  alertId: number,
  transition: "firing" | "resolved",
): Promise<number[]> {
  const { rows } = await db.execute<{ id: number }>(sql`
    INSERT INTO alert_deliveries (type, model, alert_id, destination_id, transition)
    SELECT ${`alert.${transition}`}, a.model, a.id, d.id, ${transition}
    FROM alerts a JOIN alert_destinations d
      ON ${destinationTakes({ type: `alert.${transition}`, model: sql`a.model`, severity: sql`a.severity` })}
    WHERE a.id = ${alertId}
    ON CONFLICT (alert_id, destination_id, transition) DO NOTHING
    RETURNING id`);
  return rows.map((r) => Number(r.id));
}

/** Puts notices on the delivery queue; a failure is logged, and the next run sends them again. */
export async function enqueueNotices(queue: Queue, ids: number[]): Promise<void> {
  for (let i = 0; i < ids.length; i += 100) {
    const chunk = ids.slice(i, i + 100);
    try {
      await queue.sendBatch(
        chunk.map((deliveryId) => ({ body: { deliveryId } satisfies AlertDeliveryMessage })),
      );
    } catch (error) {
      console.error(
        JSON.stringify({
          level: "error",
          event: "alerts.enqueue_failed",
          deliveries: chunk.length,
          error: String(error),
        }),
      );
    }
  }
}

/** Notices pending for longer than `olderThanMs` without news: their queue message was lost. */
export async function requeueStale(db: Database, olderThanMs = 15 * 60_000): Promise<number[]> {
  const { rows } = await db.execute<{ id: number }>(sql`
    UPDATE alert_deliveries SET updated_at = now()
    WHERE status = 'pending'
      AND updated_at < now() - ${String(olderThanMs)}::int * interval '1 millisecond'
    RETURNING id`);
  return rows.map((r) => Number(r.id));
}

/**
 * The alert step of a monitoring run (and, for Airlock's own health alone,
 * of the hourly job): evaluate, apply, and queue the notices, with any left
 * from earlier runs whose queue message was lost.
 */
export async function runAlerts(
  db: Database,
  env: Pick<Env, "MODEL_ROLLOUT" | "ALERT_DELIVERIES"> & {
    ALERT_DEAD_LETTER_THRESHOLD?: string;
    MONITORING_WINDOW_SECONDS?: string;
  },
  now: Date,
  options: {
    models?: boolean;
    health?: boolean;
    /**
     * When the models' rules are evaluated, in order (default: `now`): a run
     * that computed several windows evaluates at the end of each, so that
     * each window counts once.
     */
    modelsAt?: Date[];
  } = {},
): Promise<AlertReport> {
  const total: AlertReport = { opened: 0, folded: 0, resolved: 0, notices: [], insufficient: 0 };
  const add = (report: AlertReport) => {
    total.opened += report.opened;
    total.folded += report.folded;
    total.resolved += report.resolved;
    total.notices.push(...report.notices);
    total.insufficient += report.insufficient;
  };
  if (options.models ?? true) {
    const lengths = windowLengths(env.MONITORING_WINDOW_SECONDS);
    for (const at of options.modelsAt ?? [now]) {
      const { observations, rules, insufficient } = await modelObservations(db, at, lengths);
      add({
        ...(await applyObservations(
          db,
          observations,
          at,
          (model) => rules.get(model) ?? resolveRules(null, lengths),
          "models",
        )),
        insufficient,
      });
    }
  }
  if (options.health ?? true) {
    const observations = await healthObservations(db, env, now);
    add(await applyObservations(db, observations, now, () => DEFAULT_LIFECYCLE, "system"));
  }
  const stale = await requeueStale(db);
  await enqueueNotices(env.ALERT_DELIVERIES, [...total.notices, ...stale]);
  return total;
}

/** Airlock's own health alone, with its own connection: for the hourly job. */
export async function runHealthAlerts(env: Env, now = new Date()): Promise<AlertReport> {
  const handle = openDatabase(env);
  try {
    return await runAlerts(handle.db, env, now, { models: false, health: true });
  } finally {
    await handle.close();
  }
}
