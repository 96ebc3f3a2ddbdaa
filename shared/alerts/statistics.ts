/**
 * The statistics an alert compares, named and described for people. Each
 * carries its own value, threshold and direction; an alert that folds two
 * (a feature's drift test and its PSI) shows both, each with its own.
 */
import type { AlertStatistic } from "./types";

/** Up to 4 significant digits (integers in full): `0.0001234`, `12.35`, `1235`. */
export function formatNumber(value: number | null): string {
  if (value === null) return "—";
  if (!Number.isFinite(value)) return Number.isNaN(value) ? "NaN" : value > 0 ? "∞" : "-∞";
  if (Number.isInteger(value)) return String(value);
  return String(Number(value.toPrecision(4)));
}

/** Drift methods whose value is a p-value (drift when below the threshold). */
export const P_VALUE_METHODS: ReadonlySet<string> = new Set(["ks", "chi_square"]);

const DRIFT_METHOD_NAMES: Record<string, string> = {
  ks: "KS p-value",
  chi_square: "chi-square p-value",
  wasserstein: "normalised Wasserstein distance",
  jensen_shannon: "Jensen-Shannon distance",
};

const METRIC_NAMES: Record<string, string> = {
  psi: "PSI",
  dataset_drift: "share of features drifting",
  latency_p50: "latency p50 (ms)",
  latency_p95: "latency p95 (ms)",
  latency_p99: "latency p99 (ms)",
  disparate_impact_ratio: "disparate impact ratio",
  roc_auc: "ROC AUC",
  kpi_difference: "KPI difference (canary − champion)",
};

/** What a metric's number is, in words; a drift row is named by its method. */
export function statisticName(metric: string, details: Record<string, unknown> = {}): string {
  if (metric === "drift") {
    const method = typeof details.method === "string" ? details.method : "";
    return DRIFT_METHOD_NAMES[method] ?? (method ? `${method} statistic` : "drift statistic");
  }
  return METRIC_NAMES[metric] ?? metric.replaceAll("_", " ");
}

/**
 * `KS p-value 3.6e-72 (below the threshold 0.05)`, or when the statistic is
 * within bounds, `KS p-value 0.31 (not below the threshold 0.05)`.
 */
export function describeStatistic(statistic: AlertStatistic): string {
  const value = `${statistic.name} ${formatNumber(statistic.value)}`;
  if (statistic.threshold === null) return value;
  const side = statistic.violating ? statistic.comparison : `not ${statistic.comparison}`;
  return `${value} (${side} the threshold ${formatNumber(statistic.threshold)})`;
}

/** Every statistic, described, joined: what an alert says about its values. */
export function describeStatistics(statistics: readonly AlertStatistic[]): string {
  return statistics.map(describeStatistic).join("; ");
}

/** The statistic an alert leads with: the first that broke the rule, else the first. */
export function leadingStatistic(
  statistics: readonly AlertStatistic[],
): AlertStatistic | undefined {
  return statistics.find((s) => s.violating) ?? statistics[0];
}
