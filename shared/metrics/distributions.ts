/**
 * The normal and Student t distributions that the confidence intervals need,
 * from stdlib's special functions (ports of Boost and Cephes), checked
 * against SciPy and mpmath in test/fixtures/metrics/intervals.json:
 *
 * - Φ(z) is the regularised upper incomplete gamma function,
 *   Φ(-z) = Q(1/2, z²/2) / 2 (`gammainc`); Φ⁻¹(q) = −√2 erfc⁻¹(2q)
 *   (`erfcinv`), solved in the smaller tail so that q keeps its digits.
 * - The t CDF is the regularised incomplete beta function,
 *   F(-t) = I_{ν/(ν+t²)}(ν/2, 1/2) / 2 (`betainc`); its quantile is stdlib's
 *   (`t-quantile`, from the inverse incomplete beta, exact to 1e-13 from 1
 *   to 3·10^7 degrees of freedom).
 * - ln Γ and ln B are `gammaln` and `betaln` (which takes ln B(a, b) apart
 *   for large arguments, where ln Γ(a) + ln Γ(b) − ln Γ(a + b) cancels).
 *
 * stdlib's normal quantile is not used: it goes through erf⁻¹(2p − 1), which
 * loses the tail's digits (2e-9 relative at p = 1e-10, −∞ at 1e-20).
 */
import betainc from "@stdlib/math-base-special-betainc";
import betaln from "@stdlib/math-base-special-betaln";
import erfcinv from "@stdlib/math-base-special-erfcinv";
import gammainc from "@stdlib/math-base-special-gammainc";
import gammaln from "@stdlib/math-base-special-gammaln";
import tQuantile from "@stdlib/stats-base-dists-t-quantile";

const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);

/** Φ(z), the standard normal CDF. */
export function normalCdf(z: number): number {
  if (Number.isNaN(z)) return Number.NaN;
  if (z === 0) return 0.5;
  const tail = 0.5 * gammainc((z * z) / 2, 0.5, true, true);
  return z < 0 ? tail : 1 - tail;
}

/** ln Φ(z) for z <= 0, where Φ(z) is the tail itself. */
function logNormalLowerTail(z: number): number {
  return Math.log(0.5 * gammainc((z * z) / 2, 0.5, true, true));
}

/** Φ⁻¹(p), the standard normal quantile; ±Infinity at 0 and 1, NaN outside [0, 1]. */
export function normalQuantile(p: number): number {
  if (!(p >= 0 && p <= 1)) return Number.NaN;
  if (p === 0) return Number.NEGATIVE_INFINITY;
  if (p === 1) return Number.POSITIVE_INFINITY;
  if (p === 0.5) return 0;
  // Solve in the smaller tail, where q carries all its digits.
  const q = p < 0.5 ? p : 1 - p;
  const start = -Math.SQRT2 * erfcinv(2 * q);
  // erfcinv's rational fit is good to 1e-14 relative down to q ≈ 1e-264 and
  // 1e-13 below; one Newton step on ln Φ (d ln Φ / dx = φ(x) / Φ(x)) brings
  // the far tail to rounding.
  const logF = logNormalLowerTail(start);
  const slope = Math.exp(-0.5 * start * start - HALF_LOG_2PI - logF);
  const x = Math.min(start - (logF - Math.log(q)) / slope, 0);
  return p < 0.5 ? x : -x;
}

/** ln Γ(z) for z > 0. */
export function logGamma(z: number): number {
  return gammaln(z);
}

/** ln B(a, b), without the cancellation of ln Γ(a) + ln Γ(b) − ln Γ(a + b) for large a or b. */
export function logBeta(a: number, b: number): number {
  return betaln(a, b);
}

/** P(T <= -|t|) for Student's t with `df` degrees of freedom: the smaller tail. */
function studentTLowerTail(t: number, df: number): number {
  const t2 = t * t;
  // x = ν / (ν + t²) and y = t² / (ν + t²) = 1 − x, each formed without
  // subtracting; the smaller one goes to betainc, so that neither loses
  // digits near 1: I_x(ν/2, 1/2) = 1 − I_y(1/2, ν/2).
  const x = df / (df + t2);
  if (x <= 0.5) return 0.5 * betainc(x, df / 2, 0.5);
  const y = t2 / (df + t2);
  return 0.5 * betainc(y, 0.5, df / 2, true, true);
}

/**
 * P(T <= t) for Student's t with `df` > 0 degrees of freedom (SciPy's
 * `t.cdf`): within 1e-13 relative of SciPy's from 1 to 10^6 degrees of
 * freedom in the fixtures.
 */
export function studentTCdf(t: number, df: number): number {
  if (Number.isNaN(t) || !(df > 0)) return Number.NaN;
  if (t === 0) return 0.5;
  if (!Number.isFinite(t)) return t > 0 ? 1 : 0;
  const tail = studentTLowerTail(t, df);
  return t < 0 ? tail : 1 - tail;
}

/**
 * The p-quantile of Student's t with `df` > 0 degrees of freedom (SciPy's
 * `t.ppf`, but closer to the exact value: SciPy's is off by up to 1e-9
 * relative at 100 degrees of freedom); ±Infinity at 0 and 1, NaN outside
 * [0, 1] or for df <= 0.
 */
export function studentTQuantile(p: number, df: number): number {
  return tQuantile(p, df);
}
