/**
 * Drift of a numeric feature from aggregates of the current window, for
 * windows too large to load: the database counts values over a grid fixed by
 * the reference, and these functions do the rest.
 *
 * The grid (`driftGrid`) has as edges every distinct reference value (at most
 * 1,000: a baseline keeps at most that many), the PSI bin edges, and 999
 * points that divide the reference's range evenly: about 2,000 at most. The
 * outer bins are open: bin 0 holds values below the first edge, bin i values
 * in [edges[i-1], edges[i]), the last bin values at or above the last edge,
 * so a value equal to an edge is in the bin above it. Per bin the database
 * returns the count and the sum of the values, and per edge the count of
 * values equal to it. In Postgres, with the edges as a float8[] parameter $1:
 *
 *   SELECT width_bucket(v, $1) AS bin, count(*) AS count, sum(v) AS sum,
 *          count(*) FILTER (WHERE v = ($1)[width_bucket(v, $1)]) AS at_lower_edge
 *   FROM ... GROUP BY 1
 *
 * (`width_bucket(v, thresholds)` numbers bins exactly as here, and a bin's
 * `at_lower_edge` is `atEdge[bin - 1]`.) `binWindow` computes the same from
 * values, for tests and small windows.
 *
 * Approximation, against the functions on raw values:
 * - KS: none. The statistic is bitwise the one `ksTest` computes, the p-value
 *   follows from it and the sizes (`ksTestFromCounts` explains why).
 * - PSI and numeric Jensen-Shannon: none beyond rounding (1e-12). Every PSI
 *   edge is a grid edge, so each grid bin lies in one PSI bin and the PSI
 *   bin counts are sums of grid counts.
 * - Normalised Wasserstein: `value` is a lower bound of the exact distance and
 *   `maxError` bounds the shortfall: value <= exact <= value + maxError (both
 *   in units of the reference's standard deviation, up to rounding). Every
 *   reference value is an edge, so the reference CDF is flat within a bin,
 *   and a bin's count and sum give the integral of the current CDF over it
 *   exactly. A bin's contribution |integral of (F_ref - F_cur)| is therefore
 *   exact unless the current CDF crosses the flat reference level inside the
 *   bin; the open outer bins never have a crossing (F_ref is 0 below the
 *   reference and 1 above it). In a crossing bin of width w where the current
 *   CDF rises from A to B across the reference level R, the shortfall is at
 *   most that of the worst monotone CDF with the same integral, a single step:
 *   at most w * max(R - A, B - R) <= w * (share of the window in the bin).
 *   The bound is computed for each window and returned; the grid's even steps
 *   keep every w at most (reference range) / 1000. Measured in
 *   test/worker/drift.unit.test.ts with 1,000-value references (normal,
 *   lognormal, bimodal, discrete) and 20,000-value windows (normal, shifted,
 *   slightly shifted, scaled, lognormal, bimodal, uniform, discrete):
 *   maxError <= 2.8e-5 and actual shortfall <= 1e-5 for continuous values;
 *   maxError <= 2.8e-4, and reached, when the window has ties inside a bin (a
 *   discrete window over a continuous reference). The tests hold these to
 *   1e-4 and 1e-3, against drift thresholds of 0.1.
 */
import { jensenShannonOfVectors, psiOfVectors } from "./categorical";
import { type KsCounts, type KsResult, ksTestFromCounts } from "./ks";
import { binOf, MIN_WASSERSTEIN_SCALE, populationStd, psiEdges } from "./numeric";
import { Sum } from "./sum";
import { sortedValues } from "./values";

/** A window of current values, aggregated over a grid's edges. */
export interface BinnedWindow {
  /** The grid the window was counted over, ascending (from `driftGrid`). */
  edges: readonly number[];
  /** Values per bin, `edges.length + 1` of them (see the module comment). */
  counts: readonly number[];
  /** Sum of the values per bin. */
  sums: readonly number[];
  /** Values equal to each edge, `edges.length` of them. */
  atEdge: readonly number[];
}

const ascending = (a: number, b: number) => a - b;

/**
 * The grid also divides the reference's range evenly into this many steps,
 * so that no bin is wide where the reference has few distinct values (a
 * discrete reference, or the sparse tail of a skewed one).
 */
export const GRID_EVEN_STEPS = 1000;

/**
 * The grid for a numeric feature's reference: its distinct values and the
 * edges of PSI's `psiBins` quantile bins, ascending. Fixed once per
 * reference, so every window is counted over the same bins.
 */
export function driftGrid(reference: readonly number[], psiBins = 10): number[] {
  const sorted = sortedValues(reference);
  const edges = new Set<number>(sorted);
  for (const edge of psiEdges(sorted, psiBins) ?? []) edges.add(edge);
  if (sorted.length > 0) {
    const low = sorted[0] as number;
    const span = (sorted[sorted.length - 1] as number) - low;
    for (let i = 1; i < GRID_EVEN_STEPS; i++) edges.add(low + (span * i) / GRID_EVEN_STEPS);
  }
  return [...edges].sort(ascending);
}

/** Aggregates `values` over `edges` as the database does (see the module comment). */
export function binWindow(edges: readonly number[], values: readonly number[]): BinnedWindow {
  const counts = new Array<number>(edges.length + 1).fill(0);
  const sums = Array.from({ length: edges.length + 1 }, () => new Sum());
  const atEdge = new Array<number>(edges.length).fill(0);
  for (const value of values) {
    if (Number.isNaN(value)) continue;
    const bin = binOf(edges, value);
    counts[bin] = (counts[bin] as number) + 1;
    sums[bin]?.add(value);
    if (bin > 0 && edges[bin - 1] === value) atEdge[bin - 1] = (atEdge[bin - 1] as number) + 1;
  }
  return { edges, counts, sums: sums.map((s) => s.value), atEdge };
}

function checkWindow(window: BinnedWindow): number {
  const k = window.edges.length;
  if (
    window.counts.length !== k + 1 ||
    window.sums.length !== k + 1 ||
    window.atEdge.length !== k
  ) {
    throw new RangeError(
      "binned window: counts and sums need one entry per bin (edges + 1), atEdge one per edge",
    );
  }
  for (let i = 1; i < k; i++) {
    if (!((window.edges[i] as number) > (window.edges[i - 1] as number))) {
      throw new RangeError("binned window: edges must be strictly ascending");
    }
  }
  const total = new Sum();
  for (const count of window.counts) total.add(count);
  return total.value;
}

/** Index of `value` among the edges; throws when the grid lacks it. */
function edgeIndex(edges: readonly number[], value: number): number {
  const index = binOf(edges, value) - 1;
  if (index < 0 || edges[index] !== value) {
    throw new RangeError(
      `binned window: ${value} is not an edge of the grid; count the window over driftGrid(reference)`,
    );
  }
  return index;
}

/** Counts below and at or below each reference value, from a binned window. */
export function ksCountsFromBins(
  referenceSorted: readonly number[],
  window: BinnedWindow,
): KsCounts {
  const total = checkWindow(window);
  // below[e] = values below edge e = counts of bins 0..e.
  const belowEdge: number[] = [];
  let running = 0;
  for (let e = 0; e < window.edges.length; e++) {
    running += window.counts[e] as number;
    belowEdge.push(running);
  }
  const below: number[] = [];
  const atOrBelow: number[] = [];
  for (const value of referenceSorted) {
    const e = edgeIndex(window.edges, value);
    below.push(belowEdge[e] as number);
    atOrBelow.push((belowEdge[e] as number) + (window.atEdge[e] as number));
  }
  return { total, below, atOrBelow };
}

/** `ksTest(reference, current)` from a binned window: the same result. */
export function ksTestFromBins(reference: readonly number[], window: BinnedWindow): KsResult {
  const sorted = Array.from(sortedValues(reference));
  return ksTestFromCounts(sorted, ksCountsFromBins(sorted, window));
}

export interface BinnedEstimate {
  /** The estimate: a lower bound of the exact value. */
  value: number;
  /** The exact value is at most `value + maxError`. */
  maxError: number;
}

/**
 * Normalised Wasserstein distance (as `wassersteinNormed`) from a binned
 * window: a lower bound and how far below the exact value it can be (see the
 * module comment). NaN when either side is empty.
 */
export function wassersteinNormedFromBins(
  reference: readonly number[],
  window: BinnedWindow,
): BinnedEstimate {
  const n = checkWindow(window);
  const sorted = sortedValues(reference);
  const m = sorted.length;
  if (m === 0 || n === 0) return { value: Number.NaN, maxError: Number.NaN };
  const { edges, counts, sums, atEdge } = window;
  const k = edges.length;
  for (const value of sorted) edgeIndex(edges, value);

  const area = new Sum();
  const slack = new Sum();
  // Below the first edge (the reference minimum) F_ref = 0: the area is that of F_cur.
  area.add(((counts[0] as number) * (edges[0] as number) - (sums[0] as number)) / n);
  let before = counts[0] as number;
  let referenceAtOrBelow = 0;
  for (let b = 1; b < k; b++) {
    const lower = edges[b - 1] as number;
    const upper = edges[b] as number;
    const width = upper - lower;
    while (referenceAtOrBelow < m && (sorted[referenceAtOrBelow] as number) <= lower) {
      referenceAtOrBelow++;
    }
    const R = referenceAtOrBelow / m;
    const count = counts[b] as number;
    const A = (before + (atEdge[b - 1] as number)) / n;
    const B = (before + count) / n;
    // Integral over the bin of F_cur: the values below it for the whole
    // width, each value inside from itself to the upper edge.
    const currentArea = (before * width + (count * upper - (sums[b] as number))) / n;
    const signed = R * width - currentArea;
    area.add(Math.abs(signed));
    if (A < R && R < B) slack.add(crossingSlack(width, R, A, B, signed));
    before += count;
  }
  // At or above the last edge (the reference maximum) F_ref = 1.
  area.add(((sums[k] as number) - (counts[k] as number) * (edges[k - 1] as number)) / n);

  const scale = Math.max(populationStd(sorted), MIN_WASSERSTEIN_SCALE);
  return { value: area.value / scale, maxError: slack.value / scale };
}

/**
 * How much more than |signed| the integral of |R - F| over a bin of `width`
 * can be, for F rising monotonically from A to B across R with the given
 * signed integral of R - F: the largest is a step from A to B at the point
 * that keeps the signed integral.
 */
function crossingSlack(width: number, R: number, A: number, B: number, signed: number): number {
  const step = Math.min(width, Math.max(0, ((B - R) * width + signed) / (B - A)));
  const largest = (R - A) * step + (B - R) * (width - step);
  return Math.max(0, largest - Math.abs(signed));
}

/** The PSI-bin counts of the reference and of a window counted over a finer grid. */
function psiBinCounts(
  reference: readonly number[],
  window: BinnedWindow,
  bins: number,
): { reference: number[]; current: number[] } | null {
  checkWindow(window);
  const sorted = sortedValues(reference);
  const edges = psiEdges(sorted, bins);
  if (edges === null) return null;
  for (const edge of edges) edgeIndex(window.edges, edge);
  const referenceCounts = new Array<number>(edges.length + 1).fill(0);
  for (const value of sorted) {
    const bin = binOf(edges, value);
    referenceCounts[bin] = (referenceCounts[bin] as number) + 1;
  }
  const current = new Array<number>(edges.length + 1).fill(0);
  window.counts.forEach((count, bin) => {
    // A grid bin lies within the PSI bin of its lower edge; bin 0 is below every edge.
    const psiBin = bin === 0 ? 0 : binOf(edges, window.edges[bin - 1] as number);
    current[psiBin] = (current[psiBin] as number) + count;
  });
  return { reference: referenceCounts, current };
}

/** `psi(reference, current, bins)` from a binned window: the same value. */
export function psiFromBins(reference: readonly number[], window: BinnedWindow, bins = 10): number {
  const counts = psiBinCounts(reference, window, bins);
  return counts === null ? Number.NaN : psiOfVectors(counts.reference, counts.current);
}

/** `jensenShannonNumeric(reference, current, bins)` from a binned window: the same value. */
export function jensenShannonFromBins(
  reference: readonly number[],
  window: BinnedWindow,
  bins = 10,
): number {
  const counts = psiBinCounts(reference, window, bins);
  return counts === null ? Number.NaN : jensenShannonOfVectors(counts.reference, counts.current);
}
