import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ensureAdminToken, projectRoot } from "../../scripts/lib/environment.ts";

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === "string") throw new Error("no port");
  return address.port;
}

interface Started {
  child: ChildProcess;
  output: () => string;
}

/** Runs `npm start` as a developer would, and waits for its banner. */
async function start(env: Record<string, string>): Promise<Started> {
  const child = spawn(join(projectRoot, "node_modules", ".bin", "node"), ["scripts/start.ts"], {
    cwd: projectRoot,
    env: { ...process.env, ...env, DATABASE_URL: "", FORCE_COLOR: "0" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const deadline = Date.now() + 90_000;
  while (!output.includes("Airlock is running")) {
    if (child.exitCode !== null) throw new Error(`npm start exited early:\n${output}`);
    if (Date.now() > deadline) throw new Error(`npm start did not become ready:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { child, output: () => output };
}

async function stop(started: Started): Promise<void> {
  const { child } = started;
  if (child.exitCode !== null || !child.pid) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  process.kill(-child.pid, "SIGTERM");
  await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 15_000))]);
  if (child.exitCode === null) process.kill(-child.pid, "SIGKILL");
}

describe("npm start", () => {
  const stateDir = mkdtempSync(join(tmpdir(), "airlock-start-"));
  const running: Started[] = [];
  afterAll(async () => {
    for (const started of running) await stop(started);
    rmSync(stateDir, { recursive: true, force: true });
  });

  it("serves the API on an embedded database whose data survives a restart", async () => {
    const { token } = ensureAdminToken();
    const port = await freePort();
    const env = {
      AIRLOCK_STATE_DIR: stateDir,
      PORT: String(port),
      AIRLOCK_DB_PORT: String(await freePort()),
    };
    const base = `http://127.0.0.1:${port}`;
    const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };

    const first = await start(env);
    running.push(first);
    expect(first.output()).toContain(`API:       ${base}`);
    expect(first.output()).toContain(`${base}/docs`);
    expect(first.output()).toMatch(
      /Database: +postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/postgres \(embedded\)/,
    );

    const model = await fetch(`${base}/admin/models`, {
      method: "POST",
      headers,
      body: JSON.stringify({
        name: "restart-check",
        task: "regression",
        owner: "ops",
        description: "survives restarts",
        inputSchema: { type: "object", properties: { x: { type: "number" } } },
      }),
    });
    expect(model.status).toBe(201);
    const version = await fetch(`${base}/admin/models/restart-check/versions`, {
      method: "POST",
      headers,
      body: JSON.stringify({
        version: "v1",
        upstream: {
          kind: "http",
          url: "http://127.0.0.1:9/predict",
          protocol: "json",
          timeoutMs: 100,
        },
      }),
    });
    expect(version.status).toBe(201);
    await stop(first);

    const second = await start(env);
    running.push(second);
    const read = await fetch(`${base}/admin/models/restart-check/versions/v1`, { headers });
    expect(read.status).toBe(200);
    expect(((await read.json()) as { version: string }).version).toBe("v1");
    const audit = await fetch(`${base}/admin/audit?target=models/restart-check`, { headers });
    const actions = ((await audit.json()) as { items: { action: string }[] }).items.map(
      (e) => e.action,
    );
    expect(actions).toEqual(["version.create", "model.create"]);
    const docs = await fetch(`${base}/openapi.json`);
    expect(docs.status).toBe(200);
    await stop(second);
  });
});
