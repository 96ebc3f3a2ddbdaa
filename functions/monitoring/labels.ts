/**
 * Metrics that need ground truth: model quality and fairness, per (model,
 * version, role) over one prediction window. Predictions come from
 * `prediction_refs` (kept far longer than the full log rows, so a label that
 * arrives months later still finds its prediction), joined to `feedback` on
 * the prediction id and the model: a label counts only for a prediction of
 * the model it names (one its reporting key covers). A label whose
 * prediction belongs to another model is dropped, and counted in
 * `labels_wrong_model`. The window is the prediction's, not the label's: a
 * window is computed again whenever labels arrive for it
 * (functions/monitoring/pending.ts).
 *
 * Postgres aggregates here; shared/monitoring/label-rows.ts turns the sums
 * into rows (and names the metrics), with shared/metrics computing.
 *
 * Roles: served, canary, shadow and control, so a shadow challenger's
 * quality and fairness are known before it answers anyone.
 */
import { sql } from "drizzle-orm";
import type { Database } from "../../shared/db/client";
import { LOG_LOSS_EPS } from "../../shared/metrics";
import type { LabelledSums } from "../../shared/monitoring/label-rows";

/** The result roles whose quality is measured. */
export const LABELLED_ROLES = ["served", "canary", "shadow", "control"] as const;

/** At most this many groups of one attribute are reported per (version, role), the largest first. */
export const MAX_GROUPS_PER_ATTRIBUTE = 50;

/** Every metric of this family (label-rows.ts): a recomputation replaces exactly these. */
export const LABEL_METRICS = [
  "label_coverage",
  "labels_wrong_model",
  "accuracy",
  "precision",
  "recall",
  "f1",
  "roc_auc",
  "log_loss",
  "mae",
  "rmse",
  "r2",
  "mean_error",
  "selection_rate",
  "demographic_parity_difference",
  "disparate_impact_ratio",
  "equal_opportunity_difference",
] as const;

type Count = string | number;

const keyOf = (model: string, version: string, role: string) =>
  `${model}\u0000${version}\u0000${role}`;

/**
 * The aggregates of every (model, version, role) with predictions in
 * [from, to), labelled or not. One transaction: the window's predictions and
 * their labels are gathered once into a temporary table that the four
 * aggregations read.
 */
export async function labelledSums(db: Database, from: Date, to: Date): Promise<LabelledSums[]> {
  const eps = LOG_LOSS_EPS;
  return db.transaction(async (tx) => {
    await tx.execute(sql`
      CREATE TEMP TABLE labelled_window ON COMMIT DROP AS
      SELECT r.model, r.version, r.role, r.prediction, r.attributes,
        m.task, m.positive_class,
        f.label #>> '{}' AS actual,
        CASE WHEN jsonb_typeof(f.label) = 'number' THEN (f.label #>> '{}')::float8 END AS actual_value,
        EXISTS (SELECT 1 FROM feedback w
          WHERE w.prediction_id = r.prediction_id AND w.model <> r.model) AS wrong_model
      FROM prediction_refs r
      JOIN models m ON m.name = r.model
      LEFT JOIN feedback f ON f.prediction_id = r.prediction_id AND f.model = r.model
      WHERE r.created_at >= ${from.toISOString()} AND r.created_at < ${to.toISOString()}
        AND r.role IN ('served', 'canary', 'shadow', 'control') AND r.prediction IS NOT NULL`);

    const clip = (p: string) => `least(1 - ${eps}::float8, greatest(${eps}::float8, ${p}))`;
    const score = "(prediction ->> 'score')::float8";
    const trueProbability = "(prediction -> 'probabilities' ->> actual)::float8";
    const totals = await tx.execute<{
      model: string;
      version: string;
      role: string;
      task: "classification" | "regression";
      positive_class: string | null;
      predictions: Count;
      labelled: Count;
      wrong_model: Count;
      loss_n: Count;
      loss_sum: number | null;
      reg_n: Count;
      sum_y: number | null;
      sum_yy: number | null;
      sum_p: number | null;
      sum_se: number | null;
      sum_ae: number | null;
    }>(sql`
      SELECT model, version, role, task, positive_class,
        count(*) AS predictions, count(actual) AS labelled,
        count(*) FILTER (WHERE wrong_model) AS wrong_model,
        count(*) FILTER (WHERE loss IS NOT NULL) AS loss_n, sum(loss) AS loss_sum,
        count(*) FILTER (WHERE value IS NOT NULL) AS reg_n,
        sum(actual_value) FILTER (WHERE value IS NOT NULL) AS sum_y,
        sum(actual_value * actual_value) FILTER (WHERE value IS NOT NULL) AS sum_yy,
        sum(value) FILTER (WHERE value IS NOT NULL) AS sum_p,
        sum((actual_value - value) ^ 2) FILTER (WHERE value IS NOT NULL) AS sum_se,
        sum(abs(actual_value - value)) FILTER (WHERE value IS NOT NULL) AS sum_ae
      FROM (
        SELECT model, version, role, task, positive_class, actual, actual_value, wrong_model,
          CASE
            WHEN task = 'regression' OR actual IS NULL THEN NULL
            WHEN positive_class IS NOT NULL AND jsonb_typeof(prediction -> 'score') = 'number'
              THEN -ln(CASE WHEN actual = positive_class THEN ${sql.raw(clip(score))}
                ELSE 1 - ${sql.raw(clip(score))} END)
            WHEN jsonb_typeof(prediction -> 'probabilities' -> actual) = 'number'
              THEN -ln(${sql.raw(clip(trueProbability))} / (
                SELECT sum(${sql.raw(clip("p.value::float8"))})
                FROM jsonb_each_text(prediction -> 'probabilities') AS p))
          END AS loss,
          CASE WHEN task = 'regression' AND actual_value IS NOT NULL
            AND jsonb_typeof(prediction -> 'value') = 'number'
            THEN (prediction ->> 'value')::float8 END AS value
        FROM labelled_window
      ) t
      GROUP BY model, version, role, task, positive_class`);

    const cells = await tx.execute<{
      model: string;
      version: string;
      role: string;
      actual: string;
      predicted: string;
      count: Count;
    }>(sql`
      SELECT model, version, role, actual, prediction ->> 'label' AS predicted, count(*) AS count
      FROM labelled_window
      WHERE task = 'classification' AND actual IS NOT NULL
        AND jsonb_typeof(prediction -> 'label') = 'string'
      GROUP BY model, version, role, actual, prediction ->> 'label'`);

    // Per distinct score, the negatives strictly below it: Mann-Whitney's
    // pair counts, exact, in one row per (version, role).
    const ranks = await tx.execute<{
      model: string;
      version: string;
      role: string;
      positives: Count;
      negatives: Count;
      concordant: Count;
      tied: Count;
    }>(sql`
      SELECT model, version, role, sum(p) AS positives, sum(n) AS negatives,
        sum(p * below) AS concordant, sum(p * n) AS tied
      FROM (
        SELECT model, version, role, p, n,
          coalesce(sum(n) OVER (PARTITION BY model, version, role ORDER BY score
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS below
        FROM (
          SELECT model, version, role, ${sql.raw(score)} AS score,
            count(*) FILTER (WHERE actual = positive_class) AS p,
            count(*) FILTER (WHERE actual <> positive_class) AS n
          FROM labelled_window
          WHERE positive_class IS NOT NULL AND actual IS NOT NULL
            AND jsonb_typeof(prediction -> 'score') = 'number'
          GROUP BY model, version, role, ${sql.raw(score)}
        ) per_score
      ) ranked
      GROUP BY model, version, role`);

    // Selection over every prediction; true-positive rates over the labelled ones.
    const groups = await tx.execute<{
      model: string;
      version: string;
      role: string;
      attribute: string;
      grp: string;
      n: Count;
      predicted_positive: Count;
      actual_positive: Count;
      true_positive: Count;
      total: Count;
    }>(sql`
      SELECT * FROM (
        SELECT model, version, role, a.key AS attribute, a.value AS grp, count(*) AS n,
          count(*) FILTER (WHERE prediction ->> 'label' = positive_class) AS predicted_positive,
          count(*) FILTER (WHERE actual = positive_class) AS actual_positive,
          count(*) FILTER (WHERE actual = positive_class
            AND prediction ->> 'label' = positive_class) AS true_positive,
          row_number() OVER (PARTITION BY model, version, role, a.key
            ORDER BY count(*) DESC, a.value) AS place,
          count(*) OVER (PARTITION BY model, version, role, a.key) AS total
        FROM labelled_window, jsonb_each_text(attributes) AS a
        WHERE positive_class IS NOT NULL AND jsonb_typeof(prediction -> 'label') = 'string'
        GROUP BY model, version, role, a.key, a.value
      ) g
      WHERE place <= ${MAX_GROUPS_PER_ATTRIBUTE}
      ORDER BY model, version, role, attribute, place`);

    const out = new Map<string, LabelledSums>();
    for (const t of totals.rows) {
      const regressionN = Number(t.reg_n);
      out.set(keyOf(t.model, t.version, t.role), {
        model: t.model,
        version: t.version,
        role: t.role,
        task: t.task,
        positiveClass: t.positive_class,
        predictions: Number(t.predictions),
        labelled: Number(t.labelled),
        wrongModel: Number(t.wrong_model),
        cells: [],
        ranks: null,
        logLoss: { n: Number(t.loss_n), sum: Number(t.loss_sum ?? 0) },
        regression:
          regressionN === 0
            ? null
            : {
                n: regressionN,
                sumActual: Number(t.sum_y),
                sumActualSquared: Number(t.sum_yy),
                sumPredicted: Number(t.sum_p),
                sumSquaredError: Number(t.sum_se),
                sumAbsoluteError: Number(t.sum_ae),
              },
        attributes: new Map(),
      });
    }
    for (const c of cells.rows) {
      out.get(keyOf(c.model, c.version, c.role))?.cells.push({
        actual: c.actual,
        predicted: c.predicted,
        count: Number(c.count),
      });
    }
    for (const r of ranks.rows) {
      const sums = out.get(keyOf(r.model, r.version, r.role));
      if (sums)
        sums.ranks = {
          positives: Number(r.positives),
          negatives: Number(r.negatives),
          concordant: Number(r.concordant),
          tied: Number(r.tied),
        };
    }
    for (const g of groups.rows) {
      const sums = out.get(keyOf(g.model, g.version, g.role));
      if (!sums) continue;
      let attribute = sums.attributes.get(g.attribute);
      if (!attribute) {
        attribute = { groups: [], total: Number(g.total) };
        sums.attributes.set(g.attribute, attribute);
      }
      attribute.groups.push({
        group: g.grp,
        n: Number(g.n),
        predictedPositive: Number(g.predicted_positive),
        actualPositive: Number(g.actual_positive),
        truePositive: Number(g.true_positive),
      });
    }
    return [...out.values()];
  });
}
