/**
 * The evidence of one rollout phase, as the gates read it
 * (shared/plans/gates.ts): everything counted over the phase's own span,
 * only results served in the phase. functions/plans/evidence.ts reads it
 * from Postgres; shared/plans/evaluate.ts judges it. Pure types, so that a
 * phase can be judged without bindings.
 *
 * Who is compared with whom depends on the kind of phase:
 * - shadow: the challenger answers no one. Pairs and operations: the
 *   challenger's `shadow` results against the champion's `served` answers
 *   to the same requests. No labels or KPIs count as the phase's.
 * - canary: pairs are the challenger's `canary` answers against the
 *   champion's `control` results for the same requests (computed in the
 *   background, never returned); operations, quality, fairness and KPIs
 *   compare the canary's population with the champion's (`served`).
 * - full and guard: the challenger is champion (`served`) and the previous
 *   champion runs in shadow (`shadow`); every comparison is the one against
 *   the other. No KPIs: there is no canary population.
 */
import type { ClassificationPairSums, RegressionPairSums } from "../metrics";
import type {
  FairnessAttributeInput,
  KpiInput,
  OpenAlert,
  OperationsInput,
  PhaseProgress,
  QualityInput,
  Span,
} from "./gates";
import type { PhaseKind } from "./phases";

export type PlanTask = "classification" | "regression";

/** What a phase's evidence is read for: the plan's model and versions, and where the phase began. */
export interface PhaseQuery {
  model: string;
  task: PlanTask;
  /** The model's positive class; fairness needs one. */
  positiveClass: string | null;
  kind: PhaseKind;
  /** The plan's challenger version. */
  challenger: string;
  /** The plan's champion; in full and guard, the previous champion, now in shadow. */
  champion: string;
  /** The rollout state the phase began at: only results with state_version >= this count. */
  fromStateVersion: number;
  /** The phase's start to now: the results' created_at range. */
  span: { start: Date; end: Date };
  /** Request attributes to judge fairness on. */
  fairnessAttributes: readonly string[];
  kpis: readonly { name: string; higherIsBetter: boolean }[];
}

/** Pair sums of the task's kind: agreement for classification, mean difference for regression. */
export type PhasePairs =
  | { task: "classification"; sums: ClassificationPairSums }
  | { task: "regression"; sums: RegressionPairSums };

export interface PhaseEvidence {
  span: Span;
  progress: PhaseProgress;
  /** The challenger's results paired with the champion's for the same requests. */
  pairs: PhasePairs;
  operations: OperationsInput;
  /**
   * The model's open (pending or firing) alerts; null when the monitoring
   * job has not covered the span's end (less two windows), so that a job
   * that did not run is never taken for "no alert".
   */
  openAlerts: OpenAlert[] | null;
  /** Labelled results of each side; null in shadow, whose results are not served. */
  quality: QualityInput | null;
  /** Per named attribute, each side's groups; empty in shadow. */
  fairness: FairnessAttributeInput[];
  /** Per named KPI, each side's outcomes; empty except in a canary phase. */
  kpis: KpiInput[];
}
