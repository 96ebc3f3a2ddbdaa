/**
 * What an alert says, as the lifecycle stores it and the destinations send
 * it: one condition (a rule broken by one metric of one model, version, role
 * and dimension), firing until the condition clears, then resolved.
 */

export type AlertSeverity = "warning" | "critical";
export type AlertState = "firing" | "resolved";

/** Airlock's own health, not a model's: alerts whose `model` is empty. */
export const SYSTEM_MODEL = "";

/**
 * One statistic a rule compared with its threshold: what it is called for
 * people ("KS p-value", "PSI", "error rate"), its value, its threshold, and
 * the direction in which it breaks the rule.
 */
export interface AlertStatistic {
  /** The monitoring metric it comes from (`drift`, `psi`, `error_rate`, …). */
  metric: string;
  /** What the number is, in words. */
  name: string;
  value: number | null;
  threshold: number | null;
  /** The rule is broken when the value is `above` (or `below`) the threshold. */
  comparison: "above" | "below";
  /** Whether this statistic broke the rule at the last evaluation. */
  violating: boolean;
}

/** What one alert is about: a rule, the subject it watched, and what it found. */
export interface AlertCondition {
  severity: AlertSeverity;
  /** The rule that fired, e.g. `drift`, `error_rate`, `dead_letters`. */
  rule: string;
  /** The model ('' for Airlock's own health), version and role ('' when not one). */
  model: string;
  version: string;
  role: string;
  /** The monitoring metric and its dimension (a feature, an attribute, a KPI; '' if none). */
  metric: string;
  dimension: string;
  /**
   * The alert's leading statistic (the first that broke the rule; at
   * resolution the first of the last values seen): metric, value, threshold
   * and comparison always come from one statistic. `statistics` has them all.
   */
  value: number | null;
  /** The threshold it is compared with, and how: the rule breaks when the value is `above` or `below` it. */
  threshold: number | null;
  comparison: "above" | "below";
  /** Every statistic the rule compared (two where a drift test and PSI fold into one alert). */
  statistics: AlertStatistic[];
  /** The monitoring window of the last evaluation (seconds, ISO start); null for health checks. */
  windowSeconds: number | null;
  windowStart: string | null;
  /** One sentence for people, e.g. "income drifted (KS p = 0.0001 < 0.05)". */
  summary: string;
}

/** The notice sent to a destination when an alert fires or resolves. */
export interface AlertNotice extends AlertCondition {
  /** The alert's id (stable across its firing and its resolution). */
  alertId: number;
  state: AlertState;
  firstSeenAt: string;
  lastSeenAt: string;
  resolvedAt: string | null;
  /** How many evaluations found the condition while it was firing. */
  count: number;
  /** Where an operator reads more: the monitoring endpoint (or console) for this model and window. */
  link: string;
}
