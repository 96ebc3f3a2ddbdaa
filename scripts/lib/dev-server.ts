// `npm start`'s dev server: its ports, what of wrangler's output it shows, and running it from
// tests and benchmarks.
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { stripVTControlCharacters } from "node:util";
import { projectRoot } from "./environment.ts";

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === "string") throw new Error("no port");
  return address.port;
}

/**
 * A problem that the person at the terminal can fix (a port in use, a second instance): the
 * scripts print its message alone, without a stack, and exit with 1.
 */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Prints a UsageError's message and exits 1; anything else is thrown on. */
export function exitOnUsageError(error: unknown): never {
  if (error instanceof UsageError) {
    console.error(error.message);
    process.exit(1);
  }
  throw error;
}

/** The port that the environment variable `name` sets, or `fallback` when it is unset or empty. */
export function portFromEnv(
  name: string,
  fallback: number,
  env: Record<string, string | undefined> = process.env,
): number {
  const value = env[name]?.trim();
  if (!value) return fallback;
  const port = Number(value);
  if (!/^\d+$/.test(value) || port < 1 || port > 65_535) {
    throw new UsageError(`${name} must be a port number (1-65535), not "${value}"`);
  }
  return port;
}

/** Whether something else listens on `host:port` (so that we could not). */
export async function portInUse(port: number, host = "127.0.0.1"): Promise<boolean> {
  const server = createServer();
  return new Promise<boolean>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EADDRINUSE") resolve(true);
      else reject(error);
    });
    server.listen(port, host, () => server.close(() => resolve(false)));
  });
}

/** The first port after `port` that is free, to suggest in place of a busy one. */
export async function nextFreePort(port: number, host = "127.0.0.1"): Promise<number> {
  for (let candidate = port + 1; candidate <= Math.min(port + 100, 65_535); candidate++) {
    if (!(await portInUse(candidate, host).catch(() => true))) return candidate;
  }
  return port + 1;
}

/** "Port 8787 is in use: set PORT to another port, e.g. PORT=8788 npm start". */
export async function portInUseError(
  port: number,
  variable: string,
  command: string,
  host = "127.0.0.1",
): Promise<UsageError> {
  const suggestion = await nextFreePort(port, host);
  return new UsageError(
    `Port ${port} is in use: set ${variable} to another port, e.g. ${variable}=${suggestion} ${command}`,
  );
}

/** Throws the UsageError above when `port` is taken. */
export async function requirePortFree(
  port: number,
  variable: string,
  command: string,
  host = "127.0.0.1",
): Promise<void> {
  if (await portInUse(port, host)) throw await portInUseError(port, variable, command, host);
}

/**
 * Starts a local server on the port a variable names (its default otherwise),
 * as a command of its own: a port in use, checked first and again if another
 * process takes it meanwhile, ends the process with one line naming the
 * variable to set, never a stack trace.
 */
export async function startOnPort<T>(
  variable: string,
  fallback: number,
  command: string,
  start: (port: number) => Promise<T>,
): Promise<T> {
  return (async () => {
    const port = portFromEnv(variable, fallback);
    await requirePortFree(port, variable, command);
    return start(port).catch(async (error: unknown) => {
      throw isAddressInUse(error) ? await portInUseError(port, variable, command) : error;
    });
  })().catch(exitOnUsageError);
}

export function isAddressInUse(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === "EADDRINUSE";
}

/**
 * What of `wrangler dev`'s output `npm start` shows, line by line. It leaves out what would
 * only repeat or mislead: the bindings table again, identical, after each "Connection status
 * updated" (wrangler reprints it whenever its dev registry or the Worker reloads); the warning
 * that cron triggers do not fire locally, whose advice (a bare `/cdn-cgi/local/scheduled`, no
 * cron) fails for this Worker, while npm start's banner says how they fire; and wrangler's line
 * for each of the scheduler's requests, which the scheduler logs itself with the outcome.
 */
export class WranglerOutput {
  /** Scheduler requests whose `POST /__scheduled` line is still to come. */
  schedulerRequests = 0;
  private shownTable: string | undefined;
  private table: string[] | undefined;
  private held: string[] = [];
  private inCronWarning = false;

  /** The lines to print for one line wrangler printed (none, it, or lines held back before). */
  line(line: string): string[] {
    const plain = stripVTControlCharacters(line);
    if (this.inCronWarning) {
      if (plain.trim() === "" || /^\s/.test(plain)) return [];
      this.inCronWarning = false;
    }
    if (this.table) {
      this.table.push(line);
      return plain.trim() === "" ? this.endTable() : [];
    }
    if (plain.includes("Your Worker has access to the following bindings:")) {
      this.table = [line];
      return [];
    }
    const held = this.held;
    this.held = [];
    if (plain.includes("Connection status updated")) {
      this.held = [line];
      return held;
    }
    if (plain.includes("Scheduled Workers are not automatically triggered")) {
      this.inCronWarning = true;
      return held;
    }
    if (this.schedulerRequests > 0 && /\bPOST \/__scheduled \d{3}\b/.test(plain)) {
      this.schedulerRequests -= 1;
      return held;
    }
    return [...held, line];
  }

  /** What is still held back, at the end of the output. */
  flush(): string[] {
    const rest = [...this.held, ...(this.table ?? [])];
    this.held = [];
    this.table = undefined;
    return rest;
  }

  private endTable(): string[] {
    const table = this.table ?? [];
    this.table = undefined;
    const held = this.held;
    this.held = [];
    const text = table.map((l) => stripVTControlCharacters(l)).join("\n");
    if (text === this.shownTable) return [];
    this.shownTable = text;
    return [...held, ...table];
  }
}

/** Runs one of the project's scripts (e.g. `scripts/migrate.ts`) as npm would, to its end. */
export async function runScript(
  script: string,
  env: Record<string, string>,
  args: string[] = [],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(join(projectRoot, "node_modules", ".bin", "node"), [script, ...args], {
    cwd: projectRoot,
    env: { ...process.env, DATABASE_URL: "", FORCE_COLOR: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  return { code, stdout, stderr };
}

export interface DevServer {
  child: ChildProcess;
  /** Everything it printed (the last 20,000 characters). */
  output(): string;
  /** Stops its whole process group (wrangler and workerd with it). */
  stop(): Promise<void>;
}

/**
 * Runs `npm start` as a developer would, in its own process group, and waits
 * for its banner. `env` adds to this process's environment (DATABASE_URL is
 * cleared, so the embedded database is used). Tests give it AIRLOCK_STATE_DIR
 * and AIRLOCK_DEV_VARS of their own, so that the developer's `.airlock` and
 * `.dev.vars` stay as they are.
 */
export async function startDevServer(
  env: Record<string, string>,
  options: { onOutput?: (text: string) => void; timeoutMs?: number; args?: string[] } = {},
): Promise<DevServer> {
  const script = ["scripts/start.ts", ...(options.args ?? [])];
  const child = spawn(join(projectRoot, "node_modules", ".bin", "node"), script, {
    cwd: projectRoot,
    env: { ...process.env, ...env, DATABASE_URL: "", FORCE_COLOR: "0" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  const collect = (chunk: Buffer) => {
    const text = chunk.toString();
    options.onOutput?.(text);
    output = (output + text).slice(-20_000);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const server: DevServer = { child, output: () => output, stop: () => stopGroup(child) };
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  while (!output.includes("Airlock is running")) {
    if (child.exitCode !== null) throw new Error(`npm start exited early:\n${output}`);
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`npm start did not become ready:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return server;
}

async function stopGroup(child: ChildProcess): Promise<void> {
  if (!child.pid || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-(child.pid as number), name);
    } catch {
      // already gone
    }
  };
  signal("SIGTERM");
  await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 15_000))]);
  if (child.exitCode === null && child.signalCode === null) signal("SIGKILL");
}
