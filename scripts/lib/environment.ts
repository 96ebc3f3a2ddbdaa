import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type LocalDatabase, startBridge, startEmbeddedDatabase } from "./local-db.ts";

export const projectRoot = fileURLToPath(new URL("../..", import.meta.url));
/** Local state that git ignores: the embedded database and the running server's ports. */
export const stateDir = process.env.AIRLOCK_STATE_DIR || join(projectRoot, ".airlock");
const runningFile = join(stateDir, "database.json");

const loopback = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

export function isLoopbackUrl(url: string): boolean {
  return loopback.has(new URL(url).hostname);
}

interface RunningDatabase {
  pid: number;
  databaseUrl: string;
  wsProxy: string;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The database that local commands should use, ready to be reached by the
 * Neon driver. `wsProxy` is undefined for a remote (Neon) database.
 */
export async function databaseFromEnvironment(options: { tcpPort?: number } = {}): Promise<
  Omit<LocalDatabase, "wsProxy" | "kind"> & {
    wsProxy: string | undefined;
    kind: LocalDatabase["kind"] | "remote";
  }
> {
  const url = process.env.DATABASE_URL;
  if (url) {
    if (!isLoopbackUrl(url))
      return { kind: "remote", databaseUrl: url, wsProxy: undefined, close: async () => {} };
    return startBridge({ databaseUrl: url });
  }
  // `npm start` holds the embedded database open: go through its server.
  if (existsSync(runningFile)) {
    const running = JSON.parse(readFileSync(runningFile, "utf8")) as RunningDatabase;
    if (processAlive(running.pid)) {
      return {
        kind: "embedded",
        databaseUrl: running.databaseUrl,
        wsProxy: running.wsProxy,
        close: async () => {},
      };
    }
  }
  return startEmbeddedDatabase({
    dataDir: join(stateDir, "pgdata"),
    tcpPort: options.tcpPort ?? 0,
  });
}

export function recordRunningDatabase(database: { databaseUrl: string; wsProxy: string }) {
  mkdirSync(stateDir, { recursive: true });
  const record: RunningDatabase = {
    pid: process.pid,
    databaseUrl: database.databaseUrl,
    wsProxy: database.wsProxy,
  };
  writeFileSync(runningFile, JSON.stringify(record));
}

export function forgetRunningDatabase() {
  try {
    const running = JSON.parse(readFileSync(runningFile, "utf8")) as RunningDatabase;
    if (running.pid === process.pid) writeFileSync(runningFile, "{}");
  } catch {
    // nothing recorded
  }
}

/**
 * The local secrets file (dotenv syntax) that `npm start` writes and `wrangler dev` reads:
 * AIRLOCK_DEV_VARS when it names one (relative to the working directory), else the project's
 * `.dev.vars`.
 */
export function devVarsPath(env: Record<string, string | undefined> = process.env): string {
  const named = env.AIRLOCK_DEV_VARS?.trim();
  return named ? resolve(named) : join(projectRoot, ".dev.vars");
}

/** Reads a `.dev.vars` file (dotenv syntax) into a map; missing file gives an empty map. */
export function readDevVars(file = devVarsPath()): Map<string, string> {
  const vars = new Map<string, string>();
  if (!existsSync(file)) return vars;
  for (const line of readFileSync(file, "utf8").split(/\r?\n/)) {
    const match = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)\s*$/.exec(line);
    if (!match?.[1]) continue;
    let value = match[2] ?? "";
    if (/^(["']).*\1$/.test(value)) value = value.slice(1, -1);
    vars.set(match[1], value);
  }
  return vars;
}

/**
 * Makes sure the secrets file (`.dev.vars` unless AIRLOCK_DEV_VARS names another) holds an admin
 * token and the local keys, writing random ones when it has none. Returns the token and whether
 * it was just created.
 */
export function ensureAdminToken(file = devVarsPath()): {
  token: string;
  created: boolean;
} {
  const vars = readDevVars(file);
  const missing: string[] = [];
  // The key of the HMAC that stands for clients' bucketing keys in logs.
  if (!vars.get("LOG_HMAC_KEY"))
    missing.push(`LOG_HMAC_KEY="${randomBytes(32).toString("base64url")}"`);
  // The AES-256-GCM key of alert destinations' URLs and signing secrets.
  if (!vars.get("ALERT_ENCRYPTION_KEY"))
    missing.push(`ALERT_ENCRYPTION_KEY="${randomBytes(32).toString("base64")}"`);
  const existing = vars.get("ADMIN_TOKEN");
  const token = existing || randomBytes(32).toString("base64url");
  if (!existing) missing.push(`ADMIN_TOKEN="${token}"`);
  if (missing.length > 0) {
    mkdirSync(dirname(file), { recursive: true });
    const previous = existsSync(file) ? readFileSync(file, "utf8") : "";
    const separator = previous === "" || previous.endsWith("\n") ? "" : "\n";
    writeFileSync(file, `${previous}${separator}${missing.join("\n")}\n`, { mode: 0o600 });
  }
  return { token, created: !existing };
}
