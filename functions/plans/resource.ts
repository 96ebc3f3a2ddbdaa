/**
 * Rollout plans as the API shows them: the plan, each phase with its dates,
 * where it stands against its schedule, and its latest evaluation; and each
 * evaluation with its evidence.
 */
import { z } from "@hono/zod-openapi";
import type { planEvaluations } from "../../shared/db/schema";
import { schedule } from "../../shared/plans/phases";
import { currentPhase, PLAN_STATUSES, type PlanState } from "../../shared/plans/state";
import { Timestamp } from "../../shared/schemas/common";

type EvaluationRow = typeof planEvaluations.$inferSelect;

export const PLAN_OUTCOMES = [
  "advanced",
  "completed",
  "held",
  "waiting",
  "paused",
  "approval_required",
  "refused",
  "advancing",
] as const;

const GateVerdictView = z
  .object({
    gate: z.string(),
    verdict: z.enum(["pass", "fail", "insufficient_evidence"]),
    reason: z.string(),
    evidence: z.record(z.string(), z.unknown()),
    needed: z
      .object({
        samples: z.record(z.string(), z.number()),
        estimatedAt: Timestamp.nullable(),
      })
      .optional(),
  })
  .openapi("GateVerdict");

export const PlanEvaluation = z
  .object({
    id: z.number().int(),
    planId: z.string(),
    model: z.string(),
    phase: z.string(),
    at: Timestamp,
    verdict: z.enum(["advance", "hold", "insufficient_evidence"]).openapi({
      description:
        "What the gates say: every gate passed (advance), one failed (hold), or some still wait for evidence.",
    }),
    reasons: z.array(z.string()).openapi({
      description: "The failing or waiting gates' reasons, in words.",
    }),
    gates: z.array(GateVerdictView),
    details: z.record(z.string(), z.unknown()).openapi({
      description:
        "The span evaluated, its rollout state, gates left out of the plan and why, and what is still needed with its estimate.",
    }),
    sha256: z.string().openapi({
      description: "SHA-256 of the evaluation's canonical JSON: what an approval was shown.",
    }),
    outcome: z.enum(PLAN_OUTCOMES).openapi({ description: "What followed the evaluation." }),
    outcomeReason: z.string(),
    stateVersion: z.number().int().nullable().openapi({
      description: "The rollout state the step made, when the evaluation moved the plan.",
    }),
    evaluatedBy: z.string(),
  })
  .openapi("PlanEvaluation");
export type PlanEvaluation = z.infer<typeof PlanEvaluation>;

const PhaseView = z.object({
  id: z.string().openapi({ example: "canary_5" }),
  kind: z.enum(["shadow", "canary", "full", "guard"]),
  percent: z.number().nullable(),
  minDwellSeconds: z.number(),
  minRequests: z.number().int(),
  minLabels: z.number().int().nullable(),
  targetDays: z.number(),
  gates: z.array(z.string()),
  state: z.enum(["done", "current", "upcoming"]),
  startedAt: Timestamp.nullable(),
  startStateVersion: z.number().int().nullable(),
  targetAt: Timestamp,
});

export const Plan = z
  .object({
    id: z.string().openapi({ example: "pln_k3v9q2m7x4c8t1b5" }),
    model: z.string(),
    challenger: z.string(),
    champion: z.string().openapi({
      description:
        "The champion when the plan began (the previous champion once the challenger is).",
    }),
    status: z.enum(PLAN_STATUSES),
    phase: z.string().openapi({ description: "The current phase (the last one, once ended)." }),
    phases: z.array(PhaseView),
    schedule: z.object({
      startedAt: Timestamp,
      cycleDays: z.number(),
      cycleTargetAt: Timestamp,
      daysUsed: z.number(),
      daysLeft: z.number(),
      projectedEndAt: Timestamp,
      beyondCycle: z.boolean(),
      overdue: z.boolean().openapi({ description: "The current phase is past its target date." }),
    }),
    settings: z.object({
      thresholds: z.record(z.string(), z.unknown()),
      shadowSampleRate: z.number(),
      guardSampleRate: z.number(),
      fairnessAttributes: z.array(z.string()),
      kpis: z.array(z.object({ name: z.string(), higherIsBetter: z.boolean() })),
    }),
    latestEvaluation: PlanEvaluation.nullable().openapi({
      description: "The current phase's latest evaluation: each gate's latest verdict.",
    }),
    createdBy: z.string(),
    createdAt: Timestamp,
    endedAt: Timestamp.nullable(),
    endReason: z.string().nullable(),
  })
  .openapi("Plan");
export type Plan = z.infer<typeof Plan>;

export function evaluationResource(row: EvaluationRow): PlanEvaluation {
  return {
    id: row.id,
    planId: row.planId,
    model: row.model,
    phase: row.phase,
    at: row.at.toISOString(),
    verdict: row.verdict as PlanEvaluation["verdict"],
    reasons: row.reasons,
    gates: row.gates as PlanEvaluation["gates"],
    details: row.details,
    sha256: row.sha256,
    outcome: row.outcome as PlanEvaluation["outcome"],
    outcomeReason: row.outcomeReason,
    stateVersion: row.stateVersion ?? null,
    evaluatedBy: row.evaluatedBy,
  };
}

/** A plan with its schedule at `now` (at its end, once ended) and its latest evaluation. */
export function planResource(
  plan: PlanState,
  latest: EvaluationRow | null,
  now: Date = new Date(),
): Plan {
  const at = plan.endedAt ? new Date(plan.endedAt) : now;
  const dates = schedule(
    {
      phases: plan.phases,
      cycleDays: plan.cycleDays,
      phaseStarts: plan.phaseStarts.map((start) => start.at),
    },
    at,
  );
  const current = currentPhase(plan);
  return {
    id: plan.id,
    model: plan.model,
    challenger: plan.challenger,
    champion: plan.champion,
    status: plan.status,
    phase: current.id,
    phases: plan.phases.map((phase, i) => {
      const dated = dates.phases[i];
      const start = plan.phaseStarts[i];
      return {
        id: phase.id,
        kind: phase.kind,
        percent: phase.percent,
        ...phase.timing,
        gates: [...phase.gates],
        state:
          plan.status === "completed" && i === plan.phaseIndex
            ? "done"
            : (dated?.state ?? "upcoming"),
        startedAt: start?.at ?? null,
        startStateVersion: start?.stateVersion ?? null,
        targetAt: dated?.targetAt ?? dates.projectedEndAt,
      };
    }),
    schedule: {
      startedAt: dates.startedAt,
      cycleDays: plan.cycleDays,
      cycleTargetAt: dates.cycleTargetAt,
      daysUsed: round(dates.daysUsed),
      daysLeft: round(dates.daysLeft),
      projectedEndAt: dates.projectedEndAt,
      beyondCycle: dates.beyondCycle,
      overdue: plan.endedAt === null && dates.current.overdue,
    },
    settings: {
      thresholds: plan.thresholds as unknown as Record<string, unknown>,
      shadowSampleRate: plan.shadowSampleRate,
      guardSampleRate: plan.guardSampleRate,
      fairnessAttributes: plan.fairnessAttributes,
      kpis: plan.kpis,
    },
    latestEvaluation: latest && latest.phase === current.id ? evaluationResource(latest) : null,
    createdBy: plan.createdBy,
    createdAt: plan.createdAt,
    endedAt: plan.endedAt,
    endReason: plan.endReason,
  };
}

const round = (days: number) => Math.round(days * 1000) / 1000;
