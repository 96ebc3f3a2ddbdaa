/**
 * Drift of a categorical feature from the counts of each category: the
 * chi-square goodness-of-fit test, Jensen-Shannon distance and PSI.
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
  /** Pearson's statistic; Infinity when a category is new in the current counts. */
  statistic: number;
  /** P(chi2(k - 1) >= statistic); 0 for a new category, NaN when undefined (see chiSquare). */
  pValue: number;
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
  return {
    categories,
    reference: categories.map((c) => reference[c] ?? 0),
    current: categories.map((c) => current[c] ?? 0),
  };
}

function total(counts: readonly number[]): number {
  const sum = new Sum();
  for (const count of counts) sum.add(count);
  return sum.value;
}

/**
 * Pearson's chi-square goodness-of-fit test of the current counts against the
 * reference's proportions (SciPy's `chisquare(observed, expected)`):
 * observed = current counts, expected = reference proportion x current total,
 * k - 1 degrees of freedom for k categories.
 *
 * - A category present now but absent from the reference has expected 0:
 *   statistic Infinity, p-value 0.
 * - NaN for both when either side has no counts, and a NaN p-value when
 *   there is a single category (0 degrees of freedom), as SciPy gives.
 */
export function chiSquare(reference: CategoryCounts, current: CategoryCounts): ChiSquareResult {
  const aligned = alignCounts(reference, current);
  const referenceTotal = total(aligned.reference);
  const currentTotal = total(aligned.current);
  if (referenceTotal === 0 || currentTotal === 0) {
    return { statistic: Number.NaN, pValue: Number.NaN };
  }
  const statistic = new Sum();
  for (let i = 0; i < aligned.categories.length; i++) {
    const observed = aligned.current[i] as number;
    const expected = ((aligned.reference[i] as number) / referenceTotal) * currentTotal;
    if (expected === 0) return { statistic: Number.POSITIVE_INFINITY, pValue: 0 };
    statistic.add((observed - expected) ** 2 / expected);
  }
  const degrees = aligned.categories.length - 1;
  const value = statistic.value;
  return { statistic: value, pValue: chiSquareSf(value, degrees) };
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
