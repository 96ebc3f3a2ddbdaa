/**
 * Confidence intervals for monitoring comparisons: Welch's t interval for a
 * difference of means, Wilson's score interval for a proportion, and
 * Newcombe's hybrid score interval for a difference of proportions. All take
 * aggregates (counts, means, variances) and a two-sided confidence level,
 * 0.95 unless given.
 */
import { normalQuantile, studentTQuantile } from "./distributions";
import { assertCount, type MetricReason } from "./result";

export const DEFAULT_CONFIDENCE = 0.95;

export type Interval =
  | { estimate: number; lower: number; upper: number; reason?: undefined }
  | { estimate: null; lower: null; upper: null; reason: MetricReason };

const noInterval = (reason: MetricReason): Interval => ({
  estimate: null,
  lower: null,
  upper: null,
  reason,
});

function assertConfidence(confidence: number): void {
  if (!(confidence > 0 && confidence < 1)) {
    throw new RangeError(`confidence must be in (0, 1), got ${confidence}`);
  }
}

/** A sample's size, mean and unbiased variance (divisor n − 1). */
export interface SampleSummary {
  n: number;
  mean: number;
  variance: number;
}

export type WelchInterval = Interval & {
  /** sqrt(s_a²/n_a + s_b²/n_b); null with the interval. */
  standardError: number | null;
  /** Welch-Satterthwaite degrees of freedom; null with the interval. */
  df: number | null;
};

/**
 * Welch's interval for mean(a) − mean(b), unequal variances:
 * (x̄_a − x̄_b) ± t_{1−α/2, ν} · se, se² = s_a²/n_a + s_b²/n_b,
 * ν = se⁴ / [(s_a²/n_a)²/(n_a − 1) + (s_b²/n_b)²/(n_b − 1)].
 *
 * - Either n < 2: null, `too_few` (no variance to estimate).
 * - Both variances 0: null, `zero_variance` (ν is 0/0; SciPy gives NaN).
 *   One variance 0 is fine: ν = n − 1 of the other sample.
 */
export function welchInterval(
  a: SampleSummary,
  b: SampleSummary,
  confidence = DEFAULT_CONFIDENCE,
): WelchInterval {
  assertConfidence(confidence);
  for (const [name, sample] of [
    ["a", a],
    ["b", b],
  ] as const) {
    assertCount(`${name}.n`, sample.n);
    if (!Number.isFinite(sample.mean) || !(sample.variance >= 0)) {
      throw new RangeError(`${name}: mean must be finite and variance >= 0`);
    }
  }
  if (a.n < 2 || b.n < 2) return { ...noInterval("too_few"), standardError: null, df: null };
  const va = a.variance / a.n;
  const vb = b.variance / b.n;
  const squared = va + vb;
  if (squared === 0) return { ...noInterval("zero_variance"), standardError: null, df: null };
  const standardError = Math.sqrt(squared);
  const df = (squared * squared) / ((va * va) / (a.n - 1) + (vb * vb) / (b.n - 1));
  const t = studentTQuantile(1 - (1 - confidence) / 2, df);
  const estimate = a.mean - b.mean;
  return {
    estimate,
    lower: estimate - t * standardError,
    upper: estimate + t * standardError,
    standardError,
    df,
  };
}

/**
 * Wilson's (1927) score interval for a proportion x / n:
 * [p̂ + z²/(2n) ± z sqrt(p̂(1 − p̂)/n + z²/(4n²))] / (1 + z²/n), z = Φ⁻¹(1 − α/2).
 * Stays inside [0, 1] and is not degenerate at x = 0 or x = n. Null with
 * `no_observations` when n = 0.
 */
export function wilsonInterval(
  successes: number,
  n: number,
  confidence = DEFAULT_CONFIDENCE,
): Interval {
  assertConfidence(confidence);
  assertCount("successes", successes);
  assertCount("n", n);
  if (successes > n) throw new RangeError("more successes than trials");
  if (n === 0) return noInterval("no_observations");
  const z = normalQuantile(1 - (1 - confidence) / 2);
  const z2 = z * z;
  const p = successes / n;
  const denominator = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denominator;
  const half = (z / denominator) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  // Rounding must not push the limits outside [0, 1] (or past p̂ at 0 and n).
  return {
    estimate: p,
    lower: successes === 0 ? 0 : Math.max(0, centre - half),
    upper: successes === n ? 1 : Math.min(1, centre + half),
  };
}

/** Successes out of trials, one arm of a comparison. */
export interface ProportionCounts {
  successes: number;
  n: number;
}

/**
 * Newcombe's (1998) hybrid score interval for p_a − p_b, his method 10: with
 * (l_a, u_a) and (l_b, u_b) the Wilson intervals of each proportion,
 * lower = d − sqrt((p_a − l_a)² + (u_b − p_b)²),
 * upper = d + sqrt((u_a − p_a)² + (p_b − l_b)²), d = p_a − p_b.
 * Newcombe's example: 56/70 − 48/80 gives 0.0524 to 0.3339. Null with
 * `no_observations` when either n = 0.
 */
export function newcombeInterval(
  a: ProportionCounts,
  b: ProportionCounts,
  confidence = DEFAULT_CONFIDENCE,
): Interval {
  const wilsonA = wilsonInterval(a.successes, a.n, confidence);
  const wilsonB = wilsonInterval(b.successes, b.n, confidence);
  if (wilsonA.estimate === null || wilsonB.estimate === null) {
    return noInterval("no_observations");
  }
  const pa = wilsonA.estimate;
  const pb = wilsonB.estimate;
  const estimate = pa - pb;
  return {
    estimate,
    lower: estimate - Math.hypot(pa - wilsonA.lower, wilsonB.upper - pb),
    upper: estimate + Math.hypot(wilsonA.upper - pa, pb - wilsonB.lower),
  };
}
