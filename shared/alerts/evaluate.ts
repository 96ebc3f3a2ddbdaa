/**
 * Rules against monitoring results: every (rule, model, version, role,
 * dimension) the latest windows say something about becomes an observation,
 * violating or not. A result without a value, an `unknown` status, or too
 * little data (`insufficient_data`) says nothing: it neither opens nor
 * clears an alert (no data is never a pass); `insufficientEvidence` counts
 * what the rules could not judge.
 */
import type { AlertRule, ResolvedRules } from "./rules";
import {
  describeStatistics,
  formatNumber,
  leadingStatistic,
  P_VALUE_METHODS,
  statisticName,
} from "./statistics";
import type { AlertCondition, AlertStatistic } from "./types";

/** A monitoring result, as evaluation needs it. */
export interface ResultRow {
  model: string;
  version: string;
  role: string;
  windowSeconds: number;
  windowStart: string;
  metric: string;
  dimension: string;
  value: number | null;
  status: string;
  details: Record<string, unknown>;
}

/** What one evaluation says about one condition. */
export interface Observation extends AlertCondition {
  /** rule, model, version, role and dimension: one alert at most is open per fingerprint. */
  fingerprint: string;
  violating: boolean;
  /** Consecutive violating evaluations before the alert fires (the rule's `forEvaluations`). */
  forEvaluations: number;
}

export const fingerprintOf = (
  rule: string,
  model: string,
  version: string,
  role: string,
  dimension: string,
) => [rule, model, version, role, dimension].map((part) => part.replaceAll("|", "||")).join("|");

function where(row: ResultRow): string {
  const subject = row.version ? `${row.model} ${row.version} (${row.role})` : row.model;
  return row.dimension ? `${subject}, ${row.dimension}` : subject;
}

function observe(
  name: string,
  rule: AlertRule,
  row: ResultRow,
  fields: Pick<Observation, "value" | "threshold" | "comparison" | "violating" | "summary">,
  dimension = row.dimension,
): Observation {
  const statistic: AlertStatistic = {
    metric: row.metric,
    name: statisticName(row.metric, row.details),
    value: fields.value,
    threshold: fields.threshold,
    comparison: fields.comparison,
    violating: fields.violating,
  };
  return {
    statistics: [statistic],
    fingerprint: fingerprintOf(name, row.model, row.version, row.role, dimension),
    rule: name,
    severity: rule.severity,
    model: row.model,
    version: row.version,
    role: row.role,
    metric: row.metric,
    dimension,
    windowSeconds: row.windowSeconds,
    windowStart: row.windowStart,
    forEvaluations: rule.forEvaluations,
    ...fields,
  };
}

function thresholdObservations(name: string, rule: AlertRule, rows: ResultRow[]): Observation[] {
  if (rule.kind !== "threshold" && rule.kind !== "status") return [];
  const out: Observation[] = [];
  for (const row of rows) {
    if (row.metric !== rule.metric || row.windowSeconds !== rule.windowSeconds) continue;
    if (row.status === "insufficient_data") continue;
    // The control (the champion's answers to the canary's requests) is a
    // yardstick, not a population anyone is served from: only when named.
    if (rule.roles ? !rule.roles.includes(row.role) : row.role === "control") continue;
    if (rule.kind === "threshold") {
      if (row.value === null) continue;
      const violating =
        rule.comparison === "above" ? row.value > rule.threshold : row.value < rule.threshold;
      const statistic = {
        name: statisticName(row.metric, row.details),
        value: row.value,
        threshold: rule.threshold,
        comparison: rule.comparison,
        violating,
      };
      out.push(
        observe(name, rule, row, {
          value: row.value,
          threshold: rule.threshold,
          comparison: rule.comparison,
          violating,
          summary: violating
            ? `${row.metric} of ${where(row)}: ${describeStatistics([{ metric: row.metric, ...statistic }])}`
            : `${row.metric} of ${where(row)} is within bounds: ${describeStatistics([{ metric: row.metric, ...statistic }])}`,
        }),
      );
    } else {
      if (row.status !== "alert" && row.status !== "ok") continue;
      const method = typeof row.details.method === "string" ? row.details.method : null;
      const threshold = typeof row.details.threshold === "number" ? row.details.threshold : null;
      const comparison = method && P_VALUE_METHODS.has(method) ? "below" : "above";
      const violating = row.status === "alert";
      const stat = describeStatistics([
        {
          metric: row.metric,
          name: statisticName(row.metric, row.details),
          value: row.value,
          threshold,
          comparison,
          violating,
        },
      ]);
      out.push(
        observe(name, rule, row, {
          value: row.value,
          threshold,
          comparison,
          violating,
          summary: violating
            ? `${row.metric} of ${where(row)}: ${stat}`
            : `${row.metric} of ${where(row)} is within bounds: ${stat}`,
        }),
      );
    }
  }
  return out;
}

function labelled(row: ResultRow): number {
  const n = row.details.n;
  return typeof n === "number" ? n : 0;
}

/** Challengers against the champion on the same requests (control) or the same window (served). */
function championObservations(name: string, rule: AlertRule, rows: ResultRow[]): Observation[] {
  if (rule.kind !== "champion") return [];
  const out: Observation[] = [];
  const metrics = new Set([...rule.metrics, ...rule.lowerIsBetter]);
  const inWindow = rows.filter(
    (r) =>
      r.windowSeconds === rule.windowSeconds &&
      metrics.has(r.metric) &&
      r.value !== null &&
      r.status !== "insufficient_data",
  );
  for (const challenger of inWindow) {
    if (challenger.role !== "canary" && challenger.role !== "shadow") continue;
    const sameModel = inWindow.filter(
      (r) => r.model === challenger.model && r.metric === challenger.metric,
    );
    const control = challenger.role === "canary" && sameModel.find((r) => r.role === "control");
    const champion =
      control ||
      sameModel.filter((r) => r.role === "served").sort((a, b) => labelled(b) - labelled(a))[0];
    if (!champion || champion.version === challenger.version) continue;
    if (labelled(challenger) < rule.minLabelled || labelled(champion) < rule.minLabelled) continue;
    const lower = rule.lowerIsBetter.includes(challenger.metric);
    const bound = (champion.value as number) + (lower ? rule.margin : -rule.margin);
    const value = challenger.value as number;
    const violating = lower ? value > bound : value < bound;
    out.push(
      observe(
        name,
        rule,
        challenger,
        {
          value,
          threshold: bound,
          comparison: lower ? "above" : "below",
          violating,
          summary: `${challenger.metric} of ${challenger.model} ${challenger.version} (${challenger.role}) is ${formatNumber(value)} against the champion ${champion.version}'s ${formatNumber(champion.value)} (margin ${formatNumber(rule.margin)})`,
        },
        challenger.metric,
      ),
    );
  }
  return out;
}

function kpiObservations(name: string, rule: AlertRule, rows: ResultRow[]): Observation[] {
  if (rule.kind !== "kpi") return [];
  const out: Observation[] = [];
  for (const row of rows) {
    if (row.metric !== "kpi_difference" || row.windowSeconds !== rule.windowSeconds) continue;
    if (row.status === "insufficient_data") continue;
    if (row.value === null || typeof row.details.significant !== "boolean") continue;
    const lower = rule.lowerIsBetter.includes(row.dimension);
    const worse = lower ? row.value > 0 : row.value < 0;
    const violating = row.details.significant && worse;
    const interval = `[${formatNumber(row.details.lower as number)}, ${formatNumber(row.details.upper as number)}]`;
    out.push(
      observe(name, rule, row, {
        value: row.value,
        threshold: 0,
        comparison: lower ? "above" : "below",
        violating,
        summary: `${row.dimension} of ${row.model} canary ${row.version} against the champion: ${formatNumber(row.value)}, 95% interval ${interval}`,
      }),
    );
  }
  return out;
}

/**
 * Rules that watch the same thing from two sides and alert as one: a
 * feature's drift test and its PSI are one `drift` alert per feature (the
 * more severe rule's severity; violating when either is), so a drifting
 * feature raises one alert, not two.
 */
const MERGED_INTO: Record<string, string> = { psi: "drift" };

function merge(observations: Observation[]): Observation[] {
  const out = new Map<string, Observation>();
  for (const o of observations) {
    const into = MERGED_INTO[o.rule];
    const moved = into
      ? {
          ...o,
          rule: into,
          fingerprint: fingerprintOf(into, o.model, o.version, o.role, o.dimension),
        }
      : o;
    const seen = out.get(moved.fingerprint);
    if (!seen) {
      out.set(moved.fingerprint, moved);
      continue;
    }
    // Both statistics, each with its own threshold and direction, the rule's
    // own (drift) first; the alert leads with the first that broke its rule,
    // and its metric, value, threshold and comparison all come from that one.
    const [own, folded] = into ? [seen, moved] : [moved, seen];
    const statistics = [...own.statistics, ...folded.statistics];
    const lead = leadingStatistic(statistics) as AlertStatistic;
    const violating = own.violating || folded.violating;
    out.set(moved.fingerprint, {
      ...own,
      severity:
        own.severity === "critical" || folded.severity === "critical" ? "critical" : "warning",
      violating,
      metric: lead.metric,
      value: lead.value,
      threshold: lead.threshold,
      comparison: lead.comparison,
      statistics,
      summary: violating
        ? `${lead.metric === own.metric ? own.metric : lead.metric} of ${where({ ...own, details: {}, value: null, status: "", windowSeconds: 0, windowStart: "" })}: ${describeStatistics(statistics)}`
        : `${own.metric} of ${where({ ...own, details: {}, value: null, status: "", windowSeconds: 0, windowStart: "" })} is within bounds: ${describeStatistics(statistics)}`,
    });
  }
  return [...out.values()];
}

/** The metrics an enabled rule watches, at its window length. */
function watched(rule: AlertRule): string[] {
  if (rule.kind === "threshold" || rule.kind === "status") return [rule.metric];
  if (rule.kind === "champion") return [...rule.metrics, ...rule.lowerIsBetter];
  return ["kpi_difference"];
}

/**
 * Results an enabled rule would have judged but that had too little data:
 * neither a pass nor a breach, counted so that a run can say so.
 */
export function insufficientEvidence(rules: ResolvedRules, rows: ResultRow[]): number {
  let count = 0;
  for (const row of rows) {
    if (row.status !== "insufficient_data") continue;
    const judged = Object.values(rules.rules).some(
      (rule) =>
        rule.enabled &&
        rule.windowSeconds === row.windowSeconds &&
        watched(rule).includes(row.metric),
    );
    if (judged) count += 1;
  }
  return count;
}

/** Observations of one model's latest results under its rules. */
export function evaluateRules(rules: ResolvedRules, rows: ResultRow[]): Observation[] {
  const out: Observation[] = [];
  for (const [name, rule] of Object.entries(rules.rules)) {
    if (!rule.enabled) continue;
    out.push(
      ...thresholdObservations(name, rule, rows),
      ...championObservations(name, rule, rows),
      ...kpiObservations(name, rule, rows),
    );
  }
  return merge(out);
}
