// `npm run bench:gateway`: what Airlock adds to a prediction's latency, and how
// fast the kill switch takes hold, on the local workerd runtime.
//
// The Worker is bundled as deploy bundles it and run by the Miniflare 5 that
// wrangler depends on (scripts/lib/local-workerd.ts), with the bindings and
// queue consumers wrangler.toml declares (so the prediction logs are consumed
// and stored while the benchmark runs), an embedded Postgres on a thread of
// its own (or DATABASE_URL's, in a throwaway database) and a local model server
// (scripts/demo-model-server.ts, in its own process) as the upstream. In one run, at each concurrency
// (connections, each sending its requests one after another):
//   direct       the upstream called directly;
//   pass-through a trivial Worker on the same runtime that only forwards to the
//                upstream (the platform's own floor);
//   http         Airlock: POST /v1/models/{m}/predict, plain JSON upstream;
//   shadow       the same with a second HTTP version as shadow (sampleRate 1);
//   builtin      Airlock serving a builtin model (the demo's logistic version);
// and, as diagnostics, the pass-through plus one rate-limiter call made as
// Airlock makes it, and plus one queue send per request (what Airlock's
// coalescing avoids), to show what their local emulation costs here.
// Scenarios are measured in rounds, in rotating order, so machine noise spreads
// over all of them (and the spread of each difference over rounds is kept); each segment starts with a short warm-up so connections and
// leases are warm. Airlock's overhead is http minus pass-through.
// Then the kill switch: engage (scope model) and release, each timed from send
// to its 2xx, and to the first response showing the new state (503
// MODEL_DISABLED, or 200 again), while a client keeps calling the model.
//
// The Worker's secrets are the ones wrangler.toml's `[secrets] required`
// lists, each with a fresh test value (localSecrets), so a secret added there
// needs no change here.
//
// Writes bench/results/gateway.json and prints a markdown table. Knobs
// (environment): BENCH_CONCURRENCY (default "1,32"), BENCH_REQUESTS (measured
// per scenario and concurrency, default 3000), BENCH_ROUNDS (default 5),
// BENCH_WARMUP (per scenario and concurrency, default 300), BENCH_KILL_CYCLES
// (engage + release pairs, default 12). About four minutes on 2 vCPUs.
// BENCH_SMOKE=1: a smoke run (concurrency 1 and 4, 40 requests per scenario,
// one kill-switch pair), which checks that every request was answered 2xx,
// that the kill switch took hold and that each prediction's results were
// stored in Postgres, and writes no result file.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import os, { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Pool } from "@neondatabase/serverless";
import {
  knob,
  numberKnob,
  quantile,
  sleep,
  smoke,
  smokeChecks,
  sourceRevision,
  writeResult,
} from "../lib/bench-stats.ts";
import { readDemo } from "../lib/demo.ts";
import { freePort } from "../lib/dev-server.ts";
import { startEmbeddedDatabaseThread } from "../lib/embedded-db-thread.ts";
import { isLoopbackUrl, projectRoot } from "../lib/environment.ts";
import { ensureLocalAdmin } from "../lib/local-admin.ts";
import { type LocalDatabase, startBridge } from "../lib/local-db.ts";
import {
  airlockWorker,
  type Binding,
  bundleWorker,
  localSecrets,
  type MiniflareInstance,
  readWranglerConfig,
  wranglerRuntime,
} from "../lib/local-workerd.ts";
import { configureNodeDriver, execute, migrateDatabase } from "../lib/migrate.ts";

const concurrencies = knob("BENCH_CONCURRENCY", "1,32", "1,4")
  .split(",")
  .map((s) => Number(s.trim()));
const requestsPerScenario = numberKnob("BENCH_REQUESTS", 3000, 40);
const rounds = numberKnob("BENCH_ROUNDS", 5, 2);
const warmupRequests = numberKnob("BENCH_WARMUP", 300, 10);
const killCycles = numberKnob("BENCH_KILL_CYCLES", 12, 1);
/** Unrecorded requests before each measured segment: warm connections and leases. */
const segmentWarmup = (concurrency: number) =>
  smoke ? concurrency : Math.max(50, 4 * concurrency);
/** Pause after each segment, so background work (shadow calls, log sends) drains. */
const settleMs = 100;
/** Pause between two kill-switch changes, with the client still calling. */
const killGapMs = 300;
/** The rate limiters' limit here: far above what the benchmark sends, so they never limit. */
const benchRateLimit = 10_000_000;
const startedAt = performance.now();
const loadAtStart = os.loadavg();
if (loadAtStart[0] !== undefined && loadAtStart[0] > os.availableParallelism() / 2)
  console.warn(
    `Load average ${loadAtStart[0].toFixed(2)} on ${os.availableParallelism()} CPUs: something else is running, expect noisy figures.`,
  );

// ---------------------------------------------------------------- clean-up

const workDir = mkdtempSync(join(os.tmpdir(), "airlock-bench-gateway-"));
let miniflare: MiniflareInstance | undefined;
let upstreamProcess: ChildProcess | undefined;
let database: LocalDatabase | undefined;
let dropDatabase: (() => Promise<void>) | undefined;
const agents: http.Agent[] = [];
let cleaning: Promise<void> | undefined;

function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const agent of agents) agent.destroy();
    await miniflare?.dispose().catch((error: unknown) => console.error("dispose:", error));
    await stopProcess(upstreamProcess);
    await dropDatabase?.().catch((error: unknown) => console.error("drop database:", error));
    await database?.close().catch(() => {});
    rmSync(workDir, { recursive: true, force: true });
  })();
  return cleaning;
}

/**
 * What must happen however the process ends: Miniflare's own signal handler
 * stops workerd and exits at once, before anything asynchronous here can run.
 * (Interrupted, a throwaway database on DATABASE_URL's server is left behind;
 * its name starts with airlock_bench_.)
 */
function cleanUpNow() {
  if (upstreamProcess && upstreamProcess.exitCode === null && upstreamProcess.signalCode === null)
    upstreamProcess.kill("SIGTERM");
  rmSync(workDir, { recursive: true, force: true });
}
process.on("exit", cleanUpNow);

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping`);
    cleanUpNow();
    cleanUp().finally(() => process.exit(130));
  });
}

async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await Promise.race([exited, sleep(5_000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

// ---------------------------------------------------------------- helpers

function round(value: number, digits = 3): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

interface Summary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

function summarize(values: number[]): Summary {
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    n: sorted.length,
    p50: round(quantile(sorted, 0.5)),
    p90: round(quantile(sorted, 0.9)),
    p99: round(quantile(sorted, 0.99)),
    mean: round(sum / sorted.length),
    min: round(sorted[0] ?? Number.NaN),
    max: round(sorted[sorted.length - 1] ?? Number.NaN),
  };
}

/** The Worker's error and warning logs, counted by the code or event they name. */
const workerLogs = {
  byKind: {} as Record<string, number>,
  /** Not a MODEL_DISABLED answer of the kill-switch phase. */
  unexpected: 0,
  examples: [] as string[],
  record(level: string, message: string) {
    let kind = "unparsed";
    try {
      const parsed = JSON.parse(message) as { code?: unknown; event?: unknown };
      kind = String(parsed.code ?? parsed.event ?? "other");
    } catch {
      // a plain console line
    }
    const key = `${level}:${kind}`;
    this.byKind[key] = (this.byKind[key] ?? 0) + 1;
    if (kind === "MODEL_DISABLED") return;
    this.unexpected += 1;
    if (this.examples.length < 10) this.examples.push(message.slice(0, 300));
  },
};

// ---------------------------------------------------------------- HTTP client

interface Exchange {
  start: number;
  end: number;
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

interface Target {
  url: URL;
  body: Buffer;
}

/** 200 answers per target, whoever sent them: what the prediction logs must hold. */
const answered = new Map<Target, number>();

/** One POST on a keep-alive agent, timed from before the request is written to the last byte. */
function send(agent: http.Agent, target: Target): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const request = http.request(
      {
        agent,
        host: target.url.hostname,
        port: target.url.port,
        path: `${target.url.pathname}${target.url.search}`,
        method: "POST",
        headers: {
          "content-type": "application/json",
          "content-length": String(target.body.length),
        },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("error", reject);
        response.on("end", () => {
          const status = response.statusCode ?? 0;
          if (status === 200) answered.set(target, (answered.get(target) ?? 0) + 1);
          resolve({
            start,
            end: performance.now(),
            status,
            headers: response.headers,
            text: Buffer.concat(chunks).toString("utf8"),
          });
        });
      },
    );
    request.on("error", reject);
    request.end(target.body);
  });
}

function newAgent(concurrency: number): http.Agent {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  agents.push(agent);
  return agent;
}

interface LoadResult {
  latencies: number[];
  wallMs: number;
  errors: number;
  errorExamples: string[];
}

/** `count` requests from `concurrency` clients, each sending its next one when the last is answered. */
async function load(
  agent: http.Agent,
  target: Target,
  concurrency: number,
  count: number,
): Promise<LoadResult> {
  const latencies: number[] = [];
  const errorExamples: string[] = [];
  let errors = 0;
  let issued = 0;
  const client = async () => {
    while (issued < count) {
      issued += 1;
      try {
        const exchange = await send(agent, target);
        if (exchange.status === 200) latencies.push(exchange.end - exchange.start);
        else {
          errors += 1;
          if (errorExamples.length < 5)
            errorExamples.push(`${exchange.status} ${exchange.text.slice(0, 200)}`);
        }
      } catch (error) {
        errors += 1;
        if (errorExamples.length < 5) errorExamples.push(String(error));
      }
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, client));
  return { latencies, wallMs: performance.now() - start, errors, errorExamples };
}

// ---------------------------------------------------------------- the pieces

/** scripts/demo-model-server.ts in a process of its own, so the load generator does not share its event loop. */
async function startUpstream(): Promise<string> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(projectRoot, "scripts", "demo-model-server.ts")], {
    cwd: projectRoot,
    env: { ...process.env, MODEL_SERVER_PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  upstreamProcess = child;
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const deadline = Date.now() + 30_000;
  while (!output.includes("Demo model server on")) {
    if (child.exitCode !== null) throw new Error(`the model server exited:\n${output}`);
    if (Date.now() > deadline) throw new Error(`the model server did not start:\n${output}`);
    await sleep(50);
  }
  return `http://127.0.0.1:${port}`;
}

/**
 * An in-memory embedded Postgres, on a thread of its own so its queries (the
 * log consumer's writes) do not stall the clients' timing; with DATABASE_URL (on this machine), a
 * throwaway database on that server, dropped afterwards.
 */
async function startDatabase(): Promise<{ databaseUrl: string; wsProxy: string; kind: string }> {
  const server = process.env.DATABASE_URL;
  if (!server) {
    database = await startEmbeddedDatabaseThread();
    await migrateDatabase({ databaseUrl: database.databaseUrl, wsProxy: database.wsProxy });
    return { databaseUrl: database.databaseUrl, wsProxy: database.wsProxy, kind: "embedded" };
  }
  if (!isLoopbackUrl(server))
    throw new Error("bench:gateway runs against a local Postgres; DATABASE_URL points elsewhere");
  const bridge = await startBridge({ databaseUrl: server });
  database = bridge;
  const name = `airlock_bench_${Date.now()}_${process.pid}`;
  await execute({ databaseUrl: server, wsProxy: bridge.wsProxy }, `CREATE DATABASE ${name}`);
  dropDatabase = () =>
    execute(
      { databaseUrl: server, wsProxy: bridge.wsProxy },
      `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`,
    );
  const url = new URL(server);
  url.pathname = `/${name}`;
  await migrateDatabase({ databaseUrl: url.toString(), wsProxy: bridge.wsProxy });
  return { databaseUrl: url.toString(), wsProxy: bridge.wsProxy, kind: "external" };
}

/** The pass-through Worker: forwards the request to the upstream, nothing else. */
const passThroughSource = `export default {
  fetch: (request, env) =>
    fetch(env.UPSTREAM_URL, { method: request.method, headers: request.headers, body: request.body }),
};
`;

/** A prediction-log message about the size of the one Airlock sends per prediction. */
const logMessage = JSON.stringify({
  schema: 1,
  results: [
    {
      role: "served",
      predictionId: "00000000-0000-4000-8000-000000000000",
      requestId: "00000000-0000-4000-8000-000000000000",
      model: "bench-http",
      version: "v1",
      prediction: { label: "fraud", score: 0.9 },
      inputs: { amount: 250, country: "DE" },
      attributes: {},
      keyHmac: null,
      stateVersion: 2,
      latencyMs: 0.4,
      status: "ok",
      errorCode: null,
      timestamp: "2026-11-25T00:00:00.000Z",
    },
  ],
});

/**
 * Diagnostic variants: the pass-through plus one binding call, to show what
 * it costs on this runtime, where each is a fetch to a Durable Object that
 * Miniflare runs inside the same single-threaded workerd (production
 * implements both differently). The rate-limiter call is made as Airlock
 * makes it for a key it admitted in the last second: started alongside the
 * request, awaited in waitUntil. The queue send is one sendBatch per request,
 * which is what Airlock's per-isolate coalescing of results avoids.
 */
function forwardingSource(calls: { limit: boolean; log: boolean }): string {
  return `const message = ${logMessage};
export default {
  async fetch(request, env, ctx) {
${
  calls.limit
    ? `    ctx.waitUntil(env.LIMITER.limit({ key: "ip:unknown" }));
`
    : ""
}${calls.log ? `    ctx.waitUntil(env.LOGS.sendBatch([{ body: message, contentType: "json" }]));\n` : ""}    return fetch(env.UPSTREAM_URL, { method: request.method, headers: request.headers, body: request.body });
  },
};
`;
}

// ---------------------------------------------------------------- scenarios

const scenarioKeys = [
  "direct",
  "passThrough",
  "http",
  "shadow",
  "builtin",
  "passThroughRateLimit",
  "passThroughQueue",
] as const;
type ScenarioKey = (typeof scenarioKeys)[number];

const scenarioLabels: Record<ScenarioKey, string> = {
  direct: "(a) upstream, direct",
  passThrough: "(b) pass-through Worker",
  http: "(c) Airlock, HTTP upstream",
  shadow: "(d) Airlock, HTTP upstream + 1 shadow",
  builtin: "(e) Airlock, builtin model",
  passThroughRateLimit: "diag.: pass-through + 1 rate-limiter call (waitUntil)",
  passThroughQueue: "diag.: pass-through + 1 queue send per request (waitUntil)",
};

const scenarioDescriptions: Record<ScenarioKey, string> = {
  direct: "POST {inputs} to the model server's /json/score",
  passThrough:
    "POST {inputs} to a Worker on the same workerd that fetches the model server with the request's method, headers and body",
  http: "POST /v1/models/{m}/predict; champion v1 is the model server over the plain JSON protocol; no shadow, no canary; public model (no API key)",
  shadow:
    "as http, plus shadow v2 (the same model server, another URL) with sampleRate 1, called after the response (waitUntil)",
  builtin:
    "POST /v1/models/{m}/predict; champion is the demo's builtin sklearn-linear logistic regression (8 features); no upstream call",
  passThroughRateLimit:
    "diagnostic: the pass-through Worker making one call of a rate-limit binding (as Airlock's PREDICT_RATE_LIMITER, limit 10,000,000 per 60 s) alongside forwarding, awaited in waitUntil, as Airlock does for a client admitted in the last second",
  passThroughQueue:
    "diagnostic: the pass-through Worker sending one prediction-log-sized message with sendBatch in waitUntil (as Airlock's PREDICTION_LOGS, but to a queue without a consumer, so only the send is measured) while forwarding",
};

interface ScenarioResult extends Summary {
  requestsPerSecond: number;
  errors: number;
  errorExamples: string[];
  /** p50 and p99 of each round's segment: how much a figure moves between rounds. */
  rounds: { p50: number; p99: number }[];
}

// ---------------------------------------------------------------- the benchmark

async function main() {
  const runtime = wranglerRuntime();
  console.log(
    `workerd ${runtime.versions.workerd} through wrangler ${runtime.versions.wrangler}'s Miniflare ${runtime.versions.miniflare}`,
  );
  const config = readWranglerConfig();

  console.log(
    "Bundling the Worker (wrangler deploy --dry-run), starting Postgres and the model server...",
  );
  const [bundle, db, upstream] = await Promise.all([
    bundleWorker(join(workDir, "bundle")),
    startDatabase(),
    startUpstream(),
  ]);

  const adminToken = randomBytes(32).toString("base64url");
  const diagnosticLimiter: Binding = {
    type: "rate-limit",
    namespace: "9001",
    simple: { limit: benchRateLimit, period: 60 },
  };
  const diagnosticQueue: Binding = { type: "queue", name: "bench-gateway-diagnostic" };
  /** A forwarding Worker on the same runtime, with the Worker's compatibility settings. */
  const forwarder = (name: string, source: string, env: Record<string, Binding> = {}) => ({
    config: {
      name,
      compatibilityDate: config.compatibility_date ?? "",
      compatibilityFlags: config.compatibility_flags,
      manifest: {
        mainModule: `${name}.js`,
        modules: { [`${name}.js`]: { type: "esm" as const, contents: source } },
      },
      env: { UPSTREAM_URL: { type: "text" as const, value: `${upstream}/json/score` }, ...env },
    },
    dev: { unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }] },
  });
  miniflare = new runtime.Miniflare({
    host: "127.0.0.1",
    handleStructuredLogs: (log) => {
      if (log.level !== "error" && log.level !== "warn") return;
      workerLogs.record(log.level, log.message);
    },
    workers: [
      airlockWorker({
        config,
        bundle,
        secrets: localSecrets(config, { DATABASE_URL: db.databaseUrl, ADMIN_TOKEN: adminToken }),
        vars: { DATABASE_WS_PROXY: db.wsProxy, UPSTREAM_ALLOWED_HOSTS: "127.0.0.1,localhost" },
        // Never the limiter: every request comes from the same client.
        rateLimits: { PREDICT_RATE_LIMITER: benchRateLimit },
        directSocket: { host: "127.0.0.1", port: 0 },
      }),
      forwarder("pass-through", passThroughSource),
      forwarder("pass-through-rate-limit", forwardingSource({ limit: true, log: false }), {
        LIMITER: diagnosticLimiter,
      }),
      forwarder("pass-through-queue", forwardingSource({ limit: false, log: true }), {
        LOGS: diagnosticQueue,
      }),
    ],
  });
  await miniflare.ready;
  const airlock = await miniflare.unsafeGetDirectURL(config.name ?? "airlock");
  const passThrough = await miniflare.unsafeGetDirectURL("pass-through");
  const passThroughRateLimit = await miniflare.unsafeGetDirectURL("pass-through-rate-limit");
  const passThroughQueue = await miniflare.unsafeGetDirectURL("pass-through-queue");
  console.log(
    `Airlock on ${airlock.origin}, pass-through on ${passThrough.origin}, model server on ${upstream}`,
  );

  // ------------------------------------------------------------ models

  // An admin person, as npm start makes one: the bootstrap token only manages principals.
  const personal = await ensureLocalAdmin(
    airlock.origin,
    adminToken,
    join(mkdtempSync(join(tmpdir(), "airlock-bench-")), "admin-token"),
  );

  async function admin(method: string, path: string, body?: unknown): Promise<Response> {
    return fetch(new URL(`/admin${path}`, airlock), {
      method,
      headers: { authorization: `Bearer ${personal.token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  }
  async function expectStatus(response: Response, status: number, what: string) {
    if (response.status !== status)
      throw new Error(`${what}: ${response.status} ${await response.text()}`);
    return response;
  }
  const httpVersion = (path: string) => ({
    kind: "http",
    url: `${upstream}${path}`,
    protocol: "json",
    timeoutMs: 5_000,
  });
  const fraudModel = (name: string) => ({
    name,
    task: "classification",
    owner: "bench@example.com",
    description: "Gateway benchmark",
    public: true,
    inputSchema: {
      type: "object",
      properties: {
        amount: { type: "number", minimum: 0 },
        country: { type: "string", enum: ["DE", "FR", "US"] },
      },
      required: ["amount", "country"],
    },
    classes: ["legit", "fraud"],
    positiveClass: "fraud",
  });
  async function register(
    model: Record<string, unknown> & { name: string },
    versions: Record<string, unknown>,
    rollout: Record<string, unknown>,
  ): Promise<{ leaseMs: number }> {
    await expectStatus(await admin("POST", "/models", model), 201, `create ${model.name}`);
    for (const [version, upstreamRef] of Object.entries(versions)) {
      await expectStatus(
        await admin("POST", `/models/${model.name}/versions`, { version, upstream: upstreamRef }),
        201,
        `create ${model.name} ${version}`,
      );
    }
    const response = await expectStatus(
      await admin("PUT", `/models/${model.name}/rollout`, rollout),
      200,
      `rollout of ${model.name}`,
    );
    return (await response.json()) as { leaseMs: number };
  }

  const { leaseMs } = await register(
    fraudModel("bench-http"),
    { v1: httpVersion("/json/score") },
    { champion: "v1" },
  );
  await register(
    fraudModel("bench-shadow"),
    { v1: httpVersion("/json/score"), v2: httpVersion("/json/score?shadow=v2") },
    { champion: "v1", shadows: [{ version: "v2", sampleRate: 1 }] },
  );
  await register(fraudModel("bench-kill"), { v1: httpVersion("/json/score") }, { champion: "v1" });
  const demo = readDemo();
  const logistic = demo.versions.find((v) => v.version === "v1-logistic");
  if (!logistic) throw new Error("the demo file has no v1-logistic version");
  await register(
    { ...demo.model, name: "bench-builtin", public: true },
    { [logistic.version]: logistic.upstream },
    { champion: logistic.version },
  );

  const fraudInputs = Buffer.from(JSON.stringify({ inputs: { amount: 250, country: "DE" } }));
  const predict = (model: string) => new URL(`/v1/models/${model}/predict`, airlock);
  const targets: Record<ScenarioKey, Target> = {
    direct: { url: new URL("/json/score", upstream), body: fraudInputs },
    passThrough: { url: passThrough, body: fraudInputs },
    passThroughRateLimit: { url: passThroughRateLimit, body: fraudInputs },
    passThroughQueue: { url: passThroughQueue, body: fraudInputs },
    http: { url: predict("bench-http"), body: fraudInputs },
    shadow: { url: predict("bench-shadow"), body: fraudInputs },
    builtin: {
      url: predict("bench-builtin"),
      body: Buffer.from(JSON.stringify({ inputs: demo.example })),
    },
  };

  // Each scenario answers as it should before anything is timed.
  {
    const agent = newAgent(1);
    for (const key of scenarioKeys) {
      const exchange = await send(agent, targets[key]);
      const body = JSON.parse(exchange.text) as {
        outputs?: { label?: string };
        version?: string;
      };
      const expected = key === "builtin" ? logistic.version : "v1";
      const ok =
        exchange.status === 200 &&
        typeof body.outputs?.label === "string" &&
        (!targets[key].url.pathname.endsWith("/predict") || body.version === expected);
      if (!ok) throw new Error(`${key} answered ${exchange.status} ${exchange.text.slice(0, 300)}`);
    }
    agent.destroy();
  }

  // ------------------------------------------------------------ latency

  const results: Record<string, Record<ScenarioKey, ScenarioResult>> = {};
  for (const concurrency of concurrencies) {
    const perScenario = Math.ceil(requestsPerScenario / rounds);
    const scenarioAgents = Object.fromEntries(
      scenarioKeys.map((key) => [key, newAgent(concurrency)]),
    ) as Record<ScenarioKey, http.Agent>;
    console.log(
      `\nConcurrency ${concurrency}: warm-up (${warmupRequests} requests per scenario)...`,
    );
    for (const key of scenarioKeys) {
      await load(scenarioAgents[key], targets[key], concurrency, warmupRequests);
      await sleep(settleMs);
    }
    const collected = Object.fromEntries(
      scenarioKeys.map((key) => [
        key,
        {
          latencies: [] as number[],
          wallMs: 0,
          errors: 0,
          errorExamples: [] as string[],
          rounds: [] as { p50: number; p99: number }[],
        },
      ]),
    ) as Record<ScenarioKey, LoadResult & { rounds: { p50: number; p99: number }[] }>;
    for (let r = 0; r < rounds; r++) {
      // Rotate the order, so each scenario runs early in some rounds and late in others.
      const order = scenarioKeys.map(
        (_, i) => scenarioKeys[(i + r) % scenarioKeys.length] as ScenarioKey,
      );
      for (const key of order) {
        await load(scenarioAgents[key], targets[key], concurrency, segmentWarmup(concurrency));
        const segment = await load(scenarioAgents[key], targets[key], concurrency, perScenario);
        const into = collected[key];
        into.latencies.push(...segment.latencies);
        into.wallMs += segment.wallMs;
        into.errors += segment.errors;
        into.errorExamples.push(
          ...segment.errorExamples.slice(0, Math.max(0, 5 - into.errorExamples.length)),
        );
        const s = summarize(segment.latencies);
        into.rounds.push({ p50: s.p50, p99: s.p99 });
        await sleep(settleMs);
      }
      process.stdout.write(`  round ${r + 1}/${rounds} done\n`);
    }
    const byScenario = {} as Record<ScenarioKey, ScenarioResult>;
    for (const key of scenarioKeys) {
      const c = collected[key];
      byScenario[key] = {
        ...summarize(c.latencies),
        requestsPerSecond: round(c.latencies.length / (c.wallMs / 1000), 0),
        errors: c.errors,
        errorExamples: c.errorExamples,
        rounds: c.rounds,
      };
    }
    results[String(concurrency)] = byScenario;
    for (const agent of Object.values(scenarioAgents)) agent.destroy();
  }

  // ------------------------------------------------------------ kill switch

  console.log(
    `\nKill switch: ${killCycles} engage/release pairs while a client calls the model...`,
  );
  interface Pending {
    sentAt: number;
    killed: boolean;
    seen?: Exchange;
    seenStateVersion?: number | null;
  }
  let pending: Pending | undefined;
  /** The latest acknowledged state: a request that starts after `at` must use it or a later one. */
  let acknowledged: { at: number; stateVersion: number } | undefined;
  /** Whether each acknowledged state has the model killed. */
  const killedAt = new Map<number, boolean>();
  let polling = true;
  let pollRequests = 0;
  let pollErrors = 0;
  let missingStateVersion = 0;
  let violations = 0;
  const pollExamples: string[] = [];
  const stateOf = (exchange: Exchange): "killed" | "serving" | "other" => {
    if (exchange.status === 200) return "serving";
    if (exchange.status !== 503) return "other";
    try {
      const code = (JSON.parse(exchange.text) as { error?: { code?: string } }).error?.code;
      return code === "MODEL_DISABLED" ? "killed" : "other";
    } catch {
      return "other";
    }
  };
  const pollAgent = newAgent(1);
  const killTarget: Target = { url: predict("bench-kill"), body: fraudInputs };
  const poller = (async () => {
    while (polling) {
      let exchange: Exchange;
      try {
        exchange = await send(pollAgent, killTarget);
      } catch (error) {
        pollErrors += 1;
        if (pollExamples.length < 10) pollExamples.push(String(error));
        await sleep(10);
        continue;
      }
      pollRequests += 1;
      const state = stateOf(exchange);
      if (state === "other") {
        pollErrors += 1;
        if (pollExamples.length < 10)
          pollExamples.push(`${exchange.status} ${exchange.text.slice(0, 200)}`);
        continue;
      }
      const killed = state === "killed";
      const header = exchange.headers["x-airlock-state-version"];
      const seen = typeof header === "string" && header !== "" ? Number(header) : null;
      if (seen === null) missingStateVersion += 1;
      // The state a change brings is the first one after it with its kill switch setting.
      const change = pending;
      if (change && !change.seen && exchange.start >= change.sentAt && killed === change.killed) {
        change.seen = exchange;
        change.seenStateVersion = seen;
      }
      const violation = (message: string) => {
        violations += 1;
        if (pollExamples.length < 10) pollExamples.push(message);
      };
      if (
        acknowledged &&
        seen !== null &&
        exchange.start >= acknowledged.at &&
        seen < acknowledged.stateVersion
      )
        violation(
          `started ${round(exchange.start - acknowledged.at)} ms after state ${acknowledged.stateVersion} was acknowledged but used state ${seen}`,
        );
      const expected = seen === null ? undefined : killedAt.get(seen);
      if (expected !== undefined && expected !== killed)
        violation(
          `state ${seen} answered ${exchange.status}, but its kill switch is ${expected ? "engaged" : "released"}`,
        );
    }
  })();

  interface KillSample {
    change: "engage" | "release";
    stateVersion: number;
    /** Send to the 2xx. */
    acknowledgedMs: number;
    /** What the rollout object reports having waited for old leases. */
    objectWaitMs: number | null;
    /** Send to the end of the first response showing the new state. */
    visibleMs: number | null;
    /** Send to the start of that request. */
    visibleRequestStartMs: number | null;
    visibleStateVersion: number | null;
  }
  const killSamples: KillSample[] = [];
  const killWarmup: KillSample[] = [];
  try {
    await sleep(2 * leaseMs); // the client holds a lease on the starting state
    for (let i = 0; i < 2 * (killCycles + 1); i++) {
      const engage = i % 2 === 0;
      const change: Pending = { sentAt: performance.now(), killed: engage };
      pending = change;
      const response = engage
        ? await admin("POST", "/models/bench-kill/kill-switch", { scope: "model", reason: "bench" })
        : await admin("DELETE", "/models/bench-kill/kill-switch");
      const acknowledgedAt = performance.now();
      if (response.status < 200 || response.status >= 300)
        throw new Error(
          `kill switch ${engage ? "engage" : "release"}: ${response.status} ${await response.text()}`,
        );
      const state = (await response.json()) as {
        stateVersion: number;
        acknowledgedAfterMs?: number;
      };
      killedAt.set(state.stateVersion, engage);
      acknowledged = { at: acknowledgedAt, stateVersion: state.stateVersion };
      const deadline = performance.now() + 5_000;
      while (!change.seen && performance.now() < deadline) await sleep(5);
      const sample: KillSample = {
        change: engage ? "engage" : "release",
        stateVersion: state.stateVersion,
        acknowledgedMs: round(acknowledgedAt - change.sentAt, 2),
        objectWaitMs: state.acknowledgedAfterMs ?? null,
        visibleMs: change.seen ? round(change.seen.end - change.sentAt, 2) : null,
        visibleRequestStartMs: change.seen ? round(change.seen.start - change.sentAt, 2) : null,
        visibleStateVersion: change.seenStateVersion ?? null,
      };
      (i < 2 ? killWarmup : killSamples).push(sample);
      await sleep(killGapMs);
    }
  } finally {
    polling = false;
    await poller;
  }
  const killSummary = (kind: KillSample["change"]) => {
    const samples = killSamples.filter((s) => s.change === kind);
    const visible = samples.map((s) => s.visibleMs).filter((v): v is number => v !== null);
    return {
      n: samples.length,
      acknowledgedMs: summarize(samples.map((s) => s.acknowledgedMs)),
      visibleMs: summarize(visible),
      neverVisible: samples.length - visible.length,
      objectWaitMs: summarize(
        samples.map((s) => s.objectWaitMs).filter((v): v is number => v !== null),
      ),
    };
  };
  const killSwitch = {
    leaseMs,
    pairs: killCycles,
    gapBetweenChangesMs: killGapMs,
    engage: killSummary("engage"),
    release: killSummary("release"),
    pollRequests,
    pollErrors,
    /** Responses without x-airlock-state-version: not checked against the promise. */
    missingStateVersion,
    /** Requests that started after a change's 2xx and used an older state, or answered unlike their state. */
    violations,
    examples: pollExamples,
    samples: killSamples,
    warmup: killWarmup,
  };

  // ------------------------------------------------------------ the logs (smoke run)

  /**
   * Each 200 answer of the prediction scenarios is one served result in
   * Postgres (and, with the shadow, one shadow result), once the queue
   * consumer has stored it: polled for until the counts match, or a minute.
   */
  const stored: { what: string; expected: number; stored: number }[] = [];
  if (smoke) {
    const expected = [
      { model: "bench-http", role: "served", version: "v1", target: targets.http },
      { model: "bench-shadow", role: "served", version: "v1", target: targets.shadow },
      { model: "bench-shadow", role: "shadow", version: "v2", target: targets.shadow },
      {
        model: "bench-builtin",
        role: "served",
        version: logistic.version,
        target: targets.builtin,
      },
    ].map((e) => ({ ...e, expected: answered.get(e.target) ?? 0 }));
    console.log("\nWaiting for the prediction logs to be stored...");
    configureNodeDriver(db.wsProxy);
    const pool = new Pool({ connectionString: db.databaseUrl, max: 1 });
    pool.on("error", () => {});
    try {
      const deadline = Date.now() + 60_000;
      let counts = new Map<string, number>();
      for (;;) {
        const { rows } = await pool.query(
          `SELECT model, role, version, count(*)::int AS n FROM predictions
           WHERE model = ANY($1) GROUP BY model, role, version`,
          [[...new Set(expected.map((e) => e.model))]],
        );
        counts = new Map(
          (rows as { model: string; role: string; version: string; n: number }[]).map((r) => [
            `${r.model} ${r.role} ${r.version}`,
            r.n,
          ]),
        );
        const done = expected.every(
          (e) => (counts.get(`${e.model} ${e.role} ${e.version}`) ?? 0) >= e.expected,
        );
        if (done || Date.now() > deadline) break;
        await sleep(500);
      }
      for (const e of expected) {
        const what = `${e.model} ${e.role} ${e.version}`;
        stored.push({ what, expected: e.expected, stored: counts.get(what) ?? 0 });
      }
    } finally {
      await pool.end();
    }
  }

  await cleanUp();

  // ------------------------------------------------------------ report

  const get = (c: number, key: ScenarioKey) => results[String(c)]?.[key];
  const difference = (c: number, minuend: ScenarioKey, subtrahend: ScenarioKey) => {
    const a = get(c, minuend);
    const b = get(c, subtrahend);
    if (!a || !b) return null;
    // The same difference within each round (segments run minutes apart at
    // most): how far it moves from round to round, i.e. the noise.
    const perRound = a.rounds.map((ra, i) => {
      const rb = b.rounds[i] ?? { p50: Number.NaN, p99: Number.NaN };
      return { p50: ra.p50 - rb.p50, p99: ra.p99 - rb.p99 };
    });
    const range = (values: number[]) => [round(Math.min(...values)), round(Math.max(...values))];
    return {
      p50: round(a.p50 - b.p50),
      p90: round(a.p90 - b.p90),
      p99: round(a.p99 - b.p99),
      rangeOverRounds: {
        p50: range(perRound.map((r) => r.p50)),
        p99: range(perRound.map((r) => r.p99)),
      },
    };
  };
  const derived = Object.fromEntries(
    concurrencies.map((c) => [
      String(c),
      {
        /** (b) - (a): a Worker in the path at all. */
        platformFloor: difference(c, "passThrough", "direct"),
        /** (c) - (b): Airlock's own overhead. */
        airlockOverhead: difference(c, "http", "passThrough"),
        /** (d) - (c): one shadow. */
        shadowCost: difference(c, "shadow", "http"),
        /** (e) - (b): a builtin model, against forwarding to an upstream. */
        builtinVsPassThrough: difference(c, "builtin", "passThrough"),
        /** Diagnostic: one rate-limiter call (in waitUntil) on this runtime. */
        rateLimiterCall: difference(c, "passThroughRateLimit", "passThrough"),
        /** Diagnostic: one queue send in waitUntil on this runtime. */
        queueSend: difference(c, "passThroughQueue", "passThrough"),
        /** Diagnostic: (c) against a pass-through making the same rate-limiter call. */
        airlockBeyondRateLimiter: difference(c, "http", "passThroughRateLimit"),
      },
    ]),
  );
  const one = derived["1"];
  const targetsMet = [
    {
      target: "Airlock overhead (c - b) at p50, concurrency 1",
      limitMs: 0.4,
      measuredMs: one?.airlockOverhead?.p50 ?? null,
    },
    {
      target: "Airlock overhead (c - b) at p99, concurrency 1",
      limitMs: 1.5,
      measuredMs: one?.airlockOverhead?.p99 ?? null,
    },
    ...concurrencies.map((c) => ({
      target: `one shadow (d - c) at p99, concurrency ${c}`,
      limitMs: 0.5,
      measuredMs: derived[String(c)]?.shadowCost?.p99 ?? null,
    })),
  ].map((t) => ({ ...t, met: t.measuredMs !== null && t.measuredMs <= t.limitMs }));

  const cpus = os.cpus();
  const errors = Object.values(results)
    .flatMap((byScenario) => Object.values(byScenario))
    .reduce((sum, r) => sum + r.errors, 0);
  const durationSeconds = round((performance.now() - startedAt) / 1000, 1);
  const report = {
    benchmark: "gateway",
    description:
      "Latency of a prediction through Airlock on the local workerd runtime (wrangler's Miniflare 5, the Worker bundled by wrangler deploy --dry-run, bindings from wrangler.toml), against calling the upstream directly and through a pass-through Worker on the same runtime; and the kill switch's acknowledgement and visibility times. Client: Node http with a keep-alive agent per scenario (maxSockets = concurrency), each connection sending its next request when the last is answered; latency from writing the request to the last byte of the response. Quantiles: linear interpolation between closest ranks. Differences (derived) are differences of quantiles, not quantiles of per-request differences; rangeOverRounds is the same difference computed within each round.",
    date: new Date().toISOString(),
    ...sourceRevision(),
    durationSeconds,
    machine: {
      cpuModel: cpus[0]?.model ?? "unknown",
      cpus: cpus.length,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      memoryGiB: round(os.totalmem() / 2 ** 30, 1),
      /** 1, 5 and 15 minute load averages when the run started and ended. */
      loadAverage: {
        start: loadAtStart.map((v) => round(v, 2)),
        end: os.loadavg().map((v) => round(v, 2)),
      },
      node: process.version,
      wrangler: runtime.versions.wrangler,
      miniflare: runtime.versions.miniflare,
      workerd: runtime.versions.workerd,
      note: "Shared machine: the load generator, the model server, workerd and Postgres run on the same cores, so at concurrency 32 the clients compete with the servers for CPU.",
    },
    setup: {
      concurrencies,
      requestsPerScenario,
      rounds,
      warmupRequestsPerScenario: warmupRequests,
      segmentWarmup: Object.fromEntries(concurrencies.map((c) => [String(c), segmentWarmup(c)])),
      settleBetweenSegmentsMs: settleMs,
      leaseMs,
      database: db.kind,
      /** Run in the same workerd as the requests, as wrangler.toml declares them. */
      queueConsumers: (config.queues.consumers ?? []).map((consumer) => consumer.queue),
      crons: config.triggers.crons ?? [],
      upstream: "scripts/demo-model-server.ts in its own Node process, POST /json/score",
      workerSockets:
        "each Worker on its own workerd socket (Miniflare's unsafeDirectSockets), no entry worker in front",
      rateLimiter: "PREDICT_RATE_LIMITER raised to 10,000,000 per 60 s so it never limits",
      scenarios: Object.fromEntries(
        scenarioKeys.map((key) => [
          key,
          { label: scenarioLabels[key], what: scenarioDescriptions[key] },
        ]),
      ),
    },
    results,
    derived,
    targets: targetsMet,
    killSwitch,
    workerLogs: {
      byKind: workerLogs.byKind,
      unexpected: workerLogs.unexpected,
      examples: workerLogs.examples,
    },
    ok:
      errors === 0 &&
      killSwitch.violations === 0 &&
      killSwitch.pollErrors === 0 &&
      workerLogs.unexpected === 0,
  };
  const table = markdown(report.machine, results, derived, targetsMet, killSwitch);
  const written = writeResult("gateway", report);
  if (!smoke) {
    console.log(`\n${table}`);
    console.log(`\nWrote ${written} (run took ${durationSeconds} s)`);
    if (!report.ok) {
      console.error("Some requests failed or the kill switch broke its promise; see the report.");
      process.exitCode = 1;
    }
    return;
  }

  const checks = smokeChecks("bench:gateway");
  const scenarioRuns = Object.values(results).flatMap((byScenario) => Object.values(byScenario));
  const answers = scenarioRuns.reduce((sum, r) => sum + r.n, 0);
  checks.check(
    "every scenario answered 200 at every concurrency",
    errors === 0 && scenarioRuns.length === concurrencies.length * scenarioKeys.length,
    `${answers} answers, ${errors} errors, ${scenarioRuns.length} scenario runs`,
  );
  for (const kind of ["engage", "release"] as const) {
    const s = killSwitch[kind];
    checks.check(
      `the kill switch's ${kind} was acknowledged and then seen by the client`,
      s.n === killCycles && s.neverVisible === 0,
      `${s.n} changes, ${s.neverVisible} never seen`,
    );
  }
  checks.check(
    "no request used an older state than acknowledged, none failed while polling",
    killSwitch.violations === 0 && killSwitch.pollErrors === 0 && killSwitch.pollRequests > 0,
    `${killSwitch.pollRequests} polling requests, ${killSwitch.violations} violations, ${killSwitch.pollErrors} errors`,
  );
  checks.check(
    "the Worker logged no unexpected error or warning",
    workerLogs.unexpected === 0,
    workerLogs.examples[0],
  );
  for (const s of stored)
    checks.check(
      `prediction results stored in Postgres: ${s.what}`,
      s.expected > 0 && s.stored === s.expected,
      `${s.stored} rows for ${s.expected} answers`,
    );
  checks.finish();
}

function markdown(
  machine: { cpuModel: string; cpus: number; node: string; workerd: string; miniflare: string },
  results: Record<string, Record<ScenarioKey, ScenarioResult>>,
  derived: Record<string, Record<string, { p50: number; p90: number; p99: number } | null>>,
  targets: { target: string; limitMs: number; measuredMs: number | null; met: boolean }[],
  killSwitch: {
    leaseMs: number;
    engage: { n: number; acknowledgedMs: Summary; visibleMs: Summary };
    release: { n: number; acknowledgedMs: Summary; visibleMs: Summary };
  },
): string {
  const f = (v: number | null | undefined, digits = 2) =>
    v === null || v === undefined || Number.isNaN(v) ? "–" : v.toFixed(digits);
  const levels = Object.keys(results);
  const n = results[levels[0] ?? ""]?.direct.n ?? 0;
  const lines = [
    `Latency in ms (${n} requests per cell; c = concurrent connections), ${machine.cpus} × ${machine.cpuModel}, Node ${machine.node}, workerd ${machine.workerd} (Miniflare ${machine.miniflare}):`,
    "",
    `| scenario | ${levels.map((c) => `c=${c} p50 | p90 | p99 | req/s`).join(" | ")} |`,
    `|---|${levels.map(() => "---:|---:|---:|---:").join("|")}|`,
  ];
  for (const key of scenarioKeys) {
    const cells = levels.map((c) => {
      const r = results[c]?.[key];
      return r
        ? `${f(r.p50)} | ${f(r.p90)} | ${f(r.p99)} | ${r.requestsPerSecond}`
        : "– | – | – | –";
    });
    lines.push(`| ${scenarioLabels[key]} | ${cells.join(" | ")} |`);
  }
  const derivedLabels: Record<string, string> = {
    platformFloor: "platform floor (b − a)",
    airlockOverhead: "**Airlock overhead (c − b)**",
    shadowCost: "one shadow (d − c)",
    builtinVsPassThrough: "builtin vs. pass-through (e − b)",
    rateLimiterCall: "diag.: one rate-limiter call in waitUntil (local emulation)",
    queueSend: "diag.: one queue send per request (local emulation; Airlock coalesces)",
    airlockBeyondRateLimiter:
      "diag.: Airlock beyond its rate-limiter call (c − pass-through + limiter)",
  };
  lines.push(
    "",
    `| difference, ms | ${levels.map((c) => `c=${c} p50 | c=${c} p99`).join(" | ")} |`,
    `|---|${levels.map(() => "---:|---:").join("|")}|`,
  );
  for (const [name, label] of Object.entries(derivedLabels)) {
    const cells = levels.map((c) => {
      const d = derived[c]?.[name];
      return `${f(d?.p50)} | ${f(d?.p99)}`;
    });
    lines.push(`| ${label} | ${cells.join(" | ")} |`);
  }
  lines.push("", "| target | limit | measured | met |", "|---|---:|---:|:---:|");
  for (const t of targets)
    lines.push(
      `| ${t.target} | ≤ ${f(t.limitMs)} | ${f(t.measuredMs)} | ${t.met ? "yes" : "no"} |`,
    );
  lines.push(
    "",
    `Kill switch (lease ${killSwitch.leaseMs} ms), ms from sending the change, while one client calls the model:`,
    "",
    "| change | n | 2xx p50 | 2xx p90 | first response with the new state p50 | p90 |",
    "|---|---:|---:|---:|---:|---:|",
  );
  for (const [name, s] of [
    ["engage (scope model)", killSwitch.engage],
    ["release", killSwitch.release],
  ] as const) {
    lines.push(
      `| ${name} | ${s.n} | ${f(s.acknowledgedMs.p50, 0)} | ${f(s.acknowledgedMs.p90, 0)} | ${f(s.visibleMs.p50, 0)} | ${f(s.visibleMs.p90, 0)} |`,
    );
  }
  return lines.join("\n");
}

try {
  await main();
} catch (error) {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
