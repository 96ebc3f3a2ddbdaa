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
 * Postgres aggregates here; shared/monitoring/kpi-rows.ts turns the sums
 * into rows (`kpi_count`, `kpi_sum`, `kpi_mean`, `kpi_difference`,
 * `outcomes_wrong_model`) and says what each holds.
 */
import { sql } from "drizzle-orm";
import type { Database } from "../../shared/db/client";
import type { KpiWindow } from "../../shared/monitoring/kpi-rows";

/** Every metric of this family (kpi-rows.ts): a recomputation replaces exactly these. */
export const OUTCOME_METRICS = [
  "kpi_count",
  "kpi_sum",
  "kpi_mean",
  "kpi_difference",
  "outcomes_wrong_model",
] as const;

/** Outcomes tied to a prediction id that carries no time are looked for this far back. */
const UNTIMED_LOOKBACK = "31 days";

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
