/**
 * Monitoring metrics over labelled predictions, segments and paired traffic.
 * Pure functions on aggregates or small arrays, no bindings: the monitoring
 * job aggregates in Postgres and calls these.
 *
 * - Classification (classification.ts): accuracy, precision, recall, F1
 *   (binary or macro) from a confusion matrix; ROC AUC from counts per
 *   score; log loss; label coverage.
 * - Regression (regression.ts): MAE, RMSE, R2 from one-pass sums.
 *
 * A value that cannot be computed is null with a `MetricReason`, never NaN.
 */
export {
  binaryScores,
  type ClassificationMetrics,
  type ConfusionCell,
  classificationFromConfusion,
  classificationMetrics,
  confusionMatrix,
  LOG_LOSS_EPS,
  labelCoverage,
  logLoss,
  logLossBinary,
  rocAuc,
  rocAucFromCounts,
  type ScoreCount,
  scoreCounts,
} from "./classification";
export {
  type RegressionMetrics,
  type RegressionSums,
  regressionFromSums,
  regressionMetrics,
  regressionSums,
} from "./regression";
export type { Metric, MetricReason } from "./result";
