// Local Postgres for the Worker. The Worker talks to Postgres through the Neon
// driver, i.e. the Postgres protocol inside a WebSocket, configured with
//   neonConfig.wsProxy = (host, port) => `${wsProxy}/v1?address=${host}:${port}`
//   neonConfig.useSecureWebSocket = false; pipelineTLS = false; pipelineConnect = false
// so a local database needs a WebSocket endpoint next to its TCP port:
//   - startBridge: a real Postgres (DATABASE_URL) behind a WebSocket-to-TCP bridge;
//   - startEmbeddedDatabase: PGlite, served over TCP and WebSocket.

import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { PgliteMultiplexer } from "./pglite-multiplexer.ts";
import { socketTransport, webSocketTransport } from "./wire-transport.ts";
import {
  connectHost,
  formatHostPort,
  isLoopbackHost,
  listenWebSocket,
  type WebSocketEndpoint,
} from "./ws-endpoint.ts";
import { bridgeWebSocket } from "./ws-tcp-bridge.ts";

export interface LocalDatabase {
  kind: "embedded" | "external";
  /** postgres://user:password@host:port/dbname, usable over TCP. */
  databaseUrl: string;
  /** host:port of the WebSocket endpoint, for neonConfig.wsProxy. */
  wsProxy: string;
  /** Stops the servers, disconnecting clients; for embedded also closes PGlite (flushing the data dir). */
  close(): Promise<void>;
}

export interface EmbeddedDatabaseOptions {
  /** Where PGlite keeps its files; undefined keeps the database in memory. */
  dataDir?: string;
  /** Address to listen on; 127.0.0.1 by default. */
  host?: string;
  /** 0 (the default) picks a free port. */
  tcpPort?: number;
  wsPort?: number;
  log?: (message: string) => void;
}

export interface BridgeOptions {
  /** The Postgres to reach; must be on this machine. */
  databaseUrl: string;
  host?: string;
  wsPort?: number;
  log?: (message: string) => void;
}

const DEFAULT_HOST = "127.0.0.1";

/**
 * PGlite, reachable by psql/migration tools over TCP and by the Worker over
 * WebSocket. Any user, password and database name are accepted: PGlite has a
 * single database and does not authenticate.
 */
export async function startEmbeddedDatabase(
  options: EmbeddedDatabaseOptions = {},
): Promise<LocalDatabase> {
  const host = options.host ?? DEFAULT_HOST;
  const log = options.log ?? (() => {});
  let unlock = async () => {};
  if (options.dataDir !== undefined) {
    // PGlite creates the data directory itself, but not its parents.
    await mkdir(dirname(options.dataDir), { recursive: true });
    unlock = await lockDataDir(options.dataDir);
  }
  let db: PGlite;
  try {
    db = await PGlite.create(options.dataDir === undefined ? {} : { dataDir: options.dataDir });
  } catch (error) {
    await unlock();
    throw error;
  }
  const mux = new PgliteMultiplexer(db, log);

  let tcp: Server | undefined;
  let ws: WebSocketEndpoint | undefined;
  const stop = async () => {
    // Clients first, while PGlite can still roll back what they left open.
    await mux.close();
    await Promise.all([tcp && closeServer(tcp), ws?.close()]);
    // After a PGlite failure any call may hang; there is nothing left to flush.
    if (!mux.failed) await db.close();
    await unlock();
  };
  try {
    tcp = await listenTcp(host, options.tcpPort ?? 0, (socket) =>
      mux.attach(socketTransport(socket)),
    );
    ws = await listenWebSocket({
      host,
      port: options.wsPort ?? 0,
      // The address is the one in databaseUrl; there is only this database to reach.
      onConnection: (socket, _target, rawAddress) =>
        mux.attach(webSocketTransport(socket, `websocket ${rawAddress}`)),
    });
  } catch (error) {
    await stop();
    throw error;
  }

  const tcpPort = (tcp.address() as { port: number }).port;
  const address = connectHost(host);
  log(
    `embedded Postgres (${options.dataDir ?? "in memory"}) on tcp ${formatHostPort(address, tcpPort)}, websocket ${formatHostPort(address, ws.port)}`,
  );
  return {
    kind: "embedded",
    databaseUrl: `postgres://postgres:postgres@${formatHostPort(address, tcpPort)}/postgres`,
    wsProxy: formatHostPort(address, ws.port),
    close: once(stop),
  };
}

/**
 * A WebSocket endpoint in front of an existing Postgres on this machine, as
 * Neon's proxy is in front of theirs. Each connection reaches the address the
 * driver asks for, which must be a loopback one.
 */
export async function startBridge(options: BridgeOptions): Promise<LocalDatabase> {
  const log = options.log ?? (() => {});
  let hostname: string;
  try {
    hostname = new URL(options.databaseUrl).hostname;
  } catch {
    throw new Error(`not a database URL: ${redactUrl(options.databaseUrl)}`);
  }
  if (!isLoopbackHost(hostname)) {
    throw new Error(
      `the WebSocket bridge only reaches a Postgres on this machine (127.0.0.1, ::1 or localhost), not ${redactUrl(options.databaseUrl)}`,
    );
  }

  const sockets = new Set<Socket>();
  const endpoint = await listenWebSocket({
    host: options.host ?? DEFAULT_HOST,
    port: options.wsPort ?? 0,
    onConnection: (ws, target, rawAddress) => {
      const tcp = bridgeWebSocket(ws, target, rawAddress, log);
      if (!tcp) return;
      sockets.add(tcp);
      tcp.on("close", () => sockets.delete(tcp));
    },
  });
  const wsProxy = formatHostPort(connectHost(options.host ?? DEFAULT_HOST), endpoint.port);
  log(`WebSocket bridge on ${wsProxy} for ${redactUrl(options.databaseUrl)}`);
  return {
    kind: "external",
    databaseUrl: options.databaseUrl,
    wsProxy,
    close: once(async () => {
      for (const socket of sockets) socket.destroy();
      await endpoint.close();
    }),
  };
}

/** The URL with its password (in the user info or a password= parameter) replaced by "***". */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@/]*@/, "//$1:***@");
  }
  let changed = false;
  if (parsed.password) {
    parsed.password = "***";
    changed = true;
  }
  if (parsed.searchParams.has("password")) {
    parsed.searchParams.set("password", "***");
    changed = true;
  }
  return changed ? parsed.toString() : url;
}

/**
 * PGlite does not stop a second process from opening a data directory in use
 * (its postmaster.pid names no real process), and two writers corrupt it. A
 * lock file next to the directory holds the owner's pid; one whose process is
 * gone is stale.
 */
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const lockFile = `${dataDir}.lock`;
  for (;;) {
    try {
      await writeFile(lockFile, String(process.pid), { flag: "wx" });
      return () => rm(lockFile, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const owner = Number.parseInt(await readFile(lockFile, "utf8").catch(() => ""), 10);
    if (owner > 0 && processAlive(owner)) throw new DataDirInUseError(dataDir, lockFile, owner);
    await rm(lockFile, { force: true });
  }
}

/** The data directory is open in another live process (`owner`), which holds `lockFile`. */
export class DataDirInUseError extends Error {
  readonly dataDir: string;
  readonly lockFile: string;
  readonly owner: number;
  constructor(dataDir: string, lockFile: string, owner: number) {
    super(`the database in ${dataDir} is already open (process ${owner}, ${lockFile})`);
    this.name = "DataDirInUseError";
    this.dataDir = dataDir;
    this.lockFile = lockFile;
    this.owner = owner;
  }
}

/** Whether a process with this id exists (one we may not signal still counts). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function listenTcp(
  host: string,
  port: number,
  onSocket: (socket: Socket) => void,
): Promise<Server> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    onSocket(socket);
  });
  openSockets.set(server, sockets);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

const openSockets = new WeakMap<Server, Set<Socket>>();

/** Stops listening; connections still open by now (a client ignoring our close) are cut. */
function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  for (const socket of openSockets.get(server) ?? []) socket.destroy();
  return closed;
}

/** close() may be called more than once (signal handlers, test teardown); it runs once. */
function once(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => {
    running ??= fn();
    return running;
  };
}
