/**
 * Alerts count windows, not runs, and a client cannot open alert dimensions
 * of its own: the monitoring job and the rules over real rows in Postgres.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { runMonitoring } from "../../functions/jobs/monitoring";
import { OTHER_FIELDS } from "../../functions/monitoring/metrics";
import { storeLogs } from "../../functions/queue/prediction-logs";
import demo from "../../scripts/demo/demo-credit-risk.json";
import type { PredictionEvent } from "../../shared/inference/events";
import { call, createModel, httpUpstream, json, uniqueName } from "./helpers";
import { events, rowsFrom } from "./traffic-helpers";

/** Notices go nowhere here: no destination takes these models. */
const quiet = { health: false };

interface AlertJson {
  state: string;
  rule: string;
  dimension: string;
  count: number;
  version: string;
}

async function alertsOf(model: string, rule: string): Promise<AlertJson[]> {
  const response = await call(`/admin/alerts?model=${model}&rule=${rule}&limit=200`);
  expect(response.status).toBe(200);
  return (await json<{ items: AlertJson[] }>(response)).items;
}

async function driftingModel(start: number, windows: number) {
  const model = uniqueName("win");
  await createModel({ ...demo.model, name: model, public: false });
  const created = await call(`/admin/models/${model}/versions`, {
    method: "POST",
    body: { version: "v1", upstream: httpUpstream, baseline: { rows: rowsFrom(model, 5, 800) } },
  });
  expect(created.status).toBe(201);
  const logged = Array.from({ length: windows }, (_, i) =>
    events(model, rowsFrom(model, 70 + i, 1200, ["income:shift=2sd@0"]), start + i * 900_000),
  ).flat();
  await storeLogs(env, logged, []);
  return model;
}

describe("alert evaluations counted by window", () => {
  it("does not confirm a drift alert from two runs over the same window", {
    timeout: 60_000,
  }, async () => {
    const start = Date.parse("2026-10-12T06:00:00.000Z");
    const model = await driftingModel(start, 2);
    const afterFirst = new Date(start + 900_000 + 20_000);
    // The cron's run, then one asked for on demand a minute later: one window, seen twice.
    await runMonitoring(env, afterFirst, quiet);
    await runMonitoring(env, new Date(afterFirst.getTime() + 60_000), quiet);
    const pending = (await alertsOf(model, "drift")).filter((a) => a.dimension === "income");
    expect(pending.map((a) => [a.state, a.count])).toEqual([["pending", 1]]);
    // The next window drifts too: now it is two windows, and the alert fires.
    await runMonitoring(env, new Date(start + 2 * 900_000 + 20_000), quiet);
    const firing = (await alertsOf(model, "drift")).filter((a) => a.dimension === "income");
    expect(firing.map((a) => [a.state, a.count])).toEqual([["firing", 2]]);
  });
});

describe("schema rejections by field", () => {
  it("folds field names outside the input schema into one dimension", {
    timeout: 60_000,
  }, async () => {
    const start = Date.parse("2026-10-12T09:00:00.000Z");
    const model = uniqueName("rej");
    await createModel({ ...demo.model, name: model, public: false });
    const [accepted] = events(model, rowsFrom(model, 3, 1), start);
    const rejected = (path: string, i: number): PredictionEvent => ({
      ...(accepted as PredictionEvent),
      role: "rejected",
      predictionId: crypto.randomUUID(),
      version: "",
      prediction: null,
      inputs: {},
      status: "rejected",
      issues: [{ path, message: "is not allowed" }],
      timestamp: new Date(start + 1000 + i).toISOString(),
    });
    // A client sends names of its own choosing; one is a real feature.
    const names = ["inputs.extra", "inputs.zzz_1", "inputs.zzz_2", "inputs", "inputs.age"];
    await storeLogs(env, [accepted as PredictionEvent, ...names.map(rejected)], []);
    await runMonitoring(env, new Date(start + 900_000 + 20_000), quiet);
    const response = await call(
      `/admin/models/${model}/monitoring?from=${new Date(start).toISOString()}&to=${new Date(start + 900_000).toISOString()}&metric=schema_rejection_rate&window=900`,
    );
    const rows = (
      await json<{ items: { dimension: string; details: { rejected: number } }[] }>(response)
    ).items;
    expect(Object.fromEntries(rows.map((r) => [r.dimension, r.details.rejected]))).toEqual({
      "": 5,
      age: 1,
      [OTHER_FIELDS]: 4,
    });
  });
});
