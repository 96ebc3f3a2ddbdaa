/**
 * ROC AUC from rank-pair sums (what the monitoring job reads from Postgres)
 * against scikit-learn's roc_auc_score, and the KPI difference's choice of
 * interval.
 */
import { describe, expect, it } from "vitest";
import {
  kpiDifference,
  newcombeInterval,
  rankPairCounts,
  rocAuc,
  rocAucFromPairCounts,
  scoreCounts,
  welchInterval,
} from "../../shared/metrics";
import qualityFixture from "../fixtures/metrics/quality.json";
import { mulberry32 } from "./random";

interface AucCase {
  name: string;
  actual: boolean[];
  scores: number[];
  auc: number | string;
}
const aucCases = qualityFixture.auc as AucCase[];

describe("rocAucFromPairCounts", () => {
  it.each(aucCases.map((c) => [c.name, c] as const))("matches scikit-learn: %s", (_name, c) => {
    const result = rocAucFromPairCounts(rankPairCounts(scoreCounts(c.actual, c.scores)));
    expect(result.value).toBeTypeOf("number");
    expect(Math.abs((result.value as number) - Number(c.auc))).toBeLessThanOrEqual(1e-12);
  });

  it("equals the per-score form on random tied data, rows repeated and in any order", () => {
    const random = mulberry32(11);
    for (let round = 0; round < 20; round++) {
      const n = 50 + Math.floor(random() * 200);
      const actual = Array.from({ length: n }, () => random() < 0.3);
      // Scores on a coarse grid so that ties are common.
      const scores = actual.map((a) => Math.round((random() + (a ? 0.3 : 0)) * 10) / 10);
      const rows = scoreCounts(actual, scores).flatMap((row) => [
        { score: row.score, positives: row.positives, negatives: 0 },
        { score: row.score, positives: 0, negatives: row.negatives },
      ]);
      rows.reverse();
      const counts = rankPairCounts(rows);
      expect(counts.positives).toBe(actual.filter(Boolean).length);
      expect(counts.negatives).toBe(n - counts.positives);
      const expected = rocAuc(actual, scores).value as number;
      expect(Math.abs((rocAucFromPairCounts(counts).value as number) - expected)).toBeLessThan(
        1e-15,
      );
    }
  });

  it("counts pairs by hand", () => {
    // Positives at 0.9 and 0.5, negatives at 0.5 and 0.1: concordant 0.9>0.5,
    // 0.9>0.1, 0.5>0.1; tied 0.5=0.5. AUC = (3 + 0.5) / 4.
    const counts = rankPairCounts(scoreCounts([true, true, false, false], [0.9, 0.5, 0.5, 0.1]));
    expect(counts).toEqual({ positives: 2, negatives: 2, concordant: 3, tied: 1 });
    expect(rocAucFromPairCounts(counts)).toEqual({ value: 0.875 });
  });

  it("is null without both classes and refuses impossible sums", () => {
    expect(rocAucFromPairCounts({ positives: 0, negatives: 0, concordant: 0, tied: 0 })).toEqual({
      value: null,
      reason: "no_predictions",
    });
    expect(rocAucFromPairCounts({ positives: 3, negatives: 0, concordant: 0, tied: 0 })).toEqual({
      value: null,
      reason: "single_class",
    });
    expect(() =>
      rocAucFromPairCounts({ positives: 2, negatives: 2, concordant: 4, tied: 1 }),
    ).toThrow(RangeError);
    expect(() =>
      rocAucFromPairCounts({ positives: 1.5, negatives: 2, concordant: 0, tied: 0 }),
    ).toThrow(RangeError);
  });
});

describe("kpiDifference", () => {
  it("uses Newcombe's interval when both populations are 0/1, canary minus champion", () => {
    // Newcombe's (1998) example: 56/70 against 48/80 gives 0.0524 to 0.3339.
    const result = kpiDifference(
      { n: 70, sum: 56, variance: null, binary: true },
      { n: 80, sum: 48, variance: null, binary: true },
    );
    expect(result.method).toBe("newcombe");
    expect(result.interval).toEqual(
      newcombeInterval({ successes: 56, n: 70 }, { successes: 48, n: 80 }),
    );
    expect(result.interval.lower).toBeCloseTo(0.0524, 4);
    expect(result.interval.upper).toBeCloseTo(0.3339, 4);
    expect(result.significant).toBe(true);
  });

  it("uses Welch's interval otherwise, from sums and variances", () => {
    const canary = { n: 40, sum: 40 * 12.5, variance: 9, binary: false };
    const champion = { n: 55, sum: 55 * 11.9, variance: 16, binary: true };
    const result = kpiDifference(canary, champion, 0.9);
    expect(result.method).toBe("welch");
    expect(result.interval).toEqual(
      welchInterval({ n: 40, mean: 12.5, variance: 9 }, { n: 55, mean: 11.9, variance: 16 }, 0.9),
    );
    expect(result.confidence).toBe(0.9);
    expect(result.significant).toBe(false);
  });

  it("has no interval for a population too small, and says so", () => {
    const result = kpiDifference(
      { n: 1, sum: 3, variance: null, binary: false },
      { n: 10, sum: 30, variance: 2, binary: false },
    );
    expect(result.interval).toMatchObject({ estimate: null, reason: "too_few" });
    expect(result.significant).toBeNull();
  });
});
