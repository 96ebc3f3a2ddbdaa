/**
 * The checklist builder as a pure function: items by NIST AI RMF function,
 * states from the facts, and the online evidence a rollout plan gives once
 * plan facts are passed.
 */
import { describe, expect, it } from "vitest";
import { cardReadiness } from "../../shared/governance/card";
import {
  buildChecklist,
  type ChecklistFacts,
  type ChecklistItem,
} from "../../shared/governance/checklist";
import { tierDefaults } from "../../shared/governance/policy";
import { ModelCard } from "../../shared/schemas/version";
import { completeModelCard } from "./helpers";

const readiness = cardReadiness(ModelCard.parse(completeModelCard()), {
  baseline: true,
  destinations: 1,
  dataPolicy: true,
  riskTier: "medium",
});

const facts: ChecklistFacts = {
  model: "fraud",
  version: "v2",
  readiness: readiness.items,
  card: { revision: 2, sha256: "ab" },
  governance: {
    tier: "medium",
    approvals: tierDefaults("medium").approvals,
    updatedBy: "prn_risk",
    updatedAt: "2026-12-01T00:00:00.000Z",
    auditSeq: 10,
  },
  dataPolicy: { auditSeq: 11 },
  baselineAuditSeq: 12,
  destinationIds: ["dst_1"],
  approvals: [],
  monitoring: {
    windowStart: "2026-12-01T00:00:00.000Z",
    windowSeconds: 900,
    results: 14,
    alerting: 1,
  },
  auditHead: { seq: 20, hash: "ff" },
};

function item(checklist: ReturnType<typeof buildChecklist>, id: string): ChecklistItem {
  const found = checklist.functions.flatMap((group) => group.items).find((i) => i.id === id);
  if (!found) throw new Error(`no item ${id}`);
  return found;
}

describe("buildChecklist", () => {
  it("groups every item under its function, in the framework's order", () => {
    const checklist = buildChecklist(facts);
    expect(checklist.functions.map((group) => group.function)).toEqual([
      "Govern",
      "Map",
      "Measure",
      "Manage",
    ]);
    const ids = checklist.functions.flatMap((group) => group.items.map((i) => i.id));
    expect(new Set(ids).size).toBe(ids.length);
    expect(checklist.readyForAuthority).toBe(true);
    expect(item(checklist, "monitoring_results")).toMatchObject({
      state: "met",
      evidence: [{ kind: "monitoring", detail: expect.stringContaining("14 results for v2") }],
    });
  });

  it("asks for an approval of this version where the policy names roles, and not where it names none", () => {
    expect(item(buildChecklist(facts), "approvals")).toMatchObject({
      state: "unmet",
      note: "no approved change has given v2 authority yet",
    });
    const free = {
      ...tierDefaults("low").approvals,
      "champion.change": [],
      "canary.raise": [],
    };
    const governance = facts.governance && { ...facts.governance, approvals: free };
    expect(item(buildChecklist({ ...facts, governance }), "approvals").state).toBe(
      "not_applicable",
    );
    const forOther = {
      id: "apr_1",
      action: "canary.raise",
      target: { version: "v3", percent: 25 },
      consumedAt: "2026-12-02T00:00:00.000Z",
      consumedBy: "prn_ops",
      auditSeq: 15,
    };
    const other = item(buildChecklist({ ...facts, approvals: [forOther] }), "approvals");
    expect(other.state).toBe("unmet");
    expect(other.evidence.map((e) => [e.kind, e.ref])).toEqual([
      ["approval", "apr_1"],
      ["audit", "15"],
    ]);
    const promoted = { ...forOther, action: "champion.change", target: { from: "v1", to: "v2" } };
    expect(item(buildChecklist({ ...facts, approvals: [promoted] }), "approvals").state).toBe(
      "met",
    );
  });

  it("shows online evidence as unmet without plan facts, and from the plan's latest evaluation with them", () => {
    expect(item(buildChecklist(facts), "online_evidence")).toMatchObject({
      function: "Measure",
      state: "unmet",
      evidence: [],
      note: "no rollout plan has evaluated this version",
    });
    const plan = {
      id: "pln_1",
      state: "active",
      latestEvaluation: {
        id: "9",
        verdict: "advance",
        at: "2026-12-03T00:00:00.000Z",
        auditSeq: 18,
      },
      approvals: [],
    };
    const passed = item(buildChecklist({ ...facts, plan }), "online_evidence");
    expect(passed.state).toBe("met");
    expect(passed.evidence.map((e) => [e.kind, e.ref])).toEqual([
      ["evaluation", "9"],
      ["audit", "18"],
    ]);
    const failed = item(
      buildChecklist({
        ...facts,
        plan: { ...plan, latestEvaluation: { ...plan.latestEvaluation, verdict: "hold" } },
      }),
      "online_evidence",
    );
    expect(failed).toMatchObject({
      state: "unmet",
      note: "the latest evaluation of plan pln_1 is hold",
    });
    const completed = item(
      buildChecklist({
        ...facts,
        plan: {
          ...plan,
          state: "completed",
          latestEvaluation: { ...plan.latestEvaluation, verdict: "hold" },
        },
      }),
      "online_evidence",
    );
    expect(completed.state).toBe("met");
  });

  it("marks card items unmet with the readiness message, and keeps the evidence that is there", () => {
    const thin = cardReadiness(ModelCard.parse(completeModelCard({ mitigations: " " })), {
      baseline: false,
      destinations: 0,
      dataPolicy: false,
      riskTier: null,
    });
    const checklist = buildChecklist({
      ...facts,
      readiness: thin.items,
      governance: null,
      dataPolicy: null,
      destinationIds: [],
    });
    expect(checklist.governed).toBe(false);
    expect(checklist.readyForAuthority).toBe(false);
    expect(item(checklist, "mitigations")).toMatchObject({
      function: "Manage",
      state: "unmet",
      evidence: [],
      note: "the card does not say how the limitations are mitigated (mitigations)",
    });
    for (const id of [
      "governance_policy",
      "risk_tier",
      "data_policy",
      "baseline",
      "alert_destinations",
    ])
      expect(item(checklist, id).state, id).toBe("unmet");
    expect(item(checklist, "approvals").state).toBe("not_applicable");
  });
});
