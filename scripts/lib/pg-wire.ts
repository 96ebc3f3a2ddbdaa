// Just enough of the Postgres wire protocol (v3) to multiplex client
// connections onto a single embedded backend: framing of frontend messages,
// spotting ReadyForQuery in backend output, and building the few messages we
// send ourselves. See https://www.postgresql.org/docs/current/protocol-message-formats.html

/** Request codes that take the place of a protocol version in a startup-phase packet. */
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;

// Postgres refuses startup packets above 10000 bytes and any message above 1 GB.
const MAX_STARTUP_PACKET = 10_000;
const MAX_MESSAGE = 0x3fff_ffff;

export type FrontendMessage =
  /** StartupMessage (any protocol version); bytes are the whole packet. */
  | { kind: "startup"; bytes: Buffer }
  | { kind: "ssl-request" }
  | { kind: "gssenc-request" }
  | { kind: "cancel-request" }
  /** A regular message; bytes include the type byte and the length. */
  | { kind: "typed"; type: string; bytes: Buffer };

export class ProtocolError extends Error {}

/**
 * Splits a client's byte stream into messages. Until the startup message has
 * been read, packets have no type byte (startup, SSLRequest, GSSENCRequest,
 * CancelRequest); after it, every message does.
 */
export class FrontendMessageReader {
  #chunks: Buffer[] = [];
  #buffered = 0;
  #startupDone = false;

  /** Adds received bytes; returns the messages they complete, in order. */
  push(chunk: Buffer): FrontendMessage[] {
    if (chunk.length > 0) {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
    }
    const messages: FrontendMessage[] = [];
    for (;;) {
      const message = this.#startupDone ? this.#nextTyped() : this.#nextStartupPhase();
      if (!message) return messages;
      messages.push(message);
    }
  }

  #nextStartupPhase(): FrontendMessage | undefined {
    if (this.#buffered < 8) return undefined;
    const header = this.#peek(8);
    const length = header.readInt32BE(0);
    const code = header.readInt32BE(4);
    if (length < 8 || length > MAX_STARTUP_PACKET) {
      throw new ProtocolError(`invalid startup packet length ${length}`);
    }
    if (this.#buffered < length) return undefined;
    const bytes = this.#take(length);
    switch (code) {
      case SSL_REQUEST_CODE:
        return { kind: "ssl-request" };
      case GSSENC_REQUEST_CODE:
        return { kind: "gssenc-request" };
      case CANCEL_REQUEST_CODE:
        return { kind: "cancel-request" };
      default:
        this.#startupDone = true;
        return { kind: "startup", bytes };
    }
  }

  #nextTyped(): FrontendMessage | undefined {
    if (this.#buffered < 5) return undefined;
    const header = this.#peek(5);
    const length = header.readInt32BE(1);
    if (length < 4 || length > MAX_MESSAGE) {
      throw new ProtocolError(`invalid message length ${length}`);
    }
    if (this.#buffered < length + 1) return undefined;
    const bytes = this.#take(length + 1);
    return { kind: "typed", type: String.fromCharCode(header[0] ?? 0), bytes };
  }

  #peek(count: number): Buffer {
    const first = this.#chunks[0];
    if (first && first.length >= count) return first.subarray(0, count);
    return Buffer.concat(this.#chunks, this.#buffered).subarray(0, count);
  }

  // Concatenates only once a whole message is buffered, so a large message
  // arriving in many small chunks is not copied over and over.
  #take(count: number): Buffer {
    const first = this.#chunks[0];
    let result: Buffer;
    if (first && first.length >= count) {
      result = first.subarray(0, count);
      if (first.length === count) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(count);
    } else {
      const all = Buffer.concat(this.#chunks, this.#buffered);
      result = all.subarray(0, count);
      this.#chunks = all.length > count ? [all.subarray(count)] : [];
    }
    this.#buffered -= count;
    return result;
  }
}

export type StartupPacket =
  | { ok: true; version: number; params: Map<string, string> }
  | { ok: false; code: string; message: string };

/** Reads a StartupMessage, checking what Postgres would refuse with a FATAL error. */
export function readStartupPacket(bytes: Buffer): StartupPacket {
  const version = bytes.readInt32BE(4);
  const major = version >>> 16;
  if (major !== 3) {
    return {
      ok: false,
      code: "0A000",
      message: `unsupported frontend protocol ${major}.${version & 0xffff}: server supports 3.0 to 3.2`,
    };
  }
  if (bytes[bytes.length - 1] !== 0) {
    return { ok: false, code: "08P01", message: "invalid startup packet layout" };
  }
  // name\0value\0 pairs, then a final \0.
  const params = new Map<string, string>();
  const terminator = bytes.length - 1;
  let offset = 8;
  while (offset < terminator) {
    const keyEnd = bytes.indexOf(0, offset);
    const valueEnd = bytes.indexOf(0, keyEnd + 1);
    if (keyEnd === offset || valueEnd < 0 || valueEnd >= terminator) {
      return { ok: false, code: "08P01", message: "invalid startup packet layout" };
    }
    params.set(
      bytes.toString("utf8", offset, keyEnd),
      bytes.toString("utf8", keyEnd + 1, valueEnd),
    );
    offset = valueEnd + 1;
  }
  if (!params.get("user")) {
    return {
      ok: false,
      code: "28000",
      message: "no PostgreSQL user name specified in startup packet",
    };
  }
  return { ok: true, version, params };
}

export function startupMessage(version: number, params: Map<string, string>): Buffer {
  const body = Buffer.from(`${[...params].flat().join("\0")}\0\0`, "utf8");
  const out = Buffer.alloc(8 + body.length);
  out.writeInt32BE(out.length, 0);
  out.writeInt32BE(version, 4);
  body.copy(out, 8);
  return out;
}

/**
 * Follows message boundaries in a backend's output, which arrives in
 * arbitrary chunks, to notice ReadyForQuery ('Z'): the backend sends it when
 * it has finished a simple query, an extended-protocol batch up to Sync, a
 * COPY, or the startup, i.e. when another client's messages may go next.
 */
export class ReadyForQueryScanner {
  #header = Buffer.alloc(5);
  #headerFill = 0;
  #bodyRemaining = 0;

  /** Returns true when the chunk contains (the start of) a ReadyForQuery message. */
  scan(chunk: Uint8Array): boolean {
    let seen = false;
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#bodyRemaining > 0) {
        const skip = Math.min(this.#bodyRemaining, chunk.length - offset);
        this.#bodyRemaining -= skip;
        offset += skip;
        continue;
      }
      const copy = Math.min(5 - this.#headerFill, chunk.length - offset);
      this.#header.set(chunk.subarray(offset, offset + copy), this.#headerFill);
      this.#headerFill += copy;
      offset += copy;
      if (this.#headerFill === 5) {
        if (this.#header[0] === 0x5a /* 'Z' */) seen = true;
        this.#bodyRemaining = Math.max(0, this.#header.readInt32BE(1) - 4);
        this.#headerFill = 0;
      }
    }
    return seen;
  }
}

/** A typed message: type byte, length, body. */
export function typedMessage(type: string, body: Buffer): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out.write(type, 0, "latin1");
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

const cstring = (text: string) => Buffer.from(`${text}\0`, "utf8");

/** Query ('Q'), simple protocol. */
export function queryMessage(sql: string): Buffer {
  return typedMessage("Q", cstring(sql));
}

/** Sync ('S'): ends an extended-protocol batch; the backend answers with ReadyForQuery. */
export function syncMessage(): Buffer {
  return typedMessage("S", Buffer.alloc(0));
}

/** Close ('C') of a prepared statement. */
export function closeStatementMessage(name: string): Buffer {
  return typedMessage("C", Buffer.concat([Buffer.from("S"), cstring(name)]));
}

/** Execute ('E') of a named portal with no row limit. */
export function executeMessage(portal: string): Buffer {
  return typedMessage("E", Buffer.concat([cstring(portal), Buffer.alloc(4)]));
}

/** ErrorResponse ('E') with the fields clients display. */
export function errorResponse(severity: "ERROR" | "FATAL", code: string, text: string): Buffer {
  return typedMessage(
    "E",
    Buffer.concat([
      cstring(`S${severity}`),
      cstring(`V${severity}`),
      cstring(`C${code}`),
      cstring(`M${text}`),
      Buffer.from([0]),
    ]),
  );
}

/** The SQL text of a Query ('Q') message. */
export function readQueryText(bytes: Buffer): string {
  return bytes.toString("utf8", 5, Math.max(5, bytes.length - 1));
}

/** Name, SQL text and the trailing parameter-type section of a Parse ('P') message. */
export function readParse(bytes: Buffer): { name: string; sql: string; rest: Buffer } | undefined {
  const nameEnd = bytes.indexOf(0, 5);
  if (nameEnd < 0) return undefined;
  const sqlEnd = bytes.indexOf(0, nameEnd + 1);
  if (sqlEnd < 0) return undefined;
  return {
    name: bytes.toString("utf8", 5, nameEnd),
    sql: bytes.toString("utf8", nameEnd + 1, sqlEnd),
    rest: bytes.subarray(sqlEnd + 1),
  };
}

export function parseMessage(name: string, sql: string, rest: Buffer): Buffer {
  return typedMessage("P", Buffer.concat([cstring(name), cstring(sql), rest]));
}
