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
 */
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
