/**
 * Rollout gates: the rules a plan uses to decide whether a challenger may
 * take its next step. Each gate is a pure function from evidence aggregated
 * over one phase's own span (only results served in that phase) to a
 * verdict, and `phaseVerdict` folds a phase's verdicts into one decision.
 *
 * Verdicts
 * - `pass`: the evidence is enough and meets the threshold.
 * - `fail`: the evidence is enough and breaks the threshold; the reason says
 *   by how much.
 * - `insufficient_evidence`: anything else. A metric that cannot be computed
 *   (null with its reason), fewer samples than the gate's minimum, or input
 *   that is missing (a job that did not run, a database that did not answer)
 *   is never a pass. The verdict says how many samples or labels are still
 *   needed and, from the rate observed over the span, when they should be
 *   there.
 * Every verdict carries a one-line reason in plain words and its evidence:
 * the numbers, the sample sizes, the thresholds and the span.
 *
 * The gates and their defaults (`DEFAULT_GATE_THRESHOLDS`, each overridable)
 * - `agreement` (classification): the share of paired requests on which the
 *   challenger gives the champion's label, at least 0.9 over at least 200
 *   pairs.
 * - `mean_difference` (regression): the challenger's mean shift from the
 *   champion, mean(challenger − champion), in units of the champion's
 *   standard deviation, at most 0.1 either way, over at least 200 pairs.
 * - `error_rate`: the challenger's error rate at most 0.01 above the
 *   champion's, with at least 100 results on each side.
 * - `latency_p99`: the challenger's p99 latency fails only when it is both
 *   more than 1.2 times the champion's and more than 20 ms above it, with at
 *   least 100 results on each side.
 * - `alerts`: no open alert of a drift or data-quality rule (drift,
 *   dataset_drift, psi, schema_rejection_rate, missing_rate) on the
 *   challenger version.
 * - `quality`: with at least 200 labels on each side, the challenger's
 *   accuracy (classification) at most 0.02 below the champion's, or its MAE
 *   (regression) at most 5% above the champion's.
 * - `fairness`: on each segment attribute, the challenger's disparate impact
 *   ratio at most 0.05 below the champion's and its equal-opportunity
 *   difference at most 0.05 above it (groups of at least 30). A disparate
 *   impact below 0.8 (the four-fifths rule) is a warning in the evidence,
 *   not a fail by itself. No attribute given is insufficient evidence.
 * - `kpi`: for each business KPI, non-inferiority at one-sided 95%
 *   confidence: the bound of the canary-minus-champion interval on the side
 *   of harm (the lower bound when higher is better) beyond minus the margin,
 *   5% of the champion's mean, with at least 100 outcomes on each side. The
 *   KPI fails when the whole interval is worse than the margin; in between
 *   it waits for more outcomes. No KPI given is insufficient evidence.
 * - `phase_minimums`: the phase's minimum dwell, requests and labels
 *   (shared/plans/phases.ts); never a fail, only a wait.
 *
 * A phase advances when every gate passes, holds with the failing reasons
 * when any fails, and otherwise waits with what is still needed.
 */
import { z } from "@hono/zod-openapi";
import {
  type ClassificationPairSums,
  type ConfusionCell,
  classificationFromConfusion,
  compareClassification,
  compareRegression,
  type FairnessReport,
  FOUR_FIFTHS,
  fairnessReport,
  type GroupCounts,
  type KpiSummary,
  kpiDifference,
  type Metric,
  type RegressionPairSums,
  type RegressionSums,
  regressionFromSums,
} from "../metrics";

export const GATE_NAMES = [
  "agreement",
  "mean_difference",
  "error_rate",
  "latency_p99",
  "alerts",
  "quality",
  "fairness",
  "kpi",
  "phase_minimums",
] as const;
export type GateName = (typeof GATE_NAMES)[number];

export type GateOutcome = "pass" | "fail" | "insufficient_evidence";

/** The stretch of time a gate's evidence covers (ISO 8601). */
export interface Span {
  start: string;
  end: string;
}

export interface GateEvidence {
  numbers: Record<string, number | null>;
  samples: Record<string, number>;
  thresholds: Record<string, number | string>;
  span?: Span;
  /** Why a number is null (a `MetricReason`), by the number's name. */
  missing?: Record<string, string>;
  /** Findings shown to people that do not decide the verdict. */
  warnings?: string[];
}

export interface GateNeeded {
  /** Samples or labels still needed, by what they count. */
  samples: Record<string, number>;
  /** When they should be there at the rate seen over the span; null when nothing arrives. */
  estimatedAt: string | null;
}

export interface GateVerdict {
  gate: GateName;
  verdict: GateOutcome;
  reason: string;
  evidence: GateEvidence;
  needed?: GateNeeded;
}

/** The default of every threshold and margin the gates use. */
export const DEFAULT_GATE_THRESHOLDS = {
  /** Agreement: the least share of paired requests with the champion's label. */
  minAgreement: 0.9,
  /** Agreement and mean difference: the fewest request pairs to judge by. */
  minPairs: 200,
  /** Mean difference: the largest |mean(challenger − champion)| in champion standard deviations. */
  maxStandardizedMeanDifference: 0.1,
  /** Error rate: the most the challenger's error rate may exceed the champion's (absolute). */
  maxErrorRateIncrease: 0.01,
  /** Latency: the challenger's p99 may be up to this multiple of the champion's… */
  maxP99LatencyRatio: 1.2,
  /** …or up to this many milliseconds above it: it fails only when it exceeds both. */
  p99LatencyToleranceMs: 20,
  /** Error rate and latency: the fewest results on each side. */
  minResults: 100,
  /** Alerts: the rules whose open alert on the challenger holds it (drift and data quality). */
  blockingAlertRules: ["drift", "dataset_drift", "psi", "schema_rejection_rate", "missing_rate"],
  /** Quality: the most the challenger's accuracy may fall below the champion's (absolute). */
  maxAccuracyDrop: 0.02,
  /** Quality: the most the challenger's MAE may exceed the champion's, as a share of it. */
  maxMaeIncrease: 0.05,
  /** Quality: the fewest labelled results on each side. */
  minLabels: 200,
  /** Fairness: the most the disparate impact ratio may fall below the champion's. */
  maxDisparateImpactDrop: 0.05,
  /** Fairness: the most the equal-opportunity difference may rise above the champion's. */
  maxEqualOpportunityIncrease: 0.05,
  /** Fairness: the fewest results in a group for it to count. */
  minGroupSize: 30,
  /** KPI: the non-inferiority margin, as a share of the champion's mean. */
  kpiMargin: 0.05,
  /** KPI: the one-sided confidence of the non-inferiority bound. */
  kpiConfidence: 0.95,
  /** KPI: the fewest outcomes on each side. */
  minKpiOutcomes: 100,
};
export type GateThresholds = typeof DEFAULT_GATE_THRESHOLDS;

const share = z.number().min(0).max(1);
const count = z.number().int().min(1).max(1_000_000_000);

/** A plan's changes to the defaults; every field may be left out. */
export const GateThresholdsBody = z
  .object({
    minAgreement: share,
    minPairs: count,
    maxStandardizedMeanDifference: z.number().min(0).max(10),
    maxErrorRateIncrease: share,
    maxP99LatencyRatio: z.number().min(1).max(100),
    p99LatencyToleranceMs: z.number().min(0).max(600_000),
    minResults: count,
    blockingAlertRules: z.array(z.string().min(1).max(64)).max(32),
    maxAccuracyDrop: share,
    maxMaeIncrease: z.number().min(0).max(10),
    minLabels: count,
    maxDisparateImpactDrop: share,
    maxEqualOpportunityIncrease: share,
    minGroupSize: count,
    kpiMargin: z.number().min(0).max(10),
    kpiConfidence: z.number().min(0.5).max(0.999),
    minKpiOutcomes: count,
  })
  .partial()
  .strict()
  .openapi("GateThresholds");
export type GateThresholdsBody = z.infer<typeof GateThresholdsBody>;

/** The defaults with a plan's overrides. */
export function resolveThresholds(overrides?: GateThresholdsBody | null): GateThresholds {
  const out = { ...DEFAULT_GATE_THRESHOLDS };
  for (const [key, value] of Object.entries(overrides ?? {})) {
    if (value !== undefined) (out as Record<string, unknown>)[key] = value;
  }
  return out;
}

// ---- helpers ----------------------------------------------------------------------------

/** A number as a reason shows it: at most four significant digits. */
const show = (value: number): string => String(Number(value.toPrecision(4)));
const percent = (value: number): string => `${show(value * 100)}%`;

function verdict(
  gate: GateName,
  outcome: GateOutcome,
  reason: string,
  evidence: GateEvidence,
  needed?: GateNeeded,
): GateVerdict {
  return needed
    ? { gate, verdict: outcome, reason, evidence, needed }
    : { gate, verdict: outcome, reason, evidence };
}

/** Input that never arrived: a job that did not run, a query that failed. */
function noInput(
  gate: GateName,
  what: string,
  thresholds: GateEvidence["thresholds"],
): GateVerdict {
  return verdict(gate, "insufficient_evidence", `no ${what} to judge by`, {
    numbers: {},
    samples: {},
    thresholds,
  });
}

/**
 * When `have` of each count reach `need`, at the rate each count grew over
 * the span; null when one of them is not growing (or the span is empty).
 */
export function estimateNeeded(
  have: Record<string, number>,
  need: Record<string, number>,
  span: Span | undefined,
): GateNeeded {
  const samples: Record<string, number> = {};
  for (const [name, n] of Object.entries(need)) {
    const short = Math.ceil(n - (have[name] ?? 0));
    if (short > 0) samples[name] = short;
  }
  if (!span) return { samples, estimatedAt: null };
  const start = Date.parse(span.start);
  const end = Date.parse(span.end);
  const elapsed = end - start;
  let latest = end;
  for (const [name, short] of Object.entries(samples)) {
    const rate = (have[name] ?? 0) / elapsed;
    if (!(elapsed > 0) || !(rate > 0)) return { samples, estimatedAt: null };
    latest = Math.max(latest, end + short / rate);
  }
  return { samples, estimatedAt: new Date(Math.ceil(latest)).toISOString() };
}

/** Insufficient evidence for want of samples, with what is needed and when. */
function tooFew(
  gate: GateName,
  have: Record<string, number>,
  need: Record<string, number>,
  evidence: GateEvidence,
): GateVerdict {
  const needed = estimateNeeded(have, need, evidence.span);
  const short = Object.entries(needed.samples)
    .map(([name, n]) => `${n} more ${name}`)
    .join(" and ");
  return verdict(gate, "insufficient_evidence", `needs ${short}`, evidence, needed);
}

/** Insufficient evidence because a metric has no value. */
function cannotCompute(
  gate: GateName,
  what: string,
  result: Metric,
  evidence: GateEvidence,
): GateVerdict {
  const reason = result.reason ?? "no_value";
  return verdict(gate, "insufficient_evidence", `${what} cannot be computed (${reason})`, {
    ...evidence,
    missing: { ...evidence.missing, [what]: reason },
  });
}

const withSpan = (evidence: GateEvidence, span: Span | undefined): GateEvidence =>
  span ? { ...evidence, span } : evidence;

// ---- agreement and mean difference ------------------------------------------------------

/** Classification: how often the challenger gives the champion's label on the same requests. */
export function agreementGate(
  input: { pairs: ClassificationPairSums; span?: Span } | null,
  t: GateThresholds = DEFAULT_GATE_THRESHOLDS,
): GateVerdict {
  const thresholds = { minAgreement: t.minAgreement, minPairs: t.minPairs };
  if (!input) return noInput("agreement", "request pairs", thresholds);
  const comparison = compareClassification(input.pairs);
  const rate = comparison.agreementRate;
  const evidence = withSpan(
    { numbers: { agreementRate: rate.value }, samples: { pairs: comparison.pairs }, thresholds },
    input.span,
  );
  if (comparison.pairs < t.minPairs)
    return tooFew("agreement", { pairs: comparison.pairs }, { pairs: t.minPairs }, evidence);
  if (rate.value === null) return cannotCompute("agreement", "agreementRate", rate, evidence);
  const line = `agrees with the champion on ${percent(rate.value)} of ${comparison.pairs} requests`;
  return rate.value >= t.minAgreement
    ? verdict("agreement", "pass", `${line} (at least ${percent(t.minAgreement)})`, evidence)
    : verdict("agreement", "fail", `${line}, below ${percent(t.minAgreement)}`, evidence);
}

/**
 * Regression: the challenger's mean shift from the champion, in standard
 * deviations of the champion's predictions (x in the pair sums).
 */
export function meanDifferenceGate(
  input: { pairs: RegressionPairSums; span?: Span } | null,
  t: GateThresholds = DEFAULT_GATE_THRESHOLDS,
): GateVerdict {
  const thresholds = {
    maxStandardizedMeanDifference: t.maxStandardizedMeanDifference,
    minPairs: t.minPairs,
  };
  if (!input) return noInput("mean_difference", "request pairs", thresholds);
  const { pairs } = input;
  const comparison = compareRegression(pairs);
  const n = comparison.n;
  const variance =
    n >= 2 ? Math.max(0, (pairs.sumXX - (pairs.sumX * pairs.sumX) / n) / (n - 1)) : null;
  const sd = variance === null ? null : Math.sqrt(variance);
  const difference = comparison.meanDifference.value;
  const standardized = difference !== null && sd !== null && sd > 0 ? difference / sd : null;
  const evidence = withSpan(
    {
      numbers: { meanDifference: difference, championStandardDeviation: sd, standardized },
      samples: { pairs: n },
      thresholds,
    },
    input.span,
  );
  if (n < t.minPairs)
    return tooFew("mean_difference", { pairs: n }, { pairs: t.minPairs }, evidence);
  if (difference === null)
    return cannotCompute("mean_difference", "meanDifference", comparison.meanDifference, evidence);
  if (standardized === null)
    return cannotCompute(
      "mean_difference",
      "championStandardDeviation",
      { value: null, reason: "zero_variance" },
      evidence,
    );
  const line = `predicts ${show(difference)} from the champion on average (${show(standardized)} standard deviations)`;
  return Math.abs(standardized) <= t.maxStandardizedMeanDifference
    ? verdict(
        "mean_difference",
        "pass",
        `${line}, within ${show(t.maxStandardizedMeanDifference)}`,
        evidence,
      )
    : verdict(
        "mean_difference",
        "fail",
        `${line}, beyond ${show(t.maxStandardizedMeanDifference)}`,
        evidence,
      );
}

// ---- operations -------------------------------------------------------------------------

/** One side's results over the span: how many, how many failed, and the p99 latency. */
export interface OperationsSide {
  results: number;
  errors: number;
  /** Null when the side has no latency to report. */
  p99LatencyMs: number | null;
}

export interface OperationsInput {
  champion: OperationsSide;
  challenger: OperationsSide;
  span?: Span;
}

function assertSide(side: OperationsSide): void {
  if (!Number.isInteger(side.results) || side.results < 0)
    throw new RangeError("results must be an integer >= 0");
  if (!Number.isInteger(side.errors) || side.errors < 0 || side.errors > side.results)
    throw new RangeError("errors must be an integer between 0 and results");
}

/** The challenger's error rate against the champion's. */
export function errorRateGate(
  input: OperationsInput | null,
  t: GateThresholds = DEFAULT_GATE_THRESHOLDS,
): GateVerdict {
  const thresholds = { maxErrorRateIncrease: t.maxErrorRateIncrease, minResults: t.minResults };
  if (!input) return noInput("error_rate", "results", thresholds);
  assertSide(input.champion);
  assertSide(input.challenger);
  const rate = (side: OperationsSide) => (side.results > 0 ? side.errors / side.results : null);
  const champion = rate(input.champion);
  const challenger = rate(input.challenger);
  const increase = champion !== null && challenger !== null ? challenger - champion : null;
  const samples = {
    challengerResults: input.challenger.results,
    championResults: input.champion.results,
  };
  const evidence = withSpan(
    {
      numbers: { challengerErrorRate: challenger, championErrorRate: champion, increase },
      samples,
      thresholds,
    },
    input.span,
  );
  if (samples.challengerResults < t.minResults || samples.championResults < t.minResults)
    return tooFew(
      "error_rate",
      samples,
      { challengerResults: t.minResults, championResults: t.minResults },
      evidence,
    );
  const c = challenger as number;
  const line = `error rate ${percent(c)} against the champion's ${percent(champion as number)}`;
  // Rates are ratios of counts: compare in a way that an exact boundary is not lost to rounding.
  return (increase as number) <= t.maxErrorRateIncrease + 1e-12
    ? verdict(
        "error_rate",
        "pass",
        `${line} (at most ${percent(t.maxErrorRateIncrease)} more)`,
        evidence,
      )
    : verdict(
        "error_rate",
        "fail",
        `${line}, more than ${percent(t.maxErrorRateIncrease)} above it`,
        evidence,
      );
}

/** The challenger's p99 latency against the champion's. */
export function latencyGate(
  input: OperationsInput | null,
  t: GateThresholds = DEFAULT_GATE_THRESHOLDS,
): GateVerdict {
  const thresholds = {
    maxP99LatencyRatio: t.maxP99LatencyRatio,
    p99LatencyToleranceMs: t.p99LatencyToleranceMs,
    minResults: t.minResults,
  };
  if (!input) return noInput("latency_p99", "results", thresholds);
  assertSide(input.champion);
  assertSide(input.challenger);
  const champion = input.champion.p99LatencyMs;
  const challenger = input.challenger.p99LatencyMs;
  const ratio =
    champion !== null && challenger !== null && champion > 0 ? challenger / champion : null;
  const samples = {
    challengerResults: input.challenger.results,
    championResults: input.champion.results,
  };
  const evidence = withSpan(
    {
      numbers: { challengerP99Ms: challenger, championP99Ms: champion, ratio },
      samples,
      thresholds,
    },
    input.span,
  );
  if (samples.challengerResults < t.minResults || samples.championResults < t.minResults)
    return tooFew(
      "latency_p99",
      samples,
      { challengerResults: t.minResults, championResults: t.minResults },
      evidence,
    );
  if (champion === null || challenger === null)
    return cannotCompute(
      "latency_p99",
      champion === null ? "championP99Ms" : "challengerP99Ms",
      { value: null, reason: "no_observations" },
      evidence,
    );
  const line = `p99 latency ${show(challenger)} ms against the champion's ${show(champion)} ms`;
  const slower =
    challenger > champion * t.maxP99LatencyRatio && challenger - champion > t.p99LatencyToleranceMs;
  return slower
    ? verdict(
        "latency_p99",
        "fail",
        `${line}: more than ${show(t.maxP99LatencyRatio)} times and ${show(t.p99LatencyToleranceMs)} ms slower`,
        evidence,
      )
    : verdict(
        "latency_p99",
        "pass",
        `${line}, within ${show(t.maxP99LatencyRatio)} times or ${show(t.p99LatencyToleranceMs)} ms`,
        evidence,
      );
}

// ---- alerts -----------------------------------------------------------------------------

/** An open alert as the gate reads it (shared/alerts/types.ts). */
export interface OpenAlert {
  id: number;
  rule: string;
  version: string;
  severity: "warning" | "critical";
  summary: string;
}

/** No open drift or data-quality alert on the challenger; null alerts: they could not be read. */
export function alertsGate(
  input: { challenger: string; openAlerts: readonly OpenAlert[] | null },
  t: GateThresholds = DEFAULT_GATE_THRESHOLDS,
): GateVerdict {
  const thresholds = { blockingAlertRules: t.blockingAlertRules.join(", ") };
  if (input.openAlerts === null) return noInput("alerts", "list of open alerts", thresholds);
  const blocking = input.openAlerts.filter(
    (alert) => alert.version === input.challenger && t.blockingAlertRules.includes(alert.rule),
  );
  const evidence: GateEvidence = {
    numbers: { blockingAlerts: blocking.length },
    samples: { openAlerts: input.openAlerts.length },
    thresholds,
  };
  if (blocking.length === 0)
    return verdict(
      "alerts",
      "pass",
      `no open drift or data-quality alert on ${input.challenger}`,
      evidence,
    );
  const first = blocking[0] as OpenAlert;
  const more = blocking.length > 1 ? ` (and ${blocking.length - 1} more)` : "";
  return verdict(
    "alerts",
    "fail",
    `open ${first.rule} alert on ${input.challenger}: ${first.summary}${more}`,
    { ...evidence, warnings: blocking.map((alert) => `alert ${alert.id}: ${alert.summary}`) },
  );
}

// ---- quality ----------------------------------------------------------------------------

export type QualityInput =
  | {
      task: "classification";
      champion: readonly ConfusionCell[];
      challenger: readonly ConfusionCell[];
      span?: Span;
    }
  | { task: "regression"; champion: RegressionSums; challenger: RegressionSums; span?: Span };

/** Quality from labels: the challenger not worse than the champion by more than the margin. */
export function qualityGate(
  input: QualityInput | null,
  t: GateThresholds = DEFAULT_GATE_THRESHOLDS,
): GateVerdict {
  if (!input || input.task === "classification") {
    const thresholds = { maxAccuracyDrop: t.maxAccuracyDrop, minLabels: t.minLabels };
    if (!input) return noInput("quality", "labelled results", thresholds);
    const champion = classificationFromConfusion(input.champion);
    const challenger = classificationFromConfusion(input.challenger);
    const drop =
      champion.accuracy.value !== null && challenger.accuracy.value !== null
        ? champion.accuracy.value - challenger.accuracy.value
        : null;
    return judgeQuality(
      {
        name: "accuracy",
        champion: champion.accuracy,
        challenger: challenger.accuracy,
        worse: drop,
        allowed: t.maxAccuracyDrop,
        championLabels: champion.n,
        challengerLabels: challenger.n,
        line: (c, ch) => `accuracy ${percent(c)} against the champion's ${percent(ch)}`,
        limit: `${percent(t.maxAccuracyDrop)} below it`,
      },
      thresholds,
      input.span,
      t,
    );
  }
  const thresholds = { maxMaeIncrease: t.maxMaeIncrease, minLabels: t.minLabels };
  const champion = regressionFromSums(input.champion);
  const challenger = regressionFromSums(input.challenger);
  const c = champion.mae.value;
  const ch = challenger.mae.value;
  // Relative to the champion's error; a perfect champion allows no increase.
  const worse = c !== null && ch !== null ? (c > 0 ? ch / c - 1 : ch > 0 ? Infinity : 0) : null;
  return judgeQuality(
    {
      name: "mae",
      champion: champion.mae,
      challenger: challenger.mae,
      worse,
      allowed: t.maxMaeIncrease,
      championLabels: champion.n,
      challengerLabels: challenger.n,
      line: (a, b) => `MAE ${show(a)} against the champion's ${show(b)}`,
      limit: `${percent(t.maxMaeIncrease)} above it`,
    },
    thresholds,
    input.span,
    t,
  );
}

function judgeQuality(
  q: {
    name: string;
    champion: Metric;
    challenger: Metric;
    /** How much worse the challenger is, in the margin's unit (negative when better). */
    worse: number | null;
    allowed: number;
    championLabels: number;
    challengerLabels: number;
    line: (challenger: number, champion: number) => string;
    limit: string;
  },
  thresholds: GateEvidence["thresholds"],
  span: Span | undefined,
  t: GateThresholds,
): GateVerdict {
  const samples = { challengerLabels: q.challengerLabels, championLabels: q.championLabels };
  const evidence = withSpan(
    {
      numbers: {
        [`challenger_${q.name}`]: q.challenger.value,
        [`champion_${q.name}`]: q.champion.value,
        worse: q.worse === Infinity ? null : q.worse,
      },
      samples,
      thresholds,
    },
    span,
  );
  if (q.challengerLabels < t.minLabels || q.championLabels < t.minLabels)
    return tooFew(
      "quality",
      samples,
      { challengerLabels: t.minLabels, championLabels: t.minLabels },
      evidence,
    );
  if (q.challenger.value === null)
    return cannotCompute("quality", `challenger_${q.name}`, q.challenger, evidence);
  if (q.champion.value === null)
    return cannotCompute("quality", `champion_${q.name}`, q.champion, evidence);
  const line = q.line(q.challenger.value, q.champion.value);
  return (q.worse as number) <= q.allowed + 1e-12
    ? verdict("quality", "pass", `${line}, not more than ${q.limit}`, evidence)
    : verdict("quality", "fail", `${line}, more than ${q.limit}`, evidence);
}

// ---- fairness ---------------------------------------------------------------------------

/** One segment attribute's groups, for each side, over the phase's labelled results. */
export interface FairnessAttributeInput {
  attribute: string;
  champion: readonly GroupCounts[];
  challenger: readonly GroupCounts[];
}

/**
 * On every attribute: disparate impact not below the champion's by more than
 * the margin, equal-opportunity difference not above it by more than the
 * margin. Any attribute failing fails; otherwise any that cannot be judged
 * leaves the gate without enough evidence.
 */
export function fairnessGate(
  input: { attributes: readonly FairnessAttributeInput[]; span?: Span } | null,
  t: GateThresholds = DEFAULT_GATE_THRESHOLDS,
): GateVerdict {
  const thresholds = {
    maxDisparateImpactDrop: t.maxDisparateImpactDrop,
    maxEqualOpportunityIncrease: t.maxEqualOpportunityIncrease,
    minGroupSize: t.minGroupSize,
    fourFifths: FOUR_FIFTHS,
  };
  if (!input || input.attributes.length === 0)
    return noInput("fairness", "segment attribute", thresholds);
  const numbers: Record<string, number | null> = {};
  const samples: Record<string, number> = {};
  const missing: Record<string, string> = {};
  const warnings: string[] = [];
  const failures: string[] = [];
  const unknown: string[] = [];
  for (const { attribute, champion, challenger } of input.attributes) {
    const options = { minGroupSize: t.minGroupSize };
    const before = fairnessReport(champion, options);
    const after = fairnessReport(challenger, options);
    const di = [after.disparateImpactRatio, before.disparateImpactRatio] as const;
    const eo = [after.equalOpportunityDifference, before.equalOpportunityDifference] as const;
    numbers[`${attribute}.challengerDisparateImpact`] = di[0].value;
    numbers[`${attribute}.championDisparateImpact`] = di[1].value;
    numbers[`${attribute}.challengerEqualOpportunityDifference`] = eo[0].value;
    numbers[`${attribute}.championEqualOpportunityDifference`] = eo[1].value;
    samples[`${attribute}.challengerEligibleGroups`] = eligible(after);
    samples[`${attribute}.championEligibleGroups`] = eligible(before);
    if (di[0].value !== null && di[0].value < FOUR_FIFTHS)
      warnings.push(
        `${attribute}: the challenger's disparate impact ${show(di[0].value)} is below the four-fifths rule's ${FOUR_FIFTHS}`,
      );
    const names = [
      ["challengerDisparateImpact", di[0]],
      ["championDisparateImpact", di[1]],
      ["challengerEqualOpportunityDifference", eo[0]],
      ["championEqualOpportunityDifference", eo[1]],
    ] as const;
    const absent = names.filter(([, m]) => m.value === null);
    for (const [name, m] of absent) missing[`${attribute}.${name}`] = m.reason ?? "no_value";
    if (di[0].value !== null && di[1].value !== null) {
      const drop = di[1].value - di[0].value;
      if (drop > t.maxDisparateImpactDrop + 1e-12)
        failures.push(
          `${attribute}: disparate impact ${show(di[0].value)} against the champion's ${show(di[1].value)}, more than ${show(t.maxDisparateImpactDrop)} below it`,
        );
    }
    if (eo[0].value !== null && eo[1].value !== null) {
      const rise = eo[0].value - eo[1].value;
      if (rise > t.maxEqualOpportunityIncrease + 1e-12)
        failures.push(
          `${attribute}: equal-opportunity difference ${show(eo[0].value)} against the champion's ${show(eo[1].value)}, more than ${show(t.maxEqualOpportunityIncrease)} above it`,
        );
    }
    if (absent.length > 0) unknown.push(`${attribute} (${absent[0]?.[1].reason})`);
  }
  const evidence = withSpan(
    {
      numbers,
      samples,
      thresholds,
      ...(Object.keys(missing).length > 0 ? { missing } : {}),
      ...(warnings.length > 0 ? { warnings } : {}),
    },
    input.span,
  );
  if (failures.length > 0)
    return verdict(
      "fairness",
      "fail",
      failures.length > 1
        ? `${failures[0]} (and ${failures.length - 1} more)`
        : (failures[0] as string),
      evidence,
    );
  if (unknown.length > 0)
    return verdict(
      "fairness",
      "insufficient_evidence",
      `fairness cannot be computed on ${unknown.join(", ")}: groups of at least ${t.minGroupSize} with positives are needed`,
      evidence,
      { samples: { groupSize: t.minGroupSize }, estimatedAt: null },
    );
  const attributes = input.attributes.map((a) => a.attribute).join(", ");
  return verdict(
    "fairness",
    "pass",
    `no worse than the champion on ${attributes} by more than the margins`,
    evidence,
  );
}

const eligible = (report: FairnessReport) => report.groups.filter((g) => !g.tooSmall).length;

// ---- KPI --------------------------------------------------------------------------------

export interface KpiInput {
  name: string;
  /** Whether a larger value is the better one (conversion) or the worse (handling time). */
  higherIsBetter: boolean;
  canary: KpiSummary;
  champion: KpiSummary;
}

/**
 * Non-inferiority of each KPI: with d = canary − champion and the margin m =
 * kpiMargin · |champion mean|, the one-sided bound of d on the side of harm
 * (the lower bound when higher is better, from the two-sided interval at
 * confidence 1 − 2(1 − kpiConfidence)) must lie beyond −m (below +m when
 * lower is better). The KPI fails when even the other bound is worse than
 * the margin; between the two it waits, and the outcomes it needs are
 * estimated from how the interval narrows, as 1/√n.
 */
export function kpiGate(
  input: { kpis: readonly KpiInput[]; span?: Span } | null,
  t: GateThresholds = DEFAULT_GATE_THRESHOLDS,
): GateVerdict {
  const thresholds = {
    kpiMargin: t.kpiMargin,
    kpiConfidence: t.kpiConfidence,
    minKpiOutcomes: t.minKpiOutcomes,
  };
  if (!input || input.kpis.length === 0) return noInput("kpi", "business KPI", thresholds);
  const confidence = 1 - 2 * (1 - t.kpiConfidence);
  const numbers: Record<string, number | null> = {};
  const samples: Record<string, number> = {};
  const missing: Record<string, string> = {};
  const failures: string[] = [];
  const passes: string[] = [];
  const waiting: string[] = [];
  const have: Record<string, number> = {};
  const need: Record<string, number> = {};
  for (const kpi of input.kpis) {
    const { name } = kpi;
    samples[`${name}.canary`] = kpi.canary.n;
    samples[`${name}.champion`] = kpi.champion.n;
    const championMean = kpi.champion.n > 0 ? kpi.champion.sum / kpi.champion.n : null;
    const margin = championMean === null ? null : t.kpiMargin * Math.abs(championMean);
    numbers[`${name}.margin`] = margin;
    if (kpi.canary.n < t.minKpiOutcomes || kpi.champion.n < t.minKpiOutcomes) {
      have[`${name} canary outcomes`] = kpi.canary.n;
      have[`${name} champion outcomes`] = kpi.champion.n;
      need[`${name} canary outcomes`] = t.minKpiOutcomes;
      need[`${name} champion outcomes`] = t.minKpiOutcomes;
      waiting.push(`${name} has too few outcomes`);
      continue;
    }
    const { interval } = kpiDifference(kpi.canary, kpi.champion, confidence);
    numbers[`${name}.difference`] = interval.estimate;
    numbers[`${name}.lower`] = interval.lower;
    numbers[`${name}.upper`] = interval.upper;
    if (interval.estimate === null || margin === null) {
      missing[`${name}.difference`] = interval.reason ?? "no_predictions";
      waiting.push(`${name}'s difference cannot be computed (${interval.reason})`);
      continue;
    }
    // Turn "lower is better" round, so that larger is better from here on.
    const sign = kpi.higherIsBetter ? 1 : -1;
    const harmBound = Math.min(sign * interval.lower, sign * interval.upper);
    const otherBound = Math.max(sign * interval.lower, sign * interval.upper);
    const line = `${name} differs by ${show(interval.estimate)} (bounds ${show(interval.lower)} to ${show(interval.upper)}), margin ${show(margin)}`;
    if (harmBound > -margin) passes.push(line);
    else if (otherBound < -margin) failures.push(`${line}: worse than the margin`);
    else {
      // The half-width shrinks as 1/√n: the outcomes at which the bound
      // would clear the margin if the estimate held.
      const estimate = sign * interval.estimate;
      const half = estimate - harmBound;
      const room = estimate + margin;
      waiting.push(`${line}: not yet shown within the margin`);
      if (room > 0) {
        const factor = (half / room) ** 2;
        have[`${name} canary outcomes`] = kpi.canary.n;
        have[`${name} champion outcomes`] = kpi.champion.n;
        need[`${name} canary outcomes`] = Math.ceil(kpi.canary.n * factor);
        need[`${name} champion outcomes`] = Math.ceil(kpi.champion.n * factor);
      }
    }
  }
  const evidence = withSpan(
    { numbers, samples, thresholds, ...(Object.keys(missing).length > 0 ? { missing } : {}) },
    input.span,
  );
  if (failures.length > 0)
    return verdict(
      "kpi",
      "fail",
      failures.length > 1
        ? `${failures[0]} (and ${failures.length - 1} more)`
        : (failures[0] as string),
      evidence,
    );
  if (waiting.length > 0)
    return verdict(
      "kpi",
      "insufficient_evidence",
      waiting.join("; "),
      evidence,
      estimateNeeded(have, need, input.span),
    );
  return verdict("kpi", "pass", passes.join("; "), evidence);
}

// ---- phase minimums and the phase's verdict ---------------------------------------------

/** What a phase has gathered against its minimums (shared/plans/phases.ts). */
export interface PhaseProgress {
  /** Seconds since the phase began. */
  dwellSeconds: number;
  requests: number;
  /** Labels for results served in the phase. */
  labels: number;
  span: Span;
}

/** The phase's own minimums: met, or a wait for what is missing. Never a fail. */
export function phaseMinimumsGate(
  progress: PhaseProgress | null,
  minimums: { minDwellSeconds: number; minRequests: number; minLabels: number | null },
): GateVerdict {
  const thresholds: Record<string, number> = {
    minDwellSeconds: minimums.minDwellSeconds,
    minRequests: minimums.minRequests,
  };
  if (minimums.minLabels !== null) thresholds.minLabels = minimums.minLabels;
  if (!progress) return noInput("phase_minimums", "progress of the phase", thresholds);
  const samples: Record<string, number> = { requests: progress.requests };
  if (minimums.minLabels !== null) samples.labels = progress.labels;
  const evidence: GateEvidence = {
    numbers: { dwellSeconds: progress.dwellSeconds },
    samples,
    thresholds,
    span: progress.span,
  };
  const need: Record<string, number> = { requests: minimums.minRequests };
  if (minimums.minLabels !== null) need.labels = minimums.minLabels;
  const needed = estimateNeeded(samples, need, progress.span);
  const dwellLeft = minimums.minDwellSeconds - progress.dwellSeconds;
  if (dwellLeft <= 0 && Object.keys(needed.samples).length === 0)
    return verdict(
      "phase_minimums",
      "pass",
      "the phase's minimum dwell, requests and labels are met",
      evidence,
    );
  const parts = Object.entries(needed.samples).map(([name, n]) => `${n} more ${name}`);
  if (dwellLeft > 0) {
    parts.unshift(`${Math.ceil(dwellLeft)} more seconds in the phase`);
    const dwellEnd = Date.parse(progress.span.end) + dwellLeft * 1000;
    if (needed.estimatedAt !== null || Object.keys(needed.samples).length === 0)
      needed.estimatedAt = new Date(
        Math.max(dwellEnd, needed.estimatedAt ? Date.parse(needed.estimatedAt) : 0),
      ).toISOString();
  }
  return verdict(
    "phase_minimums",
    "insufficient_evidence",
    `needs ${parts.join(" and ")}`,
    evidence,
    needed,
  );
}

export interface PhaseVerdict {
  verdict: "advance" | "hold" | "insufficient_evidence";
  /** The failing gates' reasons (hold), the waiting gates' (insufficient evidence), or none. */
  reasons: string[];
  /** Per waiting gate, what it still needs; and the latest estimate, null if any is unknown. */
  needed?: { gates: Partial<Record<GateName, GateNeeded>>; estimatedAt: string | null };
  gates: GateVerdict[];
}

/** Every gate passes: advance; any fails: hold; otherwise wait for what is still needed. */
export function phaseVerdict(gates: readonly GateVerdict[]): PhaseVerdict {
  const all = [...gates];
  if (all.length === 0)
    return { verdict: "insufficient_evidence", reasons: ["no gate was evaluated"], gates: all };
  const failing = all.filter((g) => g.verdict === "fail");
  if (failing.length > 0)
    return { verdict: "hold", reasons: failing.map((g) => `${g.gate}: ${g.reason}`), gates: all };
  const waiting = all.filter((g) => g.verdict === "insufficient_evidence");
  if (waiting.length === 0) return { verdict: "advance", reasons: [], gates: all };
  const needed: Partial<Record<GateName, GateNeeded>> = {};
  let estimatedAt: string | null = "";
  for (const gate of waiting) {
    if (gate.needed) needed[gate.gate] = gate.needed;
    const at = gate.needed?.estimatedAt ?? null;
    if (at === null || estimatedAt === null) estimatedAt = null;
    else if (at > estimatedAt) estimatedAt = at;
  }
  return {
    verdict: "insufficient_evidence",
    reasons: waiting.map((g) => `${g.gate}: ${g.reason}`),
    needed: { gates: needed, estimatedAt },
    gates: all,
  };
}
