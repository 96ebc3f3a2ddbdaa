/**
 * Drift statistics against SciPy's own results on seeded samples
 * (scripts/fixtures/make_drift_fixtures.py), the aggregate forms against the
 * functions on raw values, and the drift decisions built on them.
 */
import { describe, expect, it } from "vitest";
import {
  binWindow,
  type CategoryCounts,
  chiSquare,
  chooseMethod,
  DriftOverrides,
  detectDatasetDrift,
  detectDrift,
  driftGrid,
  type FeatureDrift,
  GRID_EVEN_STEPS,
  jensenShannon,
  jensenShannonFromBins,
  jensenShannonNumeric,
  KS_EXACT_MAX_N,
  ksCountsFromBins,
  ksTest,
  ksTestFromBins,
  ksTestFromCounts,
  populationStd,
  psi,
  psiCategorical,
  psiEdges,
  psiFromBins,
  psiLevel,
  resolveDriftSettings,
  wassersteinDistance,
  wassersteinNormed,
  wassersteinNormedFromBins,
} from "../../shared/drift";
import { kolmogorovSf, smirnovSf } from "../../shared/drift/kolmogorov";
import categoricalFixture from "../fixtures/drift/categorical.json";
import ksFixture from "../fixtures/drift/ks.json";
import numericFixture from "../fixtures/drift/numeric.json";
import samplesFixture from "../fixtures/drift/samples.json";
import { mulberry32 } from "./random";

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/** A slice of a pool: [pool, start, stop]. */
type Slice = [string, number, number];
/** JSON has no NaN or Infinity: the generator writes them as strings. */
type Num = number | string;

interface KsCase {
  name: string;
  reference: Slice;
  current: Slice;
  path: "exact" | "asymptotic";
  statistic: Num;
  pValue: Num;
}

interface NumericCase {
  name: string;
  reference: Slice;
  current: Slice;
  wasserstein: Num;
  referenceStd: Num;
  wassersteinNormed: Num;
  psi: Record<string, Num>;
  jensenShannon: Record<string, Num>;
}

interface CategoricalCase {
  name: string;
  reference: Record<string, number>;
  current: Record<string, number>;
  jensenShannon: Num;
  psi: Num;
}

const pools = samplesFixture.pools as unknown as Record<string, number[]>;
const ksCases = ksFixture.cases as unknown as KsCase[];
const kstwoGrid = ksFixture.kstwo as unknown as [number, number, Num][];
const smirnovGrid = ksFixture.smirnov as unknown as [number, number, Num][];
const numericCases = numericFixture.cases as unknown as NumericCase[];
const categoricalCases = categoricalFixture.cases as unknown as CategoricalCase[];

function slice([pool, start, stop]: Slice): number[] {
  const values = pools[pool];
  if (!values) throw new Error(`no pool ${pool}`);
  return values.slice(start, stop);
}

const num = (value: Num): number => (typeof value === "number" ? value : Number(value));

/** |actual - expected| <= rel * |expected|, with NaN and infinities equal to themselves. */
function expectClose(actual: number, expected: number, rel = 1e-9, abs = 0) {
  if (Number.isNaN(expected) || !Number.isFinite(expected)) {
    expect(actual).toBe(expected);
    return;
  }
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(rel * Math.abs(expected) + abs);
}

describe("fixtures", () => {
  it("were made with SciPy and cover both KS paths and every statistic", () => {
    expect(ksFixture.generatedWith).toMatch(/^scipy \d/);
    const exact = ksCases.filter((c) => c.path === "exact");
    const asymptotic = ksCases.filter((c) => c.path === "asymptotic");
    expect(exact.length).toBeGreaterThanOrEqual(20);
    expect(asymptotic.length).toBeGreaterThanOrEqual(10);
    for (const c of asymptotic) {
      expect(Math.max(slice(c.reference).length, slice(c.current).length)).toBeGreaterThan(
        KS_EXACT_MAX_N,
      );
    }
    const sizes = ksCases.flatMap((c) => [slice(c.reference).length, slice(c.current).length]);
    expect(Math.min(...sizes)).toBe(5);
    expect(Math.max(...sizes)).toBeGreaterThanOrEqual(5000);
    expect(kstwoGrid.length).toBeGreaterThan(300);
    expect(numericCases.length).toBeGreaterThanOrEqual(10);
    expect(categoricalCases.map((c) => c.name)).toContain("new category");
  });
});

// ---------------------------------------------------------------------------
// Kolmogorov-Smirnov
// ---------------------------------------------------------------------------

describe("ksTest against SciPy's ks_2samp", () => {
  it.each(ksCases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const result = ksTest(slice(c.reference), slice(c.current));
    expect(Math.abs(result.statistic - num(c.statistic))).toBeLessThanOrEqual(1e-12);
    // Asked: within 0.01. Both paths reproduce SciPy's computation, so far closer.
    expectClose(result.pValue, num(c.pValue), 1e-10, 1e-300);
  });

  it("is symmetric in its arguments", () => {
    const a = slice(["normal_a", 0, 300]);
    const b = slice(["shifted", 0, 700]);
    expect(ksTest(a, b)).toEqual(ksTest(b, a));
  });

  it("returns NaN, without throwing, for an empty sample", () => {
    expect(ksTest([], [1, 2])).toEqual({ statistic: Number.NaN, pValue: Number.NaN });
    expect(ksTest([1, 2], [])).toEqual({ statistic: Number.NaN, pValue: Number.NaN });
    expect(ksTest([Number.NaN], [1])).toEqual({ statistic: Number.NaN, pValue: Number.NaN });
  });

  it("ignores NaN as a missing value", () => {
    const a = slice(["normal_a", 0, 40]);
    const b = slice(["shifted_far", 0, 30]);
    expect(ksTest([Number.NaN, ...a, Number.NaN], [...b, Number.NaN])).toEqual(ksTest(a, b));
    expect(wassersteinNormed([...a, Number.NaN], [Number.NaN, ...b])).toBe(wassersteinNormed(a, b));
    expect(psi([...a, Number.NaN], [Number.NaN, ...b])).toBe(psi(a, b));
  });
});

describe("the Kolmogorov distribution against SciPy", () => {
  it("kstwo.sf(d, n) in every region of SciPy's method choice", () => {
    let worst = 0;
    for (const [n, d, expected] of kstwoGrid) {
      const actual = kolmogorovSf(n, d);
      const error = Math.abs(actual - num(expected));
      worst = Math.max(worst, error);
      if (error > 1e-12 + 1e-10 * num(expected)) {
        throw new Error(`kstwo.sf(${d}, ${n}): ${actual}, SciPy ${expected}`);
      }
    }
    expect(worst).toBeLessThan(1e-12);
  });

  it("smirnov(n, x), the one-sided tail", () => {
    for (const [n, x, expected] of smirnovGrid) {
      const actual = smirnovSf(n, x);
      if (Math.abs(actual - num(expected)) > 1e-12 + 1e-9 * num(expected)) {
        throw new Error(`smirnov(${n}, ${x}): ${actual}, SciPy ${expected}`);
      }
    }
  });
});

// ---------------------------------------------------------------------------
// Numeric distances
// ---------------------------------------------------------------------------

describe.each(numericCases.map((c) => [c.name, c] as const))("numeric: %s", (_name, c) => {
  const reference = slice(c.reference);
  const current = slice(c.current);

  it("Wasserstein distance and its normalised form", () => {
    expectClose(wassersteinDistance(reference, current), num(c.wasserstein));
    expectClose(populationStd(reference), num(c.referenceStd), 1e-9, 1e-15);
    expectClose(wassersteinNormed(reference, current), num(c.wassersteinNormed));
  });

  it("PSI over reference quantile bins", () => {
    for (const [bins, expected] of Object.entries(c.psi)) {
      expectClose(psi(reference, current, Number(bins)), num(expected), 1e-9, 1e-15);
    }
  });

  it("Jensen-Shannon over reference quantile bins", () => {
    for (const [bins, expected] of Object.entries(c.jensenShannon)) {
      expectClose(
        jensenShannonNumeric(reference, current, Number(bins)),
        num(expected),
        1e-9,
        1e-15,
      );
    }
  });
});

describe("numeric edge cases", () => {
  it("a constant reference normalises Wasserstein by 0.001 and has no PSI", () => {
    const reference = [2, 2, 2, 2];
    expect(wassersteinNormed(reference, [2, 3])).toBeCloseTo(0.5 / 0.001, 9);
    expect(psi(reference, [2, 3])).toBeNaN();
    expect(jensenShannonNumeric(reference, [2, 3])).toBeNaN();
  });

  it("an empty side gives NaN", () => {
    expect(wassersteinNormed([1, 2], [])).toBeNaN();
    expect(wassersteinNormed([], [1, 2])).toBeNaN();
    expect(psi([1, 2, 3], [])).toBeNaN();
    expect(psi([], [1])).toBeNaN();
  });

  it("puts a value equal to an interior PSI edge in the bin above it", () => {
    // Reference 0..10 has 5-bin edges 2, 4, 6, 8: bins (-inf, 2), [2, 4), [4, 6),
    // [6, 8), [8, inf) hold 2, 2, 2, 2 and 3 of its 11 values.
    const reference = Array.from({ length: 11 }, (_, i) => i);
    const shares = [2 / 11, 2 / 11, 2 / 11, 2 / 11, 3 / 11];
    const psiWithAllIn = (bin: number) =>
      shares.reduce((total, r, i) => {
        const c = i === bin ? 1 : 0.0001;
        return total + (c - r) * Math.log(c / r);
      }, 0);
    expect(psi(reference, [8, 8, 8], 5)).toBeCloseTo(psiWithAllIn(4), 12);
    expect(psi(reference, [7.9, 7.9], 5)).toBeCloseTo(psiWithAllIn(3), 12);
    expect(psiWithAllIn(4)).not.toBeCloseTo(psiWithAllIn(3), 3);
  });
});

// ---------------------------------------------------------------------------
// Categorical
// ---------------------------------------------------------------------------

describe.each(categoricalCases.map((c) => [c.name, c] as const))("categorical: %s", (_name, c) => {
  // Chi-square has fixtures of its own: chi-square.unit.test.ts.
  it("Jensen-Shannon and PSI", () => {
    expectClose(jensenShannon(c.reference, c.current), num(c.jensenShannon), 1e-9, 1e-15);
    expectClose(psiCategorical(c.reference, c.current), num(c.psi), 1e-9, 1e-15);
  });
});

describe("categorical edge cases", () => {
  it("leaves out categories counted 0 on both sides", () => {
    expect(jensenShannon({ a: 10, b: 30, z: 0 }, { a: 20, b: 20, z: 0 })).toBe(
      jensenShannon({ a: 10, b: 30 }, { a: 20, b: 20 }),
    );
  });

  it("returns NaN for an empty side, and refuses negative counts", () => {
    expect(jensenShannon({}, { a: 1 })).toBeNaN();
    expect(psiCategorical({ a: 0 }, { a: 1 })).toBeNaN();
    expect(() => jensenShannon({ a: -1 }, { a: 1 })).toThrow(RangeError);
    expect(() => psiCategorical({ a: 1 }, { a: -1 })).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------
// Aggregate forms
// ---------------------------------------------------------------------------

/** Counts of `current` around each value of the sorted reference, by brute force. */
function bruteCounts(referenceSorted: number[], current: number[]) {
  return {
    total: current.length,
    below: referenceSorted.map((r) => current.filter((v) => v < r).length),
    atOrBelow: referenceSorted.map((r) => current.filter((v) => v <= r).length),
  };
}

const sortedCopy = (values: number[]) => [...values].sort((a, b) => a - b);

function normal(random: () => number): number {
  const u = 1 - random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

type Draw = (random: () => number) => number;
const distributions: Record<string, Draw> = {
  normal: (r) => normal(r),
  shifted: (r) => normal(r) + 0.3,
  "slightly shifted": (r) => normal(r) + 0.05,
  scaled: (r) => normal(r) * 1.6,
  lognormal: (r) => Math.exp(0.8 * normal(r)),
  bimodal: (r) => (r() < 0.5 ? normal(r) * 0.4 - 1.5 : normal(r) * 0.6 + 1.5),
  uniform: (r) => 4 * r() - 2,
  "rounded (ties)": (r) => Math.round(normal(r) * 3) / 2,
};
const referenceDraw: Record<string, Draw> = {
  normal: distributions.normal as Draw,
  lognormal: distributions.lognormal as Draw,
  bimodal: distributions.bimodal as Draw,
  "rounded (ties)": distributions["rounded (ties)"] as Draw,
};

function draw(distribution: Draw, n: number, seed: number): number[] {
  const random = mulberry32(seed);
  return Array.from({ length: n }, () => distribution(random));
}

describe("KS from counts", () => {
  it("equals ksTest on the raw values for every fixture pair", () => {
    for (const c of ksCases) {
      const reference = sortedCopy(slice(c.reference));
      const current = slice(c.current);
      if (reference.length > 1000) continue;
      expect(ksTestFromCounts(reference, bruteCounts(reference, current)), c.name).toEqual(
        ksTest(reference, current),
      );
    }
  });

  it("equals ksTest with ties in both samples and values outside the reference", () => {
    const random = mulberry32(7);
    for (let trial = 0; trial < 200; trial++) {
      const n1 = 1 + Math.floor(random() * 40);
      const n2 = 1 + Math.floor(random() * 60);
      const spread = 1 + Math.floor(random() * 8);
      const reference = sortedCopy(Array.from({ length: n1 }, () => Math.floor(random() * spread)));
      const current = Array.from({ length: n2 }, () => Math.floor(random() * (spread + 4)) - 2);
      expect(ksTestFromCounts(reference, bruteCounts(reference, current))).toEqual(
        ksTest(reference, current),
      );
    }
  });

  it("needs the counts below as well as at or below", () => {
    // Same counts at or below each reference value, different statistics.
    const reference = [0, 1, 2];
    expect(ksTest(reference, [0.5]).statistic).toBeCloseTo(2 / 3, 12);
    expect(ksTest(reference, [1]).statistic).toBeCloseTo(1 / 3, 12);
    expect(ksTestFromCounts(reference, bruteCounts(reference, [0.5]))).toEqual(
      ksTest(reference, [0.5]),
    );
    expect(ksTestFromCounts(reference, bruteCounts(reference, [1]))).toEqual(
      ksTest(reference, [1]),
    );
  });

  it("uses the asymptotic p-value past 10,000 current values, as ksTest does", () => {
    const reference = sortedCopy(draw(distributions.normal as Draw, 1000, 11));
    const current = draw(distributions["slightly shifted"] as Draw, 30_000, 12);
    const window = binWindow(driftGrid(reference), current);
    const fromBins = ksTestFromBins(reference, window);
    expect(fromBins).toEqual(ksTest(reference, current));
    expect(fromBins.pValue).toBeGreaterThan(0);
    expect(fromBins.pValue).toBeLessThan(1);
  });

  it("refuses counts that do not match the reference", () => {
    expect(() => ksTestFromCounts([1, 2], { total: 3, below: [0], atOrBelow: [1] })).toThrow(
      RangeError,
    );
  });
});

describe("binned windows", () => {
  const summary: { name: string; maxError: number; actualError: number }[] = [];

  describe.each(Object.entries(referenceDraw))("reference %s", (referenceName, referenceOf) => {
    const reference = draw(referenceOf, 1000, 101);
    const grid = driftGrid(reference);

    it("has every distinct reference value and PSI edge as an edge", () => {
      expect(grid.length).toBeLessThanOrEqual(1000 + 9 + GRID_EVEN_STEPS - 1);
      const edges = new Set(grid);
      for (const value of reference) expect(edges.has(value)).toBe(true);
      for (const bins of [5, 10]) {
        for (const edge of psiEdges(sortedCopy(reference), bins) ?? [])
          expect(edges.has(edge)).toBe(true);
      }
      for (let i = 1; i < grid.length; i++) expect(grid[i]).toBeGreaterThan(grid[i - 1] as number);
    });

    it.each(Object.entries(distributions))("against %s windows", (currentName, currentOf) => {
      const current = draw(currentOf, 20_000, 202);
      const window = binWindow(grid, current);

      expect(ksTestFromBins(reference, window)).toEqual(ksTest(reference, current));
      for (const bins of [10, 5]) {
        expectClose(
          psiFromBins(reference, window, bins),
          psi(reference, current, bins),
          1e-12,
          1e-15,
        );
        expectClose(
          jensenShannonFromBins(reference, window, bins),
          jensenShannonNumeric(reference, current, bins),
          1e-12,
          1e-15,
        );
      }

      const exact = wassersteinNormed(reference, current);
      const estimate = wassersteinNormedFromBins(reference, window);
      // A lower bound, short of the exact value by at most maxError.
      expect(estimate.value).toBeLessThanOrEqual(exact + 1e-9);
      expect(exact).toBeLessThanOrEqual(estimate.value + estimate.maxError + 1e-9);
      // The bound documented in shared/drift/binned.ts.
      expect(estimate.maxError).toBeLessThanOrEqual(1e-3);
      summary.push({
        name: `${referenceName} -> ${currentName}`,
        maxError: estimate.maxError,
        actualError: exact - estimate.value,
      });
    });
  });

  it("stays well within the bound overall, and closer still for continuous values", () => {
    expect(summary.length).toBe(
      Object.keys(referenceDraw).length * Object.keys(distributions).length,
    );
    for (const s of summary) expect(s.actualError, s.name).toBeLessThanOrEqual(s.maxError + 1e-9);
    // Ties inside a bin are the worst case the bound allows for; without them
    // the bound is ten times tighter (shared/drift/binned.ts).
    const continuous = summary.filter((s) => !s.name.includes("ties"));
    expect(continuous.length).toBeGreaterThan(15);
    expect(Math.max(...continuous.map((s) => s.maxError))).toBeLessThanOrEqual(1e-4);
  });

  it("is exact when no CDF crossing falls inside a bin", () => {
    // Every current value sits on a reference value: the current CDF is flat inside bins.
    const reference = [0, 1, 2, 3, 4, 5, 6, 7];
    const current = [0, 0, 1, 3, 3, 3, 7, 7, 7, 7];
    const estimate = wassersteinNormedFromBins(reference, binWindow(driftGrid(reference), current));
    expect(estimate.maxError).toBe(0);
    expectClose(estimate.value, wassersteinNormed(reference, current), 1e-12);
  });

  it("counts values below, inside and above the reference", () => {
    const window = binWindow([1, 2, 3], [0, 1, 1, 1.5, 2.5, 3, 9]);
    expect(window.counts).toEqual([1, 3, 1, 2]);
    expect(window.sums).toEqual([0, 3.5, 2.5, 12]);
    expect(window.atEdge).toEqual([2, 0, 1]);
    expect(ksCountsFromBins([1, 2, 3], window)).toEqual(
      bruteCounts([1, 2, 3], [0, 1, 1, 1.5, 2.5, 3, 9]),
    );
  });

  it("refuses a window counted over another grid", () => {
    const reference = [1, 2, 3, 4, 5, 6, 7];
    const window = binWindow([1, 3, 5, 7], [2, 4, 6]);
    expect(() => ksTestFromBins(reference, window)).toThrow(/not an edge/);
    expect(() => wassersteinNormedFromBins(reference, window)).toThrow(RangeError);
    expect(() =>
      psiFromBins(reference, { edges: [1, 2], counts: [1, 2], sums: [0, 0], atEdge: [0, 0] }),
    ).toThrow(RangeError);
  });

  it("returns NaN for an empty window", () => {
    const reference = [1, 2, 3, 4, 5, 6, 7];
    const window = binWindow(driftGrid(reference), []);
    expect(ksTestFromBins(reference, window).pValue).toBeNaN();
    expect(wassersteinNormedFromBins(reference, window).value).toBeNaN();
    expect(psiFromBins(reference, window)).toBeNaN();
  });
});

// ---------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------

const countsOf = (values: (string | number)[]): CategoryCounts => {
  const counts: Record<string, number> = {};
  for (const value of values) counts[String(value)] = (counts[String(value)] ?? 0) + 1;
  return counts;
};

describe("method choice", () => {
  it("tests up to 1,000 reference rows and distances above", () => {
    expect(chooseMethod("numeric", 1000)).toBe("ks");
    expect(chooseMethod("numeric", 1001)).toBe("wasserstein");
    expect(chooseMethod("categorical", 1000)).toBe("chi_square");
    expect(chooseMethod("categorical", 1001)).toBe("jensen_shannon");
  });

  it("uses KS on a small numeric reference, decided at p < 0.05", () => {
    const reference = slice(["normal_a", 0, 1000]);
    const drifted = detectDrift("numeric", reference, slice(["shifted", 0, 2000]));
    const expected = ksTest(reference, slice(["shifted", 0, 2000]));
    expect(drifted).toMatchObject({ kind: "numeric", method: "ks", threshold: 0.05, drift: true });
    expect(drifted.value).toBe(expected.pValue);
    expect(drifted.statistic).toBe(expected.statistic);
    expect(drifted.value).toBeLessThan(0.05);

    const stable = detectDrift("numeric", reference, slice(["normal_b", 0, 5000]));
    expect(stable.value).toBeGreaterThan(0.05);
    expect(stable.drift).toBe(false);
  });

  it("uses normalised Wasserstein on a large reference, decided at >= 0.1", () => {
    const sample = slice(["normal_a", 0, 1000]);
    const reference = { sample, n: 50_000 };
    const far = slice(["shifted_far", 0, 1000]);
    const drifted = detectDrift("numeric", reference, far);
    expect(drifted).toMatchObject({ method: "wasserstein", threshold: 0.1, drift: true });
    expect(drifted.value).toBe(wassersteinNormed(sample, far));

    const near = slice(["normal_b", 0, 3000]);
    const stable = detectDrift("numeric", reference, near);
    expect(stable.value).toBe(wassersteinNormed(sample, near));
    expect(stable.value).toBeLessThan(0.1);
    expect(stable.drift).toBe(false);
  });

  it("treats the threshold as inclusive for distances and exclusive for p-values", () => {
    const sample = slice(["normal_a", 0, 1000]);
    const current = slice(["shifted", 0, 2000]);
    const distance = wassersteinNormed(sample, current);
    const at = detectDrift("numeric", { sample, n: 5000 }, current, {
      thresholds: { wasserstein: distance },
    });
    expect(at.drift).toBe(true);
    const above = detectDrift("numeric", { sample, n: 5000 }, current, {
      thresholds: { wasserstein: distance * (1 + 1e-12) },
    });
    expect(above.drift).toBe(false);

    const p = ksTest(sample, current).pValue;
    expect(detectDrift("numeric", sample, current, { thresholds: { ks: p } }).drift).toBe(false);
    expect(
      detectDrift("numeric", sample, current, { thresholds: { ks: p * (1 + 1e-9) } }).drift,
    ).toBe(true);
  });

  it("compares a numeric feature with at most 5 distinct values as categories", () => {
    const reference = [1, 2, 3, 4, 5, 1, 2, 3, 4, 5];
    const current = [1, 1, 1, 2, 3, 4, 5, 5];
    const result = detectDrift("numeric", reference, current);
    expect(result).toMatchObject({ kind: "categorical", method: "chi_square" });
    expect(result.value).toBe(chiSquare(countsOf(reference), countsOf(current)).pValue);
    // Six distinct values: numeric again.
    expect(detectDrift("numeric", [...reference, 6], current).method).toBe("ks");
  });

  it("uses chi-square on small categorical references and Jensen-Shannon on large ones", () => {
    const reference = { a: 500, b: 300, c: 200 };
    const current = { a: 200, b: 300, c: 500 };
    const small = detectDrift("categorical", reference, current);
    expect(small).toMatchObject({ kind: "categorical", method: "chi_square", drift: true });
    expect(small.value).toBe(chiSquare(reference, current).pValue);

    const large = detectDrift("categorical", { a: 5000, b: 3000, c: 2000 }, current);
    expect(large).toMatchObject({ method: "jensen_shannon", threshold: 0.1, drift: true });
    expect(large.value).toBe(jensenShannon(reference, current));
    const near = detectDrift("categorical", { a: 5000, b: 3000, c: 2000 }, { a: 49, b: 31, c: 20 });
    expect(near.value).toBeLessThan(0.1);
    expect(near.drift).toBe(false);
  });

  it("always reports PSI, with its warning and alert levels", () => {
    const reference = slice(["normal_a", 0, 1000]);
    const current = slice(["shifted_far", 0, 1000]);
    const result = detectDrift("numeric", reference, current);
    expect(result.psi.value).toBe(psi(reference, current));
    expect(psiLevel(0.099)).toBe("ok");
    expect(psiLevel(0.1)).toBe("warn");
    expect(psiLevel(0.249)).toBe("warn");
    expect(psiLevel(0.25)).toBe("alert");
    expect(psiLevel(Number.NaN)).toBeNull();
    expect(result.psi.level).toBe(psiLevel(result.psi.value as number));
    expect(detectDrift("categorical", { a: 1, b: 1 }, { a: 1, b: 1 }).psi).toEqual({
      value: 0,
      level: "ok",
    });
  });

  it("gives the same decision from a binned window as from the values", () => {
    const reference = draw(distributions.normal as Draw, 1000, 5);
    const current = draw(distributions.shifted as Draw, 12_000, 6);
    const window = binWindow(driftGrid(reference), current);
    const fromValues = detectDrift("numeric", reference, current);
    const fromBins = detectDrift("numeric", reference, window);
    expect(fromBins).toEqual(fromValues);

    const large = { sample: reference, n: 10_000 };
    const wasserstein = detectDrift("numeric", large, window);
    expect(wasserstein.method).toBe("wasserstein");
    expect(wasserstein.drift).toBe(detectDrift("numeric", large, current).drift);
    expect(wasserstein.maxError).toBeGreaterThanOrEqual(0);
  });

  it("counts a binned window's values outside a low-cardinality reference as one new category", () => {
    const reference = Array.from({ length: 30 }, (_, i) => i % 3);
    const values = [...reference, ...new Array(10).fill(7), ...new Array(10).fill(7.5)];
    const binned = detectDrift("numeric", reference, binWindow(driftGrid(reference), values));
    expect(binned).toMatchObject({ kind: "categorical", method: "chi_square", drift: true });
    expect(binned.reason).toBeUndefined();
    expect(binned.value).toBe(
      chiSquare(countsOf(reference), { ...countsOf(reference), other: 20 }).pValue,
    );
    // The same statistic as on the values, with one degree of freedom fewer.
    const raw = detectDrift("numeric", reference, values);
    expectClose(binned.statistic as number, raw.statistic as number, 1e-12);
    expect(binned.value).toBeLessThan(raw.value as number);
    const same = detectDrift("numeric", reference, binWindow(driftGrid(reference), [0, 1, 2, 2]));
    expect(same.value).toBe(chiSquare(countsOf(reference), countsOf([0, 1, 2, 2])).pValue);
  });

  it("weighs a summary's low-cardinality sample as its n rows", () => {
    const sample = Array.from({ length: 1000 }, (_, i) => i % 4);
    const current = Array.from({ length: 4000 }, (_, i) => (i < 1100 ? 0 : 1 + (i % 3)));
    const summary = detectDrift("numeric", { sample, n: 5000 }, current, {
      testMaxReferenceRows: 5000,
    });
    expect(summary.method).toBe("chi_square");
    const weighted = Object.fromEntries(
      Object.entries(countsOf(sample)).map(([value, count]) => [value, count * 5]),
    );
    expect(summary.value).toBe(chiSquare(weighted, countsOf(current)).pValue);
    expect(summary.value).toBeLessThan(detectDrift("numeric", sample, current).value as number);
  });
});

describe("overrides", () => {
  it("accepts methods, thresholds, PSI levels and per-feature entries", () => {
    const parsed = DriftOverrides.parse({
      numericMethod: "wasserstein",
      thresholds: { wasserstein: 0.2, ks: 0.01 },
      psi: { bins: 20, warn: 0.05 },
      datasetDriftShare: 0.3,
      features: { age: { numericMethod: "ks", thresholds: { ks: 0.001 } } },
    });
    const model = resolveDriftSettings(parsed);
    expect(model.numericMethod).toBe("wasserstein");
    expect(model.thresholds).toEqual({
      ks: 0.01,
      chi_square: 0.05,
      wasserstein: 0.2,
      jensen_shannon: 0.1,
    });
    expect(model.psi).toEqual({ bins: 20, warn: 0.05, alert: 0.25 });
    expect(model.datasetDriftShare).toBe(0.3);
    const age = resolveDriftSettings(parsed, "age");
    expect(age.numericMethod).toBe("ks");
    expect(age.thresholds.ks).toBe(0.001);
    expect(age.thresholds.wasserstein).toBe(0.2);
    expect(resolveDriftSettings(parsed, "income")).toEqual(model);
  });

  it("refuses unknown keys, methods of the wrong kind and thresholds out of range", () => {
    const refused = [
      { numericMethod: "chi_square" },
      { categoricalMethod: "ks" },
      { thresholds: { ks: 1.5 } },
      { thresholds: { ks: 0 } },
      { thresholds: { wasserstein: -1 } },
      { thresholds: { psi: 0.2 } },
      { psi: { warn: 0.3, alert: 0.2 } },
      { psi: { bins: 1 } },
      { datasetDriftShare: 0 },
      { features: { age: { datasetDriftShare: 0.5 } } },
      { sensitivity: "high" },
    ];
    for (const overrides of refused) {
      expect(DriftOverrides.safeParse(overrides).success, JSON.stringify(overrides)).toBe(false);
    }
  });

  it("change the method and decision for one feature only", () => {
    const reference = slice(["normal_a", 0, 1000]);
    const current = slice(["shifted", 0, 2000]);
    const overrides = DriftOverrides.parse({
      features: { age: { numericMethod: "wasserstein", thresholds: { wasserstein: 0.5 } } },
    });
    const age = detectDrift("numeric", reference, current, overrides, "age");
    expect(age).toMatchObject({ method: "wasserstein", threshold: 0.5, drift: false });
    const income = detectDrift("numeric", reference, current, overrides, "income");
    expect(income).toMatchObject({ method: "ks", drift: true });
  });

  it("change the number of PSI bins", () => {
    const reference = slice(["normal_a", 0, 1000]);
    const current = slice(["shifted", 0, 2000]);
    const result = detectDrift("numeric", reference, current, { psi: { bins: 20 } });
    expect(result.psi.value).toBe(psi(reference, current, 20));
    expect(result.psi.value).not.toBe(psi(reference, current, 10));

    // A binned window needs a grid with the feature's own PSI edges.
    const overrides = { features: { age: { psi: { bins: 20 } } } };
    const bins = resolveDriftSettings(overrides, "age").psi.bins;
    const window = binWindow(driftGrid(reference, bins), current);
    expect(detectDrift("numeric", reference, window, overrides, "age").psi.value).toBeCloseTo(
      psi(reference, current, 20),
      12,
    );
    const coarse = binWindow(driftGrid(reference, 10), current);
    expect(() => detectDrift("numeric", reference, coarse, overrides, "age")).toThrow(RangeError);
  });
});

describe("degenerate input", () => {
  it("an empty current window: no value, no drift, reason empty_current", () => {
    for (const result of [
      detectDrift("numeric", [1, 2, 3, 4, 5, 6, 7], []),
      detectDrift(
        "numeric",
        [1, 2, 3, 4, 5, 6, 7],
        binWindow(driftGrid([1, 2, 3, 4, 5, 6, 7]), []),
      ),
      detectDrift("numeric", { sample: [1, 2, 3, 4, 5, 6, 7], n: 5000 }, []),
      detectDrift("categorical", { a: 3 }, {}),
      detectDrift("numeric", [1, 2, 3, 4, 5, 6, 7], [Number.NaN]),
    ]) {
      expect(result).toMatchObject({
        value: null,
        statistic: null,
        drift: false,
        reason: "empty_current",
      });
      expect(result.psi).toEqual({ value: null, level: null, reason: "empty_current" });
    }
  });

  it("an empty reference: reason empty_reference", () => {
    expect(detectDrift("numeric", [], [1, 2])).toMatchObject({
      value: null,
      reason: "empty_reference",
    });
    expect(detectDrift("categorical", {}, { a: 1 })).toMatchObject({
      value: null,
      reason: "empty_reference",
    });
  });

  it("a constant reference compares as one category", () => {
    const same = detectDrift("numeric", [3, 3, 3], [3, 3]);
    expect(same).toMatchObject({
      kind: "categorical",
      value: null,
      drift: false,
      reason: "single_category",
    });
    expect(same.statistic).toBe(0);
    // A new value is a category like the others: two values say little, ten a lot.
    const hint = detectDrift("numeric", [3, 3, 3], [3, 4]);
    expect(hint).toMatchObject({ kind: "categorical", method: "chi_square", drift: false });
    const moved = detectDrift("numeric", new Array(30).fill(3), [
      ...new Array(10).fill(3),
      ...new Array(10).fill(4),
    ]);
    expect(moved).toMatchObject({ kind: "categorical", method: "chi_square", drift: true });
    expect(moved.reason).toBeUndefined();
    expect(Number.isFinite(moved.statistic)).toBe(true);
  });

  it("ignores non-finite values as missing", () => {
    const reference = slice(["normal_a", 0, 200]);
    const current = slice(["shifted_far", 0, 200]);
    expect(
      detectDrift("numeric", [...reference, Number.NaN], [...current, Number.POSITIVE_INFINITY]),
    ).toEqual(detectDrift("numeric", reference, current));
  });
});

describe("dataset drift", () => {
  const result = (drift: boolean, reason?: FeatureDrift["reason"]): FeatureDrift => ({
    kind: "numeric",
    method: "ks",
    value: reason ? null : drift ? 0.001 : 0.5,
    statistic: null,
    threshold: 0.05,
    drift,
    psi: { value: null, level: null },
    ...(reason ? { reason } : {}),
  });

  it("drifts when at least half of the features drift", () => {
    expect(detectDatasetDrift({ a: result(true), b: result(false) })).toEqual({
      evaluated: 2,
      drifted: 1,
      share: 0.5,
      drift: true,
    });
    expect(detectDatasetDrift([result(true), result(false), result(false)]).drift).toBe(false);
  });

  it("leaves out features that could not be evaluated", () => {
    const summary = detectDatasetDrift([
      result(true),
      result(false, "empty_current"),
      result(false, "empty_reference"),
    ]);
    expect(summary).toEqual({ evaluated: 1, drifted: 1, share: 1, drift: true });
    expect(detectDatasetDrift([result(false, "empty_current")])).toEqual({
      evaluated: 0,
      drifted: 0,
      share: 0,
      drift: false,
    });
  });

  it("follows the model's share", () => {
    const features = [result(true), result(false), result(false)];
    expect(detectDatasetDrift(features, { datasetDriftShare: 0.3 }).drift).toBe(true);
  });
});
