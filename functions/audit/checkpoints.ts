import { sql } from "drizzle-orm";
import type { AuditCheckpoints, CheckpointAppend } from "../../durable-objects/audit-checkpoints";
import { SYSTEM_MODEL } from "../../shared/alerts/types";
import { type Checkpoint, importSigningKey, signCheckpoint } from "../../shared/audit/checkpoint";
import { type Database, openDatabase } from "../../shared/db/client";
import { describeError } from "../../shared/errors";
import type { CheckpointEvent } from "../../shared/notices/checkpoint";
import { enqueueNotices } from "../alerts/evaluate";
import { createNotice } from "../alerts/notices";

/** A checkpoint at least every this many rows (and at least hourly, by the hourly job). */
export const CHECKPOINT_EVERY_ROWS = 100;

/** The one store of checkpoints, outside Postgres. */
export function checkpointStore(env: Pick<Env, "AUDIT_CHECKPOINTS">): AuditCheckpoints {
  return env.AUDIT_CHECKPOINTS.getByName("audit") as unknown as AuditCheckpoints;
}

export type CheckpointOutcome =
  | CheckpointAppend
  /** The head has moved fewer than `minRows` rows since the latest checkpoint. */
  | { kind: "skipped"; latest: Checkpoint | null; rows: number };

/**
 * Signs the chain's head and appends it to the store, once the head has
 * moved at least `minRows` rows since the latest checkpoint (1: whenever it
 * moved). The store refuses a head behind its latest, or another hash for
 * a row it holds: the trail was rewritten, and the refusal says so. A
 * checkpoint the store holds is then recorded in Postgres and sent as an
 * `audit.checkpoint` notice to the destinations that ask for them (both
 * once, whoever gets there first: a checkpoint recorded late, after a
 * failure, is recorded by the next call).
 */
export async function takeCheckpoint(
  db: Database,
  env: Pick<Env, "AUDIT_CHECKPOINTS" | "AUDIT_SIGNING_KEY" | "ALERT_DELIVERIES">,
  now: Date,
  minRows = 1,
): Promise<CheckpointOutcome> {
  const key = await importSigningKey(env.AUDIT_SIGNING_KEY);
  const [head] = (
    await db.execute<{ seq: string; hash: string }>(
      sql`SELECT seq, hash FROM audit_chain_head WHERE id = 1`,
    )
  ).rows;
  if (!head) throw new Error("the audit chain has no head row");
  const store = checkpointStore(env);
  const latest = await store.latest();
  const rows = Number(head.seq) - (latest?.seq ?? 0);
  if (latest && rows >= 0 && rows < Math.max(1, minRows)) {
    if (rows > 0) return { kind: "skipped", latest, rows };
    await recordCheckpoint(db, env, latest);
    return { kind: "unchanged", checkpoint: latest };
  }
  const outcome = await store.append(
    await signCheckpoint(key, { seq: Number(head.seq), hash: head.hash }, now),
  );
  if (outcome.kind === "refused") {
    console.error(
      JSON.stringify({ level: "error", event: "audit.checkpoint_refused", reason: outcome.reason }),
    );
    return outcome;
  }
  await recordCheckpoint(db, env, outcome.checkpoint);
  return outcome;
}

/**
 * The database's own record of a checkpoint the store holds, and its
 * notice, in one transaction; the notice is queued once it commits.
 * Nothing happens for a checkpoint recorded already.
 */
async function recordCheckpoint(
  db: Database,
  env: Pick<Env, "ALERT_DELIVERIES">,
  checkpoint: Checkpoint,
): Promise<void> {
  const deliveries = await db.transaction(async (tx) => {
    const { rows } = await tx.execute<{ rows: string }>(sql`
      INSERT INTO audit_checkpoints (seq, hash, at, key_id, signature)
      VALUES (${checkpoint.seq}, ${checkpoint.hash}, ${checkpoint.at}, ${checkpoint.keyId},
        ${checkpoint.signature})
      ON CONFLICT (seq) DO NOTHING
      RETURNING seq - coalesce(
        (SELECT max(c.seq) FROM audit_checkpoints c WHERE c.seq < ${checkpoint.seq}), 0) AS rows`);
    const recorded = rows[0];
    if (!recorded) return [];
    const event: CheckpointEvent = {
      type: "audit.checkpoint",
      checkpoint,
      rows: Number(recorded.rows),
    };
    return createNotice(tx, {
      type: "audit.checkpoint",
      model: SYSTEM_MODEL,
      severity: null,
      key: `audit.checkpoint:${checkpoint.seq}`,
      payload: event,
    });
  });
  await enqueueNotices(env.ALERT_DELIVERIES, deliveries);
}

/** Whether rows `from`..`to` (sequence numbers) cross a multiple of CHECKPOINT_EVERY_ROWS. */
export function crossesCheckpoint(seqs: (number | null)[]): boolean {
  const numbers = seqs.filter((s): s is number => s !== null);
  if (numbers.length === 0) return false;
  const last = Math.max(...numbers);
  const first = Math.min(...numbers);
  return Math.floor(last / CHECKPOINT_EVERY_ROWS) > Math.floor((first - 1) / CHECKPOINT_EVERY_ROWS);
}

/**
 * A checkpoint in the background, on a connection of its own (the
 * request's may be gone): once enough rows have been added since the
 * latest, or whenever the head moved (`minRows` 1, the hourly job). Never
 * fails its caller; a failure is logged.
 */
export async function checkpointInBackground(env: Env, minRows: number): Promise<string> {
  const handle = openDatabase(env);
  try {
    return (await takeCheckpoint(handle.db, env, new Date(), minRows)).kind;
  } catch (error) {
    console.error(
      JSON.stringify({
        level: "error",
        event: "audit.checkpoint_failed",
        error: describeError(error),
      }),
    );
    return "failed";
  } finally {
    await handle.close();
  }
}
