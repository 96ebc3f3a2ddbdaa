// `npm run bench:ingest`: how fast the prediction-log consumer stores results,
// and how long a prediction takes to become a row in Postgres.
//
// (1) Throughput. The consumer's own code (functions/queue/prediction-logs.ts,
// `consumePredictionLogs`, unchanged) is bundled for Node with esbuild, as
// bench:models bundles the builtin evaluator, and called with hand-built
// message batches shaped like the platform's (100 messages each, `ackAll` /
// `retry` recorded) and an env holding DATABASE_URL and DATABASE_WS_PROXY, so
// it opens its per-batch pool with the same Neon driver over a local
// WebSocket endpoint, as under `npm start`. The messages are realistic and
// seeded: a request of 1 to 40 rows (mostly 1) with 16 features each gives a
// served message and, for half of them, a shadow message for one or two
// shadow versions; each result has a canonical prediction with probabilities,
// three attributes and a key HMAC. At each concurrency (batches in flight at
// once, as the platform runs several consumer invocations), rows stored per
// second are counted over timed windows; the configurations are interleaved
// round by round so machine noise spreads over all of them, and the median of
// the windows is reported. Then a few stored batches are delivered again
// (as the platform may), and the tables are counted: every produced row must
// be stored exactly once. Databases: "postgres" (the server DATABASE_URL
// names, in a throwaway database, or else a throwaway cluster of Debian's
// PostgreSQL when it is installed, logging in with the password in clear as
// the driver does with Neon), "postgres-scram" (the same cluster type with a
// SCRAM login, as CI sets Postgres up) and "embedded" (the PGlite server
// `npm start` uses), each served from a child process (the WebSocket bridge
// or PGlite) so that the consumer has this process to itself. CPU time is
// read from /proc per process (consumer, endpoint, Postgres, the rest of the
// machine) to show what a batch costs where, and how busy the machine was.
// One operation at a time, a connection alone and a whole batch are timed too.
//
// (2) Latency. `npm start` (wrangler dev: the Worker, its local queue and
// queue consumer, an embedded Postgres; the demo model on) in a temporary
// state folder. Predictions are sent to demo-credit-risk at a steady rate
// (open loop), each with its send time; Postgres is polled for the rows of
// the x-airlock-prediction-id values. A row's time to visible is its
// `stored_at` (now() of the inserting transaction, on this machine's clock)
// minus the send time; the time the first poll that returned it was answered
// is kept too (an upper bound on visibility, within one poll interval).
//
// Writes bench/results/ingest.json and prints a markdown table. Knobs
// (environment): BENCH_PARTS ("throughput,latency"), BENCH_DATABASES
// ("postgres,postgres-scram,embedded"), BENCH_CONCURRENCY ("1,2,4"), BENCH_WINDOW_MS (3000),
// BENCH_ROUNDS (windows per configuration, 5), BENCH_E2E_RATE (requests/s,
// 25), BENCH_E2E_SECONDS (40), BENCH_E2E_GRACE_MS (after the last request,
// 15000). About five minutes on 2 vCPUs. BENCH_SMOKE=1: a smoke run (one
// short window per configuration on DATABASE_URL's server in a throwaway
// database, or else on the embedded PGlite; 10 predictions under npm start),
// which checks that every row was stored exactly once and that every
// prediction's rows appeared, and writes no result file.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { Pool } from "@neondatabase/serverless";
import { WebSocket } from "ws";
import {
  bundleWorkerModules,
  knob,
  numberKnob,
  processCpuSeconds,
  processTreeCpuSeconds,
  quantile,
  sleep,
  smoke,
  smokeChecks,
  sourceRevision,
  wranglerVersion,
  writeResult,
} from "../lib/bench-stats.ts";
import { readDemo } from "../lib/demo.ts";
import { type DevServer, freePort, startDevServer } from "../lib/dev-server.ts";
import { isLoopbackUrl, projectRoot } from "../lib/environment.ts";
import { redactUrl, startBridge, startEmbeddedDatabase } from "../lib/local-db.ts";
import { configureNodeDriver, execute, migrateDatabase } from "../lib/migrate.ts";
import { findPgBouncer, startPgBouncer, type TempPgBouncer } from "../lib/temp-pgbouncer.ts";
import { findPostgresBin, startTempPostgres, type TempPostgres } from "../lib/temp-postgres.ts";
import { mulberry32 } from "../lib/traffic/random.ts";

// ---------------------------------------------------------------- child mode: a database server

/**
 * `node scripts/bench/ingest.ts --serve-database`: PGlite (kind embedded) or a
 * WebSocket bridge to DATABASE_URL's server (kind bridge), in a process of its
 * own. Prints one READY line; stops when its standard input closes.
 */
async function serveDatabase(): Promise<void> {
  const spec = JSON.parse(process.env.BENCH_SERVE ?? "{}") as {
    kind?: string;
    databaseUrl?: string;
  };
  const database =
    spec.kind === "embedded"
      ? await startEmbeddedDatabase({})
      : await startBridge({ databaseUrl: spec.databaseUrl ?? "" });
  process.stdout.write(
    `READY ${JSON.stringify({ databaseUrl: database.databaseUrl, wsProxy: database.wsProxy })}\n`,
  );
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    database.close().finally(() => process.exit(0));
  };
  process.stdin.on("end", stop);
  process.stdin.on("close", stop);
  process.stdin.resume();
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, stop);
}

// ---------------------------------------------------------------- knobs

function list(name: string, full: string, smokeDefault: string): string[] {
  return knob(name, full, smokeDefault)
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

function knobs() {
  return {
    parts: list("BENCH_PARTS", "throughput,latency", "throughput,latency"),
    // A smoke run: DATABASE_URL's server when there is one, else the embedded PGlite.
    databases: list(
      "BENCH_DATABASES",
      "postgres-pooled,postgres,embedded",
      process.env.DATABASE_URL ? "postgres" : "embedded",
    ),
    concurrencies: list("BENCH_CONCURRENCY", "2,4", "2").map(Number),
    requestsPerMessage: list("BENCH_REQUESTS_PER_MESSAGE", "1,10", "1,10").map(Number),
    windowMs: numberKnob("BENCH_WINDOW_MS", 3000, 300),
    rounds: numberKnob("BENCH_ROUNDS", 5, 1),
    e2eRate: numberKnob("BENCH_E2E_RATE", 25, 5),
    e2eSeconds: numberKnob("BENCH_E2E_SECONDS", 40, 2),
    e2eGraceMs: numberKnob("BENCH_E2E_GRACE_MS", 15_000, 30_000),
  };
}

/** Messages per batch: wrangler.toml's max_batch_size. */
const BATCH_MESSAGES = 100;
/** The log sender's message size limit (shared/inference/events.ts MAX_MESSAGE_BYTES). */
const MESSAGE_BYTES = 120 * 1024;
/** Unrecorded time at the start of each window: the workers' first batches get going. */
const RAMP_MS = 500;
/** Stored batches delivered a second time per configuration (the exactly-once check). */
const REDELIVERED_BATCHES = 3;
const QUEUE = "airlock-prediction-logs";
const POLL_INTERVAL_MS = 100;
/** PgBouncer's server connections per database ("postgres-pooled"). */
const POOL_SIZE = 8;

// ---------------------------------------------------------------- clean-up

/** Temporary files of this run (the bundle); made by run(). */
let workDir: string | undefined;
const children = new Set<ChildProcess>();
let tempPostgres: TempPostgres | undefined;
let tempPgBouncer: TempPgBouncer | undefined;
let devServer: DevServer | undefined;
let devStateDir: string | undefined;
const pendingDrops: (() => Promise<void>)[] = [];
let cleaning: Promise<void> | undefined;

function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    await devServer?.stop().catch(() => {});
    for (const drop of pendingDrops.splice(0)) await drop().catch(() => {});
    for (const child of children) await stopChild(child);
    tempPgBouncer?.stopNow();
    tempPostgres?.stopNow();
    cleanUpNow();
  })();
  return cleaning;
}

/** What must happen however the process ends (synchronous). */
function cleanUpNow() {
  const pid = devServer?.child.pid;
  if (pid && devServer?.child.exitCode === null) {
    try {
      process.kill(-pid, "SIGTERM");
    } catch {
      // gone
    }
  }
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
  tempPgBouncer?.stopNow();
  tempPostgres?.stopNow();
  if (devStateDir) rmSync(devStateDir, { recursive: true, force: true });
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

async function stopChild(child: ChildProcess): Promise<void> {
  children.delete(child);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.stdin?.end();
  await Promise.race([exited, sleep(5_000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

// ---------------------------------------------------------------- helpers

function round(value: number, digits = 1): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

interface Summary {
  n: number;
  p50: number;
  p95: number;
  max: number;
  min: number;
  mean: number;
}

function summarize(values: number[], digits = 1): Summary {
  const sorted = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    n: sorted.length,
    p50: round(quantile(sorted, 0.5), digits),
    p95: round(quantile(sorted, 0.95), digits),
    max: round(sorted[sorted.length - 1] ?? Number.NaN, digits),
    min: round(sorted[0] ?? Number.NaN, digits),
    mean: round(sorted.length ? sum / sorted.length : Number.NaN, digits),
  };
}

function median(values: number[]): number {
  return quantile(Float64Array.from(values).sort(), 0.5);
}

/** PgBouncer's CPU time, 0 without one. */
function poolerCpuSeconds(database: { poolerPid: () => number | undefined }): number {
  const pid = database.poolerPid();
  return pid ? processCpuSeconds(pid) : 0;
}

/** Busy CPU seconds of the whole machine, all cores (Linux /proc/stat), or NaN. */
function machineBusySeconds(): number {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
    const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
    return (
      ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / 100
    );
  } catch {
    return Number.NaN;
  }
}

function selfCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

// ---------------------------------------------------------------- the consumer under test

/** The shapes of the platform's queue batch that the consumer uses. */
interface QueueMessage {
  id: string;
  timestamp: Date;
  body: unknown;
  attempts: number;
  ack(): void;
  retry(options?: { delaySeconds?: number }): void;
}
interface QueueBatch {
  queue: string;
  messages: QueueMessage[];
  ackAll(): void;
  retryAll(options?: { delaySeconds?: number }): void;
}
interface ConsumerEnv {
  DATABASE_URL: string;
  DATABASE_WS_PROXY: string;
}
interface StoredCounts {
  predictions: number;
  refs: number;
  rejected: number;
  deadLetters: number;
}
// Declared locally: the Worker's modules resolve imports the bundler's way,
// not Node's, so they stay out of this program's type check.
interface ConsumerModule {
  consumePredictionLogs(batch: QueueBatch, env: ConsumerEnv): Promise<void>;
  openDatabase(env: ConsumerEnv): {
    db: { execute(query: unknown): Promise<unknown> };
    close(): Promise<void>;
  };
  PredictionLogMessageSchema: { safeParse(value: unknown): { success: boolean } };
  sql: (strings: TemplateStringsArray, ...values: unknown[]) => unknown;
  neonConfig: { webSocketConstructor: unknown };
}

/** The Worker's modules, bundled as they are (no changes) for Node. */
async function loadConsumer(): Promise<ConsumerModule> {
  workDir ??= mkdtempSync(join(os.tmpdir(), "airlock-bench-ingest-"));
  const outfile = join(workDir, "consumer.mjs");
  await bundleWorkerModules(
    `export { consumePredictionLogs } from "./functions/queue/prediction-logs.ts";
export { openDatabase } from "./shared/db/client.ts";
export { PredictionLogMessageSchema } from "./shared/inference/events.ts";
export { sql } from "drizzle-orm";
export { neonConfig } from "@neondatabase/serverless";`,
    outfile,
  );
  const consumer = (await import(outfile)) as ConsumerModule;
  // Node has no WebSocket of the Workers kind; `ws` is what the project's Node tooling uses.
  consumer.neonConfig.webSocketConstructor = WebSocket;
  return consumer;
}

// ---------------------------------------------------------------- realistic messages

type Feature = number | string | boolean;

const countries = ["DE", "FR", "NL", "ES", "IT", "PL", "SE", "US", "GB", "AT"];
const channels = ["web", "app", "pos", "phone"];
const segments = ["retail", "premium", "business", "student"];

/** 16 features of a card-payment fraud model: numbers, integers, flags and categories. */
function featureRow(random: () => number): Record<string, Feature> {
  const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)] as T;
  return {
    amount: Math.round(random() * 250_000) / 100,
    currency: "EUR",
    country: pick(countries),
    merchant_category: 5000 + Math.floor(random() * 1000),
    channel: pick(channels),
    account_age_days: Math.floor(random() * 4000),
    txn_count_24h: Math.floor(random() * 30),
    avg_amount_30d: Math.round(random() * 80_000) / 100,
    distance_km: Math.round(random() * 5_000_000) / 1000,
    is_international: random() < 0.2,
    device_score: Math.round(random() * 1e6) / 1e6,
    hour_of_day: Math.floor(random() * 24),
    card_present: random() < 0.4,
    velocity_1h: Math.floor(random() * 8),
    email_domain_risk: Math.round(random() * 1e4) / 1e4,
    customer_segment: pick(segments),
  };
}

interface GeneratedBatch {
  batch: QueueBatch;
  /** Prediction rows (results) it carries. */
  rows: number;
  acked: boolean;
  retries: number;
  /** What the consumer logged having stored (its prediction_logs.stored line). */
  reported: StoredCounts | null;
}

/**
 * An endless stream of batches for one model, in the order requests make
 * them: each request's served message, then (half the requests) its shadow
 * message. Seeded, so every configuration sees the same sizes.
 */
function batchStream(model: string, seed: number, requestsPerMessage = 1) {
  const random = mulberry32(seed);
  const pool = Array.from({ length: 4096 }, () => featureRow(random));
  const keys = Array.from({ length: 2000 }, () => randomBytes(32).toString("hex"));
  const pending: QueueMessage[] = [];
  /** Results of requests not yet in a message (requestsPerMessage > 1). */
  let coalescing: unknown[] = [];
  let coalescedRequests = 0;
  let poolIndex = 0;
  const rowsOfRequest = () => {
    const r = random();
    if (r < 0.75) return 1;
    if (r < 0.95) return 2 + Math.floor(random() * 7); // 2-8
    return 10 + Math.floor(random() * 31); // 10-40
  };
  const prediction = () => {
    const score = Math.round(random() ** 3 * 1e6) / 1e6;
    return {
      label: score >= 0.5 ? "fraud" : "legit",
      score,
      probabilities: { legit: Math.round((1 - score) * 1e6) / 1e6, fraud: score },
    };
  };
  const message = (results: unknown[], timestamp: Date): QueueMessage => ({
    id: randomBytes(16).toString("hex"),
    timestamp,
    body: { schema: 1, results },
    attempts: 1,
    ack() {},
    retry() {},
  });
  /** One request's messages onto `pending`. */
  const request = () => {
    const now = new Date();
    const timestamp = now.toISOString();
    const requestId = randomUUID();
    const keyHmac = random() < 0.9 ? (keys[Math.floor(random() * keys.length)] ?? null) : null;
    const attributes = {
      tenant: `tenant-${Math.floor(random() * 20)}`,
      channel: channels[Math.floor(random() * channels.length)] ?? "web",
      region: random() < 0.5 ? "eu-west" : "eu-central",
    };
    const rows = rowsOfRequest();
    const ids = Array.from({ length: rows }, () => randomUUID());
    const inputs = ids.map(() => {
      poolIndex = (poolIndex + 1) % pool.length;
      return pool[poolIndex];
    });
    const result = (role: string, version: string, i: number, latencyMs: number) => {
      const failed = random() < 0.01;
      return {
        role,
        predictionId: ids[i],
        requestId,
        model,
        version,
        prediction: failed ? null : prediction(),
        inputs: inputs[i],
        attributes,
        keyHmac,
        latencyMs,
        status: failed ? "timeout" : "ok",
        errorCode: failed ? "UPSTREAM_TIMEOUT" : null,
        stateVersion: 12,
        timestamp,
      };
    };
    const servedLatency = Math.round(random() * 40_000) / 1000;
    const served = ids.map((_, i) => result("served", "v3", i, servedLatency));
    const shadowResults =
      random() < 0.5
        ? (random() < 0.75 ? ["v4"] : ["v4", "v5-candidate"]).flatMap((version) => {
            const latency = Math.round(random() * 60_000) / 1000;
            return ids.map((_, i) => result("shadow", version, i, latency));
          })
        : [];
    if (requestsPerMessage <= 1) {
      pending.push(message(served, now));
      if (shadowResults.length > 0) pending.push(message(shadowResults, now));
      return;
    }
    // As an isolate's log sender coalesces them: the results of several
    // requests, in order, in messages of up to 120 KB.
    coalescing.push(...served, ...shadowResults);
    coalescedRequests += 1;
    if (coalescedRequests < requestsPerMessage) return;
    let current: unknown[] = [];
    let size = 32;
    for (const item of coalescing) {
      const bytes = JSON.stringify(item).length + 1;
      if (current.length > 0 && size + bytes > MESSAGE_BYTES) {
        pending.push(message(current, now));
        current = [];
        size = 32;
      }
      current.push(item);
      size += bytes;
    }
    if (current.length > 0) pending.push(message(current, now));
    coalescing = [];
    coalescedRequests = 0;
  };
  return (): GeneratedBatch => {
    while (pending.length < BATCH_MESSAGES) request();
    const messages = pending.splice(0, BATCH_MESSAGES);
    let rows = 0;
    for (const m of messages) rows += (m.body as { results: unknown[] }).results.length;
    return newBatch(messages, rows);
  };
}

/** A batch as the platform hands it over, recording acks and retries. */
function newBatch(messages: QueueMessage[], rows: number): GeneratedBatch {
  const generated: GeneratedBatch = {
    rows,
    acked: false,
    retries: 0,
    reported: null,
    batch: undefined as unknown as QueueBatch,
  };
  const retry = () => {
    generated.retries += 1;
  };
  generated.batch = {
    queue: QUEUE,
    messages: messages.map((m) => ({ ...m, ack() {}, retry })),
    ackAll() {
      generated.acked = true;
      // The consumer logs its counts synchronously right after acking.
      reportingBatch = generated;
    },
    retryAll: retry,
  };
  return generated;
}

/** The same messages delivered again, as the platform may after a lost ack. */
function redelivery(previous: GeneratedBatch): GeneratedBatch {
  return newBatch(
    previous.batch.messages.map((m) => ({ ...m, attempts: m.attempts + 1 })),
    previous.rows,
  );
}

let reportingBatch: GeneratedBatch | undefined;
const consumerLogs = { stored: 0, failed: 0, other: 0, examples: [] as string[] };

/** Captures the consumer's log lines (one per batch) instead of printing them. */
function captureConsumerLogs(): () => void {
  const originalLog = console.log;
  const originalError = console.error;
  const capture =
    (original: (...args: unknown[]) => void) =>
    (...args: unknown[]) => {
      const [first] = args;
      if (typeof first === "string" && first.startsWith('{"level"')) {
        try {
          const parsed = JSON.parse(first) as { event?: string } & Partial<StoredCounts>;
          if (parsed.event === "prediction_logs.stored") {
            consumerLogs.stored += 1;
            if (reportingBatch) {
              reportingBatch.reported = {
                predictions: parsed.predictions ?? 0,
                refs: parsed.refs ?? 0,
                rejected: parsed.rejected ?? 0,
                deadLetters: parsed.deadLetters ?? 0,
              };
              reportingBatch = undefined;
            }
            return;
          }
          if (parsed.event === "prediction_logs.store_failed") consumerLogs.failed += 1;
          else consumerLogs.other += 1;
          if (consumerLogs.examples.length < 10) consumerLogs.examples.push(first.slice(0, 300));
          return;
        } catch {
          // not the consumer's
        }
      }
      original(...args);
    };
  console.log = capture(originalLog);
  console.error = capture(originalError);
  return () => {
    console.log = originalLog;
    console.error = originalError;
  };
}

// ---------------------------------------------------------------- databases for part 1

interface BenchDatabase {
  name: string;
  description: string;
  env: ConsumerEnv;
  /** The process serving the WebSocket endpoint (bridge or PGlite). */
  server: ChildProcess;
  /** The throwaway cluster's postmaster, for its CPU time; undefined otherwise. */
  postgresPid: () => number | undefined;
  /** PgBouncer in front of Postgres ("postgres-pooled"), counted with the endpoint. */
  poolerPid: () => number | undefined;
  serverVersion: string;
  settings: Record<string, string>;
  close(): Promise<void>;
}

async function spawnServer(spec: { kind: "embedded" } | { kind: "bridge"; databaseUrl: string }) {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--serve-database"], {
    cwd: projectRoot,
    env: { ...process.env, BENCH_SERVE: JSON.stringify(spec) },
    stdio: ["pipe", "pipe", "inherit"],
  });
  children.add(child);
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const line = output.split("\n").find((l) => l.startsWith("READY "));
    if (line) {
      const ready = JSON.parse(line.slice(6)) as { databaseUrl: string; wsProxy: string };
      return { child, ...ready };
    }
    if (child.exitCode !== null) throw new Error(`the database server exited:\n${output}`);
    if (Date.now() > deadline) throw new Error(`the database server did not start:\n${output}`);
    await sleep(50);
  }
}

async function query<T>(env: ConsumerEnv, text: string, params: unknown[] = []): Promise<T[]> {
  configureNodeDriver(env.DATABASE_WS_PROXY);
  const pool = new Pool({ connectionString: env.DATABASE_URL, max: 1 });
  try {
    return (await pool.query(text, params)).rows as T[];
  } finally {
    await pool.end();
  }
}

async function openBenchDatabase(name: string): Promise<BenchDatabase | { skipped: string }> {
  if (name === "embedded") {
    const server = await spawnServer({ kind: "embedded" });
    const env = { DATABASE_URL: server.databaseUrl, DATABASE_WS_PROXY: server.wsProxy };
    await migrateDatabase({ databaseUrl: env.DATABASE_URL, wsProxy: env.DATABASE_WS_PROXY });
    const [version] = await query<{ version: string }>(env, "SELECT version()");
    return {
      name,
      description:
        "embedded Postgres as npm start runs it (PGlite in memory, one backend, behind the project's WebSocket endpoint), in a child process",
      env,
      server: server.child,
      postgresPid: () => undefined,
      poolerPid: () => undefined,
      serverVersion: version?.version ?? "unknown",
      settings: {},
      close: () => stopChild(server.child),
    };
  }
  if (name !== "postgres" && name !== "postgres-scram" && name !== "postgres-pooled")
    throw new Error(`unknown database '${name}' in BENCH_DATABASES`);
  const pgbouncer = name === "postgres-pooled" ? findPgBouncer() : undefined;
  if (name === "postgres-pooled" && !pgbouncer)
    return {
      skipped:
        "no pgbouncer on this machine (Debian: apt-get install pgbouncer), so no pooled endpoint to measure",
    };
  const external = process.env.DATABASE_URL;
  let serverUrl: string;
  let description: string;
  let settings: Record<string, string> = {};
  let stopCluster = async () => {};
  let postgresPid = (): number | undefined => undefined;
  if (external && name === "postgres-scram")
    return {
      skipped: "postgres-scram is measured on a throwaway cluster only, not with DATABASE_URL",
    };
  if (external) {
    if (!isLoopbackUrl(external))
      throw new Error("bench:ingest runs against a local Postgres; DATABASE_URL points elsewhere");
    serverUrl = external;
    description = `the PostgreSQL server of DATABASE_URL (${redactUrl(external)}), in a throwaway database, through the project's WebSocket bridge in a child process`;
  } else {
    const bin = findPostgresBin();
    if (!bin)
      return {
        skipped:
          "no DATABASE_URL and no PostgreSQL binaries (initdb) on this machine; install Debian's postgresql or set DATABASE_URL",
      };
    const auth = name === "postgres-scram" ? "scram-sha-256" : "password";
    tempPostgres = await startTempPostgres({ bin, port: await freePort(), auth });
    const cluster = tempPostgres;
    serverUrl = cluster.databaseUrl;
    description = `a throwaway PostgreSQL cluster on this machine (initdb defaults: fsync and synchronous_commit on), through the project's WebSocket bridge in a child process; login: ${
      auth === "password"
        ? "password in clear (pg_hba `password`), as the driver logs in to Neon's proxy over TLS"
        : "SCRAM-SHA-256 (pg_hba `scram-sha-256`, as CI sets up), computed by the Neon driver with 4096 awaited crypto.subtle HMAC calls per connection"
    }`;
    settings = cluster.settings;
    postgresPid = cluster.serverPid;
    stopCluster = async () => {
      await cluster.stop();
      tempPostgres = undefined;
    };
  }
  let pooler: TempPgBouncer | undefined;
  if (pgbouncer) {
    pooler = await startPgBouncer({
      binary: pgbouncer,
      upstreamUrl: serverUrl,
      port: await freePort(),
      poolSize: POOL_SIZE,
    });
    tempPgBouncer = pooler;
    description += `; PgBouncer (${pooler.version}) in front of it in transaction mode with ${POOL_SIZE} server connections, as Neon's pooled endpoint runs it, so each batch's new client connection reuses a warm backend`;
    settings = {
      ...settings,
      ...Object.fromEntries(Object.entries(pooler.settings).map(([k, v]) => [`pgbouncer.${k}`, v])),
    };
    serverUrl = pooler.databaseUrl;
  }
  const server = await spawnServer({ kind: "bridge", databaseUrl: serverUrl });
  let databaseUrl = serverUrl;
  let drop = async () => {};
  if (external) {
    const dbName = `airlock_bench_ingest_${Date.now()}_${process.pid}`;
    await execute({ databaseUrl: serverUrl, wsProxy: server.wsProxy }, `CREATE DATABASE ${dbName}`);
    drop = () =>
      execute(
        { databaseUrl: serverUrl, wsProxy: server.wsProxy },
        `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`,
      );
    pendingDrops.push(drop);
    const url = new URL(serverUrl);
    url.pathname = `/${dbName}`;
    databaseUrl = url.toString();
  }
  const env = { DATABASE_URL: databaseUrl, DATABASE_WS_PROXY: server.wsProxy };
  await migrateDatabase({ databaseUrl, wsProxy: server.wsProxy });
  const [version] = await query<{ version: string }>(env, "SELECT version()");
  const shown = await query<{ name: string; setting: string; unit: string | null }>(
    env,
    "SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1)",
    [
      [
        "fsync",
        "synchronous_commit",
        "shared_buffers",
        "max_wal_size",
        "wal_level",
        "max_connections",
      ],
    ],
  );
  for (const s of shown) settings[s.name] = `${s.setting}${s.unit ? ` ${s.unit}` : ""}`;
  return {
    name,
    description,
    env,
    server: server.child,
    postgresPid,
    poolerPid: () => pooler?.pid(),
    serverVersion: version?.version ?? "unknown",
    settings,
    close: async () => {
      await drop().catch((error: unknown) => console.error("drop database:", error));
      const index = pendingDrops.indexOf(drop);
      if (index >= 0) pendingDrops.splice(index, 1);
      await stopChild(server.child);
      await pooler?.stop();
      tempPgBouncer = undefined;
      await stopCluster();
    },
  };
}

// ---------------------------------------------------------------- part 1: throughput

interface CpuCores {
  consumer: number;
  server: number;
  postgres: number;
  machine: number;
}

interface WindowSample {
  rowsPerSecond: number;
  batchesPerSecond: number;
  /**
   * Cores busy during the window: this process (the consumer), the process
   * serving the WebSocket endpoint (the bridge; for embedded, PGlite too),
   * the throwaway Postgres cluster, the whole machine.
   */
  cpu: CpuCores;
}

interface ConfigState {
  concurrency: number;
  requestsPerMessage: number;
  model: string;
  next: () => GeneratedBatch;
  redeliver: GeneratedBatch[];
  producedRows: number;
  reportedRows: number;
  reportedRefs: number;
  batches: number;
  failures: number;
  batchMs: number[];
  rowsPerBatch: number[];
  recent: GeneratedBatch[];
  windows: WindowSample[];
}

/**
 * `concurrency` consumer invocations in flight, each taking the next batch as
 * soon as its last one is done, for a ramp and a window; the batches acked
 * inside the window are counted. A batch the consumer did not ack (it asked
 * for a retry) is delivered again, as the platform would.
 */
async function runWindow(
  consumer: ConsumerModule,
  database: BenchDatabase,
  state: ConfigState,
  windowMs: number,
): Promise<void> {
  const { env } = database;
  const start = performance.now();
  const from = start + RAMP_MS;
  const to = from + windowMs;
  let rows = 0;
  let batches = 0;
  let cpuAtFrom: CpuCores | undefined;
  const cpuNow = (): CpuCores => ({
    consumer: selfCpuSeconds(),
    server: processCpuSeconds(database.server.pid) + poolerCpuSeconds(database),
    postgres: processTreeCpuSeconds(database.postgresPid()),
    machine: machineBusySeconds(),
  });
  const rampTimer = setTimeout(() => {
    cpuAtFrom = cpuNow();
  }, RAMP_MS);
  let cpuAtTo: CpuCores | undefined;
  const endTimer = setTimeout(() => {
    cpuAtTo = cpuNow();
  }, RAMP_MS + windowMs);
  const worker = async () => {
    while (performance.now() < to) {
      const generated = state.redeliver.shift() ?? state.next();
      const t0 = performance.now();
      await consumer.consumePredictionLogs(generated.batch, env);
      const t1 = performance.now();
      if (!generated.acked) {
        // The platform would deliver it again after the consumer's delay.
        state.failures += 1;
        state.redeliver.push(redelivery(generated));
        continue;
      }
      state.batches += 1;
      state.producedRows += generated.rows;
      state.reportedRows += generated.reported?.predictions ?? 0;
      state.reportedRefs += generated.reported?.refs ?? 0;
      state.recent.push(generated);
      if (state.recent.length > REDELIVERED_BATCHES) state.recent.shift();
      if (t1 >= from && t1 <= to) {
        rows += generated.rows;
        batches += 1;
        state.batchMs.push(t1 - t0);
        state.rowsPerBatch.push(generated.rows);
      }
    }
  };
  await Promise.all(Array.from({ length: state.concurrency }, worker));
  clearTimeout(rampTimer);
  clearTimeout(endTimer);
  const a = cpuAtFrom ?? cpuNow();
  const b = cpuAtTo ?? cpuNow();
  const seconds = windowMs / 1000;
  state.windows.push({
    rowsPerSecond: rows / seconds,
    batchesPerSecond: batches / seconds,
    cpu: {
      consumer: round((b.consumer - a.consumer) / seconds, 2),
      server: round((b.server - a.server) / seconds, 2),
      postgres: round((b.postgres - a.postgres) / seconds, 2),
      machine: round((b.machine - a.machine) / seconds, 2),
    },
  });
}

/** CPU time per operation, ms: this process, the endpoint's process, the Postgres cluster. */
interface CpuPerOperation {
  consumer: number;
  server: number;
  postgres: number;
}

interface DiagnosticResult {
  /** This benchmark making a batch of messages (inside the timed loops, not the consumer's work). */
  generateMsPerBatch: Summary;
  /** Validating one batch's messages against the event schema (what the consumer does first). */
  validateMsPerBatch: Summary;
  /** Opening the consumer's per-batch pool (its driver and settings), one `SELECT 1`, closing it. */
  connectMs: Summary;
  connectCpuMs: CpuPerOperation;
  /** A whole batch through the consumer, nothing else in flight. */
  storeMsPerBatch: Summary;
  storeCpuMs: CpuPerOperation;
  rowsPerBatch: number;
  jsonBytesPerBatch: number;
}

/**
 * Where a batch's time goes, one operation at a time: making and validating a
 * batch, a connection alone (the consumer's openDatabase, SELECT 1, close),
 * a whole batch; with the CPU each costs in each process.
 */
async function diagnose(
  consumer: ConsumerModule,
  database: BenchDatabase,
): Promise<DiagnosticResult> {
  const { env } = database;
  const next = batchStream("bench-ingest-diagnostics", 7);
  const n = smoke ? 3 : 15;
  const cpuNow = () => ({
    consumer: selfCpuSeconds(),
    server: processCpuSeconds(database.server.pid) + poolerCpuSeconds(database),
    postgres: processTreeCpuSeconds(database.postgresPid()),
  });
  const perOperation = (a: ReturnType<typeof cpuNow>, b: ReturnType<typeof cpuNow>) => ({
    consumer: round(((b.consumer - a.consumer) * 1000) / n, 1),
    server: round(((b.server - a.server) * 1000) / n, 1),
    postgres: round(((b.postgres - a.postgres) * 1000) / n, 1),
  });
  const batches = Array.from({ length: n + 2 }, () => next());
  const generate: number[] = [];
  const validate: number[] = [];
  for (let i = 0; i < n; i++) {
    let t0 = performance.now();
    const generated = next();
    generate.push(performance.now() - t0);
    t0 = performance.now();
    for (const m of generated.batch.messages) consumer.PredictionLogMessageSchema.safeParse(m.body);
    validate.push(performance.now() - t0);
  }
  const connectOnce = async () => {
    const handle = consumer.openDatabase(env);
    try {
      await handle.db.execute(consumer.sql`SELECT 1`);
    } finally {
      await handle.close();
    }
  };
  await connectOnce(); // warm-up
  await connectOnce();
  const connect: number[] = [];
  let cpuBefore = cpuNow();
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await connectOnce();
    connect.push(performance.now() - t0);
  }
  await sleep(300); // ended backends are counted once the postmaster has reaped them
  const connectCpuMs = perOperation(cpuBefore, cpuNow());
  const store: number[] = [];
  let rows = 0;
  let bytes = 0;
  for (const [i, generated] of batches.entries()) {
    if (i === 2) {
      await sleep(300);
      cpuBefore = cpuNow();
    }
    const t0 = performance.now();
    await consumer.consumePredictionLogs(generated.batch, env);
    const stored = performance.now() - t0;
    if (!generated.acked) throw new Error("a diagnostic batch was not stored");
    if (i < 2) continue; // warm-up
    store.push(stored);
    rows += generated.rows;
    bytes += JSON.stringify(generated.batch.messages.map((m) => m.body)).length;
  }
  await sleep(300);
  const storeCpuMs = perOperation(cpuBefore, cpuNow());
  return {
    generateMsPerBatch: summarize(generate, 2),
    validateMsPerBatch: summarize(validate, 2),
    connectMs: summarize(connect, 2),
    connectCpuMs,
    storeMsPerBatch: summarize(store, 2),
    storeCpuMs,
    rowsPerBatch: round(rows / n),
    jsonBytesPerBatch: Math.round(bytes / n),
  };
}

interface ConfigResult {
  concurrency: number;
  /** Requests whose results share a message, as the log sender coalesces them. */
  requestsPerMessage: number;
  /** Median over windows of prediction rows stored per second. */
  rowsPerSecond: number;
  windowsRowsPerSecond: number[];
  batchesPerSecond: number;
  rowsPerBatch: Summary;
  batchMs: Summary;
  /** Medians over the windows; other = machine − the rest: whatever else ran on the machine. */
  cpuCores: CpuCores & { other: number };
  /** cpuCores / batchesPerSecond: CPU ms each batch cost, by process. */
  cpuMsPerBatch: { consumer: number; server: number; postgres: number };
  storeFailures: number;
  exactlyOnce: {
    produced: number;
    /** What the consumer said it inserted (its log line per batch): predictions, refs. */
    reportedInserted: number;
    reportedRefsInserted: number;
    predictionsRows: number;
    predictionRefsRows: number;
    redeliveredBatches: number;
    redeliveredRows: number;
    insertedByRedelivery: number;
    ok: boolean;
  };
}

async function throughputFor(
  consumer: ConsumerModule,
  database: BenchDatabase,
  settings: ReturnType<typeof knobs>,
  runId: string,
): Promise<{ diagnostics: DiagnosticResult; configs: ConfigResult[] }> {
  const { env } = database;
  say(`  diagnostics (one batch at a time)...`);
  const diagnostics = await diagnose(consumer, database);
  say(
    smoke
      ? `  ${diagnostics.rowsPerBatch} rows per batch`
      : `  ${diagnostics.rowsPerBatch} rows per batch: validate ${diagnostics.validateMsPerBatch.p50} ms, connect ${diagnostics.connectMs.p50} ms, whole batch ${diagnostics.storeMsPerBatch.p50} ms (p50)`,
  );
  const states: ConfigState[] = settings.requestsPerMessage.flatMap((requestsPerMessage) =>
    settings.concurrencies.map((concurrency) => {
      const model = `bench-ingest-${runId}-${database.name}-c${concurrency}-m${requestsPerMessage}`;
      return {
        concurrency,
        requestsPerMessage,
        model,
        next: batchStream(model, 20261125, requestsPerMessage),
        redeliver: [],
        producedRows: 0,
        reportedRows: 0,
        reportedRefs: 0,
        batches: 0,
        failures: 0,
        batchMs: [],
        rowsPerBatch: [],
        recent: [],
        windows: [],
      };
    }),
  );
  // A warm-up window each (not reported), then the rounds in rotating order.
  for (const state of states) {
    await runWindow(consumer, database, state, Math.min(settings.windowMs, 1500));
    state.windows.length = 0;
    state.batchMs.length = 0;
    state.rowsPerBatch.length = 0;
  }
  for (let r = 0; r < settings.rounds; r++) {
    const order = states.map((_, i) => states[(i + r) % states.length] as ConfigState);
    for (const state of order) {
      await runWindow(consumer, database, state, settings.windowMs);
    }
    say(
      `  round ${r + 1}/${settings.rounds}: ${states
        .map(
          (s) =>
            `c=${s.concurrency} r/m=${s.requestsPerMessage} ${smoke ? `${s.batches} batches` : `${Math.round(s.windows.at(-1)?.rowsPerSecond ?? 0)} rows/s`}`,
        )
        .join(", ")}`,
    );
  }
  const configs: ConfigResult[] = [];
  for (const state of states) {
    // Deliver a few stored batches again; nothing new may be inserted.
    let insertedByRedelivery = 0;
    let redeliveredRows = 0;
    const again = state.recent.map(redelivery);
    for (const generated of again) {
      await consumer.consumePredictionLogs(generated.batch, env);
      if (!generated.acked) throw new Error("a redelivered batch was not acked");
      insertedByRedelivery +=
        (generated.reported?.predictions ?? 0) + (generated.reported?.refs ?? 0);
      redeliveredRows += generated.rows;
    }
    // Batches that failed and were never delivered again would be missing: deliver them now.
    for (let attempt = 1; state.redeliver.length > 0; attempt++) {
      const generated = state.redeliver.shift() as GeneratedBatch;
      await consumer.consumePredictionLogs(generated.batch, env);
      if (!generated.acked) {
        state.failures += 1;
        if (attempt >= 10) throw new Error("a batch could not be stored after 10 deliveries");
        state.redeliver.push(redelivery(generated));
        await sleep(1000);
        continue;
      }
      state.producedRows += generated.rows;
      state.reportedRows += generated.reported?.predictions ?? 0;
      state.reportedRefs += generated.reported?.refs ?? 0;
    }
    const [counted] = await query<{ predictions: string; refs: string }>(
      env,
      `SELECT (SELECT count(*) FROM predictions WHERE model = $1) AS predictions,
              (SELECT count(*) FROM prediction_refs WHERE model = $1) AS refs`,
      [state.model],
    );
    const predictionsRows = Number(counted?.predictions ?? -1);
    const refsRows = Number(counted?.refs ?? -1);
    const windowsRates = state.windows.map((w) => w.rowsPerSecond);
    const cpuMedian = (key: keyof WindowSample["cpu"]) =>
      round(median(state.windows.map((w) => w.cpu[key])), 2);
    const batchesPerSecond = median(state.windows.map((w) => w.batchesPerSecond));
    const msPerBatch = (key: keyof CpuCores) =>
      round((cpuMedian(key) * 1000) / batchesPerSecond, 1);
    configs.push({
      concurrency: state.concurrency,
      requestsPerMessage: state.requestsPerMessage,
      rowsPerSecond: Math.round(median(windowsRates)),
      windowsRowsPerSecond: windowsRates.map((v) => Math.round(v)),
      batchesPerSecond: round(batchesPerSecond),
      rowsPerBatch: summarize(state.rowsPerBatch, 0),
      batchMs: summarize(state.batchMs, 1),
      cpuCores: {
        consumer: cpuMedian("consumer"),
        server: cpuMedian("server"),
        postgres: cpuMedian("postgres"),
        machine: cpuMedian("machine"),
        other: round(
          median(
            state.windows.map(
              (w) =>
                w.cpu.machine -
                w.cpu.consumer -
                w.cpu.server -
                (Number.isNaN(w.cpu.postgres) ? 0 : w.cpu.postgres),
            ),
          ),
          2,
        ),
      },
      cpuMsPerBatch: {
        consumer: msPerBatch("consumer"),
        server: msPerBatch("server"),
        postgres: msPerBatch("postgres"),
      },
      storeFailures: state.failures,
      exactlyOnce: {
        produced: state.producedRows,
        reportedInserted: state.reportedRows,
        reportedRefsInserted: state.reportedRefs,
        predictionsRows,
        predictionRefsRows: refsRows,
        redeliveredBatches: again.length,
        redeliveredRows,
        insertedByRedelivery,
        ok:
          predictionsRows === state.producedRows &&
          refsRows === state.producedRows &&
          insertedByRedelivery === 0,
      },
    });
  }
  return { diagnostics, configs };
}

// ---------------------------------------------------------------- part 2: request to row

interface Sent {
  sentAt: number;
  status: number;
  responseMs: number;
  ids: string[];
  error?: string;
}

/** One POST on a keep-alive agent; send time is this machine's wall clock in ms (sub-ms). */
function post(agent: http.Agent, url: URL, body: string): Promise<Sent> {
  return new Promise((resolve) => {
    const sentAt = performance.timeOrigin + performance.now();
    const request = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: "POST",
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const header = response.headers["x-airlock-prediction-id"];
          const ids = typeof header === "string" && header ? header.split(",") : [];
          const status = response.statusCode ?? 0;
          resolve({
            sentAt,
            status,
            responseMs: performance.timeOrigin + performance.now() - sentAt,
            ids,
            ...(status === 200
              ? {}
              : { error: `${status} ${Buffer.concat(chunks).toString().slice(0, 200)}` }),
          });
        });
        response.on("error", (error) =>
          resolve({ sentAt, status: 0, responseMs: Number.NaN, ids: [], error: String(error) }),
        );
      },
    );
    request.on("error", (error) =>
      resolve({ sentAt, status: 0, responseMs: Number.NaN, ids: [], error: String(error) }),
    );
    request.end(body);
  });
}

interface Tracked {
  sentAt: number;
  id: string;
  /** stored_at, and when the first poll that returned the row was answered (ms, wall clock). */
  served?: { storedAt: number; observedAt: number };
  shadow?: { storedAt: number; observedAt: number };
}

async function latency(settings: ReturnType<typeof knobs>) {
  devStateDir = mkdtempSync(join(os.tmpdir(), "airlock-bench-ingest-start-"));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const consumerBatches: { messages: number; predictions: number }[] = [];
  let storeFailed = 0;
  let reloads = 0;
  let outputTail = "";
  say(`Starting npm start on port ${port} (fresh state in a temporary folder, demo model on)...`);
  const t0 = performance.now();
  devServer = await startDevServer(
    {
      AIRLOCK_STATE_DIR: devStateDir,
      PORT: String(port),
      AIRLOCK_DB_PORT: String(await freePort()),
      AIRLOCK_DEMO: "1",
      WRANGLER_SEND_METRICS: "false",
      // No cron job runs during a measurement.
      AIRLOCK_CRON: "0",
    },
    {
      onOutput: (text) => {
        outputTail = (outputTail + text).slice(-4000);
        reloads += text.split("Reloading local server").length - 1;
        for (const match of text.matchAll(
          /\{"level":"[a-z]+","event":"prediction_logs\.[^\n]*\}/g,
        )) {
          try {
            const line = JSON.parse(match[0]) as {
              event: string;
              messages?: number;
              predictions?: number;
            };
            if (line.event === "prediction_logs.stored")
              consumerBatches.push({
                messages: line.messages ?? 0,
                predictions: line.predictions ?? 0,
              });
            else if (line.event === "prediction_logs.store_failed") storeFailed += 1;
          } catch {
            // a partial line
          }
        }
      },
    },
  );
  const startupSeconds = round((performance.now() - t0) / 1000);
  say(`Ready after ${startupSeconds} s.`);
  if (!devServer.output().includes("demo-credit-risk registered"))
    throw new Error(`the demo model was not registered:\n${devServer.output().slice(-2000)}`);
  const running = JSON.parse(readFileSync(join(devStateDir, "database.json"), "utf8")) as {
    databaseUrl: string;
    wsProxy: string;
  };
  configureNodeDriver(running.wsProxy);
  const pool = new Pool({ connectionString: running.databaseUrl, max: 1 });
  pool.on("error", () => {});

  const demo = readDemo();
  const example = demo.example as Record<string, number | boolean>;
  const random = mulberry32(42);
  const url = new URL(`${base}/v1/models/${demo.model.name}/predict`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  const bodyFor = (i: number) =>
    JSON.stringify({
      inputs: {
        ...example,
        income: Math.round(20_000 + random() * 150_000),
        debt_to_income: Math.round(random() * 1000) / 1000,
        age: 18 + Math.floor(random() * 60),
        utilization: Math.round(random() * 1000) / 1000,
      },
      key: `customer-${i % 500}`,
      attributes: { channel: i % 3 === 0 ? "app" : "web", region: "eu-west" },
    });

  try {
    // Warm-up: the isolate, the lease, the builtin models; waits for the rows.
    say("Warm-up (10 requests)...");
    const warm = await Promise.all(
      Array.from({ length: 10 }, (_, i) => post(agent, url, bodyFor(i))),
    );
    const warmIds = warm.flatMap((s) => s.ids);
    if (warm.some((s) => s.status !== 200))
      throw new Error(`warm-up failed: ${warm.find((s) => s.status !== 200)?.error}`);
    const warmDeadline = Date.now() + (smoke ? 60_000 : 20_000);
    for (;;) {
      const seen = await pool.query(
        "SELECT count(*)::int AS n FROM predictions WHERE prediction_id = ANY($1) AND role = 'served'",
        [warmIds],
      );
      if ((seen.rows[0] as { n: number }).n === warmIds.length) break;
      if (Date.now() > warmDeadline) throw new Error("the warm-up rows never appeared");
      await sleep(200);
    }
    const batchesBefore = consumerBatches.length;

    const total = Math.round(settings.e2eRate * settings.e2eSeconds);
    say(
      `Sending ${total} predictions at ${settings.e2eRate}/s for ${settings.e2eSeconds} s, polling Postgres every ${POLL_INTERVAL_MS} ms...`,
    );
    const tracked = new Map<string, Tracked>();
    const sent: Sent[] = [];
    /** When the last request was answered; the poller then waits out the grace period. */
    let sendingEndedAt: number | undefined;
    let polls = 0;
    let pollErrors = 0;
    const pollMs: number[] = [];
    const poller = (async () => {
      for (;;) {
        const loopStart = performance.now();
        const waiting = [...tracked.values()].filter((t) => !t.served || !t.shadow);
        if (
          sendingEndedAt !== undefined &&
          (waiting.length === 0 || loopStart > sendingEndedAt + settings.e2eGraceMs)
        )
          break;
        if (waiting.length > 0) {
          try {
            const result = await pool.query(
              `SELECT prediction_id, role, (extract(epoch FROM stored_at) * 1000)::float8 AS stored_ms
               FROM predictions WHERE prediction_id = ANY($1)`,
              [waiting.slice(0, 2000).map((t) => t.id)],
            );
            // The answer's arrival: the row was visible by then (an upper bound).
            const observedAt = performance.timeOrigin + performance.now();
            for (const row of result.rows as {
              prediction_id: string;
              role: string;
              stored_ms: number;
            }[]) {
              const t = tracked.get(row.prediction_id);
              if (!t) continue;
              const seen = { storedAt: Number(row.stored_ms), observedAt };
              if (row.role === "served" && !t.served) t.served = seen;
              if (row.role === "shadow" && !t.shadow) t.shadow = seen;
            }
            polls += 1;
            pollMs.push(performance.now() - loopStart);
          } catch {
            pollErrors += 1;
          }
        }
        await sleep(Math.max(0, POLL_INTERVAL_MS - (performance.now() - loopStart)));
      }
    })();
    const loadStart = performance.now();
    const inFlight: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      const due = loadStart + (i * 1000) / settings.e2eRate;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      inFlight.push(
        post(agent, url, bodyFor(i)).then((s) => {
          sent.push(s);
          for (const id of s.ids) tracked.set(id, { sentAt: s.sentAt, id });
        }),
      );
    }
    await Promise.all(inFlight);
    const sendSeconds = (performance.now() - loadStart) / 1000;
    sendingEndedAt = performance.now();
    await poller;
    agent.destroy();
    await pool.end();

    const rows = [...tracked.values()];
    const servedStored = rows.flatMap((t) => (t.served ? [t.served.storedAt - t.sentAt] : []));
    const servedObserved = rows.flatMap((t) => (t.served ? [t.served.observedAt - t.sentAt] : []));
    const shadowStored = rows.flatMap((t) => (t.shadow ? [t.shadow.storedAt - t.sentAt] : []));
    const ok = sent.filter((s) => s.status === 200);
    const batches = consumerBatches.slice(batchesBefore);
    return {
      startupSeconds,
      requests: total,
      achievedRate: round(total / sendSeconds, 1),
      responses: {
        ok: ok.length,
        failed: sent.length - ok.length,
        examples: sent.flatMap((s) => (s.error ? [s.error] : [])).slice(0, 5),
        ms: summarize(ok.map((s) => s.responseMs)),
      },
      predictionIds: rows.length,
      servedRow: {
        storedAtMinusSendMs: summarize(servedStored, 0),
        pollObservedMinusSendMs: summarize(servedObserved, 0),
        missingAfterGrace: rows.filter((t) => !t.served).length,
        /** stored_at before the send time: would mean the clocks disagree. */
        negative: servedStored.filter((v) => v < 0).length,
      },
      shadowRow: {
        storedAtMinusSendMs: summarize(shadowStored, 0),
        missingAfterGrace: rows.filter((t) => !t.shadow).length,
      },
      polling: {
        intervalMs: POLL_INTERVAL_MS,
        polls,
        pollErrors,
        queryMs: summarize(pollMs),
      },
      consumer: {
        batches: batches.length,
        messagesPerBatch: summarize(
          batches.map((b) => b.messages),
          0,
        ),
        predictionsStored: batches.reduce((sum, b) => sum + b.predictions, 0),
        storeFailed,
      },
      reloads,
    };
  } catch (error) {
    say(`npm start output (last lines):\n${outputTail}`);
    throw error;
  }
}

// ---------------------------------------------------------------- report

function say(line: string) {
  process.stdout.write(`${line}\n`);
}

type ThroughputReport = Record<
  string,
  | {
      description: string;
      serverVersion: string;
      settings: Record<string, string>;
      diagnostics: DiagnosticResult;
      configs: ConfigResult[];
    }
  | { skipped: string }
>;

function markdown(
  report: {
    machine: { cpuModel: string; cpus: number; node: string };
    throughput: ThroughputReport | null;
    latency: Awaited<ReturnType<typeof latency>> | null;
  },
  settings: ReturnType<typeof knobs>,
): string {
  const lines: string[] = [];
  const f = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? "–" : String(v));
  const cpu = (c: { consumer: number; server: number; postgres: number }) =>
    `${f(c.consumer)} / ${f(c.server)} / ${f(c.postgres)}`;
  if (report.throughput) {
    lines.push(
      `Consumer throughput (prediction rows stored per second; ${BATCH_MESSAGES}-message batches; median of ${settings.rounds} windows of ${settings.windowMs / 1000} s), ${report.machine.cpus} × ${report.machine.cpuModel}, Node ${report.machine.node}:`,
      "",
      "| database | requests per message | in flight | rows/s (median) | windows min–max | batches/s | rows/batch | batch ms p50 / p95 | CPU cores: consumer / endpoint / postgres / other / machine | stored exactly once |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    );
    for (const [name, result] of Object.entries(report.throughput)) {
      if ("skipped" in result) {
        lines.push(`| ${name} | – | – | skipped: ${result.skipped} | | | | | | |`);
        continue;
      }
      for (const c of result.configs) {
        const e = c.exactlyOnce;
        lines.push(
          `| ${name} | ${c.requestsPerMessage} | ${c.concurrency} | ${c.rowsPerSecond} | ${Math.min(...c.windowsRowsPerSecond)}–${Math.max(...c.windowsRowsPerSecond)} | ${c.batchesPerSecond} | ${c.rowsPerBatch.mean} | ${c.batchMs.p50} / ${c.batchMs.p95} | ${c.cpuCores.consumer} / ${c.cpuCores.server} / ${Number.isNaN(c.cpuCores.postgres) ? "–" : c.cpuCores.postgres} / ${c.cpuCores.other} / ${c.cpuCores.machine} | ${e.ok ? "yes" : "NO"} (${e.predictionsRows}/${e.produced}) |`,
        );
      }
    }
    lines.push(
      "",
      "One operation at a time, ms (wall: p50 of 15; CPU: mean of the same 15, per operation):",
      "",
      "| database | rows | message JSON KiB | make batch (bench) | schema validation | open pool + SELECT 1 + close | its CPU: consumer / endpoint / postgres | whole batch (consumePredictionLogs) | its CPU: consumer / endpoint / postgres |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    );
    for (const [name, result] of Object.entries(report.throughput)) {
      if ("skipped" in result) continue;
      const d = result.diagnostics;
      lines.push(
        `| ${name} | ${d.rowsPerBatch} | ${Math.round(d.jsonBytesPerBatch / 1024)} | ${d.generateMsPerBatch.p50} | ${d.validateMsPerBatch.p50} | ${d.connectMs.p50} | ${cpu(d.connectCpuMs)} | ${d.storeMsPerBatch.p50} | ${cpu(d.storeCpuMs)} |`,
      );
    }
  }
  if (report.latency) {
    const l = report.latency;
    lines.push(
      "",
      `Request to row visible under npm start (wrangler dev, embedded Postgres, demo-credit-risk with an XGBoost shadow), ${l.requests} requests at ${l.achievedRate}/s; ms:`,
      "",
      "| measure | n | p50 | p95 | max | missing after grace |",
      "|---|---:|---:|---:|---:|---:|",
      `| served row: stored_at − send | ${l.servedRow.storedAtMinusSendMs.n} | ${f(l.servedRow.storedAtMinusSendMs.p50)} | ${f(l.servedRow.storedAtMinusSendMs.p95)} | ${f(l.servedRow.storedAtMinusSendMs.max)} | ${l.servedRow.missingAfterGrace} |`,
      `| served row: answer of the first poll showing it − send | ${l.servedRow.pollObservedMinusSendMs.n} | ${f(l.servedRow.pollObservedMinusSendMs.p50)} | ${f(l.servedRow.pollObservedMinusSendMs.p95)} | ${f(l.servedRow.pollObservedMinusSendMs.max)} | ${l.servedRow.missingAfterGrace} |`,
      `| shadow row: stored_at − send | ${l.shadowRow.storedAtMinusSendMs.n} | ${f(l.shadowRow.storedAtMinusSendMs.p50)} | ${f(l.shadowRow.storedAtMinusSendMs.p95)} | ${f(l.shadowRow.storedAtMinusSendMs.max)} | ${l.shadowRow.missingAfterGrace} |`,
      `| response (send → last byte) | ${l.responses.ms.n} | ${f(l.responses.ms.p50)} | ${f(l.responses.ms.p95)} | ${f(l.responses.ms.max)} | – |`,
      "",
      `Consumer batches during the run: ${l.consumer.batches}, messages per batch p50 ${l.consumer.messagesPerBatch.p50} (max ${l.consumer.messagesPerBatch.max}); failed stores ${l.consumer.storeFailed}; failed requests ${l.responses.failed}.`,
    );
  }
  return lines.join("\n");
}

async function run(): Promise<void> {
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      console.error(`\n${signal}: stopping`);
      cleanUp().finally(() => process.exit(130));
    });
  }
  process.on("exit", cleanUpNow);
  try {
    await main();
  } catch (error) {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exitCode = 1;
  } finally {
    await cleanUp();
  }
}

async function main(): Promise<void> {
  const settings = knobs();
  const startedAt = performance.now();
  const loadAtStart = os.loadavg();
  if ((loadAtStart[0] ?? 0) > os.availableParallelism() / 2)
    say(
      `Load average ${loadAtStart[0]?.toFixed(2)} on ${os.availableParallelism()} CPUs: something else is running, expect noisy figures.`,
    );
  const runId = Date.now().toString(36);

  let throughput: ThroughputReport | null = null;
  const loadAverages: Record<string, number[]> = { start: loadAtStart.map((v) => round(v, 2)) };
  if (settings.parts.includes("throughput")) {
    throughput = {};
    say("Bundling the consumer (functions/queue/prediction-logs.ts) for Node...");
    const consumer = await loadConsumer();
    const restore = captureConsumerLogs();
    try {
      for (const name of settings.databases) {
        say(`Throughput on ${name}:`);
        const database = await openBenchDatabase(name);
        if ("skipped" in database) {
          say(`  skipped: ${database.skipped}`);
          throughput[name] = database;
          continue;
        }
        try {
          const result = await throughputFor(consumer, database, settings, runId);
          throughput[name] = {
            description: database.description,
            serverVersion: database.serverVersion,
            settings: database.settings,
            ...result,
          };
        } finally {
          await database.close();
        }
      }
    } finally {
      restore();
    }
    loadAverages.afterThroughput = os.loadavg().map((v) => round(v, 2));
  }

  let latencyResult: Awaited<ReturnType<typeof latency>> | null = null;
  if (settings.parts.includes("latency")) {
    latencyResult = await latency(settings);
    await devServer?.stop();
    devServer = undefined;
    loadAverages.end = os.loadavg().map((v) => round(v, 2));
  }

  const cpus = os.cpus();
  const targets = [
    ...Object.entries(throughput ?? {}).flatMap(([name, r]) =>
      "skipped" in r
        ? []
        : r.configs.map((c) => ({
            target: `rows/s stored, ${name}, ${c.requestsPerMessage} requests per message, ${c.concurrency} in flight`,
            limit: ">= 20000",
            measured: c.rowsPerSecond,
            met: c.rowsPerSecond >= 20_000,
          })),
    ),
    ...(latencyResult
      ? [
          {
            target: "request to served row visible, p95 ms (stored_at − send)",
            limit: "<= 4000",
            measured: latencyResult.servedRow.storedAtMinusSendMs.p95,
            met: latencyResult.servedRow.storedAtMinusSendMs.p95 <= 4000,
          },
          {
            target:
              "request to served row visible, p95 ms (answer of the first poll showing it − send)",
            limit: "<= 4000",
            measured: latencyResult.servedRow.pollObservedMinusSendMs.p95,
            met: latencyResult.servedRow.pollObservedMinusSendMs.p95 <= 4000,
          },
        ]
      : []),
  ];
  const report = {
    benchmark: "ingest",
    description:
      "(1) Prediction rows stored per second by the log consumer's own code (functions/queue/prediction-logs.ts consumePredictionLogs, bundled for Node with esbuild, unchanged), called with 100-message batches and an env with DATABASE_URL and DATABASE_WS_PROXY, so it uses the Neon driver (WebSocket from the `ws` package) over the project's local WebSocket endpoint and opens a pool per batch as in the Worker; `in flight` batches are stored concurrently by that many loops in this process. A window counts the rows of batches acked within it (after a 0.5 s ramp); configurations are interleaved per round. Rows = rows in `predictions` (each also writes a `prediction_refs` row). Exactly once: after the windows a few stored batches are delivered again, then the rows of the configuration's model are counted in both tables and compared with the rows of every acked batch and with the consumer's own counts. (2) Under npm start (wrangler dev), time from sending POST /v1/models/demo-credit-risk/predict to its prediction row in Postgres: stored_at (now() of the inserting transaction) minus the send time, both this machine's wall clock; and the time the first poll that returned the row was answered (an upper bound on visibility; polls every 100 ms). Quantiles: linear interpolation between closest ranks.",
    date: new Date().toISOString(),
    ...sourceRevision(),
    durationSeconds: round((performance.now() - startedAt) / 1000),
    machine: {
      cpuModel: cpus[0]?.model ?? "unknown",
      cpus: cpus.length,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      memoryGiB: round(os.totalmem() / 2 ** 30),
      node: process.version,
      wrangler: wranglerVersion(),
      loadAverage: loadAverages,
      note: "Shared 2-vCPU machine: the consumer loops, the WebSocket endpoint, Postgres (and in part 2 wrangler, workerd and the load generator) share the same two cores, and other people's test runs may have been running at the same time (see loadAverage). CPU cores columns (median over windows, from /proc): this process (the consumer), the child serving the WebSocket endpoint (the bridge; for embedded, PGlite itself), the throwaway Postgres cluster (postmaster, backends; its CPU is counted when a backend ends), and other = whole machine − those, i.e. whatever else was running. Quiet windows and noisy ones are both in the medians.",
    },
    setup: {
      ...settings,
      batchMessages: BATCH_MESSAGES,
      rampMs: RAMP_MS,
      redeliveredBatchesPerConfiguration: REDELIVERED_BATCHES,
      messages:
        "seeded stream: each request has 1 row (75%), 2-8 (20%) or 10-40 (5%); 16 features per row (amounts, integers, flags, categories), a canonical prediction {label, score, probabilities}, 3 attributes, a 64-hex key HMAC (90%), 1% timeouts without prediction; a served message per request and, for half of them, a shadow message with the rows of one (75%) or two shadow versions",
      latencyRequests:
        "single-row requests with varied inputs, a bucketing key and two attributes; open loop (sent on schedule, not waiting for answers), keep-alive connections; 10 warm-up requests first, stored before the measured run",
    },
    throughput,
    /** The consumer's own log lines in part 1 other than one prediction_logs.stored per batch. */
    consumerLogs: {
      storeFailed: consumerLogs.failed,
      other: consumerLogs.other,
      examples: consumerLogs.examples,
    },
    latency: latencyResult,
    targets,
    ok:
      Object.values(throughput ?? {}).every(
        (r) => "skipped" in r || r.configs.every((c) => c.exactlyOnce.ok),
      ) &&
      (latencyResult === null ||
        (latencyResult.servedRow.missingAfterGrace === 0 &&
          latencyResult.responses.failed === 0 &&
          latencyResult.servedRow.negative === 0)),
  };
  const table = markdown(report, settings);
  const written = writeResult("ingest", report);
  if (!smoke) {
    say(`\n${table}`);
    say("\n| target | limit | measured | met |\n|---|---:|---:|:---:|");
    for (const t of targets)
      say(`| ${t.target} | ${t.limit} | ${t.measured} | ${t.met ? "yes" : "no"} |`);
    say(`\nWrote ${written} (run took ${report.durationSeconds} s)`);
    if (!report.ok) {
      console.error("Rows went missing, were stored twice, or requests failed; see the report.");
      process.exitCode = 1;
    }
    return;
  }

  const checks = smokeChecks("bench:ingest");
  if (throughput) {
    for (const [name, result] of Object.entries(throughput)) {
      if ("skipped" in result) {
        checks.check(`the consumer ran on ${name}`, false, result.skipped);
        continue;
      }
      for (const c of result.configs) {
        const e = c.exactlyOnce;
        checks.check(
          `${name}, ${c.requestsPerMessage} requests per message, ${c.concurrency} in flight: every row stored exactly once`,
          e.ok && e.produced > 0 && e.redeliveredBatches > 0,
          `${e.predictionsRows} predictions and ${e.predictionRefsRows} refs rows for ${e.produced} results; ${e.insertedByRedelivery} inserted by ${e.redeliveredBatches} redelivered batches`,
        );
      }
    }
  }
  if (latencyResult) {
    const l = latencyResult;
    checks.check(
      "under npm start, every prediction was answered 200",
      l.responses.failed === 0 && l.responses.ok === l.requests && l.requests > 0,
      `${l.responses.ok} of ${l.requests}${l.responses.examples[0] ? `, e.g. ${l.responses.examples[0]}` : ""}`,
    );
    checks.check(
      "under npm start, each prediction's served and shadow rows were stored",
      l.predictionIds === l.requests &&
        l.servedRow.missingAfterGrace === 0 &&
        l.shadowRow.missingAfterGrace === 0 &&
        l.consumer.batches > 0,
      `${l.predictionIds} predictions, ${l.servedRow.missingAfterGrace} served and ${l.shadowRow.missingAfterGrace} shadow rows missing, ${l.consumer.batches} consumer batches`,
    );
  }
  checks.finish();
}

// Last, once every declaration above is in place.
if (process.argv.includes("--serve-database")) await serveDatabase();
else await run();
