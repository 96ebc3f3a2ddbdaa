/**
 * One phase of a rollout plan judged on its evidence: exactly the phase's
 * gates (shared/plans/phases.ts PHASE_GATES), each on the evidence of the
 * phase's own span (shared/plans/evidence.ts), plus the phase's minimums,
 * folded into advance, hold or wait by `phaseVerdict`.
 *
 * - `agreement` is judged as `mean_difference` for a regression model: the
 *   two are one gate in two forms.
 * - A gate that has nothing to judge because the plan names nothing for it
 *   is left out and listed in `skipped` with the reason: `fairness` when no
 *   fairness attribute is named, `kpi` when no KPI is named. Everything
 *   else runs, whatever the evidence holds.
 * - No evidence at all (the database did not answer) leaves every gate
 *   without input: insufficient evidence, never a pass.
 */
import type { PhaseEvidence, PlanTask } from "./evidence";
import {
  agreementGate,
  alertsGate,
  errorRateGate,
  fairnessGate,
  type GateName,
  type GateThresholds,
  type GateVerdict,
  kpiGate,
  latencyGate,
  meanDifferenceGate,
  type PhaseVerdict,
  phaseMinimumsGate,
  phaseVerdict,
  qualityGate,
} from "./gates";
import type { PlanPhase } from "./phases";

export interface EvaluateOptions {
  task: PlanTask;
  /** The plan's challenger version: the alerts that hold it are those on it. */
  challenger: string;
  fairnessAttributes: readonly string[];
  kpis: readonly { name: string; higherIsBetter: boolean }[];
}

/** A gate of the phase that was not run, and why. */
export interface SkippedGate {
  gate: GateName;
  reason: string;
}

export interface PhaseEvaluation extends PhaseVerdict {
  /** The phase's gates left out because the plan names nothing for them to judge. */
  skipped: SkippedGate[];
}

/** The gates `phase` runs for a plan of this task and these options, and those it leaves out. */
export function phaseGates(
  phase: PlanPhase,
  options: Pick<EvaluateOptions, "task" | "fairnessAttributes" | "kpis">,
): { gates: GateName[]; skipped: SkippedGate[] } {
  const gates: GateName[] = [];
  const skipped: SkippedGate[] = [];
  for (const gate of phase.gates) {
    if (gate === "fairness" && options.fairnessAttributes.length === 0)
      skipped.push({ gate, reason: "no fairness attribute is named in the plan" });
    else if (gate === "kpi" && options.kpis.length === 0)
      skipped.push({ gate, reason: "no business KPI is named in the plan" });
    else if (gate === "agreement" && options.task === "regression") gates.push("mean_difference");
    else gates.push(gate);
  }
  gates.push("phase_minimums");
  return { gates, skipped };
}

/** The verdict of `phase` on `evidence` (null: it could not be read). */
export function evaluatePhase(
  phase: PlanPhase,
  evidence: PhaseEvidence | null,
  thresholds: GateThresholds,
  options: EvaluateOptions,
): PhaseEvaluation {
  const { gates, skipped } = phaseGates(phase, options);
  const span = evidence?.span;
  const judge = (gate: GateName): GateVerdict => {
    switch (gate) {
      case "agreement":
        return agreementGate(
          evidence?.pairs.task === "classification"
            ? { pairs: evidence.pairs.sums, span: evidence.span }
            : null,
          thresholds,
        );
      case "mean_difference":
        return meanDifferenceGate(
          evidence?.pairs.task === "regression"
            ? { pairs: evidence.pairs.sums, span: evidence.span }
            : null,
          thresholds,
        );
      case "error_rate":
        return errorRateGate(evidence?.operations ?? null, thresholds);
      case "latency_p99":
        return latencyGate(evidence?.operations ?? null, thresholds);
      case "alerts":
        return alertsGate(
          { challenger: options.challenger, openAlerts: evidence?.openAlerts ?? null },
          thresholds,
        );
      case "quality":
        return qualityGate(
          evidence?.quality?.task === options.task ? evidence.quality : null,
          thresholds,
        );
      case "fairness":
        return fairnessGate(evidence && { attributes: evidence.fairness, span }, thresholds);
      case "kpi":
        return kpiGate(evidence && { kpis: evidence.kpis, span }, thresholds);
      case "phase_minimums":
        return phaseMinimumsGate(evidence?.progress ?? null, phase.timing);
    }
  };
  return { ...phaseVerdict(gates.map(judge)), skipped };
}
