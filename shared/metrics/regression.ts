/**
 * Regression quality: MAE, RMSE and R2 (scikit-learn's
 * `mean_absolute_error`, `mean_squared_error(squared=False)`, `r2_score`),
 * from sums a database can aggregate in one pass.
 */
import { Sum } from "../drift/sum";
import { assertSameLength, type Metric, metric, missing } from "./result";

/** One pass over (y, ŷ): what `regressionFromSums` needs. */
export interface RegressionSums {
  n: number;
  /** Σ y */
  sumActual: number;
  /** Σ y² */
  sumActualSquared: number;
  /** Σ ŷ */
  sumPredicted: number;
  /** Σ (y − ŷ)² */
  sumSquaredError: number;
  /** Σ |y − ŷ| */
  sumAbsoluteError: number;
}

export interface RegressionMetrics {
  n: number;
  mae: Metric;
  rmse: Metric;
  r2: Metric;
  /** Mean prediction minus mean truth: a bias the other three do not show. */
  meanError: Metric;
}

/** The sums of `RegressionSums`, compensated so they do not depend on order. */
export function regressionSums(
  actual: readonly number[],
  predicted: readonly number[],
): RegressionSums {
  assertSameLength(actual, predicted);
  const sums = {
    actual: new Sum(),
    actualSquared: new Sum(),
    predicted: new Sum(),
    squaredError: new Sum(),
    absoluteError: new Sum(),
  };
  for (let i = 0; i < actual.length; i++) {
    const y = actual[i] as number;
    const yHat = predicted[i] as number;
    if (!Number.isFinite(y) || !Number.isFinite(yHat)) {
      throw new RangeError(`pair ${i} is not a pair of finite numbers`);
    }
    sums.actual.add(y);
    sums.actualSquared.add(y * y);
    sums.predicted.add(yHat);
    sums.squaredError.add((y - yHat) ** 2);
    sums.absoluteError.add(Math.abs(y - yHat));
  }
  return {
    n: actual.length,
    sumActual: sums.actual.value,
    sumActualSquared: sums.actualSquared.value,
    sumPredicted: sums.predicted.value,
    sumSquaredError: sums.squaredError.value,
    sumAbsoluteError: sums.absoluteError.value,
  };
}

/**
 * MAE = Σ|y − ŷ| / n, RMSE = sqrt(Σ(y − ŷ)² / n),
 * R2 = 1 − Σ(y − ŷ)² / Σ(y − ȳ)² with Σ(y − ȳ)² = Σy² − (Σy)²/n.
 *
 * - n = 0: all null, `no_predictions`.
 * - R2 with n < 2: null, `too_few` (scikit-learn: NaN and a warning).
 * - R2 when the truth is constant (Σ(y − ȳ)² = 0, or below the rounding
 *   of Σy²): null, `constant_actual` (scikit-learn: 1 for a perfect fit,
 *   else 0).
 *
 * Σy² − (Σy)²/n loses digits when the mean is large against the spread
 * (relative error about 1e-16 · ȳ² / var(y)); the database should sum
 * y − c for a typical value c when targets sit far from 0 (R2 does not
 * depend on c, but then Σy, Σy² and Σŷ must all be shifted).
 */
export function regressionFromSums(sums: RegressionSums): RegressionMetrics {
  const { n } = sums;
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`n must be an integer >= 0, got ${n}`);
  if (n === 0) {
    const none = missing("no_predictions");
    return { n, mae: none, rmse: none, r2: none, meanError: none };
  }
  const mae = metric(sums.sumAbsoluteError / n);
  const rmse = metric(Math.sqrt(Math.max(0, sums.sumSquaredError) / n));
  const meanError = metric((sums.sumPredicted - sums.sumActual) / n);
  let r2: Metric;
  if (n < 2) r2 = missing("too_few");
  else {
    const totalSquares = sums.sumActualSquared - (sums.sumActual * sums.sumActual) / n;
    // What is left after cancelling two sums of size Σy² is rounding below this.
    const noise = 8 * Number.EPSILON * sums.sumActualSquared;
    r2 =
      totalSquares > noise
        ? metric(1 - sums.sumSquaredError / totalSquares)
        : missing("constant_actual");
  }
  return { n, mae, rmse, r2, meanError };
}

/** `regressionFromSums` over arrays of true and predicted values. */
export function regressionMetrics(
  actual: readonly number[],
  predicted: readonly number[],
): RegressionMetrics {
  return regressionFromSums(regressionSums(actual, predicted));
}
