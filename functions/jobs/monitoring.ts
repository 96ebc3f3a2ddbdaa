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
 */
import { and, eq, isNotNull, sql } from "drizzle-orm";
import { type Database, openDatabase } from "../../shared/db/client";
import { models, modelVersions, monitoringResults, monitoringRuns } from "../../shared/db/schema";
import type { DriftOverrides } from "../../shared/drift";
import { describeError } from "../../shared/errors";
import type { Baseline } from "../../shared/monitoring/baseline";
import type { InputSchema } from "../../shared/schemas/model";
import { shadowComparisons } from "../monitoring/comparison";
import {
  fallbackRow,
  type MetricRow,
  operationsRows,
  rejectionMetrics,
  versionMetrics,
  windowTraffic,
} from "../monitoring/metrics";
import type { ResultWindow } from "../monitoring/window-sql";
import { MONITORED_ROLES, windowsToCompute } from "../monitoring/windows";

export const MONITORING_JOB = "drift-quality";
export interface MonitoringRunReport {
  runId: number;
  windows: number;
  results: number;
  /** (model, version, role, window) combinations that had results and a baseline. */
  computed: { model: string; version: string; role: string; seconds: number; start: string }[];
  skipped: { model: string; version: string; reason: string }[];
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

/** Replaces a window's rows for one (model, version, role) with `rows`, in one transaction. */
async function replaceResults(
  db: Database,
  key: { model: string; version: string; role: string; seconds: number; start: Date },
  rows: MetricRow[],
  runId: number,
): Promise<void> {
  await db.transaction(async (tx) => {
    await tx
      .delete(monitoringResults)
      .where(
        and(
          eq(monitoringResults.model, key.model),
          eq(monitoringResults.version, key.version),
          eq(monitoringResults.role, key.role),
          eq(monitoringResults.windowSeconds, key.seconds),
          eq(monitoringResults.windowStart, key.start),
        ),
      );
    if (rows.length === 0) return;
    await tx.insert(monitoringResults).values(
      rows.map((row) => ({
        model: key.model,
        version: key.version,
        role: key.role,
        windowSeconds: key.seconds,
        windowStart: key.start,
        metric: row.metric,
        dimension: row.dimension,
        value: row.value,
        reason: row.reason,
        status: row.status,
        details: row.details,
        runId,
      })),
    );
  });
}

/** One run of the job at `now`; recorded in monitoring_runs whether it succeeds or fails. */
export async function runMonitoring(env: Env, now = new Date()): Promise<MonitoringRunReport> {
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
    const windows = windowsToCompute(now);
    const versions = await monitoredVersions(db);
    const withBaseline = new Map(versions.map((v) => [`${v.model}\u0000${v.version}`, v]));
    for (const window of windows) {
      const key = (model: string, version: string, role: string) => ({
        model,
        version,
        role,
        seconds: window.seconds,
        start: window.start,
      });
      // Every (model, version, role) with results: operations; where the
      // version has a baseline and the role is monitored, drift and quality too.
      const traffic = await windowTraffic(db, window.start, window.end);
      const comparisons = await shadowComparisons(db, window.start, window.end);
      const answers = new Map<string, { answers: number; fallbacks: number }>();
      for (const t of traffic) {
        if (t.role === "served" || t.role === "canary" || t.role === "fallback") {
          const entry = answers.get(t.model) ?? { answers: 0, fallbacks: 0 };
          entry.answers += t.results;
          if (t.role === "fallback") entry.fallbacks += t.results;
          answers.set(t.model, entry);
        }
        const rows = operationsRows(t);
        if (t.role === "shadow")
          rows.push(...(comparisons.get(`${t.model}\u0000${t.version}`) ?? []));
        const v = withBaseline.get(`${t.model}\u0000${t.version}`);
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
        await replaceResults(db, key(t.model, t.version, t.role), rows, runId);
        report.windows += 1;
        report.results += rows.length;
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
        await replaceResults(db, key(model, "", "all"), rows, runId);
        report.results += rows.length;
      }
    }
    await db
      .update(monitoringRuns)
      .set({
        status: "succeeded",
        finishedAt: sql`now()`,
        durationMs: Date.now() - started,
        windows: report.windows,
        results: report.results,
        details: { scheduledFor: now.toISOString(), computed: report.computed.length },
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
