/**
 * A rollout plan's state and its transitions, as the model's rollout object
 * keeps them (durable-objects/model-rollout.ts). Pure: the object applies
 * what these functions return through its ordinary change path, so every
 * step waits out the leases on the state before it like any rollout change.
 *
 * The rollout each phase gives:
 * - `shadow`: the champion serves; the challenger runs as a shadow at the
 *   plan's shadow sample rate.
 * - canary steps: the champion serves; the challenger answers its share
 *   (its bucketing salt is kept from step to step, so a client on the canary
 *   stays on it as the share grows).
 * - `full` and `guard`: the challenger is champion; the previous champion
 *   stays live as a shadow (at the plan's guard sample rate), for an
 *   instant revert and continued comparison.
 * - completed: the challenger is champion, the previous champion's shadow
 *   is gone. Aborted or rolled back: the previous champion is champion
 *   again and the challenger has no share and no shadow.
 * Other shadows are left as they are.
 */
import type { RolloutConfig } from "../rollout/state";
import type { GateThresholds } from "./gates";
import type { PlanPhase } from "./phases";

export const PLAN_STATUSES = ["active", "paused", "completed", "aborted", "rolled_back"] as const;
export type PlanStatus = (typeof PLAN_STATUSES)[number];

/** A plan that still holds the challenger's authority in its hands. */
export const isOpen = (status: PlanStatus): boolean => status === "active" || status === "paused";

/** The KPIs a plan judges the canary by, and which way is better. */
export interface PlanKpi {
  name: string;
  higherIsBetter: boolean;
}

/** Where each phase reached began: when, and at which rollout state. */
export interface PhaseStart {
  phase: string;
  at: string;
  stateVersion: number;
}

/** Everything a plan is, as the rollout object stores it. */
export interface PlanState {
  id: string;
  model: string;
  challenger: string;
  /** The champion when the plan began: the previous champion once the challenger is. */
  champion: string;
  phases: PlanPhase[];
  thresholds: GateThresholds;
  cycleDays: number;
  shadowSampleRate: number;
  guardSampleRate: number;
  fairnessAttributes: string[];
  kpis: PlanKpi[];
  status: PlanStatus;
  phaseIndex: number;
  phaseStarts: PhaseStart[];
  /** Counts the plan's changes: its mirror in Postgres only ever moves forward. */
  revision: number;
  createdBy: string;
  createdAt: string;
  endedAt: string | null;
  /** Why it ended, in words (completed, aborted, rolled back). */
  endReason: string | null;
  /** The evaluation behind the last step, or null before the first. */
  lastEvaluationId: number | null;
}

/** The phase the plan is in now. */
export function currentPhase(plan: PlanState): PlanPhase {
  const phase = plan.phases[plan.phaseIndex];
  if (!phase) throw new RangeError(`plan ${plan.id} has no phase ${plan.phaseIndex}`);
  return phase;
}

/** When and at which state the current phase began. */
export function currentStart(plan: PlanState): PhaseStart {
  const start = plan.phaseStarts[plan.phaseIndex];
  if (!start) throw new RangeError(`plan ${plan.id} has no start for phase ${plan.phaseIndex}`);
  return start;
}

const withoutVersion = (rollout: RolloutConfig, version: string) =>
  rollout.shadows.filter((s) => s.version !== version);

/**
 * The rollout a plan gives in `phase`, from the rollout now (its other
 * shadows kept). The canary's salt is kept while the challenger stays the
 * canary; a new one is drawn by the rollout object otherwise (empty here).
 */
export function phaseRollout(
  plan: Pick<PlanState, "challenger" | "champion" | "shadowSampleRate" | "guardSampleRate">,
  phase: PlanPhase,
  current: RolloutConfig,
): RolloutConfig {
  const { challenger, champion } = plan;
  const others = withoutVersion(
    { ...current, shadows: withoutVersion(current, champion) },
    challenger,
  );
  switch (phase.kind) {
    case "shadow":
      return {
        champion,
        shadows: [...others, { version: challenger, sampleRate: plan.shadowSampleRate }],
        canary: null,
      };
    case "canary": {
      const salt = current.canary?.version === challenger ? current.canary.salt : "";
      return {
        champion,
        shadows: others,
        canary: { version: challenger, percent: phase.percent ?? 0, salt },
      };
    }
    case "full":
    case "guard":
      return {
        champion: challenger,
        shadows: [...others, { version: champion, sampleRate: plan.guardSampleRate }],
        canary: null,
      };
  }
}

/** The rollout a plan leaves when it completes: the challenger alone, without the old champion's shadow. */
export function completedRollout(plan: PlanState, current: RolloutConfig): RolloutConfig {
  return {
    champion: plan.challenger,
    shadows: withoutVersion(
      { ...current, shadows: withoutVersion(current, plan.champion) },
      plan.challenger,
    ),
    canary: null,
  };
}

/** The rollout a plan leaves when it is aborted or rolled back: the previous champion, as before the plan. */
export function withdrawnRollout(plan: PlanState, current: RolloutConfig): RolloutConfig {
  return {
    champion: plan.champion,
    shadows: withoutVersion(
      { ...current, shadows: withoutVersion(current, plan.champion) },
      plan.challenger,
    ),
    canary: null,
  };
}

/**
 * Whether a manual rollout change would take the plan's versions out of its
 * hands: any change of the champion, or of the challenger's canary or shadow.
 * Null when it leaves them alone; otherwise the reason, in words.
 */
export function manualChangeConflict(
  plan: PlanState,
  before: RolloutConfig,
  after: RolloutConfig,
): string | null {
  if (!isOpen(plan.status)) return null;
  const mine = (rollout: RolloutConfig) =>
    JSON.stringify({
      champion: rollout.champion,
      canary:
        rollout.canary && [plan.challenger, plan.champion].includes(rollout.canary.version)
          ? { version: rollout.canary.version, percent: rollout.canary.percent }
          : null,
      shadows: rollout.shadows
        .filter((s) => s.version === plan.challenger || s.version === plan.champion)
        .sort((a, b) => a.version.localeCompare(b.version)),
      otherCanary: rollout.canary !== null,
    });
  if (mine(before) === mine(after)) return null;
  return `plan ${plan.id} is ${plan.status === "paused" ? "paused with" : "taking"} ${plan.challenger} through its phases; it changes the champion, the canary and the shadows of ${plan.challenger} and ${plan.champion}. Abort the plan first (POST /admin/models/${plan.model}/plans/${plan.id}/abort)`;
}

/**
 * What an approval of a plan's step is bound to: the plan, its versions,
 * the phase and that phase's gates and thresholds. Newer evidence (later
 * windows) does not change it, so an approval stays valid while these stay
 * the same; the evidence the approvers saw is kept with the request.
 */
export function planApprovalBinding(plan: PlanState, phase: string) {
  return {
    plan: plan.id,
    challenger: plan.challenger,
    champion: plan.champion,
    phase,
    gates: [...(plan.phases.find((p) => p.id === phase)?.gates ?? [])],
    thresholds: plan.thresholds,
  };
}
