import { neonConfig, Pool } from "@neondatabase/serverless";
import { DrizzleQueryError } from "drizzle-orm/errors";
import { drizzle, type NeonDatabase, type NeonQueryResultHKT } from "drizzle-orm/neon-serverless";
import type { PgDatabase } from "drizzle-orm/pg-core";
import type { ExtractTablesWithRelations } from "drizzle-orm/relations";
import * as schema from "./schema";

export type Database = NeonDatabase<typeof schema>;

/** A transaction opened on the database. */
export type Transaction = Parameters<Parameters<Database["transaction"]>[0]>[0];

/**
 * The database or a transaction on it: what a function that only queries
 * takes, so a caller inside a transaction passes it without a cast.
 */
export type Queryable = PgDatabase<
  NeonQueryResultHKT,
  typeof schema,
  ExtractTablesWithRelations<typeof schema>
>;

export interface DatabaseConfig {
  DATABASE_URL: string;
  /** host:port of a local WebSocket bridge; empty in production. */
  DATABASE_WS_PROXY?: string;
}

let configuredProxy: string | undefined;

/**
 * Local runs reach Postgres through a WebSocket-to-TCP bridge instead of
 * Neon's proxy. Only then are TLS and connection pipelining turned off: a
 * plain Postgres answers a pipelined password login with an error, and the
 * bridge speaks plain ws://. Production leaves every default untouched.
 */
function configureDriver(proxy: string | undefined) {
  if (!proxy || proxy === configuredProxy) return;
  neonConfig.wsProxy = (host, port) => `${proxy}/v1?address=${host}:${port}`;
  neonConfig.useSecureWebSocket = false;
  neonConfig.pipelineTLS = false;
  neonConfig.pipelineConnect = false;
  configuredProxy = proxy;
}

export interface DatabaseHandle {
  db: Database;
  /** Closes the pool's connections; call it once the request is done with them. */
  close(): Promise<void>;
}

/**
 * One pool per request: Workers cannot share I/O objects across requests, so
 * connections live as long as the request that opened them.
 */
export function openDatabase(config: DatabaseConfig): DatabaseHandle {
  configureDriver(config.DATABASE_WS_PROXY);
  const pool = new Pool({
    connectionString: config.DATABASE_URL,
    max: 4,
    connectionTimeoutMillis: 5_000,
  });
  // An idle connection that drops must not surface as an unhandled error.
  pool.on("error", () => {});
  let closed: Promise<void> | undefined;
  return {
    db: drizzle({ client: pool, schema }),
    close: () => {
      closed ??= pool.end().catch(() => {});
      return closed;
    },
  };
}

const connectionErrorCodes = new Set(["57P01", "57P02", "57P03", "53300", "53400"]);

const connectionMessage =
  /connection (terminated|timeout|refused|closed|ended)|timeout exceeded when trying to connect|websocket|network connection|socket (hang up|closed)/i;

/**
 * True when an error means the database could not be reached or dropped the
 * connection, as opposed to rejecting a statement. Such errors become 503s.
 * drizzle's wrapper is looked through without reading its message, which
 * holds the statement and its parameters.
 */
export function isConnectionError(error: unknown): boolean {
  let e: unknown = error;
  for (let depth = 0; e !== null && typeof e === "object" && depth < 6; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") {
      if (code.startsWith("08") || connectionErrorCodes.has(code)) return true;
      if (/^[0-9A-Z]{5}$/.test(code)) return false; // a SQLSTATE: the server answered
      if (/^E(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT|HOSTUNREACH)$/.test(code)) return true;
    }
    if (typeof Event !== "undefined" && e instanceof Event) return true; // a WebSocket error event
    const message = (e as { message?: unknown }).message;
    const isWrapper = e instanceof DrizzleQueryError; // its message holds the statement's parameters
    if (!isWrapper && typeof message === "string" && connectionMessage.test(message)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * A statement refused for what it carries, not for the state of the server:
 * a data exception (class 22: a string jsonb or text cannot hold, a value out
 * of range), a NOT NULL or CHECK violation, or a value over a limit (class
 * 54). Retrying the same rows can never succeed; set them aside instead.
 */
export function isContentError(error: unknown): boolean {
  const state = sqlState(error);
  if (state === undefined) return false;
  return state.startsWith("22") || state.startsWith("54") || state === "23502" || state === "23514";
}

/** The SQLSTATE of a statement error, looking through drizzle's wrapper. */
export function sqlState(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e && typeof e === "object" && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}
