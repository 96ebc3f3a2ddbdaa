/**
 * What a rollout plan's steps need under the model's governance policy.
 *
 * - A step the gates passed (`plan.advance`) needs the roles the policy
 *   names for it when the step gives more authority than the free bounds:
 *   a canary above the free share, or the champion. Other steps (a canary
 *   within the free share) need nobody.
 * - Advancing or skipping a phase by hand (`plan.override`), whatever the
 *   gates say, needs the roles the policy names for that.
 * Both are bound to the plan and its phase, its versions, gates and
 * thresholds (`planApprovalBinding`), not to a rollout state: newer
 * evidence does not invalidate them. The evidence the approvers were shown
 * (the phase's latest evaluation) is frozen with the request.
 */
import { and, desc, eq } from "drizzle-orm";
import { canonicalJson, sha256Hex } from "../../shared/crypto";
import type { Queryable } from "../../shared/db/client";
import { planEvaluations } from "../../shared/db/schema";
import {
  approvalsNeeded,
  type GovernancePolicy,
  type NeededApproval,
} from "../../shared/governance/policy";
import {
  currentPhase,
  type PlanState,
  phaseRollout,
  planApprovalBinding,
} from "../../shared/plans/state";
import type { KillSwitch, RolloutConfig } from "../../shared/rollout/state";
import { evaluationResource } from "./resource";

/** What stepping into phase `to` of the plan needs approved; null when nothing. */
export function planStepNeeds(
  policy: GovernancePolicy | null,
  plan: PlanState,
  current: { rollout: RolloutConfig; killSwitch: KillSwitch | null },
  to: string,
): NeededApproval | null {
  const roles = policy?.approvals["plan.advance"] ?? [];
  const phase = plan.phases.find((p) => p.id === to);
  if (!policy || roles.length === 0 || !phase) return null;
  const gives = approvalsNeeded(policy, current, {
    rollout: phaseRollout(plan, phase, current.rollout),
    killSwitch: current.killSwitch,
  });
  if (gives.length === 0) return null;
  return {
    action: "plan.advance",
    target: { plan: plan.id, phase: to },
    roles: [...roles],
    reason: `lets plan ${plan.id} enter ${to}: it ${gives.map((g) => g.reason).join("; ")}`,
  };
}

/** What advancing or skipping the current phase by hand needs approved; null when nothing. */
export function planOverrideNeeds(
  policy: GovernancePolicy | null,
  plan: PlanState,
  action: "advance" | "skip",
): NeededApproval | null {
  const roles = policy?.approvals["plan.override"] ?? [];
  if (roles.length === 0) return null;
  const phase = currentPhase(plan).id;
  return {
    action: "plan.override",
    target: { plan: plan.id, phase, action },
    roles: [...roles],
    reason:
      action === "skip"
        ? `skips the phase after ${phase} of plan ${plan.id} by hand, whatever its gates say`
        : `advances plan ${plan.id} out of ${phase} by hand, whatever its gates say`,
  };
}

/** The fingerprint an approval of a step into (or out of) `phase` is bound to. */
export function planFingerprint(plan: PlanState, phase: string): Promise<string> {
  return sha256Hex(canonicalJson(planApprovalBinding(plan, phase)));
}

/**
 * The evidence an approval request is shown, frozen: the binding and the
 * current phase's latest evaluation (null before the first), with its hash.
 */
export async function evidenceBundle(
  db: Queryable,
  plan: PlanState,
  phase: string,
): Promise<{ evidence: Record<string, unknown>; sha256: string }> {
  const current = currentPhase(plan).id;
  const [latest] = await db
    .select()
    .from(planEvaluations)
    .where(and(eq(planEvaluations.planId, plan.id), eq(planEvaluations.phase, current)))
    .orderBy(desc(planEvaluations.id))
    .limit(1);
  const evidence = {
    binding: planApprovalBinding(plan, phase),
    evaluation: latest ? evaluationResource(latest) : null,
  };
  return { evidence, sha256: await sha256Hex(canonicalJson(evidence)) };
}
