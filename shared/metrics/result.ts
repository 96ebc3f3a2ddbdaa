/**
 * A metric's value, or null with the machine-readable reason it has none.
 * Callers store the reason beside the null rather than a NaN nobody can read.
 *
 * - `no_predictions`: nothing to measure (no rows, or n = 0).
 * - `no_observations`: an interval over an empty sample (n = 0).
 * - `no_labels`: predictions exist but none of them has a ground-truth label.
 * - `single_class`: ROC AUC needs both classes among the labels.
 * - `no_positives`: recall or a true-positive rate over no actual positives.
 * - `no_predicted_positives`: precision over no predicted positives.
 * - `undefined_f1`: F1 with no actual and no predicted positives.
 * - `too_few`: fewer observations than the statistic needs (n < 2).
 * - `zero_variance`: a variance or spread of 0 leaves the statistic undefined.
 * - `constant_actual`: R2 when every true value is the same.
 * - `too_few_groups`: a difference across groups needs two eligible groups.
 * - `no_selections`: disparate impact when no eligible group selects anyone.
 */
export type MetricReason =
  | "no_predictions"
  | "no_observations"
  | "no_labels"
  | "single_class"
  | "no_positives"
  | "no_predicted_positives"
  | "undefined_f1"
  | "too_few"
  | "zero_variance"
  | "constant_actual"
  | "too_few_groups"
  | "no_selections";

export type Metric = { value: number; reason?: undefined } | { value: null; reason: MetricReason };

export const metric = (value: number): Metric => ({ value });
export const missing = (reason: MetricReason): Metric => ({ value: null, reason });

export function assertCount(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(`${name}: a count must be an integer >= 0, got ${value}`);
  }
}

export function assertSameLength(a: readonly unknown[], b: readonly unknown[]): void {
  if (a.length !== b.length) {
    throw new RangeError(`arrays of different lengths: ${a.length} and ${b.length}`);
  }
}
