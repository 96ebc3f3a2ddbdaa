// `npm run bench:monitoring`: the drift and data-quality job over one
// 15-minute window of a million results with 20 features, on Debian's
// PostgreSQL, to show that a window that size fits one invocation.
//
// A throwaway cluster (scripts/lib/temp-postgres.ts; password login, as the
// driver logs in to Neon) is migrated and filled inside Postgres
// (generate_series): BENCH_ROWS served results of one version in one window,
// 14 numeric features (normal, lognormal, integer counts) and 6 categorical
// ones (strings and a boolean), 1% missing values; features f01-f04 drift
// (shifted by half a standard deviation, scaled, a category's share moved).
// The version's baseline is built from BENCH_BASELINE_ROWS rows drawn in
// this process from the undrifted distributions, by the project's own code
// (shared/monitoring/baseline.ts), once with 1,000 rows (KS and chi-square,
// exact from counts) and once with 5,000 (Wasserstein and Jensen-Shannon
// from the grid). The job (functions/jobs/monitoring.ts runMonitoring,
// bundled for Node unchanged, the Neon driver over the project's WebSocket
// bridge in this process) runs BENCH_RUNS times per baseline. Measured per
// run: wall time; CPU time of this process (the job's JavaScript, the driver
// and the bridge: an upper bound of what the Worker would spend) and its
// peak heap growth, against the Worker's limits (CPU time per invocation, 128
// MB of memory); Postgres' CPU. Checked: the drifted features are flagged;
// stable ones flagged by chance are listed.
//
// Writes bench/results/monitoring.json and prints a markdown table. Knobs:
// BENCH_ROWS (1000000), BENCH_RUNS (3). BENCH_SMOKE=1: a smoke run (20,000
// results, one run per baseline) on DATABASE_URL's server in a throwaway
// database, or else on the embedded PGlite, which checks that the window was
// filled, that each run succeeded with a drift result for every feature and
// that the drifted features were flagged, and writes no result file.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Pool } from "@neondatabase/serverless";
import { WebSocket } from "ws";
import {
  bundleWorkerModules,
  numberKnob,
  processTreeCpuSeconds,
  quantile,
  smoke,
  smokeChecks,
  sourceRevision,
  writeResult,
} from "../lib/bench-stats.ts";
import { freePort } from "../lib/dev-server.ts";
import { isLoopbackUrl } from "../lib/environment.ts";
import { type LocalDatabase, startBridge, startEmbeddedDatabase } from "../lib/local-db.ts";
import { configureNodeDriver, execute, migrateDatabase } from "../lib/migrate.ts";
import { findPostgresBin, startTempPostgres, type TempPostgres } from "../lib/temp-postgres.ts";
import { mulberry32, normal } from "../lib/traffic/random.ts";

const rows = numberKnob("BENCH_ROWS", 1_000_000, 20_000);
const runs = numberKnob("BENCH_RUNS", 3, 1);
const MODEL = "bench-monitoring";
const VERSION = "v1";
/** A window with no hour or day ending near it, so each run computes only 15-minute windows. */
const WINDOW_START = Date.parse("2026-11-20T10:15:00.000Z");
const WINDOW_MS = 900_000;

// Features: f01..f14 numeric, c01..c06 categorical.
const numericNames = Array.from({ length: 14 }, (_, i) => `f${String(i + 1).padStart(2, "0")}`);
const categoricalNames = Array.from({ length: 6 }, (_, i) => `c${String(i + 1).padStart(2, "0")}`);
const categories = ["north", "south", "east", "west", "central"];
const DRIFTED = ["f01", "f02", "c01"];

const inputSchema = {
  type: "object",
  properties: Object.fromEntries([
    ...numericNames.map((name, i) => [name, { type: i % 3 === 2 ? "integer" : "number" }]),
    ...categoricalNames.map((name, i) =>
      i === 5 ? [name, { type: "boolean" }] : [name, { type: "string", enum: categories }],
    ),
  ]),
};

/** The undrifted distributions, in SQL (one row) and in JavaScript (the baseline's rows). */
function numericSql(i: number, drifted: boolean): string {
  const z = "sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())";
  const name = numericNames[i] as string;
  if (i % 3 === 2) return `floor(-ln(1 - random()) * ${3 + i})`; // counts
  if (i % 3 === 1) {
    const scale = name === "f02" && drifted ? 1.3 : 1;
    return `round((exp(${10 + i * 0.1} + 0.5 * ${z}) * ${scale})::numeric, 2)`;
  }
  const shift = name === "f01" && drifted ? 0.5 : 0;
  return `round((${100 * (i + 1)} + ${10 * (i + 1)} * (${z} + ${shift}))::numeric, 3)`;
}

function numericJs(i: number, random: () => number): number {
  if (i % 3 === 2) return Math.floor(-Math.log(1 - random()) * (3 + i));
  if (i % 3 === 1)
    return Math.round(Math.exp(10 + i * 0.1 + 0.5 * normal(random, 0, 1)) * 100) / 100;
  return Math.round((100 * (i + 1) + 10 * (i + 1) * normal(random, 0, 1)) * 1000) / 1000;
}

const WEIGHTS = [0.35, 0.25, 0.2, 0.15, 0.05];
const DRIFTED_WEIGHTS = [0.2, 0.25, 0.2, 0.15, 0.2];

function categorySql(weights: number[]): string {
  // width_bucket over the cumulative weights: random() is drawn once per row.
  const cumulative: number[] = [];
  let sum = 0;
  for (const w of weights.slice(0, -1)) {
    sum += w;
    cumulative.push(Number(sum.toFixed(6)));
  }
  return `(ARRAY[${categories.map((c) => `'${c}'`).join(", ")}])[1 + width_bucket(random(), ARRAY[${cumulative.join(", ")}]::float8[])]`;
}

function categoryJs(random: () => number): string {
  const u = random();
  let cumulative = 0;
  for (let k = 0; k < WEIGHTS.length; k++) {
    cumulative += WEIGHTS[k] as number;
    if (u < cumulative) return categories[k] as string;
  }
  return categories[4] as string;
}

function inputsSql(drifted: boolean): string {
  const pairs: string[] = [];
  numericNames.forEach((name, i) => {
    pairs.push(`'${name}', CASE WHEN random() < 0.01 THEN NULL ELSE ${numericSql(i, drifted)} END`);
  });
  categoricalNames.forEach((name, i) => {
    const value =
      i === 5
        ? "random() < 0.3"
        : categorySql(drifted && name === "c01" ? DRIFTED_WEIGHTS : WEIGHTS);
    pairs.push(`'${name}', CASE WHEN random() < 0.01 THEN NULL ELSE ${value} END`);
  });
  return `jsonb_build_object(${pairs.join(", ")})`;
}

function baselineRow(random: () => number): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  numericNames.forEach((name, i) => {
    row[name] = random() < 0.01 ? null : numericJs(i, random);
  });
  categoricalNames.forEach((name, i) => {
    row[name] = random() < 0.01 ? null : i === 5 ? random() < 0.3 : categoryJs(random);
  });
  return row;
}

// ---------------------------------------------------------------- the job's code

interface JobModule {
  runMonitoring(
    env: Record<string, string>,
    now: Date,
  ): Promise<{ windows: number; results: number; runId: number }>;
  baselineFromRows(
    schema: unknown,
    task: string,
    rows: Record<string, unknown>[],
    predictions: Record<string, unknown>[] | undefined,
    meta: { createdAt: string; createdBy: string },
  ): unknown;
  neonConfig: { webSocketConstructor: unknown };
}

let tempPostgres: TempPostgres | undefined;
let workDir: string | undefined;

async function loadJob(): Promise<JobModule> {
  workDir = mkdtempSync(join(os.tmpdir(), "airlock-bench-monitoring-"));
  const outfile = join(workDir, "job.mjs");
  await bundleWorkerModules(
    `export { runMonitoring } from "./functions/jobs/monitoring.ts";
export { baselineFromRows } from "./shared/monitoring/baseline.ts";
export { neonConfig } from "@neondatabase/serverless";`,
    outfile,
  );
  const job = (await import(outfile)) as JobModule;
  job.neonConfig.webSocketConstructor = WebSocket;
  return job;
}

interface RunSample {
  wallMs: number;
  processCpuMs: number;
  peakHeapGrowthMiB: number;
  postgresCpuMs: number;
  results: number;
}

async function measure(job: JobModule, env: Record<string, string>): Promise<RunSample> {
  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  let peak = heapBefore;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().heapUsed);
  }, 20);
  const pgBefore = processTreeCpuSeconds(tempPostgres?.serverPid());
  const cpuBefore = process.cpuUsage();
  const t0 = performance.now();
  const report = await job.runMonitoring(env, new Date(WINDOW_START + WINDOW_MS + 60_000));
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpuBefore);
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().heapUsed);
  const pgAfter = processTreeCpuSeconds(tempPostgres?.serverPid());
  return {
    wallMs: Math.round(wallMs),
    processCpuMs: Math.round((cpu.user + cpu.system) / 1000),
    peakHeapGrowthMiB: Math.round(((peak - heapBefore) / 2 ** 20) * 10) / 10,
    postgresCpuMs: Math.round((pgAfter - pgBefore) * 1000),
    results: report.results,
  };
}

async function query(
  target: { databaseUrl: string; wsProxy: string },
  statement: string,
): Promise<unknown[]> {
  configureNodeDriver(target.wsProxy);
  const pool = new Pool({ connectionString: target.databaseUrl, max: 1 });
  try {
    return (await pool.query(statement)).rows;
  } finally {
    await pool.end();
  }
}

const median = (values: number[]) =>
  quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );

/**
 * Where the window goes: a throwaway cluster (a full run); for a smoke run,
 * a throwaway database on DATABASE_URL's server, or else the embedded PGlite.
 */
async function openDatabase(): Promise<{
  databaseUrl: string;
  endpoint: LocalDatabase;
  kind: string;
  close(): Promise<void>;
}> {
  const server = process.env.DATABASE_URL;
  if (smoke && !server) {
    const endpoint = await startEmbeddedDatabase({});
    return {
      databaseUrl: endpoint.databaseUrl,
      endpoint,
      kind: "embedded",
      close: () => endpoint.close(),
    };
  }
  if (smoke && server) {
    if (!isLoopbackUrl(server))
      throw new Error(
        "bench:monitoring runs against a local Postgres; DATABASE_URL points elsewhere",
      );
    const endpoint = await startBridge({ databaseUrl: server });
    const name = `airlock_bench_monitoring_${Date.now()}_${process.pid}`;
    const admin = { databaseUrl: server, wsProxy: endpoint.wsProxy };
    await execute(admin, `CREATE DATABASE ${name}`);
    const url = new URL(server);
    url.pathname = `/${name}`;
    return {
      databaseUrl: url.toString(),
      endpoint,
      kind: "external",
      close: async () => {
        await execute(admin, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(
          (error: unknown) => console.error("drop database:", error),
        );
        await endpoint.close();
      },
    };
  }
  const bin = findPostgresBin();
  if (!bin) throw new Error("bench:monitoring needs Debian's postgresql (initdb not found)");
  tempPostgres = await startTempPostgres({ bin, port: await freePort(), auth: "password" });
  const endpoint = await startBridge({ databaseUrl: tempPostgres.databaseUrl });
  return {
    databaseUrl: tempPostgres.databaseUrl,
    endpoint,
    kind: "throwaway cluster",
    close: () => endpoint.close(),
  };
}

async function main(): Promise<void> {
  const started = performance.now();
  const database = await openDatabase();
  const target = { databaseUrl: database.databaseUrl, wsProxy: database.endpoint.wsProxy };
  configureNodeDriver(target.wsProxy);
  try {
    await migrateDatabase(target);
    const [{ version: serverVersion } = { version: "unknown" }] = (await query(
      target,
      "SELECT version()",
    )) as { version: string }[];
    const job = await loadJob();
    const env = { DATABASE_URL: target.databaseUrl, DATABASE_WS_PROXY: target.wsProxy };
    console.log(`Filling one window with ${rows.toLocaleString("en")} results...`);
    const day = new Date(WINDOW_START).toISOString().slice(0, 10);
    await execute(target, `SELECT airlock_ensure_day_partitions('predictions', '${day}'::date, 1)`);
    await execute(
      target,
      `INSERT INTO models (name, task, owner, description, input_schema, classes, positive_class, fallback)
       VALUES ('${MODEL}', 'classification', 'bench@example.com', 'Synthetic', '${JSON.stringify(inputSchema)}',
         '["no","yes"]', 'yes', '{"kind":"none"}')`,
    );
    await execute(
      target,
      `INSERT INTO model_versions (model_id, version, upstream, upstream_sha256, model_card, created_by)
       SELECT id, '${VERSION}', '{"kind":"http","url":"https://models.example.com/x","protocol":"json","timeoutMs":500}',
         repeat('0', 64), '{}', 'bench' FROM models WHERE name = '${MODEL}'`,
    );
    const fillStart = performance.now();
    const chunk = 100_000;
    for (let done = 0; done < rows; done += chunk) {
      const n = Math.min(chunk, rows - done);
      // The first half of the window as in the baseline, the second half drifted;
      // seeded, so every run of the benchmark stores the same values.
      await execute(
        target,
        `SELECT setseed(${((done / chunk) % 100) / 100});
         INSERT INTO predictions (prediction_id, role, version, created_at, request_id, model, inputs,
           prediction, attributes, key_hmac, latency_ms, status, error_code, state_version)
         SELECT gen_random_uuid()::text, 'served', '${VERSION}',
           to_timestamp(${WINDOW_START / 1000} + (${done} + g) * ${WINDOW_MS / 1000 / rows}),
           'bench', '${MODEL}',
           CASE WHEN ${done} + g > ${rows / 2} THEN ${inputsSql(true)} ELSE ${inputsSql(false)} END,
           jsonb_build_object('label', CASE WHEN random() < 0.2 THEN 'yes' ELSE 'no' END, 'score', random()),
           '{}', NULL, 1, 'ok', NULL, 1
         FROM generate_series(1, ${n}) AS g`,
      );
      process.stdout.write(`  ${(done + n).toLocaleString("en")}\r`);
    }
    await execute(target, "ANALYZE predictions");
    const fillSeconds = (performance.now() - fillStart) / 1000;
    console.log(smoke ? "\nFilled." : `\nFilled in ${fillSeconds.toFixed(0)} s.`);

    const [{ n: filled } = { n: 0 }] = (await query(
      target,
      `SELECT count(*)::int AS n FROM predictions WHERE model = '${MODEL}'`,
    )) as { n: number }[];

    const scenarios: Record<string, Scenario> = {};
    for (const baselineRows of [1000, 5000]) {
      const random = mulberry32(20261125 + baselineRows);
      const baseline = job.baselineFromRows(
        inputSchema,
        "classification",
        Array.from({ length: baselineRows }, () => baselineRow(random)),
        undefined,
        { createdAt: new Date().toISOString(), createdBy: "bench" },
      );
      await execute(
        target,
        `UPDATE model_versions SET baseline = '${JSON.stringify(baseline).replaceAll("'", "''")}'::jsonb
         WHERE version = '${VERSION}'`,
      );
      const samples: RunSample[] = [];
      for (let r = 0; r < runs; r++) {
        const sample = await measure(job, env);
        samples.push(sample);
        console.log(
          smoke
            ? `  baseline ${baselineRows} rows, run ${r + 1}: ${sample.results} results`
            : `  baseline ${baselineRows} rows, run ${r + 1}: ${sample.wallMs} ms wall, ${sample.processCpuMs} ms CPU here, ${sample.postgresCpuMs} ms Postgres CPU, heap +${sample.peakHeapGrowthMiB} MiB`,
        );
      }
      const flagged = (await query(
        target,
        `SELECT dimension, status, details->>'method' AS method FROM monitoring_results
         WHERE model = '${MODEL}' AND metric = 'drift' AND window_start = to_timestamp(${WINDOW_START / 1000})
           AND window_seconds = 900 ORDER BY dimension`,
      )) as { dimension: string; status: string; method: string }[];
      const drifting = flagged.filter((f) => f.status === "alert").map((f) => f.dimension);
      scenarios[`baseline${baselineRows}`] = {
        baselineRows,
        driftResults: flagged.length,
        methods: [...new Set(flagged.map((f) => f.method))],
        runs: samples,
        median: {
          wallMs: median(samples.map((s) => s.wallMs)),
          processCpuMs: median(samples.map((s) => s.processCpuMs)),
          postgresCpuMs: median(samples.map((s) => s.postgresCpuMs)),
          peakHeapGrowthMiB: median(samples.map((s) => s.peakHeapGrowthMiB)),
        },
        drifting,
        expectedDrifting: DRIFTED,
        driftedFlagged: DRIFTED.every((f) => drifting.includes(f)),
        // Each stable feature is flagged by chance at the test's level (p < 0.05 for KS and
        // chi-square): a few are expected among 17 with the smaller baseline.
        stableFlagged: drifting.filter((f) => !DRIFTED.includes(f)),
      };
    }
    const report = {
      benchmark: "monitoring",
      description:
        "The drift and data-quality job (runMonitoring, bundled for Node unchanged) over one 15-minute window of served results of one version with 20 features, in a throwaway PostgreSQL cluster through the project's WebSocket bridge; wall time, this process's CPU (the job's JavaScript, the Neon driver and the bridge) and peak heap growth, and Postgres' CPU, per run; medians over runs.",
      date: new Date().toISOString(),
      ...sourceRevision(),
      durationSeconds: Math.round((performance.now() - started) / 1000),
      database: database.kind,
      machine: {
        cpuModel:
          os
            .cpus()[0]
            ?.model.trim()
            .replace(/\s+\d+-Core Processor$/, "") ?? "unknown",
        cpus: os.cpus().length,
        node: process.version,
        postgres: tempPostgres?.version ?? serverVersion,
        loadAverageAtEnd: os.loadavg().map((v) => Math.round(v * 100) / 100),
      },
      setup: {
        rows,
        features: { numeric: numericNames.length, categorical: categoricalNames.length },
        drifted: DRIFTED,
        missing: "1% per feature",
        runsPerBaseline: runs,
        fillSeconds: Math.round(fillSeconds),
        workerLimits:
          "Cron invocations: 30 s of CPU by default (up to 5 min configurable), 15 min of wall time, 128 MB of memory; waiting on Postgres is not CPU time.",
      },
      scenarios,
    };
    const written = writeResult("monitoring", report);
    if (!smoke) {
      console.log(
        [
          "",
          `| baseline rows | methods | wall ms (median) | CPU ms here | Postgres CPU ms | peak heap growth MiB | drifted flagged | stable flagged |`,
          "|---:|---|---:|---:|---:|---:|:---:|---|",
          ...Object.values(scenarios).map(
            (s) =>
              `| ${s.baselineRows} | ${s.methods.join(", ")} | ${s.median.wallMs} | ${s.median.processCpuMs} | ${s.median.postgresCpuMs} | ${s.median.peakHeapGrowthMiB} | ${s.driftedFlagged ? "all" : "NOT ALL"} | ${s.stableFlagged.join(", ") || "none"} |`,
          ),
          "",
          `Wrote ${written} (${report.durationSeconds} s).`,
        ].join("\n"),
      );
      return;
    }

    const checks = smokeChecks("bench:monitoring");
    checks.check(`the window holds ${rows} results`, filled === rows, `${filled} rows`);
    const [{ n: succeeded } = { n: 0 }] = (await query(
      target,
      "SELECT count(*)::int AS n FROM monitoring_runs WHERE status = 'succeeded'",
    )) as { n: number }[];
    checks.check(
      "every run of the job succeeded",
      succeeded === 2 * runs,
      `${succeeded} of ${2 * runs} runs`,
    );
    for (const s of Object.values(scenarios)) {
      const features = numericNames.length + categoricalNames.length;
      checks.check(
        `baseline of ${s.baselineRows} rows: a drift result for every feature`,
        s.driftResults === features && s.runs.every((r) => r.results > 0),
        `${s.driftResults} of ${features} features (${s.methods.join(", ")})`,
      );
      checks.check(
        `baseline of ${s.baselineRows} rows: the drifted features flagged`,
        s.driftedFlagged,
        `flagged: ${s.drifting.join(", ") || "none"}`,
      );
    }
    checks.finish();
  } finally {
    await database.close().catch(() => {});
    tempPostgres?.stopNow();
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  }
}

interface Scenario {
  baselineRows: number;
  driftResults: number;
  methods: string[];
  runs: RunSample[];
  median: Omit<RunSample, "results">;
  drifting: string[];
  expectedDrifting: string[];
  driftedFlagged: boolean;
  stableFlagged: string[];
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    tempPostgres?.stopNow();
    process.exit(130);
  });
}
main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  tempPostgres?.stopNow();
  process.exit(1);
});
