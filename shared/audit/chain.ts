/**
 * The audit trail's hash chain, as the database writes it (migration 0021,
 * trigger `audit_log_chain`) and as anyone checks it: row `seq` stores its
 * content as canonical text, the previous row's hash, and
 * `hash = hex(SHA-256(prev_hash || "\n" || content))`, from a first
 * `prev_hash` of 64 zeros. Checking needs the rows alone: no trust in the
 * server that wrote them, only in a checkpoint of the head kept elsewhere.
 */

export const GENESIS_PREV_HASH = "0".repeat(64);

export interface ChainRow {
  seq: number;
  content: string;
  prevHash: string;
  hash: string;
}

/** Where a check starts: the row before the first one checked (seq 0: the start). */
export interface ChainPoint {
  seq: number;
  hash: string;
}

export const CHAIN_START: ChainPoint = { seq: 0, hash: GENESIS_PREV_HASH };

/**
 * How a row breaks the chain. The first five are seen in the rows alone;
 * `columns` (edited in place), `prior_rows` (rows before the chain changed)
 * and `tail` (rows cut from the end) need the database or a checkpoint.
 */
export type ChainBreak =
  | "gap"
  | "prev_hash"
  | "hash"
  | "content_seq"
  | "content_unreadable"
  | "columns"
  | "prior_rows"
  | "tail"
  | "checkpoint"
  | "recorded_checkpoint";

export interface BrokenRow {
  /** The first row that does not follow (for a gap: the sequence number missing). */
  seq: number;
  reason: ChainBreak;
  /** In words, for people. */
  message: string;
}

export type ChainCheck =
  | { ok: true; checked: number; head: ChainPoint }
  | { ok: false; checked: number; head: ChainPoint; broken: BrokenRow };

const encoder = new TextEncoder();

/** Lowercase hex, as Postgres's `encode(…, 'hex')` writes it (local, so Node loads this file as is). */
function hex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}

export async function chainHash(prevHash: string, content: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", encoder.encode(`${prevHash}\n${content}`));
  return hex(new Uint8Array(digest));
}

/** SHA-256 of texts joined by newlines (the genesis row's digest of the rows before the chain). */
export async function digestOfLines(lines: string[]): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", encoder.encode(lines.join("\n")));
  return hex(new Uint8Array(digest));
}

/**
 * Checks rows in sequence order from `from` (the row before them): each
 * follows the one before (no gap, its `prev_hash` is that row's hash), its
 * hash is the hash of its stored content, and the content names its own
 * sequence number (so rows cannot be swapped). Stops at the first break.
 */
export async function verifyChain(rows: Iterable<ChainRow>, from: ChainPoint): Promise<ChainCheck> {
  let head = from;
  let checked = 0;
  const broken = (seq: number, reason: ChainBreak, message: string): ChainCheck => ({
    ok: false,
    checked,
    head,
    broken: { seq, reason, message },
  });
  for (const row of rows) {
    if (row.seq !== head.seq + 1) {
      return broken(
        head.seq + 1,
        "gap",
        `row ${head.seq + 1} is missing: the row after ${head.seq} is ${row.seq}`,
      );
    }
    if (row.prevHash !== head.hash) {
      return broken(
        row.seq,
        "prev_hash",
        `row ${row.seq} does not follow row ${head.seq}: its previous hash is not that row's hash`,
      );
    }
    let contentSeq: unknown;
    try {
      contentSeq = (JSON.parse(row.content) as { seq?: unknown }).seq;
    } catch {
      return broken(row.seq, "content_unreadable", `row ${row.seq}'s content is not JSON`);
    }
    if (contentSeq !== row.seq) {
      return broken(
        row.seq,
        "content_seq",
        `row ${row.seq}'s content is that of row ${String(contentSeq)}: rows were moved`,
      );
    }
    if ((await chainHash(row.prevHash, row.content)) !== row.hash) {
      return broken(
        row.seq,
        "hash",
        `row ${row.seq}'s content does not match its hash: it was changed after it was written`,
      );
    }
    head = { seq: row.seq, hash: row.hash };
    checked += 1;
  }
  return { ok: true, checked, head };
}
