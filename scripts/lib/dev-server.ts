import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
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
  options: { onOutput?: (text: string) => void; timeoutMs?: number } = {},
): Promise<DevServer> {
  const child = spawn(join(projectRoot, "node_modules", ".bin", "node"), ["scripts/start.ts"], {
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
