/**
 * A model's data policy holds across the whole pipeline: a dropped input
 * field and attribute, a hashed input field and attribute, and a client's
 * bucketing key go through predict (/v1 and /v2), shadow, canary and its
 * control, a refused request, a dead letter and its replay, labels and
 * outcomes, a baseline from traffic and a monitoring run. Then every table of
 * the database, the rollout object's storage, every queue message, the
 * baselines, the monitoring results and runs and every line the Worker logged
 * are searched for the raw values: none is found, while the hashed form is.
 */
import {
  createExecutionContext,
  runInDurableObject,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it, vi } from "vitest";
import worker from "../../functions/index";
import { runMonitoring } from "../../functions/jobs/monitoring";
import type { PredictionLogMessage } from "../../shared/inference/events";
import { hashedValue } from "../../shared/privacy/data-policy";
import {
  adminToken,
  call,
  createModel,
  createVersion,
  database,
  deadDatabaseProxy,
  json,
  query,
  recordingQueue,
  scoringVersion,
  uniqueName,
} from "./helpers";
import { DLQ, deliver, LOGS } from "./log-helpers";
import { mulberry32 } from "./random";
import { putRollout, rolloutStub } from "./rollout-helpers";
import type { ResultRow } from "./traffic-helpers";

/** One console argument as text: every value it holds, nested ones included. */
function logText(arg: unknown): string {
  if (typeof arg === "string") return arg;
  if (arg instanceof Error) return `${arg.stack ?? arg.message} ${logText(arg.cause)}`;
  try {
    return JSON.stringify(arg) ?? String(arg);
  } catch {
    return String(arg);
  }
}

/** Every line the Worker writes to the console in this isolate (its handlers, consumers and objects). */
function captureLogs(): string[] {
  const lines: string[] = [];
  for (const method of ["log", "info", "warn", "error", "debug"] as const) {
    const original = console[method].bind(console);
    vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
      lines.push(args.map(logText).join(" "));
      original(...args);
    });
  }
  return lines;
}

/** Sends one request with a recording queue; returns once its work after the response is done. */
async function send(path: string, body: unknown, token?: string) {
  const { messages, queue } = recordingQueue();
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`http://airlock.test${path}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify(body),
    }),
    { ...env, PREDICTION_LOGS: queue } as unknown as Env,
    ctx,
  );
  const text = await response.text();
  await waitOnExecutionContext(ctx);
  return { response, text, messages, results: messages.flatMap((m) => m.results) };
}

/** Stores recorded messages through the log consumer, as the platform would deliver them. */
async function store(messages: PredictionLogMessage[]) {
  const result = await deliver(
    LOGS,
    messages.map((body) => ({ body })),
  );
  expect(result.ackAll).toBe(true);
  expect(result.retryMessages).toEqual([]);
}

const identifier = (name: string) => `"${name.replaceAll('"', '""')}"`;

/**
 * For every table of the database (each partition on its own, so the
 * DEFAULT one too), how many rows hold each probe in their text.
 */
async function searchTables(probes: string[]) {
  const handle = database();
  try {
    const tables = (
      await handle.db.execute<{ schema: string; name: string; partition: boolean }>(sql`
        SELECT n.nspname AS schema, c.relname AS name, c.relispartition AS partition
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema')
          AND n.nspname NOT LIKE 'pg\\_%'
        ORDER BY 1, 2`)
    ).rows;
    const found: { table: string; probe: string; rows: number }[] = [];
    for (const { schema, name } of tables) {
      const table = `${identifier(schema)}.${identifier(name)}`;
      const { rows } = await handle.db.execute<{ probe: string; rows: number }>(sql`
        SELECT p.probe, count(*)::int AS rows
        FROM ${sql.raw(table)} AS t,
          jsonb_array_elements_text(${JSON.stringify(probes)}::jsonb) AS p(probe)
        WHERE strpos(t::text, p.probe) > 0
        GROUP BY p.probe`);
      for (const row of rows) found.push({ table: `${schema}.${name}`, ...row });
    }
    return { tables, found };
  } finally {
    await handle.close();
  }
}

/** Every row of every table of a rollout object's own storage, as JSON. */
async function rolloutStorage(model: string): Promise<string> {
  return runInDurableObject(rolloutStub(model), (_instance, state) => {
    const names = state.storage.sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
      .toArray()
      .map((row) => row.name)
      .filter((name) => !name.startsWith("_cf_") && !name.startsWith("sqlite_"));
    expect(names).toContain("history");
    return JSON.stringify(
      names.map((name) => [
        name,
        state.storage.sql.exec(`SELECT * FROM ${identifier(name)}`).toArray(),
      ]),
    );
  });
}

const hmac = /^hmac:[0-9a-f]{64}$/;

describe("data policy across the whole pipeline", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("leaves no dropped or hashed raw value in any table, queue message, baseline, monitoring result or log line", {
    timeout: 120_000,
  }, async () => {
    const logs = captureLogs();
    const probe = crypto.randomUUID();
    const random = mulberry32(Number.parseInt(probe.slice(0, 8), 16));
    // Dropped: `income` and the `note` attribute. Hashed: `merchant` and the
    // `customer_email` attribute. Stored: `region`, the search's own check.
    const incomes = [1, 2, 3].map((i) => 7_000_000 + Math.floor(random() * 300_000) * 3 + i + 0.25);
    const merchants = [1, 2, 3].map((i) => `merchant-${i}-${probe}`);
    const email = `probe-${probe}@example.com`;
    const note = `note-${probe}`;
    const region = `region-${probe}`;
    const key = `customer-${probe}`;
    const raw = [email, note, key, ...merchants, ...incomes.map(String)];

    const model = uniqueName("pp");
    await createModel({
      name: model,
      task: "classification",
      owner: "risk-ml@example.com",
      description: "Flags card-not-present transactions for review",
      public: true,
      inputSchema: {
        type: "object",
        properties: {
          amount: { type: "number", minimum: 0 },
          country: { type: "string", enum: ["DE", "FR", "US"] },
          income: { type: "number", minimum: 0 },
          merchant: { type: "string", maxLength: 128 },
        },
        required: ["amount", "country"],
      },
      classes: ["legit", "fraud"],
      positiveClass: "fraud",
    });
    // v1 the champion, v2 a shadow of every request, v3 the canary.
    for (const version of ["v1", "v2", "v3"]) await createVersion(model, version, scoringVersion);
    const rollout = await putRollout(model, {
      champion: "v1",
      shadows: [{ version: "v2", sampleRate: 1 }],
      canary: { version: "v3", percent: 0 },
      leaseMs: 250,
    });
    expect(rollout.status, await rollout.clone().text()).toBe(200);
    const policy = await call(`/admin/models/${model}/data-policy`, {
      method: "PUT",
      body: {
        fields: { income: "drop", merchant: "hash" },
        attributes: { note: "drop", customer_email: "hash" },
      },
    });
    expect(policy.status, await policy.clone().text()).toBe(200);

    const rows = (count: number) =>
      Array.from({ length: count }, (_, i) => ({
        amount: Math.round(random() * 50_000) / 100,
        country: ["DE", "FR", "US"][i % 3] as string,
        income: incomes[i % 3] as number,
        merchant: merchants[(i * 7) % 3] as string,
      }));
    const tensors = (batch: ReturnType<typeof rows>) => [
      { name: "amount", shape: [batch.length], datatype: "FP64", data: batch.map((r) => r.amount) },
      {
        name: "country",
        shape: [batch.length],
        datatype: "BYTES",
        data: batch.map((r) => r.country),
      },
      { name: "income", shape: [batch.length], datatype: "FP64", data: batch.map((r) => r.income) },
      {
        name: "merchant",
        shape: [batch.length],
        datatype: "BYTES",
        data: batch.map((r) => r.merchant),
      },
    ];
    const v2Parameters = {
      key,
      "attribute.customer_email": email,
      "attribute.note": note,
      "attribute.region": region,
    };
    const attributes = { customer_email: email, note, region };
    const from = new Date(Date.now() - 1_000);

    // Served by the champion, copied to the shadow.
    const served = await send(`/v1/models/${model}/predict`, {
      inputs: rows(100),
      key,
      attributes,
    });
    expect(served.response.status, served.text).toBe(200);
    const servedIds = (JSON.parse(served.text) as { predictionIds: string[] }).predictionIds;
    // Answered by the canary (the version asked for), scored by the champion as its control.
    const canary = await send(`/v2/models/${model}/versions/v3/infer`, {
      parameters: v2Parameters,
      inputs: tensors(rows(100)),
    });
    expect(canary.response.status, canary.text).toBe(200);
    const canaryIds = (
      JSON.parse(canary.text) as { parameters: { prediction_id: string } }
    ).parameters.prediction_id.split(",");
    // Refused by the input schema.
    const refused = await send(`/v1/models/${model}/predict`, {
      inputs: { ...rows(1)[0], country: "XX" },
      key,
      attributes,
    });
    expect(refused.response.status).toBe(400);
    // Served over /v2; these results become a dead letter, then are replayed.
    const lost = await send(`/v2/models/${model}/infer`, {
      parameters: v2Parameters,
      inputs: tensors(rows(5)),
    });
    expect(lost.response.status, lost.text).toBe(200);

    const roles = (results: { role: string }[]) => {
      const counts: Record<string, number> = {};
      for (const r of results) counts[r.role] = (counts[r.role] ?? 0) + 1;
      return counts;
    };
    expect(roles(served.results)).toEqual({ served: 100, shadow: 100 });
    expect(roles(canary.results)).toEqual({ canary: 100, control: 100, shadow: 100 });
    expect(roles(refused.results)).toEqual({ rejected: 1 });
    expect(roles(lost.results)).toEqual({ served: 5, shadow: 5 });
    const sent = [...served.messages, ...canary.messages, ...refused.messages, ...lost.messages];
    await store([...served.messages, ...canary.messages, ...refused.messages]);

    // The database is down for every delivery: the platform then moves the
    // messages to the dead-letter queue, whose consumer keeps them whole.
    const lostBodies = lost.messages.map((body) => ({ id: `lost-${crypto.randomUUID()}`, body }));
    const down = await deliver(LOGS, lostBodies, { DATABASE_WS_PROXY: deadDatabaseProxy });
    expect(down.retryMessages).toHaveLength(lostBodies.length);
    const dead = await deliver(
      DLQ,
      lostBodies.map((m) => ({ ...m, attempts: 6 })),
    );
    expect(dead.ackAll).toBe(true);
    const deadIds = (
      await query<{ id: string }>(sql`
        SELECT id::text AS id FROM dead_letters
        WHERE message_id IN (SELECT jsonb_array_elements_text(${JSON.stringify(lostBodies.map((m) => m.id))}::jsonb))
        ORDER BY id`)
    ).map((row) => row.id);
    expect(deadIds).toHaveLength(lostBodies.length);
    const replayQueue = recordingQueue();
    const ctx = createExecutionContext();
    const replay = await worker.fetch(
      new Request("http://airlock.test/admin/dead-letters/replay", {
        method: "POST",
        headers: { authorization: `Bearer ${adminToken()}`, "content-type": "application/json" },
        body: JSON.stringify({ ids: deadIds }),
      }),
      { ...env, PREDICTION_LOGS: replayQueue.queue } as unknown as Env,
      ctx,
    );
    await waitOnExecutionContext(ctx);
    expect(await json(replay)).toEqual({ replayed: deadIds, results: 10, skipped: [] });
    await store(replayQueue.messages);
    sent.push(...replayQueue.messages);

    // Labels for what the champion and the canary answered, and outcomes by id and by key.
    const issued = await call("/admin/keys", {
      method: "POST",
      body: { name: `reporter-${model}`, models: [model] },
    });
    expect(issued.status).toBe(201);
    const apiKey = (await json<{ key: string }>(issued)).key;
    const labels = [...servedIds, ...canaryIds].map((predictionId, i) => ({
      predictionId,
      label: i % 4 === 0 ? "fraud" : "legit",
    }));
    const feedback = await send("/v1/feedback", labels, apiKey);
    expect(feedback.response.status, feedback.text).toBe(202);
    const outcomes = await send(
      "/v1/outcomes",
      [
        { predictionId: servedIds[0], kpi: "revenue", value: 12.5 },
        { key, kpi: "revenue", value: 3 },
      ],
      apiKey,
    );
    expect(outcomes.response.status, outcomes.text).toBe(202);
    const to = new Date(Date.now() + 1_000);

    // Baselines from the traffic just stored, for each version and its role.
    const baselines: string[] = [];
    for (const [version, role] of [
      ["v1", "served"],
      ["v2", "shadow"],
      ["v3", "canary"],
    ]) {
      const set = await call(`/admin/models/${model}/versions/${version}/baseline`, {
        method: "POST",
        body: { from: from.toISOString(), to: to.toISOString(), role },
      });
      expect(set.status, await set.clone().text()).toBe(200);
      const read = await call(`/admin/models/${model}/versions/${version}/baseline`);
      baselines.push(await read.text());
    }
    const champion = JSON.parse(baselines[0] as string) as {
      rows: number;
      features: Record<string, { missing: number; counts?: Record<string, number> }>;
    };
    expect(champion.rows).toBe(105);
    expect(champion.features.income?.missing).toBe(105);
    const merchantCounts = Object.keys(champion.features.merchant?.counts ?? {}).sort();
    expect(merchantCounts).toEqual(
      (await Promise.all(merchants.map((m) => hashedValue(env.LOG_HMAC_KEY, m)))).sort(),
    );

    // Verdicts however the traffic falls across windows, so that every metric shows what it keeps.
    const one = { current: 1, reference: 1 };
    const settings = await call(`/admin/models/${model}/monitoring/settings`, {
      method: "PUT",
      body: {
        minimums: {
          driftTest: one,
          driftDistance: one,
          psi: one,
          dataQuality: { current: 1 },
          operations: { results: 1 },
          comparison: { pairs: 1 },
          quality: { labels: 1, perClass: 1 },
          fairness: { group: 1 },
          kpi: { perSide: 1 },
        },
      },
    });
    expect(settings.status, await settings.clone().text()).toBe(200);
    // The monitoring job over the windows that hold this traffic, once they have ended.
    const windowMs = Number(env.MONITORING_WINDOW_SECONDS) * 1000;
    const end = (Math.floor(to.getTime() / windowMs) + 1) * windowMs;
    const report = await runMonitoring(env, new Date(end + 1_000), {
      alerts: false,
      health: false,
    });
    const computed = report.computed.filter((c) => c.model === model);
    expect(new Set(computed.map((c) => `${c.version}/${c.role}`))).toEqual(
      new Set(["v1/served", "v2/shadow", "v3/canary"]),
    );
    const monitoring = await call(
      `/admin/models/${model}/monitoring?from=${new Date(Math.floor(from.getTime() / 86_400_000) * 86_400_000).toISOString()}&to=${new Date(end).toISOString()}`,
    );
    expect(monitoring.status).toBe(200);
    const monitoringText = await monitoring.text();
    const results = (JSON.parse(monitoringText) as { items: ResultRow[] }).items;
    expect(
      results.some((r) => r.dimension === "merchant" && r.status !== "insufficient_data"),
    ).toBe(true);
    const run = await call(`/admin/monitoring/runs/${report.runId}`);
    expect(run.status).toBe(200);
    const runText = await run.text();
    expect(runText).toContain(model);

    // The pipeline ran: every role stored, the replayed results too, each row hashed and dropped.
    const stored = await query<{ role: string; n: number; hashed: number; dropped: number }>(sql`
      SELECT role, count(*)::int AS n,
        count(*) FILTER (WHERE inputs->>'merchant' LIKE 'hmac:%'
          AND attributes->>'customer_email' LIKE 'hmac:%' AND key_hmac IS NOT NULL)::int AS hashed,
        count(*) FILTER (WHERE NOT inputs ? 'income' AND NOT attributes ? 'note')::int AS dropped
      FROM predictions WHERE model = ${model} GROUP BY role ORDER BY role`);
    expect(stored).toEqual([
      { role: "canary", n: 100, hashed: 100, dropped: 100 },
      { role: "control", n: 100, hashed: 100, dropped: 100 },
      { role: "served", n: 105, hashed: 105, dropped: 105 },
      { role: "shadow", n: 205, hashed: 205, dropped: 205 },
    ]);
    const replayedIds = replayQueue.messages.flatMap((m) => m.results.map((r) => r.predictionId));
    const [replayed] = await query<{ n: number }>(sql`
      SELECT count(*)::int AS n FROM predictions WHERE model = ${model}
        AND prediction_id IN (SELECT jsonb_array_elements_text(${JSON.stringify(replayedIds)}::jsonb))`);
    expect(replayed?.n).toBe(10);
    const [rejected] = await query<{ merchant: string; income: boolean; email: string }>(sql`
      SELECT inputs->>'merchant' AS merchant, inputs ? 'income' AS income,
        attributes->>'customer_email' AS email
      FROM rejected_requests WHERE model = ${model}`);
    expect(rejected?.merchant).toMatch(hmac);
    expect(rejected?.income).toBe(false);
    expect(rejected?.email).toMatch(hmac);
    const [reported] = await query<{ labels: number; outcomes: number; keyed: number }>(sql`
      SELECT (SELECT count(*)::int FROM feedback WHERE model = ${model}) AS labels,
        (SELECT count(*)::int FROM outcomes WHERE model = ${model}) AS outcomes,
        (SELECT count(*)::int FROM outcomes WHERE model = ${model} AND key_hmac IS NOT NULL) AS keyed`);
    expect(reported).toEqual({ labels: 200, outcomes: 2, keyed: 1 });
    const [replayedLetters] = await query<{ n: number }>(sql`
      SELECT count(*)::int AS n FROM dead_letters
      WHERE id IN (SELECT jsonb_array_elements_text(${JSON.stringify(deadIds)}::jsonb)::bigint)
        AND replayed_at IS NOT NULL AND body::text LIKE '%hmac:%'`);
    expect(replayedLetters?.n).toBe(deadIds.length);

    // Every table: the stored attribute is found (the search can find), no raw value is.
    const search = await searchTables([region, ...raw]);
    expect(search.tables.some((t) => t.partition && t.name.startsWith("predictions"))).toBe(true);
    const holding = (value: string) => search.found.filter((f) => f.probe === value);
    for (const table of ["predictions", "prediction_refs", "rejected_requests", "dead_letters"])
      expect(
        holding(region).some((f) => new RegExp(`^public\\.${table}(_[a-z0-9]+)?$`).test(f.table)),
        table,
      ).toBe(true);
    expect(search.found.filter((f) => f.probe !== region)).toEqual([]);

    // Everything else that left the request: queue messages, the rollout
    // object's storage, baselines, monitoring results and runs, logs.
    const storage = await rolloutStorage(model);
    expect(storage).toContain("dataPolicy");
    const texts: Record<string, string> = {
      queue: JSON.stringify(sent),
      rolloutStorage: storage,
      baselines: baselines.join("\n"),
      monitoring: monitoringText,
      run: runText,
      logs: logs.join("\n"),
    };
    expect(texts.queue).toContain(region);
    expect(texts.queue).toMatch(/hmac:[0-9a-f]{64}/);
    expect(texts.baselines).toMatch(/hmac:[0-9a-f]{64}/);
    expect(texts.monitoring).toMatch(/hmac:[0-9a-f]{64}/);
    expect(texts.logs).toContain('"event":"prediction_logs.stored"');
    expect(texts.logs).toContain('"event":"dead_letters.stored"');
    expect(texts.logs).toContain('"event":"prediction_logs.store_failed"');
    for (const [where, text] of Object.entries(texts))
      for (const value of raw) expect(text.includes(value), `${where} holds ${value}`).toBe(false);
  });
});
