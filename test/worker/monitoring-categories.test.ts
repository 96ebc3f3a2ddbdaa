/**
 * Categories are data, whatever they are called: a value named like a
 * built-in property of JavaScript objects is counted like any other.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { runMonitoring } from "../../functions/jobs/monitoring";
import { storeLogs } from "../../functions/queue/prediction-logs";
import type { PredictionEvent } from "../../shared/inference/events";
import { call, classificationModel, createModel, httpUpstream, json, uniqueName } from "./helpers";
import type { ResultRow } from "./traffic-helpers";

describe("categories named like object properties", () => {
  it("are counted as unseen categories, not mistaken for known ones", {
    timeout: 60_000,
  }, async () => {
    const model = uniqueName("cat");
    await createModel(classificationModel(model, { public: false }));
    const countries = ["DE", "FR", "US"];
    const baseline = Array.from({ length: 300 }, (_, i) => ({
      amount: 10 + (i % 50),
      country: countries[i % 3],
    }));
    const created = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: { version: "v1", upstream: httpUpstream, baseline: { rows: baseline } },
    });
    expect(created.status).toBe(201);
    const start = Date.parse("2026-10-14T05:00:00.000Z");
    const window = ["constructor", "__proto__", "toString", "DE"];
    const logged: PredictionEvent[] = Array.from({ length: 400 }, (_, i) => ({
      role: "served",
      predictionId: crypto.randomUUID(),
      requestId: crypto.randomUUID(),
      model,
      version: "v1",
      prediction: { label: "legit", score: 0.1 },
      inputs: { amount: 10 + (i % 50), country: window[i % 4] },
      attributes: {},
      keyHmac: null,
      latencyMs: 2,
      status: "ok",
      errorCode: null,
      stateVersion: 1,
      timestamp: new Date(start + i * 1000).toISOString(),
    }));
    await storeLogs(env, logged, []);
    await runMonitoring(env, new Date(start + 900_000 + 20_000), { health: false });
    const response = await call(
      `/admin/models/${model}/monitoring?from=${new Date(start).toISOString()}&to=${new Date(start + 900_000).toISOString()}&window=900`,
    );
    const rows = (await json<{ items: ResultRow[] }>(response)).items;
    const unseen = rows.find(
      (r) => r.metric === "unseen_category_rate" && r.dimension === "country",
    );
    expect(unseen?.value).toBe(0.75);
    expect(unseen?.details.unseen).toBe(300);
    const drift = rows.find((r) => r.metric === "drift" && r.dimension === "country");
    expect(drift?.status).toBe("alert");
    expect(drift?.value).not.toBeNull();
  });
});
