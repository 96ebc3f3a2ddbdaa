/**
 * A model's data policy holds before any log event exists: a dropped field
 * or attribute is nowhere in what is sent to the queue or stored, a hashed
 * one is its HMAC, for served, rejected and shadow results alike.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import worker from "../../functions/index";
import { call, type ErrorJson, json, query, recordingQueue } from "./helpers";
import { deliverLogs } from "./log-helpers";
import { modelWithShadow } from "./rollout-helpers";

async function send(model: string, body: unknown) {
  const { messages, queue } = recordingQueue();
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`http://airlock.test/v1/models/${model}/predict`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    }),
    { ...env, PREDICTION_LOGS: queue } as unknown as Env,
    ctx,
  );
  await response.text();
  await waitOnExecutionContext(ctx);
  return { response, messages };
}

describe("data policy", () => {
  it("drops and hashes fields and attributes before the events exist", async () => {
    const model = await modelWithShadow("dp");

    const unknown = await call(`/admin/models/${model}/data-policy`, {
      method: "PUT",
      body: { fields: { income: "drop" } },
    });
    expect(unknown.status).toBe(400);
    expect((await json<ErrorJson>(unknown)).error.details?.[0]?.path).toBe("fields.income");

    const set = await call(`/admin/models/${model}/data-policy`, {
      method: "PUT",
      body: {
        fields: { amount: "drop", country: "hash" },
        attributes: { note: "drop", customer_email: "hash" },
      },
    });
    expect(set.status, await set.clone().text()).toBe(200);
    expect(await json(await call(`/admin/models/${model}/data-policy`))).toMatchObject({
      set: true,
      fields: { amount: "drop", country: "hash" },
      attributes: { note: "drop", customer_email: "hash" },
    });

    const probe = crypto.randomUUID();
    const email = `probe-${probe}@example.com`;
    const note = `note-${probe}`;
    const amount = 987654.321;
    const served = await send(model, {
      inputs: { amount, country: "FR" },
      attributes: { customer_email: email, note, region: "eu" },
      key: `customer-${probe}`,
    });
    expect(served.response.status).toBe(200);
    const rejected = await send(model, {
      inputs: { amount, country: "XX" },
      attributes: { customer_email: email, note },
    });
    expect(rejected.response.status).toBe(400);

    const sent = JSON.stringify([...served.messages, ...rejected.messages]);
    for (const raw of [email, note, String(amount), probe]) expect(sent).not.toContain(raw);
    const results = [...served.messages, ...rejected.messages].flatMap((m) => m.results);
    expect(results.map((r) => r.role).sort()).toEqual(["rejected", "served", "shadow"]);
    for (const result of results) {
      expect(result.inputs).not.toHaveProperty("amount");
      expect((result.inputs as { country: string }).country).toMatch(/^hmac:[0-9a-f]{64}$/);
      expect(result.attributes).not.toHaveProperty("note");
      expect(result.attributes.customer_email).toMatch(/^hmac:[0-9a-f]{64}$/);
    }
    // Equal values hash alike, so they still join.
    const [first, second] = results;
    expect(first?.attributes.customer_email).toBe(second?.attributes.customer_email);
    expect(results.find((r) => r.role === "served")?.attributes.region).toBe("eu");

    const delivered = await deliverLogs(
      [...served.messages, ...rejected.messages].map((body) => ({ body })),
    );
    expect(delivered.retryMessages).toEqual([]);
    const ids = results.map((r) => r.predictionId);
    const [found] = await query<{ n: string }>(sql`
      SELECT (SELECT count(*) FROM predictions p WHERE p.prediction_id = ANY(${`{${ids.join(",")}}`}::text[])
          AND (row_to_json(p)::text LIKE ${`%${probe}%`} OR p.inputs ? 'amount'))
        + (SELECT count(*) FROM prediction_refs r WHERE r.prediction_id = ANY(${`{${ids.join(",")}}`}::text[])
          AND row_to_json(r)::text LIKE ${`%${probe}%`})
        + (SELECT count(*) FROM rejected_requests j WHERE j.prediction_id = ANY(${`{${ids.join(",")}}`}::text[])
          AND (row_to_json(j)::text LIKE ${`%${probe}%`} OR j.inputs ? 'amount')) AS n`);
    expect(Number(found?.n)).toBe(0);
    const [stored] = await query<{ n: string }>(
      sql`SELECT count(*) AS n FROM predictions WHERE prediction_id = ANY(${`{${ids.join(",")}}`}::text[])`,
    );
    expect(Number(stored?.n)).toBe(2);

    const trail = await json<{ items: { action: string }[] }>(
      await call(`/admin/audit?target=models/${model}/data-policy&limit=1`),
    );
    expect(trail.items[0]?.action).toBe("data_policy.update");
  });
});
