/**
 * The metrics of one window of one (model, version, role) against the
 * version's baseline, from aggregates computed in Postgres. Metric names
 * (documented in the README):
 *
 * - `results` (dimension ''): results in the window, for every (version,
 *   role) with results, baseline or not (as the operations metrics below).
 * - `error_rate` (dimension ''): share of results whose call failed or timed
 *   out; `warn`/`alert` above 1% / 5%.
 * - `latency_p50`, `latency_p95`, `latency_p99` (dimension ''): the version's
 *   call latency in ms (Postgres' percentile_cont).
 * - `circuit_open_rate` (dimension ''): share of results refused because the
 *   version's circuit breaker was open in the isolate that served them
 *   (breakers live per isolate; this is what reaches the logs); `alert` when
 *   any.
 * - `fallback_rate` (model level): share of the model's answers that came
 *   from a fallback; `warn`/`alert` above 1% / 5%.
 * - `drift` (dimension: a feature, or `prediction.<field>`): the statistic of
 *   the method chosen for the field (details: method, threshold, drifted,
 *   pValue where the method has one, n, referenceN).
 * - `psi` (same dimensions): population stability index against the
 *   baseline's deciles; warn at 0.1, alert at 0.25.
 * - `dataset_drift` (dimension ''): the share of features that drift; alert
 *   when at least half do.
 * - `missing_rate` (dimension: a feature): share of results without the
 *   feature, against the baseline's share (details.baseline).
 * - `out_of_range_rate` (dimension: a numeric feature): share of values
 *   outside the baseline's [min, max]; `unseen_category_rate` (a categorical
 *   feature): share of values in categories the baseline never saw.
 * - `schema_rejection_rate` (model level: version '', role 'all'; dimension ''
 *   or a feature): rejected requests against all requests of the model, and
 *   per feature the share rejected because of it.
 *
 * A value that is not finite is stored as null with a reason.
 */
import { sql } from "drizzle-orm";
import type { Database } from "../../shared/db/client";
import {
  type DriftOverrides,
  detectDrift,
  driftGrid,
  type FeatureDrift,
  resolveDriftSettings,
} from "../../shared/drift";
import type { Metric } from "../../shared/metrics";
import type {
  Baseline,
  CategoricalSummary,
  DimensionSummary,
  NumericSummary,
} from "../../shared/monitoring/baseline";
import type { MetricRow, MetricStatus } from "../../shared/monitoring/metric-row";
import {
  applyMinimums,
  type ResolvedMinimums,
  resolveMinimums,
} from "../../shared/monitoring/minimums";
import type { InputSchema } from "../../shared/schemas/model";
import {
  binnedWindow,
  type CategoricalWindow,
  categoricalWindows,
  type NumericWindow,
  numericWindows,
  type ResultWindow,
} from "./window-sql";

export type { MetricRow, MetricStatus } from "../../shared/monitoring/metric-row";

/** The rows of one (model, version, role) in a window. */
export interface KeyedRows {
  model: string;
  version: string;
  role: string;
  rows: MetricRow[];
}

/** A row from a shared/metrics result: a value with `status`, or null with its reason. */
export function metricRow(
  metric: string,
  dimension: string,
  result: Metric,
  details: Record<string, unknown>,
  status: MetricStatus = "ok",
): MetricRow {
  return result.value === null
    ? { metric, dimension, value: null, reason: result.reason, status: "unknown", details }
    : { metric, dimension, value: result.value, reason: null, status, details };
}

/** Data quality: how far above the baseline's rate a rate may rise before a warning, an alert. */
export const QUALITY_WARN = 0.02;
export const QUALITY_ALERT = 0.1;

function finite(
  metric: string,
  dimension: string,
  value: number,
  status: MetricStatus,
  details: Record<string, unknown>,
  reasonIfNot = "not_finite",
): MetricRow {
  if (Number.isFinite(value)) return { metric, dimension, value, reason: null, status, details };
  return { metric, dimension, value: null, reason: reasonIfNot, status: "unknown", details };
}

function rateStatus(rate: number, baselineRate: number): MetricStatus {
  const excess = rate - baselineRate;
  if (excess > QUALITY_ALERT) return "alert";
  if (excess > QUALITY_WARN) return "warn";
  return "ok";
}

function qualityRows(
  name: string,
  reference: DimensionSummary,
  current: NumericWindow | CategoricalWindow,
  rows: number,
): MetricRow[] {
  const out: MetricRow[] = [];
  const baselineRate = reference.missing / Math.max(1, reference.n + reference.missing);
  const missingRate = (rows - current.n) / Math.max(1, rows);
  out.push(
    finite("missing_rate", name, missingRate, rateStatus(missingRate, baselineRate), {
      missing: rows - current.n,
      rows,
      baseline: baselineRate,
    }),
  );
  if (reference.kind === "numeric" && "buckets" in current) {
    const outside = outOfRange(reference, current);
    const rate = current.n === 0 ? Number.NaN : outside / current.n;
    out.push(
      finite(
        "out_of_range_rate",
        name,
        rate,
        rateStatus(rate, 0),
        { outside, n: current.n, min: reference.min, max: reference.max },
        "no_values",
      ),
    );
  } else if (reference.kind === "categorical" && "counts" in current) {
    let unseen = 0;
    const names: string[] = [];
    for (const [category, count] of Object.entries(current.counts)) {
      if (!Object.hasOwn(reference.counts, category) && reference.other === 0) {
        unseen += count;
        if (names.length < 20) names.push(category);
      }
    }
    const rate = current.n === 0 ? Number.NaN : unseen / current.n;
    out.push(
      finite(
        "unseen_category_rate",
        name,
        rate,
        rateStatus(rate, 0),
        { unseen, n: current.n, categories: names },
        "no_values",
      ),
    );
  }
  return out;
}

/** Values below the baseline's min or above its max, from the window's buckets. */
function outOfRange(reference: NumericSummary, window: NumericWindow): number {
  const t = window.thresholds;
  const minIndex = t.indexOf(reference.min);
  const maxIndex = t.indexOf(reference.max);
  if (minIndex < 0 || maxIndex < 0) return Number.NaN;
  let below = 0;
  for (let i = 0; i <= minIndex; i++) below += window.buckets[i] ?? 0;
  // Bucket maxIndex + 1 holds max <= x < next; the values equal to max are in range.
  let above = 0;
  for (let i = maxIndex + 1; i < window.buckets.length; i++) above += window.buckets[i] ?? 0;
  above -= window.equal[maxIndex + 1] ?? 0;
  return below + above;
}

/** Current counts keyed like the reference: categories the baseline folded into `other` count there. */
function alignedCounts(reference: CategoricalSummary, current: CategoricalWindow) {
  // Without a prototype: a category may be called "constructor" or "__proto__".
  const ref: Record<string, number> = Object.assign(Object.create(null), reference.counts);
  const cur: Record<string, number> = Object.create(null);
  if (reference.other > 0) ref[OTHER] = reference.other;
  for (const [category, count] of Object.entries(current.counts)) {
    const key =
      Object.hasOwn(reference.counts, category) || reference.other === 0 ? category : OTHER;
    cur[key] = (cur[key] ?? 0) + count;
  }
  return { ref, cur };
}
const OTHER = "(other)";

/** The edges a numeric field's window is counted over: the drift grid, plus min and max. */
export function numericThresholds(
  reference: NumericSummary,
  overrides: DriftOverrides | undefined,
  feature: string,
): number[] {
  // The feature's own PSI bins, if it overrides them: the grid must hold its edges.
  const bins = resolveDriftSettings(overrides, feature).psi.bins;
  const edges = new Set(driftGrid(reference.sample, bins));
  edges.add(reference.min);
  edges.add(reference.max);
  return [...edges].sort((a, b) => a - b);
}

function driftRows(
  dimension: string,
  reference: DimensionSummary,
  current: NumericWindow | CategoricalWindow,
  overrides: DriftOverrides | undefined,
  feature: string | undefined,
): MetricRow[] {
  let drift: FeatureDrift;
  if (reference.kind === "numeric" && "buckets" in current) {
    drift = detectDrift(
      "numeric",
      { sample: reference.sample, n: reference.n, distinct: reference.distinct },
      binnedWindow(current),
      overrides,
      feature,
    );
  } else if (reference.kind === "categorical" && "counts" in current) {
    const { ref, cur } = alignedCounts(reference, current);
    drift = detectDrift("categorical", ref, cur, overrides, feature);
  } else return [];
  const details: Record<string, unknown> = {
    kind: drift.kind,
    method: drift.method,
    statistic: finiteOrText(drift.statistic),
    threshold: drift.threshold,
    drifted: drift.drift,
    n: current.n,
    referenceN: reference.n,
  };
  if (drift.maxError !== undefined) details.maxError = drift.maxError;
  const value = drift.value;
  const rows: MetricRow[] = [
    value === null || !Number.isFinite(value)
      ? {
          metric: "drift",
          dimension,
          value: null,
          reason: drift.reason ?? "not_finite",
          status: drift.drift ? "alert" : "unknown",
          details,
        }
      : {
          metric: "drift",
          dimension,
          value,
          reason: drift.reason ?? null,
          status: drift.drift ? "alert" : "ok",
          details,
        },
  ];
  const psi = drift.psi;
  rows.push(
    psi.value === null || !Number.isFinite(psi.value)
      ? {
          metric: "psi",
          dimension,
          value: null,
          reason: psi.reason ?? drift.reason ?? "not_finite",
          status: "unknown",
          details: { n: current.n, referenceN: reference.n },
        }
      : {
          metric: "psi",
          dimension,
          value: psi.value,
          reason: null,
          status: psi.level ?? "unknown",
          details: { n: current.n, referenceN: reference.n },
        },
  );
  return rows;
}

/** JSON has no Infinity: a statistic that is not finite is kept as text. */
function finiteOrText(value: number | null): number | string | null {
  return value === null || Number.isFinite(value) ? value : String(value);
}

/** Everything the job stores for one window of one (model, version, role). */
export async function versionMetrics(
  db: Database,
  window: ResultWindow,
  rows: number,
  version: { inputSchema: InputSchema; baseline: Baseline; driftOverrides?: DriftOverrides | null },
  minimums: ResolvedMinimums = resolveMinimums(null),
): Promise<MetricRow[]> {
  const overrides = version.driftOverrides ?? undefined;
  const out: MetricRow[] = [];
  const baseline = version.baseline;
  const summaries = async (
    column: "inputs" | "prediction",
    dims: Record<string, DimensionSummary>,
  ) => {
    const numeric: Record<string, number[]> = {};
    const categorical: string[] = [];
    for (const [name, summary] of Object.entries(dims)) {
      if (summary.kind === "numeric")
        numeric[name] = numericThresholds(
          summary,
          overrides,
          column === "inputs" ? name : `prediction.${name}`,
        );
      else categorical.push(name);
    }
    return {
      ...(await numericWindows(db, window, column, numeric)),
      ...(await categoricalWindows(db, window, column, categorical)),
    } as Record<string, NumericWindow | CategoricalWindow>;
  };
  const features = await summaries("inputs", baseline.features);
  let drifting = 0;
  let judged = 0;
  for (const [name, reference] of Object.entries(baseline.features)) {
    const current = features[name];
    if (!current) continue;
    // Held to the minimums first: a feature without enough values has no
    // verdict, and does not count towards dataset drift either way.
    const drift = driftRows(name, reference, current, overrides, name).map((row) =>
      applyMinimums(row, minimums),
    );
    const verdict = drift[0];
    if (verdict && (verdict.status === "ok" || verdict.status === "alert")) {
      judged += 1;
      if (verdict.status === "alert") drifting += 1;
    }
    out.push(...drift, ...qualityRows(name, reference, current, rows));
  }
  const share = judged === 0 ? Number.NaN : drifting / judged;
  out.push(
    finite(
      "dataset_drift",
      "",
      share,
      share >= 0.5 ? "alert" : "ok",
      { drifting, features: judged },
      "no_features",
    ),
  );
  const predictions = await summaries("prediction", baseline.predictions);
  for (const [field, reference] of Object.entries(baseline.predictions)) {
    const current = predictions[field];
    if (current)
      out.push(
        ...driftRows(`prediction.${field}`, reference, current, overrides, `prediction.${field}`),
      );
  }
  return out;
}

/** Schema rejections per model in a window, as model-level metric rows. */
/**
 * The one `schema_rejection_rate` dimension of every field name outside the
 * model's input schema (`extra`, `inputs`, a misspelling): names a client
 * sends never open dimensions, or alerts, of their own.
 */
export const OTHER_FIELDS = "(not in the input schema)";

export async function rejectionMetrics(
  db: Database,
  from: Date,
  to: Date,
): Promise<Record<string, MetricRow[]>> {
  const range = sql`created_at >= ${from.toISOString()} AND created_at < ${to.toISOString()}`;
  const { rows } = await db.execute<{
    model: string;
    feature: string | null;
    rejected: string;
    accepted: string;
  }>(sql`
    WITH rej AS (
      SELECT model, count(*) AS n FROM rejected_requests WHERE ${range} GROUP BY model
    ), acc AS (
      SELECT model, count(*) AS n FROM predictions
      WHERE ${range} AND role IN ('served', 'canary', 'fallback')
        AND model IN (SELECT model FROM rej)
      GROUP BY model
    ), named AS (
      SELECT r.model, r.prediction_id, regexp_replace(i ->> 'path', '^.*[.]', '') AS name
      FROM rejected_requests r CROSS JOIN jsonb_array_elements(coalesce(r.issues, '[]'::jsonb)) AS i
      WHERE r.created_at >= ${from.toISOString()} AND r.created_at < ${to.toISOString()}
    ), feat AS (
      -- A client chooses the names it sends: only the input schema's features
      -- are dimensions of their own, every other name folds into one.
      SELECT n.model, CASE WHEN m.input_schema -> 'properties' ? n.name THEN n.name
          ELSE ${OTHER_FIELDS} END AS feature,
        count(DISTINCT n.prediction_id) AS n
      FROM named n LEFT JOIN models m ON m.name = n.model
      GROUP BY 1, 2
    )
    SELECT rej.model, NULL AS feature, rej.n AS rejected, coalesce(acc.n, 0) AS accepted
    FROM rej LEFT JOIN acc USING (model)
    UNION ALL
    SELECT feat.model, feat.feature, feat.n, coalesce(acc.n, 0)
    FROM feat JOIN rej USING (model) LEFT JOIN acc USING (model)`);
  const totals = new Map<string, number>();
  for (const row of rows)
    if (row.feature === null) totals.set(row.model, Number(row.rejected) + Number(row.accepted));
  const out: Record<string, MetricRow[]> = {};
  for (const row of rows) {
    const total = totals.get(row.model) ?? 0;
    const rejected = Number(row.rejected);
    const rate = total === 0 ? Number.NaN : rejected / total;
    const list = out[row.model] ?? [];
    out[row.model] = list;
    list.push(
      finite(
        "schema_rejection_rate",
        row.feature ?? "",
        rate,
        rateStatus(rate, 0),
        { rejected, requests: total },
        "no_requests",
      ),
    );
  }
  return out;
}

/** Error and fallback rates: above these, a warning, an alert. */
export const OPERATIONS_WARN = 0.01;
export const OPERATIONS_ALERT = 0.05;

const operationsStatus = (rate: number): MetricStatus =>
  rate > OPERATIONS_ALERT ? "alert" : rate > OPERATIONS_WARN ? "warn" : "ok";

export interface WindowTraffic {
  model: string;
  version: string;
  role: string;
  results: number;
  errors: number;
  /** Results refused by an open circuit breaker without calling the upstream. */
  circuitOpen: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

/** The operations rows of one (model, version, role): pure, from the window's aggregates. */
export function operationsRows(traffic: WindowTraffic): MetricRow[] {
  const rate = traffic.results === 0 ? Number.NaN : traffic.errors / traffic.results;
  const counted = { results: traffic.results };
  const latency = (metric: string, value: number | null): MetricRow =>
    value === null
      ? {
          metric,
          dimension: "",
          value: null,
          reason: "no_values",
          status: "unknown",
          details: counted,
        }
      : { metric, dimension: "", value, reason: null, status: "ok", details: counted };
  return [
    {
      metric: "results",
      dimension: "",
      value: traffic.results,
      reason: null,
      status: "ok",
      details: {},
    },
    finite(
      "error_rate",
      "",
      rate,
      operationsStatus(rate),
      { errors: traffic.errors, results: traffic.results },
      "no_results",
    ),
    finite(
      "circuit_open_rate",
      "",
      traffic.results === 0 ? Number.NaN : traffic.circuitOpen / traffic.results,
      traffic.circuitOpen > 0 ? "alert" : "ok",
      { refused: traffic.circuitOpen, results: traffic.results },
      "no_results",
    ),
    latency("latency_p50", traffic.p50),
    latency("latency_p95", traffic.p95),
    latency("latency_p99", traffic.p99),
  ];
}

/** Model level: the share of answers (served, canary, fallback) that a fallback gave. */
export function fallbackRow(answers: number, fallbacks: number): MetricRow {
  const rate = answers === 0 ? Number.NaN : fallbacks / answers;
  return finite(
    "fallback_rate",
    "",
    rate,
    operationsStatus(rate),
    { fallbacks, answers },
    "no_requests",
  );
}

/** Results, errors and latency percentiles per (model, version, role) with results in a window. */
export async function windowTraffic(db: Database, from: Date, to: Date): Promise<WindowTraffic[]> {
  const { rows } = await db.execute<{
    model: string;
    version: string;
    role: string;
    results: string;
    errors: string;
    circuit_open: string;
    p: (number | null)[] | null;
  }>(sql`
    SELECT model, version, role, count(*) AS results,
      count(*) FILTER (WHERE status <> 'ok') AS errors,
      count(*) FILTER (WHERE error_code = 'UPSTREAM_CIRCUIT_OPEN') AS circuit_open,
      percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) AS p
    FROM predictions
    WHERE created_at >= ${from.toISOString()} AND created_at < ${to.toISOString()}
    GROUP BY model, version, role`);
  return rows.map((row) => ({
    model: row.model,
    version: row.version,
    role: row.role,
    results: Number(row.results),
    errors: Number(row.errors),
    circuitOpen: Number(row.circuit_open),
    p50: row.p?.[0] ?? null,
    p95: row.p?.[1] ?? null,
    p99: row.p?.[2] ?? null,
  }));
}
