import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { v7 } from "uuid";
import { describe, expect, it } from "vitest";
import { storeLogs } from "../../functions/queue/prediction-logs";
import { keyHmac, type PredictionEvent } from "../../shared/inference/events";
import {
  call,
  classificationModel,
  createModel,
  type ErrorJson,
  json,
  query,
  uniqueName,
} from "./helpers";

async function newKey(): Promise<{ key: string; id: string; model: string }> {
  const model = uniqueName("fb");
  await createModel(classificationModel(model));
  const response = await call("/admin/keys", {
    method: "POST",
    body: { name: `reporter-${model}`, models: [model] },
  });
  expect(response.status).toBe(201);
  return { ...(await json<{ key: string; id: string }>(response)), model };
}

async function post(path: string, body: unknown, key: string | null) {
  return call(path, { method: "POST", body, token: key ?? null });
}

describe("feedback", () => {
  it("stores a label before its prediction lands, replaces it with a later one and keeps both", async () => {
    const { key, id, model } = await newKey();
    const predictionId = v7();
    const first = await post("/v1/feedback", { predictionId, label: "fraud" }, key);
    expect(first.status).toBe(202);
    expect(await first.json()).toEqual({ accepted: 1, erased: 0 });
    const second = await post(
      "/v1/feedback",
      { predictionId, label: "legit", observedAt: "2026-11-20T10:00:00Z" },
      key,
    );
    expect(second.status).toBe(202);
    const [current] = await query<Record<string, unknown>>(
      sql`SELECT * FROM feedback WHERE prediction_id = ${predictionId}`,
    );
    expect(current).toMatchObject({ label: "legit", revision: 2, api_key_id: id, model });
    expect(new Date(current?.observed_at as string).toISOString()).toBe("2026-11-20T10:00:00.000Z");
    const events = await query<{ label: unknown }>(
      sql`SELECT label FROM feedback_events WHERE prediction_id = ${predictionId} ORDER BY id`,
    );
    expect(events.map((e) => e.label)).toEqual(["fraud", "legit"]);

    // The prediction's log row lands later; the two join on the prediction id.
    const event: PredictionEvent = {
      role: "served",
      predictionId,
      requestId: "req-1",
      model,
      version: "v1",
      prediction: { label: "fraud", score: 0.8 },
      inputs: { amount: 1 },
      attributes: {},
      keyHmac: null,
      latencyMs: 1,
      status: "ok",
      errorCode: null,
      stateVersion: 1,
      timestamp: new Date().toISOString(),
    };
    await storeLogs(env, [event], []);
    const joined = await query<{ predicted: unknown; actual: unknown }>(
      sql`SELECT r.prediction->>'label' AS predicted, f.label AS actual
          FROM prediction_refs r JOIN feedback f USING (prediction_id, model)
          WHERE r.prediction_id = ${predictionId}`,
    );
    expect(joined).toEqual([{ predicted: "fraud", actual: "legit" }]);
    const stored = await call(`/admin/predictions/${predictionId}`);
    expect(stored.status).toBe(200);
    expect(await stored.json()).toMatchObject({
      predictionId,
      results: [{ role: "served", version: "v1", model, prediction: event.prediction }],
      feedback: { label: "legit", revision: 2, observedAt: "2026-11-20T10:00:00.000Z" },
      outcomes: [],
    });
    const unknown = await call(`/admin/predictions/${v7()}`);
    expect(unknown.status).toBe(404);
    expect((await json<ErrorJson>(unknown)).error.code).toBe("PREDICTION_NOT_FOUND");
  });

  it("takes a batch, the last label per prediction winning", async () => {
    const { key } = await newKey();
    const [a, b] = [v7(), v7()];
    const response = await post(
      "/v1/feedback",
      [
        { predictionId: a, label: "fraud" },
        { predictionId: b, label: "legit" },
        { predictionId: a, label: "legit" },
      ],
      key,
    );
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({ accepted: 3, erased: 0 });
    const rows = await query<{ prediction_id: string; label: unknown; revision: number }>(
      sql`SELECT prediction_id, label, revision FROM feedback WHERE prediction_id IN (${a}, ${b}) ORDER BY label`,
    );
    expect(rows.map((r) => [r.prediction_id, r.label])).toEqual(
      expect.arrayContaining([
        [a, "legit"],
        [b, "legit"],
      ]),
    );
    const events = await query<{ n: string }>(
      sql`SELECT count(*) AS n FROM feedback_events WHERE prediction_id = ${a}`,
    );
    expect(Number(events[0]?.n)).toBe(2);
  });

  const id = v7();
  it.each([
    ["no label", { predictionId: id }, "label"],
    ["an object as label", { predictionId: id, label: { a: 1 } }, "label"],
    ["a bad time", { predictionId: id, label: "fraud", observedAt: "yesterday" }, "observedAt"],
    ["an unknown field", { predictionId: id, label: "fraud", extra: "x" }, "(body)"],
    ["a prediction id that is no UUID", { predictionId: "p-1", label: "fraud" }, "predictionId"],
    ["a label that is not a class", { predictionId: id, label: "maybe" }, "label"],
    ["an empty batch", [], "(body)"],
  ])("refuses %s with 400 naming the field, storing nothing", async (_label, body, field) => {
    const { key } = await newKey();
    const response = await post("/v1/feedback", body, key);
    expect(response.status).toBe(400);
    const error = await json<ErrorJson>(response);
    expect(error.error.code).toBe("VALIDATION_FAILED");
    expect(error.error.details?.map((d) => d.path)).toEqual([field]);
    const stored = await query<{ n: string }>(
      sql`SELECT count(*) AS n FROM feedback_events WHERE prediction_id = ${id}`,
    );
    expect(Number(stored[0]?.n)).toBe(0);
  });

  it("needs a valid API key", async () => {
    const none = await post("/v1/feedback", { predictionId: v7(), label: "fraud" }, null);
    expect(none.status).toBe(401);
    const { key, id } = await newKey();
    expect((await call(`/admin/keys/${id}`, { method: "DELETE" })).status).toBe(200);
    const revoked = await post("/v1/feedback", { predictionId: v7(), label: "fraud" }, key);
    expect(revoked.status).toBe(401);
    expect((await json<ErrorJson>(revoked)).error.code).toBe("UNAUTHORIZED");
  });
});

describe("outcomes", () => {
  it("stores KPI events by prediction or by key (as its HMAC), a named event once", async () => {
    const { key, model } = await newKey();
    const predictionId = v7();
    const customer = `customer-${crypto.randomUUID()}`;
    const clientId = `evt-${crypto.randomUUID()}`;
    const body = [
      { predictionId, kpi: "revenue", value: 129.5, at: "2026-11-24T08:00:00Z" },
      { id: clientId, key: customer, kpi: "churned", value: 1 },
    ];
    const first = await post("/v1/outcomes", body, key);
    expect(first.status).toBe(202);
    expect(await first.json()).toEqual({ accepted: 2, stored: 2, erased: 0 });
    // A retry stores the named event once more only if it had no name.
    const retry = await post("/v1/outcomes", body[1], key);
    expect(await retry.json()).toEqual({ accepted: 1, stored: 0, erased: 0 });
    const rows = await query<Record<string, unknown>>(
      sql`SELECT * FROM outcomes WHERE prediction_id = ${predictionId} OR client_id = ${clientId} ORDER BY id`,
    );
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({ kpi: "revenue", value: 129.5, key_hmac: null, model });
    expect(rows[1]).toMatchObject({
      kpi: "churned",
      value: 1,
      prediction_id: null,
      key_hmac: await keyHmac(env.LOG_HMAC_KEY, customer),
    });
    expect(JSON.stringify(rows)).not.toContain(customer);
  });

  it("refuses an event tied to nothing, and batches over 1000", async () => {
    const { key } = await newKey();
    const orphan = await post("/v1/outcomes", { kpi: "revenue", value: 1 }, key);
    expect(orphan.status).toBe(400);
    expect((await json<ErrorJson>(orphan)).error.message).toContain("predictionId");
    const big = Array.from({ length: 1001 }, () => ({ key: "k", kpi: "x", value: 1 }));
    expect((await post("/v1/outcomes", big, key)).status).toBe(400);
    const nan = await post("/v1/outcomes", { key: "k", kpi: "bad kpi!", value: 1 }, key);
    expect((await json<ErrorJson>(nan)).error.message).toContain("kpi");
  });
});
