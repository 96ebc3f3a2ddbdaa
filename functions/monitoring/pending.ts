/**
 * Windows to compute again because ground truth or outcomes arrived late.
 *
 * Labels belong to their prediction's window, outcomes to the window of the
 * time they happened; both can arrive months after that window was first
 * computed. Each run reads what arrived since its cursor (`feedback` by
 * `updated_at`, so a replaced label counts too; `outcomes` by `received_at`)
 * and marks the 15-minute windows it falls in, in `monitoring_pending`. The
 * run then recomputes the label (or outcome) metrics of those windows and of
 * the hour and day around them, and only those.
 *
 * A label's window comes from the time its UUIDv7 prediction id carries;
 * for an id that carries none, from the prediction's stored row. A label
 * whose prediction is not stored yet marks nothing: its window is computed
 * when the prediction arrives (the regular pass recomputes recent windows).
 *
 * Rows are read up to `settle` before the database's clock, so that a
 * transaction still committing a row stamped earlier is not skipped.
 */
import { sql } from "drizzle-orm";
import type { Database } from "../../shared/db/client";
import { WINDOW_SECONDS } from "./windows";

export type PendingKind = "labels" | "outcomes";

/** How long after its timestamp a row is taken as committed. */
export const DEFAULT_SETTLE_MS = 120_000;

/** At most this many base windows are redone per run, oldest first; the rest wait for the next run. */
export const MAX_PENDING_PER_RUN = 96;

const BASE = `${WINDOW_SECONDS[0]} seconds`;

/** Marks the windows that labels and outcomes arrived for since the last run; returns how many. */
export async function markPending(
  db: Database,
  settleMs = DEFAULT_SETTLE_MS,
): Promise<Record<PendingKind, number>> {
  return db.transaction(async (tx) => {
    // One marker at a time: a concurrent run waits here, then reads the moved cursor.
    await tx.execute(sql`
      INSERT INTO monitoring_cursors (name, position)
      VALUES ('labels', 'epoch'), ('outcomes', 'epoch')
      ON CONFLICT (name) DO NOTHING`);
    const { rows } = await tx.execute<{ name: string; position: string; upto: string }>(sql`
      SELECT name, position::text AS position,
        (now() - ${String(Math.max(0, Math.round(settleMs)))}::int * interval '1 millisecond')::text AS upto
      FROM monitoring_cursors WHERE name IN ('labels', 'outcomes') ORDER BY name FOR UPDATE`);
    const cursor = Object.fromEntries(rows.map((r) => [r.name, r]));
    const labels = cursor.labels as { position: string; upto: string };
    const outcomes = cursor.outcomes as { position: string; upto: string };
    const labelled = await tx.execute(sql`
      INSERT INTO monitoring_pending (kind, window_start)
      SELECT DISTINCT 'labels', date_bin(${BASE}::interval, created, 'epoch')
      FROM (
        SELECT coalesce(prediction_id_time(f.prediction_id), (
          SELECT min(r.created_at) FROM prediction_refs r
          WHERE r.prediction_id = f.prediction_id)) AS created
        FROM feedback f
        WHERE f.updated_at > ${labels.position} AND f.updated_at <= ${labels.upto}
      ) t
      WHERE created IS NOT NULL
      ON CONFLICT (kind, window_start) DO UPDATE SET marked_at = now()`);
    const happened = await tx.execute(sql`
      INSERT INTO monitoring_pending (kind, window_start)
      SELECT DISTINCT 'outcomes', date_bin(${BASE}::interval, at, 'epoch')
      FROM outcomes
      WHERE received_at > ${outcomes.position} AND received_at <= ${outcomes.upto}
      ON CONFLICT (kind, window_start) DO UPDATE SET marked_at = now()`);
    await tx.execute(sql`
      UPDATE monitoring_cursors SET position = CASE name
        WHEN 'labels' THEN ${labels.upto}::timestamptz ELSE ${outcomes.upto}::timestamptz END,
        updated_at = now()
      WHERE name IN ('labels', 'outcomes')`);
    return { labels: labelled.rowCount ?? 0, outcomes: happened.rowCount ?? 0 };
  });
}

export interface PendingWindow {
  kind: PendingKind;
  start: Date;
  markedAt: string;
}

/** The oldest pending base windows that have ended by `now`. */
export async function pendingWindows(db: Database, now: Date): Promise<PendingWindow[]> {
  const { rows } = await db.execute<{ kind: PendingKind; window_start: string; marked_at: string }>(
    sql`
      SELECT kind, window_start, marked_at::text AS marked_at FROM monitoring_pending
      WHERE window_start + ${BASE}::interval <= ${now.toISOString()}
      ORDER BY window_start, kind LIMIT ${MAX_PENDING_PER_RUN}`,
  );
  return rows.map((r) => ({
    kind: r.kind,
    start: new Date(r.window_start),
    markedAt: r.marked_at,
  }));
}

/** Removes a pending window unless it was marked again after it was read. */
export async function clearPending(db: Database, window: PendingWindow): Promise<void> {
  await db.execute(sql`
    DELETE FROM monitoring_pending
    WHERE kind = ${window.kind} AND window_start = ${window.start.toISOString()}
      AND marked_at <= ${window.markedAt}::timestamptz`);
}

/** The ended windows at every length that contain a base window starting at `start`. */
export function enclosingWindows(
  start: Date,
  now: Date,
): { seconds: number; start: Date; end: Date }[] {
  const out: { seconds: number; start: Date; end: Date }[] = [];
  for (const seconds of WINDOW_SECONDS) {
    const length = seconds * 1000;
    const from = Math.floor(start.getTime() / length) * length;
    if (from + length <= now.getTime())
      out.push({ seconds, start: new Date(from), end: new Date(from + length) });
  }
  return out;
}
