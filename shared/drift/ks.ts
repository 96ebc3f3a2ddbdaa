/**
 * The two-sample, two-sided Kolmogorov-Smirnov test, as SciPy's
 * `ks_2samp(reference, current)` computes it with `method="auto"`:
 *
 * - the statistic is the largest gap between the two empirical CDFs, both
 *   right-continuous, evaluated at every observed value (ties included);
 * - when both samples have at most 10,000 values the p-value is exact
 *   (Hodges 1958; for unequal sizes, Viehmann's recursion for 1 - p), and the
 *   statistic is reported as the nearest multiple of 1/lcm(n1, n2), as SciPy
 *   does;
 * - otherwise, or should the exact computation fail, it is the asymptotic
 *   P(D_en >= d) of the one-sample statistic at en = round(n1 n2 / (n1 + n2)).
 */
import { kolmogorovSf } from "./kolmogorov";
import { sortedValues } from "./values";

export interface KsResult {
  /** The largest distance between the two empirical CDFs, in [0, 1]. */
  statistic: number;
  /** Two-sided p-value; NaN when a sample is empty. */
  pValue: number;
}

/** Above this many values in either sample, SciPy's "auto" uses the asymptotic p-value. */
export const KS_EXACT_MAX_N = 10_000;

/** Two-sample, two-sided Kolmogorov-Smirnov test; see the module comment. */
export function ksTest(reference: readonly number[], current: readonly number[]): KsResult {
  const a = sortedValues(reference);
  const b = sortedValues(current);
  const n1 = a.length;
  const n2 = b.length;
  if (n1 === 0 || n2 === 0) return { statistic: Number.NaN, pValue: Number.NaN };
  // Walk the merged values; at each distinct value both CDFs count what is <= it.
  let i = 0;
  let j = 0;
  let maxDiff = Number.NEGATIVE_INFINITY;
  let minDiff = Number.POSITIVE_INFINITY;
  while (i < n1 || j < n2) {
    const x = j >= n2 || (i < n1 && (a[i] as number) <= (b[j] as number)) ? a[i] : b[j];
    while (i < n1 && a[i] === x) i++;
    while (j < n2 && b[j] === x) j++;
    const diff = i / n1 - j / n2;
    if (diff > maxDiff) maxDiff = diff;
    if (diff < minDiff) minDiff = diff;
  }
  return ksFromExtremes(n1, n2, maxDiff, minDiff);
}

/**
 * Counts of current values around each reference value, which a database can
 * compute without returning the values. Both arrays are aligned with the
 * sorted reference sample (a repeated reference value repeats its counts).
 */
export interface KsCounts {
  /** Number of current values. */
  total: number;
  /** Current values strictly below each reference value. */
  below: readonly number[];
  /** Current values at or below each reference value. */
  atOrBelow: readonly number[];
}

/**
 * The same result as `ksTest(reference, current)` from the counts of current
 * values around each reference value, for windows too large to load.
 *
 * Why counts on both sides of each reference value: between two consecutive
 * reference values the reference CDF is flat, so the gap is largest either at
 * the lower reference value (current CDF lowest: `atOrBelow`) or at the last
 * current value before the next one (current CDF highest: `below` of the next
 * reference value). Values at or below alone cannot tell where in the interval
 * the current values sit (reference [0, 1, 2] against current [0.5] or [1]
 * gives D = 2/3 or 1/3 with the same counts). Every gap is computed as SciPy
 * computes it, `i / n1 - j / n2`, so the statistic is bitwise the same.
 */
export function ksTestFromCounts(referenceSorted: readonly number[], counts: KsCounts): KsResult {
  const n1 = referenceSorted.length;
  const n2 = counts.total;
  if (counts.below.length !== n1 || counts.atOrBelow.length !== n1) {
    throw new RangeError("ksTestFromCounts: one count per reference value is needed");
  }
  if (n1 === 0 || n2 === 0) return { statistic: Number.NaN, pValue: Number.NaN };
  let maxDiff = Number.NEGATIVE_INFINITY;
  let minDiff = Number.POSITIVE_INFINITY;
  const consider = (diff: number) => {
    if (diff > maxDiff) maxDiff = diff;
    if (diff < minDiff) minDiff = diff;
  };
  // Current values below the smallest reference value: reference CDF 0.
  const first = counts.below[0] as number;
  if (first > 0) consider(0 - first / n2);
  let i = 0;
  while (i < n1) {
    const value = referenceSorted[i] as number;
    let next = i;
    while (next < n1 && referenceSorted[next] === value) next++;
    // At the reference value itself.
    consider(next / n1 - (counts.atOrBelow[i] as number) / n2);
    // At the last current value strictly between it and the next reference value.
    const before = next < n1 ? (counts.below[next] as number) : n2;
    if (before > (counts.atOrBelow[i] as number)) consider(next / n1 - before / n2);
    i = next;
  }
  return ksFromExtremes(n1, n2, maxDiff, minDiff);
}

function ksFromExtremes(n1: number, n2: number, maxDiff: number, minDiff: number): KsResult {
  const minS = Math.min(1, Math.max(0, -minDiff));
  let d = Math.max(minS, maxDiff);
  if (Math.max(n1, n2) <= KS_EXACT_MAX_N) {
    const exact = exactTwoSided(n1, n2, d);
    d = exact.statistic;
    if (exact.pValue !== null)
      return { statistic: d, pValue: Math.min(1, Math.max(0, exact.pValue)) };
  }
  const [m, n] = n1 >= n2 ? [n1, n2] : [n2, n1];
  const en = (m * n) / (m + n);
  return { statistic: d, pValue: Math.min(1, Math.max(0, kolmogorovSf(roundHalfEven(en), d))) };
}

/** numpy's round: halves to the even neighbour. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** SciPy's `_attempt_exact_2kssamp`, two-sided: null p-value when it fails. */
function exactTwoSided(
  n1: number,
  n2: number,
  d: number,
): { statistic: number; pValue: number | null } {
  const g = gcd(n1, n2);
  const lcm = (n1 / g) * n2;
  const h = roundHalfEven(d * lcm);
  const statistic = h / lcm;
  if (h === 0) return { statistic, pValue: 1 };
  const p = n1 === n2 ? probOutsideSquare(n1, h) : outerProbInside(n1, n2, g, h);
  if (!(p >= 0 && p <= 1)) return { statistic, pValue: null };
  return { statistic, pValue: p };
}

/** P(D_{n,n} >= h/n), Hodges' alternating sum in Horner form. */
function probOutsideSquare(n: number, h: number): number {
  let p = 0;
  for (let k = Math.floor(n / h); k >= 0; k--) {
    let p1 = 1;
    for (let j = 0; j < h; j++) p1 = ((n - k * h - j) * p1) / (n + k * h + j + 1);
    p = p1 * (1 - p);
  }
  return 2 * p;
}

/**
 * The share of lattice paths from (0, 0) to (m, n) that leave the band
 * |x/m - y/n| < h/lcm(m, n): P(D >= h/lcm) for unequal sizes, by Viehmann's
 * recursion for 1 - p (arXiv:2102.08037), column by column over a sliding window.
 */
function outerProbInside(n1: number, n2: number, g: number, h: number): number {
  const [m, n] = n1 >= n2 ? [n1, n2] : [n2, n1];
  const mg = m / g;
  const ng = n / g;
  let minj = 0;
  let maxj = Math.min(Math.ceil(h / mg), n + 1);
  let curlen = maxj - minj;
  const lenA = Math.min(2 * maxj + 2, n + 1);
  const A = new Float64Array(lenA).fill(1);
  A.fill(0, minj, maxj);
  for (let i = 1; i <= m; i++) {
    const lastminj = minj;
    const lastlen = curlen;
    minj = Math.min(Math.max(Math.floor((ng * i - h) / mg) + 1, 0), n);
    maxj = Math.min(Math.ceil((ng * i + h) / mg), n + 1);
    if (maxj <= minj) return 1;
    let val = minj === 0 ? 0 : 1;
    for (let jj = 0; jj < maxj - minj; jj++) {
      const j = jj + minj;
      val = ((A[jj + minj - lastminj] as number) * i + val * j) / (i + j);
      A[jj] = val;
    }
    curlen = maxj - minj;
    if (lastlen > curlen) A.fill(1, maxj - minj, maxj - minj + (lastlen - curlen));
  }
  return A[maxj - minj - 1] as number;
}
