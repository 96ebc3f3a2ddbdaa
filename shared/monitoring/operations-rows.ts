/**
 * Operations rows: pure, from a window's traffic aggregates.
 *
 * - `results` (dimension ''): results in the window, for every (version,
 *   role) with results, baseline or not.
 * - `error_rate` (dimension ''): share of results whose call failed or timed
 *   out; `warn`/`alert` above OPERATIONS_WARN / OPERATIONS_ALERT.
 * - `latency_p50`, `latency_p95`, `latency_p99` (dimension ''): the version's
 *   call latency in ms.
 * - `circuit_open_rate` (dimension ''): share of results refused because the
 *   version's circuit breaker was open in the isolate that served them
 *   (breakers live per isolate; this is what reaches the logs); `alert` when
 *   any.
 * - `fallback_rate` (model level): share of the model's answers that came
 *   from a fallback; `warn`/`alert` as the error rate.
 */
import { finiteRow, type MetricRow, type MetricStatus } from "./metric-row";

/** Error and fallback rates: above these, a warning, an alert. */
export const OPERATIONS_WARN = 0.01;
export const OPERATIONS_ALERT = 0.05;

const operationsStatus = (rate: number): MetricStatus =>
  rate > OPERATIONS_ALERT ? "alert" : rate > OPERATIONS_WARN ? "warn" : "ok";

export interface WindowTraffic {
  model: string;
  version: string;
  role: string;
  results: number;
  errors: number;
  /** Results refused by an open circuit breaker without calling the upstream. */
  circuitOpen: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

/** The operations rows of one (model, version, role). */
export function operationsRows(traffic: WindowTraffic): MetricRow[] {
  const rate = traffic.results === 0 ? Number.NaN : traffic.errors / traffic.results;
  const counted = { results: traffic.results };
  const latency = (metric: string, value: number | null): MetricRow =>
    value === null
      ? {
          metric,
          dimension: "",
          value: null,
          reason: "no_values",
          status: "unknown",
          details: counted,
        }
      : { metric, dimension: "", value, reason: null, status: "ok", details: counted };
  return [
    {
      metric: "results",
      dimension: "",
      value: traffic.results,
      reason: null,
      status: "ok",
      details: {},
    },
    finiteRow(
      "error_rate",
      "",
      rate,
      operationsStatus(rate),
      { errors: traffic.errors, results: traffic.results },
      "no_results",
    ),
    finiteRow(
      "circuit_open_rate",
      "",
      traffic.results === 0 ? Number.NaN : traffic.circuitOpen / traffic.results,
      traffic.circuitOpen > 0 ? "alert" : "ok",
      { refused: traffic.circuitOpen, results: traffic.results },
      "no_results",
    ),
    latency("latency_p50", traffic.p50),
    latency("latency_p95", traffic.p95),
    latency("latency_p99", traffic.p99),
  ];
}

/** Model level: the share of answers (served, canary, fallback) that a fallback gave. */
export function fallbackRow(answers: number, fallbacks: number): MetricRow {
  const rate = answers === 0 ? Number.NaN : fallbacks / answers;
  return finiteRow(
    "fallback_rate",
    "",
    rate,
    operationsStatus(rate),
    { fallbacks, answers },
    "no_requests",
  );
}
