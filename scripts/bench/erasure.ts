// `npm run bench:erasure`: what erasing one bucketing key costs in the
// prediction logs without an index on key_hmac (a bounded scan, one partition
// per step) and with one, and what such an index costs every insert.
//
// Volume (BENCH_DAYS 30 daily partitions of BENCH_ROWS_PER_DAY 40,000 results
// each, in `predictions` and in `prediction_refs`: 2.4 million rows, about
// 1.4 GB): chosen so the whole run, filling included, fits about ten minutes
// on 2 busy shared vCPUs. Rows are
// generated inside Postgres and shaped like real ones: 16 features (amounts,
// integers, flags, categories; drawn from a pool of 4,096 rows, as requests
// repeat), a prediction with probabilities, three attributes, 20% shadow
// results. key_hmac is a SHA-256 hex: none for 10% of the rows, one of a
// few heavy keys for 5% (one heavy key per 36,000 results: about 60 rows per
// day and table each), and otherwise one of a population sized so a typical
// key has about five rows in each table over the 30 days.
//
// One database is filled, vacuumed and analysed, then copied (CREATE
// DATABASE ... TEMPLATE), and the copy gets a btree index on key_hmac of each
// log table's partitioned parent, as a migration would add it. Then, round by
// round, in alternating order so that machine noise spreads evenly:
//   - find: each partition of both tables in turn, `SELECT prediction_id FROM
//     <partition> WHERE key_hmac = $1`, for a typical key and a heavy key (on
//     the copy also one statement per parent table);
//   - delete: each partition in turn, `DELETE ... WHERE ctid = ANY(ARRAY(
//     SELECT ctid ... WHERE key_hmac = $1 LIMIT n))` until a chunk comes back
//     short, for another typical and another heavy key (the same keys, so the
//     same rows, in both databases);
//   - insert: consumer-style statements of BENCH_BATCH_ROWS results (one jsonb
//     parameter, jsonb_to_recordset, INSERT ... ON CONFLICT DO NOTHING into
//     predictions and prediction_refs, as functions/queue/prediction-logs.ts
//     writes them) into today's partitions of both databases, alternating
//     between the two statement by statement.
// Every statement is timed from this process over the project's WebSocket
// bridge and the Neon driver (round trips included, as the Worker would pay
// them). Reported: medians over rounds, the scan/index ratios, the per-day
// cost extrapolated linearly to the full retention (90 days of predictions,
// 400 of prediction_refs) at the measured rows per day, the index's size per
// million rows, and a verdict computed from them.
//
// The server: DATABASE_URL's or TEST_DATABASE_URL's (a local Postgres), in two
// throwaway databases dropped at the end however the run ends; without either,
// a throwaway cluster of Debian's PostgreSQL. Writes
// bench/results/erasure.json and prints a markdown table. Knobs: BENCH_DAYS
// (30), BENCH_ROWS_PER_DAY (40000), BENCH_ROUNDS (12), BENCH_INSERT_BATCHES
// (statements per round and database, 12), BENCH_BATCH_ROWS (1000),
// BENCH_DELETE_CHUNK (500). BENCH_SMOKE=1: a smoke run (3 days of 2,000 rows,
// 2 rounds, chunks of 2 rows), which checks that both databases found the
// same rows, that deleted keys have no rows left, that every insert stored
// its rows and that every partition got the index, and writes no result file.
import { createHash, randomUUID } from "node:crypto";
import os from "node:os";
import { performance } from "node:perf_hooks";
import { Pool } from "@neondatabase/serverless";
import {
  numberKnob,
  quantile,
  sleep,
  smoke,
  smokeChecks,
  sourceRevision,
  writeResult,
} from "../lib/bench-stats.ts";
import { freePort } from "../lib/dev-server.ts";
import { isLoopbackUrl } from "../lib/environment.ts";
import { type LocalDatabase, redactUrl, startBridge } from "../lib/local-db.ts";
import { configureNodeDriver, migrateDatabase } from "../lib/migrate.ts";
import { findPostgresBin, startTempPostgres, type TempPostgres } from "../lib/temp-postgres.ts";
import { mulberry32 } from "../lib/traffic/random.ts";

const days = numberKnob("BENCH_DAYS", 30, 3);
const rowsPerDay = numberKnob("BENCH_ROWS_PER_DAY", 40_000, 2_000);
const rounds = numberKnob("BENCH_ROUNDS", 12, 2);
const insertBatches = numberKnob("BENCH_INSERT_BATCHES", 12, 2);
const batchRows = numberKnob("BENCH_BATCH_ROWS", 1000, 200);
const deleteChunk = numberKnob("BENCH_DELETE_CHUNK", 500, 2);

/** Retention of the log tables (functions/jobs/log-partitions.ts logRetentionDays). */
const RETENTION_DAYS = { predictions: 90, prediction_refs: 400 } as const;
const TABLES = ["predictions", "prediction_refs"] as const;
type Table = (typeof TABLES)[number];
/** Every log table with a key_hmac column gets the index on the copy, as a migration would add it. */
const INDEXED_TABLES = ["predictions", "prediction_refs", "rejected_requests"] as const;

// The verdict's rule: the index when it costs inserts little and makes lookups much faster.
const MAX_INSERT_SLOWDOWN = 0.1;
const MIN_LOOKUP_SPEEDUP = 10;

const totalRows = days * rowsPerDay;
const NULL_KEY_SHARE = 0.1;
const HEAVY_SHARE = 0.05;
const heavyKeys = Math.max(5, Math.round(totalRows / 36_000));
/** A typical key has about this many rows in each table over the filled days. */
const TYPICAL_ROWS_PER_KEY = 5;
const typicalKeys = Math.max(
  10,
  Math.round((totalRows * (1 - NULL_KEY_SHARE - HEAVY_SHARE)) / TYPICAL_ROWS_PER_KEY),
);
const INPUT_POOL = 4096;

const keyHmac = (kind: "typical" | "heavy", n: number) =>
  createHash("sha256").update(`${kind}:${n}`).digest("hex");
const keySql = (kind: string, count: number) =>
  `encode(sha256(('${kind}:' || floor(random() * ${count})::int)::bytea), 'hex')`;

// ---------------------------------------------------------------- databases

let tempPostgres: TempPostgres | undefined;
let bridge: LocalDatabase | undefined;
const pools = new Set<Pool>();
const created: string[] = [];
let adminUrl = "";
let cleaning: Promise<void> | undefined;

function connect(databaseUrl: string): Pool {
  const pool = new Pool({ connectionString: databaseUrl, max: 1 });
  pools.add(pool);
  return pool;
}

async function disconnect(pool: Pool): Promise<void> {
  pools.delete(pool);
  await pool.end().catch(() => {});
}

function databaseUrl(name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function admin(statement: string): Promise<void> {
  const pool = connect(adminUrl);
  try {
    await pool.query(statement);
  } finally {
    await disconnect(pool);
  }
}

/** The throwaway databases dropped, the bridge and any throwaway cluster stopped. */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const pool of [...pools]) await disconnect(pool);
    for (const name of created.splice(0)) {
      await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch((error: unknown) =>
        console.error(`could not drop database ${name}:`, error),
      );
    }
    await bridge?.close().catch(() => {});
    tempPostgres?.stopNow();
  })();
  return cleaning;
}

async function openServer(): Promise<{ kind: string; version: string }> {
  const server = process.env.DATABASE_URL || process.env.TEST_DATABASE_URL;
  if (server) {
    if (!isLoopbackUrl(server))
      throw new Error(
        `bench:erasure runs against a Postgres on this machine; ${redactUrl(server)} is elsewhere`,
      );
    adminUrl = server;
  } else {
    const bin = findPostgresBin();
    if (!bin)
      throw new Error(
        "bench:erasure needs a Postgres: set DATABASE_URL to a local server, or install Debian's postgresql",
      );
    tempPostgres = await startTempPostgres({ bin, port: await freePort(), auth: "password" });
    adminUrl = tempPostgres.databaseUrl;
  }
  bridge = await startBridge({ databaseUrl: adminUrl });
  configureNodeDriver(bridge.wsProxy);
  const pool = connect(adminUrl);
  try {
    const { rows } = await pool.query<{ server_version: string }>("SHOW server_version");
    return {
      kind: server ? "throwaway databases on DATABASE_URL's server" : "throwaway cluster",
      version: rows[0]?.server_version ?? "unknown",
    };
  } finally {
    await disconnect(pool);
  }
}

// ---------------------------------------------------------------- filling

const countries = ["DE", "FR", "NL", "ES", "IT", "PL", "SE", "US", "GB", "AT"];
const channels = ["web", "app", "pos", "phone"];
const segments = ["retail", "premium", "business", "student"];
const sqlArray = (items: string[]) => `(ARRAY[${items.map((i) => `'${i}'`).join(", ")}])`;
const pickSql = (items: string[]) =>
  `${sqlArray(items)}[1 + floor(random() * ${items.length})::int]`;

/** 16 features of a card-payment fraud model, as bench:ingest sends them. */
const inputsSql = `jsonb_build_object(
  'amount', round((random() * 2500)::numeric, 2), 'currency', 'EUR', 'country', ${pickSql(countries)},
  'merchant_category', 5000 + floor(random() * 1000)::int, 'channel', ${pickSql(channels)},
  'account_age_days', floor(random() * 4000)::int, 'txn_count_24h', floor(random() * 30)::int,
  'avg_amount_30d', round((random() * 800)::numeric, 2), 'distance_km', round((random() * 5000)::numeric, 3),
  'is_international', random() < 0.2, 'device_score', round(random()::numeric, 6),
  'hour_of_day', floor(random() * 24)::int, 'card_present', random() < 0.4,
  'velocity_1h', floor(random() * 8)::int, 'email_domain_risk', round(random()::numeric, 4),
  'customer_segment', ${pickSql(segments)})`;

function dayOf(offset: number): string {
  const day = new Date();
  day.setUTCHours(0, 0, 0, 0);
  day.setUTCDate(day.getUTCDate() + offset);
  return day.toISOString().slice(0, 10);
}

async function fill(pool: Pool): Promise<void> {
  for (const table of INDEXED_TABLES)
    await pool.query(
      `SELECT airlock_ensure_day_partitions('${table}', '${dayOf(-days)}'::date, ${days + 8})`,
    );
  await pool.query(
    `SELECT setseed(0.5);
     CREATE TABLE bench_inputs AS SELECT i, ${inputsSql} AS inputs FROM generate_series(0, ${INPUT_POOL - 1}) AS i;
     ALTER TABLE bench_inputs ADD PRIMARY KEY (i);
     ANALYZE bench_inputs`,
  );
  for (let d = 0; d < days; d++) {
    const day = dayOf(d - days);
    // Seeded per day: every run draws the same keys (prediction ids are random uuids).
    await pool.query(
      `SELECT setseed(${(d % 100) / 100 - 0.5});
       INSERT INTO predictions (prediction_id, role, version, created_at, request_id, model, inputs,
         prediction, attributes, key_hmac, latency_ms, status, error_code, state_version)
       SELECT gen_random_uuid()::text, CASE WHEN s.shadow THEN 'shadow' ELSE 'served' END,
         CASE WHEN s.shadow THEN 'v4' ELSE 'v3' END,
         '${day} 00:00:00+00'::timestamptz + s.g * interval '${86_400 / rowsPerDay} seconds',
         gen_random_uuid()::text, 'bench-fraud', b.inputs,
         jsonb_build_object('label', CASE WHEN s.score >= 0.5 THEN 'fraud' ELSE 'legit' END, 'score', s.score,
           'probabilities', jsonb_build_object('legit', 1 - s.score, 'fraud', s.score)),
         jsonb_build_object('tenant', 'tenant-' || floor(random() * 20)::int, 'channel', ${pickSql(channels)},
           'region', CASE WHEN random() < 0.5 THEN 'eu-west' ELSE 'eu-central' END),
         CASE WHEN s.u < ${NULL_KEY_SHARE} THEN NULL
           WHEN s.u < ${NULL_KEY_SHARE + HEAVY_SHARE} THEN ${keySql("heavy", heavyKeys)}
           ELSE ${keySql("typical", typicalKeys)} END,
         round((random() * 40)::numeric, 3), 'ok', NULL, 12
       FROM (SELECT g, random() AS u, random() < 0.2 AS shadow, round((random() ^ 3)::numeric, 6) AS score
             FROM generate_series(0, ${rowsPerDay - 1}) AS g) AS s
       JOIN bench_inputs b ON b.i = (s.g * 7919 + ${d * 131}) % ${INPUT_POOL}`,
    );
    await pool.query(
      `INSERT INTO prediction_refs (prediction_id, role, version, created_at, model, prediction,
         attributes, key_hmac, state_version)
       SELECT prediction_id, role, version, created_at, model, prediction, attributes, key_hmac, state_version
       FROM "predictions_p${day.replaceAll("-", "")}"`,
    );
    if (!smoke) process.stdout.write(`  day ${d + 1} of ${days}\r`);
  }
  await pool.query("DROP TABLE bench_inputs");
  // Old partitions have been vacuumed by the time anyone erases from them.
  await pool.query("VACUUM ANALYZE predictions, prediction_refs");
}

/** CREATE DATABASE ... TEMPLATE waits for the template's last backend to go. */
async function copyDatabase(template: string, name: string, fileCopy: boolean): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      created.push(name);
      await admin(
        `CREATE DATABASE ${name} TEMPLATE ${template}${fileCopy ? " STRATEGY FILE_COPY" : ""}`,
      );
      return;
    } catch (error) {
      created.pop();
      const code = (error as { code?: string }).code;
      if (code !== "55006" || attempt >= 50) throw error;
      await sleep(200);
    }
  }
}

// ---------------------------------------------------------------- measuring

interface Partition {
  table: Table;
  name: string;
  /** A day that was filled (not an empty day ahead, nor DEFAULT). */
  filled: boolean;
}

async function partitions(pool: Pool): Promise<Partition[]> {
  const first = dayOf(-days).replaceAll("-", "");
  const last = dayOf(-1).replaceAll("-", "");
  const list: Partition[] = [];
  for (const table of TABLES) {
    const { rows } = await pool.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = '${table}'::regclass ORDER BY c.relname`,
    );
    for (const { name } of rows) {
      const day = name.slice(-8);
      list.push({ table, name, filled: /^\d{8}$/.test(day) && day >= first && day <= last });
    }
  }
  return list;
}

interface Walk {
  /** Milliseconds per partition, in the order of `partitions`. */
  ms: number[];
  rows: number;
  statements: number;
}

async function findByPartition(pool: Pool, parts: Partition[], key: string): Promise<Walk> {
  const walk: Walk = { ms: [], rows: 0, statements: 0 };
  for (const part of parts) {
    const t0 = performance.now();
    const { rows } = await pool.query(
      `SELECT prediction_id FROM "${part.name}" WHERE key_hmac = $1`,
      [key],
    );
    walk.ms.push(performance.now() - t0);
    walk.rows += rows.length;
    walk.statements += 1;
  }
  return walk;
}

async function deleteByPartition(pool: Pool, parts: Partition[], key: string): Promise<Walk> {
  const walk: Walk = { ms: [], rows: 0, statements: 0 };
  for (const part of parts) {
    const t0 = performance.now();
    for (;;) {
      const result = await pool.query(
        `DELETE FROM "${part.name}" WHERE ctid = ANY(ARRAY(
           SELECT ctid FROM "${part.name}" WHERE key_hmac = $1 LIMIT ${deleteChunk}))`,
        [key],
      );
      walk.statements += 1;
      walk.rows += result.rowCount ?? 0;
      if ((result.rowCount ?? 0) < deleteChunk) break;
    }
    walk.ms.push(performance.now() - t0);
  }
  return walk;
}

/** With the index: one statement per parent table. */
async function findByParent(
  pool: Pool,
  key: string,
): Promise<{ ms: Record<Table, number>; rows: number }> {
  const ms = { predictions: 0, prediction_refs: 0 };
  let rows = 0;
  for (const table of TABLES) {
    const t0 = performance.now();
    const result = await pool.query(`SELECT prediction_id FROM ${table} WHERE key_hmac = $1`, [
      key,
    ]);
    ms[table] = performance.now() - t0;
    rows += result.rows.length;
  }
  return { ms, rows };
}

/**
 * The consumer's statement (functions/queue/prediction-logs.ts storeChunk) for results only,
 * with its check that a result's subject was not erased (shared/privacy/erasure.ts erasedRow).
 */
const INSERT_SQL = `
  WITH a AS MATERIALIZED (
    SELECT x.*, (EXISTS (SELECT 1 FROM erasure_tombstones t WHERE t.prediction_id = x.prediction_id)
      OR EXISTS (SELECT 1 FROM erased_keys k WHERE k.key_hmac = x.key_hmac
        AND (k.model IS NULL OR k.model = x.model) AND x.created_at <= k.before)) AS erased
    FROM jsonb_to_recordset($1::jsonb) AS x(prediction_id text, role text, version text,
      created_at timestamptz, request_id text, model text, inputs jsonb, prediction jsonb,
      attributes jsonb, key_hmac text, latency_ms double precision, status text, error_code text,
      state_version bigint)
  ), x AS MATERIALIZED (
    SELECT * FROM a WHERE NOT erased
  ), p AS (
    INSERT INTO predictions (prediction_id, role, version, created_at, request_id, model,
      inputs, prediction, attributes, key_hmac, latency_ms, status, error_code, state_version)
    SELECT prediction_id, role, version, created_at, request_id, model,
      coalesce(inputs, 'null'::jsonb), prediction, attributes, key_hmac, latency_ms, status,
      error_code, state_version
    FROM x
    ON CONFLICT DO NOTHING
    RETURNING 1
  ), r AS (
    INSERT INTO prediction_refs (prediction_id, role, version, created_at, model, prediction,
      attributes, key_hmac, state_version)
    SELECT prediction_id, role, version, created_at, model, prediction, attributes, key_hmac,
      state_version
    FROM x
    ON CONFLICT DO NOTHING
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM p)::int AS predictions, (SELECT count(*) FROM r)::int AS refs`;

/** Seeded consumer-style rows (as bench:ingest's messages): one jsonb parameter per statement. */
function insertBatchMaker(seed: number) {
  const random = mulberry32(seed);
  const pick = <T>(items: readonly T[]) => items[Math.floor(random() * items.length)] as T;
  return (): string => {
    const rows = [];
    const timestamp = new Date().toISOString();
    for (let i = 0; i < batchRows; i++) {
      const score = Math.round(random() ** 3 * 1e6) / 1e6;
      const u = random();
      const shadow = random() < 0.2;
      rows.push({
        prediction_id: randomUUID(),
        role: shadow ? "shadow" : "served",
        version: shadow ? "v4" : "v3",
        created_at: timestamp,
        request_id: randomUUID(),
        model: "bench-fraud",
        inputs: {
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
        },
        prediction: {
          label: score >= 0.5 ? "fraud" : "legit",
          score,
          probabilities: { legit: Math.round((1 - score) * 1e6) / 1e6, fraud: score },
        },
        attributes: {
          tenant: `tenant-${Math.floor(random() * 20)}`,
          channel: pick(channels),
          region: random() < 0.5 ? "eu-west" : "eu-central",
        },
        // Keys of their own, so that no deleted key gets rows again.
        key_hmac:
          u < NULL_KEY_SHARE
            ? null
            : createHash("sha256")
                .update(`inserted:${Math.floor(random() * typicalKeys)}`)
                .digest("hex"),
        latency_ms: Math.round(random() * 40_000) / 1000,
        status: "ok",
        error_code: null,
        state_version: 12,
      });
    }
    return JSON.stringify(rows);
  };
}

/**
 * The same statements into both databases, alternating statement by
 * statement, so that a busy moment of the machine falls on both alike.
 */
async function insertWindows(
  pools: Record<Config, Pool>,
  order: Config[],
  batches: string[],
): Promise<Record<Config, { ms: number; results: number; stored: number }>> {
  const windows = {
    scan: { ms: 0, results: 0, stored: 0 },
    index: { ms: 0, results: 0, stored: 0 },
  };
  for (const batch of batches) {
    for (const config of order) {
      const t0 = performance.now();
      const { rows } = await pools[config].query<{ predictions: number; refs: number }>(
        INSERT_SQL,
        [batch],
      );
      windows[config].ms += performance.now() - t0;
      windows[config].results += batchRows;
      windows[config].stored += Math.min(rows[0]?.predictions ?? 0, rows[0]?.refs ?? 0);
    }
  }
  return windows;
}

// ---------------------------------------------------------------- figures

const round1 = (value: number, digits = 2) => {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
};
const median = (values: number[]) =>
  quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

const CONFIGS = ["scan", "index"] as const;
type Config = (typeof CONFIGS)[number];
const KINDS = ["typical", "heavy"] as const;
type Kind = (typeof KINDS)[number];
const OPS = ["find", "delete"] as const;
type Op = (typeof OPS)[number];

interface WalkSample {
  round: number;
  key: string;
  rows: number;
  statements: number;
  /** Filled partitions of each table, and every partition visited. */
  filledMs: Record<Table, number>;
  totalMs: number;
  perPartitionMedianMs: Record<Table, number>;
}

function sampleOf(roundNo: number, key: string, parts: Partition[], walk: Walk): WalkSample {
  const of = (table: Table) =>
    walk.ms.filter((_, i) => parts[i]?.table === table && parts[i]?.filled);
  return {
    round: roundNo,
    key,
    rows: walk.rows,
    statements: walk.statements,
    filledMs: { predictions: sum(of("predictions")), prediction_refs: sum(of("prediction_refs")) },
    totalMs: sum(walk.ms),
    perPartitionMedianMs: {
      predictions: median(of("predictions")),
      prediction_refs: median(of("prediction_refs")),
    },
  };
}

function summarizeWalks(samples: WalkSample[]) {
  const perDay = (table: Table) => median(samples.map((s) => s.filledMs[table] / days));
  const fullRetentionMs =
    perDay("predictions") * RETENTION_DAYS.predictions +
    perDay("prediction_refs") * RETENTION_DAYS.prediction_refs;
  return {
    rowsMedian: median(samples.map((s) => s.rows)),
    statementsMedian: median(samples.map((s) => s.statements)),
    totalMs: round1(median(samples.map((s) => s.totalMs))),
    perPartitionMs: {
      predictions: round1(median(samples.map((s) => s.perPartitionMedianMs.predictions)), 3),
      prediction_refs: round1(
        median(samples.map((s) => s.perPartitionMedianMs.prediction_refs)),
        3,
      ),
    },
    perDayMs: {
      predictions: round1(perDay("predictions"), 3),
      prediction_refs: round1(perDay("prediction_refs"), 3),
    },
    fullRetentionMs: round1(fullRetentionMs, 1),
  };
}

async function indexSizes(pool: Pool) {
  const today = dayOf(0).replaceAll("-", "");
  const sizes: Record<string, unknown> = {};
  for (const table of TABLES) {
    const { rows } = await pool.query<{
      rows: string;
      heap: string;
      key_index: string;
      today_rows: string;
      today_key_index: string;
    }>(
      `SELECT
         (SELECT count(*) FROM ${table}) AS rows,
         (SELECT sum(pg_relation_size(relid)) FROM pg_partition_tree('${table}') WHERE isleaf) AS heap,
         (SELECT sum(pg_relation_size(relid)) FROM pg_partition_tree('${table}_key_hmac_idx') WHERE isleaf) AS key_index,
         (SELECT count(*) FROM "${table}_p${today}") AS today_rows,
         (SELECT sum(pg_relation_size(indexrelid)) FROM pg_index
            WHERE indrelid = '"${table}_p${today}"'::regclass
              AND indkey::text = (SELECT attnum::text FROM pg_attribute
                WHERE attrelid = '"${table}_p${today}"'::regclass AND attname = 'key_hmac')) AS today_key_index`,
    );
    const r = rows[0];
    const n = Number(r?.rows ?? 0);
    const todayRows = Number(r?.today_rows ?? 0);
    const mib = (bytes: number, count: number) => round1(bytes / 2 ** 20 / (count / 1e6), 1);
    sizes[table] = {
      rows: n,
      heapMiBPerMillionRows: mib(Number(r?.heap ?? 0), n),
      keyIndexMiB: round1(Number(r?.key_index ?? 0) / 2 ** 20, 1),
      keyIndexMiBPerMillionRows: mib(Number(r?.key_index ?? 0), n),
      /** Today's partition holds only rows inserted one statement at a time: the index as it grows in use. */
      todayRows,
      todayKeyIndexMiBPerMillionRows: todayRows
        ? mib(Number(r?.today_key_index ?? 0), todayRows)
        : null,
    };
  }
  return sizes as Record<
    Table,
    {
      rows: number;
      heapMiBPerMillionRows: number;
      keyIndexMiB: number;
      keyIndexMiBPerMillionRows: number;
      todayRows: number;
      todayKeyIndexMiBPerMillionRows: number | null;
    }
  >;
}

// ---------------------------------------------------------------- the run

async function main(): Promise<void> {
  const started = performance.now();
  const server = await openServer();
  const stamp = `${Date.now()}_${process.pid}`;
  const scanDb = `airlock_bench_erasure_${stamp}_scan`;
  const indexDb = `airlock_bench_erasure_${stamp}_index`;
  const fileCopy = Number.parseInt(server.version, 10) >= 15;

  created.push(scanDb);
  await admin(`CREATE DATABASE ${scanDb}`);
  await migrateDatabase({ databaseUrl: databaseUrl(scanDb), wsProxy: bridge?.wsProxy });
  console.log(
    `Filling ${days} days of ${rowsPerDay.toLocaleString("en")} results (predictions and prediction_refs)...`,
  );
  const fillStart = performance.now();
  let scan = connect(databaseUrl(scanDb));
  await fill(scan);
  await disconnect(scan);
  const fillSeconds = (performance.now() - fillStart) / 1000;
  const copyStart = performance.now();
  await copyDatabase(scanDb, indexDb, fileCopy);
  const copySeconds = (performance.now() - copyStart) / 1000;
  scan = connect(databaseUrl(scanDb));
  const index = connect(databaseUrl(indexDb));
  const indexBuildMs: Record<string, number> = {};
  for (const table of INDEXED_TABLES) {
    const t0 = performance.now();
    await index.query(`CREATE INDEX ${table}_key_hmac_idx ON ${table} USING btree (key_hmac)`);
    indexBuildMs[table] = Math.round(performance.now() - t0);
  }
  console.log(
    smoke
      ? "Filled and copied."
      : `\nFilled in ${fillSeconds.toFixed(0)} s, copied in ${copySeconds.toFixed(0)} s, indexed in ${(sum(Object.values(indexBuildMs)) / 1000).toFixed(1)} s.`,
  );

  const parts = await partitions(scan);
  const builtSizes = await indexSizes(index);
  const pools: Record<Config, Pool> = { scan, index };

  // Keys: each round finds one typical and one heavy key and deletes two others,
  // the same in both databases (which hold the same rows).
  const keyFor = (kind: Kind, op: Op, r: number) =>
    kind === "heavy"
      ? keyHmac("heavy", (2 * r + (op === "delete" ? 1 : 0)) % heavyKeys)
      : keyHmac("typical", (r * 7919 * 2 + (op === "delete" ? 7919 : 0)) % typicalKeys);

  const walks: Record<string, WalkSample[]> = {};
  const parentFinds: { round: number; kind: Kind; ms: Record<Table, number>; rows: number }[] = [];
  const inserts: Record<Config, { round: number; ms: number; results: number; stored: number }[]> =
    { scan: [], index: [] };
  const mismatches: string[] = [];
  // Round 0 warms the caches and connections and is not counted.
  for (let r = 0; r <= rounds; r++) {
    const order: Config[] = r % 2 === 0 ? ["scan", "index"] : ["index", "scan"];
    const rowsSeen: Record<string, number> = {};
    // The same statements for both databases, made before any is timed.
    const batches = Array.from({ length: insertBatches }, insertBatchMaker(r));
    for (const config of order) {
      const pool = pools[config];
      for (const kind of KINDS) {
        for (const op of OPS) {
          const key = keyFor(kind, op, r);
          const walk =
            op === "find"
              ? await findByPartition(pool, parts, key)
              : await deleteByPartition(pool, parts, key);
          rowsSeen[`${config} ${op} ${kind}`] = walk.rows;
          if (r > 0) {
            const name = `${config} ${op} ${kind}`;
            walks[name] = [...(walks[name] ?? []), sampleOf(r, key, parts, walk)];
          }
        }
        if (config === "index") {
          const parent = await findByParent(pool, keyFor(kind, "find", r));
          if (r > 0) parentFinds.push({ round: r, kind, ...parent });
          rowsSeen[`parent find ${kind}`] = parent.rows;
        }
      }
    }
    const windows = await insertWindows(pools, order, batches);
    for (const config of CONFIGS) {
      const window = windows[config];
      if (r > 0) inserts[config].push({ round: r, ...window });
      if (window.stored !== window.results)
        mismatches.push(`round ${r}, insert into ${config}: ${window.stored} of ${window.results}`);
    }
    for (const kind of KINDS)
      for (const op of OPS) {
        const a = rowsSeen[`scan ${op} ${kind}`];
        const b = rowsSeen[`index ${op} ${kind}`];
        if (a !== b) mismatches.push(`round ${r}, ${op} ${kind}: scan ${a} rows, index ${b}`);
      }
    for (const kind of KINDS)
      if (rowsSeen[`parent find ${kind}`] !== rowsSeen[`index find ${kind}`])
        mismatches.push(`round ${r}, find ${kind}: by parent and by partition differ`);
    if (!smoke) process.stdout.write(`  round ${r} of ${rounds}\r`);
  }

  // Deleted keys have no rows left in either database.
  let leftAfterDelete = 0;
  for (const config of CONFIGS)
    for (const kind of KINDS)
      for (const s of walks[`${config} delete ${kind}`] ?? [])
        leftAfterDelete += (await findByParent(pools[config], s.key)).rows;
  const sizes = await indexSizes(index);
  const indexedPartitions = await index.query<{ partitions: number; indexed: number }>(
    `SELECT count(*)::int AS partitions, count(x.indexrelid)::int AS indexed
     FROM pg_inherits i
     LEFT JOIN pg_index x ON x.indrelid = i.inhrelid AND x.indexrelid IN (
       SELECT relid FROM pg_partition_tree('predictions_key_hmac_idx')
       UNION ALL SELECT relid FROM pg_partition_tree('prediction_refs_key_hmac_idx')
       UNION ALL SELECT relid FROM pg_partition_tree('rejected_requests_key_hmac_idx'))
     WHERE i.inhparent IN ('predictions'::regclass, 'prediction_refs'::regclass, 'rejected_requests'::regclass)`,
  );

  // ---------------------------------------------------------------- the figures
  const lookups: Record<string, ReturnType<typeof summarizeWalks>> = {};
  for (const [name, samples] of Object.entries(walks)) lookups[name] = summarizeWalks(samples);
  const look = (config: Config, op: Op, kind: Kind) =>
    lookups[`${config} ${op} ${kind}`] as ReturnType<typeof summarizeWalks>;
  const ratios: Record<string, { measured: number; fullRetention: number }> = {};
  for (const op of OPS)
    for (const kind of KINDS) {
      const s = look("scan", op, kind);
      const i = look("index", op, kind);
      ratios[`${op} ${kind}`] = {
        measured: round1(s.totalMs / i.totalMs, 1),
        fullRetention: round1(s.fullRetentionMs / i.fullRetentionMs, 1),
      };
    }
  // One statement per parent plans and probes every partition: its cost grows with the
  // partitions, so it is extrapolated per partition, to one a day of retention.
  const partitionsOf = (table: Table) => parts.filter((p) => p.table === table).length;
  const parentFind = Object.fromEntries(
    KINDS.map((kind) => {
      const of = parentFinds.filter((p) => p.kind === kind);
      const ms = (table: Table) => median(of.map((p) => p.ms[table]));
      return [
        kind,
        {
          ms: round1(ms("predictions") + ms("prediction_refs")),
          msPerTable: {
            predictions: round1(ms("predictions")),
            prediction_refs: round1(ms("prediction_refs")),
          },
          fullRetentionMs: round1(
            (ms("predictions") / partitionsOf("predictions")) * RETENTION_DAYS.predictions +
              (ms("prediction_refs") / partitionsOf("prediction_refs")) *
                RETENTION_DAYS.prediction_refs,
            1,
          ),
        },
      ];
    }),
  ) as Record<Kind, { ms: number; msPerTable: Record<Table, number>; fullRetentionMs: number }>;
  const rate = (w: { ms: number; results: number }) => w.results / (w.ms / 1000);
  const pairedRatios = inserts.index.map((w, k) => rate(w) / rate(inserts.scan[k] ?? w));
  const insertFigures = {
    resultsPerSecond: {
      scan: Math.round(median(inserts.scan.map(rate))),
      index: Math.round(median(inserts.index.map(rate))),
    },
    /** index / no index, paired within each round; its median. */
    pairedRatio: round1(median(pairedRatios), 3),
    pairedRatioRange: [
      round1(quantile(Float64Array.from(pairedRatios).sort(), 0.25), 3),
      round1(quantile(Float64Array.from(pairedRatios).sort(), 0.75), 3),
    ],
    rowsPerResult: 2,
    resultsPerStatement: batchRows,
    statementsPerRound: insertBatches,
  };
  const insertSlowdown = round1(1 - insertFigures.pairedRatio, 3);
  // The index as it would be used: whichever of its two forms is faster.
  const scanFindFull = look("scan", "find", "typical").fullRetentionMs;
  const indexFindFull = Math.min(
    look("index", "find", "typical").fullRetentionMs,
    parentFind.typical.fullRetentionMs,
  );
  const lookupSpeedup = round1(scanFindFull / indexFindFull, 1);
  const useIndex = insertSlowdown < MAX_INSERT_SLOWDOWN && lookupSpeedup >= MIN_LOOKUP_SPEEDUP;
  const scanTypical = look("scan", "delete", "typical");
  const indexTypical = look("index", "delete", "typical");
  const verdict = {
    choice: useIndex ? "index" : "bounded scan",
    rule: `the index when inserts slow down by less than ${MAX_INSERT_SLOWDOWN * 100}% and finding a typical key over the full retention is at least ${MIN_LOOKUP_SPEEDUP} times faster; otherwise the bounded scan`,
    inputs: {
      insertSlowdown,
      maxInsertSlowdown: MAX_INSERT_SLOWDOWN,
      lookupSpeedupFullRetention: lookupSpeedup,
      minLookupSpeedup: MIN_LOOKUP_SPEEDUP,
      scanFindTypicalFullRetentionMs: scanFindFull,
      indexFindTypicalFullRetentionMs: indexFindFull,
      scanDeleteTypicalFullRetentionMs: scanTypical.fullRetentionMs,
      indexDeleteTypicalFullRetentionMs: indexTypical.fullRetentionMs,
      keyIndexMiBPerMillionRows: {
        predictions: sizes.predictions.todayKeyIndexMiBPerMillionRows,
        prediction_refs: sizes.prediction_refs.todayKeyIndexMiBPerMillionRows,
      },
    },
    message: `${useIndex ? "Index" : "Bounded scan"}: the key_hmac index slows inserts by ${(insertSlowdown * 100).toFixed(1)}% (limit ${MAX_INSERT_SLOWDOWN * 100}%; the middle half of the rounds ${(100 * (1 - (insertFigures.pairedRatioRange[1] ?? 0))).toFixed(1)}% to ${(100 * (1 - (insertFigures.pairedRatioRange[0] ?? 0))).toFixed(1)}%) and finds a typical key's rows over the full retention ${lookupSpeedup}x faster (${indexFindFull} ms against ${scanFindFull} ms by scanning; at least ${MIN_LOOKUP_SPEEDUP}x wanted), extrapolated from ${rowsPerDay.toLocaleString("en")} results a day.`,
  };

  const report = {
    benchmark: "erasure",
    description:
      "Finding and deleting one bucketing key's rows in the day-partitioned prediction logs, without an index on key_hmac (each partition scanned in turn: a bounded scan) and with a btree index on key_hmac of each partitioned parent, in two copies of the same data; and the rate of consumer-style inserts into both. Each statement timed from this process through the Neon driver and the project's WebSocket bridge (round trips included). Configurations alternate in order round by round; medians over rounds. Full retention: the cost per filled day, multiplied by 90 days of predictions and 400 of prediction_refs, i.e. linear extrapolation at the measured rows per day. Quantiles: linear interpolation between closest ranks.",
    date: new Date().toISOString(),
    ...sourceRevision(),
    durationSeconds: Math.round((performance.now() - started) / 1000),
    database: { kind: server.kind, version: server.version },
    machine: {
      cpuModel: os.cpus()[0]?.model.trim() ?? "unknown",
      cpus: os.cpus().length,
      node: process.version,
      loadAverageAtEnd: os.loadavg().map((v) => round1(v)),
      note: "Shared machine: Postgres, this process and the bridge share its cores with whatever else runs, including other test runs against the same server. The data fits in memory (warm caches): scans read from memory, not disk.",
    },
    setup: {
      days,
      rowsPerDay,
      rowsPerTable: totalRows,
      tables: TABLES,
      keys: {
        nullShare: NULL_KEY_SHARE,
        heavyShare: HEAVY_SHARE,
        heavyKeys,
        typicalKeys,
        typicalRowsPerKeyPerTable: TYPICAL_ROWS_PER_KEY,
        hmac: "SHA-256 hex (64 characters), as the Worker's HMAC-SHA-256",
      },
      rows: "16 features per row from a pool of 4,096 generated rows, a prediction {label, score, probabilities}, three attributes, 20% shadow results; prediction_refs holds the same results",
      partitionsVisited: parts.length,
      filledPartitions: parts.filter((p) => p.filled).length,
      rounds,
      deleteChunk,
      insertStatementsPerRound: insertBatches,
      resultsPerInsertStatement: batchRows,
      fillSeconds: Math.round(fillSeconds),
      copySeconds: Math.round(copySeconds),
      indexBuildMs,
      retentionDays: RETENTION_DAYS,
      notMeasured:
        "rejected_requests (indexed on the copy, empty here): it holds refused requests only and is scanned the same way",
    },
    lookups,
    ratios,
    indexParentFind: parentFind,
    inserts: insertFigures,
    indexSize: { afterBuild: builtSizes, atEnd: sizes },
    checks: { mismatches, leftAfterDelete, partitions: indexedPartitions.rows[0] },
    verdict,
    samples: { walks, parentFinds, inserts },
  };
  const table = markdown(report);
  const written = writeResult("erasure", report);
  await disconnect(scan);
  await disconnect(index);
  if (!smoke) {
    console.log(
      `\n${table}\n\n${verdict.message}\n\nWrote ${written} (${report.durationSeconds} s).`,
    );
    if (mismatches.length > 0 || leftAfterDelete > 0) {
      console.error(`Checks failed: ${mismatches.join("; ")}; ${leftAfterDelete} rows left`);
      process.exitCode = 1;
    }
    return;
  }

  const checks = smokeChecks("bench:erasure");
  const found = sum(
    KINDS.flatMap((kind) =>
      OPS.map((op) => sum((walks[`scan ${op} ${kind}`] ?? []).map((s) => s.rows))),
    ),
  );
  checks.check(
    "with and without the index, every key's rows were the same",
    mismatches.length === 0 && found > 0,
    `${rounds * 4} keys, ${found} rows${mismatches.length ? `; ${mismatches.join("; ")}` : ""}`,
  );
  const deleted = sum(
    CONFIGS.flatMap((c) =>
      KINDS.map((k) => sum((walks[`${c} delete ${k}`] ?? []).map((s) => s.rows))),
    ),
  );
  checks.check(
    "every deleted key has no rows left in either database",
    leftAfterDelete === 0 && deleted > 0,
    `${deleted} rows deleted in chunks of ${deleteChunk}, ${leftAfterDelete} left`,
  );
  const storedAll = CONFIGS.every((c) => inserts[c].every((w) => w.stored === w.results));
  checks.check(
    "every insert stored its results in predictions and prediction_refs, with and without the index",
    storedAll && inserts.index.length === rounds,
    `${rounds} rounds of ${insertBatches} statements of ${batchRows} results per database`,
  );
  const p = indexedPartitions.rows[0];
  checks.check(
    "every partition of the indexed copy has the key_hmac index",
    !!p && p.partitions > 0 && p.indexed === p.partitions,
    `${p?.indexed} of ${p?.partitions} partitions`,
  );
  checks.finish();
}

function markdown(report: {
  lookups: Record<string, ReturnType<typeof summarizeWalks>>;
  ratios: Record<string, { measured: number; fullRetention: number }>;
  indexParentFind: Record<string, { ms: number; fullRetentionMs: number }>;
  inserts: {
    resultsPerSecond: Record<Config, number>;
    pairedRatio: number;
    pairedRatioRange: number[];
  };
  indexSize: { atEnd: Awaited<ReturnType<typeof indexSizes>> };
}): string {
  const lines = [
    `| operation | key | rows | scan: ms per partition (predictions / refs) | index: ms per partition | scan: ms, ${days} days | index: ms, ${days} days | scan / index | scan: ms, full retention | index: ms, full retention | scan / index, full retention |`,
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const op of OPS)
    for (const kind of KINDS) {
      const s = report.lookups[`scan ${op} ${kind}`];
      const i = report.lookups[`index ${op} ${kind}`];
      const r = report.ratios[`${op} ${kind}`];
      if (!s || !i || !r) continue;
      lines.push(
        `| ${op} | ${kind} | ${s.rowsMedian} | ${s.perPartitionMs.predictions} / ${s.perPartitionMs.prediction_refs} | ${i.perPartitionMs.predictions} / ${i.perPartitionMs.prediction_refs} | ${s.totalMs} | ${i.totalMs} | ${r.measured} | ${s.fullRetentionMs} | ${i.fullRetentionMs} | ${r.fullRetention} |`,
      );
    }
  const size = report.indexSize.atEnd;
  lines.push(
    "",
    `Index, one statement per parent table: find typical ${report.indexParentFind.typical?.ms} ms (full retention ${report.indexParentFind.typical?.fullRetentionMs} ms), heavy ${report.indexParentFind.heavy?.ms} ms (${report.indexParentFind.heavy?.fullRetentionMs} ms).`,
    "",
    "| inserts | results/s | key_hmac index MiB per million rows, as grown by inserts (predictions / refs) |",
    "|---|---:|---:|",
    `| no index | ${report.inserts.resultsPerSecond.scan} | |`,
    `| index | ${report.inserts.resultsPerSecond.index} | ${size.predictions.todayKeyIndexMiBPerMillionRows} / ${size.prediction_refs.todayKeyIndexMiBPerMillionRows} |`,
    `| index / no index (paired per round; middle half of the rounds) | ${report.inserts.pairedRatio} (${report.inserts.pairedRatioRange.join(" to ")}) | |`,
  );
  return lines.join("\n");
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    cleanUp().finally(() => process.exit(130));
  });
}
try {
  await main();
} catch (error) {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
  process.exitCode = 1;
} finally {
  await cleanUp();
}
