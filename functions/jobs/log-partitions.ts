/**
 * Upkeep of the prediction-log tables, hourly: daily partitions a week ahead,
 * rows that landed in a DEFAULT partition moved into their day's (and
 * reported, since they mean a day had no partition), whole days dropped past
 * retention, and old dead letters, labels and KPI events deleted.
 */
import { sql } from "drizzle-orm";
import { openDatabase } from "../../shared/db/client";

/** Days kept, per table: label joins need months, raw inputs less. */
export const logRetentionDays = {
  predictions: 90,
  rejected_requests: 90,
  prediction_refs: 400,
} as const;
export const DEAD_LETTER_RETENTION_DAYS = 14;
/** Labels and KPI events are kept as long as the references they join to. */
export const FEEDBACK_RETENTION_DAYS = logRetentionDays.prediction_refs;
/** Partitions exist from yesterday to this many days ahead. */
export const PARTITION_DAYS_AHEAD = 7;

export interface PartitionReport {
  /** Rows moved out of each table's DEFAULT partition. */
  moved: Record<string, number>;
  dropped: string[];
  deadLettersDeleted: number;
  /** Labels, label events and KPI events past retention. */
  feedbackDeleted: number;
}

export async function maintainLogPartitions(env: Env, now = new Date()): Promise<PartitionReport> {
  const handle = openDatabase(env);
  const report: PartitionReport = {
    moved: {},
    dropped: [],
    deadLettersDeleted: 0,
    feedbackDeleted: 0,
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
