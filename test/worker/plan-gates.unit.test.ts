/**
 * Rollout gates with their default thresholds: a pass, a fail and
 * insufficient evidence for every gate, the boundaries (exactly at a
 * threshold passes), and how a phase's verdicts combine.
 */
import { describe, expect, it } from "vitest";
import type { ConfusionCell, GroupCounts, KpiSummary, RegressionSums } from "../../shared/metrics";
import { regressionPairSums } from "../../shared/metrics";
import {
  agreementGate,
  alertsGate,
  DEFAULT_GATE_THRESHOLDS,
  errorRateGate,
  fairnessGate,
  type GateVerdict,
  kpiGate,
  latencyGate,
  meanDifferenceGate,
  type OpenAlert,
  type OperationsSide,
  phaseMinimumsGate,
  phaseVerdict,
  qualityGate,
  resolveThresholds,
} from "../../shared/plans/gates";

// One hour of evidence: rates below are per hour.
const span = { start: "2027-01-01T00:00:00.000Z", end: "2027-01-01T01:00:00.000Z" };

describe("agreementGate", () => {
  const pairs = (n: number, agreeing: number) => ({
    pairs: n,
    agreeing,
    scoredPairs: 0,
    sumAbsScoreDifference: 0,
  });

  it("passes at exactly the minimum agreement (180 of 200 = 0.9)", () => {
    const v = agreementGate({ pairs: pairs(200, 180), span });
    expect(v.verdict).toBe("pass");
    expect(v.evidence.numbers.agreementRate).toBe(0.9);
    expect(v.evidence.samples).toEqual({ pairs: 200 });
    expect(v.evidence.thresholds).toEqual({ minAgreement: 0.9, minPairs: 200 });
    expect(v.evidence.span).toEqual(span);
    expect(v.reason).toBe("agrees with the champion on 90% of 200 requests (at least 90%)");
  });

  it("fails just below it (179 of 200 = 0.895)", () => {
    const v = agreementGate({ pairs: pairs(200, 179), span });
    expect(v.verdict).toBe("fail");
    expect(v.reason).toBe("agrees with the champion on 89.5% of 200 requests, below 90%");
  });

  it("waits for 200 pairs, estimating when they arrive from the rate seen", () => {
    // 150 pairs in an hour: the 50 missing take 20 minutes.
    const v = agreementGate({ pairs: pairs(150, 150), span });
    expect(v.verdict).toBe("insufficient_evidence");
    expect(v.needed).toEqual({ samples: { pairs: 50 }, estimatedAt: "2027-01-01T01:20:00.000Z" });
    expect(v.reason).toBe("needs 50 more pairs");
  });

  it("has no estimate when no pair has arrived, and no pass without input", () => {
    const empty = agreementGate({ pairs: pairs(0, 0), span });
    expect(empty.verdict).toBe("insufficient_evidence");
    expect(empty.needed).toEqual({ samples: { pairs: 200 }, estimatedAt: null });
    const none = agreementGate(null);
    expect(none.verdict).toBe("insufficient_evidence");
    expect(none.reason).toBe("no request pairs to judge by");
  });

  it("takes a plan's threshold over the default", () => {
    const t = resolveThresholds({ minAgreement: 0.95 });
    expect(t.minPairs).toBe(DEFAULT_GATE_THRESHOLDS.minPairs);
    expect(agreementGate({ pairs: pairs(200, 180) }, t).verdict).toBe("fail");
  });
});

describe("meanDifferenceGate", () => {
  // The champion alternates 0 and 2: mean 1, sample variance 200/199, sd ≈ 1.002509.
  const champion = Array.from({ length: 200 }, (_, i) => (i % 2) * 2);
  const shifted = (by: number, x = champion) =>
    regressionPairSums(
      x,
      x.map((v) => v + by),
    );

  it("passes a shift of 0.1 (0.0997 standard deviations)", () => {
    const v = meanDifferenceGate({ pairs: shifted(0.1), span });
    expect(v.verdict).toBe("pass");
    expect(v.evidence.numbers.standardized).toBeCloseTo(0.1 / Math.sqrt(200 / 199), 9);
  });

  it("fails a shift of 0.101 (0.1007 standard deviations) either way", () => {
    expect(meanDifferenceGate({ pairs: shifted(0.101) }).verdict).toBe("fail");
    expect(meanDifferenceGate({ pairs: shifted(-0.101) }).verdict).toBe("fail");
  });

  it("waits with 199 pairs, and when the champion is constant (zero variance)", () => {
    const few = meanDifferenceGate({ pairs: shifted(0, champion.slice(0, 199)) });
    expect(few.verdict).toBe("insufficient_evidence");
    expect(few.needed?.samples).toEqual({ pairs: 1 });
    const constant = meanDifferenceGate({ pairs: shifted(0, Array(200).fill(3)) });
    expect(constant.verdict).toBe("insufficient_evidence");
    expect(constant.evidence.missing).toEqual({ championStandardDeviation: "zero_variance" });
    expect(meanDifferenceGate(null).verdict).toBe("insufficient_evidence");
  });
});

const side = (results: number, errors: number, p99LatencyMs: number | null): OperationsSide => ({
  results,
  errors,
  p99LatencyMs,
});

describe("errorRateGate", () => {
  it("passes exactly one point above the champion (2% against 1%)", () => {
    const v = errorRateGate({ champion: side(100, 1, 10), challenger: side(100, 2, 10), span });
    expect(v.verdict).toBe("pass");
    expect(v.evidence.numbers).toEqual({
      challengerErrorRate: 0.02,
      championErrorRate: 0.01,
      increase: 0.01,
    });
  });

  it("fails two points above it (3% against 1%)", () => {
    const v = errorRateGate({ champion: side(100, 1, 10), challenger: side(100, 3, 10) });
    expect(v.verdict).toBe("fail");
    expect(v.reason).toBe("error rate 3% against the champion's 1%, more than 1% above it");
  });

  it("waits for 100 results on each side, and without input", () => {
    const v = errorRateGate({ champion: side(5000, 0, 10), challenger: side(60, 0, 10), span });
    expect(v.verdict).toBe("insufficient_evidence");
    // 60 in an hour: 40 more in 40 minutes.
    expect(v.needed).toEqual({
      samples: { challengerResults: 40 },
      estimatedAt: "2027-01-01T01:40:00.000Z",
    });
    expect(errorRateGate(null).verdict).toBe("insufficient_evidence");
  });
});

describe("latencyGate", () => {
  it("passes at exactly 1.2 times the champion (120 ms against 100 ms)", () => {
    expect(
      latencyGate({ champion: side(100, 0, 100), challenger: side(100, 0, 120) }).verdict,
    ).toBe("pass");
  });

  it("fails above both 1.2 times and 20 ms (121 ms against 100 ms)", () => {
    const v = latencyGate({ champion: side(100, 0, 100), challenger: side(100, 0, 121) });
    expect(v.verdict).toBe("fail");
    expect(v.reason).toBe(
      "p99 latency 121 ms against the champion's 100 ms: more than 1.2 times and 20 ms slower",
    );
  });

  it("lets a fast model be 20 ms slower, not more (70 and 71 ms against 50 ms)", () => {
    expect(latencyGate({ champion: side(100, 0, 50), challenger: side(100, 0, 70) }).verdict).toBe(
      "pass",
    );
    expect(latencyGate({ champion: side(100, 0, 50), challenger: side(100, 0, 71) }).verdict).toBe(
      "fail",
    );
  });

  it("waits without a p99, with too few results, or without input", () => {
    const noP99 = latencyGate({ champion: side(100, 0, null), challenger: side(100, 0, 80) });
    expect(noP99.verdict).toBe("insufficient_evidence");
    expect(noP99.evidence.missing).toEqual({ championP99Ms: "no_observations" });
    const few = latencyGate({ champion: side(99, 0, 50), challenger: side(100, 0, 50) });
    expect(few.verdict).toBe("insufficient_evidence");
    expect(few.needed?.samples).toEqual({ championResults: 1 });
    expect(latencyGate(null).verdict).toBe("insufficient_evidence");
  });
});

describe("alertsGate", () => {
  const alert = (rule: string, version: string): OpenAlert => ({
    id: 7,
    rule,
    version,
    severity: "warning",
    summary: `${rule} on ${version}`,
  });

  it("passes when the open alerts are another version's or not about drift or data quality", () => {
    const v = alertsGate({
      challenger: "v2",
      openAlerts: [alert("drift", "v1"), alert("error_rate", "v2")],
    });
    expect(v.verdict).toBe("pass");
    expect(v.evidence.numbers.blockingAlerts).toBe(0);
  });

  it("fails on an open drift or data-quality alert on the challenger", () => {
    for (const rule of ["drift", "dataset_drift", "psi", "schema_rejection_rate", "missing_rate"]) {
      const v = alertsGate({ challenger: "v2", openAlerts: [alert(rule, "v2")] });
      expect(v.verdict).toBe("fail");
      expect(v.reason).toBe(`open ${rule} alert on v2: ${rule} on v2`);
    }
  });

  it("waits when the open alerts could not be read", () => {
    expect(alertsGate({ challenger: "v2", openAlerts: null }).verdict).toBe(
      "insufficient_evidence",
    );
  });
});

describe("qualityGate", () => {
  const cells = (n: number, correct: number): ConfusionCell[] => [
    { actual: "yes", predicted: "yes", count: correct },
    { actual: "yes", predicted: "no", count: n - correct },
  ];

  it("passes an accuracy exactly 0.02 below the champion's (0.88 against 0.9)", () => {
    const v = qualityGate({
      task: "classification",
      champion: cells(200, 180),
      challenger: cells(200, 176),
      span,
    });
    expect(v.verdict).toBe("pass");
    expect(v.evidence.numbers.challenger_accuracy).toBe(0.88);
    expect(v.evidence.numbers.worse).toBeCloseTo(0.02, 12);
  });

  it("fails an accuracy 0.025 below it (0.875)", () => {
    const v = qualityGate({
      task: "classification",
      champion: cells(200, 180),
      challenger: cells(200, 175),
    });
    expect(v.verdict).toBe("fail");
    expect(v.reason).toBe("accuracy 87.5% against the champion's 90%, more than 2% below it");
  });

  it("waits for 200 labels on each side", () => {
    const v = qualityGate({
      task: "classification",
      champion: cells(5000, 4500),
      challenger: cells(50, 50),
      span,
    });
    expect(v.verdict).toBe("insufficient_evidence");
    // 50 labels an hour: 150 more in three hours.
    expect(v.needed).toEqual({
      samples: { challengerLabels: 150 },
      estimatedAt: "2027-01-01T04:00:00.000Z",
    });
    expect(qualityGate(null).verdict).toBe("insufficient_evidence");
  });

  const sums = (n: number, sumAbsoluteError: number): RegressionSums => ({
    n,
    sumActual: 10 * n,
    sumActualSquared: 110 * n,
    sumPredicted: 10 * n,
    sumSquaredError: 5 * n,
    sumAbsoluteError,
  });

  it("passes a regression MAE exactly 5% above the champion's (2.1 against 2)", () => {
    const v = qualityGate({
      task: "regression",
      champion: sums(200, 400),
      challenger: sums(200, 420),
    });
    expect(v.verdict).toBe("pass");
  });

  it("fails a regression MAE 5.25% above it (2.105 against 2), and passes a better one", () => {
    const worse = qualityGate({
      task: "regression",
      champion: sums(200, 400),
      challenger: sums(200, 421),
    });
    expect(worse.verdict).toBe("fail");
    expect(worse.reason).toBe("MAE 2.105 against the champion's 2, more than 5% above it");
    expect(
      qualityGate({ task: "regression", champion: sums(200, 400), challenger: sums(200, 300) })
        .verdict,
    ).toBe("pass");
  });

  it("waits for a regression's labels", () => {
    const v = qualityGate({ task: "regression", champion: sums(199, 400), challenger: sums(0, 0) });
    expect(v.verdict).toBe("insufficient_evidence");
    expect(v.needed?.samples).toEqual({ challengerLabels: 200, championLabels: 1 });
  });
});

describe("fairnessGate", () => {
  // Group A: 200 results, 100 selected, 100 positives of which 80 found (TPR 0.8).
  const groupA: GroupCounts = {
    group: "a",
    n: 200,
    predictedPositive: 100,
    actualPositive: 100,
    truePositive: 80,
  };
  const groupB = (selected: number, found: number): GroupCounts => ({
    group: "b",
    n: 200,
    predictedPositive: selected,
    actualPositive: 100,
    truePositive: found,
  });
  // Champion: DI = 90/100 = 0.9, EOD = 0.8 − 0.76 = 0.04.
  const champion = [groupA, groupB(90, 76)];
  const judge = (challenger: GroupCounts[], before = champion) =>
    fairnessGate({ attributes: [{ attribute: "region", champion: before, challenger }], span });

  it("passes a disparate impact exactly 0.05 below the champion's (0.85 against 0.9)", () => {
    const v = judge([groupA, groupB(85, 76)]);
    expect(v.verdict).toBe("pass");
    expect(v.evidence.numbers["region.challengerDisparateImpact"]).toBe(0.85);
    expect(v.evidence.numbers["region.championDisparateImpact"]).toBe(0.9);
    expect(v.evidence.warnings).toBeUndefined();
  });

  it("fails a disparate impact 0.06 below it (0.84)", () => {
    const v = judge([groupA, groupB(84, 76)]);
    expect(v.verdict).toBe("fail");
    expect(v.reason).toBe(
      "region: disparate impact 0.84 against the champion's 0.9, more than 0.05 below it",
    );
  });

  it("passes an equal-opportunity difference exactly 0.05 above the champion's, fails 0.06", () => {
    // 0.8 − 0.71 = 0.09 = 0.04 + 0.05; 0.8 − 0.70 = 0.10.
    expect(judge([groupA, groupB(90, 71)]).verdict).toBe("pass");
    const v = judge([groupA, groupB(90, 70)]);
    expect(v.verdict).toBe("fail");
    expect(v.reason).toContain("region: equal-opportunity difference 0.1");
  });

  it("shows a disparate impact below 0.8 as a warning, not a fail", () => {
    // Champion 75/100 = 0.75, challenger 76/100 = 0.76: no worse, but under four fifths.
    const v = judge([groupA, groupB(76, 74)], [groupA, groupB(75, 74)]);
    expect(v.verdict).toBe("pass");
    expect(v.evidence.warnings).toEqual([
      "region: the challenger's disparate impact 0.76 is below the four-fifths rule's 0.8",
    ]);
  });

  it("waits when groups are too small to compare, or without attributes", () => {
    const small = { ...groupB(10, 8), n: 20, actualPositive: 10 };
    const v = judge([groupA, small]);
    expect(v.verdict).toBe("insufficient_evidence");
    expect(v.evidence.missing?.["region.challengerDisparateImpact"]).toBe("too_few_groups");
    expect(fairnessGate({ attributes: [] }).verdict).toBe("insufficient_evidence");
    expect(fairnessGate(null).verdict).toBe("insufficient_evidence");
  });

  it("fails on one attribute even when another cannot be judged", () => {
    const small = { ...groupB(10, 8), n: 20, actualPositive: 10 };
    const v = fairnessGate({
      attributes: [
        { attribute: "age", champion, challenger: [groupA, small] },
        { attribute: "region", champion, challenger: [groupA, groupB(50, 50)] },
      ],
    });
    expect(v.verdict).toBe("fail");
    expect(v.reason).toContain("region: disparate impact 0.5");
  });
});

describe("kpiGate", () => {
  // Each side: 10,000 outcomes, variance 100, so se = sqrt(0.01 + 0.01) ≈ 0.1414; the
  // one-sided 95% bound is about 1.645 · 0.1414 ≈ 0.2326 from the estimate. The margin is 5%
  // of the champion's mean of 10: 0.5.
  const summary = (mean: number, n = 10_000, variance = 100): KpiSummary => ({
    n,
    sum: mean * n,
    variance,
    binary: false,
  });
  const kpi = (canaryMean: number, higherIsBetter = true, n = 10_000, variance = 100) => ({
    name: "revenue",
    higherIsBetter,
    canary: summary(canaryMean, n, variance),
    champion: summary(10, n, variance),
  });

  it("passes when the lower bound is above minus the margin (difference 0, bound ≈ −0.23)", () => {
    const v = kpiGate({ kpis: [kpi(10)], span });
    expect(v.verdict).toBe("pass");
    expect(v.evidence.numbers["revenue.margin"]).toBe(0.5);
    expect(v.evidence.numbers["revenue.lower"]).toBeCloseTo(-0.2326, 3);
  });

  it("fails when the whole interval is worse than the margin (−0.8, upper ≈ −0.57)", () => {
    const v = kpiGate({ kpis: [kpi(9.2)] });
    expect(v.verdict).toBe("fail");
    expect(v.reason).toMatch(/^revenue differs by -0\.8 .*margin 0\.5: worse than the margin$/);
  });

  it("waits between the two, estimating the outcomes needed as the interval narrows", () => {
    // −0.4 ± 0.2326: the bound −0.633 is below −0.5. To clear it the half-width must shrink
    // to 0.1, a factor (0.2326 / 0.1)² ≈ 5.41 more outcomes: about 54,100 on each side.
    const v = kpiGate({ kpis: [kpi(9.6)], span });
    expect(v.verdict).toBe("insufficient_evidence");
    const more = v.needed?.samples["revenue canary outcomes"] as number;
    expect(more).toBeGreaterThan(43_500);
    expect(more).toBeLessThan(44_500);
    expect(v.needed?.estimatedAt).not.toBeNull();
  });

  it("turns the bound round for a KPI where lower is better", () => {
    expect(kpiGate({ kpis: [kpi(9.8, false)] }).verdict).toBe("pass");
    expect(kpiGate({ kpis: [kpi(10.4, false)] }).verdict).toBe("insufficient_evidence");
    expect(kpiGate({ kpis: [kpi(10.8, false)] }).verdict).toBe("fail");
  });

  it("waits for 100 outcomes on each side, for an interval, and for any KPI at all", () => {
    const few = kpiGate({ kpis: [kpi(10, true, 50)], span });
    expect(few.verdict).toBe("insufficient_evidence");
    expect(few.needed?.samples).toEqual({
      "revenue canary outcomes": 50,
      "revenue champion outcomes": 50,
    });
    const flat = kpiGate({ kpis: [kpi(10, true, 200, 0)] });
    expect(flat.verdict).toBe("insufficient_evidence");
    expect(flat.evidence.missing).toEqual({ "revenue.difference": "zero_variance" });
    expect(kpiGate({ kpis: [] }).verdict).toBe("insufficient_evidence");
    expect(kpiGate(null).verdict).toBe("insufficient_evidence");
  });
});

describe("phaseMinimumsGate", () => {
  const minimums = { minDwellSeconds: 86_400, minRequests: 500, minLabels: 200 };

  it("passes once the dwell, requests and labels are all met, exactly at each", () => {
    const v = phaseMinimumsGate(
      { dwellSeconds: 86_400, requests: 500, labels: 200, span },
      minimums,
    );
    expect(v.verdict).toBe("pass");
  });

  it("waits for the dwell and the labels, never failing", () => {
    // 100 labels in the hour: 100 more by 02:00; the dwell ends 23 hours after 01:00.
    const v = phaseMinimumsGate({ dwellSeconds: 3600, requests: 900, labels: 100, span }, minimums);
    expect(v.verdict).toBe("insufficient_evidence");
    expect(v.reason).toBe("needs 82800 more seconds in the phase and 100 more labels");
    expect(v.needed).toEqual({ samples: { labels: 100 }, estimatedAt: "2027-01-02T00:00:00.000Z" });
    expect(phaseMinimumsGate(null, minimums).verdict).toBe("insufficient_evidence");
  });

  it("does not count labels in a phase that needs none", () => {
    const v = phaseMinimumsGate(
      { dwellSeconds: 90_000, requests: 1000, labels: 0, span },
      { minDwellSeconds: 86_400, minRequests: 1000, minLabels: null },
    );
    expect(v.verdict).toBe("pass");
    expect(v.evidence.samples).toEqual({ requests: 1000 });
  });
});

describe("phaseVerdict", () => {
  const gate = (
    name: GateVerdict["gate"],
    verdict: GateVerdict["verdict"],
    estimatedAt: string | null = null,
  ): GateVerdict => ({
    gate: name,
    verdict,
    reason: `${name} ${verdict}`,
    evidence: { numbers: {}, samples: {}, thresholds: {} },
    ...(verdict === "insufficient_evidence"
      ? { needed: { samples: { pairs: 1 }, estimatedAt } }
      : {}),
  });

  it("advances when every gate passes", () => {
    const v = phaseVerdict([gate("agreement", "pass"), gate("alerts", "pass")]);
    expect(v.verdict).toBe("advance");
    expect(v.reasons).toEqual([]);
  });

  it("holds with the failing reasons when any gate fails, even if others wait", () => {
    const v = phaseVerdict([
      gate("agreement", "pass"),
      gate("quality", "insufficient_evidence"),
      gate("alerts", "fail"),
    ]);
    expect(v.verdict).toBe("hold");
    expect(v.reasons).toEqual(["alerts: alerts fail"]);
  });

  it("waits with what is still needed and the latest estimate", () => {
    const v = phaseVerdict([
      gate("agreement", "insufficient_evidence", "2027-01-01T02:00:00.000Z"),
      gate("quality", "insufficient_evidence", "2027-01-01T05:00:00.000Z"),
      gate("alerts", "pass"),
    ]);
    expect(v.verdict).toBe("insufficient_evidence");
    expect(v.reasons).toEqual([
      "agreement: agreement insufficient_evidence",
      "quality: quality insufficient_evidence",
    ]);
    expect(v.needed?.estimatedAt).toBe("2027-01-01T05:00:00.000Z");
    expect(Object.keys(v.needed?.gates ?? {})).toEqual(["agreement", "quality"]);
  });

  it("has no estimate when one waiting gate has none, and waits with no gates at all", () => {
    const v = phaseVerdict([
      gate("agreement", "insufficient_evidence", "2027-01-01T02:00:00.000Z"),
      gate("kpi", "insufficient_evidence", null),
    ]);
    expect(v.needed?.estimatedAt).toBeNull();
    expect(phaseVerdict([]).verdict).toBe("insufficient_evidence");
  });
});
