/**
 * How long Airlock keeps what it logs, per table, in days. A model's data
 * policy may shorten any of these for its own rows, never lengthen them.
 */

/** Days kept, per partitioned log table: label joins need months, raw inputs less. */
export const logRetentionDays = {
  predictions: 90,
  rejected_requests: 90,
  prediction_refs: 400,
} as const;
export const DEAD_LETTER_RETENTION_DAYS = 14;
/** Labels and KPI events are kept as long as the references they join to. */
export const FEEDBACK_RETENTION_DAYS = logRetentionDays.prediction_refs;

/** The longest anything of a model is kept: a model's retention can be at most this. */
export const LONGEST_RETENTION_DAYS = Math.max(
  ...Object.values(logRetentionDays),
  DEAD_LETTER_RETENTION_DAYS,
  FEEDBACK_RETENTION_DAYS,
);

/** The days a table keeps a model's rows: the shorter of its own and the model's retention. */
export function effectiveRetentionDays(globalDays: number, modelDays: number | undefined): number {
  return modelDays === undefined ? globalDays : Math.min(globalDays, modelDays);
}
