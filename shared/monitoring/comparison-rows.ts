/**
 * Comparison rows of a challenger (a shadow or a canary) against the result
 * it is paired with, per (challenger, reference) pair of versions: pure,
 * from the sums over the pairs (functions/monitoring/comparison.ts says
 * which results pair up). The dimension is the reference version.
 *
 * Metrics, prefixed `shadow_` or `canary_`:
 *
 * - `agreement`: share of pairs with the same label (classification).
 * - `score_difference`: mean |score_challenger − score_reference| (classification).
 * - `mean_abs_difference`, `correlation`: mean |value_challenger −
 *   value_reference| and Pearson r (regression).
 * - `latency_delta_ms`, `error_rate_delta`: challenger minus reference, over
 *   the pairs.
 */
import { compareClassification, compareOperations, compareRegression } from "../metrics";
import { type MetricRow, metricRow } from "./metric-row";

/** Sums over a challenger's pairs with one reference version, as Postgres returns them. */
export interface PairSums {
  model: string;
  /** The challenger: a shadow or a canary. */
  version: string;
  /** The result it is paired with: the answer, or the champion's control. */
  reference: string;
  pairs: string;
  labelled: string;
  agreeing: string;
  scored: string;
  sum_abs_score: number | null;
  valued: string;
  sum_x: number | null;
  sum_y: number | null;
  sum_xx: number | null;
  sum_yy: number | null;
  sum_xy: number | null;
  sum_abs_value: number | null;
  reference_latency: number | null;
  reference_errors: string;
  challenger_latency: number | null;
  challenger_errors: string;
  [column: string]: unknown;
}

/** Which results pair up (the SQL reads the roles), and how the rows of the pairs are named. */
export interface Pairing {
  challengerRole: "shadow" | "canary";
  referenceRoles: readonly ("served" | "canary" | "control")[];
  /** Metric names: `${prefix}_agreement` and so on. */
  prefix: "shadow" | "canary";
  /** The details key naming the reference version. */
  referenceKey: "answeredBy" | "comparedWith";
}

/** The metric rows of one (challenger, reference) pair of versions, from their sums. */
export function comparisonRows(sums: PairSums, pairing: Pairing): MetricRow[] {
  const { prefix } = pairing;
  const pairs = Number(sums.pairs);
  const dimension = sums.reference;
  const details = { pairs, [pairing.referenceKey]: dimension };
  const list: MetricRow[] = [];
  const classification = compareClassification({
    pairs: Number(sums.labelled),
    agreeing: Number(sums.agreeing),
    scoredPairs: Number(sums.scored),
    sumAbsScoreDifference: Number(sums.sum_abs_score ?? 0),
  });
  if (classification.pairs > 0) {
    list.push(
      metricRow(`${prefix}_agreement`, dimension, classification.agreementRate, {
        ...details,
        labelled: classification.pairs,
      }),
      metricRow(`${prefix}_score_difference`, dimension, classification.meanAbsScoreDifference, {
        ...details,
        scored: classification.scoredPairs,
      }),
    );
  }
  const valued = Number(sums.valued);
  if (valued > 0) {
    const regression = compareRegression({
      n: valued,
      sumX: Number(sums.sum_x),
      sumY: Number(sums.sum_y),
      sumXX: Number(sums.sum_xx),
      sumYY: Number(sums.sum_yy),
      sumXY: Number(sums.sum_xy),
      sumAbsDifference: Number(sums.sum_abs_value),
    });
    list.push(
      metricRow(`${prefix}_mean_abs_difference`, dimension, regression.meanAbsDifference, {
        ...details,
        valued,
      }),
      metricRow(`${prefix}_correlation`, dimension, regression.correlation, { ...details, valued }),
    );
  }
  const operations = compareOperations(
    pairs,
    { sumLatencyMs: Number(sums.reference_latency ?? 0), errors: Number(sums.reference_errors) },
    { sumLatencyMs: Number(sums.challenger_latency ?? 0), errors: Number(sums.challenger_errors) },
  );
  list.push(
    metricRow(`${prefix}_latency_delta_ms`, dimension, operations.latencyDeltaMs, details),
    metricRow(`${prefix}_error_rate_delta`, dimension, operations.errorRateDelta, details),
  );
  return list;
}
