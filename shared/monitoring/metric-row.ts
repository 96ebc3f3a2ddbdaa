/**
 * One monitoring result as the job stores it: a metric of a (model, version,
 * role) in a window, for one dimension.
 *
 * Statuses:
 * - `ok`, `warn`, `alert`: the verdict on the value;
 * - `insufficient_data`: too few values for a verdict (the window's counts
 *   and the minimums they missed are in `details.counts` and
 *   `details.needed`); neither a pass nor an alert;
 * - `unknown`: the statistic is not defined for these data (a constant
 *   reference, one category, one class), whatever their number.
 *
 * The row builders of each family (drift-rows.ts, quality-rows.ts,
 * operations-rows.ts, label-rows.ts, kpi-rows.ts, comparison-rows.ts) are
 * pure: functions/monitoring/ aggregates in Postgres and hands them the sums.
 */
import type { Metric } from "../metrics";

export type MetricStatus = "ok" | "warn" | "alert" | "unknown" | "insufficient_data";

export const METRIC_STATUSES = ["ok", "warn", "alert", "unknown", "insufficient_data"] as const;

export interface MetricRow {
  metric: string;
  dimension: string;
  value: number | null;
  reason: string | null;
  status: MetricStatus;
  details: Record<string, unknown>;
}

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

/** A row from a plain number: `status` when it is finite, else null with `reasonIfNot`. */
export function finiteRow(
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
