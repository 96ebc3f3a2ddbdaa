/**
 * Business KPIs from `outcomes`, per (model, version, role) and KPI, over the
 * window in which the outcomes happened (their `at`). An outcome names its
 * model (one its reporting key covers) and counts only for that model, for
 * the version that gave the answer it follows:
 *
 * - by prediction id: the answering result (served, canary or fallback) of
 *   that prediction, found in its own partition through the time the id
 *   carries (ids that carry none are searched over the 31 days before). An
 *   outcome whose prediction belongs to another model is dropped, and
 *   counted for the prediction's model in `outcomes_wrong_model`;
 * - by bucketing key: the version of the named model that answered the key
 *   in the same window. A key answered by more than one version in the
 *   window (the canary's share changed) is ambiguous and left out, and
 *   counted.
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
import { sql } from "drizzle-orm";
import type { Database } from "../../shared/db/client";
import { type KpiSummary, kpiDifference, metric, wilsonInterval } from "../../shared/metrics";
import { type KeyedRows, type MetricRow, metricRow } from "./metrics";

export const OUTCOME_METRICS = [
  "kpi_count",
  "kpi_sum",
  "kpi_mean",
  "kpi_difference",
  "outcomes_wrong_model",
] as const;

/** Outcomes tied to a prediction id that carries no time are looked for this far back. */
const UNTIMED_LOOKBACK = "31 days";

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

type Count = string | number;

/** The KPI aggregates of the outcomes that happened in [from, to). */
export async function kpiSums(db: Database, from: Date, to: Date): Promise<KpiWindow> {
  const start = from.toISOString();
  const end = to.toISOString();
  const { rows } = await db.execute<{
    model: string;
    version: string;
    role: string;
    kpi: string | null;
    n: Count;
    sum: number;
    variance: number | null;
    binary: boolean;
    by_prediction: Count;
    by_key: Count;
    ambiguous: Count;
    wrong_model: Count;
  }>(sql`
    WITH o AS (
      SELECT id, model AS named, kpi, value, prediction_id, key_hmac FROM outcomes
      WHERE at >= ${start} AND at < ${end}
    ),
    answered AS (
      SELECT o.id, o.named, r.model, r.version, r.role, o.kpi, o.value
      FROM o JOIN prediction_refs r ON r.prediction_id = o.prediction_id
        AND r.role IN ('served', 'canary', 'fallback') AND r.prediction IS NOT NULL
        AND r.created_at = prediction_id_time(o.prediction_id)
      UNION ALL
      SELECT o.id, o.named, r.model, r.version, r.role, o.kpi, o.value
      FROM o JOIN prediction_refs r ON r.prediction_id = o.prediction_id
        AND r.role IN ('served', 'canary', 'fallback') AND r.prediction IS NOT NULL
        AND r.created_at >= ${start}::timestamptz - ${UNTIMED_LOOKBACK}::interval
        AND r.created_at < ${end}
      WHERE prediction_id_time(o.prediction_id) IS NULL
    ),
    by_prediction AS (
      SELECT model, version, role, kpi, value FROM answered WHERE named = model
    ),
    keys AS (
      SELECT model, key_hmac, min(version) AS version, min(role) AS role,
        count(DISTINCT (version, role)) AS answers
      FROM prediction_refs
      WHERE created_at >= ${start} AND created_at < ${end} AND key_hmac IS NOT NULL
        AND role IN ('served', 'canary', 'fallback') AND prediction IS NOT NULL
      GROUP BY model, key_hmac
    ),
    by_key AS (
      SELECT k.model, k.version, k.role, o.kpi, o.value, k.answers > 1 AS ambiguous
      FROM o JOIN keys k ON k.key_hmac = o.key_hmac AND k.model = o.named
      WHERE o.prediction_id IS NULL
    ),
    attributed AS (
      SELECT model, version, role, kpi, value, true AS by_prediction FROM by_prediction
      UNION ALL
      SELECT model, version, role, kpi, value, false FROM by_key WHERE NOT ambiguous
    )
    SELECT model, version, role, kpi, count(*) AS n, sum(value) AS sum,
      var_samp(value) AS variance, bool_and(value IN (0, 1)) AS binary,
      count(*) FILTER (WHERE by_prediction) AS by_prediction,
      count(*) FILTER (WHERE NOT by_prediction) AS by_key, 0 AS ambiguous, 0 AS wrong_model
    FROM attributed GROUP BY model, version, role, kpi
    UNION ALL
    SELECT model, '', 'all', NULL, 0, 0, NULL, true, 0, 0, count(*), 0
    FROM by_key WHERE ambiguous GROUP BY model
    UNION ALL
    SELECT model, '', 'all', NULL, 0, 0, NULL, true, 0, 0, 0, count(DISTINCT id)
    FROM answered WHERE named <> model GROUP BY model`);
  const window: KpiWindow = { sums: [], ambiguous: {}, wrongModel: {} };
  for (const row of rows) {
    if (row.kpi === null) {
      const ambiguous = Number(row.ambiguous);
      const wrongModel = Number(row.wrong_model);
      if (ambiguous > 0) window.ambiguous[row.model] = ambiguous;
      if (wrongModel > 0) window.wrongModel[row.model] = wrongModel;
      continue;
    }
    window.sums.push({
      model: row.model,
      version: row.version,
      role: row.role,
      kpi: row.kpi,
      n: Number(row.n),
      sum: Number(row.sum),
      variance: row.variance === null ? null : Number(row.variance),
      binary: row.binary,
      byPrediction: Number(row.by_prediction),
      byKey: Number(row.by_key),
    });
  }
  return window;
}

const keyOf = (model: string, version: string, role: string) =>
  `${model}\u0000${version}\u0000${role}`;

/** The KPI rows of a window, per (model, version, role): pure. */
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
