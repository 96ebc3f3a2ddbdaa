/**
 * An overdue phase raises an alert: each open plan is observed at every
 * model evaluation, violating while its current phase is past its target
 * date, clear otherwise (and once ended), so the alert resolves when the
 * plan moves on, ends, or its phase is given more time. One alert per plan
 * (rule `plan_overdue`, the challenger's version, the plan as dimension).
 */
import { fingerprintOf, type Observation } from "../alerts/evaluate";
import { schedule } from "./phases";
import { currentPhase, isOpen, type PlanState } from "./state";

export const PLAN_OVERDUE_RULE = "plan_overdue";

const DAY_MS = 86_400_000;
const show = (days: number) => String(Number(days.toFixed(days < 10 ? 1 : 0)));

export function planOverdueObservations(plans: readonly PlanState[], now: Date): Observation[] {
  return plans.map((plan) => {
    const phase = currentPhase(plan);
    const dates = schedule(
      {
        phases: plan.phases,
        cycleDays: plan.cycleDays,
        phaseStarts: plan.phaseStarts.map((start) => start.at),
      },
      now,
    );
    const target = Date.parse(dates.current.targetAt);
    const daysPast = (now.getTime() - target) / DAY_MS;
    const violating = isOpen(plan.status) && daysPast > 0;
    const summary = violating
      ? `plan ${plan.id} has kept ${plan.challenger} in ${phase.id} ${show(daysPast)} days past its target (${dates.current.targetAt}); ${dates.beyondCycle ? `it now ends after its ${plan.cycleDays}-day cycle (projected ${dates.projectedEndAt})` : `projected end ${dates.projectedEndAt}`}`
      : isOpen(plan.status)
        ? `plan ${plan.id} is in ${phase.id}, due by ${dates.current.targetAt}`
        : `plan ${plan.id} is ${plan.status}`;
    const value = Number(daysPast.toFixed(3));
    return {
      fingerprint: fingerprintOf(PLAN_OVERDUE_RULE, plan.model, plan.challenger, "", plan.id),
      severity: "warning",
      rule: PLAN_OVERDUE_RULE,
      model: plan.model,
      version: plan.challenger,
      role: "",
      metric: "plan_phase_days_past_target",
      dimension: plan.id,
      value,
      threshold: 0,
      comparison: "above",
      statistics: [
        {
          metric: "plan_phase_days_past_target",
          name: `days ${phase.id} is past its target`,
          value,
          threshold: 0,
          comparison: "above",
          violating,
        },
      ],
      windowSeconds: null,
      windowStart: null,
      summary,
      violating,
      forEvaluations: 1,
    };
  });
}
