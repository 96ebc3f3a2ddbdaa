/**
 * The chi-square test of homogeneity against SciPy's `chi2_contingency`
 * (scripts/fixtures/make_chi_square_fixtures.py), and the drift decisions it
 * makes for a small reference against a large window.
 */
import { describe, expect, it } from "vitest";
import { chiSquare, detectDrift } from "../../shared/drift";
import chiSquareFixture from "../fixtures/drift/chi-square.json";

/** JSON has no NaN or Infinity: the generator writes them as strings. */
type Num = number | string;

interface ChiSquareCase {
  name: string;
  /** "stable": both sides drawn from one distribution; "shifted": not. */
  family?: "stable" | "shifted";
  reference: Record<string, number>;
  current: Record<string, number>;
  statistic: Num;
  pValue: Num;
  degreesOfFreedom: number;
  /** Categories counted 0 on both sides, left out of SciPy's table. */
  dropped?: string[];
  /** SciPy's `chisquare` of the current counts against the reference's proportions. */
  goodnessOfFit?: { statistic: Num; pValue: Num };
}

const cases = chiSquareFixture.cases as unknown as ChiSquareCase[];
const num = (value: Num): number => (typeof value === "number" ? value : Number(value));
const named = (name: string): ChiSquareCase => {
  const found = cases.find((c) => c.name === name);
  if (!found) throw new Error(`no fixture ${name}`);
  return found;
};
const rows = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);

/** |actual - expected| <= rel * |expected| + abs. */
function expectClose(actual: number, expected: number, rel: number, abs: number) {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(rel * Math.abs(expected) + abs);
}

describe("chi-square fixtures", () => {
  it("were made with SciPy and cover the cases that matter", () => {
    expect(chiSquareFixture.generatedWith).toMatch(/^scipy \d/);
    const stable = cases.filter((c) => c.family === "stable");
    expect(stable.length).toBeGreaterThanOrEqual(30);
    for (const c of stable.slice(0, 20)) {
      expect(rows(c.reference)).toBe(1000);
      expect(rows(c.current)).toBe(1_000_000);
    }
    expect(cases.filter((c) => c.family === "shifted").length).toBeGreaterThanOrEqual(5);
    const degrees = cases.map((c) => c.degreesOfFreedom);
    expect(degrees).toContain(0);
    expect(degrees).toContain(1);
    expect(Math.max(...degrees)).toBeGreaterThanOrEqual(199);
    expect(cases.some((c) => c.dropped !== undefined)).toBe(true);
    expect(cases.some((c) => num(c.pValue) === 0)).toBe(true);
  });
});

describe.each(cases.map((c) => [c.name, c] as const))("chi-square: %s", (_name, c) => {
  it("matches SciPy's chi2_contingency to 1e-9", () => {
    const result = chiSquare(c.reference, c.current);
    expect(result.degreesOfFreedom).toBe(c.degreesOfFreedom);
    // The absolute terms only matter where SciPy's value is 0 (or rounds to 1e-30).
    expectClose(result.statistic, num(c.statistic), 1e-9, 1e-12);
    expectClose(result.pValue, num(c.pValue), 1e-9, 1e-300);
  });
});

describe("a 1,000-row reference against a 1,000,000-row window", () => {
  const stable = cases.filter((c) => c.family === "stable");
  const shifted = cases.filter((c) => c.family === "shifted");

  it("flags stable windows about as often as the 5% threshold says", () => {
    const flagged = stable.filter((c) => detectDrift("categorical", c.reference, c.current).drift);
    // 30 draws at 5%: 1.5 expected, 4 or more in 6% of fixture sets. These
    // fixtures flag 1 (seed 9, p = 0.0039).
    expect(flagged.map((c) => c.name)).toEqual(["stable, 1,000 vs 1,000,000, seed 9"]);
    for (const c of stable) {
      const result = detectDrift("categorical", c.reference, c.current);
      expect(result.method).toBe("chi_square");
      expect(result.value).toBe(chiSquare(c.reference, c.current).pValue);
      expect(result.reason).toBeUndefined();
    }
  });

  it("would flag every stable window if the reference's proportions were taken as exact", () => {
    // The goodness-of-fit test the function ran before: the window's counts
    // against the reference's proportions. Its statistic grows with the
    // window, so a large enough window of a stable feature always drifts.
    const judged = stable.filter((c) => c.goodnessOfFit !== undefined);
    expect(judged.length).toBe(30);
    for (const c of judged) {
      const old = c.goodnessOfFit as { statistic: Num; pValue: Num };
      expect(num(old.pValue)).toBeLessThan(1e-100);
      expect(num(old.statistic)).toBeGreaterThan(100 * num(c.statistic));
    }
  });

  it("still flags shifted windows, a large new category and a category gone", () => {
    for (const c of shifted) {
      const result = detectDrift("categorical", c.reference, c.current);
      expect(result, c.name).toMatchObject({ method: "chi_square", drift: true });
    }
    const grown = named("only in current, 5% of the window");
    expect(grown.current.new).toBeGreaterThan(45_000);
    expect(grown.reference.new).toBeUndefined();
    expect(num(grown.pValue)).toBeLessThan(1e-9);
    const gone = named("only in reference, 5% of it");
    expect(gone.current.new).toBeUndefined();
  });

  it("does not let a handful of new values decide", () => {
    const c = named("only in current, 3 of 1,000,000");
    const result = detectDrift("categorical", c.reference, c.current);
    expect(Number.isFinite(result.statistic)).toBe(true);
    expect(result.drift).toBe(false);
    // The same counts without the new category: almost the same statistic.
    const { new: _new, ...without } = c.current;
    expectClose(result.statistic as number, chiSquare(c.reference, without).statistic, 0, 0.01);
  });

  it("does not flag a stable window when the reference lacks a rare category", () => {
    const lacking = cases.filter(
      (c) => c.name.startsWith("stable with a rare category") && c.reference.rare === 0,
    );
    expect(lacking.length).toBeGreaterThanOrEqual(3);
    for (const c of lacking) {
      expect(c.current.rare).toBeGreaterThan(400);
      expect(detectDrift("categorical", c.reference, c.current).drift).toBe(false);
    }
  });
});

describe("chi-square edge cases", () => {
  it("is symmetric in its two samples", () => {
    for (const c of cases) {
      const forward = chiSquare(c.reference, c.current);
      const backward = chiSquare(c.current, c.reference);
      expectClose(backward.statistic, forward.statistic, 1e-12, 1e-12);
      expect(backward.degreesOfFreedom).toBe(forward.degreesOfFreedom);
    }
  });

  it("leaves out categories counted 0 on both sides, where SciPy refuses the table", () => {
    const c = named("zero on both sides");
    expect(c.dropped).toEqual(["z"]);
    expect(c.reference.z).toBe(0);
    expect(chiSquare(c.reference, c.current)).toEqual(
      chiSquare(
        { a: c.reference.a as number, b: c.reference.b as number },
        {
          a: c.current.a as number,
          b: c.current.b as number,
        },
      ),
    );
    expect(chiSquare({ a: 10, b: 30, z: 0 }, { a: 20, b: 20 }).degreesOfFreedom).toBe(1);
  });

  it("gives statistic 0 and p-value 1 for a single category, as SciPy does", () => {
    expect(chiSquare({ a: 10 }, { a: 7 })).toEqual({
      statistic: 0,
      pValue: 1,
      degreesOfFreedom: 0,
    });
    expect(detectDrift("categorical", { a: 10 }, { a: 7 })).toMatchObject({
      value: null,
      statistic: 0,
      drift: false,
      reason: "single_category",
    });
  });

  it("takes categories named like Object's own properties as categories", () => {
    const reference = JSON.parse('{"constructor": 30, "toString": 20, "__proto__": 50}');
    const current = JSON.parse('{"valueOf": 40, "toString": 20, "__proto__": 40}');
    expect(chiSquare(reference, current)).toEqual(
      chiSquare({ a: 30, b: 20, c: 50 }, { d: 40, b: 20, c: 40 }),
    );
  });

  it("returns NaN for an empty side, and refuses negative or non-finite counts", () => {
    for (const result of [chiSquare({ a: 1 }, {}), chiSquare({}, { a: 1 }), chiSquare({}, {})]) {
      expect(result.statistic).toBeNaN();
      expect(result.pValue).toBeNaN();
      expect(result.degreesOfFreedom).toBeNaN();
    }
    expect(() => chiSquare({ a: -1 }, { a: 1 })).toThrow(RangeError);
    expect(() => chiSquare({ a: 1 }, { a: Number.POSITIVE_INFINITY })).toThrow(RangeError);
  });
});
