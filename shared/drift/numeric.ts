/**
 * Distances between two samples of a numeric feature: normalised Wasserstein,
 * the population stability index over reference quantile bins, and
 * Jensen-Shannon over the same bins. Pure functions of the values.
 */
import { jensenShannonOfVectors, psiOfVectors } from "./categorical";
import { Sum, sum } from "./sum";
import { sortedValues } from "./values";

/** Floor of the reference's standard deviation when normalising Wasserstein. */
export const MIN_WASSERSTEIN_SCALE = 0.001;

/** Population standard deviation (NumPy's `std`, ddof 0); NaN when empty. */
export function populationStd(values: ArrayLike<number>): number {
  const present = sortedValues(values);
  const n = present.length;
  if (n === 0) return Number.NaN;
  const mean = sum(present) / n;
  const squares = new Sum();
  for (const value of present) squares.add((value - mean) ** 2);
  return Math.sqrt(squares.value / n);
}

/**
 * SciPy's `wasserstein_distance(u, v)`: the area between the two empirical
 * CDFs, sum over consecutive merged values of |F_u - F_v| times the gap.
 * NaN when either sample is empty.
 */
export function wassersteinDistance(u: readonly number[], v: readonly number[]): number {
  const a = sortedValues(u);
  const b = sortedValues(v);
  if (a.length === 0 || b.length === 0) return Number.NaN;
  const area = new Sum();
  let i = 0;
  let j = 0;
  let previous = Math.min(a[0] as number, b[0] as number);
  while (i < a.length || j < b.length) {
    const x = j >= b.length || (i < a.length && (a[i] as number) <= (b[j] as number)) ? a[i] : b[j];
    const value = x as number;
    // The CDFs are flat on [previous, value): their gap there counts what is <= previous.
    area.add(Math.abs(i / a.length - j / b.length) * (value - previous));
    while (i < a.length && a[i] === value) i++;
    while (j < b.length && b[j] === value) j++;
    previous = value;
  }
  return area.value;
}

/**
 * Wasserstein distance in units of the reference's spread:
 * `wasserstein_distance(reference, current) / max(std(reference), 0.001)`,
 * so one threshold (0.1 by default) fits features of any scale.
 */
export function wassersteinNormed(
  reference: readonly number[],
  current: readonly number[],
): number {
  return (
    wassersteinDistance(reference, current) /
    Math.max(populationStd(reference), MIN_WASSERSTEIN_SCALE)
  );
}

/**
 * Quantile of sorted values with linear interpolation, as NumPy's default
 * `quantile` computes it (both ends of the interpolation, picked by the
 * weight, so that results agree to the last bit).
 */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  const index = (n - 1) * q;
  if (index >= n - 1) return sorted[n - 1] as number;
  if (index < 0) return sorted[0] as number;
  const lower = Math.floor(index);
  const t = index - lower;
  const a = sorted[lower] as number;
  const b = sorted[lower + 1] as number;
  const gap = b - a;
  return t >= 0.5 ? b - gap * (1 - t) : a + gap * t;
}

/**
 * The interior edges of the PSI bins: the reference quantiles at 0, 1/bins,
 * ..., 1 with duplicates removed, less the smallest and largest. The outer
 * bins are open, so there are `edges.length + 1` bins; a value equal to an
 * edge falls in the bin above it. Null when the reference is empty or
 * constant: its quantiles leave no bin at all.
 */
export function psiEdges(referenceSorted: ArrayLike<number>, bins = 10): number[] | null {
  if (!Number.isInteger(bins) || bins < 1)
    throw new RangeError("psi: bins must be a positive integer");
  if (referenceSorted.length === 0) return null;
  const unique: number[] = [];
  for (let i = 0; i <= bins; i++) {
    const edge = quantileSorted(referenceSorted, i / bins);
    if (unique.length === 0 || edge !== unique[unique.length - 1]) unique.push(edge);
  }
  return unique.length < 2 ? null : unique.slice(1, -1);
}

/** The bin of `value` among interior `edges`: how many edges are at or below it. */
export function binOf(edges: readonly number[], value: number): number {
  let low = 0;
  let high = edges.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((edges[mid] as number) <= value) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** Counts of values in each of the `edges.length + 1` bins; NaN is left out. */
export function binCounts(edges: readonly number[], values: ArrayLike<number>): number[] {
  const counts = new Array<number>(edges.length + 1).fill(0);
  for (const value of Array.from(values)) {
    if (Number.isNaN(value)) continue;
    const bin = binOf(edges, value);
    counts[bin] = (counts[bin] as number) + 1;
  }
  return counts;
}

/**
 * Population stability index over `bins` reference quantile bins (see
 * `psiEdges`): sum over bins of (c - r) ln(c / r), with the reference and
 * current proportions r and c floored at 0.0001. 0.1 is a moderate shift and
 * 0.25 a large one. NaN when either sample is empty or the reference is
 * constant (its quantiles leave no bin).
 */
export function psi(reference: readonly number[], current: readonly number[], bins = 10): number {
  const sorted = sortedValues(reference);
  const edges = psiEdges(sorted, bins);
  const counts = edges && binCounts(edges, current);
  if (edges === null || counts === null || sum(counts) === 0) return Number.NaN;
  return psiOfVectors(binCounts(edges, sorted), counts);
}

/**
 * Jensen-Shannon distance (natural log, SciPy's `jensenshannon`) between the
 * shares of the two samples in the PSI bins: the numeric counterpart of
 * `jensenShannon` on category counts. NaN as for `psi`.
 */
export function jensenShannonNumeric(
  reference: readonly number[],
  current: readonly number[],
  bins = 10,
): number {
  const sorted = sortedValues(reference);
  const edges = psiEdges(sorted, bins);
  const counts = edges && binCounts(edges, current);
  if (edges === null || counts === null || sum(counts) === 0) return Number.NaN;
  return jensenShannonOfVectors(binCounts(edges, sorted), counts);
}
