// A throwaway PostgreSQL cluster for benchmarks: Debian's (or any) PostgreSQL
// binaries, a fresh data directory in a temporary folder, loopback only, a
// random password. Stopped and deleted by stop().
// As root the server runs as the `postgres` user, since PostgreSQL refuses
// to run as root.
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import { join } from "node:path";

export interface TempPostgres {
  databaseUrl: string;
  /** `postgres --version`. */
  version: string;
  /** Server settings this cluster was started with (beyond initdb's defaults). */
  settings: Record<string, string>;
  auth: "scram-sha-256" | "password";
  /** The postmaster's process id (its backends are its children), while it runs. */
  serverPid(): number | undefined;
  /** Stops the server and deletes its folder; safe to call more than once. */
  stop(): Promise<void>;
  /** The same, synchronously: for process exit handlers. */
  stopNow(): void;
}

/**
 * The folder holding initdb, pg_ctl and postgres: $PG_BIN, else the newest
 * /usr/lib/postgresql/<major>/bin, else initdb on the PATH. Undefined when
 * there is none.
 */
export function findPostgresBin(): string | undefined {
  const fromEnv = process.env.PG_BIN;
  if (fromEnv) return existsSync(join(fromEnv, "initdb")) ? fromEnv : undefined;
  const root = "/usr/lib/postgresql";
  if (existsSync(root)) {
    const majors = readdirSync(root)
      .filter((name) => /^\d+$/.test(name) && existsSync(join(root, name, "bin", "initdb")))
      .sort((a, b) => Number(b) - Number(a));
    if (majors[0]) return join(root, majors[0], "bin");
  }
  const which = spawnSync("sh", ["-c", "command -v initdb"], { encoding: "utf8" });
  const initdb = which.status === 0 ? which.stdout.trim() : "";
  if (!initdb) return undefined;
  // Follow a symlink (Debian links /usr/local/bin/initdb into /usr/lib/postgresql/N/bin).
  const real = spawnSync("readlink", ["-f", initdb], { encoding: "utf8" }).stdout.trim();
  return join(real || initdb, "..");
}

/**
 * Starts a cluster on 127.0.0.1:`port`. `settings` are passed as `-c` options
 * (e.g. shared_buffers); listen_addresses, port and the socket folder are set
 * here.
 */
export async function startTempPostgres(options: {
  bin: string;
  port: number;
  settings?: Record<string, string>;
  /**
   * How clients log in (pg_hba method): "scram-sha-256" (the default, as CI
   * sets it up) or "password" (the password in clear, as clients log in to
   * Neon's proxy over TLS).
   */
  auth?: "scram-sha-256" | "password";
}): Promise<TempPostgres> {
  const { bin, port } = options;
  const asRoot = process.getuid?.() === 0;
  const run = (command: string, args: string[]) =>
    asRoot
      ? execFileSync("runuser", ["-u", "postgres", "--", join(bin, command), ...args], {
          encoding: "utf8",
          stdio: ["ignore", "pipe", "pipe"],
        })
      : execFileSync(join(bin, command), args, {
          encoding: "utf8",
          stdio: ["ignore", "pipe", "pipe"],
        });
  const dir = mkdtempSync(join(os.tmpdir(), "airlock-pg-"));
  const data = join(dir, "data");
  const password = randomBytes(18).toString("base64url");
  let started = false;
  let stopped = false;
  const stopNow = () => {
    if (stopped) return;
    stopped = true;
    if (started) {
      try {
        run("pg_ctl", ["-D", data, "-m", "fast", "-w", "-t", "30", "stop"]);
      } catch {
        // not running
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, "pwfile"), `${password}\n`);
    if (asRoot) execFileSync("chown", ["-R", "postgres", dir]);
    run("initdb", [
      "-D",
      data,
      "-U",
      "postgres",
      `--pwfile=${join(dir, "pwfile")}`,
      `--auth=${options.auth ?? "scram-sha-256"}`,
      "--no-sync",
      "-E",
      "UTF8",
      "--locale=C.UTF-8",
    ]);
    const settings = {
      listen_addresses: "127.0.0.1",
      port: String(port),
      unix_socket_directories: dir,
      ...options.settings,
    };
    const serverOptions = Object.entries(settings)
      .map(([key, value]) => `-c ${key}=${value}`)
      .join(" ");
    started = true;
    run(
      "pg_ctl",
      ["-D", data, "-l", join(dir, "postgres.log"), "-w", "-t", "60"].concat([
        "-o",
        serverOptions,
        "start",
      ]),
    );
    const version = execFileSync(join(bin, "postgres"), ["--version"], { encoding: "utf8" }).trim();
    return {
      databaseUrl: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
      version,
      settings: options.settings ?? {},
      auth: options.auth ?? "scram-sha-256",
      serverPid: () => {
        try {
          const pid = Number.parseInt(readFileSync(join(data, "postmaster.pid"), "utf8"), 10);
          return pid > 0 ? pid : undefined;
        } catch {
          return undefined;
        }
      },
      stop: async () => stopNow(),
      stopNow,
    };
  } catch (error) {
    const log = join(dir, "postgres.log");
    const detail = existsSync(log)
      ? `\n${execFileSync("tail", ["-n", "20", log], { encoding: "utf8" })}`
      : "";
    stopNow();
    const stderr = (error as { stderr?: string }).stderr ?? "";
    throw new Error(`could not start PostgreSQL from ${bin}: ${stderr || String(error)}${detail}`);
  }
}
