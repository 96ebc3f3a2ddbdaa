/**
 * The monitoring job: for each version with a baseline and each of its roles
 * (served, canary, shadow) with results in a window, the window's aggregates
 * are computed in Postgres and compared with the baseline
 * (functions/monitoring/metrics.ts); schema rejections are counted per model.
 * Results replace the window's earlier rows in monitoring_results, so a job
 * that runs twice changes nothing, and every run is recorded in
 * monitoring_runs with its duration, what it computed and skipped per model
 * and version, and any failure.
 *
 * Windows (shared/monitoring/windows.ts): the base window is
 * MONITORING_WINDOW_SECONDS long (15 minutes by default), with roll-ups of
 * four and 96 windows computed from the rows (not from the shorter windows'
 * results, so that statistics stay exact). Three kinds of run:
 * - the cron and runs asked for now (POST /admin/monitoring/runs) catch up:
 *   every window that ended since the previous runs' coverage, and the one
 *   before it again for late rows, retries and dead-letter replays; then the
 *   models' alert rules are evaluated at the end of each base window not yet
 *   evaluated, so each window counts once;
 * - a backfill computes every ended window inside a past range, in chunks
 *   (functions/queue/monitoring-runs.ts), and evaluates no alert: alerts
 *   are about now;
 * - a direct call (tests) computes the two latest windows at `now`.
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
import { kpiRows } from "../../shared/monitoring/kpi-rows";
import { labelRows } from "../../shared/monitoring/label-rows";
import type { KeyedRows } from "../../shared/monitoring/metric-row";
import {
  applyMinimums,
  type ResolvedMinimums,
  resolveMinimums,
} from "../../shared/monitoring/minimums";
import { fallbackRow, operationsRows } from "../../shared/monitoring/operations-rows";
import {
  enclosingWindows,
  type MonitoringWindow,
  windowLengths,
  windowsEndingIn,
  windowsToCatchUp,
} from "../../shared/monitoring/windows";
import type { DataPolicy } from "../../shared/privacy/data-policy";
import type { InputSchema } from "../../shared/schemas/model";
import type { MonitoringSettings } from "../../shared/schemas/monitoring";
import { type AlertReport, runAlerts } from "../alerts/evaluate";
import { canaryComparisons, shadowComparisons } from "../monitoring/comparison";
import { kpiSums, OUTCOME_METRICS } from "../monitoring/kpis";
import { LABEL_METRICS, labelledSums } from "../monitoring/labels";
import { rejectionMetrics, versionMetrics, windowTraffic } from "../monitoring/metrics";
import { clearPending, markPending, pendingWindows } from "../monitoring/pending";
import type { ResultWindow } from "../monitoring/window-sql";
import { MONITORED_ROLES, MONITORING_JOB } from "../monitoring/windows";

export { MONITORING_JOB };

/** How a run came about. */
export type RunKind = "scheduled" | "requested" | "backfill" | "direct";

/** Why drift and data quality were not computed for a version in a window. */
export type SkipReason = "no baseline" | "no traffic";

/** What a run did for one model and version (version '' is the model level). */
export interface VersionSummary {
  model: string;
  version: string;
  /** Windows whose drift and data quality were computed, per role. */
  computed: Record<string, number>;
  /** Windows with operations metrics only, or nothing, and why. */
  skipped: Partial<Record<SkipReason, number>>;
}

export interface MonitoringRunReport {
  runId: number;
  kind: RunKind;
  windows: number;
  results: number;
  /** (model, version, role, window) combinations that had results and a baseline. */
  computed: { model: string; version: string; role: string; seconds: number; start: string }[];
  /** Per model and version: what was computed, and what was skipped and why. */
  versions: VersionSummary[];
  /** Base windows older than a catching-up run goes back, left for a backfill. */
  missed: { from: string; to: string; windows: number } | null;
  /** Windows marked because labels or outcomes arrived for them. */
  marked: { labels: number; outcomes: number };
  /** Windows whose label or outcome metrics were computed again. */
  redone: { family: MetricFamily; seconds: number; start: string }[];
  /** Ends of the base windows at which the models' alert rules were evaluated. */
  evaluatedAt: string[];
  alerts: AlertReport;
}

interface MonitoredVersion {
  model: string;
  version: string;
  task: "classification" | "regression";
  inputSchema: InputSchema;
  baseline: Baseline;
  driftOverrides: DriftOverrides | null;
  minimums: ResolvedMinimums;
  dataPolicy: DataPolicy | null;
}

/**
 * Each model's minimum counts (its overrides of the defaults; models without
 * any get the defaults), and the attributes its data policy drops.
 */
class ModelMinimums {
  private readonly byModel = new Map<string, ResolvedMinimums>();
  private readonly dropped = new Map<string, string[]>();
  private readonly defaults = resolveMinimums(null);

  static async load(db: Database): Promise<ModelMinimums> {
    const loaded = new ModelMinimums();
    const rows = await db
      .select({ name: models.name, monitoring: models.monitoring, dataPolicy: models.dataPolicy })
      .from(models);
    for (const row of rows) {
      const settings = row.monitoring as MonitoringSettings | null;
      if (settings?.minimums) loaded.byModel.set(row.name, resolveMinimums(settings.minimums));
      const dropped = Object.entries(row.dataPolicy?.attributes ?? {})
        .filter(([, treatment]) => treatment === "drop")
        .map(([attribute]) => attribute);
      if (dropped.length > 0) loaded.dropped.set(row.name, dropped);
    }
    return loaded;
  }

  of(model: string): ResolvedMinimums {
    return this.byModel.get(model) ?? this.defaults;
  }

  droppedAttributes(model: string): string[] {
    return this.dropped.get(model) ?? [];
  }
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
      dataPolicy: models.dataPolicy,
    })
    .from(modelVersions)
    .innerJoin(models, eq(models.id, modelVersions.modelId))
    .where(and(isNotNull(modelVersions.baseline)));
  return rows.map((row) => ({
    ...row,
    baseline: row.baseline as Baseline,
    driftOverrides: row.monitoring?.drift ?? null,
    minimums: resolveMinimums(row.monitoring?.minimums),
    dataPolicy: row.dataPolicy ?? null,
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
  minimums: ModelMinimums,
): Promise<number> {
  // Every row held to its model's minimum counts before it is stored.
  const rows = entries.flatMap((entry) =>
    entry.rows
      .map((stored) => applyMinimums(stored, minimums.of(entry.model)))
      .map((row) => ({
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
async function labelFamily(
  db: Database,
  window: MonitoringWindow,
  minimums: ModelMinimums,
): Promise<KeyedRows[]> {
  const sums = await labelledSums(db, window.start, window.end);
  return sums.map((s) => ({
    model: s.model,
    version: s.version,
    role: s.role,
    rows: labelRows(s, minimums.of(s.model).fairness.group, minimums.droppedAttributes(s.model)),
  }));
}

/** KPIs of the outcomes that happened in the window. */
async function outcomeFamily(db: Database, window: MonitoringWindow): Promise<KeyedRows[]> {
  return kpiRows(await kpiSums(db, window.start, window.end));
}

/** Per model and version, what the run computed and skipped. */
class RunSummary {
  private readonly byVersion = new Map<string, VersionSummary>();

  private entry(model: string, version: string): VersionSummary {
    const key = `${model}\u0000${version}`;
    let entry = this.byVersion.get(key);
    if (!entry) {
      entry = { model, version, computed: {}, skipped: {} };
      this.byVersion.set(key, entry);
    }
    return entry;
  }

  computed(model: string, version: string, role: string) {
    const entry = this.entry(model, version);
    entry.computed[role] = (entry.computed[role] ?? 0) + 1;
  }

  skipped(model: string, version: string, reason: SkipReason) {
    const entry = this.entry(model, version);
    entry.skipped[reason] = (entry.skipped[reason] ?? 0) + 1;
  }

  list(): VersionSummary[] {
    return [...this.byVersion.values()].sort(
      (a, b) => a.model.localeCompare(b.model) || a.version.localeCompare(b.version),
    );
  }
}

/**
 * Computes every family of one window for every model, replacing its rows;
 * returns how many (model, version, role) entries and results it wrote.
 */
async function computeWindow(
  db: Database,
  window: MonitoringWindow,
  versions: MonitoredVersion[],
  runId: number,
  report: MonitoringRunReport,
  summary: RunSummary,
  minimums: ModelMinimums,
): Promise<void> {
  const withBaseline = new Map(versions.map((v) => [`${v.model}\u0000${v.version}`, v]));
  // Every (model, version, role) with results: operations; where the
  // version has a baseline and the role is monitored, drift and quality too.
  const traffic = await windowTraffic(db, window.start, window.end);
  const comparisons = await shadowComparisons(db, window.start, window.end);
  const canaries = await canaryComparisons(db, window.start, window.end);
  const answers = new Map<string, { answers: number; fallbacks: number }>();
  const entries: KeyedRows[] = [];
  const monitoredWithTraffic = new Set<string>();
  const withoutBaseline = new Set<string>();
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
    const monitored = (MONITORED_ROLES as readonly string[]).includes(t.role);
    if (v && monitored) {
      const resultWindow: ResultWindow = {
        model: t.model,
        version: t.version,
        role: t.role,
        from: window.start,
        to: window.end,
      };
      rows.push(...(await versionMetrics(db, resultWindow, t.results, v, v.minimums)));
      report.computed.push({
        model: t.model,
        version: t.version,
        role: t.role,
        seconds: window.seconds,
        start: window.start.toISOString(),
      });
      monitoredWithTraffic.add(pairKey);
      summary.computed(t.model, t.version, t.role);
    } else if (monitored) {
      withoutBaseline.add(pairKey);
    }
    entries.push({ model: t.model, version: t.version, role: t.role, rows });
    report.windows += 1;
  }
  // Once per window and version, whatever its roles: why nothing was compared.
  for (const key of withoutBaseline) {
    const [model = "", version = ""] = key.split("\u0000");
    summary.skipped(model, version, "no baseline");
  }
  for (const v of versions) {
    if (!monitoredWithTraffic.has(`${v.model}\u0000${v.version}`))
      summary.skipped(v.model, v.version, "no traffic");
  }
  // Model level: the fallback rate, and schema rejections (they happen
  // before a version is chosen).
  const rejections = await rejectionMetrics(db, window.start, window.end);
  const modelNames = new Set([...answers.keys(), ...Object.keys(rejections)]);
  for (const model of modelNames) {
    const counted = answers.get(model);
    const rows = [
      ...(counted ? [fallbackRow(counted.answers, counted.fallbacks)] : []),
      ...(rejections[model] ?? []),
    ];
    entries.push({ model, version: "", role: "all", rows });
  }
  report.results += await replaceFamily(db, window, "traffic", entries, runId, minimums);
  report.results += await replaceFamily(
    db,
    window,
    "labels",
    await labelFamily(db, window, minimums),
    runId,
    minimums,
  );
  report.results += await replaceFamily(
    db,
    window,
    "outcomes",
    await outcomeFamily(db, window),
    runId,
    minimums,
  );
}

export interface MonitoringOptions {
  /** How long after its timestamp a label or outcome is taken as committed (pending.ts). */
  settleMs?: number;
  /** Evaluate the models' alert rules after the run (default true). */
  alerts?: boolean;
  /** Evaluate Airlock's own health after the run (default true). */
  health?: boolean;
  /**
   * Catch up from the coverage of earlier runs, and evaluate alerts once per
   * base window (the cron, and runs asked for now). Without it, the two
   * latest windows at `now` are computed and alerts evaluated at `now`.
   */
  catchUp?: boolean;
  /** How the run came about (recorded with it); default: scheduled with catchUp, else direct. */
  kind?: RunKind;
  /** The monitoring_runs row to record into (one asked for through the API). */
  runId?: number;
}

/** The cursor of how far the job has computed every window (read by rollout plans). */
export const COVERAGE_CURSOR = "windows";
const ALERTS_CURSOR = "alerts";
/**
 * A run that catches up evaluates alerts at the ends of at most this many
 * base windows, the latest: every window between two cron runs at one-minute
 * windows, while a long outage does not replay a day of the past as notices.
 */
const MAX_EVALUATIONS_PER_RUN = 32;

async function readCursor(db: Database, name: string): Promise<Date | null> {
  const { rows } = await db.execute<{ position: string }>(
    sql`SELECT position::text AS position FROM monitoring_cursors WHERE name = ${name}`,
  );
  return rows[0] ? new Date(rows[0].position) : null;
}

/** Moves a cursor forward to `to`; true when this call moved it (two runs never both do). */
async function advanceCursor(db: Database, name: string, to: Date): Promise<boolean> {
  const { rows } = await db.execute<{ name: string }>(sql`
    INSERT INTO monitoring_cursors (name, position) VALUES (${name}, ${to.toISOString()}::timestamptz)
    ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = now()
      WHERE monitoring_cursors.position < excluded.position
    RETURNING name`);
  return rows.length > 0;
}

function emptyReport(kind: RunKind): MonitoringRunReport {
  return {
    runId: 0,
    kind,
    windows: 0,
    results: 0,
    computed: [],
    versions: [],
    missed: null,
    marked: { labels: 0, outcomes: 0 },
    redone: [],
    evaluatedAt: [],
    alerts: { opened: 0, folded: 0, resolved: 0, notices: [], insufficient: 0 },
  };
}

/** Starts recording a run: a new row, or the row an API request created. */
async function beginRun(
  db: Database,
  details: Record<string, unknown>,
  runId: number | undefined,
): Promise<number> {
  if (runId !== undefined) {
    await db
      .update(monitoringRuns)
      .set({ status: "running", startedAt: sql`now()`, error: null })
      .where(eq(monitoringRuns.id, runId));
    return runId;
  }
  const [run] = await db
    .insert(monitoringRuns)
    .values({ job: MONITORING_JOB, status: "running", details })
    .returning({ id: monitoringRuns.id });
  return run?.id as number;
}

/** What a run keeps in monitoring_runs.details besides what it was asked. */
function runDetails(report: MonitoringRunReport, windows: MonitoringWindow[]) {
  const ends = windows.map((w) => w.end.getTime());
  return {
    windowsComputed: windows.length,
    windowRange:
      windows.length === 0
        ? null
        : {
            from: new Date(Math.min(...windows.map((w) => w.start.getTime()))).toISOString(),
            to: new Date(Math.max(...ends)).toISOString(),
          },
    versions: report.versions,
    missed: report.missed,
    marked: report.marked,
    redone: report.redone.length,
    evaluatedAt: report.evaluatedAt,
    alerts: {
      opened: report.alerts.opened,
      folded: report.alerts.folded,
      resolved: report.alerts.resolved,
      notices: report.alerts.notices.length,
      insufficient: report.alerts.insufficient,
    },
  };
}

async function failRun(
  db: Database,
  runId: number | undefined,
  started: number,
  report: MonitoringRunReport,
  error: unknown,
): Promise<void> {
  const message = describeError(error);
  console.error(
    JSON.stringify({ level: "error", event: "monitoring.failed", runId, error: message }),
  );
  if (runId === undefined) return;
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

/** One run of the job at `now`; recorded in monitoring_runs whether it succeeds or fails. */
export async function runMonitoring(
  env: Env,
  now = new Date(),
  options: MonitoringOptions = {},
): Promise<MonitoringRunReport> {
  const lengths = windowLengths(env.MONITORING_WINDOW_SECONDS);
  const handle = openDatabase(env);
  const started = Date.now();
  const db = handle.db;
  const kind = options.kind ?? (options.catchUp ? "scheduled" : "direct");
  const report = emptyReport(kind);
  let runId: number | undefined;
  try {
    runId = await beginRun(
      db,
      { kind, scheduledFor: now.toISOString(), windowSeconds: lengths.base },
      options.runId,
    );
    report.runId = runId;
    // What arrived late since the last run, before the windows are computed.
    const marked = await markPending(db, lengths, options.settleMs);
    let windows: MonitoringWindow[];
    let coveredUntil: Date | null = null;
    if (options.catchUp) {
      const plan = windowsToCatchUp(now, await readCursor(db, COVERAGE_CURSOR), lengths);
      windows = plan.windows;
      coveredUntil = plan.coveredUntil;
      report.missed = plan.missed && {
        from: plan.missed.from.toISOString(),
        to: plan.missed.to.toISOString(),
        windows: plan.missed.windows,
      };
    } else {
      const last = Math.floor(now.getTime() / (lengths.base * 1000)) * lengths.base * 1000;
      windows = windowsEndingIn(new Date(last - 2 * lengths.base * 1000), new Date(last), lengths);
    }
    const versions = await monitoredVersions(db);
    const minimums = await ModelMinimums.load(db);
    const summary = new RunSummary();
    for (const window of windows) {
      await computeWindow(db, window, versions, runId, report, summary, minimums);
    }
    report.versions = summary.list();

    // Windows that labels or outcomes arrived for late: only that family, at
    // every length, unless the pass above has just computed the window.
    const done = new Set(windows.map((w) => `${w.seconds}:${w.start.getTime()}`));
    const pending = await pendingWindows(db, now, lengths);
    const redo = new Map<string, { family: MetricFamily; window: MonitoringWindow }>();
    for (const p of pending) {
      for (const window of enclosingWindows(p.start, now, lengths)) {
        const id = `${window.seconds}:${window.start.getTime()}`;
        if (!done.has(id)) redo.set(`${p.kind}:${id}`, { family: p.kind, window });
      }
    }
    for (const { family, window } of redo.values()) {
      const entries =
        family === "labels"
          ? await labelFamily(db, window, minimums)
          : await outcomeFamily(db, window);
      report.results += await replaceFamily(db, window, family, entries, runId, minimums);
      report.redone.push({ family, seconds: window.seconds, start: window.start.toISOString() });
    }
    for (const p of pending) await clearPending(db, p);
    report.marked = marked;

    // Rules against the results just written, and Airlock's own health. A
    // run that catches up evaluates at the end of each base window no run
    // has evaluated yet (claimed through a cursor, so two runs never both do).
    let modelsAt: Date[] = [now];
    if (options.catchUp && coveredUntil) {
      await advanceCursor(db, COVERAGE_CURSOR, coveredUntil);
      const ends = windows
        .filter((w) => w.seconds === lengths.base)
        .map((w) => w.end)
        .slice(-MAX_EVALUATIONS_PER_RUN);
      modelsAt = [];
      for (const end of ends) if (await advanceCursor(db, ALERTS_CURSOR, end)) modelsAt.push(end);
    }
    report.evaluatedAt = modelsAt.map((d) => d.toISOString());
    report.alerts = await runAlerts(db, env, now, {
      models: (options.alerts ?? true) && modelsAt.length > 0,
      health: options.health ?? true,
      modelsAt,
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
          kind,
          scheduledFor: now.toISOString(),
          windowSeconds: lengths.base,
          ...runDetails(report, windows),
        },
      })
      .where(eq(monitoringRuns.id, runId));
    return report;
  } catch (error) {
    await failRun(db, runId, started, report, error);
    throw error;
  } finally {
    await handle.close();
  }
}

/** Where a backfill stands after a chunk. */
export interface BackfillProgress {
  report: MonitoringRunReport;
  /** End of the last window computed; null when the backfill is done. */
  next: Date | null;
}

/**
 * One chunk of a backfill: the next `maxWindows` windows of `windows` (in
 * order) whose end is after `after`; the run is `succeeded` once the last
 * chunk is done. What each chunk computed is added to the run's details.
 */
export async function runBackfillChunk(
  env: Env,
  runId: number,
  windows: MonitoringWindow[],
  after: Date | null,
  maxWindows: number,
): Promise<BackfillProgress> {
  const handle = openDatabase(env);
  const db = handle.db;
  const started = Date.now();
  const report = emptyReport("backfill");
  report.runId = runId;
  try {
    const [run] = await db
      .select({ details: monitoringRuns.details, startedAt: monitoringRuns.startedAt })
      .from(monitoringRuns)
      .where(eq(monitoringRuns.id, runId));
    if (!run) throw new Error(`monitoring run ${runId} does not exist`);
    if (after === null) await beginRun(db, {}, runId);
    const remaining = windows.filter((w) => after === null || w.end.getTime() > after.getTime());
    const chunk = remaining.slice(0, maxWindows);
    const versions = await monitoredVersions(db);
    const minimums = await ModelMinimums.load(db);
    const summary = new RunSummary();
    for (const window of chunk)
      await computeWindow(db, window, versions, runId, report, summary, minimums);
    report.versions = summary.list();
    const done = chunk.length === remaining.length;
    const previous = (run.details ?? {}) as Record<string, unknown> & {
      versions?: VersionSummary[];
    };
    const windowsDone = windows.length - remaining.length + chunk.length;
    const details = {
      ...previous,
      progress: { windowsDone, windowsTotal: windows.length },
      versions: mergeSummaries(previous.versions ?? [], report.versions),
    };
    await db
      .update(monitoringRuns)
      .set({
        status: done ? "succeeded" : "running",
        finishedAt: done ? sql`now()` : null,
        durationMs: done ? sql`(extract(epoch from now() - started_at) * 1000)::int` : null,
        windows: sql`${monitoringRuns.windows} + ${report.windows}`,
        results: sql`${monitoringRuns.results} + ${report.results}`,
        details,
      })
      .where(eq(monitoringRuns.id, runId));
    const last = chunk.at(-1);
    return { report, next: done || !last ? null : last.end };
  } catch (error) {
    await failRun(db, undefined, started, report, error);
    throw error;
  } finally {
    await handle.close();
  }
}

/** Adds one chunk's per-version counts to the run's. */
export function mergeSummaries(a: VersionSummary[], b: VersionSummary[]): VersionSummary[] {
  const out = new Map<string, VersionSummary>();
  for (const entry of [...a, ...b]) {
    const key = `${entry.model}\u0000${entry.version}`;
    const into = out.get(key) ?? {
      model: entry.model,
      version: entry.version,
      computed: {},
      skipped: {},
    };
    for (const [role, n] of Object.entries(entry.computed))
      into.computed[role] = (into.computed[role] ?? 0) + n;
    for (const [reason, n] of Object.entries(entry.skipped) as [SkipReason, number][])
      into.skipped[reason] = (into.skipped[reason] ?? 0) + n;
    out.set(key, into);
  }
  return [...out.values()].sort(
    (x, y) => x.model.localeCompare(y.model) || x.version.localeCompare(y.version),
  );
}

/** Marks a run failed (its message could not be processed); keeps what it did. */
export async function markRunFailed(env: Env, runId: number, error: unknown): Promise<void> {
  const handle = openDatabase(env);
  try {
    await handle.db
      .update(monitoringRuns)
      .set({
        status: "failed",
        finishedAt: sql`now()`,
        durationMs: sql`(extract(epoch from now() - started_at) * 1000)::int`,
        error: describeError(error).slice(0, 2000),
      })
      .where(eq(monitoringRuns.id, runId));
  } finally {
    await handle.close();
  }
}
