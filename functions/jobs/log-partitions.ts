/**
 * Upkeep of the prediction-log tables, hourly: daily partitions a week ahead,
 * rows that landed in a DEFAULT partition moved into their day's (and
 * reported, since they mean a day had no partition), whole days dropped past
 * retention, old dead letters, labels and KPI events deleted, and each
 * model's rows past the retention of its data policy deleted.
 */
import { sql } from "drizzle-orm";
import { type Database, openDatabase } from "../../shared/db/client";
import {
  DEAD_LETTER_RETENTION_DAYS,
  FEEDBACK_RETENTION_DAYS,
  logRetentionDays,
} from "../../shared/logs/retention";
import { inspectJson, storableJsonText } from "../../shared/storable";

export { DEAD_LETTER_RETENTION_DAYS, FEEDBACK_RETENTION_DAYS, logRetentionDays };

/** Partitions exist from yesterday to this many days ahead. */
export const PARTITION_DAYS_AHEAD = 7;

/**
 * The tables a model's retention applies to: its rows (named by `model`),
 * the time that ages them, their key, and the table's own retention.
 */
const modelTables = {
  predictions: {
    time: "created_at",
    key: "prediction_id, role, version, created_at",
    days: logRetentionDays.predictions,
  },
  rejected_requests: {
    time: "created_at",
    key: "prediction_id, created_at",
    days: logRetentionDays.rejected_requests,
  },
  prediction_refs: {
    time: "created_at",
    key: "prediction_id, role, version, created_at",
    days: logRetentionDays.prediction_refs,
  },
  feedback: { time: "updated_at", key: "prediction_id, model", days: FEEDBACK_RETENTION_DAYS },
  feedback_events: { time: "received_at", key: "id", days: FEEDBACK_RETENTION_DAYS },
  outcomes: { time: "received_at", key: "id", days: FEEDBACK_RETENTION_DAYS },
} as const;
type ModelTable = keyof typeof modelTables | "dead_letters";

export interface RetentionLimits {
  /** Rows deleted per statement: each statement holds its locks only briefly. */
  chunkRows: number;
  /** Statements per model and table per run; what is left waits for the next run. */
  chunksPerRun: number;
}
export const MODEL_RETENTION_LIMITS: RetentionLimits = { chunkRows: 5000, chunksPerRun: 20 };

/** What one model's retention deleted in a run. */
export interface ModelRetentionReport {
  retentionDays: number;
  /** Rows deleted per table; for `dead_letters`, the model's results taken out of them. */
  deleted: Partial<Record<ModelTable, number>>;
  /** False when a table reached the per-run cap: the next run deletes the rest. */
  complete: boolean;
}

export interface PartitionReport {
  /** Rows moved out of each table's DEFAULT partition. */
  moved: Record<string, number>;
  dropped: string[];
  deadLettersDeleted: number;
  /** Labels, label events and KPI events past retention. */
  feedbackDeleted: number;
  /** Per model whose data policy sets `retentionDays`. */
  modelRetention: Record<string, ModelRetentionReport>;
}

export async function maintainLogPartitions(
  env: Env,
  now = new Date(),
  limits: RetentionLimits = MODEL_RETENTION_LIMITS,
): Promise<PartitionReport> {
  const handle = openDatabase(env);
  const report: PartitionReport = {
    moved: {},
    dropped: [],
    deadLettersDeleted: 0,
    feedbackDeleted: 0,
    modelRetention: {},
  };
  try {
    const db = handle.db;
    const today = now.toISOString().slice(0, 10);
    for (const [table, keepDays] of Object.entries(logRetentionDays)) {
      // The days ahead, then any day that has rows in DEFAULT.
      const ahead = await db.execute<{ moved: string }>(
        sql`SELECT airlock_ensure_day_partitions(${table}, ${today}::date - 1, ${PARTITION_DAYS_AHEAD + 2}) AS moved`,
      );
      let moved = Number(ahead.rows[0]?.moved ?? 0);
      const stray = await db.execute<{ day: string }>(
        sql.raw(
          `SELECT DISTINCT to_char((created_at AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD') AS day FROM "${table}_default"`,
        ),
      );
      for (const { day } of stray.rows) {
        const result = await db.execute<{ moved: string }>(
          sql`SELECT airlock_ensure_day_partitions(${table}, ${day}::date, 1) AS moved`,
        );
        moved += Number(result.rows[0]?.moved ?? 0);
      }
      report.moved[table] = moved;
      const dropped = await db.execute<{ name: string }>(
        sql`SELECT airlock_drop_day_partitions(${table}, ${keepDays}) AS name`,
      );
      report.dropped.push(...dropped.rows.map((r) => r.name));
    }
    const deleted = await db.execute(
      sql`DELETE FROM dead_letters WHERE received_at < ${now.toISOString()}::timestamptz - make_interval(days => ${DEAD_LETTER_RETENTION_DAYS})`,
    );
    report.deadLettersDeleted = deleted.rowCount ?? 0;
    const cutoff = sql`${now.toISOString()}::timestamptz - make_interval(days => ${FEEDBACK_RETENTION_DAYS})`;
    let expired = 0;
    expired +=
      (await db.execute(sql`DELETE FROM feedback WHERE updated_at < ${cutoff}`)).rowCount ?? 0;
    expired +=
      (await db.execute(sql`DELETE FROM feedback_events WHERE received_at < ${cutoff}`)).rowCount ??
      0;
    expired +=
      (await db.execute(sql`DELETE FROM outcomes WHERE received_at < ${cutoff}`)).rowCount ?? 0;
    report.feedbackDeleted = expired;
    report.modelRetention = await applyModelRetention(db, now, limits);
  } finally {
    await handle.close();
  }
  const strays = Object.values(report.moved).reduce((a, b) => a + b, 0);
  console.log(
    JSON.stringify({
      level: strays > 0 ? "warn" : "info",
      event: strays > 0 ? "log_partitions.default_rows_moved" : "log_partitions.maintained",
      ...report,
    }),
  );
  return report;
}

/**
 * Deletes each model's rows older than its data policy's `retentionDays`,
 * in every table whose own retention is longer: a LIMITed delete by key,
 * repeated up to `limits.chunksPerRun` times, each its own statement.
 */
async function applyModelRetention(
  db: Database,
  now: Date,
  limits: RetentionLimits,
): Promise<Record<string, ModelRetentionReport>> {
  const policies = await db.execute<{ name: string; days: number }>(
    sql`SELECT name, (data_policy->>'retentionDays')::int AS days FROM models
        WHERE data_policy ? 'retentionDays' ORDER BY name`,
  );
  const out: Record<string, ModelRetentionReport> = {};
  for (const { name: model, days } of policies.rows) {
    const cutoff = new Date(now.getTime() - days * 86_400_000);
    const entry: ModelRetentionReport = { retentionDays: days, deleted: {}, complete: true };
    for (const [table, spec] of Object.entries(modelTables)) {
      if (days >= spec.days) continue;
      let deleted = 0;
      let chunks = 0;
      for (; chunks < limits.chunksPerRun; chunks++) {
        const result = await db.execute(
          sql`DELETE FROM ${sql.identifier(table)} WHERE (${sql.raw(spec.key)}) IN (
                SELECT ${sql.raw(spec.key)} FROM ${sql.identifier(table)}
                WHERE model = ${model} AND ${sql.identifier(spec.time)} < ${cutoff.toISOString()}::timestamptz
                LIMIT ${limits.chunkRows})`,
        );
        const rows = result.rowCount ?? 0;
        deleted += rows;
        if (rows < limits.chunkRows) break;
      }
      if (chunks === limits.chunksPerRun) entry.complete = false;
      entry.deleted[table as ModelTable] = deleted;
    }
    if (days < DEAD_LETTER_RETENTION_DAYS) {
      const pruned = await pruneDeadLetters(db, model, cutoff, limits);
      entry.deleted.dead_letters = pruned.results;
      if (!pruned.complete) entry.complete = false;
    }
    out[model] = entry;
  }
  return out;
}

/**
 * Takes a model's results older than `cutoff` (by their event time, or by
 * when the dead letter was stored when that is unreadable) out of the dead
 * letters that hold them, and deletes a dead letter left with no results:
 * other models' results in the same message stay, replayable. Bodies kept
 * as text are read the same way.
 */
async function pruneDeadLetters(
  db: Database,
  model: string,
  cutoff: Date,
  limits: RetentionLimits,
): Promise<{ results: number; complete: boolean }> {
  const holds = JSON.stringify([{ model }]);
  let after = 0;
  let taken = 0;
  for (let chunk = 0; chunk < limits.chunksPerRun; chunk++) {
    const page = await db.execute<{
      id: string;
      body: unknown;
      body_text: string | null;
      received_at: string;
    }>(
      sql`SELECT id, body, body_text, received_at FROM dead_letters
          WHERE id > ${after}
            AND (body->'results' @> ${holds}::jsonb OR body_text LIKE ${`%"model":${JSON.stringify(model)}%`})
          ORDER BY id LIMIT ${limits.chunkRows}`,
    );
    for (const row of page.rows) {
      after = Number(row.id);
      const body = row.body ?? parseText(row.body_text);
      if (
        !body ||
        typeof body !== "object" ||
        !Array.isArray((body as { results?: unknown }).results)
      )
        continue;
      const results = (body as { results: unknown[] }).results;
      const storedAt = new Date(row.received_at).getTime();
      const kept = results.filter((result) => {
        if (!result || typeof result !== "object") return true;
        const { model: of, timestamp } = result as { model?: unknown; timestamp?: unknown };
        if (of !== model) return true;
        const at = typeof timestamp === "string" ? Date.parse(timestamp) : Number.NaN;
        return (Number.isNaN(at) ? storedAt : at) >= cutoff.getTime();
      });
      if (kept.length === results.length) continue;
      taken += results.length - kept.length;
      if (kept.length === 0) {
        await db.execute(sql`DELETE FROM dead_letters WHERE id = ${row.id}`);
        continue;
      }
      const pruned = { ...body, results: kept };
      const fits = row.body !== null && inspectJson(pruned) === null;
      await db.execute(
        sql`UPDATE dead_letters SET body = ${fits ? JSON.stringify(pruned) : null}::jsonb,
              body_text = ${fits ? null : storableJsonText(pruned)} WHERE id = ${row.id}`,
      );
    }
    if (page.rows.length < limits.chunkRows) return { results: taken, complete: true };
  }
  return { results: taken, complete: false };
}

function parseText(text: string | null): unknown {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
