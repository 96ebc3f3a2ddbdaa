/**
 * Erasure of a data subject's records: what is asked, how far the job has
 * come, and how an erased result is recognised wherever one turns up again
 * (a queue retry, a dead letter, its replay). Pure: the job is in
 * functions/jobs/erasure.ts, the checks that keep rows erased in
 * functions/queue/prediction-logs.ts and functions/inference/feedback.ts.
 */
import { sql } from "drizzle-orm";

/** Rows one step deletes from one table (or partition) before it yields. */
export const ERASURE_CHUNK_ROWS = 5000;
/** Dead letters one step reads. */
export const ERASURE_DEAD_LETTER_CHUNK = 200;
/** Passes over every table before an erasure that still finds rows fails. */
export const ERASURE_MAX_PASSES = 3;
/** Prediction ids one request may name. */
export const MAX_ERASURE_PREDICTION_IDS = 1000;

/** The day-partitioned log tables, longest kept first. */
export const ERASURE_LOG_TABLES = ["prediction_refs", "predictions", "rejected_requests"] as const;
export type ErasureLogTable = (typeof ERASURE_LOG_TABLES)[number];

/** Where the job is. Each queue message does one step and stores the next. */
export type ErasureProgress =
  | {
      phase: "logs";
      pass: number;
      table: ErasureLogTable;
      /** The last partition finished (key erasure walks partitions in name order). */
      after: string | null;
    }
  | { phase: "feedback"; pass: number }
  | { phase: "dead_letters"; pass: number; afterId: number }
  | { phase: "baselines"; pass: number }
  | { phase: "verify"; pass: number }
  | { phase: "done"; pass: number };

export const FIRST_STEP: ErasureProgress = {
  phase: "logs",
  pass: 1,
  table: "prediction_refs",
  after: null,
};

/** Rows erased, by what they were. Every key is always present. */
export const ERASURE_COUNT_NAMES = [
  "predictions",
  "prediction_refs",
  "rejected_requests",
  "feedback",
  "feedback_events",
  "outcomes",
  "dead_letters_deleted",
  "dead_letters_edited",
  "baselines_rebuilt",
  "baselines_cleared",
  "tombstones",
] as const;
export type ErasureCounts = Record<(typeof ERASURE_COUNT_NAMES)[number], number>;

export const noErasureCounts = (): ErasureCounts =>
  Object.fromEntries(ERASURE_COUNT_NAMES.map((name) => [name, 0])) as ErasureCounts;

/**
 * The windows of a version's traffic that lost rows: a baseline built from
 * such a window holds the erased values, and is built again.
 */
export interface AffectedWindow {
  model: string;
  version: string;
  role: string;
  from: string;
  to: string;
}

/** What an erasure erases: a key's records up to the request (of one model, or all), or ids. */
export type ErasureSubject =
  | { subject: "key"; keyHmac: string; model: string | null; before: string }
  | { subject: "predictions"; predictionIds: string[] };

/** A result as a log message or dead letter carries it (the fields erasure looks at). */
export interface ResultRef {
  predictionId: string;
  keyHmac: string | null;
  model: string;
  timestamp: string;
}

/** A result that names a prediction: the fields of a log message's result, if it has them. */
export function resultRef(value: unknown): ResultRef | null {
  if (typeof value !== "object" || value === null) return null;
  const r = value as Record<string, unknown>;
  if (typeof r.predictionId !== "string") return null;
  return {
    predictionId: r.predictionId,
    keyHmac: typeof r.keyHmac === "string" ? r.keyHmac : null,
    model: typeof r.model === "string" ? r.model : "",
    timestamp: typeof r.timestamp === "string" ? r.timestamp : "",
  };
}

/** The SQL condition "this row's prediction id is a tombstone", for a row source `alias`. */
export function tombstoned(alias: string) {
  return sql`EXISTS (SELECT 1 FROM erasure_tombstones t WHERE t.prediction_id = ${sql.raw(alias)}.prediction_id)`;
}

/**
 * The SQL condition "this row is erased", for a row source with
 * `prediction_id`, `key_hmac`, `model` and a time column (`created_at`, or
 * `at` for a KPI event): its id is a tombstone, or its key was erased (for
 * its model, or all) at or after its time.
 */
export function erasedRow(alias: string, time: "created_at" | "at" = "created_at") {
  const a = sql.raw(alias);
  return sql`(${tombstoned(alias)}
    OR EXISTS (SELECT 1 FROM erased_keys k WHERE k.key_hmac = ${a}.key_hmac
      AND (k.model IS NULL OR k.model = ${a}.model) AND ${a}.${sql.raw(time)} <= k.before))`;
}

/**
 * A dead letter's body as a value, read back from its JSON text when jsonb
 * could not hold it; `readable` is false when even that text does not parse.
 */
export function deadLetterBody(row: { body: unknown; body_text: string | null }): {
  value: unknown;
  readable: boolean;
} {
  if (row.body_text === null) return { value: row.body, readable: true };
  try {
    return { value: JSON.parse(row.body_text), readable: true };
  } catch {
    return { value: null, readable: false };
  }
}

/**
 * A dead letter's body with the erased results taken out: `keep` when none
 * of it is erased, `delete` when nothing else is left (or its shape is not
 * a log message's, so the erased part cannot be told from the rest).
 */
export function scrubBody(
  body: unknown,
  erased: (ref: ResultRef) => boolean,
): { kind: "keep" } | { kind: "delete" } | { kind: "edit"; body: unknown; removed: number } {
  const results =
    typeof body === "object" && body !== null ? (body as { results?: unknown }).results : undefined;
  if (!Array.isArray(results)) {
    const ref = resultRef(body);
    return ref && erased(ref) ? { kind: "delete" } : { kind: "keep" };
  }
  const kept = results.filter((result) => {
    const ref = resultRef(result);
    return !(ref && erased(ref));
  });
  if (kept.length === results.length) return { kind: "keep" };
  if (kept.length === 0) return { kind: "delete" };
  return {
    kind: "edit",
    body: { ...(body as object), results: kept },
    removed: results.length - kept.length,
  };
}
