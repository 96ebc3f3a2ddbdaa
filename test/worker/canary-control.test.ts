import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import worker from "../../functions/index";
import type { PredictionEvent } from "../../shared/inference/events";
import { MAX_BATCH_ROWS } from "../../shared/inference/inputs";
import {
  call,
  classificationModel,
  createModel,
  query,
  recordingQueue,
  uniqueName,
} from "./helpers";
import { putRollout } from "./rollout-helpers";

const upstreamBase = (env as unknown as Record<string, string>).TEST_UPSTREAM ?? "";
const upstream = (path: string, extra: Record<string, unknown> = {}) => ({
  kind: "http",
  url: `${upstreamBase}${path}`,
  protocol: "json",
  timeoutMs: 1_000,
  ...extra,
});
/**
 * The same scores as /json/score, labelled with a threshold of 0.95: this
 * version calls a score of 0.9 "legit" where /json/score says "fraud".
 */
const strict = upstream("/json/mapped", {
  outputMapping: { score: "/result/fraudProbability" },
  threshold: 0.95,
});

const v7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

async function setUp(
  versions: Record<string, ReturnType<typeof upstream>>,
  rollout: Record<string, unknown>,
) {
  const model = uniqueName("ctl");
  await createModel(classificationModel(model, { public: true }));
  for (const [version, up] of Object.entries(versions)) {
    const response = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: { version, upstream: up },
    });
    expect(response.status).toBe(201);
  }
  expect((await putRollout(model, { leaseMs: 250, ...rollout })).status).toBe(200);
  return model;
}

/** Sends one request with a recording queue; returns once its work after the response is done. */
async function send(path: string, body: unknown) {
  const { messages, queue } = recordingQueue();
  const ctx = createExecutionContext();
  const before = Date.now();
  const response = await worker.fetch(
    new Request(`http://airlock.test${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    }),
    { ...env, PREDICTION_LOGS: queue } as unknown as Env,
    ctx,
  );
  const text = await response.text();
  await waitOnExecutionContext(ctx);
  return { response, text, messages, results: messages.flatMap((m) => m.results), before };
}

/**
 * Resolves once the Worker calls the upstream at `path`: a request in flight has then decided
 * its route and waits on that upstream. (The Worker runs in this isolate, so its upstream calls
 * go through this global fetch.)
 */
function upstreamCalled(path: string): { called: Promise<void>; restore: () => void } {
  const original = globalThis.fetch;
  const restore = () => {
    globalThis.fetch = original;
  };
  const called = new Promise<void>((resolve) => {
    globalThis.fetch = ((input: RequestInfo | URL, init?: RequestInit) => {
      const url = input instanceof Request ? input.url : String(input);
      if (new URL(url).pathname === path) {
        restore();
        resolve();
      }
      return original(input, init);
    }) as typeof fetch;
  });
  return { called, restore };
}

/** Delivers recorded messages to the Worker's queue consumer, as the platform would. */
async function store(messages: { schema: 1; results: PredictionEvent[] }[]) {
  const batch = createMessageBatch(
    "airlock-prediction-logs",
    messages.map((body, i) => ({
      id: `ctl-${i}-${crypto.randomUUID()}`,
      timestamp: new Date(),
      attempts: 1,
      body,
    })),
  );
  const ctx = createExecutionContext();
  await worker.queue(batch, env, ctx);
  const result = await getQueueResult(batch, ctx);
  expect(result.explicitAcks.length + (result.ackAll ? messages.length : 0)).toBe(messages.length);
  expect(result.retryMessages).toEqual([]);
}

const triples = (results: PredictionEvent[]) =>
  results.map((r) => [r.role, r.version, r.predictionId, r.prediction]);

describe("canary control", () => {
  it("has the champion score what the canary answered, as a control under the same prediction ids, never returned", async () => {
    const model = await setUp(
      { v1: upstream("/json/score"), v2: strict, v3: upstream("/json/score") },
      {
        champion: "v1",
        canary: { version: "v2", percent: 100 },
        shadows: [{ version: "v3", sampleRate: 1 }],
      },
    );
    const sent = await send(`/v1/models/${model}/predict`, {
      inputs: [
        { amount: 120, country: "DE" },
        { amount: 5, country: "FR" },
      ],
    });
    expect(sent.response.status).toBe(200);
    const body = JSON.parse(sent.text) as {
      version: string;
      predictionIds: string[];
      outputs: unknown[];
    };
    expect(body.version).toBe("v2");
    expect(body.outputs).toEqual([
      { label: "legit", score: 0.9 },
      { label: "legit", score: 0.1 },
    ]);
    // The champion's answer ("fraud" for the first row) never reaches the client.
    expect(sent.text).not.toContain("fraud");
    const [a, b] = body.predictionIds;
    expect(triples(sent.results).sort()).toEqual(
      [
        ["canary", "v2", a, { label: "legit", score: 0.9 }],
        ["canary", "v2", b, { label: "legit", score: 0.1 }],
        ["control", "v1", a, { label: "fraud", score: 0.9 }],
        ["control", "v1", b, { label: "legit", score: 0.1 }],
        ["shadow", "v3", a, { label: "fraud", score: 0.9 }],
        ["shadow", "v3", b, { label: "legit", score: 0.1 }],
      ].sort(),
    );

    await store(sent.messages);
    const rows = await query<{
      prediction_id: string;
      role: string;
      version: string;
      created_at: string;
      id_time: string | null;
      same_time: boolean | null;
    }>(sql`
      SELECT prediction_id, role, version, created_at::text, prediction_id_time(prediction_id)::text AS id_time,
        prediction_id_time(prediction_id) = created_at AS same_time
      FROM predictions WHERE model = ${model} ORDER BY role, prediction_id`);
    expect(rows.map((r) => [r.role, r.version, r.prediction_id]).sort()).toEqual(
      [
        ["canary", "v2", a],
        ["canary", "v2", b],
        ["control", "v1", a],
        ["control", "v1", b],
        ["shadow", "v3", a],
        ["shadow", "v3", b],
      ].sort(),
    );
    const refs = await query<{ role: string; n: string }>(
      sql`SELECT role, count(*) AS n FROM prediction_refs WHERE model = ${model} GROUP BY role ORDER BY role`,
    );
    expect(refs.map((r) => [r.role, Number(r.n)])).toEqual([
      ["canary", 2],
      ["control", 2],
      ["shadow", 2],
    ]);
    for (const row of rows) {
      expect(row.prediction_id).toMatch(v7);
      expect(row.id_time).not.toBeNull();
      expect(row.same_time).toBe(true);
    }
  });

  it("gives ids of one millisecond distinct UUIDv7s carrying the event time, for accepted and rejected requests", async () => {
    const model = await setUp({ v1: upstream("/json/score") }, { champion: "v1" });
    const inputs = Array.from({ length: MAX_BATCH_ROWS }, (_, i) => ({ amount: i, country: "DE" }));
    const served = await send(`/v1/models/${model}/predict`, { inputs });
    expect(served.response.status).toBe(200);
    const rejected = await send(`/v1/models/${model}/predict`, {
      inputs: { amount: -1, country: "DE" },
    });
    expect(rejected.response.status).toBe(400);
    const results = [...served.results, ...rejected.results];
    expect(results).toHaveLength(MAX_BATCH_ROWS + 1);
    const ids = results.map((r) => r.predictionId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const result of results) {
      expect(result.predictionId).toMatch(v7);
      // The first 48 bits are the event's time in milliseconds.
      const millis = Number.parseInt(result.predictionId.replace(/-/g, "").slice(0, 12), 16);
      expect(millis).toBe(Date.parse(result.timestamp));
    }
    // One request's rows share their admission time, so their ids share the millisecond.
    expect(new Set(served.results.map((r) => r.timestamp)).size).toBe(1);
    expect(Date.parse(served.results[0]?.timestamp ?? "")).toBeGreaterThanOrEqual(served.before);

    await store([...served.messages, ...rejected.messages]);
    const stored = await query<{ n: string; same: string }>(sql`
      SELECT count(*) AS n, count(*) FILTER (WHERE prediction_id_time(prediction_id) = created_at) AS same
      FROM (SELECT prediction_id, created_at FROM predictions WHERE model = ${model}
        UNION ALL SELECT prediction_id, created_at FROM rejected_requests WHERE model = ${model}) AS x`);
    expect(stored.map((r) => [Number(r.n), Number(r.same)])).toEqual([
      [MAX_BATCH_ROWS + 1, MAX_BATCH_ROWS + 1],
    ]);
  });

  it("adds a control to a request pinned to the canary version, none to one answered by the champion", async () => {
    const model = await setUp(
      { v1: upstream("/json/score"), v2: strict },
      { champion: "v1", canary: { version: "v2", percent: 0 } },
    );
    const inputs = { amount: 120, country: "DE" };
    const champion = await send(`/v1/models/${model}/predict`, { inputs });
    expect(champion.response.headers.get("x-airlock-version")).toBe("v1");
    expect(champion.results.map((r) => [r.role, r.version])).toEqual([["served", "v1"]]);

    const tensors = [
      { name: "amount", shape: [1], datatype: "FP64", data: [120] },
      { name: "country", shape: [1], datatype: "BYTES", data: ["DE"] },
    ];
    const pinned = await send(`/v2/models/${model}/versions/v2/infer`, { inputs: tensors });
    expect(pinned.response.status).toBe(200);
    expect(JSON.parse(pinned.text)).toMatchObject({ model_version: "v2" });
    expect(pinned.text).not.toContain("fraud");
    const id = pinned.response.headers.get("x-airlock-prediction-id");
    expect(triples(pinned.results).sort()).toEqual(
      [
        ["canary", "v2", id, { label: "legit", score: 0.9 }],
        ["control", "v1", id, { label: "fraud", score: 0.9 }],
      ].sort(),
    );

    const pinnedChampion = await send(`/v2/models/${model}/versions/v1/infer`, {
      inputs: tensors,
    });
    expect(pinnedChampion.response.status).toBe(200);
    expect(pinnedChampion.results.map((r) => [r.role, r.version])).toEqual([["served", "v1"]]);
  });

  it("logs a control for a canary that timed out, and calls none once the challengers are killed or the champion changed", async () => {
    const slow = upstream("/slow", { timeoutMs: 1_500 });
    const model = await setUp(
      { v1: upstream("/json/score"), v2: slow, v3: upstream("/json/score") },
      { champion: "v1", canary: { version: "v2", percent: 100 } },
    );
    const inputs = { amount: 120, country: "DE" };
    const timedOut = await send(`/v1/models/${model}/predict`, { inputs });
    expect(timedOut.results.map((r) => [r.role, r.version, r.status])).toEqual([
      ["canary", "v2", "timeout"],
      ["control", "v1", "ok"],
    ]);

    // The canary is decided, then the challengers are killed while it is being called:
    // the lease checked again after the response calls no control.
    const canaryCalled = upstreamCalled("/slow");
    const killed = send(`/v1/models/${model}/predict`, { inputs });
    await canaryCalled.called.finally(canaryCalled.restore);
    const kill = await call(`/admin/models/${model}/kill-switch`, {
      method: "POST",
      body: { scope: "challengers", reason: "control test" },
    });
    expect(kill.status).toBe(200);
    expect((await killed).results.map((r) => [r.role, r.version, r.status])).toEqual([
      ["canary", "v2", "timeout"],
    ]);
    const afterKill = await send(`/v1/models/${model}/predict`, { inputs });
    expect(afterKill.results.map((r) => [r.role, r.version])).toEqual([["served", "v1"]]);

    expect((await call(`/admin/models/${model}/kill-switch`, { method: "DELETE" })).status).toBe(
      200,
    );
    const canaryCalledAgain = upstreamCalled("/slow");
    const changed = send(`/v1/models/${model}/predict`, { inputs });
    await canaryCalledAgain.called.finally(canaryCalledAgain.restore);
    // v1 stays callable (as a shadow), but is no longer the champion this canary is compared with.
    const promoted = await putRollout(model, {
      leaseMs: 250,
      champion: "v3",
      canary: { version: "v2", percent: 100 },
      shadows: [{ version: "v1", sampleRate: 1 }],
    });
    expect(promoted.status).toBe(200);
    expect((await changed).results.map((r) => [r.role, r.version, r.status])).toEqual([
      ["canary", "v2", "timeout"],
    ]);
  });
});
