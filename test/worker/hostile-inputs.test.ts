import {
  createExecutionContext,
  runInDurableObject,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import type { ModelRollout } from "../../durable-objects/model-rollout";
import worker from "../../functions/index";
import type { PredictionLogMessage } from "../../shared/inference/events";
import {
  call,
  classificationModel,
  createModel,
  type ErrorJson,
  json,
  query,
  recordingQueue,
  uniqueName,
} from "./helpers";
import { deliverLogs } from "./log-helpers";
import { putRollout, type RolloutJson, rolloutStub } from "./rollout-helpers";

/**
 * Hostile bodies sent among other clients' valid traffic: each gets a 400
 * naming its field, and costs nobody else a stored prediction. The requests
 * of one test share one queue binding, so their results share the
 * isolate's log buffer, as concurrent requests in production do.
 */

/** A public model that answers from its static fallback (killed), so no upstream is needed. */
async function publicModel(prefix: string, properties: Record<string, unknown> = {}) {
  const model = uniqueName(prefix);
  await createModel(
    classificationModel(model, {
      public: true,
      fallback: { kind: "static", output: { label: "legit" } },
      inputSchema: {
        type: "object",
        properties: {
          amount: { type: "number", minimum: 0 },
          country: { type: "string", enum: ["DE", "FR", "US"] },
          ...properties,
        },
        required: ["amount"],
      },
    }),
  );
  await putRollout(model, { leaseMs: 250 });
  const killed = await call(`/admin/models/${model}/kill-switch`, {
    method: "POST",
    body: { scope: "model", reason: "answer from the fallback" },
  });
  expect(killed.status).toBe(200);
  return model;
}

/** Sends a raw body (text, so escapes such as \ud800 arrive as written) with the shared queue. */
async function send(
  path: string,
  body: string,
  queue: ReturnType<typeof recordingQueue>["queue"],
): Promise<Response> {
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`http://airlock.test${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    }),
    { ...env, PREDICTION_LOGS: queue } as unknown as Env,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return response;
}

const nested = (levels: number) => `${"[".repeat(levels)}1${"]".repeat(levels)}`;

/** Sends `hostile` in the middle of eight valid predictions to other models; returns all answers. */
async function amongValidTraffic(hostile: { path: string; body: string }) {
  const others = [await publicModel("other-a"), await publicModel("other-b")];
  const { messages, queue } = recordingQueue();
  const valid = Array.from({ length: 8 }, (_, i) => ({
    path: `/v1/models/${others[i % 2]}/predict`,
    body: JSON.stringify({ inputs: { amount: i, country: "DE" }, attributes: { seg: `s${i}` } }),
  }));
  const responses = await Promise.all([
    ...valid.slice(0, 4).map((r) => send(r.path, r.body, queue)),
    send(hostile.path, hostile.body, queue),
    ...valid.slice(4).map((r) => send(r.path, r.body, queue)),
  ]);
  const hostileResponse = responses[4] as Response;
  const validResponses = responses.filter((_, i) => i !== 4);
  for (const response of validResponses) expect(response.status).toBe(200);
  const ids = validResponses.map((r) => r.headers.get("x-airlock-prediction-id") ?? "");
  return { hostileResponse, ids, messages, others };
}

/** Delivers what was sent to the consumer and says which of `ids` are stored. */
async function storedAfterDelivery(messages: PredictionLogMessage[], ids: string[]) {
  const result = await deliverLogs(messages.map((body) => ({ body })));
  expect(result.retryMessages).toEqual([]);
  const rows = await query<{ prediction_id: string }>(
    sql`SELECT prediction_id FROM predictions
        WHERE prediction_id IN (SELECT jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb))`,
  );
  return rows.map((r) => r.prediction_id).sort();
}

describe("hostile inputs among other clients' traffic", () => {
  it("refuses a body nested 10,000 levels deep, naming the field, and stores every valid prediction sent with it", async () => {
    const target = await publicModel("deep");
    const { hostileResponse, ids, messages } = await amongValidTraffic({
      path: `/v1/models/${target}/predict`,
      body: `{"inputs":{"amount":${nested(10_000)}}}`,
    });
    expect(hostileResponse.status).toBe(400);
    const error = (await json<ErrorJson>(hostileResponse)).error;
    expect(error.code).toBe("BODY_TOO_DEEP");
    expect(error.message).toMatch(
      /^Invalid body: inputs\.amount\[0\]\[0\]\[0\]\[0\]…: nests arrays or objects more than 32 levels deep$/,
    );
    expect(await storedAfterDelivery(messages, ids)).toEqual([...ids].sort());
  });

  it("refuses a NUL in an attribute, naming it, and stores every valid prediction sent with it", async () => {
    const target = await publicModel("nul-attr");
    const { hostileResponse, ids, messages } = await amongValidTraffic({
      path: `/v1/models/${target}/predict`,
      body: '{"inputs":{"amount":1,"country":"DE"},"attributes":{"seg":"a\\u0000b"}}',
    });
    expect(hostileResponse.status).toBe(400);
    const error = (await json<ErrorJson>(hostileResponse)).error;
    expect(error.code).toBe("VALIDATION_FAILED");
    expect(error.details).toEqual([
      {
        path: "attributes.seg",
        message: "contains a NUL character (U+0000), which cannot be stored",
      },
    ]);
    expect(await storedAfterDelivery(messages, ids)).toEqual([...ids].sort());
  });

  it("refuses a lone surrogate in a string feature, on /v1 and /v2, naming it", async () => {
    const target = await publicModel("surrogate", { note: { type: "string" } });
    const { hostileResponse, ids, messages } = await amongValidTraffic({
      path: `/v1/models/${target}/predict`,
      body: '{"inputs":{"amount":1,"note":"x\\ud800y"}}',
    });
    expect(hostileResponse.status).toBe(400);
    const error = (await json<ErrorJson>(hostileResponse)).error;
    expect(error.details).toEqual([
      {
        path: "inputs.note",
        message:
          "contains an unpaired UTF-16 surrogate (U+D800 to U+DFFF), which is not valid Unicode",
      },
    ]);
    expect(await storedAfterDelivery(messages, ids)).toEqual([...ids].sort());

    const { queue } = recordingQueue();
    const v2 = await send(
      `/v2/models/${target}/infer`,
      '{"inputs":[{"name":"note","shape":[1],"datatype":"BYTES","data":["\\udc00"]}]}',
      queue,
    );
    expect(v2.status).toBe(400);
    expect(v2.headers.get("x-airlock-error-code")).toBe("VALIDATION_FAILED");
    expect(((await v2.json()) as { error: string }).error).toMatch(
      /^Invalid body: inputs\[0\]\.data\[0\]: contains an unpaired UTF-16 surrogate/,
    );
  });

  it("refuses a NUL in a kill-switch reason, naming it; the model's later changes reach the audit trail", async () => {
    const model = uniqueName("nul-kill");
    await createModel(classificationModel(model));
    await putRollout(model, { leaseMs: 250 });
    const refused = await call(`/admin/models/${model}/kill-switch`, {
      method: "POST",
      body: '{"scope":"challengers","reason":"nul\\u0000reason"}',
    });
    expect(refused.status).toBe(400);
    expect((await json<ErrorJson>(refused)).error.details).toEqual([
      { path: "reason", message: "contains a NUL character (U+0000), which cannot be stored" },
    ]);
    const engaged = await call(`/admin/models/${model}/kill-switch`, {
      method: "POST",
      body: { scope: "challengers", reason: "a reason that can be stored" },
    });
    expect(engaged.status).toBe(200);
    expect((await call(`/admin/models/${model}/kill-switch`, { method: "DELETE" })).status).toBe(
      200,
    );
    await runInDurableObject(rolloutStub(model), (instance: ModelRollout) =>
      instance.flushOutbox(),
    );
    const view = await json<RolloutJson>(await call(`/admin/models/${model}/rollout`));
    expect(view.killSwitch).toEqual({ engaged: false });
    expect(view.pendingAuditEvents).toBe(0);
    const audit = await json<{ items: { action: string }[] }>(
      await call(`/admin/audit?target=models/${model}/rollout&limit=50`),
    );
    // Newest first; the object's first configuration is a registry sync.
    expect(audit.items.map((e) => e.action)).toEqual([
      "kill_switch.release",
      "kill_switch.engage",
      "registry.sync",
    ]);
  });

  it("refuses NUL in an admin query or path, and an admin body nested too deep, naming each", async () => {
    const query400 = await call("/admin/audit?target=models%00x");
    expect(query400.status).toBe(400);
    expect((await json<ErrorJson>(query400)).error).toMatchObject({
      code: "VALIDATION_FAILED",
      details: [{ path: "target", message: expect.stringContaining("NUL") }],
    });
    const path400 = await call("/admin/predictions/%00");
    expect(path400.status).toBe(400);
    expect((await json<ErrorJson>(path400)).error.code).toBe("VALIDATION_FAILED");
    const deep = await call("/admin/models", {
      method: "POST",
      body: `{"name":"deep-body","description":${nested(40)}}`,
    });
    expect(deep.status).toBe(400);
    expect((await json<ErrorJson>(deep)).error).toMatchObject({
      code: "BODY_TOO_DEEP",
      details: [{ path: "description[0][0][0][0][0]…" }],
    });
    // Anonymous callers learn nothing but 401, whatever they send.
    const anonymous = await call("/admin/models", {
      method: "POST",
      token: null,
      body: `{"name":${nested(10_000)}}`,
    });
    expect(anonymous.status).toBe(401);
  });
});

describe("rollout outbox: one event cannot hold up the others", () => {
  it("writes an event holding a NUL in escaped form, and the events after it, in one flush", async () => {
    const model = uniqueName("outbox");
    await createModel(classificationModel(model));
    await putRollout(model, { leaseMs: 250 });
    // Configured first: its registry sync is in the trail before the object's own changes.
    expect((await call(`/admin/models/${model}/rollout`)).status).toBe(200);
    const stub = rolloutStub(model);
    // Straight to the object, past the edge that refuses such a reason.
    const context = { actor: "test:outbox", requestId: null };
    await runInDurableObject(stub, async (instance: ModelRollout) => {
      const engaged = await instance.engageKillSwitch(
        model,
        { scope: "challengers", reason: "nul\u0000reason" },
        context,
      );
      expect(engaged.ok).toBe(true);
      await instance.releaseKillSwitch(model, context);
    });
    // The alarm may have flushed some already; this flush writes what is left.
    await runInDurableObject(stub, (instance: ModelRollout) => instance.flushOutbox());
    const rows = await query<{ action: string; after: Record<string, unknown> }>(
      sql`SELECT action, after FROM audit_log WHERE target = ${`models/${model}/rollout`}
          ORDER BY id`,
    );
    expect(rows.map((r) => r.action)).toEqual([
      "registry.sync",
      "kill_switch.engage",
      "kill_switch.release",
    ]);
    const kept = rows[1]?.after as { unstorable: boolean; json: string };
    expect(kept.unstorable).toBe(true);
    expect(JSON.parse(kept.json).killSwitch.reason).toBe("nul\u0000reason");
    const view = await json<RolloutJson>(await call(`/admin/models/${model}/rollout`));
    expect(view.pendingAuditEvents).toBe(0);
  });
});
