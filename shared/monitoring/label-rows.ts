/**
 * Quality and fairness rows of one (model, version, role) in a window: pure,
 * from the aggregates of its labelled predictions
 * (functions/monitoring/labels.ts), with shared/metrics computing.
 *
 * - `label_coverage`: labelled / predictions of the (version, role).
 * - `labels_wrong_model`: predictions of the (version, role) that carry a
 *   label naming another model, dropped (`warn`; written only when there are any).
 * - Classification: `accuracy`, `precision`, `recall`, `f1` (of the model's
 *   positive class; macro averages without one), `roc_auc` (binary, from the
 *   canonical `score`) and `log_loss` (from `score`, or from `probabilities`
 *   for a multiclass model).
 * - Regression: `mae`, `rmse`, `r2`, `mean_error` (prediction minus truth).
 * - Fairness (binary classification, per attribute of the requests'
 *   `attributes`): `selection_rate` (dimension `attribute=group`; null with
 *   `group_too_small` below the minimum group size), and per attribute
 *   `demographic_parity_difference`, `disparate_impact_ratio` (`alert` below
 *   0.8, the four-fifths rule) and `equal_opportunity_difference` (the gap in
 *   true-positive rate, over labelled predictions).
 */
import {
  type ConfusionCell,
  classificationFromConfusion,
  DEFAULT_MIN_GROUP_SIZE,
  fairnessReport,
  type GroupCounts,
  labelCoverage,
  logLossFromSum,
  missing,
  type RankPairCounts,
  regressionFromSums,
  rocAucFromPairCounts,
} from "../metrics";
import { type MetricRow, metricRow } from "./metric-row";

/** One (model, version, role)'s aggregates over a window. */
export interface LabelledSums {
  model: string;
  version: string;
  role: string;
  task: "classification" | "regression";
  positiveClass: string | null;
  predictions: number;
  labelled: number;
  /** Predictions carrying a label that names another model: dropped. */
  wrongModel: number;
  cells: ConfusionCell[];
  ranks: RankPairCounts | null;
  logLoss: { n: number; sum: number } | null;
  regression: {
    n: number;
    sumActual: number;
    sumActualSquared: number;
    sumPredicted: number;
    sumSquaredError: number;
    sumAbsoluteError: number;
  } | null;
  /**
   * Per attribute: its groups, largest first (at most MAX_GROUPS_PER_ATTRIBUTE
   * of functions/monitoring/labels.ts), and how many it has.
   */
  attributes: Map<string, { groups: GroupCounts[]; total: number }>;
}

/** The quality and fairness rows of one (model, version, role). */
export function labelRows(
  sums: LabelledSums,
  minGroupSize = DEFAULT_MIN_GROUP_SIZE,
  droppedAttributes: readonly string[] = [],
): MetricRow[] {
  const rows: MetricRow[] = [
    metricRow("label_coverage", "", labelCoverage(sums.labelled, sums.predictions), {
      labelled: sums.labelled,
      predictions: sums.predictions,
    }),
  ];
  if (sums.wrongModel > 0)
    rows.push(
      metricRow(
        "labels_wrong_model",
        "",
        { value: sums.wrongModel },
        { predictions: sums.predictions },
        "warn",
      ),
    );
  const noLabels = missing("no_labels");
  // Without any label only coverage (0) and selection rates can be said.
  if (sums.labelled === 0) {
    if (sums.task === "classification" && sums.positiveClass !== null)
      rows.push(
        ...fairnessRows(sums.attributes, minGroupSize),
        ...droppedSegmentRows(droppedAttributes),
      );
    return rows;
  }
  if (sums.task === "classification") {
    const scores = classificationFromConfusion(
      sums.cells,
      sums.positiveClass === null ? {} : { positive: sums.positiveClass },
    );
    const details = {
      n: scores.n,
      average: scores.average,
      ...(sums.positiveClass === null ? {} : { positiveClass: sums.positiveClass }),
    };
    const labelled = scores.n > 0;
    rows.push(
      metricRow("accuracy", "", labelled ? scores.accuracy : noLabels, details),
      metricRow("precision", "", labelled ? scores.precision : noLabels, details),
      metricRow("recall", "", labelled ? scores.recall : noLabels, details),
      metricRow("f1", "", labelled ? scores.f1 : noLabels, details),
    );
    if (sums.positiveClass !== null) {
      const ranks = sums.ranks ?? { positives: 0, negatives: 0, concordant: 0, tied: 0 };
      const n = ranks.positives + ranks.negatives;
      rows.push(
        metricRow("roc_auc", "", n > 0 ? rocAucFromPairCounts(ranks) : noLabels, {
          positives: ranks.positives,
          negatives: ranks.negatives,
        }),
      );
    }
    const loss = sums.logLoss ?? { n: 0, sum: 0 };
    rows.push(
      metricRow("log_loss", "", loss.n > 0 ? logLossFromSum(loss.n, loss.sum) : noLabels, {
        n: loss.n,
      }),
    );
    if (sums.positiveClass !== null)
      rows.push(
        ...fairnessRows(sums.attributes, minGroupSize),
        ...droppedSegmentRows(droppedAttributes),
      );
  } else {
    const regression = sums.regression;
    const n = regression?.n ?? 0;
    const scores = regression && n > 0 ? regressionFromSums(regression) : null;
    rows.push(
      metricRow("mae", "", scores?.mae ?? noLabels, { n }),
      metricRow("rmse", "", scores?.rmse ?? noLabels, { n }),
      metricRow("r2", "", scores?.r2 ?? noLabels, { n }),
      metricRow("mean_error", "", scores?.meanError ?? noLabels, { n }),
    );
  }
  return rows;
}

/**
 * A segment attribute the model's data policy drops is never stored, so its
 * fairness cannot be computed: its rows say so, `insufficient_data`.
 */
function droppedSegmentRows(attributes: readonly string[]): MetricRow[] {
  const details = {
    dataPolicy: "drop",
    message:
      "dropped by the model's data policy: the attribute is never stored, so fairness across its groups cannot be computed",
  };
  return attributes.flatMap((attribute) =>
    ["demographic_parity_difference", "disparate_impact_ratio", "equal_opportunity_difference"].map(
      (metric) => ({
        metric,
        dimension: attribute,
        value: null,
        reason: "dropped_by_data_policy",
        status: "insufficient_data" as const,
        details,
      }),
    ),
  );
}

function fairnessRows(attributes: LabelledSums["attributes"], minGroupSize: number): MetricRow[] {
  const rows: MetricRow[] = [];
  for (const [attribute, { groups, total }] of attributes) {
    const report = fairnessReport(groups, { minGroupSize });
    const counts = new Map(groups.map((g) => [g.group, g]));
    for (const group of report.groups) {
      const c = counts.get(group.group) as GroupCounts;
      const dimension = `${attribute}=${group.group}`;
      if (group.tooSmall) {
        rows.push({
          metric: "selection_rate",
          dimension,
          value: null,
          reason: "group_too_small",
          status: "unknown",
          details: { n: group.n, minGroupSize },
        });
      } else {
        rows.push(
          metricRow(
            "selection_rate",
            dimension,
            { value: group.selectionRate },
            {
              n: group.n,
              predictedPositive: c.predictedPositive,
              actualPositive: c.actualPositive,
              truePositive: c.truePositive,
              truePositiveRate: group.truePositiveRate,
            },
          ),
        );
      }
    }
    const eligible = report.groups.filter((g) => !g.tooSmall).length;
    const details = {
      groups: groups.length,
      eligibleGroups: eligible,
      minGroupSize,
      ...(total > groups.length ? { omittedGroups: total - groups.length } : {}),
    };
    rows.push(
      metricRow(
        "demographic_parity_difference",
        attribute,
        report.demographicParityDifference,
        details,
      ),
      metricRow(
        "disparate_impact_ratio",
        attribute,
        report.disparateImpactRatio,
        { ...details, fourFifths: report.fourFifths },
        report.fourFifths === false ? "alert" : "ok",
      ),
      metricRow(
        "equal_opportunity_difference",
        attribute,
        report.equalOpportunityDifference,
        details,
      ),
    );
  }
  return rows;
}
