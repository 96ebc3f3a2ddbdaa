import { mkdtemp, rm } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Client, neonConfig, Pool } from "@neondatabase/serverless";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import {
  type LocalDatabase,
  redactUrl,
  startBridge,
  startEmbeddedDatabase,
} from "../../scripts/lib/local-db.ts";
import {
  executeMessage,
  parseMessage,
  queryMessage,
  syncMessage,
  typedMessage,
} from "../../scripts/lib/pg-wire.ts";
import { rawDataToBuffer } from "../../scripts/lib/wire-transport.ts";

// ---------------------------------------------------------------------------
// Neon driver in Node, configured as the Worker configures it. Each database
// URL's host:port is routed to the WebSocket endpoint registered for it, so
// several local databases can be used from one test file.

const wsProxies = new Map<string, string>();
/** WebSockets the driver opened, newest last, so a test can cut one. */
const driverSockets: WebSocket[] = [];

class TrackedWebSocket extends WebSocket {
  constructor(address: string) {
    super(address);
    driverSockets.push(this);
  }
}

neonConfig.webSocketConstructor = TrackedWebSocket;
neonConfig.wsProxy = (host, port) => {
  const proxy = wsProxies.get(`${host}:${port}`);
  if (!proxy) throw new Error(`no WebSocket endpoint registered for ${host}:${port}`);
  return `${proxy}/v1?address=${host}:${port}`;
};
neonConfig.useSecureWebSocket = false;
neonConfig.pipelineTLS = false;
neonConfig.pipelineConnect = false;

function route(databaseUrl: string, wsProxy: string): void {
  const url = new URL(databaseUrl);
  wsProxies.set(`${url.hostname.replace(/^\[|\]$/g, "")}:${url.port || "5432"}`, wsProxy);
}

function tcpPort(databaseUrl: string): number {
  return Number(new URL(databaseUrl).port);
}

/**
 * How long a step may take before it counts as hung: far above what any takes, so that a loaded
 * machine does not decide a result; a hang is what these steps are tested against.
 */
const HANG_MS = 20_000;

/** Fails with a message instead of letting a hang run into the test timeout. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Tracks whether a promise has settled, without letting its rejection go unhandled. */
function watch<T>(promise: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let settled = false;
  promise.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  return { promise, settled: () => settled };
}

// ---------------------------------------------------------------------------
// A bare wire-protocol client, to do what drivers will not: send a Flush and
// vanish, send Terminate, look at the exact messages.

interface BackendMessage {
  type: string;
  body: Buffer;
}

interface SimpleResult {
  rows: string[][];
  errorCode: string | undefined;
  errorMessage: string | undefined;
  /** Transaction status from ReadyForQuery: I, T or E. */
  status: string;
}

function startupMessage(params: Record<string, string>, version = 0x30000): Buffer {
  const pairs = Object.entries(params).flat();
  const body = Buffer.from(`${pairs.join("\0")}\0\0`, "utf8");
  const out = Buffer.alloc(8 + body.length);
  out.writeInt32BE(out.length, 0);
  out.writeInt32BE(version, 4);
  body.copy(out, 8);
  return out;
}

function requestPacket(code: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeInt32BE(8, 0);
  out.writeInt32BE(code, 4);
  return out;
}

/** Bind of the unnamed statement to the unnamed portal, without parameters. */
const bindMessage = () => typedMessage("B", Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]));
const flushMessage = () => typedMessage("H", Buffer.alloc(0));
const terminateMessage = () => typedMessage("X", Buffer.alloc(0));

function errorField(body: Buffer, field: string): string | undefined {
  let offset = 0;
  while (offset < body.length && body[offset] !== 0) {
    const end = body.indexOf(0, offset + 1);
    if (String.fromCharCode(body[offset] ?? 0) === field) {
      return body.toString("utf8", offset + 1, end);
    }
    offset = end + 1;
  }
  return undefined;
}

function dataRow(body: Buffer): string[] {
  const values: string[] = [];
  let offset = 2;
  for (let i = 0; i < body.readInt16BE(0); i++) {
    const length = body.readInt32BE(offset);
    offset += 4;
    values.push(length < 0 ? "NULL" : body.toString("utf8", offset, offset + length));
    offset += Math.max(length, 0);
  }
  return values;
}

class RawClient {
  #buffer = Buffer.alloc(0);
  #wake: (() => void) | undefined;
  #closed = false;
  readonly closed: Promise<void>;
  readonly #send: (data: Buffer) => void;
  readonly #destroy: () => void;

  private constructor(
    send: (data: Buffer) => void,
    destroy: () => void,
    subscribe: (onData: (chunk: Buffer) => void, onClose: () => void) => void,
  ) {
    this.#send = send;
    this.#destroy = destroy;
    this.closed = new Promise((resolve) => {
      subscribe(
        (chunk) => {
          this.#buffer = Buffer.concat([this.#buffer, chunk]);
          this.#notify();
        },
        () => {
          this.#closed = true;
          this.#notify();
          resolve();
        },
      );
    });
  }

  static async tcp(port: number): Promise<RawClient> {
    const socket: Socket = connect({ host: "127.0.0.1", port });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    socket.on("error", () => {});
    return new RawClient(
      (data) => socket.write(data),
      () => socket.destroy(),
      (onData, onClose) => {
        socket.on("data", onData);
        socket.on("close", onClose);
      },
    );
  }

  static async ws(wsProxy: string, address = "127.0.0.1:5432"): Promise<RawClient> {
    const ws = new WebSocket(`ws://${wsProxy}/v1?address=${address}`);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    ws.on("error", () => {});
    return new RawClient(
      (data) => ws.send(data),
      () => ws.terminate(),
      (onData, onClose) => {
        ws.on("message", (data) => onData(rawDataToBuffer(data)));
        ws.on("close", onClose);
      },
    );
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async #waitFor(bytes: number): Promise<void> {
    while (this.#buffer.length < bytes) {
      if (this.#closed) throw new Error("connection closed");
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }

  send(...messages: Buffer[]): void {
    this.#send(Buffer.concat(messages));
  }

  destroy(): void {
    this.#destroy();
  }

  async byte(): Promise<string> {
    await this.#waitFor(1);
    const value = String.fromCharCode(this.#buffer[0] ?? 0);
    this.#buffer = this.#buffer.subarray(1);
    return value;
  }

  async message(): Promise<BackendMessage> {
    await this.#waitFor(5);
    const length = this.#buffer.readInt32BE(1);
    await this.#waitFor(1 + length);
    const message = {
      type: String.fromCharCode(this.#buffer[0] ?? 0),
      body: Buffer.from(this.#buffer.subarray(5, 1 + length)),
    };
    this.#buffer = this.#buffer.subarray(1 + length);
    return message;
  }

  async until(type: string): Promise<BackendMessage[]> {
    const messages: BackendMessage[] = [];
    for (;;) {
      const message = await this.message();
      messages.push(message);
      if (message.type === type) return messages;
    }
  }

  async startup(params: Record<string, string> = {}): Promise<BackendMessage[]> {
    this.send(startupMessage({ user: "postgres", database: "postgres", ...params }));
    return this.until("Z");
  }

  async query(sql: string): Promise<SimpleResult> {
    this.send(queryMessage(sql));
    return RawClient.result(await this.until("Z"));
  }

  static result(messages: BackendMessage[]): SimpleResult {
    const error = messages.find((m) => m.type === "E");
    return {
      rows: messages.filter((m) => m.type === "D").map((m) => dataRow(m.body)),
      errorCode: error && errorField(error.body, "C"),
      errorMessage: error && errorField(error.body, "M"),
      status: messages.at(-1)?.body.toString("latin1") ?? "",
    };
  }
}

async function count(pool: Pool, sql: string, params: unknown[] = []): Promise<number> {
  const result = await pool.query<{ n: number }>(sql, params);
  return result.rows[0]?.n ?? -1;
}

// ---------------------------------------------------------------------------

describe("embedded database (in memory)", () => {
  let local: LocalDatabase;
  let pool: Pool;

  beforeAll(async () => {
    local = await startEmbeddedDatabase({});
    route(local.databaseUrl, local.wsProxy);
    pool = new Pool({ connectionString: local.databaseUrl, max: 25 });
  });
  afterAll(async () => {
    await pool?.end();
    await local?.close();
  });

  it("listens on 127.0.0.1 and describes itself", () => {
    expect(local.kind).toBe("embedded");
    expect(local.databaseUrl).toMatch(
      /^postgres:\/\/postgres:postgres@127\.0\.0\.1:\d+\/postgres$/,
    );
    expect(local.wsProxy).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(local.wsProxy).not.toBe(new URL(local.databaseUrl).host);
  });

  it("speaks the wire protocol over TCP: SSL/GSS requests, startup, queries, Terminate", async () => {
    const client = await RawClient.tcp(tcpPort(local.databaseUrl));
    client.send(requestPacket(80877104)); // GSSENCRequest
    expect(await client.byte()).toBe("N");
    client.send(requestPacket(80877103)); // SSLRequest
    expect(await client.byte()).toBe("N");

    const startup = await client.startup({ user: "someone", database: "whatever" });
    const auth = startup[0];
    expect(auth?.type).toBe("R");
    expect(auth?.body.readInt32BE(0)).toBe(0); // AuthenticationOk
    const parameters = startup.filter((m) => m.type === "S").map((m) => m.body.toString());
    expect(parameters.some((p) => p.startsWith("server_version\0"))).toBe(true);
    expect(startup.at(-1)?.body.toString()).toBe("I");

    const result = await client.query("SELECT 6 * 7, 'x' || 'y'");
    expect(result).toMatchObject({ rows: [["42", "xy"]], errorCode: undefined, status: "I" });
    const failed = await client.query("SELECT 1/0");
    expect(failed.errorCode).toBe("22012");

    client.send(terminateMessage());
    await within(HANG_MS, "server closing after Terminate", client.closed);
  });

  it("refuses, per connection, what would make PGlite exit (FATAL errors) and keeps serving", async () => {
    const port = tcpPort(local.databaseUrl);
    const fatal = async (send: (client: RawClient) => Promise<void>) => {
      const client = await RawClient.tcp(port);
      await send(client);
      const error = await client.until("E");
      await within(HANG_MS, "connection closed after FATAL", client.closed);
      const body = error.at(-1)?.body ?? Buffer.alloc(0);
      return { severity: errorField(body, "S"), code: errorField(body, "C") };
    };
    expect(await fatal(async (c) => c.send(startupMessage({ user: "postgres" }, 0x20000)))).toEqual(
      { severity: "FATAL", code: "0A000" },
    ); // protocol 2.0
    expect(await fatal(async (c) => c.send(startupMessage({ database: "postgres" })))).toEqual({
      severity: "FATAL",
      code: "28000",
    });
    expect(
      await fatal(async (c) => {
        await c.startup();
        c.send(typedMessage("y", Buffer.alloc(0)));
      }),
    ).toEqual({ severity: "FATAL", code: "08P01" });
    expect(
      await fatal(async (c) => {
        await c.startup();
        c.send(Buffer.from([0x51, 0, 0, 0, 1])); // Query with length 1
      }),
    ).toEqual({ severity: "FATAL", code: "08P01" });

    const { rows } = await pool.query<{ ok: number }>("SELECT 1 AS ok");
    expect(rows).toEqual([{ ok: 1 }]);
  });

  it("accepts any password and runs parameterised queries through the Neon driver", async () => {
    const url = new URL(local.databaseUrl);
    url.password = "not-the-password";
    const other = new Pool({ connectionString: url.toString(), max: 1 });
    try {
      const { rows } = await other.query<{
        sum: number;
        text: string;
        doc: unknown;
        nothing: null;
      }>(
        "SELECT $1::int + $2::int AS sum, $3::text AS text, $4::jsonb AS doc, $5::text AS nothing",
        [40, 2, "it's ok; -- not SQL", JSON.stringify({ a: [1, "b"] }), null],
      );
      expect(rows).toEqual([
        { sum: 42, text: "it's ok; -- not SQL", doc: { a: [1, "b"] }, nothing: null },
      ]);
    } finally {
      await other.end();
    }
    // With the driver's default, the password is sent before it is asked for;
    // PGlite never asks, and the connection still works.
    const pipelined = new Client(url.toString());
    pipelined.neonConfig.pipelineConnect = "password";
    await pipelined.connect();
    try {
      const { rows } = await pipelined.query<{ v: number }>("SELECT $1::int AS v", [7]);
      expect(rows).toEqual([{ v: 7 }]);
    } finally {
      await pipelined.end();
    }
  });

  it("keeps 20 concurrent clients' transactions apart, with commits, rollbacks and failed statements", async () => {
    await pool.query(
      "CREATE TABLE accounts (id int PRIMARY KEY, client int NOT NULL, note text NOT NULL)",
    );
    const clients = 20;
    const rounds = 3;
    const unexpected: unknown[] = [];
    const work = Array.from({ length: clients }, async (_, i) => {
      const client = await pool.connect();
      try {
        for (let round = 0; round < rounds; round++) {
          const id = i * 100 + round;
          await client.query("BEGIN");
          // Different SQL text per client, so a mix-up of statements would show.
          const inserted = await client.query<{ id: number }>(
            `INSERT INTO accounts (note, client, id) VALUES ($1, $2, $3) RETURNING id /* client ${i} */`,
            [`client ${i} round ${round}`, i, id],
          );
          expect(inserted.rows).toEqual([{ id }]);
          await sleep(Math.random() * 5); // let others queue up behind this transaction
          const seen = await client.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM accounts WHERE client = ${i}`,
          );
          const committedBefore = i % 2 === 0 ? round : 0;
          expect(seen.rows[0]?.n).toBe(committedBefore + 1);
          if (i % 2 === 0) {
            await client.query("COMMIT");
          } else {
            await expect(
              client.query("INSERT INTO accounts (id, client, note) VALUES ($1, $2, 'dup')", [
                id,
                i,
              ]),
            ).rejects.toMatchObject({ code: "23505" });
            await expect(client.query("SELECT 1")).rejects.toMatchObject({ code: "25P02" });
            await client.query("ROLLBACK");
          }
        }
      } catch (error) {
        unexpected.push(error);
      } finally {
        client.release();
      }
    });
    await within(30_000, "20 concurrent transactional clients", Promise.all(work));
    expect(unexpected).toEqual([]);

    const { rows } = await pool.query<{ client: number; ids: number[] }>(
      "SELECT client, array_agg(id ORDER BY id) AS ids FROM accounts GROUP BY client ORDER BY client",
    );
    const expected = Array.from({ length: clients / 2 }, (_, k) => ({
      client: 2 * k,
      ids: Array.from({ length: rounds }, (_, round) => 2 * k * 100 + round),
    }));
    expect(rows).toEqual(expected);
  });

  it("interleaves whole queries of 24 connections while another one holds transactions", async () => {
    // While the blocker is inside a transaction the others queue up; each time
    // it commits they all get their turn, so their batches are at their most
    // likely to be mixed up.
    const blocker = (async () => {
      const client = await pool.connect();
      try {
        for (let k = 0; k < 10; k++) {
          await client.query("BEGIN");
          await client.query("SELECT $1::int", [k]);
          await sleep(30);
          await client.query("COMMIT");
          await sleep(5);
        }
      } finally {
        client.release();
      }
    })();
    const clients = Array.from({ length: 24 }, async (_, i) => {
      const client = await pool.connect();
      try {
        const answers: string[] = [];
        for (let k = 0; k < 12; k++) {
          // Mostly extended protocol (parameters, with the client's own SQL
          // text), sometimes simple protocol (no parameters).
          const { rows } =
            k % 3 === 2
              ? await client.query<{ v: string }>(`SELECT 'c${i}/${k}' AS v`)
              : await client.query<{ v: string }>(
                  `SELECT $1::text || '/' || $2::int AS v /* client ${i} */`,
                  [`c${i}`, k],
                );
          answers.push(rows[0]?.v ?? "?");
        }
        return answers;
      } finally {
        client.release();
      }
    });
    const results = await within(30_000, "24 interleaving connections", Promise.all(clients));
    await within(HANG_MS, "the transactional connection", blocker);
    results.forEach((answers, i) => {
      expect(answers).toEqual(Array.from({ length: 12 }, (_, k) => `c${i}/${k}`));
    });
  });

  it.each(["tcp", "ws"] as const)(
    "rolls back and lets others in when a %s client vanishes mid-transaction",
    async (transport) => {
      const table = `vanish_${transport}`;
      await pool.query(`CREATE TABLE ${table} (id int PRIMARY KEY)`);
      const client =
        transport === "tcp"
          ? await RawClient.tcp(tcpPort(local.databaseUrl))
          : await RawClient.ws(local.wsProxy);
      await client.startup();
      expect((await client.query("BEGIN")).status).toBe("T");
      expect((await client.query(`INSERT INTO ${table} VALUES (1)`)).status).toBe("T");

      // The backend is inside that transaction, so everyone else waits.
      const waiting = watch(count(pool, `SELECT count(*)::int AS n FROM ${table}`));
      await sleep(300);
      expect(waiting.settled()).toBe(false);

      client.destroy();
      expect(await within(HANG_MS, "query after the disconnect", waiting.promise)).toBe(0);
      await pool.query(`INSERT INTO ${table} VALUES (1)`); // no leftover row or lock
      expect(await count(pool, `SELECT count(*)::int AS n FROM ${table}`)).toBe(1);
    },
  );

  it("aborts a half-sent extended-protocol batch when its client vanishes", async () => {
    await pool.query("CREATE TABLE half_sent (id int PRIMARY KEY)");
    const client = await RawClient.tcp(tcpPort(local.databaseUrl));
    await client.startup();
    // Parse/Bind/Execute and a Flush, but never the Sync that would commit.
    client.send(
      parseMessage("", "INSERT INTO half_sent VALUES (7)", Buffer.from([0, 0])),
      bindMessage(),
      executeMessage(""),
      flushMessage(),
    );
    const replies = await client.until("C");
    expect(replies.map((m) => m.type)).toEqual(["1", "2", "C"]);

    const waiting = watch(count(pool, "SELECT count(*)::int AS n FROM half_sent"));
    await sleep(200);
    expect(waiting.settled()).toBe(false);
    client.destroy();
    expect(await within(HANG_MS, "query after the disconnect", waiting.promise)).toBe(0);

    // The same batch with its Sync does commit.
    const complete = await RawClient.tcp(tcpPort(local.databaseUrl));
    await complete.startup();
    complete.send(
      parseMessage("", "INSERT INTO half_sent VALUES (8)", Buffer.from([0, 0])),
      bindMessage(),
      executeMessage(""),
      syncMessage(),
    );
    expect(RawClient.result(await complete.until("Z"))).toMatchObject({
      errorCode: undefined,
      status: "I",
    });
    complete.send(terminateMessage());
    await complete.closed;
    expect(await count(pool, "SELECT count(*)::int AS n FROM half_sent WHERE id = 8")).toBe(1);
  });

  it("gives every connection its own named prepared statements", async () => {
    const a = new Client(local.databaseUrl);
    const b = new Client(local.databaseUrl);
    await Promise.all([a.connect(), b.connect()]);
    const prepared = () =>
      count(
        pool,
        "SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE '%same_name'",
      );
    try {
      // Same name, different text: each connection must get its own.
      const runA = () => a.query<{ v: string }>({ name: "same_name", text: "SELECT 'a' AS v" });
      const runB = () =>
        b.query<{ v: string }>({ name: "same_name", text: "SELECT 'b' || $1::text AS v" }, ["!"]);
      expect((await runA()).rows).toEqual([{ v: "a" }]);
      expect((await runB()).rows).toEqual([{ v: "b!" }]);
      expect((await runA()).rows).toEqual([{ v: "a" }]);
      expect((await runB()).rows).toEqual([{ v: "b!" }]);
      expect(await prepared()).toBe(2);
    } finally {
      await a.end();
    }
    // A connection's statements go away with it (the backend session is shared).
    await within(
      HANG_MS,
      "statements of a closed connection",
      (async () => {
        while ((await prepared()) !== 1) await sleep(20);
      })(),
    );
    expect(
      (
        await b.query<{ v: string }>({ name: "same_name", text: "SELECT 'b' || $1::text AS v" }, [
          "?",
        ])
      ).rows,
    ).toEqual([{ v: "b?" }]);
    await b.end();
  });

  it("refuses COPY FROM STDIN with an error instead of crashing PGlite", async () => {
    await pool.query("CREATE TABLE copied (v int)");
    const client = await RawClient.tcp(tcpPort(local.databaseUrl));
    await client.startup();
    const refused = await client.query("COPY copied FROM STDIN");
    expect(refused.errorCode).toBe("0A000");
    expect(refused.errorMessage).toMatch(/COPY FROM STDIN is not supported/);
    expect(refused.status).toBe("I");
    await expect(pool.query("copy copied (v) from stdin")).rejects.toMatchObject({
      code: "0A000",
    });
    // COPY TO STDOUT is fine.
    await client.query("INSERT INTO copied VALUES (1), (2)");
    client.send(queryMessage("COPY copied TO STDOUT"));
    const out = await client.until("Z");
    expect(out.map((m) => m.type)).toEqual(["H", "d", "d", "c", "C", "Z"]);
    expect((await client.query("SELECT count(*) FROM copied")).rows).toEqual([["2"]]);
    client.destroy();
  });

  it("ends pools and clients promptly, releasing the backend", async () => {
    const shortLived = new Pool({ connectionString: local.databaseUrl, max: 5 });
    await Promise.all(
      Array.from({ length: 5 }, (_, i) => shortLived.query("SELECT $1::int AS i", [i])),
    );
    await within(HANG_MS, "Pool.end()", shortLived.end());

    const client = new Client(local.databaseUrl);
    await client.connect();
    await client.query("BEGIN");
    await client.query("CREATE TABLE ended_mid_transaction (id int)");
    await within(HANG_MS, "Client.end()", client.end());
    // Its transaction was rolled back and the backend is free again.
    const { rows } = await within(
      HANG_MS,
      "query after Client.end()",
      pool.query("SELECT to_regclass('ended_mid_transaction') AS t"),
    );
    expect(rows).toEqual([{ t: null }]);

    const raw = await RawClient.ws(local.wsProxy);
    await raw.startup();
    raw.send(terminateMessage());
    await within(HANG_MS, "server closing the WebSocket after Terminate", raw.closed);
  });

  it.each(["tcp", "ws"] as const)("carries 8 MB values both ways over %s", async (transport) => {
    const big = "0123456789abcdef".repeat(512 * 1024); // 8 MiB
    if (transport === "ws") {
      const { rows } = await pool.query<{ len: number; back: string }>(
        "SELECT length($1::text) AS len, $1::text AS back",
        [big],
      );
      expect(rows[0]?.len).toBe(big.length);
      expect(rows[0]?.back === big).toBe(true);
    } else {
      const client = await RawClient.tcp(tcpPort(local.databaseUrl));
      await client.startup();
      const result = await client.query(
        `SELECT length(v), md5(v), v FROM (SELECT '${big}'::text AS v) s`,
      );
      expect(result.rows[0]?.[0]).toBe(String(big.length));
      expect(result.rows[0]?.[2] === big).toBe(true);
      client.destroy();
    }
  });
});

describe("embedded database persisted in a data directory", () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "airlock-pglite-"));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("keeps its data across close and reopen", async () => {
    const dataDir = join(dir, "nested", "pgdata");
    const first = await startEmbeddedDatabase({ dataDir });
    route(first.databaseUrl, first.wsProxy);
    const writer = new Pool({ connectionString: first.databaseUrl, max: 2 });
    await writer.query("CREATE TABLE kept (id int PRIMARY KEY, label text)");
    await writer.query("INSERT INTO kept VALUES (1, 'one'), (2, 'two')");
    await writer.query("BEGIN; INSERT INTO kept VALUES (3, 'uncommitted')");
    await writer.end(); // the open transaction dies with its connection
    // Only one process (or instance) at a time may have the directory open.
    await expect(startEmbeddedDatabase({ dataDir })).rejects.toThrow(/already open/);
    await first.close();

    const second = await startEmbeddedDatabase({ dataDir });
    try {
      route(second.databaseUrl, second.wsProxy);
      const reader = new Pool({ connectionString: second.databaseUrl, max: 1 });
      const { rows } = await reader.query("SELECT id, label FROM kept ORDER BY id");
      await reader.end();
      expect(rows).toEqual([
        { id: 1, label: "one" },
        { id: 2, label: "two" },
      ]);
    } finally {
      await second.close();
    }
  });

  it("closes promptly while clients are still connected, one inside a transaction", async () => {
    const local = await startEmbeddedDatabase({ dataDir: join(dir, "busy") });
    const idle = await RawClient.ws(local.wsProxy);
    await idle.startup();
    const inTransaction = await RawClient.tcp(tcpPort(local.databaseUrl));
    await inTransaction.startup();
    await inTransaction.query("CREATE TABLE t (id int)");
    await inTransaction.query("BEGIN");
    await inTransaction.query("INSERT INTO t VALUES (1)");
    const queued = await RawClient.ws(local.wsProxy);
    queued.send(startupMessage({ user: "postgres" })); // waits behind the transaction

    await within(HANG_MS, "close()", local.close());
    await within(HANG_MS, "clients disconnected", Promise.all([inTransaction.closed, idle.closed]));
    await within(HANG_MS, "queued client disconnected", queued.closed);
    await local.close(); // idempotent
  });
});

const externalUrl = process.env.TEST_DATABASE_URL;

describe(`WebSocket bridge to ${externalUrl ? "TEST_DATABASE_URL" : "the embedded database over TCP"}`, () => {
  let target: LocalDatabase | undefined;
  let bridge: LocalDatabase;
  let databaseUrl: string;
  let pool: Pool;
  const suffix = `${process.pid}_${Date.now()}`;
  const table = (name: string) => `bridge_${name}_${suffix}`;

  beforeAll(async () => {
    if (externalUrl) {
      databaseUrl = externalUrl;
    } else {
      target = await startEmbeddedDatabase({});
      databaseUrl = target.databaseUrl;
    }
    bridge = await startBridge({ databaseUrl });
    route(databaseUrl, bridge.wsProxy);
    pool = new Pool({ connectionString: databaseUrl, max: 10 });
  });
  afterAll(async () => {
    if (pool) {
      for (const name of ["tx", "vanish", "ended"]) {
        await pool.query(`DROP TABLE IF EXISTS ${table(name)}`).catch(() => {});
      }
      await pool.end();
    }
    await bridge?.close();
    await target?.close();
  });

  it("describes itself and echoes the database URL", () => {
    expect(bridge.kind).toBe("external");
    expect(bridge.databaseUrl).toBe(databaseUrl);
    expect(bridge.wsProxy).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it("runs parameterised queries and concurrent transactions", async () => {
    const { rows } = await pool.query<{ v: string }>("SELECT $1::text || $2::text AS v", [
      "bri",
      "dge",
    ]);
    expect(rows).toEqual([{ v: "bridge" }]);

    await pool.query(`CREATE TABLE ${table("tx")} (id int PRIMARY KEY, client int)`);
    const unexpected: unknown[] = [];
    await within(
      30_000,
      "10 concurrent transactional clients through the bridge",
      Promise.all(
        Array.from({ length: 10 }, async (_, i) => {
          const client = await pool.connect();
          try {
            await client.query("BEGIN");
            await client.query(`INSERT INTO ${table("tx")} VALUES ($1, $2) /* ${i} */`, [i, i]);
            if (i % 2 === 0) {
              await client.query("COMMIT");
            } else {
              await expect(
                client.query(`INSERT INTO ${table("tx")} VALUES ($1, $2)`, [i, i]),
              ).rejects.toMatchObject({ code: "23505" });
              await client.query("ROLLBACK");
            }
          } catch (error) {
            unexpected.push(error);
          } finally {
            client.release();
          }
        }),
      ),
    );
    expect(unexpected).toEqual([]);
    const ids = await pool.query<{ id: number }>(`SELECT id FROM ${table("tx")} ORDER BY id`);
    expect(ids.rows.map((r) => r.id)).toEqual([0, 2, 4, 6, 8]);
  });

  it("passes on a vanished client, so its transaction ends and its locks go", async () => {
    await pool.query(`CREATE TABLE ${table("vanish")} (id int PRIMARY KEY)`);
    const client = new Client(databaseUrl);
    client.on("error", () => {}); // it is about to lose its connection
    await client.connect();
    const ws = driverSockets.at(-1);
    await client.query("BEGIN");
    await client.query(`INSERT INTO ${table("vanish")} VALUES (1)`);
    expect(ws?.readyState).toBe(WebSocket.OPEN);
    ws?.terminate();
    // With the transaction still open, this insert would block on its row.
    await within(
      HANG_MS,
      "insert after the disconnect",
      pool.query(`INSERT INTO ${table("vanish")} VALUES (1)`),
    );
    expect(await count(pool, `SELECT count(*)::int AS n FROM ${table("vanish")}`)).toBe(1);
  });

  it("ends clients promptly and closes their database connections", async () => {
    await pool.query(`CREATE TABLE ${table("ended")} (id int PRIMARY KEY)`);
    const applicationName = `bridge_end_${suffix}`;
    const client = new Client({ connectionString: databaseUrl, application_name: applicationName });
    await client.connect();
    await client.query("BEGIN");
    await client.query(`INSERT INTO ${table("ended")} VALUES (1)`);
    await within(HANG_MS, "Client.end()", client.end());
    await within(
      HANG_MS,
      "insert after end()",
      pool.query(`INSERT INTO ${table("ended")} VALUES (1)`),
    );
    if (externalUrl) {
      // A real server lets us watch the backend go away.
      await within(
        HANG_MS,
        "the backend of the ended client going away",
        (async () => {
          const remaining = () =>
            count(
              pool,
              "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1",
              [applicationName],
            );
          while ((await remaining()) !== 0) await sleep(100);
        })(),
      );
    }
  });

  it("carries 8 MB values both ways", async () => {
    const big = "fedcba9876543210".repeat(512 * 1024);
    const { rows } = await pool.query<{ len: number; back: string }>(
      "SELECT length($1::text) AS len, $1::text AS back",
      [big],
    );
    expect(rows[0]?.len).toBe(big.length);
    expect(rows[0]?.back === big).toBe(true);
  });

  it.each([
    "10.1.2.3:5432",
    "example.com:5432",
    "192.0.2.1:5432",
    "[2001:db8::1]:5432",
    "127.0.0.1",
    "",
  ])("refuses the address %j", async (address) => {
    const ws = new WebSocket(`ws://${bridge.wsProxy}/v1?address=${encodeURIComponent(address)}`);
    const [code, reason] = await within(
      HANG_MS,
      "refusal",
      new Promise<[number, string]>((resolve, reject) => {
        ws.on("close", (closeCode, closeReason) => resolve([closeCode, closeReason.toString()]));
        ws.on("error", reject);
      }),
    );
    expect(code).toBe(1008);
    expect(reason).toMatch(/address not allowed/);
  });

  it("makes the driver fail for a non-loopback database host", async () => {
    route("postgres://u@192.0.2.1:5432/db", bridge.wsProxy);
    const client = new Pool({ connectionString: "postgres://u:p@192.0.2.1:5432/db", max: 1 });
    client.on("error", () => {});
    // Refused, not left hanging.
    const refused = await within(HANG_MS, "refused connection", client.query("SELECT 1")).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(Error);
    expect(String(refused)).not.toMatch(/no answer within/);
    await client.end().catch(() => {});
  });

  it("refuses WebSocket upgrades from other web sites", async () => {
    const status = (origin: string) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(`ws://${bridge.wsProxy}/v1?address=127.0.0.1:5432`, {
          headers: { origin },
        });
        ws.on("unexpected-response", (_request, response) => {
          resolve(response.statusCode ?? 0);
          ws.terminate();
        });
        ws.on("open", () => {
          resolve(101);
          ws.terminate();
        });
        ws.on("error", reject);
      });
    expect(await status("https://evil.example")).toBe(403);
    expect(await status("http://localhost:8787")).toBe(101);
  });

  it("will not start for a database on another machine", async () => {
    await expect(
      startBridge({ databaseUrl: "postgres://u:secret@db.example.com/x" }),
    ).rejects.toThrow(/only reaches a Postgres on this machine.*u:\*\*\*@db\.example\.com/);
  });
});

describe("redactUrl", () => {
  it("hides the password and keeps the rest", () => {
    expect(redactUrl("postgres://alice:s3cr%40t@127.0.0.1:5432/app?sslmode=disable")).toBe(
      "postgres://alice:***@127.0.0.1:5432/app?sslmode=disable",
    );
    expect(redactUrl("postgresql://bob@localhost/app")).toBe("postgresql://bob@localhost/app");
    expect(redactUrl("postgres://localhost/app?user=x&password=hunter2")).toBe(
      "postgres://localhost/app?user=x&password=***",
    );
    expect(redactUrl("not a url://carol:pw@host")).toBe("not a url://carol:***@host");
  });
});
