/**
 * Minimum counts before a monitoring result carries a verdict. Below them a
 * result's status is `insufficient_data`: the value is still shown, with the
 * counts it had and those it needed (`details.counts`, `details.needed`),
 * and it is neither a pass nor an alert: rules say nothing about it, and the
 * rollout gates will read it as "not enough evidence".
 *
 * Why these numbers: a p-value test (KS, chi-square) accounts for its
 * sample size, so it needs only enough values to be meaningful; a distance
 * (normalised Wasserstein, Jensen-Shannon) between two samples of one
 * population shrinks only as about 1.2 / sqrt(n), so against its 0.1
 * threshold it flags stable features by chance below about 1,000 values;
 * PSI over ten bins wants a few hundred. Each can be changed per model
 * (`PUT /admin/models/{model}/monitoring/settings`, `minimums`).
 *
 * Which count each metric is held to comes from the counts its row already
 * carries in `details`, so one pure pass applies them all.
 */
import { z } from "@hono/zod-openapi";
import type { MetricRow } from "./metric-row";

const count = z.number().int().min(1).max(1_000_000_000);

export const Minimums = z
  .object({
    driftTest: z.object({ current: count, reference: count }).partial().strict().openapi({
      description:
        "Drift by a p-value test (KS, chi-square): values in the window and in the baseline.",
    }),
    driftDistance: z.object({ current: count, reference: count }).partial().strict().openapi({
      description:
        "Drift by a distance (normalised Wasserstein, Jensen-Shannon): values in the window and in the baseline.",
    }),
    psi: z.object({ current: count, reference: count }).partial().strict(),
    dataQuality: z.object({ current: count }).partial().strict().openapi({
      description: "Missing, out-of-range and unseen-category rates: results in the window.",
    }),
    operations: z.object({ results: count }).partial().strict().openapi({
      description: "Error, circuit-open and fallback rates and latency percentiles: results.",
    }),
    schemaRejection: z.object({ requests: count }).partial().strict(),
    comparison: z
      .object({ pairs: count })
      .partial()
      .strict()
      .openapi({ description: "Shadow and canary comparisons: request pairs." }),
    quality: z.object({ labels: count, perClass: count }).partial().strict().openapi({
      description:
        "Quality from labels: labelled results, and for ROC AUC labelled results of each class.",
    }),
    fairness: z
      .object({ group: count })
      .partial()
      .strict()
      .openapi({ description: "Fairness: results in each group of an attribute." }),
    kpi: z
      .object({ perSide: count })
      .partial()
      .strict()
      .openapi({ description: "KPI difference: outcomes on each side (canary, champion)." }),
  })
  .partial()
  .strict()
  .openapi("MonitoringMinimums");
export type Minimums = z.infer<typeof Minimums>;

export const DEFAULT_MINIMUMS = {
  driftTest: { current: 100, reference: 100 },
  driftDistance: { current: 1000, reference: 1000 },
  psi: { current: 200, reference: 100 },
  dataQuality: { current: 100 },
  operations: { results: 30 },
  schemaRejection: { requests: 30 },
  comparison: { pairs: 100 },
  quality: { labels: 100, perClass: 10 },
  fairness: { group: 30 },
  kpi: { perSide: 30 },
} as const;

export type ResolvedMinimums = {
  [K in keyof typeof DEFAULT_MINIMUMS]: Record<keyof (typeof DEFAULT_MINIMUMS)[K], number>;
};

/** The defaults with a model's overrides. */
export function resolveMinimums(overrides: Minimums | null | undefined): ResolvedMinimums {
  const out = {} as Record<string, Record<string, number>>;
  for (const [name, defaults] of Object.entries(DEFAULT_MINIMUMS)) {
    out[name] = {
      ...defaults,
      ...((overrides as Record<string, object> | null | undefined)?.[name] ?? {}),
    };
  }
  return out as ResolvedMinimums;
}

/** Reasons that say a statistic had no data or too little, rather than that it is undefined. */
const NO_DATA_REASONS = new Set([
  "empty_current",
  "empty_reference",
  "no_values",
  "no_results",
  "no_requests",
  "no_features",
  "no_predictions",
  "no_labels",
  "too_few",
  "too_few_groups",
  "group_too_small",
]);

const COMPARISON = /^(shadow|canary)_/;
const QUALITY = new Set([
  "accuracy",
  "precision",
  "recall",
  "f1",
  "log_loss",
  "mae",
  "rmse",
  "r2",
  "mean_error",
]);
const FAIRNESS_BY_ATTRIBUTE = new Set([
  "demographic_parity_difference",
  "disparate_impact_ratio",
  "equal_opportunity_difference",
]);
const OPERATIONS = new Set([
  "error_rate",
  "circuit_open_rate",
  "latency_p50",
  "latency_p95",
  "latency_p99",
]);

const num = (value: unknown): number =>
  typeof value === "number" && Number.isFinite(value) ? value : 0;

/** What a row's verdict needs and what it had, or null when it is held to nothing. */
export function requirement(
  row: MetricRow,
  minimums: ResolvedMinimums,
): { counts: Record<string, number>; needed: Record<string, number> } | null {
  const d = row.details;
  const side = (name: string) => num((d[name] as { n?: unknown } | undefined)?.n);
  if (row.metric === "drift") {
    const p = d.method === "ks" || d.method === "chi_square";
    const m = p ? minimums.driftTest : minimums.driftDistance;
    return {
      counts: { current: num(d.n), reference: num(d.referenceN) },
      needed: { current: m.current, reference: m.reference },
    };
  }
  if (row.metric === "psi")
    return {
      counts: { current: num(d.n), reference: num(d.referenceN) },
      needed: { current: minimums.psi.current, reference: minimums.psi.reference },
    };
  if (row.metric === "missing_rate")
    return { counts: { current: num(d.rows) }, needed: { current: minimums.dataQuality.current } };
  if (row.metric === "out_of_range_rate" || row.metric === "unseen_category_rate")
    return { counts: { current: num(d.n) }, needed: { current: minimums.dataQuality.current } };
  if (OPERATIONS.has(row.metric))
    return {
      counts: { results: num(d.results) },
      needed: { results: minimums.operations.results },
    };
  if (row.metric === "fallback_rate")
    return {
      counts: { results: num(d.answers) },
      needed: { results: minimums.operations.results },
    };
  if (row.metric === "schema_rejection_rate")
    return {
      counts: { requests: num(d.requests) },
      needed: { requests: minimums.schemaRejection.requests },
    };
  if (COMPARISON.test(row.metric))
    return { counts: { pairs: num(d.pairs) }, needed: { pairs: minimums.comparison.pairs } };
  if (QUALITY.has(row.metric))
    return { counts: { labels: num(d.n) }, needed: { labels: minimums.quality.labels } };
  if (row.metric === "roc_auc")
    return {
      counts: { positives: num(d.positives), negatives: num(d.negatives) },
      needed: { positives: minimums.quality.perClass, negatives: minimums.quality.perClass },
    };
  if (row.metric === "selection_rate")
    return { counts: { group: num(d.n) }, needed: { group: minimums.fairness.group } };
  if (FAIRNESS_BY_ATTRIBUTE.has(row.metric))
    return { counts: { groups: num(d.eligibleGroups) }, needed: { groups: 2 } };
  if (row.metric === "kpi_difference")
    return {
      counts: { canary: side("canary"), champion: side("champion") },
      needed: { canary: minimums.kpi.perSide, champion: minimums.kpi.perSide },
    };
  return null;
}

/**
 * A row held to its minimums: `insufficient_data` (value kept, reason
 * `insufficient_data` unless it already had one saying why, counts and
 * needs in its details) when a count falls short, or when its statistic
 * could not be computed for want of data; the row as it was otherwise.
 */
export function applyMinimums(row: MetricRow, minimums: ResolvedMinimums): MetricRow {
  if (row.status === "insufficient_data") return row;
  const need = requirement(row, minimums);
  const short = need
    ? Object.entries(need.needed).some(([name, n]) => (need.counts[name] ?? 0) < n)
    : false;
  const noData = row.value === null && row.reason !== null && NO_DATA_REASONS.has(row.reason);
  if (!short && !noData) return row;
  return {
    ...row,
    status: "insufficient_data",
    reason: row.reason ?? "insufficient_data",
    details: { ...row.details, ...(need ? { counts: need.counts, needed: need.needed } : {}) },
  };
}
