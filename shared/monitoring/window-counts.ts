/**
 * One window of a version's results as Postgres counts it for the drift and
 * data-quality statistics (functions/monitoring/window-sql.ts): the Worker
 * receives counts, never rows.
 *
 * Numeric fields: the values are bucketed against a sorted list of distinct
 * thresholds (the reference sample's values, the PSI edges, a histogram grid:
 * whatever the statistics need, merged), with `width_bucket`, which counts
 * into bucket i (1-based) the values t[i] <= x < t[i + 1], into 0 those below
 * t[1]. Each bucket also counts the values equal to its lower threshold. From
 * these, `count(x < t)` and `count(x <= t)` at every threshold follow exactly
 * (`cumulativeCounts`), and so does a histogram over any subset of them.
 * Categorical fields: counts per value.
 */
import type { BinnedWindow } from "../drift";

export interface NumericWindow {
  /** Values present (finite numbers). */
  n: number;
  /** Rows where the field is absent, null or not a number. */
  missing: number;
  min: number | null;
  max: number | null;
  mean: number | null;
  std: number | null;
  thresholds: number[];
  /** buckets[i]: values with thresholds[i - 1] <= x < thresholds[i] (buckets[0]: below thresholds[0]). */
  buckets: number[];
  /** equal[i]: values equal to thresholds[i - 1] (equal[0] is 0). */
  equal: number[];
  /** sums[i]: the sum of the values in buckets[i]. */
  sums: number[];
}

export interface CategoricalWindow {
  n: number;
  missing: number;
  counts: Record<string, number>;
}

/** count(x < t[i]) and count(x <= t[i]) for every threshold, from a window's buckets. */
export function cumulativeCounts(window: NumericWindow): { below: number[]; atOrBelow: number[] } {
  const below: number[] = [];
  const atOrBelow: number[] = [];
  let running = 0;
  for (let i = 0; i < window.thresholds.length; i++) {
    running += window.buckets[i] ?? 0;
    below.push(running);
    atOrBelow.push(running + (window.equal[i + 1] ?? 0));
  }
  return { below, atOrBelow };
}

/** The window as the drift statistics take it (shared/drift BinnedWindow). */
export function binnedWindow(window: NumericWindow): BinnedWindow {
  return {
    edges: window.thresholds,
    counts: window.buckets,
    sums: window.sums,
    atEdge: window.equal.slice(1),
  };
}
