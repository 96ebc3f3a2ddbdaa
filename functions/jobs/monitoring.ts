/**
 * The drift and data-quality job: every 15 minutes, for each version with a
 * baseline and each of its roles (served, canary, shadow) with results in a
 * window, the window's aggregates are computed in Postgres and compared with
 * the baseline (functions/monitoring/metrics.ts); schema rejections are
 * counted per model. Results replace the window's earlier rows in
 * monitoring_results, so a job that runs twice changes nothing, and every run
 * is recorded in monitoring_runs with its duration and any failure.
 *
 * Windows: 15 minutes, with hourly and daily roll-ups computed from the rows
 * (not from the 15-minute results, so that statistics stay exact). Each run
 * computes, at every length, the windows that ended within the last two base
 * windows: the 15-minute window just ended and the one before it (so late
 * rows, retries and dead-letter replays are counted), an hour in the two runs
 * after it ends, a day likewise.
 *
 * Three families of metrics, each replaced as a whole per window: traffic
 * (operations, drift, data quality, comparisons), labels (quality and
 * fairness, functions/monitoring/labels.ts) and outcomes (KPIs,
 * functions/monitoring/kpis.ts). Labels and outcomes arrive late: windows
 * they arrived for are marked and only their label or outcome metrics are
 * computed again (functions/monitoring/pending.ts).
 */
import { and, eq, inArray, isNotNull, notInArray, sql } from "drizzle-orm";
import { type Database, openDatabase } from "../../shared/db/client";
import { models, modelVersions, monitoringResults, monitoringRuns } from "../../shared/db/schema";
import type { DriftOverrides } from "../../shared/drift";
import { describeError } from "../../shared/errors";
import type { Baseline } from "../../shared/monitoring/baseline";
import type { InputSchema } from "../../shared/schemas/model";
import { type AlertReport, runAlerts } from "../alerts/evaluate";
import { canaryComparisons, shadowComparisons } from "../monitoring/comparison";
import { kpiRows, kpiSums, OUTCOME_METRICS } from "../monitoring/kpis";
import { LABEL_METRICS, labelledSums, labelRows } from "../monitoring/labels";
import {
  fallbackRow,
  type KeyedRows,
  operationsRows,
  rejectionMetrics,
  versionMetrics,
  windowTraffic,
} from "../monitoring/metrics";
import { clearPending, enclosingWindows, markPending, pendingWindows } from "../monitoring/pending";
import type { ResultWindow } from "../monitoring/window-sql";
import {
  MONITORED_ROLES,
  MONITORING_JOB,
  type MonitoringWindow,
  windowsToCompute,
} from "../monitoring/windows";

export { MONITORING_JOB };
export interface MonitoringRunReport {
  runId: number;
  windows: number;
  results: number;
  /** (model, version, role, window) combinations that had results and a baseline. */
  computed: { model: string; version: string; role: string; seconds: number; start: string }[];
  skipped: { model: string; version: string; reason: string }[];
  /** Windows marked because labels or outcomes arrived for them. */
  marked: { labels: number; outcomes: number };
  /** Windows whose label or outcome metrics were computed again. */
  redone: { family: MetricFamily; seconds: number; start: string }[];
  alerts: AlertReport;
}

interface MonitoredVersion {
  model: string;
  version: string;
  task: "classification" | "regression";
  inputSchema: InputSchema;
  baseline: Baseline;
  driftOverrides: DriftOverrides | null;
}

async function monitoredVersions(db: Database): Promise<MonitoredVersion[]> {
  const rows = await db
    .select({
      model: models.name,
      version: modelVersions.version,
      task: models.task,
      inputSchema: models.inputSchema,
      baseline: modelVersions.baseline,
      monitoring: models.monitoring,
    })
    .from(modelVersions)
    .innerJoin(models, eq(models.id, modelVersions.modelId))
    .where(and(isNotNull(modelVersions.baseline)));
  return rows.map((row) => ({
    ...row,
    baseline: row.baseline as Baseline,
    driftOverrides: row.monitoring?.drift ?? null,
  }));
}

export type MetricFamily = "traffic" | "labels" | "outcomes";

const familyMetrics = (family: MetricFamily) => {
  const labels = [...LABEL_METRICS] as string[];
  const outcomes = [...OUTCOME_METRICS] as string[];
  if (family === "labels") return inArray(monitoringResults.metric, labels);
  if (family === "outcomes") return inArray(monitoringResults.metric, outcomes);
  return notInArray(monitoringResults.metric, [...labels, ...outcomes]);
};

/**
 * Replaces one family's rows of a window, for every model, with `entries`, in
 * one transaction: a key that has no rows any more loses its old ones.
 */
async function replaceFamily(
  db: Database,
  window: MonitoringWindow,
  family: MetricFamily,
  entries: KeyedRows[],
  runId: number,
): Promise<number> {
  const rows = entries.flatMap((entry) =>
    entry.rows.map((row) => ({
      model: entry.model,
      version: entry.version,
      role: entry.role,
      metric: row.metric,
      dimension: row.dimension,
      value: row.value,
      reason: row.reason,
      status: row.status,
      details: row.details,
    })),
  );
  await db.transaction(async (tx) => {
    await tx
      .delete(monitoringResults)
      .where(
        and(
          eq(monitoringResults.windowSeconds, window.seconds),
          eq(monitoringResults.windowStart, window.start),
          familyMetrics(family),
        ),
      );
    if (rows.length === 0) return;
    await tx.execute(sql`
      INSERT INTO monitoring_results (model, version, role, window_seconds, window_start,
        metric, dimension, value, reason, status, details, run_id)
      SELECT model, version, role, ${window.seconds}::int, ${window.start.toISOString()}::timestamptz,
        metric, dimension, value, reason, status, details, ${runId}::bigint
      FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS x(model text, version text,
        role text, metric text, dimension text, value float8, reason text, status text,
        details jsonb)`);
  });
  return rows.length;
}

/** Quality and fairness of every (model, version, role) with predictions in the window. */
async function labelFamily(db: Database, window: MonitoringWindow): Promise<KeyedRows[]> {
  const sums = await labelledSums(db, window.start, window.end);
  return sums.map((s) => ({
    model: s.model,
    version: s.version,
    role: s.role,
    rows: labelRows(s),
  }));
}

/** KPIs of the outcomes that happened in the window. */
async function outcomeFamily(db: Database, window: MonitoringWindow): Promise<KeyedRows[]> {
  return kpiRows(await kpiSums(db, window.start, window.end));
}

export interface MonitoringOptions {
  /** How long after its timestamp a label or outcome is taken as committed (pending.ts). */
  settleMs?: number;
  /** Evaluate the models' alert rules after the run (default true). */
  alerts?: boolean;
  /** Evaluate Airlock's own health after the run (default true). */
  health?: boolean;
}

/** One run of the job at `now`; recorded in monitoring_runs whether it succeeds or fails. */
export async function runMonitoring(
  env: Env,
  now = new Date(),
  options: MonitoringOptions = {},
): Promise<MonitoringRunReport> {
  const handle = openDatabase(env);
  const started = Date.now();
  const db = handle.db;
  let runId: number | undefined;
  const report: MonitoringRunReport = {
    runId: 0,
    windows: 0,
    results: 0,
    computed: [],
    skipped: [],
    marked: { labels: 0, outcomes: 0 },
    redone: [],
    alerts: { opened: 0, folded: 0, resolved: 0, notices: [] },
  };
  try {
    const [run] = await db
      .insert(monitoringRuns)
      .values({
        job: MONITORING_JOB,
        status: "running",
        details: { scheduledFor: now.toISOString() },
      })
      .returning({ id: monitoringRuns.id });
    runId = run?.id as number;
    report.runId = runId;
    // What arrived late since the last run, before the windows are computed.
    const marked = await markPending(db, options.settleMs);
    const windows = windowsToCompute(now);
    const versions = await monitoredVersions(db);
    const withBaseline = new Map(versions.map((v) => [`${v.model}\u0000${v.version}`, v]));
    for (const window of windows) {
      // Every (model, version, role) with results: operations; where the
      // version has a baseline and the role is monitored, drift and quality too.
      const traffic = await windowTraffic(db, window.start, window.end);
      const comparisons = await shadowComparisons(db, window.start, window.end);
      const canaries = await canaryComparisons(db, window.start, window.end);
      const answers = new Map<string, { answers: number; fallbacks: number }>();
      const entries: KeyedRows[] = [];
      for (const t of traffic) {
        if (t.role === "served" || t.role === "canary" || t.role === "fallback") {
          const entry = answers.get(t.model) ?? { answers: 0, fallbacks: 0 };
          entry.answers += t.results;
          if (t.role === "fallback") entry.fallbacks += t.results;
          answers.set(t.model, entry);
        }
        const rows = operationsRows(t);
        const pairKey = `${t.model}\u0000${t.version}`;
        if (t.role === "shadow") rows.push(...(comparisons.get(pairKey) ?? []));
        if (t.role === "canary") rows.push(...(canaries.get(pairKey) ?? []));
        const v = withBaseline.get(pairKey);
        if (v && (MONITORED_ROLES as readonly string[]).includes(t.role)) {
          const resultWindow: ResultWindow = {
            model: t.model,
            version: t.version,
            role: t.role,
            from: window.start,
            to: window.end,
          };
          rows.push(...(await versionMetrics(db, resultWindow, t.results, v)));
          report.computed.push({
            model: t.model,
            version: t.version,
            role: t.role,
            seconds: window.seconds,
            start: window.start.toISOString(),
          });
        }
        entries.push({ model: t.model, version: t.version, role: t.role, rows });
        report.windows += 1;
      }
      // Model level: the fallback rate, and schema rejections (they happen
      // before a version is chosen).
      const rejections = await rejectionMetrics(db, window.start, window.end);
      const models = new Set([...answers.keys(), ...Object.keys(rejections)]);
      for (const model of models) {
        const counted = answers.get(model);
        const rows = [
          ...(counted ? [fallbackRow(counted.answers, counted.fallbacks)] : []),
          ...(rejections[model] ?? []),
        ];
        entries.push({ model, version: "", role: "all", rows });
      }
      report.results += await replaceFamily(db, window, "traffic", entries, runId);
      report.results += await replaceFamily(
        db,
        window,
        "labels",
        await labelFamily(db, window),
        runId,
      );
      report.results += await replaceFamily(
        db,
        window,
        "outcomes",
        await outcomeFamily(db, window),
        runId,
      );
    }

    // Windows that labels or outcomes arrived for late: only that family, at
    // every length, unless the pass above has just computed the window.
    const done = new Set(windows.map((w) => `${w.seconds}:${w.start.getTime()}`));
    const pending = await pendingWindows(db, now);
    const redo = new Map<string, { family: MetricFamily; window: MonitoringWindow }>();
    for (const p of pending) {
      for (const window of enclosingWindows(p.start, now)) {
        const id = `${window.seconds}:${window.start.getTime()}`;
        if (!done.has(id)) redo.set(`${p.kind}:${id}`, { family: p.kind, window });
      }
    }
    for (const { family, window } of redo.values()) {
      const entries =
        family === "labels" ? await labelFamily(db, window) : await outcomeFamily(db, window);
      report.results += await replaceFamily(db, window, family, entries, runId);
      report.redone.push({ family, seconds: window.seconds, start: window.start.toISOString() });
    }
    for (const p of pending) await clearPending(db, p);
    report.marked = marked;

    // Rules against the results just written, and Airlock's own health.
    report.alerts = await runAlerts(db, env, now, {
      models: options.alerts ?? true,
      health: options.health ?? true,
    });
    await db
      .update(monitoringRuns)
      .set({
        status: "succeeded",
        finishedAt: sql`now()`,
        durationMs: Date.now() - started,
        windows: report.windows,
        results: report.results,
        details: {
          scheduledFor: now.toISOString(),
          computed: report.computed.length,
          marked: report.marked,
          redone: report.redone.length,
          alerts: {
            opened: report.alerts.opened,
            folded: report.alerts.folded,
            resolved: report.alerts.resolved,
            notices: report.alerts.notices.length,
          },
        },
      })
      .where(eq(monitoringRuns.id, runId));
    return report;
  } catch (error) {
    const message = describeError(error);
    console.error(
      JSON.stringify({ level: "error", event: "monitoring.failed", runId, error: message }),
    );
    if (runId !== undefined) {
      await db
        .update(monitoringRuns)
        .set({
          status: "failed",
          finishedAt: sql`now()`,
          durationMs: Date.now() - started,
          windows: report.windows,
          results: report.results,
          error: message.slice(0, 2000),
        })
        .where(eq(monitoringRuns.id, runId))
        .catch(() => undefined);
    }
    throw error;
  } finally {
    await handle.close();
  }
}
