/**
 * The plan evaluation: each open plan's current phase judged on its own
 * evidence from Postgres (functions/plans/evidence.ts, shared/plans/
 * evaluate.ts), the evaluation stored with that evidence, and then, when
 * every gate passed, the model's rollout object asked to take the step
 * (`planId`, `phase`, `evaluationId`). The object refuses a stale request,
 * so two evaluations racing never move a plan twice.
 *
 * Before a step, what the step needs:
 * - leaving shadow: a complete definition of done (the challenger's model
 *   card and what Airlock fills in; functions/admin/readiness.ts);
 * - a step past the governance policy's free bounds: an approved
 *   `plan.advance` request for this plan and phase, consumed with the step.
 *   When none is there yet, one is asked for on behalf of the person who
 *   started the plan, with the evaluation as its frozen evidence, and the
 *   approvers are told (approval notices).
 * A paused plan is evaluated (its evidence is still shown) but never moved.
 * Evidence that cannot be read (the database, a query) makes every gate
 * `insufficient_evidence`: never a pass.
 */
import { and, eq, inArray, sql } from "drizzle-orm";
import type { ChangeContext } from "../../durable-objects/model-rollout";
import { newId } from "../../shared/auth/tokens";
import { canonicalJson, sha256Hex } from "../../shared/crypto";
import { type Database, openDatabase, type Transaction } from "../../shared/db/client";
import { approvals, auditLog, models, planEvaluations, rolloutPlans } from "../../shared/db/schema";
import { ApiError, describeError } from "../../shared/errors";
import { policyInForce } from "../../shared/governance/policy";
import { windowLengths } from "../../shared/monitoring/windows";
import { evaluatePhase, type PhaseEvaluation } from "../../shared/plans/evaluate";
import type { PhaseEvidence } from "../../shared/plans/evidence";
import { mirrorPlans } from "../../shared/plans/mirror";
import { currentPhase, currentStart, isOpen, type PlanState } from "../../shared/plans/state";
import { approvalNotice } from "../admin/approvals";
import { assertReadyForAuthority } from "../admin/readiness";
import { enqueueNotices } from "../alerts/evaluate";
import { createNotice } from "../alerts/notices";
import { loadCatalogue } from "../rollout/catalogue";
import { rolloutObject } from "../rollout/leases";
import { phaseEvidence } from "./evidence";
import { evidenceBundle, planFingerprint, planStepNeeds } from "./governance";
import type { PLAN_OUTCOMES } from "./resource";

/** Who the plan evaluation acts as, in the rollout history and the audit trail. */
export const PLAN_EVALUATOR = "system:plan-evaluator";

type Outcome = (typeof PLAN_OUTCOMES)[number];

export interface PlanEvaluationReport {
  planId: string;
  model: string;
  phase: string;
  evaluationId: number;
  verdict: PhaseEvaluation["verdict"];
  outcome: Outcome;
  outcomeReason: string;
  stateVersion: number | null;
}

export interface PlanRunReport {
  evaluated: PlanEvaluationReport[];
  /** Plans that could not be evaluated at all, and why (the next run tries again). */
  failed: { planId: string; model: string; error: string }[];
}

export interface EvaluateOptions {
  /** Only this plan. */
  planId?: string;
}

/**
 * What leaving shadow needs beyond the gates, on a governed model: the
 * challenger's definition of done (functions/admin/readiness.ts). Null when
 * it may have authority; otherwise why not, in words, naming each item.
 */
export async function readinessRefusal(
  db: Database,
  model: string,
  version: string,
): Promise<string | null> {
  try {
    await assertReadyForAuthority(db, model, version);
    return null;
  } catch (error) {
    if (!(error instanceof ApiError) || error.code !== "MODEL_CARD_INCOMPLETE") throw error;
    const items = error.details?.map((detail) => `${detail.path}: ${detail.message}`) ?? [];
    return `${error.message}${items.length > 0 ? ` [${items.join("; ")}]` : ""}`;
  }
}

/** Evaluates every open plan (or one) at `now`, with its own database connection. */
export async function evaluatePlans(
  env: Env,
  now = new Date(),
  options: EvaluateOptions = {},
): Promise<PlanRunReport> {
  const handle = openDatabase(env);
  try {
    const report = await evaluateOpenPlans(handle.db, env, now, options);
    return report;
  } finally {
    await handle.close();
  }
}

export async function evaluateOpenPlans(
  db: Database,
  env: Env,
  now: Date,
  options: EvaluateOptions,
): Promise<PlanRunReport> {
  const report: PlanRunReport = { evaluated: [], failed: [] };
  const candidates = await db
    .select({ id: rolloutPlans.id, model: rolloutPlans.model })
    .from(rolloutPlans)
    .where(
      and(
        inArray(rolloutPlans.status, ["active", "paused"]),
        options.planId === undefined ? undefined : eq(rolloutPlans.id, options.planId),
      ),
    )
    .orderBy(rolloutPlans.createdAt);
  for (const candidate of candidates) {
    try {
      const evaluated = await evaluatePlan(db, env, candidate.model, candidate.id, now);
      if (evaluated) report.evaluated.push(evaluated);
    } catch (error) {
      const message = describeError(error);
      report.failed.push({ planId: candidate.id, model: candidate.model, error: message });
      console.error(
        JSON.stringify({
          level: "error",
          event: "plans.evaluation_failed",
          plan: candidate.id,
          model: candidate.model,
          error: message,
        }),
      );
    }
  }
  return report;
}

/** One plan's evaluation and what follows it; null when the plan is no longer open. */
async function evaluatePlan(
  db: Database,
  env: Env,
  model: string,
  planId: string,
  now: Date,
): Promise<PlanEvaluationReport | null> {
  const object = rolloutObject(env, model);
  const view = await object.read(1);
  const plan = view.plan;
  if (!plan || plan.id !== planId || !isOpen(plan.status)) {
    // The mirror lagged behind the object: bring it forward, and leave the plan.
    if (plan) await mirrorPlans(db, [plan]);
    return null;
  }
  const [row] = await db
    .select({
      task: models.task,
      positiveClass: models.positiveClass,
      governance: models.governance,
    })
    .from(models)
    .where(eq(models.name, model));
  if (!row) throw new Error(`model '${model}' of plan ${planId} does not exist`);
  const phase = currentPhase(plan);
  const start = currentStart(plan);
  let evidence: PhaseEvidence | null = null;
  let evidenceError: string | null = null;
  try {
    evidence = await phaseEvidence(
      db,
      {
        model,
        task: row.task,
        positiveClass: row.positiveClass,
        kind: phase.kind,
        challenger: plan.challenger,
        champion: plan.champion,
        fromStateVersion: start.stateVersion,
        span: { start: new Date(start.at), end: now },
        fairnessAttributes: plan.fairnessAttributes,
        kpis: plan.kpis,
      },
      { windowSeconds: windowLengths(env.MONITORING_WINDOW_SECONDS).base },
    );
  } catch (error) {
    evidenceError = describeError(error);
  }
  const evaluation = evaluatePhase(phase, evidence, plan.thresholds, {
    task: row.task,
    challenger: plan.challenger,
    fairnessAttributes: plan.fairnessAttributes,
    kpis: plan.kpis,
  });
  const next = plan.phases[plan.phaseIndex + 1];
  let outcome: Outcome;
  let outcomeReason: string;
  if (plan.status === "paused") {
    outcome = "paused";
    outcomeReason = "the plan is paused: nothing advances until it is resumed";
  } else if (evaluation.verdict === "hold") {
    outcome = "held";
    outcomeReason = `held in ${phase.id}: ${evaluation.reasons.join("; ")}`;
  } else if (evaluation.verdict === "insufficient_evidence") {
    outcome = "waiting";
    const at = evaluation.needed?.estimatedAt;
    outcomeReason = `waiting in ${phase.id} for evidence: ${evaluation.reasons.join("; ")}${at ? ` (expected by ${at})` : ""}`;
  } else {
    outcome = "advancing";
    outcomeReason = next
      ? `every gate of ${phase.id} passed: entering ${next.id}`
      : `every gate of ${phase.id} passed: the plan completes`;
  }
  const stored = await storeEvaluation(db, plan, phase.id, evaluation, start, now, {
    outcome,
    outcomeReason,
    evidenceError,
  });
  const result: PlanEvaluationReport = {
    planId,
    model,
    phase: phase.id,
    evaluationId: stored,
    verdict: evaluation.verdict,
    outcome,
    outcomeReason,
    stateVersion: null,
  };
  if (outcome !== "advancing") return result;

  // Every gate passed: what the step needs, then the step.
  const settle = async (final: Outcome, reason: string, stateVersion: number | null = null) => {
    await db
      .update(planEvaluations)
      .set({ outcome: final, outcomeReason: reason, stateVersion })
      .where(eq(planEvaluations.id, stored));
    return { ...result, outcome: final, outcomeReason: reason, stateVersion };
  };
  if (phase.kind === "shadow") {
    const refusal = await readinessRefusal(db, model, plan.challenger);
    if (refusal) return settle("refused", refusal);
  }
  const policy = row.governance ? policyInForce(row.governance) : null;
  const need = next
    ? planStepNeeds(
        policy,
        plan,
        { rollout: view.snapshot.rollout, killSwitch: view.snapshot.killSwitch },
        next.id,
      )
    : null;
  const catalogue = await loadCatalogue(db, model);
  const context: ChangeContext = { actor: PLAN_EVALUATOR, requestId: null };
  const step = () =>
    object.stepPlan({ planId, phase: phase.id, evaluationId: stored }, catalogue, context);
  if (!need || !next) {
    const stepped = await step();
    if (!stepped.ok) return settle("refused", stepped.message);
    if (stepped.view.plan) await mirrorPlans(db, [stepped.view.plan]);
    return settle(
      next ? "advanced" : "completed",
      next
        ? `every gate of ${phase.id} passed: entered ${next.id}`
        : `every gate of ${phase.id} passed: ${plan.challenger} is champion and the plan is complete`,
      stepped.view.snapshot.stateVersion,
    );
  }
  const fingerprint = await planFingerprint(plan, next.id);
  const deliveries: number[] = [];
  // The step's request in this status, unexpired, for exactly this plan, phase and binding.
  const stepRequest = (tx: Transaction, status: "approved" | "pending") =>
    tx
      .select()
      .from(approvals)
      .where(
        and(
          eq(approvals.model, model),
          eq(approvals.action, "plan.advance"),
          eq(approvals.status, status),
          eq(approvals.fingerprint, fingerprint),
          sql`${approvals.target} = ${JSON.stringify(need.target)}::jsonb`,
          sql`${approvals.expiresAt} > now()`,
        ),
      )
      .orderBy(approvals.requestedAt)
      .limit(1)
      .for("update");
  const settled = await db.transaction(async (tx) => {
    const [approved] = await stepRequest(tx, "approved");
    if (!approved) {
      const [pending] = await stepRequest(tx, "pending");
      if (pending)
        return {
          outcome: "approval_required" as const,
          reason: `every gate of ${phase.id} passed; entering ${next.id} ${need.reason.replace(/^lets plan \S+ enter \S+: it /, "")}, which needs approval ${pending.id} (pending)`,
        };
      const bundle = await evidenceBundle(tx, plan, next.id);
      const [asked] = await tx
        .insert(approvals)
        .values({
          id: newId("apr_"),
          model,
          action: need.action,
          target: need.target,
          reason: `The gates of ${phase.id} passed (evaluation ${stored}); the plan asks to enter ${next.id}`,
          change: need.reason,
          roles: need.roles,
          fingerprint,
          evidence: bundle.evidence,
          evidenceSha256: bundle.sha256,
          status: "pending",
          requestedBy: plan.createdBy,
          expiresAt: new Date(now.getTime() + 7 * 86_400_000),
        })
        .returning();
      if (!asked) throw new Error("the approval request was not stored");
      await tx.insert(auditLog).values({
        eventId: crypto.randomUUID(),
        source: "system",
        actor: PLAN_EVALUATOR,
        action: "approval.request",
        targetType: "approval",
        target: `models/${model}/approvals/${asked.id}`,
        before: null,
        after: {
          id: asked.id,
          action: asked.action,
          target: asked.target,
          roles: asked.roles,
          change: need.reason,
          onBehalfOf: plan.createdBy,
          evaluationId: stored,
          evidenceSha256: bundle.sha256,
        },
      });
      deliveries.push(
        ...(await createNotice(
          tx,
          approvalNotice("approval.requested", asked, [], { decision: null, applied: null }),
        )),
      );
      return {
        outcome: "approval_required" as const,
        reason: `every gate of ${phase.id} passed; entering ${next.id} needs approval: asked for it as ${asked.id}`,
      };
    }
    const stepped = await step();
    if (!stepped.ok) return { outcome: "refused" as const, reason: stepped.message };
    const stateVersion = stepped.view.snapshot.stateVersion;
    const [consumed] = await tx
      .update(approvals)
      .set({ status: "consumed", consumedAt: sql`now()`, consumedBy: PLAN_EVALUATOR })
      .where(eq(approvals.id, approved.id))
      .returning();
    await tx.insert(auditLog).values({
      eventId: crypto.randomUUID(),
      source: "system",
      actor: PLAN_EVALUATOR,
      action: "approval.consume",
      targetType: "approval",
      target: `models/${model}/approvals/${approved.id}`,
      before: { status: "approved" },
      after: { status: "consumed", stateVersion, change: need.reason, evaluationId: stored },
    });
    if (consumed)
      deliveries.push(
        ...(await createNotice(
          tx,
          approvalNotice("approval.applied", consumed, [], {
            decision: null,
            applied: { by: PLAN_EVALUATOR, stateVersion },
          }),
        )),
      );
    if (stepped.view.plan) await mirrorPlans(tx, [stepped.view.plan]);
    return {
      outcome: "advanced" as const,
      reason: `every gate of ${phase.id} passed and approval ${approved.id} allows it: entered ${next.id}`,
      stateVersion,
    };
  });
  if (deliveries.length > 0) await enqueueNotices(env.ALERT_DELIVERIES, deliveries);
  return settle(
    settled.outcome,
    settled.reason,
    "stateVersion" in settled ? (settled.stateVersion ?? null) : null,
  );
}

/** Stores an evaluation with its evidence and returns its id. */
async function storeEvaluation(
  db: Database,
  plan: PlanState,
  phase: string,
  evaluation: PhaseEvaluation,
  start: { at: string; stateVersion: number },
  now: Date,
  what: { outcome: Outcome; outcomeReason: string; evidenceError: string | null },
): Promise<number> {
  const details = {
    span: { start: start.at, end: now.toISOString() },
    fromStateVersion: start.stateVersion,
    challenger: plan.challenger,
    champion: plan.champion,
    skipped: evaluation.skipped,
    ...(evaluation.needed ? { needed: evaluation.needed } : {}),
    ...(what.evidenceError ? { evidenceError: what.evidenceError } : {}),
  };
  const body = {
    planId: plan.id,
    phase,
    verdict: evaluation.verdict,
    reasons: evaluation.reasons,
    gates: evaluation.gates,
    details,
  };
  const [row] = await db
    .insert(planEvaluations)
    .values({
      planId: plan.id,
      model: plan.model,
      phase,
      at: now,
      verdict: evaluation.verdict,
      reasons: evaluation.reasons,
      gates: evaluation.gates as unknown as Record<string, unknown>[],
      details,
      sha256: await sha256Hex(canonicalJson(body)),
      outcome: what.outcome,
      outcomeReason: what.outcomeReason,
      evaluatedBy: PLAN_EVALUATOR,
    })
    .returning({ id: planEvaluations.id });
  if (!row) throw new Error("the evaluation was not stored");
  return row.id;
}
