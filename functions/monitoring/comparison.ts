/**
 * Shadow versions against the version that answered the same request
 * (champion or canary), pair by pair on the prediction id, in one window.
 * Postgres sums the pairs; shared/metrics turns the sums into metrics. Rows
 * belong to the shadow's (model, version, role 'shadow') window, with the
 * answering version as the dimension:
 *
 * - `shadow_agreement`: share of pairs with the same label (classification).
 * - `shadow_score_difference`: mean |score_shadow − score_answer| (classification).
 * - `shadow_mean_abs_difference`, `shadow_correlation`: mean |value_shadow −
 *   value_answer| and Pearson r (regression).
 * - `shadow_latency_delta_ms`, `shadow_error_rate_delta`: shadow minus answer,
 *   over the pairs.
 *
 * Every row carries the number of pairs. A pair whose two results fall in
 * different windows (a request at a window's edge) is not counted. A canary
 * answers requests the champion never sees, so canary and champion are
 * compared by population (operations and KPIs), not here.
 */
import { sql } from "drizzle-orm";
import type { Database } from "../../shared/db/client";
import {
  compareClassification,
  compareOperations,
  compareRegression,
  type Metric,
} from "../../shared/metrics";
import type { MetricRow } from "./metrics";

interface PairSums {
  model: string;
  version: string;
  answered_by: string;
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
  answer_latency: number | null;
  answer_errors: string;
  shadow_latency: number | null;
  shadow_errors: string;
  [column: string]: unknown;
}

function row(
  metric: string,
  dimension: string,
  result: Metric,
  details: Record<string, unknown>,
): MetricRow {
  return result.value === null
    ? { metric, dimension, value: null, reason: result.reason, status: "unknown", details }
    : { metric, dimension, value: result.value, reason: null, status: "ok", details };
}

/** Comparison rows per shadow (model, version) with pairs in the window. */
export async function shadowComparisons(
  db: Database,
  from: Date,
  to: Date,
): Promise<Map<string, MetricRow[]>> {
  const range = (alias: string) =>
    sql`${sql.raw(alias)}.created_at >= ${from.toISOString()} AND ${sql.raw(alias)}.created_at < ${to.toISOString()}`;
  const score = (alias: string) => sql.raw(`(${alias}.prediction ->> 'score')::float8`);
  const value = (alias: string) => sql.raw(`(${alias}.prediction ->> 'value')::float8`);
  const both = (field: string) =>
    sql.raw(
      `jsonb_typeof(s.prediction -> '${field}') = 'number' AND jsonb_typeof(a.prediction -> '${field}') = 'number'`,
    );
  const { rows } = await db.execute<PairSums>(sql`
    SELECT s.model, s.version, a.version AS answered_by, count(*) AS pairs,
      count(*) FILTER (WHERE s.prediction ? 'label' AND a.prediction ? 'label') AS labelled,
      count(*) FILTER (WHERE s.prediction ? 'label' AND a.prediction ? 'label'
        AND s.prediction -> 'label' = a.prediction -> 'label') AS agreeing,
      count(*) FILTER (WHERE ${both("score")}) AS scored,
      coalesce(sum(abs(${score("s")} - ${score("a")})) FILTER (WHERE ${both("score")}), 0) AS sum_abs_score,
      count(*) FILTER (WHERE ${both("value")}) AS valued,
      coalesce(sum(${value("a")}) FILTER (WHERE ${both("value")}), 0) AS sum_x,
      coalesce(sum(${value("s")}) FILTER (WHERE ${both("value")}), 0) AS sum_y,
      coalesce(sum(${value("a")} * ${value("a")}) FILTER (WHERE ${both("value")}), 0) AS sum_xx,
      coalesce(sum(${value("s")} * ${value("s")}) FILTER (WHERE ${both("value")}), 0) AS sum_yy,
      coalesce(sum(${value("a")} * ${value("s")}) FILTER (WHERE ${both("value")}), 0) AS sum_xy,
      coalesce(sum(abs(${value("s")} - ${value("a")})) FILTER (WHERE ${both("value")}), 0) AS sum_abs_value,
      sum(a.latency_ms) AS answer_latency, count(*) FILTER (WHERE a.status <> 'ok') AS answer_errors,
      sum(s.latency_ms) AS shadow_latency, count(*) FILTER (WHERE s.status <> 'ok') AS shadow_errors
    FROM predictions s
    JOIN predictions a ON a.prediction_id = s.prediction_id AND a.model = s.model
      AND a.role IN ('served', 'canary') AND ${range("a")}
    WHERE s.role = 'shadow' AND ${range("s")}
    GROUP BY s.model, s.version, a.version`);
  const out = new Map<string, MetricRow[]>();
  for (const sums of rows) {
    const pairs = Number(sums.pairs);
    const dimension = sums.answered_by;
    const details = { pairs, answeredBy: dimension };
    const list = out.get(`${sums.model}\u0000${sums.version}`) ?? [];
    const classification = compareClassification({
      pairs: Number(sums.labelled),
      agreeing: Number(sums.agreeing),
      scoredPairs: Number(sums.scored),
      sumAbsScoreDifference: Number(sums.sum_abs_score ?? 0),
    });
    if (classification.pairs > 0) {
      list.push(
        row("shadow_agreement", dimension, classification.agreementRate, {
          ...details,
          labelled: classification.pairs,
        }),
        row("shadow_score_difference", dimension, classification.meanAbsScoreDifference, {
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
        row("shadow_mean_abs_difference", dimension, regression.meanAbsDifference, {
          ...details,
          valued,
        }),
        row("shadow_correlation", dimension, regression.correlation, { ...details, valued }),
      );
    }
    const operations = compareOperations(
      pairs,
      { sumLatencyMs: Number(sums.answer_latency ?? 0), errors: Number(sums.answer_errors) },
      { sumLatencyMs: Number(sums.shadow_latency ?? 0), errors: Number(sums.shadow_errors) },
    );
    list.push(
      row("shadow_latency_delta_ms", dimension, operations.latencyDeltaMs, details),
      row("shadow_error_rate_delta", dimension, operations.errorRateDelta, details),
    );
    out.set(`${sums.model}\u0000${sums.version}`, list);
  }
  return out;
}
