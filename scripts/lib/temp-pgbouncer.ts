// A throwaway PgBouncer in front of a local Postgres, for benchmarks: the
// connection pooler Neon's pooled endpoint runs, in transaction mode as Neon
// runs it, so a client that connects for each unit of work (as a Worker
// invocation does) reuses warm server backends instead of starting one each
// time. Debian's `pgbouncer` package; loopback only; the upstream's
// credentials; stopped and deleted by stop(). As root it runs as the
// `postgres` user, since PgBouncer refuses to run as root.
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import { join } from "node:path";

export interface TempPgBouncer {
  /** The upstream's URL with host and port replaced by the pooler's. */
  databaseUrl: string;
  version: string;
  settings: Record<string, string>;
  pid: () => number | undefined;
  stop: () => Promise<void>;
  stopNow: () => void;
}

export function findPgBouncer(): string | undefined {
  for (const candidate of ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"])
    if (existsSync(candidate)) return candidate;
  const which = spawnSync("sh", ["-c", "command -v pgbouncer"], { encoding: "utf8" });
  return which.status === 0 ? which.stdout.trim() || undefined : undefined;
}

const quote = (value: string) => `"${value.replaceAll('"', '""')}"`;

async function waitForPort(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`pgbouncer exited with ${child.exitCode}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: "127.0.0.1", port }, () => {
        socket.end();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`pgbouncer did not listen on ${port} within ${timeoutMs} ms`);
}

/**
 * Starts PgBouncer on 127.0.0.1:`port` in front of `upstreamUrl` (a
 * postgres:// URL with user and password). `poolSize` server connections per
 * database and user.
 */
export async function startPgBouncer(options: {
  binary: string;
  upstreamUrl: string;
  port: number;
  poolSize?: number;
}): Promise<TempPgBouncer> {
  const upstream = new URL(options.upstreamUrl);
  const user = decodeURIComponent(upstream.username);
  const password = decodeURIComponent(upstream.password);
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(os.tmpdir(), "airlock-pgbouncer-"));
  const settings: Record<string, string> = {
    pool_mode: "transaction",
    default_pool_size: String(options.poolSize ?? 8),
    max_client_conn: "1000",
    // The client's password in clear, as the driver sends it over TLS to Neon.
    auth_type: "plain",
    server_reset_query: "DISCARD ALL",
    ignore_startup_parameters: "extra_float_digits,options",
  };
  const config = [
    "[databases]",
    `* = host=${upstream.hostname} port=${upstream.port || "5432"}`,
    "[pgbouncer]",
    "listen_addr = 127.0.0.1",
    `listen_port = ${options.port}`,
    "unix_socket_dir =",
    `auth_file = ${join(dir, "users.txt")}`,
    `logfile = ${join(dir, "pgbouncer.log")}`,
    ...Object.entries(settings).map(([key, value]) => `${key} = ${value}`),
    "",
  ].join("\n");
  writeFileSync(join(dir, "pgbouncer.ini"), config);
  writeFileSync(join(dir, "users.txt"), `${quote(user)} ${quote(password)}\n`, { mode: 0o600 });
  if (asRoot) execFileSync("chown", ["-R", "postgres", dir]);
  const args = [join(dir, "pgbouncer.ini")];
  const child = asRoot
    ? spawn("runuser", ["-u", "postgres", "--", options.binary, ...args], { stdio: "ignore" })
    : spawn(options.binary, args, { stdio: "ignore" });
  let stopped = false;
  const stopNow = () => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null) child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(options.port, child, 10_000);
  } catch (error) {
    stopNow();
    throw error;
  }
  const version =
    execFileSync(options.binary, ["--version"], { encoding: "utf8" }).split("\n")[0]?.trim() ??
    "PgBouncer";
  const url = new URL(options.upstreamUrl);
  url.hostname = "127.0.0.1";
  url.port = String(options.port);
  return {
    databaseUrl: url.toString(),
    version,
    settings,
    // runuser keeps its child: the pooler is its only child process.
    pid: () => {
      if (!child.pid) return undefined;
      if (!asRoot) return child.pid;
      const found = spawnSync("pgrep", ["-P", String(child.pid)], { encoding: "utf8" });
      const pid = Number.parseInt(found.stdout.trim().split("\n")[0] ?? "", 10);
      return pid > 0 ? pid : undefined;
    },
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
      }
      stopNow();
    },
    stopNow,
  };
}
