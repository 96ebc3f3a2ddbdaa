/**
 * Monitoring metrics against scikit-learn's and SciPy's results
 * (scripts/fixtures/make_quality_fixtures.py), the aggregate forms against
 * the array forms, and the edge cases that give null with a reason.
 */
import { describe, expect, it } from "vitest";
import {
  classificationFromConfusion,
  classificationMetrics,
  compareClassification,
  compareOperations,
  compareRegression,
  confusionMatrix,
  fairnessReport,
  type GroupCounts,
  LOG_LOSS_EPS,
  labelCoverage,
  logBeta,
  logGamma,
  logLoss,
  logLossBinary,
  logLossFromSum,
  logLossTerm,
  type Metric,
  newcombeInterval,
  normalCdf,
  normalQuantile,
  regressionFromSums,
  regressionMetrics,
  regressionPairSums,
  regressionSums,
  rocAuc,
  rocAucFromCounts,
  scoreCounts,
  studentTCdf,
  studentTQuantile,
  welchInterval,
  wilsonInterval,
} from "../../shared/metrics";
import intervalsFixture from "../fixtures/metrics/intervals.json";
import qualityFixture from "../fixtures/metrics/quality.json";
import { mulberry32 } from "./random";

/** JSON has no NaN or Infinity: the generator writes them as strings. */
type Num = number | string;
const num = (value: Num): number => (typeof value === "number" ? value : Number(value));

/** |actual - expected| <= rel * |expected| + abs. */
function expectClose(actual: number | null | undefined, expected: number, rel = 1e-9, abs = 0) {
  expect(actual).toBeTypeOf("number");
  expect(Math.abs((actual as number) - expected)).toBeLessThanOrEqual(
    rel * Math.abs(expected) + abs,
  );
}

function present(result: Metric): number {
  if (result.value === null) throw new Error(`expected a value, got null (${result.reason})`);
  return result.value;
}

interface ClassificationCase {
  name: string;
  actual: string[];
  predicted: string[];
  positive: string | null;
  accuracy: Num;
  precision: Num;
  recall: Num;
  f1: Num;
}
interface AucCase {
  name: string;
  actual: boolean[];
  scores: number[];
  auc: Num;
}
interface BinaryLogLossCase {
  name: string;
  actual: boolean[];
  scores: number[];
  logLoss: Num;
}
interface LogLossCase {
  name: string;
  actual: number[];
  probabilities: number[][];
  logLoss: Num;
}
interface RegressionCase {
  name: string;
  actual: number[];
  predicted: number[];
  mae: Num;
  rmse: Num;
  r2: Num;
}

const classificationCases = qualityFixture.classification as ClassificationCase[];
const aucCases = qualityFixture.auc as AucCase[];
const binaryLogLossCases = qualityFixture.logLossBinary as BinaryLogLossCase[];
const logLossCases = qualityFixture.logLoss as LogLossCase[];
const regressionCases = qualityFixture.regression as RegressionCase[];

describe("quality fixtures", () => {
  it("were made with scikit-learn and cover binary, macro, ties and clipping", () => {
    expect(qualityFixture.generatedWith).toMatch(/^sklearn 1\.2/);
    expect(classificationCases.filter((c) => c.positive === null).length).toBeGreaterThanOrEqual(3);
    expect(classificationCases.filter((c) => c.positive !== null).length).toBeGreaterThanOrEqual(3);
    const tied = aucCases.filter((c) => new Set(c.scores).size < c.scores.length / 10);
    expect(tied.length).toBeGreaterThanOrEqual(3);
    expect(binaryLogLossCases.some((c) => c.scores.includes(0) && c.scores.includes(1))).toBe(true);
    expect(regressionCases.length).toBeGreaterThanOrEqual(4);
  });
});

// ---------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------

describe("classificationMetrics against scikit-learn", () => {
  it.each(classificationCases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const options = c.positive === null ? {} : { positive: c.positive };
    const result = classificationMetrics(c.actual, c.predicted, options);
    expect(result.average).toBe(c.positive === null ? "macro" : "binary");
    expect(result.n).toBe(c.actual.length);
    expectClose(result.accuracy.value, num(c.accuracy), 1e-12);
    expectClose(result.precision.value, num(c.precision), 1e-12);
    expectClose(result.recall.value, num(c.recall), 1e-12);
    expectClose(result.f1.value, num(c.f1), 1e-12);
  });

  it("gives the same numbers from a confusion matrix summed in any order", () => {
    const c = classificationCases.find((x) => x.positive === null) as ClassificationCase;
    const cells = confusionMatrix(c.actual, c.predicted);
    // Split every cell in two, as two database partitions would report it.
    const split = cells.flatMap((cell) => [
      { ...cell, count: Math.floor(cell.count / 2) },
      { ...cell, count: Math.ceil(cell.count / 2) },
    ]);
    expect(classificationFromConfusion(split.reverse())).toEqual(
      classificationMetrics(c.actual, c.predicted),
    );
  });

  it("lists every label seen as actual or predicted", () => {
    const result = classificationMetrics(["a", "b", "a"], ["a", "c", "c"]);
    expect(result.labels).toEqual(["a", "b", "c"]);
    // a: p 1, r 1/2; b: p 0 (none predicted), r 0; c: p 0, r 0 (none true).
    expectClose(result.precision.value, 1 / 3, 1e-15);
    expectClose(result.recall.value, 1 / 6, 1e-15);
    expectClose(result.f1.value, 2 / 3 / 3, 1e-15);
  });

  it("gives null with a reason where scikit-learn gives 0 with a warning", () => {
    const none = classificationMetrics(["no", "no"], ["no", "no"], { positive: "yes" });
    expect(none.accuracy).toEqual({ value: 1 });
    expect(none.precision).toEqual({ value: null, reason: "no_predicted_positives" });
    expect(none.recall).toEqual({ value: null, reason: "no_positives" });
    expect(none.f1).toEqual({ value: null, reason: "undefined_f1" });
    const missed = classificationMetrics(["yes", "no"], ["no", "no"], { positive: "yes" });
    expect(missed.precision.reason).toBe("no_predicted_positives");
    expect(missed.recall).toEqual({ value: 0 });
    expect(missed.f1).toEqual({ value: 0 });
  });

  it("has no numbers without predictions", () => {
    for (const options of [{}, { positive: "yes" }]) {
      const result = classificationMetrics([], [], options);
      expect(result.n).toBe(0);
      for (const key of ["accuracy", "precision", "recall", "f1"] as const) {
        expect(result[key]).toEqual({ value: null, reason: "no_predictions" });
      }
    }
    expect(classificationFromConfusion([{ actual: "a", predicted: "a", count: 0 }]).n).toBe(0);
  });

  it("rejects counts that are not counts and arrays of different lengths", () => {
    expect(() => classificationFromConfusion([{ actual: "a", predicted: "b", count: -1 }])).toThrow(
      RangeError,
    );
    expect(() =>
      classificationFromConfusion([{ actual: "a", predicted: "b", count: 1.5 }]),
    ).toThrow(RangeError);
    expect(() => classificationMetrics(["a"], [])).toThrow(RangeError);
  });
});

describe("rocAuc against scikit-learn's roc_auc_score", () => {
  it.each(aucCases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    expectClose(present(rocAuc(c.actual, c.scores)), num(c.auc), 1e-12);
  });

  it("gives the same value from counts per score grouped in any order", () => {
    const random = mulberry32(7);
    for (const c of aucCases) {
      const rows = scoreCounts(c.actual, c.scores);
      // Split each row in two and shuffle, as GROUP BY over partitions would.
      const split = rows.flatMap((row) => [
        { score: row.score, positives: row.positives, negatives: 0 },
        { score: row.score, positives: 0, negatives: row.negatives },
      ]);
      for (let i = split.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [split[i], split[j]] = [
          split[j] as (typeof split)[number],
          split[i] as (typeof split)[number],
        ];
      }
      expect(rocAucFromCounts(split)).toEqual(rocAuc(c.actual, c.scores));
    }
  });

  it("counts a tie between a positive and a negative as one half", () => {
    expect(rocAuc([true, false], [0.5, 0.5])).toEqual({ value: 0.5 });
    expect(rocAuc([true, false, true, false], [0.9, 0.9, 0.8, 0.1])).toEqual({ value: 0.625 });
    expect(
      rocAucFromCounts([
        { score: -0, positives: 1, negatives: 0 },
        { score: 0, positives: 0, negatives: 1 },
      ]),
    ).toEqual({ value: 0.5 });
  });

  it("is null when the labels hold one class or nothing", () => {
    expect(rocAuc([true, true], [0.2, 0.9])).toEqual({ value: null, reason: "single_class" });
    expect(rocAuc([false], [0.2])).toEqual({ value: null, reason: "single_class" });
    expect(rocAuc([], [])).toEqual({ value: null, reason: "no_predictions" });
    expect(rocAucFromCounts([{ score: 0.3, positives: 0, negatives: 0 }])).toEqual({
      value: null,
      reason: "no_predictions",
    });
  });

  it("rejects scores that are not finite", () => {
    expect(() => rocAuc([true, false], [Number.NaN, 0.1])).toThrow(RangeError);
    expect(() => rocAucFromCounts([{ score: 0.1, positives: -1, negatives: 2 }])).toThrow(
      RangeError,
    );
  });
});

describe("logLoss against scikit-learn 1.2's log_loss", () => {
  it.each(binaryLogLossCases.map((c) => [c.name, c] as const))("binary: %s", (_name, c) => {
    expectClose(present(logLossBinary(c.actual, c.scores)), num(c.logLoss), 1e-12);
  });

  it.each(logLossCases.map((c) => [c.name, c] as const))("multiclass: %s", (_name, c) => {
    expectClose(present(logLoss(c.actual, c.probabilities)), num(c.logLoss), 1e-12);
  });

  it("clips at the float64 epsilon, so a certain miss costs -ln(2^-52)", () => {
    expect(LOG_LOSS_EPS).toBe(2 ** -52);
    expectClose(present(logLossBinary([true], [0])), 52 * Math.LN2, 1e-15);
    expectClose(
      present(logLoss([2], [[0.5, 0.5, 0]])),
      -Math.log(2 ** -52 / (1 + 2 ** -52)),
      1e-15,
    );
  });

  it("gives the same loss from a sum of per-row terms, as a database would add them", () => {
    const clip = (p: number) => Math.min(1 - LOG_LOSS_EPS, Math.max(LOG_LOSS_EPS, p));
    for (const c of binaryLogLossCases) {
      const terms = c.actual.map((a, i) => {
        const p = c.scores[i] as number;
        return logLossTerm(a ? p : 1 - clip(p));
      });
      const total = terms.reduce((x, y) => x + y, 0);
      expectClose(present(logLossFromSum(terms.length, total)), num(c.logLoss), 1e-12);
    }
    for (const c of logLossCases) {
      const terms = c.actual.map((label, i) => {
        const row = c.probabilities[i] as number[];
        return logLossTerm(
          row[label] as number,
          row.reduce((sum, p) => sum + clip(p), 0),
        );
      });
      const total = terms.reduce((x, y) => x + y, 0);
      expectClose(present(logLossFromSum(terms.length, total)), num(c.logLoss), 1e-12);
    }
    expect(logLossFromSum(0, 0)).toEqual({ value: null, reason: "no_predictions" });
  });

  it("is null without predictions and rejects a label outside its row", () => {
    expect(logLoss([], [])).toEqual({ value: null, reason: "no_predictions" });
    expect(() => logLoss([3], [[0.5, 0.5]])).toThrow(RangeError);
  });
});

describe("labelCoverage", () => {
  it("is labelled over predictions, null without predictions", () => {
    expect(labelCoverage(3, 12)).toEqual({ value: 0.25 });
    expect(labelCoverage(0, 0)).toEqual({ value: null, reason: "no_predictions" });
    expect(() => labelCoverage(5, 4)).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------
// Regression
// ---------------------------------------------------------------------------

describe("regressionMetrics against scikit-learn", () => {
  it.each(regressionCases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const result = regressionMetrics(c.actual, c.predicted);
    expectClose(result.mae.value, num(c.mae), 1e-12);
    expectClose(result.rmse.value, num(c.rmse), 1e-12);
    // Σy² − (Σy)²/n: the offset targets (mean 50, spread 3) lose about 300x more.
    expectClose(result.r2.value, num(c.r2), 1e-10);
  });

  it("gives the same numbers from sums added in another order", () => {
    const c = regressionCases[0] as RegressionCase;
    const reversed = regressionSums([...c.actual].reverse(), [...c.predicted].reverse());
    const result = regressionFromSums(reversed);
    const direct = regressionMetrics(c.actual, c.predicted);
    expectClose(result.r2.value, present(direct.r2), 1e-14);
    expectClose(result.mae.value, present(direct.mae), 1e-14);
    expectClose(result.rmse.value, present(direct.rmse), 1e-14);
  });

  it("reports the mean error (bias) of the predictions", () => {
    expect(regressionMetrics([1, 2], [2, 4]).meanError).toEqual({ value: 1.5 });
  });

  it("gives null with a reason for no rows, one row and constant truth", () => {
    const empty = regressionMetrics([], []);
    expect(empty.mae).toEqual({ value: null, reason: "no_predictions" });
    expect(empty.r2).toEqual({ value: null, reason: "no_predictions" });
    const one = regressionMetrics([2], [3]);
    expect(one.mae).toEqual({ value: 1 });
    expect(one.r2).toEqual({ value: null, reason: "too_few" });
    const constant = regressionMetrics([0.1, 0.1, 0.1], [0.1, 0.2, 0.3]);
    expect(constant.r2).toEqual({ value: null, reason: "constant_actual" });
    expectClose(constant.rmse.value, Math.sqrt(0.05 / 3), 1e-14);
  });

  it("rejects values that are not finite", () => {
    expect(() => regressionMetrics([1, Number.NaN], [1, 2])).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------
// Distributions and intervals
// ---------------------------------------------------------------------------

interface WelchCase {
  name: string;
  a: { n: number; mean: number; variance: number };
  b: { n: number; mean: number; variance: number };
  confidence: number;
  difference: number;
  standardError: number;
  df: number;
  lower: number;
  upper: number;
}
interface WilsonCase {
  successes: number;
  n: number;
  confidence: number;
  lower: number;
  upper: number;
}
interface NewcombeCase {
  a: { successes: number; n: number };
  b: { successes: number; n: number };
  confidence: number;
  lower: number;
  upper: number;
}

const tPpf = intervalsFixture.tPpf as [number, number, number, Num][];
const tCdf = intervalsFixture.tCdf as [number, number, Num][];
const normPpf = intervalsFixture.normPpf as [number, Num][];
const normCdf = intervalsFixture.normCdf as [number, Num][];
const welchCases = intervalsFixture.welch as WelchCase[];
const wilsonCases = intervalsFixture.wilson as WilsonCase[];
const newcombeCases = intervalsFixture.newcombe as NewcombeCase[];

describe("normal distribution against SciPy", () => {
  it("normalQuantile matches norm.ppf, tails included", () => {
    expect(normPpf.length).toBeGreaterThan(20);
    for (const [p, expected] of normPpf) {
      if (p === 0.5) expect(normalQuantile(p)).toBe(0);
      else expectClose(normalQuantile(p), num(expected), 1e-14);
    }
  });

  it("normalCdf matches norm.cdf, tails included", () => {
    for (const [z, expected] of normCdf) expectClose(normalCdf(z), num(expected), 1e-13);
  });

  it("is infinite at 0 and 1 and NaN outside", () => {
    expect(normalQuantile(0)).toBe(Number.NEGATIVE_INFINITY);
    expect(normalQuantile(1)).toBe(Number.POSITIVE_INFINITY);
    expect(normalQuantile(1.5)).toBeNaN();
    expect(normalQuantile(Number.NaN)).toBeNaN();
  });
});

describe("Student's t distribution", () => {
  it("studentTQuantile is the exact quantile to 1e-13, over df 1 to 3e7", () => {
    expect(new Set(tPpf.map(([, df]) => df)).size).toBeGreaterThanOrEqual(14);
    for (const [p, df, exact] of tPpf) {
      const got = studentTQuantile(p, df);
      if (p === 0.5) expect(got).toBe(0);
      else expectClose(got, exact, 1e-13);
    }
  });

  it("agrees with SciPy's t.ppf to SciPy's own accuracy (5e-9)", () => {
    for (const [p, df, , scipy] of tPpf) {
      expectClose(studentTQuantile(p, df), num(scipy), 1e-8, 1e-15);
    }
  });

  it("studentTCdf matches t.cdf up to 10^4 degrees of freedom, 1e-8 at 10^6", () => {
    for (const [t, df, expected] of tCdf) {
      expectClose(studentTCdf(t, df), num(expected), df > 1e5 ? 1e-8 : 1e-11, 1e-300);
    }
  });

  it("is the inverse of its CDF", () => {
    for (const df of [3, 7.5, 60]) {
      for (const p of [0.001, 0.2, 0.9])
        expectClose(studentTCdf(studentTQuantile(p, df), df), p, 1e-13);
    }
  });

  it("has ln Γ and ln B right where they cancel", () => {
    expectClose(logGamma(0.5), Math.log(Math.sqrt(Math.PI)), 1e-15);
    expectClose(logGamma(171), 706.5730622457874, 1e-15);
    // ln B(5e5, 1/2) from mpmath: -5.98881649577746431.
    expectClose(logBeta(5e5, 0.5), -5.988816495777464, 1e-15);
    expectClose(logBeta(20, 30), logGamma(20) + logGamma(30) - logGamma(50), 1e-13);
  });

  it("is NaN for no degrees of freedom", () => {
    expect(studentTQuantile(0.9, 0)).toBeNaN();
    expect(studentTCdf(1, -1)).toBeNaN();
    expect(studentTQuantile(1, 5)).toBe(Number.POSITIVE_INFINITY);
  });
});

describe("interval fixtures", () => {
  it("were made with SciPy and hold Newcombe's worked example", () => {
    expect(intervalsFixture.generatedWith).toMatch(/scipy 1\.10/);
    expect(tPpf.length).toBeGreaterThan(200);
    expect(welchCases.length).toBeGreaterThanOrEqual(8);
    const example = newcombeCases.find((c) => c.a.successes === 56 && c.b.n === 80);
    expect(example?.lower.toFixed(4)).toBe("0.0524");
    expect(example?.upper.toFixed(4)).toBe("0.3339");
  });
});

describe("welchInterval against SciPy", () => {
  it.each(welchCases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const result = welchInterval(c.a, c.b, c.confidence);
    expectClose(result.estimate, c.difference, 1e-15);
    expectClose(result.standardError, c.standardError, 1e-14);
    expectClose(result.df, c.df, 1e-13);
    expectClose(result.lower, c.lower, 1e-12, 1e-15);
    expectClose(result.upper, c.upper, 1e-12, 1e-15);
  });

  it("has the t statistic and p-value of SciPy's ttest_ind(equal_var=False)", () => {
    const c = welchCases.find((x) => "pValue" in x) as WelchCase & {
      tStatistic: number;
      pValue: number;
    };
    const result = welchInterval(c.a, c.b);
    const t = (result.estimate as number) / (result.standardError as number);
    expectClose(t, c.tStatistic, 1e-12);
    expectClose(2 * studentTCdf(-Math.abs(t), result.df as number), c.pValue, 1e-11);
  });

  it("defaults to 95%", () => {
    const c = welchCases.find((x) => x.confidence === 0.95) as WelchCase;
    expect(welchInterval(c.a, c.b)).toEqual(welchInterval(c.a, c.b, 0.95));
    expect(welchInterval(c.a, c.b, 0.9).lower).toBeGreaterThan(
      welchInterval(c.a, c.b).lower as number,
    );
  });

  it("is null with a reason for n < 2 or no variance at all", () => {
    const one = { n: 1, mean: 2, variance: 0 };
    const many = { n: 10, mean: 1, variance: 1 };
    expect(welchInterval(one, many)).toMatchObject({ estimate: null, reason: "too_few", df: null });
    expect(welchInterval(many, { n: 5, mean: 0, variance: 0 }).df).toBe(9);
    expect(
      welchInterval({ n: 5, mean: 1, variance: 0 }, { n: 5, mean: 0, variance: 0 }),
    ).toMatchObject({ estimate: null, lower: null, upper: null, reason: "zero_variance" });
    expect(() => welchInterval(many, many, 1)).toThrow(RangeError);
    expect(() => welchInterval(many, { n: 5, mean: 0, variance: -1 })).toThrow(RangeError);
  });
});

describe("wilsonInterval and newcombeInterval against their published formulas", () => {
  it.each(wilsonCases.map((c) => [`${c.successes}/${c.n} at ${c.confidence}`, c] as const))(
    "Wilson %s",
    (_name, c) => {
      const result = wilsonInterval(c.successes, c.n, c.confidence);
      expect(result.estimate).toBe(c.successes / c.n);
      expectClose(result.lower, c.lower, 1e-13, 1e-16);
      expectClose(result.upper, c.upper, 1e-13, 1e-16);
    },
  );

  it.each(
    newcombeCases.map(
      (c) =>
        [`${c.a.successes}/${c.a.n} - ${c.b.successes}/${c.b.n} at ${c.confidence}`, c] as const,
    ),
  )("Newcombe %s", (_name, c) => {
    const result = newcombeInterval(c.a, c.b, c.confidence);
    expectClose(result.estimate, c.a.successes / c.a.n - c.b.successes / c.b.n, 1e-15, 1e-16);
    expectClose(result.lower, c.lower, 1e-13, 1e-15);
    expectClose(result.upper, c.upper, 1e-13, 1e-15);
  });

  it("reproduces Newcombe's (1998) worked example: 56/70 - 48/80 is 0.0524 to 0.3339", () => {
    const result = newcombeInterval({ successes: 56, n: 70 }, { successes: 48, n: 80 });
    expect((result.lower as number).toFixed(4)).toBe("0.0524");
    expect((result.upper as number).toFixed(4)).toBe("0.3339");
  });

  it("keeps Wilson limits inside [0, 1] at 0 and n", () => {
    expect(wilsonInterval(0, 10).lower).toBe(0);
    expect(wilsonInterval(10, 10).upper).toBe(1);
  });

  it("is null with a reason for an empty sample", () => {
    expect(wilsonInterval(0, 0)).toEqual({
      estimate: null,
      lower: null,
      upper: null,
      reason: "no_observations",
    });
    expect(newcombeInterval({ successes: 0, n: 0 }, { successes: 1, n: 2 }).reason).toBe(
      "no_observations",
    );
    expect(() => wilsonInterval(3, 2)).toThrow(RangeError);
    expect(() => wilsonInterval(1, 2, 0)).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------
// Fairness
// ---------------------------------------------------------------------------

describe("fairnessReport", () => {
  const groups: GroupCounts[] = [
    { group: "north", n: 200, predictedPositive: 50, actualPositive: 40, truePositive: 30 },
    { group: "south", n: 100, predictedPositive: 40, actualPositive: 20, truePositive: 18 },
    { group: "east", n: 50, predictedPositive: 15, actualPositive: 0, truePositive: 0 },
    { group: "island", n: 12, predictedPositive: 12, actualPositive: 12, truePositive: 0 },
  ];

  it("computes rates per group and the spreads across the groups large enough", () => {
    const report = fairnessReport(groups);
    expect(report.minGroupSize).toBe(30);
    expect(report.groups).toEqual([
      { group: "north", n: 200, tooSmall: false, selectionRate: 0.25, truePositiveRate: 0.75 },
      { group: "south", n: 100, tooSmall: false, selectionRate: 0.4, truePositiveRate: 0.9 },
      { group: "east", n: 50, tooSmall: false, selectionRate: 0.3, truePositiveRate: null },
      { group: "island", n: 12, tooSmall: true },
    ]);
    // island's selection rate of 1 and TPR of 0 would dominate both spreads.
    expectClose(report.demographicParityDifference.value, 0.4 - 0.25, 1e-15);
    expectClose(report.disparateImpactRatio.value, 0.25 / 0.4, 1e-15);
    expect(report.fourFifths).toBe(false);
    expectClose(report.equalOpportunityDifference.value, 0.9 - 0.75, 1e-15);
  });

  it("takes the minimum group size as a parameter", () => {
    const report = fairnessReport(groups, { minGroupSize: 10 });
    expect(report.groups.every((g) => !g.tooSmall)).toBe(true);
    expect(report.demographicParityDifference).toEqual({ value: 0.75 });
    expect(report.equalOpportunityDifference).toEqual({ value: 0.9 });
    expect(fairnessReport(groups, { minGroupSize: 150 }).demographicParityDifference).toEqual({
      value: null,
      reason: "too_few_groups",
    });
  });

  it("passes the four-fifths rule at a ratio of exactly 0.8", () => {
    const report = fairnessReport([
      { group: "a", n: 100, predictedPositive: 50, actualPositive: 0, truePositive: 0 },
      { group: "b", n: 100, predictedPositive: 40, actualPositive: 0, truePositive: 0 },
    ]);
    expect(report.disparateImpactRatio).toEqual({ value: 0.8 });
    expect(report.fourFifths).toBe(true);
    expect(report.equalOpportunityDifference).toEqual({ value: null, reason: "too_few_groups" });
  });

  it("has no ratio when no group selects anyone", () => {
    const none = fairnessReport([
      { group: "a", n: 40, predictedPositive: 0, actualPositive: 5, truePositive: 0 },
      { group: "b", n: 40, predictedPositive: 0, actualPositive: 5, truePositive: 0 },
    ]);
    expect(none.demographicParityDifference).toEqual({ value: 0 });
    expect(none.disparateImpactRatio).toEqual({ value: null, reason: "no_selections" });
    expect(none.fourFifths).toBeNull();
    expect(fairnessReport([]).disparateImpactRatio.reason).toBe("too_few_groups");
  });

  it("rejects inconsistent counts and repeated groups", () => {
    const bad = { group: "a", n: 10, predictedPositive: 11, actualPositive: 0, truePositive: 0 };
    expect(() => fairnessReport([bad])).toThrow(RangeError);
    const tpTooHigh = {
      group: "a",
      n: 10,
      predictedPositive: 2,
      actualPositive: 5,
      truePositive: 3,
    };
    expect(() => fairnessReport([tpTooHigh])).toThrow(RangeError);
    const ok = groups[0] as GroupCounts;
    expect(() => fairnessReport([ok, ok])).toThrow(RangeError);
    expect(() => fairnessReport(groups, { minGroupSize: 0 })).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------
// Champion-challenger
// ---------------------------------------------------------------------------

interface PairCase {
  name: string;
  champion: number[];
  challenger: number[];
  correlation: Num;
  meanAbsDifference: Num;
}
const pairCases = qualityFixture.pairs as PairCase[];

describe("compareRegression against SciPy's pearsonr", () => {
  it.each(pairCases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const result = compareRegression(regressionPairSums(c.champion, c.challenger));
    expect(result.n).toBe(c.champion.length);
    expectClose(result.correlation.value, num(c.correlation), 1e-10);
    expectClose(result.meanAbsDifference.value, num(c.meanAbsDifference), 1e-12);
  });

  it("reports the mean shift and null correlation when a model is constant or n < 2", () => {
    const shifted = compareRegression(regressionPairSums([1, 2, 3], [2, 3, 5]));
    expectClose(shifted.meanDifference.value, 4 / 3, 1e-15);
    expect(compareRegression(regressionPairSums([1, 2, 3], [0.3, 0.3, 0.3])).correlation).toEqual({
      value: null,
      reason: "zero_variance",
    });
    expect(compareRegression(regressionPairSums([1], [2])).correlation.reason).toBe("too_few");
    expect(compareRegression(regressionPairSums([], [])).meanAbsDifference.reason).toBe(
      "no_predictions",
    );
    expect(compareRegression(regressionPairSums([1, 2, 3], [2, 4, 6])).correlation).toEqual({
      value: 1,
    });
  });
});

describe("compareClassification and compareOperations", () => {
  it("gives agreement and mean score difference over their own pair counts", () => {
    const result = compareClassification({
      pairs: 200,
      agreeing: 170,
      scoredPairs: 150,
      sumAbsScoreDifference: 12,
    });
    expect(result.agreementRate).toEqual({ value: 0.85 });
    expect(result.meanAbsScoreDifference).toEqual({ value: 0.08 });
    const unscored = compareClassification({
      pairs: 4,
      agreeing: 4,
      scoredPairs: 0,
      sumAbsScoreDifference: 0,
    });
    expect(unscored.meanAbsScoreDifference).toEqual({ value: null, reason: "no_predictions" });
    expect(() =>
      compareClassification({ pairs: 1, agreeing: 2, scoredPairs: 0, sumAbsScoreDifference: 0 }),
    ).toThrow(RangeError);
  });

  it("gives latency and error-rate deltas, challenger minus champion", () => {
    const result = compareOperations(
      400,
      { sumLatencyMs: 40_000, errors: 4 },
      { sumLatencyMs: 52_000, errors: 2 },
    );
    expect(result.pairs).toBe(400);
    expect(result.championMeanLatencyMs).toEqual({ value: 100 });
    expect(result.latencyDeltaMs).toEqual({ value: 30 });
    expect(result.championErrorRate).toEqual({ value: 0.01 });
    expect(result.errorRateDelta).toEqual({ value: -0.005 });
    expect(
      compareOperations(0, { sumLatencyMs: 0, errors: 0 }, { sumLatencyMs: 0, errors: 0 })
        .latencyDeltaMs,
    ).toEqual({
      value: null,
      reason: "no_predictions",
    });
    expect(() =>
      compareOperations(1, { sumLatencyMs: 0, errors: 2 }, { sumLatencyMs: 0, errors: 0 }),
    ).toThrow(RangeError);
  });
});
