// Many wire-protocol clients on one PGlite backend.
//
// PGlite is a single Postgres backend (single-user mode): one session, one
// transaction state, one unnamed prepared statement and portal. Clients may
// therefore only take turns at protocol boundaries: a startup packet, a simple
// Query, or an extended-protocol batch up to its Sync each run to completion
// (the backend's ReadyForQuery) before another client's messages are fed in,
// and a client that leaves the backend inside a transaction block keeps it
// until the transaction ends. Feeding messages one at a time in arrival order
// (what @electric-sql/pglite-socket does) interleaves Parse/Bind/Execute of
// different clients and breaks under concurrent transactions.

import type { PGlite } from "@electric-sql/pglite";
import {
  closeStatementMessage,
  errorResponse,
  executeMessage,
  type FrontendMessage,
  FrontendMessageReader,
  ProtocolError,
  parseMessage,
  queryMessage,
  ReadyForQueryScanner,
  readParse,
  readQueryText,
  readStartupPacket,
  startupMessage,
  syncMessage,
  typedMessage,
} from "./pg-wire.ts";
import type { WireTransport } from "./wire-transport.ts";

export type Log = (message: string) => void;

/** Stop reading from a client that has this much input waiting for its turn. */
const INPUT_PAUSE_BYTES = 4 << 20;
const INPUT_RESUME_BYTES = 1 << 20;

/** A portal name no client can use: executing it fails on purpose (see cleanup). */
const ABORT_PORTAL = "\u0001airlock abort";

interface Lease {
  release(): void;
}

/**
 * FIFO lock over the backend. Its holder also holds db.runExclusive, so
 * in-process users of the same PGlite (db.query and friends) wait for the
 * holder's transaction instead of running inside it.
 */
class BackendLock {
  readonly #db: PGlite;
  #held = false;
  #waiters: Array<{ owner: object; grant: (lease: Lease) => void; refuse: (e: Error) => void }> =
    [];

  constructor(db: PGlite) {
    this.#db = db;
  }

  acquire(owner: object): Promise<Lease> {
    return new Promise((grant, refuse) => {
      this.#waiters.push({ owner, grant, refuse });
      this.#grantNext();
    });
  }

  /** Withdraws the owner's pending acquire() (which then rejects). */
  cancel(owner: object): void {
    const remaining = [];
    for (const waiter of this.#waiters) {
      if (waiter.owner === owner) waiter.refuse(new Error("connection closed"));
      else remaining.push(waiter);
    }
    this.#waiters = remaining;
  }

  #grantNext(): void {
    if (this.#held) return;
    const waiter = this.#waiters.shift();
    if (!waiter) return;
    this.#held = true;
    this.#db
      .runExclusive(
        () =>
          new Promise<void>((releaseDb) => {
            let released = false;
            waiter.grant({
              release() {
                if (released) return;
                released = true;
                releaseDb();
              },
            });
          }),
      )
      .catch(() => {})
      .finally(() => {
        this.#held = false;
        this.#grantNext();
      });
  }
}

// COPY ... FROM STDIN makes the backend read past the message it was given;
// PGlite then treats the connection as lost and exits (and any later call
// spins forever). Refuse it with an ordinary SQL error, raised by the backend
// itself so that transaction and extended-protocol state stay exactly as for
// any failed statement. Anchored at statement starts to stay linear in the
// size of large queries.
const COPY_FROM_STDIN = /(?:^|;)\s*copy\b[^;]*?\bfrom\s+stdin\b/i;
const REFUSE_COPY_FROM_STDIN = `DO $airlock$ BEGIN RAISE EXCEPTION USING
  ERRCODE = 'feature_not_supported',
  MESSAGE = 'COPY FROM STDIN is not supported by the embedded database (PGlite)',
  HINT = 'Use INSERT statements, or run a real Postgres and set DATABASE_URL.'; END $airlock$`;

/**
 * PGlite shares one session between all clients, so named prepared statements
 * and portals of different clients would collide (two pooled connections both
 * preparing "get_user", say). Each client's names get its own prefix; the
 * unnamed ones are safe because a client's batch runs uninterrupted.
 */
class StatementNames {
  readonly #prefix: string;
  /** Backend-side names of this client's prepared statements, to close when it leaves. */
  readonly statements = new Set<string>();

  constructor(clientId: number) {
    this.#prefix = `${clientId}/`;
  }

  /** Rewrites the names in a Parse, Bind, Describe, Close or Execute message. */
  rewrite(type: string, bytes: Buffer): Buffer {
    // Bind names a portal and a statement; the others one name, after the
    // one-byte 'S'/'P' kind for Describe and Close.
    const start = type === "D" || type === "C" ? 6 : 5;
    const fields = splitCStrings(bytes, type === "B" ? 2 : 1, start);
    if (!fields) return bytes;
    const names = fields.strings.map((name) => (name === "" ? name : this.#prefix + name));
    const statement = names[0] ?? "";
    if (type === "P" && statement !== "") this.statements.add(statement);
    if (type === "C" && bytes[5] === 0x53 /* 'S' */) this.statements.delete(statement);
    if (names.every((name) => name === "")) return bytes;
    return typedMessage(
      type,
      Buffer.concat([
        bytes.subarray(5, start),
        ...names.map((name) => Buffer.from(`${name}\0`, "utf8")),
        fields.rest,
      ]),
    );
  }
}

function splitCStrings(
  bytes: Buffer,
  count: number,
  start: number,
): { strings: string[]; rest: Buffer } | undefined {
  const strings: string[] = [];
  let offset = start;
  for (let i = 0; i < count; i++) {
    const end = bytes.indexOf(0, offset);
    if (end < 0) return undefined;
    strings.push(bytes.toString("utf8", offset, end));
    offset = end + 1;
  }
  return { strings, rest: bytes.subarray(offset) };
}

function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === "object" && error !== null && "message" in error) {
    return String(error.message);
  }
  return String(error);
}

const discard = () => {};

/** Work queued on a connection, in order: messages for the backend, or a reply of our own. */
type Batch = { run: Buffer[] } | { reply: Buffer };

/** One client connection: parses its messages and runs them when it has the backend. */
class Session {
  readonly done: Promise<void>;
  readonly #mux: PgliteMultiplexer;
  readonly #transport: WireTransport;
  readonly #reader = new FrontendMessageReader();
  readonly #names: StatementNames;
  readonly #scanner = new ReadyForQueryScanner();
  /** Ready to run: the startup packet, a Query, an extended-protocol batch up to Sync or Flush, ... */
  #inbox: Batch[] = [];
  #inboxBytes = 0;
  /** Extended-protocol messages waiting for the Sync (or Flush) that ends their batch. */
  #group: Buffer[] = [];
  #groupBytes = 0;
  #paused = false;
  #lease: Lease | undefined;
  /** The backend has started on this client's messages and not yet sent ReadyForQuery. */
  #unitOpen = false;
  /** No more input is accepted; what is queued still runs (Terminate, peer closed). */
  #ended = false;
  /** Stop now: queued input is dropped (transport error, server shutting down, PGlite failed). */
  #aborted = false;
  /** How the connection is closed once the session is over. */
  #closeWith: "end" | "destroy" = "end";
  #wake: (() => void) | undefined;

  constructor(mux: PgliteMultiplexer, transport: WireTransport, id: number) {
    this.#mux = mux;
    this.#transport = transport;
    this.#names = new StatementNames(id);
    transport.start({
      data: (chunk) => this.#receive(chunk),
      closed: (error) => {
        // A clean close still runs what the client sent before it (say a
        // COMMIT right before hanging up); a reset does not, as in Postgres.
        if (error) {
          this.#mux.log(`${transport.description}: ${error.message}`);
          this.#aborted = true;
        }
        this.#ended = true;
        this.#notify();
      },
    });
    this.done = this.#run();
  }

  /** Server shutdown: drops the connection now, rolling back whatever it left open. */
  abort(): void {
    this.#aborted = true;
    this.#ended = true;
    this.#closeWith = "destroy";
    this.#mux.lock.cancel(this);
    this.#transport.destroy();
    this.#notify();
  }

  /** PGlite failed: tells the client why and lets the error reach it before closing. */
  failed(message: string): void {
    this.#transport.write(errorResponse("FATAL", "XX000", message));
    this.#aborted = true;
    this.#ended = true;
    this.#mux.lock.cancel(this);
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #receive(chunk: Buffer): void {
    if (this.#ended) return;
    let messages: FrontendMessage[];
    try {
      messages = this.#reader.push(chunk);
    } catch (error) {
      const reason = error instanceof ProtocolError ? error.message : errorText(error);
      this.#refuse("08P01", `protocol violation: ${reason}`);
      this.#notify();
      return;
    }
    for (const message of messages) {
      if (this.#ended) break;
      this.#accept(message);
    }
    if (!this.#paused && this.#inboxBytes + this.#groupBytes > INPUT_PAUSE_BYTES) {
      this.#paused = true;
      this.#transport.pause();
    }
    this.#notify();
  }

  #accept(message: FrontendMessage): void {
    switch (message.kind) {
      case "ssl-request":
      case "gssenc-request":
        // Plain connections only; clients with sslmode=prefer carry on unencrypted.
        this.#transport.write(Buffer.from("N"));
        return;
      case "cancel-request":
        // Statements run synchronously inside PGlite: there is never one to interrupt.
        this.#ended = true;
        return;
      case "startup":
        this.#acceptStartup(message.bytes);
        return;
      case "typed":
        break;
    }
    const { type, bytes } = message;
    switch (type) {
      case "X": // Terminate: PGlite must not see it (it would end the shared session).
        this.#ended = true;
        return;
      case "p":
        // Password/SASL response: PGlite never asks for one (it answers
        // AuthenticationOk), but clients may pipeline a password anyway.
        return;
      case "P":
        this.#addToGroup(this.#names.rewrite(type, refuseCopyFromStdinInParse(bytes)));
        return;
      case "B":
      case "D":
      case "C":
      case "E":
        this.#addToGroup(this.#names.rewrite(type, bytes));
        return;
      case "S": // Sync ends a batch; Flush asks for the output so far, so it must run now.
      case "H":
        this.#addToGroup(bytes);
        this.#flushGroup();
        return;
      case "Q":
        this.#flushGroup();
        this.#enqueue([refuseCopyFromStdinInQuery(bytes)]);
        return;
      case "F": // FunctionCall
      case "d": // CopyData, CopyDone, CopyFail: ignored by the backend outside a COPY
      case "c":
      case "f":
        this.#flushGroup();
        this.#enqueue([bytes]);
        return;
      default:
        // An unknown message type is FATAL for a Postgres backend, and PGlite
        // would exit; end just this connection instead.
        this.#refuse("08P01", `invalid frontend message type ${bytes[0]}`);
    }
  }

  /**
   * A startup packet Postgres refuses (bad protocol version or layout, no
   * user) is FATAL for the backend, which for PGlite means exiting: refuse it
   * here. PGlite ignores the parameters (one user, one database, and settings
   * such as application_name are not applied), so only user and database are
   * passed on, keeping the others' FATAL cases out of reach too.
   */
  #acceptStartup(bytes: Buffer): void {
    const startup = readStartupPacket(bytes);
    if (!startup.ok) {
      this.#refuse(startup.code, startup.message);
      return;
    }
    const user = startup.params.get("user") ?? "";
    const params = new Map([
      ["user", user],
      ["database", startup.params.get("database") || user],
    ]);
    this.#enqueue([startupMessage(startup.version, params)]);
  }

  /** Answers with a FATAL error, after what is queued has run, and closes the connection. */
  #refuse(code: string, text: string): void {
    this.#flushGroup();
    this.#inbox.push({ reply: errorResponse("FATAL", code, text) });
    this.#ended = true;
  }

  #addToGroup(bytes: Buffer): void {
    this.#group.push(bytes);
    this.#groupBytes += bytes.length;
  }

  #flushGroup(): void {
    if (this.#group.length === 0) return;
    this.#inbox.push({ run: this.#group });
    this.#inboxBytes += this.#groupBytes;
    this.#group = [];
    this.#groupBytes = 0;
  }

  #enqueue(messages: Buffer[]): void {
    this.#inbox.push({ run: messages });
    for (const bytes of messages) this.#inboxBytes += bytes.length;
  }

  async #run(): Promise<void> {
    try {
      for (;;) {
        if (this.#aborted || this.#mux.failed) break;
        const batch = this.#inbox.shift();
        if (!batch) {
          if (this.#ended) break;
          await new Promise<void>((resolve) => {
            this.#wake = resolve;
          });
          continue;
        }
        if ("reply" in batch) {
          this.#transport.write(batch.reply);
          continue;
        }
        for (const bytes of batch.run) this.#inboxBytes -= bytes.length;
        if (this.#paused && this.#inboxBytes < INPUT_RESUME_BYTES) {
          this.#paused = false;
          this.#transport.resume();
        }
        if (!this.#lease) {
          try {
            this.#lease = await this.#mux.lock.acquire(this);
          } catch {
            break; // closed while waiting
          }
          if (this.#aborted || this.#mux.failed) break;
        }
        for (const bytes of batch.run) {
          await this.#execute(bytes, (data) => this.#transport.write(data));
        }
        if (!this.#unitOpen && !this.#mux.db.isInTransaction()) this.#releaseLease();
        await this.#transport.drained();
      }
    } catch (error) {
      this.#mux.fail(error);
    }
    await this.#cleanUp();
  }

  async #execute(bytes: Buffer, output: (data: Buffer) => void): Promise<void> {
    let ready = false;
    await this.#mux.db.execProtocolRawStream(bytes, {
      onRawData: (data) => {
        if (this.#scanner.scan(data)) ready = true;
        // data is a view into PGlite's memory, reused by the next call.
        output(Buffer.from(data));
      },
    });
    this.#unitOpen = !ready;
  }

  #releaseLease(): void {
    this.#lease?.release();
    this.#lease = undefined;
  }

  /** Leaves the backend as a disconnect leaves a real Postgres: nothing open, nothing held. */
  async #cleanUp(): Promise<void> {
    this.#mux.lock.cancel(this);
    const statements = [...this.#names.statements];
    if (!this.#lease && statements.length > 0 && !this.#mux.failed) {
      try {
        this.#lease = await this.#mux.lock.acquire(this);
      } catch {
        // Shutting down: the whole session goes away with PGlite.
      }
    }
    if (this.#lease && !this.#mux.failed) {
      try {
        if (this.#unitOpen) {
          // Mid-batch (a Flush without its Sync): fail the batch so that its
          // implicit transaction aborts instead of committing at the Sync.
          await this.#execute(executeMessage(ABORT_PORTAL), discard);
          await this.#execute(syncMessage(), discard);
        }
        if (this.#mux.db.isInTransaction()) {
          await this.#execute(queryMessage("ROLLBACK"), discard);
        }
        if (statements.length > 0) {
          for (const name of statements) await this.#execute(closeStatementMessage(name), discard);
          await this.#execute(syncMessage(), discard);
        }
      } catch (error) {
        this.#mux.fail(error);
      }
    }
    this.#releaseLease();
    if (this.#closeWith === "destroy") this.#transport.destroy();
    else this.#transport.end();
  }
}

function refuseCopyFromStdinInQuery(bytes: Buffer): Buffer {
  return COPY_FROM_STDIN.test(readQueryText(bytes)) ? queryMessage(REFUSE_COPY_FROM_STDIN) : bytes;
}

function refuseCopyFromStdinInParse(bytes: Buffer): Buffer {
  const parse = readParse(bytes);
  if (!parse || !COPY_FROM_STDIN.test(parse.sql)) return bytes;
  return parseMessage(parse.name, REFUSE_COPY_FROM_STDIN, parse.rest);
}

/** Serves wire-protocol connections from a single PGlite instance. */
export class PgliteMultiplexer {
  readonly db: PGlite;
  readonly lock: BackendLock;
  readonly log: Log;
  failed = false;
  #sessions = new Set<Session>();
  #nextId = 1;
  #closed = false;

  constructor(db: PGlite, log: Log = () => {}) {
    this.db = db;
    this.lock = new BackendLock(db);
    this.log = log;
  }

  attach(transport: WireTransport): void {
    if (this.#closed || this.failed) {
      transport.start({ data: () => {}, closed: () => {} });
      transport.write(errorResponse("FATAL", "57P03", "the embedded database is not available"));
      transport.end();
      return;
    }
    const session = new Session(this, transport, this.#nextId++);
    this.#sessions.add(session);
    void session.done.finally(() => this.#sessions.delete(session));
  }

  /**
   * PGlite threw: its state is unknown (after an exit it even spins forever on
   * the next call), so stop using it and disconnect everyone.
   */
  fail(error: unknown): void {
    if (this.failed) return;
    this.failed = true;
    const message = `the embedded database failed: ${errorText(error)}`;
    this.log(message);
    for (const session of this.#sessions) session.failed(message);
  }

  /** Disconnects every client (rolling back their transactions) and waits until they are gone. */
  async close(): Promise<void> {
    this.#closed = true;
    const sessions = [...this.#sessions];
    for (const session of sessions) session.abort();
    await Promise.all(sessions.map((session) => session.done));
  }
}
