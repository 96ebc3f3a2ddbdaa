import { DurableObject } from "cloudflare:workers";
import type { Checkpoint } from "../shared/audit/checkpoint";

/** What the store says to a checkpoint offered to it. */
export type CheckpointAppend =
  | { kind: "stored"; checkpoint: Checkpoint }
  /** The same head as the latest: nothing new to keep. */
  | { kind: "unchanged"; checkpoint: Checkpoint }
  /** Behind the latest, or the same row with another hash: refused, and kept as evidence. */
  | { kind: "refused"; reason: string; latest: Checkpoint };

/**
 * The audit chain's checkpoints, kept outside Postgres: one object
 * (`getByName("audit")`) with its own SQLite storage, which an attacker
 * holding the database cannot reach. It appends and never rewrites: a
 * checkpoint must move the head forward, and one that would move it back,
 * or claim another hash for a row already checkpointed, is refused and
 * recorded as a conflict, because it means the trail was rewritten.
 */
export class AuditCheckpoints extends DurableObject<Env> {
  #sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS checkpoints (
      seq INTEGER PRIMARY KEY, hash TEXT NOT NULL, at TEXT NOT NULL,
      key_id TEXT NOT NULL, signature TEXT NOT NULL)`);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS conflicts (
      id INTEGER PRIMARY KEY AUTOINCREMENT, offered TEXT NOT NULL, reason TEXT NOT NULL,
      at TEXT NOT NULL)`);
  }

  /** Appends a checkpoint that moves the head forward. */
  append(checkpoint: Checkpoint): CheckpointAppend {
    const latest = this.latest();
    if (latest) {
      if (latest.seq === checkpoint.seq && latest.hash === checkpoint.hash)
        return { kind: "unchanged", checkpoint: latest };
      const known = this.at(checkpoint.seq);
      const reason =
        known && known.hash !== checkpoint.hash
          ? `row ${checkpoint.seq} was checkpointed with another hash: the trail was rewritten`
          : checkpoint.seq < latest.seq
            ? `the trail's head (${checkpoint.seq}) is behind the latest checkpoint (${latest.seq}): rows were cut`
            : null;
      if (reason) {
        this.#sql.exec(
          "INSERT INTO conflicts (offered, reason, at) VALUES (?, ?, ?)",
          JSON.stringify(checkpoint),
          reason,
          new Date().toISOString(),
        );
        return { kind: "refused", reason, latest };
      }
    }
    this.#sql.exec(
      "INSERT INTO checkpoints (seq, hash, at, key_id, signature) VALUES (?, ?, ?, ?, ?)",
      checkpoint.seq,
      checkpoint.hash,
      checkpoint.at,
      checkpoint.keyId,
      checkpoint.signature,
    );
    return { kind: "stored", checkpoint };
  }

  latest(): Checkpoint | null {
    return this.#read("SELECT * FROM checkpoints ORDER BY seq DESC LIMIT 1")[0] ?? null;
  }

  at(seq: number): Checkpoint | null {
    return this.#read("SELECT * FROM checkpoints WHERE seq = ?", seq)[0] ?? null;
  }

  /** Newest first, `before` a sequence number (for paging). */
  list(limit: number, before?: number): Checkpoint[] {
    return before === undefined
      ? this.#read("SELECT * FROM checkpoints ORDER BY seq DESC LIMIT ?", limit)
      : this.#read(
          "SELECT * FROM checkpoints WHERE seq < ? ORDER BY seq DESC LIMIT ?",
          before,
          limit,
        );
  }

  /** Checkpoints refused because they disagreed with what was kept. */
  conflicts(): { offered: Checkpoint; reason: string; at: string }[] {
    return this.#sql
      .exec<{ offered: string; reason: string; at: string }>(
        "SELECT offered, reason, at FROM conflicts ORDER BY id DESC LIMIT 100",
      )
      .toArray()
      .map((row) => ({
        offered: JSON.parse(row.offered) as Checkpoint,
        reason: row.reason,
        at: row.at,
      }));
  }

  #read(query: string, ...bindings: unknown[]): Checkpoint[] {
    return this.#sql
      .exec<{ seq: number; hash: string; at: string; key_id: string; signature: string }>(
        query,
        ...bindings,
      )
      .toArray()
      .map((row) => ({
        seq: row.seq,
        hash: row.hash,
        at: row.at,
        keyId: row.key_id,
        signature: row.signature,
      }));
  }
}
