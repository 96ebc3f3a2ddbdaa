/**
 * A model's governance checklist for one version, by the functions of the
 * NIST AI Risk Management Framework (Govern, Map, Measure, Manage): each
 * item with its state and the evidence it rests on (a card section, a
 * setting, an approval, an audit row, an evaluation, monitoring results).
 * Pure: the route gathers the facts, `buildChecklist` only reads them.
 */
import { canonicalJson } from "../crypto";
import type { ReadinessItem, ReadinessItemId } from "./card";
import type { GovernancePolicy, RiskTier } from "./policy";

export const RMF_FUNCTIONS = ["Govern", "Map", "Measure", "Manage"] as const;
export type RmfFunction = (typeof RMF_FUNCTIONS)[number];

export type ChecklistState = "met" | "unmet" | "not_applicable";

export interface Evidence {
  kind: "card_section" | "setting" | "approval" | "audit" | "evaluation" | "monitoring";
  /** What to look up: a path, an id, or an audit sequence number. */
  ref: string;
  detail?: string;
}

export interface ChecklistItem {
  id: string;
  function: RmfFunction;
  title: string;
  state: ChecklistState;
  evidence: Evidence[];
  /** Why it is not met, or what its state rests on, in words. */
  note?: string;
}

/** A consumed approval of the model, with its `approval.consume` row. */
export interface ConsumedApproval {
  id: string;
  action: string;
  target: Record<string, string | number | null>;
  consumedAt: string;
  consumedBy: string | null;
  auditSeq: number | null;
}

/** What a rollout plan has found for the version, once plans exist. */
export interface PlanFacts {
  id: string;
  state: string;
  latestEvaluation: { id: string; verdict: string; at: string; auditSeq: number | null } | null;
  approvals: ConsumedApproval[];
}

export interface ChecklistFacts {
  model: string;
  version: string;
  /** The definition of done (shared/governance/card.ts), item by item. */
  readiness: ReadinessItem[];
  card: { revision: number; sha256: string | null };
  governance:
    | (Pick<GovernancePolicy, "tier" | "approvals"> & {
        updatedBy: string;
        updatedAt: string;
        auditSeq: number | null;
      })
    | null;
  dataPolicy: { auditSeq: number | null } | null;
  /** The audit row that set the version's baseline (null: none, or set before the chain). */
  baselineAuditSeq: number | null;
  destinationIds: string[];
  approvals: ConsumedApproval[];
  /** The latest monitoring window with results for the version. */
  monitoring: {
    windowStart: string;
    windowSeconds: number;
    results: number;
    alerting: number;
  } | null;
  auditHead: { seq: number; hash: string } | null;
  /** Absent until rollout plans report on the version. */
  plan?: PlanFacts | null;
}

export interface Checklist {
  model: string;
  version: string;
  governed: boolean;
  riskTier: RiskTier | null;
  /** Whether the version's definition of done is met (what leaving shadow needs). */
  readyForAuthority: boolean;
  functions: { function: RmfFunction; items: ChecklistItem[] }[];
}

/** Whether an approval gave `version` authority: promoted it, or raised its canary. */
function givesAuthorityTo(approval: ConsumedApproval, version: string): boolean {
  if (approval.action === "champion.change") return approval.target.to === version;
  if (approval.action === "canary.raise") return approval.target.version === version;
  return false;
}

function approvalEvidence(approval: ConsumedApproval): Evidence[] {
  const shown: Evidence[] = [
    {
      kind: "approval",
      ref: approval.id,
      detail: `${approval.action} ${canonicalJson(approval.target)}, consumed ${approval.consumedAt}${approval.consumedBy ? ` by ${approval.consumedBy}` : ""}`,
    },
  ];
  if (approval.auditSeq !== null)
    shown.push({ kind: "audit", ref: String(approval.auditSeq), detail: "approval.consume" });
  return shown;
}

function audit(seq: number | null, action: string): Evidence[] {
  return seq === null ? [] : [{ kind: "audit", ref: String(seq), detail: action }];
}

export function buildChecklist(facts: ChecklistFacts): Checklist {
  const { model, version, governance } = facts;
  const readiness = new Map(facts.readiness.map((item) => [item.id, item]));
  const cardDetail = `revision ${facts.card.revision}${facts.card.sha256 ? `, sha256 ${facts.card.sha256}` : ""}`;

  /** An item that stands on card sections: met when each is. */
  const fromCard = (
    id: string,
    fn: RmfFunction,
    title: string,
    ids: ReadinessItemId[],
  ): ChecklistItem => {
    const items = ids.flatMap((key) => readiness.get(key) ?? []);
    const missing = items.filter((item) => !item.met);
    const paths = [...new Set(items.filter((item) => item.met).map((item) => item.path))];
    return {
      id,
      function: fn,
      title,
      state: missing.length === 0 ? "met" : "unmet",
      evidence: paths.map((path) => ({
        kind: "card_section",
        ref: `versions/${version}/${path}`,
        detail: cardDetail,
      })),
      ...(missing.length === 0 ? {} : { note: missing.map((item) => item.message).join("; ") }),
    };
  };

  const governed = governance !== null;
  const forVersion = facts.approvals.filter((approval) => givesAuthorityTo(approval, version));
  const asksApprovals =
    governance !== null &&
    (governance.approvals["champion.change"].length > 0 ||
      governance.approvals["canary.raise"].length > 0);

  const items: ChecklistItem[] = [
    governed
      ? {
          id: "governance_policy",
          function: "Govern",
          title: "A governance policy",
          state: "met",
          evidence: [
            {
              kind: "setting",
              ref: `models/${model}/governance`,
              detail: `tier ${governance.tier}, set by ${governance.updatedBy} at ${governance.updatedAt}`,
            },
            ...audit(governance.auditSeq, "model.governance.update"),
          ],
        }
      : {
          id: "governance_policy",
          function: "Govern",
          title: "A governance policy",
          state: "unmet",
          evidence: [],
          note: "no governance policy: the model is ungoverned, so nothing is held to its definition of done or to approvals (PUT …/governance)",
        },
    fromCard("kill_switch_owner", "Govern", "Who owns the kill switch", ["kill_switch_owner"]),
    {
      id: "data_policy",
      function: "Govern",
      title: "A data policy",
      state: facts.dataPolicy ? "met" : "unmet",
      evidence: facts.dataPolicy
        ? [
            { kind: "setting", ref: `models/${model}/data-policy` },
            ...audit(facts.dataPolicy.auditSeq, "data_policy.update"),
          ]
        : [],
      ...(facts.dataPolicy ? {} : { note: readiness.get("data_policy")?.message ?? "" }),
    },
    {
      id: "approvals",
      function: "Govern",
      title: "Approvals for the authority given",
      state: forVersion.length > 0 ? "met" : asksApprovals ? "unmet" : "not_applicable",
      evidence: facts.approvals.flatMap(approvalEvidence),
      ...(forVersion.length > 0
        ? {}
        : {
            note: !governed
              ? "no governance policy, so no approvals are asked"
              : asksApprovals
                ? `no approved change has given ${version} authority yet`
                : "the policy asks no approvals for promotions or canaries",
          }),
    },
    {
      id: "audit_trail",
      function: "Govern",
      title: "An audit trail that proves itself",
      state: facts.auditHead ? "met" : "unmet",
      evidence: facts.auditHead
        ? [
            {
              kind: "audit",
              ref: String(facts.auditHead.seq),
              detail: `chain head, hash ${facts.auditHead.hash}`,
            },
          ]
        : [],
      ...(facts.auditHead ? {} : { note: "the audit chain has no head yet" }),
    },
    fromCard("intended_use", "Map", "Intended and out-of-scope uses", [
      "intended_use",
      "out_of_scope_use",
    ]),
    fromCard("training_data", "Map", "Training data, its sensitive attributes and provenance", [
      "training_data",
      "sensitive_attributes",
      "provenance",
    ]),
    {
      id: "risk_tier",
      function: "Map",
      title: "A risk tier",
      state: governance ? "met" : "unmet",
      evidence: governance
        ? [
            {
              kind: "setting",
              ref: `models/${model}/governance`,
              detail: `tier ${governance.tier}`,
            },
          ]
        : [],
      ...(governance ? {} : { note: readiness.get("risk_tier")?.message ?? "" }),
    },
    fromCard("limitations", "Map", "Known limitations", ["limitations"]),
    fromCard("offline_evaluation", "Measure", "Offline evaluation, overall and by slice", [
      "offline_evaluation",
      "evaluation_slices",
    ]),
    fromCard("fairness_analysis", "Measure", "A fairness analysis", ["fairness_analysis"]),
    {
      id: "baseline",
      function: "Measure",
      title: "A monitoring baseline",
      state: readiness.get("baseline")?.met ? "met" : "unmet",
      evidence: readiness.get("baseline")?.met
        ? [
            { kind: "setting", ref: `versions/${version}/baseline` },
            ...audit(facts.baselineAuditSeq, "version.baseline.set"),
          ]
        : [],
      ...(readiness.get("baseline")?.met ? {} : { note: readiness.get("baseline")?.message ?? "" }),
    },
    {
      id: "monitoring_results",
      function: "Measure",
      title: "Monitoring results for the version",
      state: facts.monitoring ? "met" : "unmet",
      evidence: facts.monitoring
        ? [
            {
              kind: "monitoring",
              ref: `models/${model}/monitoring`,
              detail: `${facts.monitoring.results} results for ${version} in the ${facts.monitoring.windowSeconds}-second window from ${facts.monitoring.windowStart}, ${facts.monitoring.alerting} alerting`,
            },
          ]
        : [],
      ...(facts.monitoring ? {} : { note: `no monitoring results for ${version} yet` }),
    },
    planItem(facts.plan ?? null),
    fromCard("rollback_plan", "Manage", "A rollback plan", ["rollback_plan"]),
    fromCard("mitigations", "Manage", "Mitigations", ["mitigations"]),
    {
      id: "alert_destinations",
      function: "Manage",
      title: "Destinations for the model's alerts",
      state: facts.destinationIds.length > 0 ? "met" : "unmet",
      evidence: facts.destinationIds.map((id) => ({
        kind: "setting" as const,
        ref: `alert-destinations/${id}`,
      })),
      ...(facts.destinationIds.length > 0
        ? {}
        : { note: readiness.get("alert_destinations")?.message ?? "" }),
    },
  ];

  return {
    model,
    version,
    governed,
    riskTier: governance?.tier ?? null,
    readyForAuthority: facts.readiness.every((item) => item.met),
    functions: RMF_FUNCTIONS.map((fn) => ({
      function: fn,
      items: items.filter((item) => item.function === fn),
    })),
  };
}

/** Online evidence: what a rollout plan's latest evaluation of the version found. */
function planItem(plan: PlanFacts | null): ChecklistItem {
  const base = {
    id: "online_evidence",
    function: "Measure" as const,
    title: "Online evidence from a rollout plan",
  };
  if (!plan)
    return {
      ...base,
      state: "unmet",
      evidence: [],
      note: "no rollout plan has evaluated this version",
    };
  const evaluation = plan.latestEvaluation;
  // Met once the gates have let the version advance: the latest evaluation passed them all, or the plan completed.
  const passed = plan.state === "completed" || evaluation?.verdict === "advance";
  return {
    ...base,
    state: passed ? "met" : "unmet",
    evidence: [
      ...(evaluation
        ? [
            {
              kind: "evaluation" as const,
              ref: evaluation.id,
              detail: `plan ${plan.id} (${plan.state}): ${evaluation.verdict} at ${evaluation.at}`,
            },
            ...audit(evaluation.auditSeq, "plan evaluation"),
          ]
        : []),
      ...plan.approvals.flatMap(approvalEvidence),
    ],
    ...(passed
      ? {}
      : {
          note: evaluation
            ? `the latest evaluation of plan ${plan.id} is ${evaluation.verdict.replace("_", " ")}`
            : `plan ${plan.id} has not evaluated this version yet`,
        }),
  };
}
