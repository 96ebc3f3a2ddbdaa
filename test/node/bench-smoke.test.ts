// Every benchmark in its smoke mode (BENCH_SMOKE=1): tiny sizes, the whole
// path end to end, checks that the work was done instead of timings, and no
// result file. A benchmark that no longer starts, or whose work is no longer
// done, fails here rather than on the day someone wants figures.
//
// Each runs as `npm run bench:...` runs it (the command in package.json, with
// node_modules/.bin first on PATH), in a process group of its own that is
// stopped as a group afterwards. With TEST_DATABASE_URL the benchmarks that
// take a Postgres server use it (in throwaway databases); otherwise they use
// the embedded PGlite. Verdicts come from exit codes and output only.
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { localSecrets, readWranglerConfig } from "../../scripts/lib/local-workerd.ts";

const root = join(import.meta.dirname, "..", "..");
const bin = join(root, "node_modules", ".bin");
const scripts = (
  JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    scripts: Record<string, string>;
  }
).scripts;

/** What each benchmark's output must show besides its verdict line. */
const evidence: Record<string, RegExp[]> = {
  "bench:gateway": [
    /smoke check passed: every scenario answered 200 at every concurrency \([1-9]\d* answers, 0 errors, 14 scenario runs\)/,
    /smoke check passed: prediction results stored in Postgres: bench-http served v1 \((\d+) rows for \1 answers\)/,
    /smoke check passed: prediction results stored in Postgres: bench-shadow shadow v2 \((\d+) rows for \1 answers\)/,
    /smoke check passed: the kill switch's engage was acknowledged and then seen by the client/,
  ],
  "bench:rollout": [
    /smoke check passed: T=250 ms: every kill-switch change answered 2xx/,
    /smoke check passed: T=250 ms: the clients' route requests were answered 200 \([1-9]\d* requests, 0 errors\)/,
  ],
  "bench:models": [
    /smoke check passed: the boosted ensemble's probabilities match a plain walk of its trees/,
    /smoke check passed: end to end, JSON rows give the core's scores and their labels \(20 predictions\)/,
  ],
  "bench:ingest": [
    /smoke check passed: (postgres|embedded), 10 requests per message, 2 in flight: every row stored exactly once \((\d+) predictions and \2 refs rows for \2 results; 0 inserted/,
    /smoke check passed: under npm start, each prediction's served and shadow rows were stored \(10 predictions, 0 served and 0 shadow rows missing/,
  ],
  "bench:monitoring": [
    /smoke check passed: the window holds 20000 results/,
    /smoke check passed: baseline of 5000 rows: the drifted features flagged/,
  ],
  "bench:erasure": [
    /smoke check passed: with and without the index, every key's rows were the same \(8 keys, [1-9]\d* rows\)/,
    /smoke check passed: every deleted key has no rows left in either database \([1-9]\d* rows deleted in chunks of 2, 0 left\)/,
    /smoke check passed: every insert stored its results in predictions and prediction_refs, with and without the index/,
    /smoke check passed: every partition of the indexed copy has the key_hmac index \((\d+) of \1 partitions\)/,
  ],
};

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** A safety net for a hung child only: far above what a smoke run needs on a busy machine. */
const hungChildTimeoutMs = 900_000;

const running = new Set<ChildProcess>();

/** Signals a child's whole process group; false once the group is gone. */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): boolean {
  if (!child.pid) return false;
  try {
    process.kill(-child.pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Stops what is left of a child's group: SIGTERM (the benchmarks clean up on it), then SIGKILL. */
async function stopGroup(child: ChildProcess): Promise<void> {
  running.delete(child);
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once("exit", resolve));
    if (signalGroup(child, "SIGTERM"))
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20_000))]);
  }
  signalGroup(child, "SIGKILL");
}

afterEach(async () => {
  for (const child of [...running]) await stopGroup(child);
});

/** The environment `npm run` would give the benchmark, in smoke mode. */
function smokeEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith("BENCH_") || key.startsWith("VITEST") || key === "DATABASE_URL") continue;
    env[key] = value;
  }
  if (process.env.TEST_DATABASE_URL) env.DATABASE_URL = process.env.TEST_DATABASE_URL;
  env.BENCH_SMOKE = "1";
  env.PATH = `${bin}${delimiter}${process.env.PATH ?? ""}`;
  env.FORCE_COLOR = "0";
  env.WRANGLER_SEND_METRICS = "false";
  return env;
}

/** Runs an npm script's command (`node [flags] script.ts`) with the project's Node, to its exit. */
function runScript(name: string): Promise<Finished> {
  const [command, ...args] = (scripts[name] ?? "").split(/\s+/).filter(Boolean);
  if (command !== "node") throw new Error(`${name} is not a node command: ${scripts[name]}`);
  const child = spawn(join(bin, "node"), args, {
    cwd: root,
    env: smokeEnvironment(),
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  running.add(child);
  let output = "";
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    // Whatever it left in its group goes with it (and with that, the last holder of its pipes).
    child.once("exit", () => signalGroup(child, "SIGKILL"));
    child.once("close", (code, signal) => {
      running.delete(child);
      resolve({ code, signal, output });
    });
  });
}

/** The committed result files, to show that a smoke run leaves them alone. */
function resultFiles(): Record<string, string> {
  const dir = join(root, "bench", "results");
  return Object.fromEntries(
    readdirSync(dir)
      .filter((file) => file.endsWith(".json"))
      .map((file) => [file, readFileSync(join(dir, file), "utf8")]),
  );
}

describe("benchmarks in smoke mode", () => {
  it("has a smoke test for every bench:* script", () => {
    const benchmarks = Object.keys(scripts).filter((name) => name.startsWith("bench:"));
    expect(benchmarks.sort()).toEqual(Object.keys(evidence).sort());
  });

  it("gives every secret wrangler.toml requires a test value", () => {
    const config = readWranglerConfig();
    const required = config.secrets?.required ?? [];
    expect(required).toContain("ALERT_ENCRYPTION_KEY");
    const secrets = localSecrets(config, { DATABASE_URL: "postgres://127.0.0.1/x" });
    expect(Object.keys(secrets).sort()).toEqual([...required].sort());
    expect(secrets.DATABASE_URL).toBe("postgres://127.0.0.1/x");
    expect(Buffer.from(secrets.ALERT_ENCRYPTION_KEY ?? "", "base64")).toHaveLength(32);
    expect(() => localSecrets(config, { NOT_A_SECRET: "x" })).toThrow(/does not list NOT_A_SECRET/);
  });

  for (const [name, patterns] of Object.entries(evidence)) {
    it(
      `${name} runs end to end and checks its work`,
      async () => {
        const before = resultFiles();
        const run = await runScript(name);
        const tail = `${name} output (last part):\n${run.output.slice(-6000)}`;
        expect(run.signal, tail).toBeNull();
        expect(run.code, tail).toBe(0);
        expect(run.output, tail).toMatch(new RegExp(`${name} smoke run passed: [1-9]\\d* checks`));
        expect(run.output, tail).not.toContain("smoke check FAILED");
        for (const pattern of patterns) expect(run.output, tail).toMatch(pattern);
        expect(run.output).toMatch(/Smoke run: bench\/results\/[a-z-]+\.json left as it is/);
        expect(resultFiles()).toEqual(before);
      },
      hungChildTimeoutMs,
    );
  }
});
