/**
 * Drift rows of one window against the version's baseline: pure, from the
 * window's counts (window-counts.ts).
 *
 * - `drift` (dimension: a feature, or `prediction.<field>`): the statistic of
 *   the method chosen for the field (details: method, threshold, drifted,
 *   pValue where the method has one, n, referenceN).
 * - `psi` (same dimensions): population stability index against the
 *   baseline's deciles; warn at 0.1, alert at 0.25.
 * - `dataset_drift` (dimension ''): the share of features that drift; alert
 *   when at least half do.
 *
 * `baselineRows` puts these together with each feature's data quality
 * (quality-rows.ts): everything stored for a window that has a baseline.
 * A feature the model's data policy drops or hashes has these rows without
 * a value, and the reason (`policyRows`).
 */
import {
  type DriftOverrides,
  detectDrift,
  driftGrid,
  type FeatureDrift,
  resolveDriftSettings,
} from "../drift";
import type { FieldTreatment } from "../privacy/data-policy";
import type { Baseline, CategoricalSummary, DimensionSummary, NumericSummary } from "./baseline";
import { finiteRow, type MetricRow } from "./metric-row";
import { applyMinimums, type ResolvedMinimums } from "./minimums";
import { qualityRows } from "./quality-rows";
import { binnedWindow, type CategoricalWindow, type NumericWindow } from "./window-counts";

/** A window's counts per field, as window-sql.ts returns them. */
export type FieldWindows = Record<string, NumericWindow | CategoricalWindow>;

const OTHER = "(other)";

/** Current counts keyed like the reference: categories the baseline folded into `other` count there. */
export function alignedCounts(reference: CategoricalSummary, current: CategoricalWindow) {
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

/** The `drift` and `psi` rows of one field; none when the window's kind is not the baseline's. */
export function driftRows(
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

/**
 * Everything stored for one window of `rows` results against the baseline:
 * per feature its drift, PSI and quality, then dataset drift, then the drift
 * of each prediction field. A field without counts in `windows` is skipped.
 */
export function baselineRows(
  baseline: Baseline,
  windows: { features: FieldWindows; predictions: FieldWindows },
  rows: number,
  overrides: DriftOverrides | undefined,
  minimums: ResolvedMinimums,
  treatments: Record<string, FieldTreatment> = {},
): MetricRow[] {
  const out: MetricRow[] = [];
  let drifting = 0;
  let judged = 0;
  for (const [name, reference] of Object.entries(baseline.features)) {
    const treatment = treatments[name] ?? "store";
    if (treatment === "drop" || (treatment === "hash" && !hashedCategories(reference))) {
      out.push(...policyRows(name, reference, treatment));
      continue;
    }
    const current = windows.features[name];
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
    finiteRow(
      "dataset_drift",
      "",
      share,
      share >= 0.5 ? "alert" : "ok",
      { drifting, features: judged },
      "no_features",
    ),
  );
  for (const [field, reference] of Object.entries(baseline.predictions)) {
    const current = windows.predictions[field];
    if (current)
      out.push(
        ...driftRows(`prediction.${field}`, reference, current, overrides, `prediction.${field}`),
      );
  }
  return out;
}

/**
 * Whether a baseline summarises a hashed field by its hashes (a baseline
 * drawn from traffic stored under the policy): then the field is monitored
 * as a category of hashes, equal values still being equal. A baseline of raw
 * values (uploaded, or drawn before the policy), or a numeric one, cannot
 * be compared with hashes.
 */
export function hashedCategories(reference: DimensionSummary): boolean {
  if (reference.kind !== "categorical") return false;
  const kept = Object.keys(reference.counts);
  return kept.length > 0 && kept.every((value) => value.startsWith("hmac:"));
}

/** Why a field the data policy drops or hashes has no drift or quality value. */
export const POLICY_REASONS = {
  drop: {
    reason: "dropped_by_data_policy",
    message:
      "dropped by the model's data policy: never stored, so neither drift nor data quality is monitored",
  },
  hash: {
    reason: "hashed_by_data_policy",
    message:
      "hashed by the model's data policy: stored as its HMAC, which cannot be compared with a baseline of raw values, so neither drift nor data quality is monitored (a categorical field is monitored by its hashes once its baseline is drawn from traffic stored under the policy)",
  },
} as const;

/**
 * The rows a field would have (drift, psi, missing rate, and out-of-range
 * or unseen-category rate by the baseline's kind), each without a value,
 * `insufficient_data` (neither a pass nor an alert), with the policy's
 * reason: said, not left out.
 */
export function policyRows(
  name: string,
  reference: DimensionSummary,
  treatment: Exclude<FieldTreatment, "store">,
): MetricRow[] {
  const { reason, message } = POLICY_REASONS[treatment];
  const metrics = [
    "drift",
    "psi",
    "missing_rate",
    reference.kind === "numeric" ? "out_of_range_rate" : "unseen_category_rate",
  ];
  return metrics.map((metric) => ({
    metric,
    dimension: name,
    value: null,
    reason,
    status: "insufficient_data",
    details: { dataPolicy: treatment, message },
  }));
}
