/**
 * A rollout plan's phases: `shadow`, the canary steps (1, 5, 25 and 50% by
 * default), `full`, then `guard`, in which the previous champion stays live
 * in shadow for an instant revert and continued comparison. Each phase has a
 * minimum dwell, minimum requests, minimum labels where a gate needs them,
 * a target duration and the gates it must pass (shared/plans/gates.ts); the
 * cycle from the start of shadow to the end of guard has a target length,
 * 90 days by default. `schedule` says where a plan stands against its dates.
 */
import { z } from "@hono/zod-openapi";
import { type GateName, GateThresholdsBody } from "./gates";

export const PHASE_KINDS = ["shadow", "canary", "full", "guard"] as const;
export type PhaseKind = (typeof PHASE_KINDS)[number];

export interface PhaseTiming {
  /** The least time the phase lasts, whatever its evidence. */
  minDwellSeconds: number;
  /** The fewest requests the challenger answers in the phase. */
  minRequests: number;
  /** The fewest labels for results served in the phase; null where no gate needs labels. */
  minLabels: number | null;
  /** How long the phase should take: its target date is its start plus this. */
  targetDays: number;
}

export const DEFAULT_CANARY_STEPS: readonly number[] = [1, 5, 25, 50];
export const DEFAULT_CYCLE_DAYS = 90;

const DAY = 86_400;

/**
 * The default timing of each kind of phase; every canary step takes the
 * canary's. With them the phases take 7 + 4 × 7 + 7 + 14 = 56 days, well
 * inside the 90-day cycle, leaving room for a held step.
 */
export const DEFAULT_PHASE_TIMINGS: Record<PhaseKind, PhaseTiming> = {
  // Shadow results are not served, so no label counts as this phase's.
  shadow: { minDwellSeconds: DAY, minRequests: 1000, minLabels: null, targetDays: 7 },
  canary: { minDwellSeconds: DAY, minRequests: 500, minLabels: 200, targetDays: 7 },
  full: { minDwellSeconds: 2 * DAY, minRequests: 1000, minLabels: 200, targetDays: 7 },
  guard: { minDwellSeconds: 7 * DAY, minRequests: 1000, minLabels: 200, targetDays: 14 },
};

/**
 * The gates each kind of phase must pass besides its minimums. Shadow has
 * no served results, so no labels or KPIs; full and guard have no canary
 * population to compare a KPI with, and compare against the previous
 * champion in shadow. `agreement` and `mean_difference` are the
 * classification and regression forms of one gate.
 */
export const PHASE_GATES: Record<PhaseKind, readonly GateName[]> = {
  shadow: ["agreement", "error_rate", "latency_p99", "alerts"],
  canary: ["agreement", "error_rate", "latency_p99", "alerts", "quality", "fairness", "kpi"],
  full: ["error_rate", "latency_p99", "alerts", "quality", "fairness"],
  guard: ["error_rate", "latency_p99", "alerts", "quality", "fairness"],
};

// ---- the settings a plan is created with ------------------------------------------------

const timingFields = {
  minDwellSeconds: z
    .number()
    .int()
    .min(0)
    .max(365 * DAY),
  minRequests: z.number().int().min(0).max(1_000_000_000),
  minLabels: z.number().int().min(0).max(1_000_000_000),
  // Fractions of a day are allowed, for short plans.
  targetDays: z.number().positive().max(730),
};
const ShadowTiming = z
  .object({
    minDwellSeconds: timingFields.minDwellSeconds,
    minRequests: timingFields.minRequests,
    targetDays: timingFields.targetDays,
  })
  .partial()
  .strict();
const ServedTiming = z.object(timingFields).partial().strict();

/** A plan's settings as fields, for the bodies that carry them (see `PlanSettings`). */
export const planSettingsFields = {
  steps: z
    .array(z.number().gt(0).lt(100))
    .min(1)
    .max(10)
    .optional()
    .openapi({ description: "Canary percentages in rising order (default 1, 5, 25, 50)." }),
  cycleDays: z
    .number()
    .positive()
    .max(730)
    .optional()
    .openapi({ description: "The cycle's target length in days (default 90)." }),
  phases: z
    .object({
      shadow: ShadowTiming,
      canary: ServedTiming,
      full: ServedTiming,
      guard: ServedTiming,
    })
    .partial()
    .strict()
    .optional()
    .openapi({ description: "Per kind of phase, changes to its default timing." }),
  thresholds: GateThresholdsBody.optional().openapi({
    description: "Changes to the gates' default thresholds and margins.",
  }),
  shadowSampleRate: z.number().gt(0).max(1).optional().openapi({
    description: "The share of requests the challenger sees in the shadow phase (default 1).",
  }),
  guardSampleRate: z.number().gt(0).max(1).optional().openapi({
    description:
      "The share of requests the previous champion still sees as a shadow in the full and guard phases (default 1).",
  }),
  fairnessAttributes: z.array(z.string().min(1).max(64)).max(20).optional().openapi({
    description:
      "Request attributes the fairness gate judges by (default: the attributes the challenger's model card analyses for fairness); none leaves the gate out, and the plan says so.",
  }),
  kpis: z
    .array(z.object({ name: z.string().min(1).max(64), higherIsBetter: z.boolean() }).strict())
    .max(20)
    .optional()
    .openapi({
      description:
        "Business KPIs (POST /v1/outcomes) the canary must not be worse on, and which way is better; none leaves the KPI gate out, and the plan says so.",
    }),
};

const planSettingsObject = z.object(planSettingsFields).strict();
export type PlanSettings = z.infer<typeof planSettingsObject>;

/** Rising steps, and phases whose target days fit in the cycle. */
export function refinePlanSettings(settings: PlanSettings, ctx: z.RefinementCtx): void {
  {
    const steps = settings.steps ?? [];
    for (let i = 1; i < steps.length; i++) {
      if ((steps[i] as number) <= (steps[i - 1] as number)) {
        ctx.addIssue({
          code: "custom",
          path: ["steps", i],
          message: `must be above the step before it (${steps[i - 1]})`,
        });
      }
    }
    const phases = planPhases(settings);
    const total = phases.reduce((sum, phase) => sum + phase.timing.targetDays, 0);
    const cycleDays = settings.cycleDays ?? DEFAULT_CYCLE_DAYS;
    if (total > cycleDays) {
      ctx.addIssue({
        code: "custom",
        path: ["cycleDays"],
        message: `must be at least the phases' target days added up (${Number(total.toPrecision(6))})`,
      });
    }
  }
}

/** A plan's steps, timings and gate settings; each left out takes its default. */
export const PlanSettings = planSettingsObject
  .superRefine(refinePlanSettings)
  .openapi("PlanSettings");

export interface PlanPhase {
  /** `shadow`, `canary_5`, `full`, `guard`. */
  id: string;
  kind: PhaseKind;
  /** The canary's share of traffic; null for the other kinds. */
  percent: number | null;
  timing: PhaseTiming;
  gates: readonly GateName[];
}

/** The phases of a plan, in order, with their timings resolved. */
export function planPhases(settings: PlanSettings = {}): PlanPhase[] {
  const timing = (kind: PhaseKind): PhaseTiming => ({
    ...DEFAULT_PHASE_TIMINGS[kind],
    ...(settings.phases?.[kind] ?? {}),
  });
  const phase = (kind: PhaseKind, percent: number | null = null): PlanPhase => ({
    id: percent === null ? kind : `${kind}_${percent}`,
    kind,
    percent,
    timing: timing(kind),
    gates: PHASE_GATES[kind],
  });
  return [
    phase("shadow"),
    ...(settings.steps ?? DEFAULT_CANARY_STEPS).map((percent) => phase("canary", percent)),
    phase("full"),
    phase("guard"),
  ];
}

// ---- schedule ---------------------------------------------------------------------------

/** A plan as the schedule reads it: its phases and when each phase reached began. */
export interface PlanTimeline {
  phases: readonly PlanPhase[];
  cycleDays: number;
  /**
   * ISO start of each phase reached so far, in order: the first is the
   * plan's start, the last the current phase's.
   */
  phaseStarts: readonly string[];
}

export interface PhaseSchedule {
  id: string;
  state: "done" | "current" | "upcoming";
  startedAt: string | null;
  /**
   * Start plus target days for a phase begun; for one to come, the target of
   * the phase before it (or now, if that is later) plus its own.
   */
  targetAt: string;
}

export interface Schedule {
  startedAt: string;
  /** The plan's start plus the cycle's target length. */
  cycleTargetAt: string;
  daysUsed: number;
  /** Days left to the cycle's target; negative once it has passed. */
  daysLeft: number;
  /** When the last phase would end on its targets from here. */
  projectedEndAt: string;
  /** The projected end is after the cycle's target. */
  beyondCycle: boolean;
  current: { id: string; targetAt: string; overdue: boolean };
  phases: PhaseSchedule[];
}

const DAY_MS = DAY * 1000;
const iso = (ms: number) => new Date(ms).toISOString();

/** Where a plan stands at `now` against its target dates. */
export function schedule(plan: PlanTimeline, now: Date): Schedule {
  const { phases, phaseStarts } = plan;
  if (phaseStarts.length === 0 || phaseStarts.length > phases.length) {
    throw new RangeError("a plan has begun between one and all of its phases");
  }
  const starts = phaseStarts.map((at) => Date.parse(at));
  if (starts.some((ms) => Number.isNaN(ms))) throw new RangeError("a phase start is not a date");
  const nowMs = now.getTime();
  const currentIndex = starts.length - 1;
  const out: PhaseSchedule[] = [];
  let previousTarget = 0;
  for (const [i, phase] of phases.entries()) {
    const length = phase.timing.targetDays * DAY_MS;
    const started = starts[i];
    let target: number;
    if (started !== undefined) target = started + length;
    else target = Math.max(previousTarget, nowMs) + length;
    out.push({
      id: phase.id,
      state: i < currentIndex ? "done" : i === currentIndex ? "current" : "upcoming",
      startedAt: started === undefined ? null : iso(started),
      targetAt: iso(target),
    });
    previousTarget = target;
  }
  const start = starts[0] as number;
  const cycleTarget = start + plan.cycleDays * DAY_MS;
  const current = out[currentIndex] as PhaseSchedule;
  const projectedEnd = Math.max(previousTarget, nowMs);
  return {
    startedAt: iso(start),
    cycleTargetAt: iso(cycleTarget),
    daysUsed: (nowMs - start) / DAY_MS,
    daysLeft: (cycleTarget - nowMs) / DAY_MS,
    projectedEndAt: iso(projectedEnd),
    beyondCycle: projectedEnd > cycleTarget,
    current: {
      id: current.id,
      targetAt: current.targetAt,
      overdue: nowMs > Date.parse(current.targetAt),
    },
    phases: out,
  };
}
