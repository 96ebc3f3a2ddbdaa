/**
 * Monitoring metrics over labelled predictions, segments and paired traffic.
 * Pure functions on aggregates or small arrays, no bindings: the monitoring
 * job aggregates in Postgres and calls these.
 *
 * - Classification (classification.ts): accuracy, precision, recall, F1
 *   (binary or macro) from a confusion matrix; ROC AUC from counts per
 *   score; log loss (from arrays, or from a sum of per-row terms); label
 *   coverage.
 * - Regression (regression.ts): MAE, RMSE, R2 from one-pass sums.
 * - Fairness (fairness.ts): selection rates, demographic parity difference,
 *   disparate impact ratio (four-fifths rule), equal opportunity difference
 *   across a segment's groups, from per-group counts.
 * - Champion-challenger (comparison.ts): agreement, score and prediction
 *   differences, correlation, latency and error-rate deltas, from pair sums.
 * - Business KPIs (kpi.ts): canary minus champion, Newcombe's interval for
 *   a 0/1 KPI, Welch's for any other.
 * - Intervals (intervals.ts): Welch's t interval for a difference of means,
 *   Wilson's for a proportion, Newcombe's hybrid score interval for a
 *   difference of proportions; the normal and t quantiles behind them
 *   (distributions.ts, from stdlib's special functions).
 *
 * A value that cannot be computed is null with a `MetricReason`, never NaN.
 */
export {
  binaryScores,
  type ClassCounts,
  type ClassificationMetrics,
  type ConfusionCell,
  classificationFromConfusion,
  classificationMetrics,
  confusionMatrix,
  LOG_LOSS_EPS,
  labelCoverage,
  logLoss,
  logLossBinary,
  logLossFromSum,
  logLossTerm,
  type RankPairCounts,
  rankPairCounts,
  rocAuc,
  rocAucFromCounts,
  rocAucFromPairCounts,
  type ScoreCount,
  scoreCounts,
} from "./classification";
export {
  type ClassificationComparison,
  type ClassificationPairSums,
  compareClassification,
  compareOperations,
  compareRegression,
  type OperationalComparison,
  type OperationalSums,
  type RegressionComparison,
  type RegressionPairSums,
  regressionPairSums,
} from "./comparison";
export {
  logBeta,
  logGamma,
  normalCdf,
  normalQuantile,
  studentTCdf,
  studentTQuantile,
} from "./distributions";
export {
  DEFAULT_MIN_GROUP_SIZE,
  type FairnessReport,
  FOUR_FIFTHS,
  fairnessReport,
  type GroupCounts,
  type GroupFairness,
} from "./fairness";
export {
  DEFAULT_CONFIDENCE,
  type Interval,
  newcombeInterval,
  type ProportionCounts,
  type SampleSummary,
  type WelchInterval,
  welchInterval,
  wilsonInterval,
} from "./intervals";
export { type KpiDifference, type KpiSummary, kpiDifference } from "./kpi";
export {
  type RegressionMetrics,
  type RegressionSums,
  regressionFromSums,
  regressionMetrics,
  regressionSums,
} from "./regression";
export { type Metric, type MetricReason, metric, missing } from "./result";
