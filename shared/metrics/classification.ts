/**
 * Classification quality from labelled predictions. Every function has a
 * form over arrays and a form over counts that a database can aggregate
 * (GROUP BY actual, predicted; GROUP BY score, label), and both give the same
 * numbers.
 *
 * Definitions follow scikit-learn 1.2's `sklearn.metrics`, except that a
 * value scikit-learn would replace by 0 with an UndefinedMetricWarning (or
 * NaN) is null here with a reason.
 */
import { Sum } from "../drift/sum";
import { assertCount, assertSameLength, type Metric, metric, missing } from "./result";

/** How often `actual` was labelled and the model said `predicted`. */
export interface ConfusionCell {
  actual: string;
  predicted: string;
  count: number;
}

export interface ClassificationMetrics {
  /** Labelled predictions counted. */
  n: number;
  /** "binary": precision/recall/F1 of `positive`; "macro": unweighted mean over `labels`. */
  average: "binary" | "macro";
  /** The labels averaged over: every label seen as actual or predicted, sorted. */
  labels: string[];
  accuracy: Metric;
  precision: Metric;
  recall: Metric;
  f1: Metric;
}

/** Counts of (actual, predicted) pairs, in order of first appearance. */
export function confusionMatrix(
  actual: readonly string[],
  predicted: readonly string[],
): ConfusionCell[] {
  assertSameLength(actual, predicted);
  const cells = new Map<string, ConfusionCell>();
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i] as string;
    const p = predicted[i] as string;
    const key = JSON.stringify([a, p]);
    const cell = cells.get(key);
    if (cell) cell.count++;
    else cells.set(key, { actual: a, predicted: p, count: 1 });
  }
  return [...cells.values()];
}

/** One class against the rest: its true positives, predictions and actual examples. */
export interface ClassCounts {
  truePositive: number;
  predictedPositive: number;
  actualPositive: number;
}

function perClass(cells: readonly ConfusionCell[]): {
  n: number;
  correct: number;
  classes: Map<string, ClassCounts>;
} {
  const classes = new Map<string, ClassCounts>();
  const get = (label: string) => {
    let counts = classes.get(label);
    if (!counts) {
      counts = { truePositive: 0, predictedPositive: 0, actualPositive: 0 };
      classes.set(label, counts);
    }
    return counts;
  };
  let n = 0;
  let correct = 0;
  for (const cell of cells) {
    assertCount(`count of (${cell.actual}, ${cell.predicted})`, cell.count);
    if (cell.count === 0) continue;
    n += cell.count;
    get(cell.actual).actualPositive += cell.count;
    get(cell.predicted).predictedPositive += cell.count;
    if (cell.actual === cell.predicted) {
      correct += cell.count;
      get(cell.actual).truePositive += cell.count;
    }
  }
  return { n, correct, classes };
}

/**
 * Precision tp / (tp + fp), recall tp / (tp + fn) and F1 2 tp / (2 tp + fp + fn)
 * of one class. Null precision without predicted positives, null recall
 * without actual positives, null F1 with neither (scikit-learn: 0 and a
 * warning). F1 is 0, not null, when there are positives but no true positives.
 */
export function binaryScores(counts: ClassCounts): {
  precision: Metric;
  recall: Metric;
  f1: Metric;
} {
  const { truePositive: tp, predictedPositive, actualPositive } = counts;
  const denominator = predictedPositive + actualPositive;
  return {
    precision:
      predictedPositive > 0 ? metric(tp / predictedPositive) : missing("no_predicted_positives"),
    recall: actualPositive > 0 ? metric(tp / actualPositive) : missing("no_positives"),
    f1: denominator > 0 ? metric((2 * tp) / denominator) : missing("undefined_f1"),
  };
}

/**
 * Accuracy, precision, recall and F1 from a confusion matrix.
 *
 * - With `positive`, the binary scores of that class (scikit-learn's
 *   `average="binary", pos_label=positive`); every other label is negative.
 * - Without it, macro averages (`average="macro"`): the unweighted mean of
 *   each label's score over every label seen as actual or predicted. A label
 *   whose score is undefined counts as 0, as scikit-learn's
 *   `zero_division=0` does, so the average stays comparable across windows;
 *   the average is null only when there are no predictions.
 *
 * Accuracy is correct / n. All null with `no_predictions` when n = 0.
 */
export function classificationFromConfusion(
  cells: readonly ConfusionCell[],
  options: { positive?: string } = {},
): ClassificationMetrics {
  const { n, correct, classes } = perClass(cells);
  const labels = [...classes.keys()].sort();
  const average = options.positive === undefined ? "macro" : "binary";
  if (n === 0) {
    const none = missing("no_predictions");
    return { n, average, labels, accuracy: none, precision: none, recall: none, f1: none };
  }
  const accuracy = metric(correct / n);
  if (options.positive !== undefined) {
    const counts = classes.get(options.positive) ?? {
      truePositive: 0,
      predictedPositive: 0,
      actualPositive: 0,
    };
    return { n, average, labels, accuracy, ...binaryScores(counts) };
  }
  const precision = new Sum();
  const recall = new Sum();
  const f1 = new Sum();
  for (const label of labels) {
    const scores = binaryScores(classes.get(label) as ClassCounts);
    precision.add(scores.precision.value ?? 0);
    recall.add(scores.recall.value ?? 0);
    f1.add(scores.f1.value ?? 0);
  }
  const k = labels.length;
  return {
    n,
    average,
    labels,
    accuracy,
    precision: metric(precision.value / k),
    recall: metric(recall.value / k),
    f1: metric(f1.value / k),
  };
}

/** `classificationFromConfusion` over arrays of labels. */
export function classificationMetrics(
  actual: readonly string[],
  predicted: readonly string[],
  options: { positive?: string } = {},
): ClassificationMetrics {
  return classificationFromConfusion(confusionMatrix(actual, predicted), options);
}

/** How many labelled examples of each class carry one score. */
export interface ScoreCount {
  score: number;
  positives: number;
  negatives: number;
}

/** Counts per distinct score, sorted by score descending (what `rocAucFromCounts` takes). */
export function scoreCounts(actual: readonly boolean[], scores: readonly number[]): ScoreCount[] {
  assertSameLength(actual, scores);
  const byScore = new Map<number, ScoreCount>();
  for (let i = 0; i < scores.length; i++) {
    const score = scores[i] as number;
    if (!Number.isFinite(score)) throw new RangeError(`score ${i} is not a finite number`);
    // -0 and 0 are one score.
    const key = score === 0 ? 0 : score;
    let row = byScore.get(key);
    if (!row) {
      row = { score: key, positives: 0, negatives: 0 };
      byScore.set(key, row);
    }
    if (actual[i]) row.positives++;
    else row.negatives++;
  }
  return [...byScore.values()].sort((a, b) => b.score - a.score);
}

/**
 * Area under the ROC curve from counts per distinct score (scikit-learn's
 * `roc_auc_score` for binary labels): the probability that a random positive
 * scores above a random negative, a tie counting one half. This is the
 * trapezoidal area under scikit-learn's `roc_curve`, which joins tied scores
 * by one straight segment.
 *
 * Rows may repeat a score (they are merged) and come in any order. Null with
 * `no_predictions` for no rows, `single_class` when every label is one class
 * (scikit-learn raises a ValueError).
 */
export function rocAucFromCounts(rows: readonly ScoreCount[]): Metric {
  const merged = new Map<number, { positives: number; negatives: number }>();
  for (const row of rows) {
    if (!Number.isFinite(row.score)) throw new RangeError(`score ${row.score} is not finite`);
    assertCount(`positives at score ${row.score}`, row.positives);
    assertCount(`negatives at score ${row.score}`, row.negatives);
    const key = row.score === 0 ? 0 : row.score;
    const at = merged.get(key) ?? { positives: 0, negatives: 0 };
    at.positives += row.positives;
    at.negatives += row.negatives;
    merged.set(key, at);
  }
  const sorted = [...merged.entries()].sort((a, b) => b[0] - a[0]);
  let positives = 0;
  let negatives = 0;
  // Counts are integers: twice the area's numerator is an exact integer sum
  // while it stays below 2^53.
  let twiceConcordant = 0;
  for (const [, at] of sorted) {
    twiceConcordant += at.negatives * (2 * positives + at.positives);
    positives += at.positives;
    negatives += at.negatives;
  }
  if (positives + negatives === 0) return missing("no_predictions");
  if (positives === 0 || negatives === 0) return missing("single_class");
  return metric(twiceConcordant / 2 / positives / negatives);
}

/**
 * The four sums ROC AUC needs, which a database computes in one pass with a
 * window function over per-score counts: positives, negatives, pairs where a
 * positive scores above a negative (`concordant`), pairs that tie.
 */
export interface RankPairCounts {
  positives: number;
  negatives: number;
  concordant: number;
  tied: number;
}

/** `RankPairCounts` of per-score counts (the form to compare a database's sums with). */
export function rankPairCounts(rows: readonly ScoreCount[]): RankPairCounts {
  const byScore = new Map<number, ScoreCount>();
  for (const row of rows) {
    const key = row.score === 0 ? 0 : row.score;
    const at = byScore.get(key) ?? { score: key, positives: 0, negatives: 0 };
    at.positives += row.positives;
    at.negatives += row.negatives;
    byScore.set(key, at);
  }
  const ascending = [...byScore.values()].sort((a, b) => a.score - b.score);
  const counts = { positives: 0, negatives: 0, concordant: 0, tied: 0 };
  for (const at of ascending) {
    counts.concordant += at.positives * counts.negatives;
    counts.tied += at.positives * at.negatives;
    counts.positives += at.positives;
    counts.negatives += at.negatives;
  }
  return counts;
}

/**
 * ROC AUC from `RankPairCounts`: (concordant + tied / 2) / (positives ·
 * negatives), the same number as `rocAucFromCounts` (Mann-Whitney U over
 * the product of the class sizes). Null as `rocAucFromCounts`.
 */
export function rocAucFromPairCounts(counts: RankPairCounts): Metric {
  for (const key of ["positives", "negatives", "concordant", "tied"] as const) {
    assertCount(key, counts[key]);
  }
  const { positives, negatives } = counts;
  if (counts.concordant + counts.tied > positives * negatives) {
    throw new RangeError("more ranked pairs than positive-negative pairs");
  }
  if (positives + negatives === 0) return missing("no_predictions");
  if (positives === 0 || negatives === 0) return missing("single_class");
  return metric((2 * counts.concordant + counts.tied) / 2 / positives / negatives);
}

/** ROC AUC of scores for the positive class against boolean labels. */
export function rocAuc(actual: readonly boolean[], scores: readonly number[]): Metric {
  return rocAucFromCounts(scoreCounts(actual, scores));
}

/**
 * Probabilities are clipped to [eps, 1 - eps] with eps = 2^-52 (the float64
 * machine epsilon, scikit-learn 1.2's `eps="auto"`), then each row is divided
 * by its sum, before the log.
 */
export const LOG_LOSS_EPS = Number.EPSILON;

/**
 * Mean cross-entropy (scikit-learn 1.2's `log_loss(y_true, y_pred)`):
 * -1/n sum_i ln q_i[y_i], where q_i is row i of `probabilities` clipped to
 * [LOG_LOSS_EPS, 1 - LOG_LOSS_EPS] and renormalised to sum to 1.
 *
 * `actual[i]` is the index of the true class in row i of `probabilities`
 * (columns in the order of the model's classes, as scikit-learn's sorted
 * labels). Null with `no_predictions` for no rows. Unlike scikit-learn, which
 * needs two classes among the labels, a window whose labels are all one class
 * still has a loss.
 */
export function logLoss(
  actual: readonly number[],
  probabilities: readonly (readonly number[])[],
): Metric {
  assertSameLength(actual, probabilities);
  if (actual.length === 0) return missing("no_predictions");
  const total = new Sum();
  for (let i = 0; i < actual.length; i++) {
    const row = probabilities[i] as readonly number[];
    const label = actual[i] as number;
    if (!Number.isInteger(label) || label < 0 || label >= row.length) {
      throw new RangeError(`label ${i} (${label}) is not a column of its probabilities`);
    }
    let rowSum = 0;
    let clippedTrue = 0;
    for (let j = 0; j < row.length; j++) {
      const p = row[j] as number;
      if (Number.isNaN(p)) throw new RangeError(`probability ${i},${j} is NaN`);
      const clipped = Math.min(1 - LOG_LOSS_EPS, Math.max(LOG_LOSS_EPS, p));
      rowSum += clipped;
      if (j === label) clippedTrue = clipped;
    }
    total.add(-Math.log(clippedTrue / rowSum));
  }
  return metric(total.value / actual.length);
}

/**
 * One row's term of the log loss, −ln(clip(p_true) / Σ_j clip(p_j)) with
 * clip(p) = min(1 − eps, max(eps, p)): what a database sums for
 * `logLossFromSum` (for a binary score p, the row is [1 − clip(p), clip(p)],
 * whose sum is 1).
 */
export function logLossTerm(probabilityOfTrue: number, clippedRowSum = 1): number {
  const clipped = Math.min(1 - LOG_LOSS_EPS, Math.max(LOG_LOSS_EPS, probabilityOfTrue));
  return -Math.log(clipped / clippedRowSum);
}

/** Log loss from n rows and the sum of their `logLossTerm`s; null with `no_predictions` for n = 0. */
export function logLossFromSum(n: number, sumOfTerms: number): Metric {
  assertCount("n", n);
  if (!(sumOfTerms >= 0)) throw new RangeError("a sum of log-loss terms is >= 0");
  return n === 0 ? missing("no_predictions") : metric(sumOfTerms / n);
}

/**
 * Binary log loss from the positive class's probability: `logLoss` over rows
 * [1 - p, p], as scikit-learn does for a one-dimensional `y_pred` (it clips p
 * before forming 1 - p, and so does this).
 */
export function logLossBinary(actual: readonly boolean[], scores: readonly number[]): Metric {
  assertSameLength(actual, scores);
  return logLoss(
    actual.map((a) => (a ? 1 : 0)),
    scores.map((p) => {
      const clipped = Math.min(1 - LOG_LOSS_EPS, Math.max(LOG_LOSS_EPS, p));
      return [1 - clipped, clipped];
    }),
  );
}

/**
 * Share of predictions that have a ground-truth label: labelled / predictions.
 * Null with `no_predictions` when there are none.
 */
export function labelCoverage(labelled: number, predictions: number): Metric {
  assertCount("labelled", labelled);
  assertCount("predictions", predictions);
  if (labelled > predictions) throw new RangeError("more labelled than predictions");
  return predictions === 0 ? missing("no_predictions") : metric(labelled / predictions);
}
