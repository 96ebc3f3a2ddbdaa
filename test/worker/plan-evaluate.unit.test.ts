/**
 * A phase judged on its evidence: which gates run for each kind of phase
 * and task, which are left out and why, and what no evidence at all gives.
 */
import { describe, expect, it } from "vitest";
import { type EvaluateOptions, evaluatePhase, phaseGates } from "../../shared/plans/evaluate";
import type { PhaseEvidence } from "../../shared/plans/evidence";
import { DEFAULT_GATE_THRESHOLDS } from "../../shared/plans/gates";
import { type PlanPhase, planPhases } from "../../shared/plans/phases";

const phases = planPhases();
const byId = (id: string) => phases.find((p) => p.id === id) as PlanPhase;
const shadow = byId("shadow");
const canary = byId("canary_5");
const full = byId("full");
const guard = byId("guard");

const named: EvaluateOptions = {
  task: "classification",
  challenger: "v2",
  fairnessAttributes: ["region"],
  kpis: [{ name: "revenue", higherIsBetter: true }],
};

const span = { start: "2026-10-01T00:00:00.000Z", end: "2026-10-03T00:00:00.000Z" };

/** Evidence on which every gate of a canary passes. */
function passing(): PhaseEvidence {
  const groups = (positive: number) => [
    { group: "north", n: 200, predictedPositive: positive, actualPositive: 60, truePositive: 60 },
    { group: "south", n: 200, predictedPositive: positive, actualPositive: 60, truePositive: 60 },
  ];
  const cells = [
    { actual: "fraud", predicted: "fraud", count: 90 },
    { actual: "legit", predicted: "legit", count: 200 },
    { actual: "legit", predicted: "fraud", count: 10 },
  ];
  const revenue = { n: 300, sum: 30_000, variance: 25, binary: false };
  return {
    span,
    progress: { dwellSeconds: 2 * 86_400, requests: 1500, labels: 300, span },
    pairs: {
      task: "classification",
      sums: { pairs: 300, agreeing: 290, scoredPairs: 0, sumAbsScoreDifference: 0 },
    },
    operations: {
      challenger: { results: 1500, errors: 3, p99LatencyMs: 20 },
      champion: { results: 1500, errors: 3, p99LatencyMs: 19 },
      span,
    },
    openAlerts: [],
    quality: { task: "classification", challenger: cells, champion: cells, span },
    fairness: [{ attribute: "region", challenger: groups(66), champion: groups(66) }],
    kpis: [{ name: "revenue", higherIsBetter: true, canary: revenue, champion: revenue }],
  };
}

const gatesOf = (verdict: { gates: { gate: string }[] }) => verdict.gates.map((g) => g.gate);

describe("phaseGates", () => {
  it("runs each kind's gates and its minimums", () => {
    expect(phaseGates(shadow, named).gates).toEqual([
      "agreement",
      "error_rate",
      "latency_p99",
      "alerts",
      "phase_minimums",
    ]);
    expect(phaseGates(canary, named).gates).toEqual([
      "agreement",
      "error_rate",
      "latency_p99",
      "alerts",
      "quality",
      "fairness",
      "kpi",
      "phase_minimums",
    ]);
    for (const phase of [full, guard])
      expect(phaseGates(phase, named).gates).toEqual([
        "error_rate",
        "latency_p99",
        "alerts",
        "quality",
        "fairness",
        "phase_minimums",
      ]);
  });

  it("judges agreement as the mean difference for a regression model", () => {
    const regression = { ...named, task: "regression" as const };
    expect(phaseGates(shadow, regression).gates).toContain("mean_difference");
    expect(phaseGates(shadow, regression).gates).not.toContain("agreement");
    expect(phaseGates(canary, regression).gates[0]).toBe("mean_difference");
  });

  it("leaves out fairness and the KPIs when the plan names none, and says why", () => {
    const bare = { ...named, fairnessAttributes: [], kpis: [] };
    const { gates, skipped } = phaseGates(canary, bare);
    expect(gates).not.toContain("fairness");
    expect(gates).not.toContain("kpi");
    expect(skipped).toEqual([
      { gate: "fairness", reason: "no fairness attribute is named in the plan" },
      { gate: "kpi", reason: "no business KPI is named in the plan" },
    ]);
    // Shadow has neither gate: nothing is skipped there.
    expect(phaseGates(shadow, bare).skipped).toEqual([]);
  });
});

describe("evaluatePhase", () => {
  it("advances a canary when every gate passes", () => {
    const verdict = evaluatePhase(canary, passing(), DEFAULT_GATE_THRESHOLDS, named);
    expect(verdict.gates.filter((g) => g.verdict !== "pass")).toEqual([]);
    expect(verdict).toMatchObject({ verdict: "advance", reasons: [], skipped: [] });
    expect(gatesOf(verdict)).toEqual(phaseGates(canary, named).gates);
  });

  it("holds on a failing gate, naming it", () => {
    const evidence = passing();
    evidence.openAlerts = [
      { id: 7, rule: "drift", version: "v2", severity: "warning", summary: "amount drifted" },
    ];
    const verdict = evaluatePhase(canary, evidence, DEFAULT_GATE_THRESHOLDS, named);
    expect(verdict.verdict).toBe("hold");
    expect(verdict.reasons).toEqual(["alerts: open drift alert on v2: amount drifted"]);
  });

  it("records skipped gates in the verdict and judges without them", () => {
    const bare = { ...named, fairnessAttributes: [], kpis: [] };
    const evidence = { ...passing(), fairness: [], kpis: [] };
    const verdict = evaluatePhase(canary, evidence, DEFAULT_GATE_THRESHOLDS, bare);
    expect(verdict.verdict).toBe("advance");
    expect(gatesOf(verdict)).not.toContain("fairness");
    expect(verdict.skipped.map((s) => s.gate)).toEqual(["fairness", "kpi"]);
  });

  it("waits on every gate when there is no evidence, never passes", () => {
    for (const phase of [shadow, canary, full, guard]) {
      for (const task of ["classification", "regression"] as const) {
        const verdict = evaluatePhase(phase, null, DEFAULT_GATE_THRESHOLDS, { ...named, task });
        expect(verdict.verdict).toBe("insufficient_evidence");
        expect(gatesOf(verdict)).toEqual(phaseGates(phase, { ...named, task }).gates);
        expect(verdict.gates.every((g) => g.verdict === "insufficient_evidence")).toBe(true);
      }
    }
  });

  it("waits on the alerts when they could not be read", () => {
    const verdict = evaluatePhase(
      shadow,
      { ...passing(), openAlerts: null },
      DEFAULT_GATE_THRESHOLDS,
      named,
    );
    expect(verdict.verdict).toBe("insufficient_evidence");
    expect(verdict.reasons).toEqual(["alerts: no list of open alerts to judge by"]);
  });

  it("waits for the phase's minimums even when every other gate passes", () => {
    const evidence = passing();
    evidence.progress = { ...evidence.progress, dwellSeconds: 3600 };
    const verdict = evaluatePhase(canary, evidence, DEFAULT_GATE_THRESHOLDS, named);
    expect(verdict.verdict).toBe("insufficient_evidence");
    expect(verdict.reasons).toEqual(["phase_minimums: needs 82800 more seconds in the phase"]);
  });

  it("does not judge pairs or labels of the other task", () => {
    // A regression plan given classification evidence has nothing to judge it by.
    const verdict = evaluatePhase(canary, passing(), DEFAULT_GATE_THRESHOLDS, {
      ...named,
      task: "regression",
    });
    const byGate = Object.fromEntries(verdict.gates.map((g) => [g.gate, g.verdict]));
    expect(byGate.mean_difference).toBe("insufficient_evidence");
    expect(byGate.quality).toBe("insufficient_evidence");
    expect(verdict.verdict).toBe("insufficient_evidence");
  });
});
