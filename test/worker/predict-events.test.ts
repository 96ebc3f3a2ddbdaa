import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../functions/index";
import { keyHmac, type PredictionEvent, packEvents } from "../../shared/inference/events";
import {
  call,
  classificationModel,
  createModel,
  json,
  recordingQueue,
  uniqueName,
} from "./helpers";
import { putRollout } from "./rollout-helpers";

const upstreamBase = (env as unknown as Record<string, string>).TEST_UPSTREAM ?? "";
const upstream = (path: string, timeoutMs = 500) => ({
  kind: "http",
  url: `${upstreamBase}${path}`,
  protocol: "json",
  timeoutMs,
});

async function setUp(
  versions: Record<string, ReturnType<typeof upstream>>,
  rollout: Record<string, unknown>,
) {
  const model = uniqueName("ev");
  await createModel(classificationModel(model, { public: true }));
  for (const [version, up] of Object.entries(versions)) {
    expect(
      (
        await call(`/admin/models/${model}/versions`, {
          method: "POST",
          body: { version, upstream: up },
        })
      ).status,
    ).toBe(201);
  }
  expect((await putRollout(model, { leaseMs: 250, ...rollout })).status).toBe(200);
  return model;
}

async function predictRecorded(model: string, body: unknown) {
  const { messages, queue } = recordingQueue();
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`http://airlock.test/v1/models/${model}/predict`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "req-events-1" },
      body: JSON.stringify(body),
    }),
    { ...env, PREDICTION_LOGS: queue } as unknown as Env,
    ctx,
  );
  const responded = messages.length;
  await waitOnExecutionContext(ctx);
  return {
    response,
    messages,
    respondedWith: responded,
    results: messages.flatMap((m) => m.results),
  };
}

describe("prediction events", () => {
  it("logs the served result with everything monitoring needs, and the key only as an HMAC", async () => {
    const model = await setUp({ v1: upstream("/json/score") }, { champion: "v1" });
    const { response, results } = await predictRecorded(model, {
      inputs: { amount: 150, country: "DE" },
      key: "customer-42",
      attributes: { region: "eu", channel: "web" },
    });
    expect(response.status).toBe(200);
    const body = await json<{ predictionId: string }>(response);
    expect(results).toHaveLength(1);
    const [served] = results;
    expect(served).toMatchObject({
      role: "served",
      predictionId: body.predictionId,
      requestId: "req-events-1",
      model,
      version: "v1",
      prediction: { label: "fraud", score: 0.9 },
      inputs: { amount: 150, country: "DE" },
      attributes: { region: "eu", channel: "web" },
      keyHmac: await keyHmac(env.LOG_HMAC_KEY, "customer-42"),
      status: "ok",
      errorCode: null,
      stateVersion: Number(response.headers.get("x-airlock-state-version")),
    });
    expect(served?.latencyMs).toBeGreaterThanOrEqual(0);
    expect(Date.parse(served?.timestamp ?? "")).not.toBeNaN();
    expect(JSON.stringify(results)).not.toContain("customer-42");
  });

  it("copies traffic to shadows after the response, pairs them by prediction id, and sends them together", async () => {
    const model = await setUp(
      { v1: upstream("/json/score"), v2: upstream("/json/score"), v3: upstream("/slow", 200) },
      {
        champion: "v1",
        shadows: [
          { version: "v2", sampleRate: 1 },
          { version: "v3", sampleRate: 1 },
        ],
      },
    );
    const rows = [
      { amount: 1, country: "DE" },
      { amount: 900, country: "US" },
    ];
    const { response, messages, results } = await predictRecorded(model, { inputs: rows });
    expect(response.status).toBe(200);
    const body = await json<{ predictionIds: string[]; version: string }>(response);
    expect(body.version).toBe("v1");
    const shadows = results.filter((r) => r.role === "shadow");
    expect(shadows.map((r) => [r.version, r.predictionId, r.status]).sort()).toEqual(
      [
        ["v2", body.predictionIds[0], "ok"],
        ["v2", body.predictionIds[1], "ok"],
        ["v3", body.predictionIds[0], "timeout"],
        ["v3", body.predictionIds[1], "timeout"],
      ].sort(),
    );
    expect(shadows.find((r) => r.version === "v3")?.errorCode).toBe("UPSTREAM_TIMEOUT");
    // All shadow results of the request travel in one message.
    const shadowMessages = messages.filter((m) => m.results.some((r) => r.role === "shadow"));
    expect(shadowMessages).toHaveLength(1);
    expect(shadowMessages[0]?.results.every((r) => r.role === "shadow")).toBe(true);
  });

  it("logs canary, fallback, failed and rejected results with their roles", async () => {
    const model = await setUp(
      { v1: upstream("/fail"), v2: upstream("/json/score") },
      { champion: "v1", canary: { version: "v2", percent: 100 } },
    );
    const canary = await predictRecorded(model, { inputs: { amount: 1, country: "DE" } });
    // The champion scores the canary's request after the response, as its control.
    expect(canary.results.map((r) => [r.role, r.version, r.status])).toEqual([
      ["canary", "v2", "ok"],
      ["control", "v1", "error"],
    ]);
    expect(canary.results[1]?.predictionId).toBe(canary.results[0]?.predictionId);

    expect(
      (
        await call(`/admin/models/${model}`, {
          method: "PATCH",
          body: { fallback: { kind: "version", version: "v2" } },
        })
      ).status,
    ).toBe(200);
    expect((await putRollout(model, { champion: "v1", leaseMs: 250 })).status).toBe(200);
    const fallback = await predictRecorded(model, { inputs: { amount: 1, country: "DE" } });
    expect(fallback.results.map((r) => [r.role, r.version, r.status, r.errorCode])).toEqual([
      ["served", "v1", "error", "UPSTREAM_ERROR"],
      ["fallback", "v2", "ok", null],
    ]);
    expect(fallback.results[0]?.predictionId).toBe(fallback.results[1]?.predictionId);

    const rejected = await predictRecorded(model, { inputs: { amount: "lots", country: "DE" } });
    expect(rejected.response.status).toBe(400);
    expect(rejected.results).toHaveLength(1);
    expect(rejected.results[0]).toMatchObject({
      role: "rejected",
      version: "",
      status: "rejected",
      errorCode: "VALIDATION_FAILED",
      inputs: { amount: "lots", country: "DE" },
    });
  });
});

describe("packEvents", () => {
  const base: PredictionEvent = {
    role: "served",
    predictionId: "p",
    requestId: "r",
    model: "m",
    version: "v1",
    prediction: { value: 1 },
    inputs: { x: 1 },
    attributes: {},
    keyHmac: null,
    latencyMs: 1,
    status: "ok",
    errorCode: null,
    stateVersion: 1,
    timestamp: "2026-11-25T00:00:00.000Z",
  };

  it("splits large batches into messages under the limit, in order, losing nothing", () => {
    const events = Array.from({ length: 100 }, (_, i) => ({
      ...base,
      predictionId: `p${i}`,
      inputs: { blob: "x".repeat(3000) },
    }));
    const messages = packEvents(events, 64 * 1024);
    expect(messages.length).toBeGreaterThan(4);
    for (const message of messages)
      expect(new TextEncoder().encode(JSON.stringify(message)).length).toBeLessThanOrEqual(
        64 * 1024,
      );
    expect(messages.flatMap((m) => m.results.map((r) => r.predictionId))).toEqual(
      events.map((e) => e.predictionId),
    );
  });

  it("keeps an event too large for any message, without its inputs", () => {
    const [message] = packEvents([{ ...base, inputs: { blob: "x".repeat(200_000) } }], 64 * 1024);
    expect(message?.results[0]?.inputs).toEqual({ truncated: true, bytes: expect.any(Number) });
    expect(message?.results[0]?.predictionId).toBe("p");
  });
});
