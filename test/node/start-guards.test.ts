// What `npm start` and `npm run db:migrate` do when they cannot go ahead: a port in use, a second
// instance on the same state directory, an embedded database open elsewhere. Each refuses with a
// message that names the fix, exit code 1 and no stack trace, and leaves the state as it was.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { neonConfig, Pool } from "@neondatabase/serverless";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { freePort, runScript } from "../../scripts/lib/dev-server.ts";
import {
  claimStateDir,
  InstanceRunningError,
  runningInstance,
} from "../../scripts/lib/environment.ts";
import { type LocalDatabase, startEmbeddedDatabase } from "../../scripts/lib/local-db.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "airlock-guards-"));
  dirs.push(dir);
  return dir;
}

/** Every file under `dir` with its contents, to see that nothing changed. */
function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files[path.slice(dir.length + 1)] = readFileSync(path, "utf8");
  }
  return files;
}

/** The id of a process that has ended. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await once(child, "exit");
  return child.pid as number;
}

const noStackTrace = (text: string) => expect(text).not.toMatch(/^\s+at /m);

describe("npm start refuses before it writes anything", () => {
  let occupied: Server | undefined;
  afterEach(async () => {
    if (occupied) await new Promise((resolve) => occupied?.close(resolve));
    occupied = undefined;
  });
  async function occupyPort(): Promise<number> {
    occupied = createServer();
    occupied.listen(0, "127.0.0.1");
    await once(occupied, "listening");
    return (occupied.address() as { port: number }).port;
  }

  async function instanceEnv(extra: Record<string, string> = {}) {
    const stateDir = tempDir();
    return {
      stateDir,
      devVars: join(stateDir, "dev.vars"),
      env: {
        AIRLOCK_STATE_DIR: stateDir,
        AIRLOCK_DEV_VARS: join(stateDir, "dev.vars"),
        PORT: String(await freePort()),
        AIRLOCK_DB_PORT: String(await freePort()),
        ...extra,
      },
    };
  }

  it("when PORT is in use", async () => {
    const port = await occupyPort();
    const { env, stateDir, devVars } = await instanceEnv({ PORT: String(port) });
    const result = await runScript("scripts/start.ts", env);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      new RegExp(
        `^Port ${port} is in use: set PORT to another port, e\\.g\\. PORT=\\d+ npm start\\n$`,
      ),
    );
    expect(result.stdout).toBe("");
    expect(snapshot(stateDir)).toEqual({});
    expect(existsSync(devVars)).toBe(false);
  });

  it("when AIRLOCK_DB_PORT is in use", async () => {
    const port = await occupyPort();
    const { env, stateDir } = await instanceEnv({ AIRLOCK_DB_PORT: String(port) });
    const result = await runScript("scripts/start.ts", env);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      new RegExp(
        `^Port ${port} is in use: set AIRLOCK_DB_PORT to another port, e\\.g\\. AIRLOCK_DB_PORT=\\d+ npm start\\n$`,
      ),
    );
    expect(snapshot(stateDir)).toEqual({});
  });

  it("when PORT is not a port number", async () => {
    const { env, stateDir } = await instanceEnv({ PORT: "eighty" });
    const result = await runScript("scripts/start.ts", env);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('PORT must be a port number (1-65535), not "eighty"\n');
    expect(snapshot(stateDir)).toEqual({});
  });

  it("when another npm start runs on the same state directory", async () => {
    const { env, stateDir } = await instanceEnv();
    // As a running npm start leaves them (this test process stands in for it).
    writeFileSync(
      join(stateDir, "instance.json"),
      JSON.stringify({ pid: process.pid, port: 8787, startedAt: "2026-12-07T06:00:00.000Z" }),
    );
    writeFileSync(
      join(stateDir, "database.json"),
      JSON.stringify({
        pid: process.pid,
        databaseUrl: "postgres://postgres:postgres@127.0.0.1:54329/postgres",
        wsProxy: "127.0.0.1:40000",
      }),
    );
    writeFileSync(join(stateDir, "pgdata.lock"), String(process.pid));
    const before = snapshot(stateDir);

    const result = await runScript("scripts/start.ts", env);
    expect(result.code).toBe(1);
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines[0]).toBe(
      `npm start is already running on ${stateDir} (process ${process.pid}, http://127.0.0.1:8787); this one stopped without touching it.`,
    );
    expect(lines[1]).toBe(
      "To run a second instance, give it a state directory and ports of its own:",
    );
    expect(lines[2]).toMatch(
      new RegExp(
        `^ {2}AIRLOCK_STATE_DIR=${stateDir}/second PORT=\\d+ AIRLOCK_DB_PORT=\\d+ npm start$`,
      ),
    );
    expect(lines).toHaveLength(3);
    expect(snapshot(stateDir)).toEqual(before);
  });
});

describe("the demo servers refuse a port in use", () => {
  let occupied: Server | undefined;
  afterEach(async () => {
    if (occupied) await new Promise((resolve) => occupied?.close(resolve));
    occupied = undefined;
  });

  it.each([
    ["scripts/demo-model-server.ts", "MODEL_SERVER_PORT", "npm run demo:model-server"],
    ["scripts/alert-receiver.ts", "ALERT_RECEIVER_PORT", "npm run demo:alert-receiver"],
  ])("%s", async (script, variable, command) => {
    occupied = createServer();
    occupied.listen(0, "127.0.0.1");
    await once(occupied, "listening");
    const port = (occupied.address() as { port: number }).port;
    const result = await runScript(script, { [variable]: String(port) });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      new RegExp(
        `^Port ${port} is in use: set ${variable} to another port, e\\.g\\. ${variable}=\\d+ ${command}\\n$`,
      ),
    );
    expect(result.stdout).toBe("");
  });
});

describe("claimStateDir", () => {
  it("lets one process have a state directory at a time, and takes over a stale claim", async () => {
    const dir = tempDir();
    const release = claimStateDir(8787, dir);
    expect(runningInstance(dir)).toMatchObject({ pid: process.pid, port: 8787 });
    expect(() => claimStateDir(8788, dir)).toThrow(InstanceRunningError);
    release();
    expect(runningInstance(dir)).toBeUndefined();
    expect(existsSync(join(dir, "instance.json"))).toBe(false);

    const gone = await deadPid();
    writeFileSync(
      join(dir, "instance.json"),
      JSON.stringify({ pid: gone, port: 8787, startedAt: "" }),
    );
    expect(runningInstance(dir)).toBeUndefined();
    const releaseAgain = claimStateDir(8789, dir);
    expect(runningInstance(dir)).toMatchObject({ pid: process.pid, port: 8789 });
    releaseAgain();
  });

  it("releases only its own claim", () => {
    const dir = tempDir();
    const release = claimStateDir(8787, dir);
    const other = { pid: process.ppid, port: 8790, startedAt: "" };
    writeFileSync(join(dir, "instance.json"), JSON.stringify(other));
    release();
    expect(JSON.parse(readFileSync(join(dir, "instance.json"), "utf8"))).toEqual(other);
  });
});

describe("npm run db:migrate on the embedded database", () => {
  let database: LocalDatabase | undefined;
  afterEach(async () => {
    await database?.close();
    database = undefined;
  });

  it("goes through the server of the npm start that has it open", async () => {
    const stateDir = tempDir();
    // This process plays the running npm start: it holds the data directory and serves it.
    database = await startEmbeddedDatabase({ dataDir: join(stateDir, "pgdata") });
    writeFileSync(
      join(stateDir, "instance.json"),
      JSON.stringify({ pid: process.pid, port: 8787, startedAt: "" }),
    );
    writeFileSync(
      join(stateDir, "database.json"),
      JSON.stringify({
        pid: process.pid,
        databaseUrl: database.databaseUrl,
        wsProxy: database.wsProxy,
      }),
    );
    const result = await runScript("scripts/migrate.ts", { AIRLOCK_STATE_DIR: stateDir });
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe(
      `Migrations applied to ${database.databaseUrl.replace(":postgres@", ":***@")}\n`,
    );
    expect(result.code).toBe(0);

    neonConfig.webSocketConstructor = WebSocket;
    neonConfig.wsProxy = (host, port) => `${database?.wsProxy}/v1?address=${host}:${port}`;
    neonConfig.useSecureWebSocket = false;
    neonConfig.pipelineTLS = false;
    neonConfig.pipelineConnect = false;
    const pool = new Pool({ connectionString: database.databaseUrl, max: 1 });
    const { rows } = await pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations",
    );
    await pool.end();
    expect(rows[0]?.n).toBeGreaterThan(0);
  });

  it("names the process that has it open, without a stack trace", async () => {
    const stateDir = tempDir();
    writeFileSync(join(stateDir, "pgdata.lock"), String(process.pid));
    const result = await runScript("scripts/migrate.ts", { AIRLOCK_STATE_DIR: stateDir });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `Could not open the database: The embedded database in ${join(stateDir, "pgdata")} is open in process ${process.pid} (${join(stateDir, "pgdata.lock")}): stop that process or wait for it to end, then try again.\n`,
    );
    noStackTrace(result.stderr);
  });

  it("says so when npm start has it open but is still starting", async () => {
    const stateDir = tempDir();
    writeFileSync(join(stateDir, "pgdata.lock"), String(process.pid));
    writeFileSync(
      join(stateDir, "instance.json"),
      JSON.stringify({ pid: process.pid, port: 8787, startedAt: "" }),
    );
    const result = await runScript("scripts/migrate.ts", { AIRLOCK_STATE_DIR: stateDir });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `Could not open the database: npm start (process ${process.pid}) is still starting on ${stateDir}: try again once it is ready, and this goes through its database.\n`,
    );
  });

  it("opens it itself when the record of a running npm start is stale", async () => {
    const stateDir = tempDir();
    const gone = await deadPid();
    writeFileSync(join(stateDir, "pgdata.lock"), String(gone));
    writeFileSync(
      join(stateDir, "database.json"),
      JSON.stringify({
        pid: gone,
        databaseUrl: "postgres://x@127.0.0.1:1/x",
        wsProxy: "127.0.0.1:1",
      }),
    );
    const result = await runScript("scripts/migrate.ts", { AIRLOCK_STATE_DIR: stateDir });
    expect(result.stderr).toBe("");
    expect(result.stdout).toMatch(
      /^Migrations applied to postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/postgres\n$/,
    );
    expect(result.code).toBe(0);
    expect(existsSync(join(stateDir, "pgdata.lock"))).toBe(false);
  });
});
