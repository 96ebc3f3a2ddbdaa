/**
 * A model version's baseline: the reference that drift and data quality are
 * measured against, one summary per feature and per prediction field. Pure:
 * no bindings, no I/O. Built here from uploaded rows, or from aggregates that
 * Postgres computes over a window of the version's own traffic (functions/
 * monitoring/baseline-sql.ts), in the same shape and by the same rules.
 *
 * Rules, so that both paths agree:
 * - A number/integer feature without an enum is numeric, unless it has at
 *   most LOW_CARDINALITY distinct values, then it is categorical (its values
 *   as strings). Strings, booleans and enums are categorical.
 * - A numeric summary keeps the reference sample: every value, sorted, when
 *   there are at most BASELINE_SAMPLE_SIZE; otherwise the values at the
 *   quantiles (i + 0.5) / BASELINE_SAMPLE_SIZE by the nearest-rank rule
 *   (Postgres' percentile_disc), and `sampled` is true.
 * - A categorical summary keeps the counts of its MAX_CATEGORIES most frequent
 *   values; the rest are counted together in `other`.
 * - `missing` counts rows where the field is absent or null; `n` those with a
 *   value.
 */
import { LOW_CARDINALITY } from "../drift";
import type { InputSchema } from "../schemas/model";

export const BASELINE_SAMPLE_SIZE = 1000;
/** Rows an upload may carry (the request body limit applies too). */
export const MAX_BASELINE_UPLOAD_ROWS = 5000;
export const MAX_CATEGORIES = 1000;

export interface NumericSummary {
  kind: "numeric";
  n: number;
  missing: number;
  distinct: number;
  min: number;
  max: number;
  mean: number;
  /** Population standard deviation. */
  std: number;
  /** Sorted: every value, or BASELINE_SAMPLE_SIZE quantiles when `sampled`. */
  sample: number[];
  sampled: boolean;
}

export interface CategoricalSummary {
  kind: "categorical";
  n: number;
  missing: number;
  counts: Record<string, number>;
  /** Rows whose value is not among the kept categories. */
  other: number;
}

export type DimensionSummary = NumericSummary | CategoricalSummary;

export type BaselineSource =
  | { kind: "upload" }
  | { kind: "traffic"; from: string; to: string; role: "served" | "canary" | "shadow" };

export interface Baseline {
  schema: 1;
  source: BaselineSource;
  /** Rows (results) the baseline summarises. */
  rows: number;
  createdAt: string;
  createdBy: string;
  features: Record<string, DimensionSummary>;
  /** By canonical prediction field: `label`, `score` (classification), `value` (regression). */
  predictions: Record<string, DimensionSummary>;
}

/** The quantile levels of a sampled reference. */
export const SAMPLE_QUANTILES: readonly number[] = Array.from(
  { length: BASELINE_SAMPLE_SIZE },
  (_, i) => (i + 0.5) / BASELINE_SAMPLE_SIZE,
);

export type DeclaredKind = "numeric" | "categorical";

/** How a feature is summarised before its values are seen (see the rules above). */
export function declaredKinds(schema: InputSchema): Record<string, DeclaredKind> {
  const kinds: Record<string, DeclaredKind> = {};
  for (const [name, feature] of Object.entries(schema.properties)) {
    kinds[name] =
      (feature.type === "number" || feature.type === "integer") && !feature.enum
        ? "numeric"
        : "categorical";
  }
  return kinds;
}

/** The prediction fields a task's canonical prediction has, and how each is summarised. */
export function predictionKinds(
  task: "classification" | "regression",
): Record<string, DeclaredKind> {
  return task === "classification"
    ? { label: "categorical", score: "numeric" }
    : { value: "numeric" };
}

/** A value as a category: strings as they are, numbers and booleans as JSON writes them. */
export function categoryOf(value: string | number | boolean): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Nearest-rank quantile of sorted values (Postgres' percentile_disc). */
export function percentileDisc(sorted: readonly number[], q: number): number {
  const index = Math.max(0, Math.ceil(q * sorted.length) - 1);
  return sorted[Math.min(index, sorted.length - 1)] as number;
}

/** Summarises one field's values (null or undefined: missing). */
export function summarize(values: readonly unknown[], declared: DeclaredKind): DimensionSummary {
  let missing = 0;
  if (declared === "numeric") {
    const numbers: number[] = [];
    for (const value of values) {
      if (typeof value === "number" && Number.isFinite(value)) numbers.push(value);
      else missing++;
    }
    numbers.sort((a, b) => a - b);
    let distinct = 0;
    for (let i = 0; i < numbers.length; i++)
      if (i === 0 || numbers[i] !== numbers[i - 1]) distinct++;
    if (distinct > LOW_CARDINALITY) return numericSummary(numbers, missing, distinct);
    return categoricalSummary(numbers.map(categoryOf), missing);
  }
  const categories: string[] = [];
  for (const value of values) {
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean")
      categories.push(categoryOf(value));
    else missing++;
  }
  return categoricalSummary(categories, missing);
}

function numericSummary(sorted: number[], missing: number, distinct: number): NumericSummary {
  const n = sorted.length;
  let sum = 0;
  for (const v of sorted) sum += v;
  const mean = sum / n;
  let squares = 0;
  for (const v of sorted) squares += (v - mean) ** 2;
  const sampled = n > BASELINE_SAMPLE_SIZE;
  return {
    kind: "numeric",
    n,
    missing,
    distinct,
    min: sorted[0] as number,
    max: sorted[n - 1] as number,
    mean,
    std: Math.sqrt(squares / n),
    sample: sampled ? SAMPLE_QUANTILES.map((q) => percentileDisc(sorted, q)) : sorted,
    sampled,
  };
}

/** Counts of the most frequent categories (ties by name), the rest as `other`. */
export function categoricalSummary(
  categories: readonly string[],
  missing: number,
): CategoricalSummary {
  const counts = new Map<string, number>();
  for (const c of categories) counts.set(c, (counts.get(c) ?? 0) + 1);
  return keepTop(counts, categories.length, missing);
}

export function keepTop(
  counts: Map<string, number>,
  n: number,
  missing: number,
  alreadyOther = 0,
): CategoricalSummary {
  const ordered = [...counts.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const kept = ordered.slice(0, MAX_CATEGORIES);
  let other = alreadyOther;
  for (const [, count] of ordered.slice(MAX_CATEGORIES)) other += count;
  return { kind: "categorical", n, missing, counts: Object.fromEntries(kept), other };
}

/** A baseline from uploaded rows (already validated) and, optionally, their predictions. */
export function baselineFromRows(
  schema: InputSchema,
  task: "classification" | "regression",
  rows: readonly Record<string, unknown>[],
  predictions: readonly Record<string, unknown>[] | undefined,
  meta: { createdAt: string; createdBy: string },
): Baseline {
  const features: Record<string, DimensionSummary> = {};
  for (const [name, kind] of Object.entries(declaredKinds(schema))) {
    features[name] = summarize(
      rows.map((row) => row[name]),
      kind,
    );
  }
  const predictionSummaries: Record<string, DimensionSummary> = {};
  if (predictions && predictions.length > 0) {
    for (const [field, kind] of Object.entries(predictionKinds(task))) {
      const values = predictions.map((p) => p[field]);
      if (values.some((v) => v !== undefined && v !== null))
        predictionSummaries[field] = summarize(values, kind);
    }
  }
  return {
    schema: 1,
    source: { kind: "upload" },
    rows: rows.length,
    createdAt: meta.createdAt,
    createdBy: meta.createdBy,
    features,
    predictions: predictionSummaries,
  };
}
