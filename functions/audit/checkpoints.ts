import { sql } from "drizzle-orm";
import type { AuditCheckpoints, CheckpointAppend } from "../../durable-objects/audit-checkpoints";
import { type Checkpoint, importSigningKey, signCheckpoint } from "../../shared/audit/checkpoint";
import { openDatabase, type Queryable } from "../../shared/db/client";
import { describeError } from "../../shared/errors";

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
 * a row it holds: the trail was rewritten, and the refusal says so.
 */
export async function takeCheckpoint(
  db: Queryable,
  env: Pick<Env, "AUDIT_CHECKPOINTS" | "AUDIT_SIGNING_KEY">,
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
  if (latest && rows >= 0 && rows < Math.max(1, minRows))
    return rows === 0
      ? { kind: "unchanged", checkpoint: latest }
      : { kind: "skipped", latest, rows };
  const outcome = await store.append(
    await signCheckpoint(key, { seq: Number(head.seq), hash: head.hash }, now),
  );
  if (outcome.kind === "refused")
    console.error(
      JSON.stringify({ level: "error", event: "audit.checkpoint_refused", reason: outcome.reason }),
    );
  return outcome;
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
