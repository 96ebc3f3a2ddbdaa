/**
 * Champion-challenger comparison from aggregates over request-by-request
 * pairs: both models answered the same request, and the database sums over
 * the pairs. Deltas are challenger minus champion.
 */
import { Sum } from "../drift/sum";
import { assertCount, type Metric, metric, missing } from "./result";

/** Sums over classification pairs. */
export interface ClassificationPairSums {
  /** Pairs where both models gave a label. */
  pairs: number;
  /** Pairs where the two labels are the same. */
  agreeing: number;
  /** Pairs where both models gave a score for the positive class. */
  scoredPairs: number;
  /** Σ |score_challenger − score_champion| over the scored pairs. */
  sumAbsScoreDifference: number;
}

export interface ClassificationComparison {
  pairs: number;
  /** agreeing / pairs; null with `no_predictions` without pairs. */
  agreementRate: Metric;
  scoredPairs: number;
  /** Σ|Δscore| / scoredPairs; null with `no_predictions` without scored pairs. */
  meanAbsScoreDifference: Metric;
}

export function compareClassification(sums: ClassificationPairSums): ClassificationComparison {
  assertCount("pairs", sums.pairs);
  assertCount("agreeing", sums.agreeing);
  assertCount("scoredPairs", sums.scoredPairs);
  if (sums.agreeing > sums.pairs) throw new RangeError("more agreeing pairs than pairs");
  if (!(sums.sumAbsScoreDifference >= 0))
    throw new RangeError("sumAbsScoreDifference must be >= 0");
  return {
    pairs: sums.pairs,
    agreementRate: sums.pairs > 0 ? metric(sums.agreeing / sums.pairs) : missing("no_predictions"),
    scoredPairs: sums.scoredPairs,
    meanAbsScoreDifference:
      sums.scoredPairs > 0
        ? metric(sums.sumAbsScoreDifference / sums.scoredPairs)
        : missing("no_predictions"),
  };
}

/** Sums over regression pairs, x the champion's prediction and y the challenger's. */
export interface RegressionPairSums {
  n: number;
  sumX: number;
  sumY: number;
  sumXX: number;
  sumYY: number;
  sumXY: number;
  /** Σ |y − x| */
  sumAbsDifference: number;
}

export interface RegressionComparison {
  n: number;
  /** Σ|y − x| / n; null with `no_predictions` when n = 0. */
  meanAbsDifference: Metric;
  /** Mean of y − x: the challenger's shift. */
  meanDifference: Metric;
  /**
   * Pearson's r = (nΣxy − ΣxΣy) / sqrt((nΣx² − (Σx)²)(nΣy² − (Σy)²)), clamped
   * to [−1, 1]. Null with `no_predictions` (n = 0), `too_few` (n < 2) or
   * `zero_variance` (either model constant, as SciPy's pearsonr gives NaN).
   */
  correlation: Metric;
}

/** The sums of `RegressionPairSums` over two arrays of paired predictions. */
export function regressionPairSums(
  champion: readonly number[],
  challenger: readonly number[],
): RegressionPairSums {
  if (champion.length !== challenger.length) throw new RangeError("arrays of different lengths");
  const sums = {
    x: new Sum(),
    y: new Sum(),
    xx: new Sum(),
    yy: new Sum(),
    xy: new Sum(),
    absDifference: new Sum(),
  };
  for (let i = 0; i < champion.length; i++) {
    const x = champion[i] as number;
    const y = challenger[i] as number;
    if (!Number.isFinite(x) || !Number.isFinite(y)) throw new RangeError(`pair ${i} is not finite`);
    sums.x.add(x);
    sums.y.add(y);
    sums.xx.add(x * x);
    sums.yy.add(y * y);
    sums.xy.add(x * y);
    sums.absDifference.add(Math.abs(y - x));
  }
  return {
    n: champion.length,
    sumX: sums.x.value,
    sumY: sums.y.value,
    sumXX: sums.xx.value,
    sumYY: sums.yy.value,
    sumXY: sums.xy.value,
    sumAbsDifference: sums.absDifference.value,
  };
}

/**
 * The co-moments nΣx² − (Σx)² cancel when the predictions sit far from 0
 * relative to their spread; the database should sum values minus a typical
 * value when they do (r does not change).
 */
export function compareRegression(sums: RegressionPairSums): RegressionComparison {
  const { n } = sums;
  assertCount("n", n);
  if (n === 0) {
    const none = missing("no_predictions");
    return { n, meanAbsDifference: none, meanDifference: none, correlation: none };
  }
  const meanAbsDifference = metric(sums.sumAbsDifference / n);
  const meanDifference = metric((sums.sumY - sums.sumX) / n);
  if (n < 2) return { n, meanAbsDifference, meanDifference, correlation: missing("too_few") };
  const varianceX = n * sums.sumXX - sums.sumX * sums.sumX;
  const varianceY = n * sums.sumYY - sums.sumY * sums.sumY;
  const covariance = n * sums.sumXY - sums.sumX * sums.sumY;
  // Below this the difference is rounding of nΣx², not spread.
  const noise = (scale: number) => 8 * Number.EPSILON * n * scale;
  if (varianceX <= noise(sums.sumXX) || varianceY <= noise(sums.sumYY)) {
    return { n, meanAbsDifference, meanDifference, correlation: missing("zero_variance") };
  }
  const r = covariance / Math.sqrt(varianceX) / Math.sqrt(varianceY);
  return {
    n,
    meanAbsDifference,
    meanDifference,
    correlation: metric(Math.max(-1, Math.min(1, r))),
  };
}

/** One model's side of the operational comparison, over the same pairs. */
export interface OperationalSums {
  /** Σ latency in milliseconds over the pairs. */
  sumLatencyMs: number;
  /** Pairs in which this model's call failed. */
  errors: number;
}

export interface OperationalComparison {
  pairs: number;
  championMeanLatencyMs: Metric;
  challengerMeanLatencyMs: Metric;
  /** Challenger minus champion mean latency. */
  latencyDeltaMs: Metric;
  championErrorRate: Metric;
  challengerErrorRate: Metric;
  /** Challenger minus champion error rate. */
  errorRateDelta: Metric;
}

/** Mean latency and error rate of each side over `pairs` paired requests; null without pairs. */
export function compareOperations(
  pairs: number,
  champion: OperationalSums,
  challenger: OperationalSums,
): OperationalComparison {
  assertCount("pairs", pairs);
  for (const side of [champion, challenger]) {
    assertCount("errors", side.errors);
    if (side.errors > pairs) throw new RangeError("more errors than pairs");
    if (!(side.sumLatencyMs >= 0)) throw new RangeError("sumLatencyMs must be >= 0");
  }
  if (pairs === 0) {
    const none = missing("no_predictions");
    return {
      pairs,
      championMeanLatencyMs: none,
      challengerMeanLatencyMs: none,
      latencyDeltaMs: none,
      championErrorRate: none,
      challengerErrorRate: none,
      errorRateDelta: none,
    };
  }
  return {
    pairs,
    championMeanLatencyMs: metric(champion.sumLatencyMs / pairs),
    challengerMeanLatencyMs: metric(challenger.sumLatencyMs / pairs),
    latencyDeltaMs: metric((challenger.sumLatencyMs - champion.sumLatencyMs) / pairs),
    championErrorRate: metric(champion.errors / pairs),
    challengerErrorRate: metric(challenger.errors / pairs),
    errorRateDelta: metric((challenger.errors - champion.errors) / pairs),
  };
}
