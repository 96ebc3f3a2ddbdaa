/**
 * Windows to compute again because ground truth or outcomes arrived late.
 *
 * Labels belong to their prediction's window, outcomes to the window of the
 * time they happened; both can arrive months after that window was first
 * computed. Each run reads what arrived since its cursor (`feedback` by
 * `updated_at`, so a replaced label counts too; `outcomes` by `received_at`)
 * and marks the base windows it falls in, in `monitoring_pending`. The
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
import type { WindowLengths } from "../../shared/monitoring/windows";

export type PendingKind = "labels" | "outcomes";

/** How long after its timestamp a row is taken as committed. */
export const DEFAULT_SETTLE_MS = 120_000;

/** At most this many labels (and outcomes) are read per run; the rest on the next. */
export const MAX_ARRIVALS_PER_RUN = 50_000;

/** At most this many base windows are redone per run, oldest first; the rest wait for the next run. */
export const MAX_PENDING_PER_RUN = 96;

/** The base window as an SQL interval. */
const baseInterval = (lengths: WindowLengths) => `${lengths.base} seconds`;

/** Marks the windows that labels and outcomes arrived for since the last run; returns how many. */
export async function markPending(
  db: Database,
  lengths: WindowLengths,
  settleMs = DEFAULT_SETTLE_MS,
): Promise<Record<PendingKind, number>> {
  return db.transaction(async (tx) => {
    const settle = sql`${String(Math.max(0, Math.round(settleMs)))}::int * interval '1 millisecond'`;
    // The first run starts from now: earlier labels and outcomes are not
    // replayed (their recent windows are computed anyway). One marker at a
    // time: a concurrent run waits on the row lock, then reads the moved cursor.
    await tx.execute(sql`
      INSERT INTO monitoring_cursors (name, position)
      VALUES ('labels', now() - ${settle}), ('outcomes', now() - ${settle})
      ON CONFLICT (name) DO NOTHING`);
    const { rows } = await tx.execute<{ name: PendingKind; position: string; upto: string }>(sql`
      SELECT name, position::text AS position, (now() - ${settle})::text AS upto
      FROM monitoring_cursors WHERE name IN ('labels', 'outcomes') ORDER BY name FOR UPDATE`);
    const marked: Record<PendingKind, number> = { labels: 0, outcomes: 0 };
    for (const cursor of rows) {
      const source =
        cursor.name === "labels"
          ? sql`
            SELECT updated_at AS arrived, coalesce(prediction_id_time(f.prediction_id), (
              SELECT min(r.created_at) FROM prediction_refs r
              WHERE r.prediction_id = f.prediction_id)) AS happened
            FROM feedback f
            WHERE f.updated_at > ${cursor.position} AND f.updated_at <= ${cursor.upto}
            ORDER BY f.updated_at LIMIT ${MAX_ARRIVALS_PER_RUN}`
          : sql`
            SELECT received_at AS arrived, at AS happened FROM outcomes
            WHERE received_at > ${cursor.position} AND received_at <= ${cursor.upto}
            ORDER BY received_at LIMIT ${MAX_ARRIVALS_PER_RUN}`;
      // Marks the windows, then moves the cursor: to `upto` when everything
      // up to it was read, else to just before the last time read (rows
      // sharing that time are read again; marking twice is harmless).
      const result = await tx.execute<{ windows: string; arrivals: string; last: string | null }>(
        sql`
        WITH arrived AS (${source}),
        marked AS (
          INSERT INTO monitoring_pending (kind, window_start)
          SELECT DISTINCT ${cursor.name}, date_bin(${baseInterval(lengths)}::interval, happened, 'epoch')
          FROM arrived WHERE happened IS NOT NULL
          ON CONFLICT (kind, window_start) DO UPDATE SET marked_at = now()
          RETURNING 1
        )
        SELECT (SELECT count(*) FROM marked) AS windows, count(*) AS arrivals,
          (max(arrived) - interval '1 microsecond')::text AS last
        FROM arrived`,
      );
      const summary = result.rows[0];
      const full = Number(summary?.arrivals ?? 0) >= MAX_ARRIVALS_PER_RUN;
      await tx.execute(sql`
        UPDATE monitoring_cursors
        SET position = ${full && summary?.last ? summary.last : cursor.upto}::timestamptz,
          updated_at = now()
        WHERE name = ${cursor.name}`);
      marked[cursor.name] = Number(summary?.windows ?? 0);
    }
    return marked;
  });
}

export interface PendingWindow {
  kind: PendingKind;
  start: Date;
  markedAt: string;
}

/** The oldest pending base windows that have ended by `now`. */
export async function pendingWindows(
  db: Database,
  now: Date,
  lengths: WindowLengths,
): Promise<PendingWindow[]> {
  const { rows } = await db.execute<{ kind: PendingKind; window_start: string; marked_at: string }>(
    sql`
      SELECT kind, window_start, marked_at::text AS marked_at FROM monitoring_pending
      WHERE window_start + ${baseInterval(lengths)}::interval <= ${now.toISOString()}
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
