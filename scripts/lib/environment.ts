import { generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  DataDirInUseError,
  type LocalDatabase,
  processAlive,
  startBridge,
  startEmbeddedDatabase,
} from "./local-db.ts";

export const projectRoot = fileURLToPath(new URL("../..", import.meta.url));
/** Local state that git ignores: the embedded database and the running server's ports. */
export const stateDir = process.env.AIRLOCK_STATE_DIR || join(projectRoot, ".airlock");
/** The embedded database that `npm start` serves, while it runs. */
const runningFile = join(stateDir, "database.json");

const loopback = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

export function isLoopbackUrl(url: string): boolean {
  return loopback.has(new URL(url).hostname);
}

/** A path as people should read it: relative inside the project, absolute outside it. */
export function shownPath(path: string): string {
  const inProject = relative(projectRoot, path);
  return inProject.startsWith("..") || isAbsolute(inProject) ? path : inProject || ".";
}

interface RunningDatabase {
  pid: number;
  databaseUrl: string;
  wsProxy: string;
}

export interface RunningInstance {
  pid: number;
  /** The Worker's port. */
  port: number;
  startedAt: string;
}

function readJson<T>(file: string): Partial<T> | undefined {
  try {
    const value: unknown = JSON.parse(readFileSync(file, "utf8"));
    return typeof value === "object" && value !== null ? (value as Partial<T>) : undefined;
  } catch {
    return undefined;
  }
}

/** The `npm start` whose record is in the state directory, if that process still runs. */
export function runningInstance(dir = stateDir): RunningInstance | undefined {
  const record = readJson<RunningInstance>(join(dir, "instance.json"));
  if (typeof record?.pid !== "number" || !processAlive(record.pid)) return undefined;
  return { pid: record.pid, port: Number(record.port), startedAt: String(record.startedAt) };
}

/** Another `npm start` runs on this state directory. */
export class InstanceRunningError extends Error {
  readonly running: RunningInstance;
  constructor(running: RunningInstance, dir: string) {
    super(`npm start (process ${running.pid}) is already running on ${shownPath(dir)}`);
    this.name = "InstanceRunningError";
    this.running = running;
  }
}

/**
 * Claims the state directory for this process before anything in it is written: a second
 * `npm start` on the same directory would otherwise take over the first one's records. A
 * record whose process is gone is stale and replaced. Returns the release function.
 */
export function claimStateDir(port: number, dir = stateDir): () => void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "instance.json");
  const record: RunningInstance = { pid: process.pid, port, startedAt: new Date().toISOString() };
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(file, JSON.stringify(record), { flag: "wx" });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 5) throw error;
    }
    const running = runningInstance(dir);
    if (running) throw new InstanceRunningError(running, dir);
    rmSync(file, { force: true });
  }
  return () => {
    if (readJson<RunningInstance>(file)?.pid === process.pid) rmSync(file, { force: true });
  };
}

/** The embedded database that a running `npm start` serves, if any. */
function runningDatabase(): RunningDatabase | undefined {
  const record = readJson<RunningDatabase>(runningFile);
  if (
    typeof record?.pid !== "number" ||
    typeof record.databaseUrl !== "string" ||
    typeof record.wsProxy !== "string" ||
    !processAlive(record.pid)
  )
    return undefined;
  return { pid: record.pid, databaseUrl: record.databaseUrl, wsProxy: record.wsProxy };
}

/**
 * The database that local commands should use, ready to be reached by the
 * Neon driver. `wsProxy` is undefined for a remote (Neon) database. Without DATABASE_URL:
 * the embedded database, through the server of the `npm start` that has it open, if one does
 * (unless `shareRunning` is false), else opened here.
 */
export async function databaseFromEnvironment(
  options: { tcpPort?: number; shareRunning?: boolean } = {},
): Promise<
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
  const running = options.shareRunning === false ? undefined : runningDatabase();
  if (running) {
    return {
      kind: "embedded",
      databaseUrl: running.databaseUrl,
      wsProxy: running.wsProxy,
      close: async () => {},
    };
  }
  return startEmbeddedDatabase({
    dataDir: join(stateDir, "pgdata"),
    tcpPort: options.tcpPort ?? 0,
  });
}

/**
 * What to tell a person when the database could not be opened: one or two lines, no stack.
 */
export function explainDatabaseError(error: unknown): string {
  if (error instanceof DataDirInUseError) {
    const instance = runningInstance();
    if (instance?.pid === error.owner) {
      return `npm start (process ${error.owner}) is still starting on ${shownPath(stateDir)}: try again once it is ready, and this goes through its database.`;
    }
    return `The embedded database in ${shownPath(error.dataDir)} is open in process ${error.owner} (${shownPath(error.lockFile)}): stop that process or wait for it to end, then try again.`;
  }
  return error instanceof Error ? error.message : String(error);
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

/** Removes this process's record of its database (another process's stays). */
export function forgetRunningDatabase() {
  if (readJson<RunningDatabase>(runningFile)?.pid === process.pid)
    rmSync(runningFile, { force: true });
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

/** A new Ed25519 private key, PKCS#8 DER in base64: what AUDIT_SIGNING_KEY holds. */
export function newAuditSigningKey(): string {
  const { privateKey } = generateKeyPairSync("ed25519");
  return privateKey.export({ format: "der", type: "pkcs8" }).toString("base64");
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
  // The Ed25519 key that signs the audit chain's checkpoints.
  if (!vars.get("AUDIT_SIGNING_KEY")) missing.push(`AUDIT_SIGNING_KEY="${newAuditSigningKey()}"`);
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
