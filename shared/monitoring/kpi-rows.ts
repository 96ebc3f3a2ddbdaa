/**
 * KPI rows of a window, per (model, version, role): pure, from the outcome
 * aggregates (functions/monitoring/kpis.ts says how outcomes are attributed).
 *
 * Rows (dimension: the KPI): `kpi_count`, `kpi_sum`, `kpi_mean` (details:
 * variance, and for a 0/1 KPI the Wilson interval), and under each canary
 * `kpi_difference`, canary minus champion (the served version with the most
 * outcomes) with Newcombe's interval for a 0/1 KPI and Welch's otherwise, the
 * sample sizes and whether the interval excludes 0. The canary and the
 * champion answer different requests, so this compares populations.
 * `outcomes_wrong_model` (model level: version '', role 'all'; `warn`) is
 * written only for a model some outcomes were dropped for.
 */
import { type KpiSummary, kpiDifference, metric, wilsonInterval } from "../metrics";
import { type KeyedRows, type MetricRow, metricRow } from "./metric-row";

export interface KpiSums extends KpiSummary {
  model: string;
  version: string;
  role: string;
  kpi: string;
  byPrediction: number;
  byKey: number;
}

export interface KpiWindow {
  sums: KpiSums[];
  /** Outcomes by key left out because the key was answered by several versions, per model. */
  ambiguous: Record<string, number>;
  /** Outcomes dropped because their prediction belongs to another model, per that model. */
  wrongModel: Record<string, number>;
}

const keyOf = (model: string, version: string, role: string) =>
  `${model}\u0000${version}\u0000${role}`;

/** The KPI rows of a window, per (model, version, role). */
export function kpiRows(window: KpiWindow): KeyedRows[] {
  const out = new Map<string, KeyedRows>();
  const push = (model: string, version: string, role: string, ...rows: MetricRow[]) => {
    const key = keyOf(model, version, role);
    const entry = out.get(key) ?? { model, version, role, rows: [] };
    entry.rows.push(...rows);
    out.set(key, entry);
  };
  for (const s of window.sums) {
    const sources = { byPrediction: s.byPrediction, byKey: s.byKey };
    const mean = s.sum / s.n;
    const interval = s.binary ? wilsonInterval(Math.round(s.sum), s.n) : null;
    push(
      s.model,
      s.version,
      s.role,
      metricRow("kpi_count", s.kpi, metric(s.n), sources),
      metricRow("kpi_sum", s.kpi, metric(s.sum), { n: s.n }),
      metricRow("kpi_mean", s.kpi, metric(mean), {
        n: s.n,
        variance: s.variance,
        binary: s.binary,
        ...(interval ? { lower: interval.lower, upper: interval.upper, interval: "wilson" } : {}),
      }),
    );
  }
  for (const [model, dropped] of Object.entries(window.wrongModel)) {
    push(
      model,
      "",
      "all",
      metricRow("outcomes_wrong_model", "", metric(dropped), {}, dropped > 0 ? "warn" : "ok"),
    );
  }
  // Canary against the champion of the same model and KPI.
  for (const canary of window.sums.filter((s) => s.role === "canary")) {
    const champion = window.sums
      .filter((s) => s.model === canary.model && s.kpi === canary.kpi && s.role === "served")
      .sort((a, b) => b.n - a.n)[0];
    if (!champion) continue;
    const difference = kpiDifference(canary, champion);
    const interval = difference.interval;
    push(
      canary.model,
      canary.version,
      "canary",
      metricRow(
        "kpi_difference",
        canary.kpi,
        interval.estimate === null
          ? { value: null, reason: interval.reason }
          : { value: interval.estimate },
        {
          comparedWith: champion.version,
          method: difference.method,
          confidence: difference.confidence,
          lower: interval.lower,
          upper: interval.upper,
          significant: difference.significant,
          canary: { n: canary.n, mean: canary.sum / canary.n },
          champion: { n: champion.n, mean: champion.sum / champion.n },
        },
      ),
    );
  }
  return [...out.values()];
}
