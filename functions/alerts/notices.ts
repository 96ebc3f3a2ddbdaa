import { sql } from "drizzle-orm";
import type { Queryable } from "../../shared/db/client";
import { destinationTakes, type NoticeType } from "../../shared/notices/types";

/**
 * A notice of something other than an alert (an approval asked for,
 * decided or applied; later a plan's step): created in the transaction of
 * the change it announces, one delivery per destination that takes it, and
 * queued once that transaction commits.
 */
export interface NoticeDraft {
  type: Exclude<NoticeType, "alert.firing" | "alert.resolved">;
  /** The model it is about ('' for Airlock itself). */
  model: string;
  /** Null: the destinations' minimum severity does not apply. */
  severity: "warning" | "critical" | null;
  /** Unique per notice, e.g. `approval.decided:apr_…:2`: a notice is created once. */
  key: string;
  /** What happened, as it was: sent as the notice (shared/notices). */
  payload: unknown;
}

/** The deliveries of one notice, one per destination that takes it; their ids, to queue. */
export async function createNotice(db: Queryable, draft: NoticeDraft): Promise<number[]> {
  const { rows } = await db.execute<{ id: number }>(sql`
    INSERT INTO alert_deliveries (type, model, notice_key, payload, destination_id)
    SELECT ${draft.type}, ${draft.model}, ${draft.key}, ${JSON.stringify(draft.payload)}::jsonb, d.id
    FROM alert_destinations d
    WHERE ${destinationTakes({ type: draft.type, model: draft.model, severity: draft.severity })}
    ON CONFLICT (notice_key, destination_id) WHERE notice_key IS NOT NULL DO NOTHING
    RETURNING id`);
  return rows.map((r) => Number(r.id));
}
