import { sql } from "drizzle-orm";
import {
  type BrokenRow,
  CHAIN_START,
  type ChainPoint,
  type ChainRow,
  digestOfLines,
  verifyChain,
} from "../../shared/audit/chain";
import type { Checkpoint } from "../../shared/audit/checkpoint";
import type { Queryable } from "../../shared/db/client";

/** Rows read per query while verifying. */
const PAGE = 1000;

export interface TrailVerification {
  ok: boolean;
  /** The row the check started after (0: the start of the chain). */
  from: ChainPoint;
  /** Rows checked, and the last one that held. */
  checked: number;
  head: ChainPoint;
  /** Whether the check reached the end of the trail (otherwise `next` resumes it). */
  complete: boolean;
  next: ChainPoint | null;
  /** The first row that breaks the chain, and how. */
  broken: BrokenRow | null;
  /** The database's own record of the chain's head. */
  recordedHead: ChainPoint | null;
  /** The signed checkpoint the trail was held to, if any: the store's, outside Postgres. */
  checkpoint: { seq: number; hash: string; at: string } | null;
  /** The latest checkpoint in the database's own record (audit_checkpoints). */
  recordedCheckpoint: { seq: number; hash: string; at: string } | null;
}

interface StoredRow extends Record<string, unknown> {
  seq: string | number;
  content: string;
  prev_hash: string;
  hash: string;
  /** Whether the row's columns still say what its hashed content says. */
  matches: boolean;
}

/**
 * Recomputes the audit chain from `from` (the start, or a point already
 * known good, such as a checkpoint) over at most `limit` rows, in pages.
 * Besides the chain itself (shared/audit/chain.ts), it checks what only the
 * database can: each row's columns against its hashed content (an edit in
 * place), the rows before the chain against the genesis row's digest, and
 * the end of the trail against the recorded head (a cut tail).
 */
export async function verifyTrail(
  db: Queryable,
  options: { from?: ChainPoint; limit: number; checkpoint?: Checkpoint | null },
): Promise<TrailVerification> {
  const checkpoint = options.checkpoint
    ? { seq: options.checkpoint.seq, hash: options.checkpoint.hash, at: options.checkpoint.at }
    : null;
  const from = options.from ?? CHAIN_START;
  const [recorded] = (
    await db.execute<{ seq: string; hash: string }>(
      sql`SELECT seq, hash FROM audit_chain_head WHERE id = 1`,
    )
  ).rows;
  const recordedHead = recorded ? { seq: Number(recorded.seq), hash: recorded.hash } : null;
  const [latestRecorded] = (
    await db.execute<{ seq: string; hash: string; at: string }>(
      sql`SELECT seq, hash, at FROM audit_checkpoints ORDER BY seq DESC LIMIT 1`,
    )
  ).rows;
  const recordedCheckpoint = latestRecorded
    ? { seq: Number(latestRecorded.seq), hash: latestRecorded.hash, at: latestRecorded.at }
    : null;
  const result = (fields: Partial<TrailVerification>): TrailVerification => ({
    ok: fields.broken === undefined || fields.broken === null,
    from,
    checked: 0,
    head: from,
    complete: false,
    next: null,
    broken: null,
    recordedHead,
    checkpoint,
    recordedCheckpoint,
    ...fields,
  });

  if (from.seq === 0) {
    const prior = await priorRowsBroken(db);
    if (prior) return result({ broken: prior, complete: true });
  }

  let head = from;
  let checked = 0;
  while (checked < options.limit) {
    const size = Math.min(PAGE, options.limit - checked);
    const { rows } = await db.execute<StoredRow>(sql`
      SELECT a.seq, a.content, a.prev_hash, a.hash,
        a.content IS NOT NULL AND a.content::jsonb = audit_content(a) AS matches
      FROM audit_log a WHERE a.seq > ${head.seq} ORDER BY a.seq LIMIT ${size}`);
    if (rows.length === 0) break;
    const chain: ChainRow[] = rows.map((row) => ({
      seq: Number(row.seq),
      content: row.content ?? "",
      prevHash: row.prev_hash ?? "",
      hash: row.hash ?? "",
    }));
    const check = await verifyChain(chain, head);
    // An edit in place shows as columns that no longer say what was hashed.
    const edited = rows.findIndex((row) => !row.matches);
    const editedSeq = edited < 0 ? null : Number(rows[edited]?.seq);
    if (editedSeq !== null && (check.ok || editedSeq < check.broken.seq)) {
      return result({
        checked: checked + (editedSeq - head.seq - 1),
        head: { seq: editedSeq - 1, hash: chain[edited - 1]?.hash ?? head.hash },
        broken: {
          seq: editedSeq,
          reason: "columns",
          message: `row ${editedSeq}'s columns differ from its hashed content: it was edited in place`,
        },
      });
    }
    if (!check.ok)
      return result({ checked: checked + check.checked, head: check.head, broken: check.broken });
    checked += check.checked;
    head = check.head;
    if (rows.length < size) break;
  }
  const more =
    (
      await db.execute<{ more: boolean }>(
        sql`SELECT EXISTS (SELECT 1 FROM audit_log WHERE seq > ${head.seq}) AS more`,
      )
    ).rows[0]?.more ?? false;
  if (more) return result({ checked, head, next: head });
  /** The whole trail was read, and `broken` is what it fails. */
  const ended = (broken: BrokenRow) => result({ checked, head, complete: true, broken });
  if (checkpoint && checkpoint.seq > head.seq) {
    return ended({
      seq: head.seq + 1,
      reason: "checkpoint",
      message: `the trail ends at row ${head.seq}, before row ${checkpoint.seq} of the checkpoint signed ${checkpoint.at}: rows were cut, with the database's own record of its head`,
    });
  }
  if (checkpoint && checkpoint.seq > from.seq) {
    const [row] = (
      await db.execute<{ hash: string }>(
        sql`SELECT hash FROM audit_log WHERE seq = ${checkpoint.seq}`,
      )
    ).rows;
    if (row?.hash !== checkpoint.hash)
      return ended({
        seq: checkpoint.seq,
        reason: "checkpoint",
        message: `row ${checkpoint.seq}'s hash is not the one signed in the checkpoint of ${checkpoint.at}: the trail up to it was rewritten`,
      });
  }
  if (recordedCheckpoint && recordedCheckpoint.seq > head.seq) {
    return ended({
      seq: head.seq + 1,
      reason: "tail",
      message: `the trail ends at row ${head.seq}, and the database's own record of its checkpoints has row ${recordedCheckpoint.seq}: rows were cut from the end`,
    });
  }
  if (recordedCheckpoint && recordedCheckpoint.seq > from.seq) {
    const [row] = (
      await db.execute<{ hash: string }>(
        sql`SELECT hash FROM audit_log WHERE seq = ${recordedCheckpoint.seq}`,
      )
    ).rows;
    if (row?.hash !== recordedCheckpoint.hash)
      return ended({
        seq: recordedCheckpoint.seq,
        reason: "recorded_checkpoint",
        message: `row ${recordedCheckpoint.seq}'s hash is not the one the database recorded for its checkpoint of ${recordedCheckpoint.at}: the trail up to it was rewritten`,
      });
  }
  // Rows appended since the head was read are no break; a trail short of it is.
  if (recordedHead && head.seq < recordedHead.seq) {
    return ended({
      seq: head.seq + 1,
      reason: "tail",
      message: `the trail ends at row ${head.seq}, and the database's head says ${recordedHead.seq}: rows were cut from the end`,
    });
  }
  return result({ checked, head, complete: true });
}

/** The rows written before the chain, against the digest the genesis row keeps of them. */
async function priorRowsBroken(db: Queryable): Promise<BrokenRow | null> {
  const [genesis] = (
    await db.execute<{ after: { priorRows?: number; priorDigest?: string } | null }>(
      sql`SELECT after FROM audit_log WHERE seq = 1 AND action = 'audit.genesis'`,
    )
  ).rows;
  if (!genesis) return null; // the chain's first row is checked as any other
  const { rows } = await db.execute<{ content: string }>(
    sql`SELECT audit_content(a)::text AS content FROM audit_log a WHERE a.seq IS NULL ORDER BY a.id`,
  );
  const digest = await digestOfLines(rows.map((r) => r.content));
  if (rows.length === genesis.after?.priorRows && digest === genesis.after?.priorDigest)
    return null;
  return {
    seq: 1,
    reason: "prior_rows",
    message: `the ${rows.length} rows written before the chain no longer match what its genesis row committed to (${genesis.after?.priorRows ?? "?"} rows)`,
  };
}
