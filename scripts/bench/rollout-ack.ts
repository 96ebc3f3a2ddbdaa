// `npm run bench:rollout`: how long a rollout change takes to be acknowledged.
//
// A change (here: engaging or releasing the kill switch) returns 2xx only once
// every lease granted on the old state has run out, so its acknowledgement
// time is about the lease length T plus a margin. This benchmark measures it
// under `npm start` (wrangler dev on workerd, embedded Postgres) while a few
// clients keep asking the routing endpoint, so leases are being granted all
// along, and checks the promise on the way: a request that starts after a
// change's 2xx never uses an older state.
//
// Writes bench/results/rollout-ack.json. Knobs (environment): BENCH_LEASES
// (comma-separated T in ms, default "250,1000"), BENCH_CHANGES (per T, default
// 20), BENCH_CLIENTS (default 4), BENCH_THINK_MS (client pause, default 2),
// BENCH_GAP_MS (pause between changes, default 100). BENCH_SMOKE=1: a smoke
// run (T = 250 ms, 4 changes, 2 clients), which checks that every change was
// acknowledged, that the clients' requests were answered and that none broke
// the promise, and writes no result file.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import {
  knob,
  numberKnob,
  quantile,
  sleep,
  smoke,
  smokeChecks,
  sourceRevision,
  wranglerVersion,
  writeResult,
} from "../lib/bench-stats.ts";
import { type DevServer, freePort, startDevServer } from "../lib/dev-server.ts";
import { ensureAdminToken } from "../lib/environment.ts";
import { adminTokenFile, readAdminToken } from "../lib/local-admin.ts";

const leases = knob("BENCH_LEASES", "250,1000", "250")
  .split(",")
  .map((s) => Number(s.trim()));
const changesPerLease = numberKnob("BENCH_CHANGES", 20, 4);
const clients = numberKnob("BENCH_CLIENTS", 4, 2);
const thinkMs = numberKnob("BENCH_THINK_MS", 2, 2);
/** Changes made after switching T and before measuring (not in the summaries). */
const warmupChanges = smoke ? 1 : 2;
/** Pause between two measured changes, so leases on the new state get granted. */
const gapMs = numberKnob("BENCH_GAP_MS", 100, 100);
/** Reads of the rollout under load, per T. */
const reads = smoke ? 3 : 10;

// ---------------------------------------------------------------- npm start

const stateDir = mkdtempSync(join(os.tmpdir(), "airlock-bench-"));
let server: DevServer | undefined;
/** wrangler dev reloads the Worker (and resets its objects) when source files change. */
let reloads = 0;

async function cleanUp(): Promise<void> {
  await server?.stop();
  rmSync(stateDir, { recursive: true, force: true });
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping npm start`);
    cleanUp().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------- helpers

interface Summary {
  n: number;
  median: number;
  p90: number;
  min: number;
  max: number;
  mean: number;
}

function round(value: number, digits = 1): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    n: sorted.length,
    median: round(quantile(sorted, 0.5)),
    p90: round(quantile(sorted, 0.9)),
    min: round(sorted[0] ?? Number.NaN),
    max: round(sorted[sorted.length - 1] ?? Number.NaN),
    mean: round(sorted.reduce((sum, v) => sum + v, 0) / sorted.length),
  };
}

interface RolloutJson {
  stateVersion: number;
  leaseMs: number;
  killSwitch: { engaged: boolean };
  acknowledgedAfterMs?: number;
}

// ---------------------------------------------------------------- the benchmark

interface ChangeSample {
  change: "engage" | "release" | "set-rollout";
  stateVersion: number;
  wallMs: number;
  acknowledgedAfterMs: number | null;
}

interface LeaseResult {
  leaseMs: number;
  wallMs: Summary;
  acknowledgedAfterMs: Summary;
  /** Wall time minus acknowledgedAfterMs: HTTP, Worker and object work around the wait. */
  overheadMs: Summary;
  /** A plain read of the rollout (GET, through the object) under the same load. */
  readMs: Summary;
  ratioWallMedianToT: number;
  ratioAckMedianToT: number;
  backgroundRequests: number;
  backgroundRequestsPerSecond: number;
  backgroundErrors: number;
  /** wrangler dev reloads during the phase; any makes its numbers suspect. */
  reloads: number;
  errorExamples: string[];
  violations: number;
  violationExamples: string[];
  samples: ChangeSample[];
  warmup: ChangeSample[];
}

async function main() {
  ensureAdminToken();
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // Durable Object storage persists in .wrangler/state across runs: a fresh
  // name gives a fresh rollout object.
  const model = `bench-rollout-${Date.now().toString(36)}`;

  console.log(`Starting npm start on port ${port} (state in a temporary directory)...`);
  const t0 = performance.now();
  server = await startDevServer(
    {
      AIRLOCK_STATE_DIR: stateDir,
      PORT: String(port),
      AIRLOCK_DB_PORT: String(await freePort()),
      // No cron job runs during a measurement.
      AIRLOCK_CRON: "0",
    },
    {
      onOutput: (text) => {
        reloads += text.split("Reloading local server").length - 1;
      },
    },
  );
  console.log(`Ready after ${round((performance.now() - t0) / 1000)} s.`);
  // npm start's local admin person acts here (the bootstrap token only manages principals).
  const token = readAdminToken(adminTokenFile(stateDir));
  if (!token) throw new Error("npm start wrote no local admin token");
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };

  async function admin(method: string, path: string, body?: unknown): Promise<Response> {
    return fetch(`${base}/admin${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  }

  async function expectStatus(response: Response, status: number, what: string) {
    if (response.status !== status)
      throw new Error(`${what}: ${response.status} ${await response.text()}`);
  }

  await expectStatus(
    await admin("POST", "/models", {
      name: model,
      task: "classification",
      owner: "bench@example.com",
      description: "Rollout acknowledgement benchmark",
      inputSchema: {
        type: "object",
        properties: { amount: { type: "number", minimum: 0 } },
        required: ["amount"],
      },
      classes: ["legit", "fraud"],
      positiveClass: "fraud",
    }),
    201,
    "create model",
  );
  for (const version of ["v1", "v2"]) {
    await expectStatus(
      await admin("POST", `/models/${model}/versions`, {
        version,
        upstream: {
          kind: "http",
          url: "http://127.0.0.1:9/predict",
          protocol: "json",
          timeoutMs: 100,
        },
      }),
      201,
      `create version ${version}`,
    );
  }

  // What every request starting now must at least see, and what each
  // acknowledged state answers (killed or not).
  let acknowledged = 0;
  const killedAt = new Map<number, boolean>();
  const violationExamples: string[] = [];
  const errorExamples: string[] = [];
  let violations = 0;
  let backgroundRequests = 0;
  let backgroundErrors = 0;
  let stopClients = false;

  function violation(message: string) {
    violations += 1;
    if (violationExamples.length < 20) violationExamples.push(message);
  }

  /** Makes a change, timing it from send to the 2xx; later requests must see it. */
  async function change(kind: ChangeSample["change"], leaseMs: number): Promise<ChangeSample> {
    const started = performance.now();
    const response =
      kind === "engage"
        ? await admin("POST", `/models/${model}/kill-switch`, { scope: "model", reason: "bench" })
        : kind === "release"
          ? await admin("DELETE", `/models/${model}/kill-switch`)
          : await admin("PUT", `/models/${model}/rollout`, {
              champion: "v1",
              canary: { version: "v2", percent: 10 },
              leaseMs,
            });
    if (response.status < 200 || response.status >= 300)
      throw new Error(`${kind}: ${response.status} ${await response.text()}`);
    const wallMs = performance.now() - started;
    // From here on, every request that starts must see this state.
    const state = (await response.json()) as RolloutJson;
    acknowledged = Math.max(acknowledged, state.stateVersion);
    killedAt.set(state.stateVersion, state.killSwitch.engaged);
    return {
      change: kind,
      stateVersion: state.stateVersion,
      wallMs: round(wallMs, 2),
      acknowledgedAfterMs: state.acknowledgedAfterMs ?? null,
    };
  }

  async function client(id: number) {
    let n = 0;
    while (!stopClients) {
      const mustSee = acknowledged;
      let response: Response;
      try {
        response = await fetch(`${base}/admin/models/${model}/rollout/route?key=c${id}-${n++}`, {
          headers,
        });
      } catch (error) {
        backgroundErrors += 1;
        if (errorExamples.length < 20) errorExamples.push(`fetch failed: ${error}`);
        await sleep(50);
        continue;
      }
      backgroundRequests += 1;
      if (response.status !== 200) {
        backgroundErrors += 1;
        const text = await response.text();
        if (errorExamples.length < 20)
          errorExamples.push(`${response.status} ${text.slice(0, 200)}`);
        continue;
      }
      const seen = Number(response.headers.get("x-airlock-state-version"));
      const body = (await response.json()) as { decision: string };
      if (!(seen >= mustSee))
        violation(`started after state ${mustSee} was acknowledged but used ${seen}`);
      const killed = killedAt.get(seen);
      if (killed !== undefined && (body.decision === "killed") !== killed)
        violation(`state ${seen} answered ${body.decision}`);
      if (thinkMs > 0) await sleep(thinkMs);
    }
  }

  const results: LeaseResult[] = [];
  try {
    for (const leaseMs of leases) {
      // The kill switch is released here, so the new rollout takes effect now.
      await change("set-rollout", leaseMs);
      const requestsBefore = backgroundRequests;
      const errorsBefore = backgroundErrors;
      const reloadsBefore = reloads;
      const violationsBefore = violations;
      const examplesBefore = { violations: violationExamples.length, errors: errorExamples.length };
      stopClients = false;
      const phaseStart = performance.now();
      const running = Array.from({ length: clients }, (_, i) => client(i));
      // Let leases on the new T replace any longer ones.
      await sleep(2 * Math.max(...leases));
      const readMs: number[] = [];
      for (let i = 0; i < reads; i++) {
        const started = performance.now();
        const response = await admin("GET", `/models/${model}/rollout?history=1`);
        await expectStatus(response, 200, "read rollout");
        readMs.push(performance.now() - started);
        await response.arrayBuffer();
        await sleep(gapMs);
      }
      const warmup: ChangeSample[] = [];
      const samples: ChangeSample[] = [];
      let engaged = false;
      try {
        for (let i = 0; i < warmupChanges + changesPerLease; i++) {
          const sample = await change(engaged ? "release" : "engage", leaseMs);
          engaged = !engaged;
          (i < warmupChanges ? warmup : samples).push(sample);
          await sleep(gapMs);
        }
        if (engaged) await change("release", leaseMs);
        // Requests that started just before the last change still finish.
        await sleep(gapMs);
      } finally {
        stopClients = true;
        await Promise.allSettled(running);
      }
      const seconds = (performance.now() - phaseStart) / 1000;
      const wall = summarize(samples.map((s) => s.wallMs));
      const ack = summarize(samples.map((s) => s.acknowledgedAfterMs ?? Number.NaN));
      const requests = backgroundRequests - requestsBefore;
      results.push({
        leaseMs,
        wallMs: wall,
        acknowledgedAfterMs: ack,
        overheadMs: summarize(samples.map((s) => s.wallMs - (s.acknowledgedAfterMs ?? Number.NaN))),
        readMs: summarize(readMs),
        ratioWallMedianToT: round(wall.median / leaseMs, 3),
        ratioAckMedianToT: round(ack.median / leaseMs, 3),
        backgroundRequests: requests,
        backgroundRequestsPerSecond: round(requests / seconds),
        backgroundErrors: backgroundErrors - errorsBefore,
        reloads: reloads - reloadsBefore,
        errorExamples: errorExamples.slice(examplesBefore.errors),
        violations: violations - violationsBefore,
        violationExamples: violationExamples.slice(examplesBefore.violations),
        samples,
        warmup,
      });
      console.log(
        `T=${leaseMs} ms: ${samples.length} changes, ${smoke ? "" : `median ${wall.median} ms, `}${requests} route requests, ${violations - violationsBefore} violations`,
      );
    }
  } finally {
    await cleanUp();
  }

  // ------------------------------------------------------------ report

  if (!smoke) printTable(results);

  const cpus = os.cpus();
  const report = {
    benchmark: "rollout-ack",
    description:
      "Wall time from sending a kill-switch engage/release to its 2xx, and the acknowledgedAfterMs the rollout object reports (time spent waiting for leases on the old state to run out), under npm start (wrangler dev on workerd, embedded Postgres), while background clients call GET /admin/models/{model}/rollout/route continuously. Violations: route requests started after a change's 2xx that used an older stateVersion (or answered inconsistently with the acknowledged kill switch).",
    date: new Date().toISOString(),
    ...sourceRevision(),
    node: process.version,
    wrangler: wranglerVersion(),
    machine: {
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      cpus: cpus.length,
      cpuModel: cpus[0]?.model ?? "unknown",
      memoryGiB: round(os.totalmem() / 2 ** 30),
      note: "Shared machine; compare medians and ratios, not single timings.",
    },
    setup: {
      leases,
      changesPerLease,
      warmupChanges,
      gapBetweenChangesMs: gapMs,
      backgroundClients: clients,
      clientThinkMs: thinkMs,
      leaseMarginMs: 50,
      quantiles: "linear interpolation between closest ranks",
    },
    results,
    ok: results.every((r) => r.violations === 0 && r.backgroundErrors === 0 && r.reloads === 0),
  };
  const written = writeResult("rollout-ack", report);
  if (!smoke) {
    console.log(`\nWrote ${written}`);
    if (!report.ok) {
      console.error(
        "The rollout promise was broken, route requests failed or wrangler reloaded; see the report.",
      );
      process.exitCode = 1;
    }
    return;
  }

  // A smoke run checks the work, not the timing; a reload only makes timings suspect.
  const checks = smokeChecks("bench:rollout");
  for (const r of results) {
    const acknowledged = r.samples.filter((s) => s.acknowledgedAfterMs !== null).length;
    checks.check(
      `T=${r.leaseMs} ms: every kill-switch change answered 2xx with its acknowledgement`,
      r.samples.length === changesPerLease && acknowledged === changesPerLease,
      `${r.samples.length} changes, ${acknowledged} with acknowledgedAfterMs`,
    );
    checks.check(
      `T=${r.leaseMs} ms: the clients' route requests were answered 200`,
      r.backgroundRequests > 0 && r.backgroundErrors === 0,
      `${r.backgroundRequests} requests, ${r.backgroundErrors} errors${r.errorExamples[0] ? `, e.g. ${r.errorExamples[0]}` : ""}`,
    );
    checks.check(
      `T=${r.leaseMs} ms: no request that started after a change's 2xx used an older state`,
      r.violations === 0,
      `${r.violations} violations${r.reloads ? `; wrangler reloaded ${r.reloads} times` : ""}`,
    );
  }
  checks.finish();
}

function printTable(results: LeaseResult[]) {
  const pad = (value: string | number, width: number) => String(value).padStart(width);
  const header = [
    pad("T ms", 6),
    pad("wall med", 9),
    pad("p90", 7),
    pad("min", 7),
    pad("max", 7),
    pad("ack med", 8),
    pad("p90", 7),
    pad("min", 7),
    pad("max", 7),
    pad("wall/T", 7),
    pad("ack/T", 6),
    pad("extra med", 10),
    pad("read med", 9),
    pad("route reqs", 11),
    pad("errors", 7),
    pad("violations", 11),
    pad("reloads", 8),
  ].join(" ");
  console.log(
    `\nRollout acknowledgement time in ms (${changesPerLease} kill-switch changes per T; wall = send to 2xx,`,
  );
  console.log(
    "ack = acknowledgedAfterMs, extra = wall - ack, read = a GET of the rollout under the same load)",
  );
  console.log(header);
  for (const r of results) {
    console.log(
      [
        pad(r.leaseMs, 6),
        pad(r.wallMs.median, 9),
        pad(r.wallMs.p90, 7),
        pad(r.wallMs.min, 7),
        pad(r.wallMs.max, 7),
        pad(r.acknowledgedAfterMs.median, 8),
        pad(r.acknowledgedAfterMs.p90, 7),
        pad(r.acknowledgedAfterMs.min, 7),
        pad(r.acknowledgedAfterMs.max, 7),
        pad(r.ratioWallMedianToT.toFixed(2), 7),
        pad(r.ratioAckMedianToT.toFixed(2), 6),
        pad(r.overheadMs.median, 10),
        pad(r.readMs.median, 9),
        pad(r.backgroundRequests, 11),
        pad(r.backgroundErrors, 7),
        pad(r.violations, 11),
        pad(r.reloads, 8),
      ].join(" "),
    );
  }
}

try {
  await main();
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  await cleanUp();
  process.exitCode = 1;
}
