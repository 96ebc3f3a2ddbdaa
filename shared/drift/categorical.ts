/**
 * Drift of a categorical feature from the counts of each category: the
 * chi-square test of homogeneity, Jensen-Shannon distance and PSI.
 *
 * Categories are the union of both sides' keys; a category counted 0 on both
 * sides carries no information and is left out (it would otherwise change the
 * chi-square degrees of freedom).
 */
import gammainc from "@stdlib/math-base-special-gammainc";
import { Sum } from "./sum";

export type CategoryCounts = Readonly<Record<string, number>>;

/** Proportions below this are raised to it in PSI, so that ln(c / r) stays finite. */
export const PSI_MIN_PROPORTION = 0.0001;

export interface ChiSquareResult {
  /** Pearson's statistic over the 2 x k table; NaN when either side has no counts. */
  statistic: number;
  /** P(chi2(k - 1) >= statistic); 1 for a single category, NaN when either side has no counts. */
  pValue: number;
  /** k - 1 for the k categories with a count on either side; NaN when either side has no counts. */
  degreesOfFreedom: number;
}

/** Both sides' counts over the union of categories with a count on either side. */
export function alignCounts(
  reference: CategoryCounts,
  current: CategoryCounts,
): { categories: string[]; reference: number[]; current: number[] } {
  const categories: string[] = [];
  const seen = new Set<string>();
  for (const counts of [reference, current]) {
    for (const [category, count] of Object.entries(counts)) {
      if (!Number.isFinite(count) || count < 0) {
        throw new RangeError(
          `category ${JSON.stringify(category)}: a count must be a finite number >= 0`,
        );
      }
      if (count > 0 && !seen.has(category)) {
        seen.add(category);
        categories.push(category);
      }
    }
  }
  // Own keys only: a category may be called "constructor" or "toString".
  const count = (counts: CategoryCounts, category: string) =>
    Object.hasOwn(counts, category) ? (counts[category] as number) : 0;
  return {
    categories,
    reference: categories.map((c) => count(reference, c)),
    current: categories.map((c) => count(current, c)),
  };
}

function total(counts: readonly number[]): number {
  const sum = new Sum();
  for (const count of counts) sum.add(count);
  return sum.value;
}

/**
 * Pearson's chi-square test of homogeneity: are the reference and the current
 * counts draws from the same distribution over the categories? SciPy's
 * `chi2_contingency([reference, current], correction=False)` on the 2 x k
 * table of counts: expected count of a cell = its row total x its column
 * total / all counts, statistic = sum of (observed - expected)^2 / expected,
 * k - 1 degrees of freedom.
 *
 * Both samples are random, so the reference's proportions are estimates, not
 * the truth: a 1,000-row reference against a million-row window is judged by
 * what 1,000 rows can tell, and the test does not grow more sensitive as the
 * window grows (a goodness-of-fit test against the reference's proportions
 * does, and flags nearly every large window of a stable feature).
 *
 * - A category seen on one side only is an ordinary cell: its column total is
 *   positive, so both expected counts are. A category that is a share s of a
 *   large window and absent from n reference rows adds about n x s to the
 *   statistic; a handful of new values in a million adds next to nothing.
 * - A category counted 0 on both sides is left out (SciPy refuses such a
 *   table: its expected counts are 0); it would only change the degrees of
 *   freedom.
 * - A single category: 0 degrees of freedom, statistic 0, p-value 1, as SciPy
 *   gives.
 * - NaN for all three when either side has no counts (SciPy raises).
 *
 * No continuity correction (SciPy's default adds Yates' for 1 degree of
 * freedom; here two categories are tested like any others). Like SciPy's, the
 * p-value is the chi-square approximation, which is rough when expected
 * counts are small: with 1,000 Zipf-distributed categories, most of them
 * expected less than once in a 1,000-row reference, about 14% of stable
 * windows drift at p < 0.05 (simulated; 4 to 5% with 6 to 100 categories).
 */
export function chiSquare(reference: CategoryCounts, current: CategoryCounts): ChiSquareResult {
  const aligned = alignCounts(reference, current);
  const referenceTotal = total(aligned.reference);
  const currentTotal = total(aligned.current);
  if (referenceTotal === 0 || currentTotal === 0) {
    return { statistic: Number.NaN, pValue: Number.NaN, degreesOfFreedom: Number.NaN };
  }
  const degreesOfFreedom = aligned.categories.length - 1;
  if (degreesOfFreedom === 0) return { statistic: 0, pValue: 1, degreesOfFreedom };
  const grandTotal = referenceTotal + currentTotal;
  const statistic = new Sum();
  for (let i = 0; i < aligned.categories.length; i++) {
    const observedReference = aligned.reference[i] as number;
    const observedCurrent = aligned.current[i] as number;
    const column = observedReference + observedCurrent;
    // As SciPy: row total x column total, then / all counts.
    const expectedReference = (referenceTotal * column) / grandTotal;
    const expectedCurrent = (currentTotal * column) / grandTotal;
    statistic.add((observedReference - expectedReference) ** 2 / expectedReference);
    statistic.add((observedCurrent - expectedCurrent) ** 2 / expectedCurrent);
  }
  const value = statistic.value;
  return { statistic: value, pValue: chiSquareSf(value, degreesOfFreedom), degreesOfFreedom };
}

/** P(chi2(degrees) >= x): the regularised upper incomplete gamma Q(k/2, x/2). */
export function chiSquareSf(x: number, degrees: number): number {
  if (!(degrees > 0) || Number.isNaN(x)) return Number.NaN;
  if (x <= 0) return 1;
  if (x === Number.POSITIVE_INFINITY) return 0;
  return gammainc(x / 2, degrees / 2, true, true);
}

/**
 * Jensen-Shannon distance between the two sides' proportions over the union
 * of categories, natural log (SciPy's `scipy.spatial.distance.jensenshannon`):
 * the square root of the divergence, 0 for identical proportions and at most
 * sqrt(ln 2) ~ 0.833 for disjoint ones. NaN when either side has no counts.
 */
export function jensenShannon(reference: CategoryCounts, current: CategoryCounts): number {
  const aligned = alignCounts(reference, current);
  return jensenShannonOfVectors(aligned.reference, aligned.current);
}

/**
 * Population stability index over categories: sum of (c - r) ln(c / r) with
 * proportions floored at 0.0001. NaN when either side has no counts.
 */
export function psiCategorical(reference: CategoryCounts, current: CategoryCounts): number {
  const aligned = alignCounts(reference, current);
  return psiOfVectors(aligned.reference, aligned.current);
}

/** Relative entropy term x ln(x / y), SciPy's `rel_entr`. */
function relEntr(x: number, y: number): number {
  if (x > 0 && y > 0) return x * Math.log(x / y);
  if (x === 0 && y >= 0) return 0;
  return Number.POSITIVE_INFINITY;
}

/** Jensen-Shannon distance of two count vectors over the same bins. */
export function jensenShannonOfVectors(p: readonly number[], q: readonly number[]): number {
  const pTotal = total(p);
  const qTotal = total(q);
  if (pTotal === 0 || qTotal === 0) return Number.NaN;
  const left = new Sum();
  const right = new Sum();
  for (let i = 0; i < p.length; i++) {
    const pi = (p[i] as number) / pTotal;
    const qi = (q[i] as number) / qTotal;
    const m = (pi + qi) / 2;
    left.add(relEntr(pi, m));
    right.add(relEntr(qi, m));
  }
  // Rounding can leave a divergence of -1e-17 for identical inputs.
  return Math.sqrt(Math.max(0, (left.value + right.value) / 2));
}

/** PSI of two count vectors over the same bins. */
export function psiOfVectors(reference: readonly number[], current: readonly number[]): number {
  const referenceTotal = total(reference);
  const currentTotal = total(current);
  if (referenceTotal === 0 || currentTotal === 0) return Number.NaN;
  const index = new Sum();
  for (let i = 0; i < reference.length; i++) {
    const r = Math.max((reference[i] as number) / referenceTotal, PSI_MIN_PROPORTION);
    const c = Math.max((current[i] as number) / currentTotal, PSI_MIN_PROPORTION);
    index.add((c - r) * Math.log(c / r));
  }
  return index.value;
}
