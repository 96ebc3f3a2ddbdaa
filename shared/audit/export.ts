import {
  CHAIN_START,
  type ChainBreak,
  type ChainPoint,
  type ChainRow,
  digestOfLines,
  verifyChain,
} from "./chain.ts";
import { type Checkpoint, type PublicKey, verifyCheckpoint } from "./checkpoint.ts";

/**
 * An export of the audit trail (`GET /admin/audit/export`): NDJSON, one
 * object per line, in this order:
 *
 * 1. `header`: what the export covers (the rows after `from` up to `head`,
 *    the chain's head when the export started) and the public key the
 *    server says signs its checkpoints;
 * 2. `prior`: when `from` is the start, the content of each row written
 *    before the chain, in the order the genesis row digested them;
 * 3. `row`: each row of the chain, in sequence order, as stored: its
 *    content (the canonical text that was hashed), previous hash and hash;
 * 4. `checkpoint`: the signed checkpoints held outside the database;
 * 5. `end`: how many `prior`, `row` and `checkpoint` lines came before, so a
 *    cut download is told from a cut trail.
 *
 * Nothing in it is trusted by the offline verifier but the arithmetic:
 * `npm run audit:verify` recomputes every hash, and holds the rows to a
 * checkpoint and public key the auditor kept elsewhere.
 */

export const EXPORT_FORMAT = "airlock-audit-export/v1";

export interface ExportHeader {
  type: "header";
  format: typeof EXPORT_FORMAT;
  exportedAt: string;
  /** The row the export starts after (seq 0: the start of the chain). */
  from: ChainPoint;
  /** The chain's head when the export started: the last row it holds. */
  head: ChainPoint;
  /** How many `prior` lines follow (0 unless `from` is the start). */
  priorRows: number;
  /** The key the server says signs its checkpoints: check it against one kept elsewhere. */
  publicKey: PublicKey | null;
}

export interface ExportPrior {
  type: "prior";
  content: string;
}

export interface ExportRow {
  type: "row";
  seq: number;
  prevHash: string;
  hash: string;
  content: string;
}

export interface ExportCheckpoint extends Checkpoint {
  type: "checkpoint";
}

export interface ExportEnd {
  type: "end";
  priorRows: number;
  rows: number;
  checkpoints: number;
}

export type ExportLine = ExportHeader | ExportPrior | ExportRow | ExportCheckpoint | ExportEnd;

/** How an export fails: a chain break, or one of the export's own. */
export type ExportBreakReason =
  | ChainBreak
  /** The file itself: not an export, cut short, lines out of order or miscounted. */
  | "format"
  /** A checkpoint whose signature does not verify under the public key in use. */
  | "checkpoint_signature"
  /** The export names another signing key than the one given. */
  | "public_key";

export interface ExportBroken {
  /** The row it is about (0: the file as a whole, or its header). */
  seq: number;
  reason: ExportBreakReason;
  /** In words, for people. */
  message: string;
}

export interface ExportVerifyOptions {
  /** A checkpoint kept outside Airlock, trusted: the export must hold its row with its hash. */
  checkpoint?: Checkpoint;
  /** The public key kept outside Airlock; without it, the export's own is used. */
  publicKey?: PublicKey;
}

export interface ExportVerification {
  ok: boolean;
  /** The row the export starts after, as its header says (seq 0: the start of the chain). */
  from: ChainPoint;
  /** The last row that held. */
  head: ChainPoint;
  /** Rows checked. */
  rows: number;
  /** Rows from before the chain held to the genesis row's digest of them. */
  priorRows: number;
  /** The key checkpoints were checked under: the one given, or the export's own (null: none). */
  publicKey: { keyId: string; source: "given" | "export" } | null;
  /** The export's checkpoint lines held to its rows, and the latest of them. */
  checkpoints: { checked: number; latest: { seq: number; hash: string; at: string } | null };
  /** The checkpoint kept elsewhere (`options.checkpoint`), once the export held to it. */
  trusted: { seq: number; hash: string; at: string; keyId: string } | null;
  /** The first thing that breaks, or null. */
  broken: ExportBroken | null;
  /** What could not be checked, or is trusted only on the export's word. */
  warnings: string[];
}

const STAGES = { header: 1, prior: 2, row: 3, checkpoint: 4, end: 5 } as const;
type LineType = keyof typeof STAGES;

/** Thrown to stop at the first break. */
class Stop extends Error {
  broken: ExportBroken;
  constructor(broken: ExportBroken) {
    super(broken.message);
    this.broken = broken;
  }
}

const stop = (seq: number, reason: ExportBreakReason, message: string) =>
  new Stop({ seq, reason, message });
const malformed = (message: string) => stop(0, "format", message);

/**
 * The rows' hashes, 32 bytes each in one growing buffer, for the
 * checkpoint lines that come after the rows: a few dozen megabytes for a
 * million rows.
 */
class RowHashes {
  private bytes = new Uint8Array(32 * 1024);
  private count = 0;
  private readonly first: number;
  constructor(first: number) {
    this.first = first;
  }

  push(hash: string): void {
    if ((this.count + 1) * 32 > this.bytes.length) {
      const grown = new Uint8Array(this.bytes.length * 2);
      grown.set(this.bytes);
      this.bytes = grown;
    }
    const at = this.count * 32;
    for (let i = 0; i < 32; i++)
      this.bytes[at + i] = Number.parseInt(hash.slice(i * 2, i * 2 + 2), 16);
    this.count += 1;
  }

  get(seq: number): string | undefined {
    const index = seq - this.first;
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.count) return undefined;
    let out = "";
    for (const byte of this.bytes.subarray(index * 32, index * 32 + 32))
      out += byte.toString(16).padStart(2, "0");
    return out;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const isCount = (value: unknown): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0;

function isPoint(value: unknown): value is ChainPoint {
  return isObject(value) && isCount(value.seq) && typeof value.hash === "string";
}

/** Whether a value is a public key as published (its id is another matter). */
export function isPublicKey(value: unknown): value is PublicKey {
  return (
    isObject(value) &&
    typeof value.keyId === "string" &&
    isObject(value.jwk) &&
    value.jwk.kty === "OKP" &&
    value.jwk.crv === "Ed25519" &&
    typeof value.jwk.x === "string"
  );
}

/** Whether a value has a checkpoint's fields (its signature is another matter). */
export function isCheckpoint(value: unknown): value is Checkpoint {
  return (
    isObject(value) &&
    isCount(value.seq) &&
    typeof value.hash === "string" &&
    typeof value.at === "string" &&
    typeof value.keyId === "string" &&
    typeof value.signature === "string"
  );
}

async function signedBy(checkpoint: Checkpoint, key: PublicKey): Promise<boolean> {
  try {
    return await verifyCheckpoint(checkpoint, key);
  } catch {
    return false; // a key that does not import verifies nothing
  }
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/**
 * Checks an export (its NDJSON lines, read as they come) with nothing but
 * the arithmetic and what the caller kept elsewhere: the file is whole and
 * in order, the rows from before the chain match the genesis row, every
 * row follows the one before and hashes to its hash, the rows reach the
 * head the header announced, the export's checkpoints are signed and hold
 * their rows' hashes, and the trusted checkpoint's row is in the export
 * with exactly its hash. Stops at the first break. Web Crypto only: runs in
 * Node and in the Worker alike.
 */
export async function verifyExport(
  lines: Iterable<string> | AsyncIterable<string>,
  options: ExportVerifyOptions = {},
): Promise<ExportVerification> {
  const check = new ExportCheck(options);
  try {
    let number = 0;
    for await (const text of lines) {
      number += 1;
      if (text.trim() !== "") await check.line(text, number);
    }
    await check.finish(number);
  } catch (error) {
    if (error instanceof Stop) return check.result(error.broken);
    throw error;
  }
  return check.result(null);
}

class ExportCheck {
  private readonly options: ExportVerifyOptions;
  private header: ExportHeader | null = null;
  private stage = 0;
  private key: PublicKey | null = null;
  private from: ChainPoint = CHAIN_START;
  private head: ChainPoint = CHAIN_START;
  private rows = 0;
  private rowLines = 0;
  private hashes = new RowHashes(1);
  private prior: string[] = [];
  private priorLines = 0;
  private priorChecked = 0;
  /** Checked once the rows are all in and the file is whole. */
  private checkpointLines: Checkpoint[] = [];
  private checked = 0;
  private latest: ExportVerification["checkpoints"]["latest"] = null;
  private trusted: ExportVerification["trusted"] = null;
  private ended = false;
  private readonly warnings: string[] = [];

  constructor(options: ExportVerifyOptions) {
    this.options = options;
  }

  result(broken: ExportBroken | null): ExportVerification {
    return {
      ok: broken === null,
      from: this.from,
      head: this.head,
      rows: this.rows,
      priorRows: this.priorChecked,
      publicKey: this.key
        ? { keyId: this.key.keyId, source: this.options.publicKey ? "given" : "export" }
        : null,
      checkpoints: { checked: this.checked, latest: this.latest },
      trusted: this.trusted,
      broken,
      warnings: this.warnings,
    };
  }

  async line(text: string, number: number): Promise<void> {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw malformed(
        this.stage === 0
          ? `line ${number} is not JSON: the file is not an audit export`
          : `line ${number} is not JSON: the export is malformed (or cut in the middle of a line)`,
      );
    }
    const type = isObject(value) ? value.type : undefined;
    if (typeof type !== "string" || !Object.hasOwn(STAGES, type)) {
      throw malformed(
        this.stage === 0
          ? `line ${number} is not an audit export's header: the file is not an audit export`
          : `line ${number} is not a line of an audit export (its type is ${JSON.stringify(type ?? null)})`,
      );
    }
    const record = value as Record<string, unknown>;
    const stage = STAGES[type as LineType];
    if (this.stage === STAGES.end)
      throw malformed(`line ${number} comes after the end line: the export is malformed`);
    if (this.stage === 0 && type !== "header")
      throw malformed(
        `line ${number} is a ${type} line before the header: the export is malformed`,
      );
    if (type === "header" && this.stage > 0)
      throw malformed(
        `line ${number} is a second header: the export is malformed (two exports joined?)`,
      );
    if (stage < this.stage)
      throw malformed(
        `line ${number} is a ${type} line after ${this.stage === STAGES.row ? "the rows" : `the ${stageName(this.stage)} lines`}: the lines are out of order`,
      );
    if (this.stage <= STAGES.prior && stage > STAGES.prior && this.header) this.priorsDone();
    this.stage = stage;
    switch (type as LineType) {
      case "header":
        return this.readHeader(record);
      case "prior":
        return this.readPrior(record, number);
      case "row":
        return this.readRow(record, number);
      case "checkpoint":
        if (!isCheckpoint(record))
          throw malformed(
            `line ${number} is a checkpoint line without its seq, hash, at, keyId and signature: the export is malformed`,
          );
        this.checkpointLines.push(record);
        return;
      case "end":
        return this.readEnd(record, number);
    }
  }

  private async readHeader(record: Record<string, unknown>): Promise<void> {
    if (record.format !== EXPORT_FORMAT)
      throw malformed(
        typeof record.format === "string"
          ? `the export's format is ${record.format}, and this verifier reads ${EXPORT_FORMAT}`
          : `the header names no format: the file is not an audit export (${EXPORT_FORMAT})`,
      );
    if (
      !isPoint(record.from) ||
      !isPoint(record.head) ||
      !isCount(record.priorRows) ||
      typeof record.exportedAt !== "string" ||
      !(record.publicKey === null || isPublicKey(record.publicKey))
    )
      throw malformed(
        "the header lacks what an export's header holds (from, head, priorRows, exportedAt, publicKey): the export is malformed",
      );
    const header = record as unknown as ExportHeader;
    if (header.head.seq < header.from.seq)
      throw malformed(
        `the header says the export runs from row ${header.from.seq} to row ${header.head.seq}, which is backwards: the export is malformed`,
      );
    this.header = header;
    this.from = { seq: header.from.seq, hash: header.from.hash };
    this.head = this.from;
    this.hashes = new RowHashes(header.from.seq + 1);

    const given = this.options.publicKey;
    if (given && header.publicKey && header.publicKey.keyId !== given.keyId)
      throw stop(
        0,
        "public_key",
        `the export says its checkpoints are signed by key ${header.publicKey.keyId}, and the public key given is ${given.keyId}: it is not Airlock's export, or Airlock's key was replaced`,
      );
    this.key = given ?? header.publicKey;
    if (!given && header.publicKey)
      this.warnings.push(
        `the public key (id ${header.publicKey.keyId}) came from the export itself: compare it with one kept elsewhere`,
      );

    const trusted = this.options.checkpoint;
    if (!trusted) {
      this.warnings.push(
        "no checkpoint kept elsewhere was given: a trail rewritten from some row to its end, checkpoints in the export included, would verify too",
      );
      return;
    }
    const named = `the checkpoint of row ${trusted.seq} signed ${trusted.at}`;
    if (!this.key) {
      this.warnings.push(
        `the signature of ${named} was not checked, as there is no public key: it was held to the rows all the same`,
      );
    } else if (trusted.keyId !== this.key.keyId) {
      throw stop(
        trusted.seq,
        "checkpoint_signature",
        `${named} names key ${trusted.keyId}, and the public key in use is ${this.key.keyId}: its signature cannot be checked`,
      );
    } else if (!(await signedBy(trusted, this.key))) {
      throw stop(
        trusted.seq,
        "checkpoint_signature",
        `${named} does not verify under public key ${this.key.keyId}: it was forged or altered`,
      );
    }
    if (trusted.seq <= header.from.seq)
      throw stop(
        trusted.seq,
        "checkpoint",
        `the export starts after row ${header.from.seq}, and ${named} is of row ${trusted.seq}: it cannot be checked against this export (export from an earlier row)`,
      );
  }

  private readPrior(record: Record<string, unknown>, number: number): void {
    if (typeof record.content !== "string")
      throw malformed(
        `line ${number} is a prior line without its content: the export is malformed`,
      );
    this.priorLines += 1;
    // Only a chain's start commits to them; kept until the genesis row comes.
    if (this.from.seq === 0) this.prior.push(record.content);
  }

  /** Once the rows from before the chain have all come. */
  private priorsDone(): void {
    const announced = this.header?.priorRows ?? 0;
    if (this.priorLines !== announced)
      throw malformed(
        `the header announces ${plural(announced, "row")} from before the chain, and the export holds ${this.priorLines}: the export is malformed`,
      );
    if (this.priorLines > 0 && this.from.seq > 0)
      this.warnings.push(
        `the export holds ${plural(this.priorLines, "row")} from before the chain, and starts after row ${this.from.seq}: they were not checked`,
      );
  }

  private async readRow(record: Record<string, unknown>, number: number): Promise<void> {
    if (
      typeof record.seq !== "number" ||
      !Number.isSafeInteger(record.seq) ||
      typeof record.prevHash !== "string" ||
      typeof record.hash !== "string" ||
      typeof record.content !== "string"
    )
      throw malformed(
        `line ${number} is a row line without its seq, prevHash, hash and content: the export is malformed`,
      );
    this.rowLines += 1;
    const row: ChainRow = {
      seq: record.seq,
      content: record.content,
      prevHash: record.prevHash,
      hash: record.hash,
    };
    const check = await verifyChain([row], this.head);
    if (!check.ok) throw stop(check.broken.seq, check.broken.reason, check.broken.message);
    if (row.seq === 1 && this.from.seq === 0) await this.checkGenesis(row);
    const trusted = this.options.checkpoint;
    if (trusted && row.seq === trusted.seq) {
      if (row.hash !== trusted.hash)
        throw stop(
          row.seq,
          "checkpoint",
          `row ${row.seq}'s hash is not the one signed in the checkpoint of ${trusted.at}: the trail up to it was rewritten`,
        );
      this.trusted = { seq: trusted.seq, hash: trusted.hash, at: trusted.at, keyId: trusted.keyId };
    }
    const header = this.header as ExportHeader;
    if (row.seq === header.head.seq && row.hash !== header.head.hash)
      throw malformed(
        `the header announces row ${row.seq} as the head with another hash than row ${row.seq} in the export: the header or the rows were changed after the export`,
      );
    // The row holds.
    this.head = check.head;
    this.rows += 1;
    this.hashes.push(row.hash);
  }

  /** The genesis row commits to the rows from before the chain: their count and digest. */
  private async checkGenesis(row: ChainRow): Promise<void> {
    const content = JSON.parse(row.content) as { action?: unknown; after?: unknown };
    const prior = this.prior;
    this.prior = [];
    if (content.action !== "audit.genesis") {
      if (prior.length > 0)
        this.warnings.push(
          `row 1 is not a genesis row: the ${plural(prior.length, "row")} from before the chain were not checked`,
        );
      return;
    }
    const after = isObject(content.after) ? content.after : {};
    const committed = isCount(after.priorRows) ? after.priorRows : null;
    if (prior.length !== committed)
      throw stop(
        1,
        "prior_rows",
        `the export holds ${plural(prior.length, "row")} from before the chain, and the genesis row (row 1) committed to ${committed ?? "an unreadable number"}: rows from before the chain were removed or added`,
      );
    if ((await digestOfLines(prior)) !== after.priorDigest)
      throw stop(
        1,
        "prior_rows",
        `the ${plural(prior.length, "row")} from before the chain no longer match the digest the genesis row (row 1) committed to: one was changed`,
      );
    this.priorChecked = prior.length;
  }

  private readEnd(record: Record<string, unknown>, number: number): void {
    if (!isCount(record.priorRows) || !isCount(record.rows) || !isCount(record.checkpoints))
      throw malformed(
        `line ${number} is an end line without its counts (priorRows, rows, checkpoints): the export is malformed`,
      );
    const seen = [this.priorLines, this.rowLines, this.checkpointLines.length];
    const counted = [record.priorRows, record.rows, record.checkpoints];
    if (counted.some((count, i) => count !== seen[i]))
      throw malformed(
        `the end line counts ${counted[0]} rows from before the chain, ${counted[1]} rows and ${counted[2]} checkpoints, and the export holds ${seen[0]}, ${seen[1]} and ${seen[2]}: lines were lost or added`,
      );
    this.ended = true;
  }

  async finish(lines: number): Promise<void> {
    const header = this.header;
    if (!header) throw malformed("the export is empty");
    if (!this.ended)
      throw malformed(
        `the export has no end line: it was cut off after line ${lines} (a download cut short?)`,
      );
    const trusted = this.options.checkpoint;
    if (trusted && trusted.seq > this.head.seq)
      throw stop(
        this.head.seq + 1,
        "checkpoint",
        `the export ends at row ${this.head.seq}, before row ${trusted.seq} of the checkpoint signed ${trusted.at}: rows were cut`,
      );
    if (this.head.seq < header.head.seq)
      throw stop(
        this.head.seq + 1,
        "tail",
        `the export ends at row ${this.head.seq}, before row ${header.head.seq}, the head its header announced: rows were cut from the end`,
      );
    await this.checkCheckpointLines();
  }

  /** The export's own checkpoints: signed under the key in use, and holding their rows' hashes. */
  private async checkCheckpointLines(): Promise<void> {
    const key = this.key;
    let before = 0;
    let unsigned = 0;
    const otherKeys = new Set<string>();
    for (const checkpoint of this.checkpointLines) {
      const named = `the checkpoint of row ${checkpoint.seq} signed ${checkpoint.at} in the export`;
      if (checkpoint.seq <= this.from.seq) {
        before += 1;
        continue;
      }
      if (!key) unsigned += 1;
      else if (checkpoint.keyId !== key.keyId) otherKeys.add(checkpoint.keyId);
      else if (!(await signedBy(checkpoint, key)))
        throw stop(
          checkpoint.seq,
          "checkpoint_signature",
          `${named} does not verify under public key ${key.keyId}: it was forged or altered`,
        );
      // The server reads its checkpoints before the head: each signs a row the export reaches.
      if (checkpoint.seq > this.head.seq)
        throw stop(
          this.head.seq + 1,
          "checkpoint",
          `the export ends at row ${this.head.seq}, before row ${checkpoint.seq} of the checkpoint signed ${checkpoint.at} in the export: rows were cut`,
        );
      if (this.hashes.get(checkpoint.seq) !== checkpoint.hash)
        throw stop(
          checkpoint.seq,
          "checkpoint",
          `row ${checkpoint.seq}'s hash is not the one signed in the export's checkpoint of ${checkpoint.at}: the trail up to it was rewritten`,
        );
      this.checked += 1;
      if (!this.latest || checkpoint.seq >= this.latest.seq)
        this.latest = { seq: checkpoint.seq, hash: checkpoint.hash, at: checkpoint.at };
    }
    if (unsigned > 0)
      this.warnings.push(
        `there is no public key: the signatures of ${plural(unsigned, "checkpoint")} in the export were not checked`,
      );
    if (otherKeys.size > 0)
      this.warnings.push(
        `checkpoints in the export signed by another key (${[...otherKeys].join(", ")}) than the one in use (${key?.keyId}): their signatures were not checked`,
      );
    if (before > 0)
      this.warnings.push(
        `${plural(before, "checkpoint")} of rows up to row ${this.from.seq}, where the export starts, could not be checked`,
      );
  }
}

function stageName(stage: number): string {
  return (Object.keys(STAGES) as LineType[]).find((name) => STAGES[name] === stage) ?? "";
}
