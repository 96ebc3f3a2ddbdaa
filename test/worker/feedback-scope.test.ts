/**
 * Who may label what: a label or an outcome names its model, the reporting
 * key must cover it, a label must fit the model, and the monitoring job joins
 * a label only to a prediction of the model it names, counting the others.
 */
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { v7 } from "uuid";
import { describe, expect, it } from "vitest";
import { PREDICTION_ID_CLOCK_SKEW_MS } from "../../functions/inference/feedback";
import { runMonitoring } from "../../functions/jobs/monitoring";
import { storeLogs } from "../../functions/queue/prediction-logs";
import { keyHmac, type PredictionEvent } from "../../shared/inference/events";
import {
  call,
  classificationModel,
  createModel,
  type ErrorJson,
  json,
  query,
  regressionModel,
  uniqueName,
} from "./helpers";
import type { ResultRow } from "./traffic-helpers";

const WINDOW = 900_000;

async function keyFor(...models: string[]): Promise<string> {
  const response = await call("/admin/keys", {
    method: "POST",
    body: { name: `scope-${models.join("-")}`, models },
  });
  expect(response.status).toBe(201);
  return (await json<{ key: string }>(response)).key;
}

const post = (path: string, body: unknown, key: string) =>
  call(path, { method: "POST", body, token: key });

/** A label or an outcome for a prediction, as the path takes it. */
const item = (path: string, predictionId: string, extra: Record<string, unknown> = {}) =>
  path === "/v1/feedback"
    ? { predictionId, label: "fraud", ...extra }
    : { predictionId, kpi: "revenue", value: 1, ...extra };

async function expectRefused(response: Response, status: number, code: string) {
  expect(response.status).toBe(status);
  const error = await json<ErrorJson>(response);
  expect(error.error.code).toBe(code);
  return error.error;
}

/** Served results of one model, one per id, at their ids' times. */
async function served(
  model: string,
  ids: string[],
  label: (i: number) => string,
  key?: (i: number) => string,
) {
  const events: PredictionEvent[] = [];
  for (const [i, id] of ids.entries()) {
    const at = Number.parseInt(id.replace(/-/g, "").slice(0, 12), 16);
    events.push({
      role: "served",
      predictionId: id,
      requestId: `req-${id}`,
      model,
      version: "v1",
      prediction: { label: label(i), score: label(i) === "fraud" ? 0.9 : 0.1 },
      inputs: { amount: 1, country: "DE" },
      attributes: {},
      keyHmac: key ? await keyHmac(env.LOG_HMAC_KEY, key(i)) : null,
      latencyMs: 1,
      status: "ok",
      errorCode: null,
      stateVersion: 1,
      timestamp: new Date(at).toISOString(),
    });
  }
  await storeLogs(env, events, []);
}

async function results(model: string, from: number): Promise<ResultRow[]> {
  const response = await call(
    `/admin/models/${model}/monitoring?from=${new Date(from).toISOString()}&to=${new Date(from + WINDOW).toISOString()}`,
  );
  expect(response.status).toBe(200);
  return (await json<{ items: ResultRow[] }>(response)).items.filter(
    (r) => r.windowSeconds === 900,
  );
}

const find = (rows: ResultRow[], version: string, metric: string, dimension = "") =>
  rows.filter((r) => r.version === version && r.metric === metric && r.dimension === dimension);

describe("labels name their model", () => {
  it("takes the model from a key that covers one, and requires it of a key that covers several", async () => {
    const [a, b] = [uniqueName("sa"), uniqueName("sb")];
    await createModel(classificationModel(a));
    await createModel(classificationModel(b));
    const single = await keyFor(a);
    const both = await keyFor(a, b);
    const [p1, p2] = [v7(), v7()];

    expect((await post("/v1/feedback", { predictionId: p1, label: "fraud" }, single)).status).toBe(
      202,
    );
    const missing = await expectRefused(
      await post(
        "/v1/feedback",
        [
          { predictionId: p1, label: "fraud", model: a },
          { predictionId: p2, label: "legit" },
        ],
        both,
      ),
      400,
      "VALIDATION_FAILED",
    );
    expect(missing.details).toEqual([
      { path: "[1].model", message: "is required: this API key covers 2 models" },
    ]);
    const named = await post("/v1/feedback", { predictionId: p2, label: "legit", model: b }, both);
    expect(named.status).toBe(202);
    const rows = await query<{ prediction_id: string; model: string }>(
      sql`SELECT prediction_id, model FROM feedback WHERE prediction_id IN (${p1}, ${p2}) ORDER BY model`,
    );
    expect(rows.map((r) => [r.prediction_id, r.model]).sort()).toEqual(
      [
        [p1, a],
        [p2, b],
      ].sort(),
    );
    const events = await query<{ model: string }>(
      sql`SELECT model FROM feedback_events WHERE prediction_id = ${p2}`,
    );
    expect(events).toEqual([{ model: b }]);
  });

  it("answers 404 for a model the key does not cover, whether or not it exists", async () => {
    const [a, b] = [uniqueName("sa"), uniqueName("sb")];
    await createModel(classificationModel(a));
    await createModel(classificationModel(b));
    const key = await keyFor(b);
    const predictionId = v7();
    for (const path of ["/v1/feedback", "/v1/outcomes"]) {
      const existing = await expectRefused(
        await post(path, item(path, predictionId, { model: a }), key),
        404,
        "MODEL_NOT_FOUND",
      );
      const invented = await expectRefused(
        await post(path, item(path, predictionId, { model: "no-such-model" }), key),
        404,
        "MODEL_NOT_FOUND",
      );
      // The same answer but for the name: nothing to tell a real model from an invented one.
      expect(existing.message.replace(a, "NAME")).toBe(
        invented.message.replace("no-such-model", "NAME"),
      );
    }
    const stored = await query<{ n: string }>(
      sql`SELECT count(*) AS n FROM feedback WHERE prediction_id = ${predictionId}`,
    );
    expect(Number(stored[0]?.n)).toBe(0);
  });

  it("refuses a label that does not fit the model's task and classes, at once", async () => {
    const [classifier, regressor] = [uniqueName("cls"), uniqueName("reg")];
    await createModel(classificationModel(classifier));
    await createModel(regressionModel(regressor));
    const key = await keyFor(classifier, regressor);
    const predictionId = v7();
    const refused = await expectRefused(
      await post(
        "/v1/feedback",
        [
          { predictionId, model: classifier, label: "maybe" },
          { predictionId, model: classifier, label: 1 },
          { predictionId, model: regressor, label: "12.5" },
          { predictionId, model: classifier, label: "fraud" },
          { predictionId, model: regressor, label: 12.5 },
        ],
        key,
      ),
      400,
      "VALIDATION_FAILED",
    );
    expect(refused.details).toEqual([
      { path: "[0].label", message: `is not one of the classes of '${classifier}'` },
      { path: "[1].label", message: `must be one of the classes of '${classifier}', as a string` },
      { path: "[2].label", message: `must be a number: '${regressor}' is a regression model` },
    ]);
    // All or nothing.
    const stored = await query<{ n: string }>(
      sql`SELECT count(*) AS n FROM feedback_events WHERE prediction_id = ${predictionId}`,
    );
    expect(Number(stored[0]?.n)).toBe(0);
    const fitting = await post(
      "/v1/feedback",
      [
        { predictionId, model: classifier, label: "fraud" },
        { predictionId, model: regressor, label: 12.5 },
      ],
      key,
    );
    expect(fitting.status).toBe(202);
  });

  it.each([
    ["not a UUID", "p-1"],
    ["a UUIDv7 from the future", v7({ msecs: Date.now() + 3_600_000 })],
  ])("refuses a prediction id that is %s", async (_, predictionId) => {
    const model = uniqueName("pid");
    await createModel(classificationModel(model));
    const key = await keyFor(model);
    for (const path of ["/v1/feedback", "/v1/outcomes"]) {
      const refused = await expectRefused(
        await post(path, item(path, predictionId), key),
        400,
        "VALIDATION_FAILED",
      );
      expect(refused.details?.map((d) => d.path)).toEqual(["predictionId"]);
    }
  });

  it("takes a prediction id in any case, within the clock skew, stored as issued", async () => {
    const model = uniqueName("pid");
    await createModel(classificationModel(model));
    const key = await keyFor(model);
    const soon = v7({ msecs: Date.now() + PREDICTION_ID_CLOCK_SKEW_MS / 2 });
    const older = crypto.randomUUID(); // a v4 id, as issued before ids carried their time
    const response = await post(
      "/v1/feedback",
      [
        { predictionId: soon.toUpperCase(), label: "fraud" },
        { predictionId: older, label: "legit" },
      ],
      key,
    );
    expect(response.status).toBe(202);
    const rows = await query<{ prediction_id: string }>(
      sql`SELECT prediction_id FROM feedback
          WHERE prediction_id IN (${soon}, ${soon.toUpperCase()}, ${older})`,
    );
    expect(rows.map((r) => r.prediction_id).sort()).toEqual([soon, older].sort());
  });
});

describe("the join keeps labels and outcomes to their model", () => {
  it("drops and counts another model's labels on a prediction, leaving its own label in place", {
    timeout: 60_000,
  }, async () => {
    const [a, b] = [uniqueName("victim"), uniqueName("other")];
    await createModel(classificationModel(a));
    await createModel(classificationModel(b));
    const [keyA, keyB] = [await keyFor(a), await keyFor(b)];
    const start = Date.parse("2026-09-14T12:00:00.000Z");
    const ids = Array.from({ length: 40 }, (_, i) => v7({ msecs: start + i * 1000 }));
    const truth = (i: number) => (i % 4 === 0 ? "fraud" : "legit");
    // A perfect model: every answer is the truth.
    await served(a, ids, truth);
    const own = ids.map((predictionId, i) => ({ predictionId, label: truth(i) }));
    expect((await post("/v1/feedback", own, keyA)).status).toBe(202);
    // A key for model b "relabels" half of a's predictions, every label wrong.
    const poison = ids.slice(0, 20).map((predictionId, i) => ({
      predictionId,
      label: truth(i) === "fraud" ? "legit" : "fraud",
    }));
    expect((await post("/v1/feedback", poison, keyB)).status).toBe(202);

    await runMonitoring(env, new Date(start + WINDOW + 30_000), { settleMs: 0, health: false });
    const rows = await results(a, start);
    expect(find(rows, "v1", "accuracy").map((r) => r.value)).toEqual([1]);
    expect(find(rows, "v1", "label_coverage").map((r) => r.value)).toEqual([1]);
    expect(find(rows, "v1", "labels_wrong_model")).toEqual([
      expect.objectContaining({ value: 20, status: "warn", role: "served" }),
    ]);
    // Model b has no predictions here: nothing of it is computed from a's.
    expect(await results(b, start)).toEqual([]);

    const current = await query<{ model: string; label: string }>(
      sql`SELECT model, label FROM feedback WHERE prediction_id = ${ids[0]} ORDER BY model`,
    );
    expect(current).toEqual(
      [
        { model: a, label: "fraud" },
        { model: b, label: "legit" },
      ].sort((x, y) => x.model.localeCompare(y.model)),
    );
  });

  it("counts an outcome only for the model it names", { timeout: 60_000 }, async () => {
    const [a, b] = [uniqueName("victim"), uniqueName("other")];
    await createModel(classificationModel(a));
    await createModel(classificationModel(b));
    const [keyA, keyB] = [await keyFor(a), await keyFor(b)];
    const start = Date.parse("2026-09-15T12:00:00.000Z");
    const customer = (i: number) => `scope-customer-${start}-${i}`;
    const idsA = Array.from({ length: 4 }, (_, i) => v7({ msecs: start + i * 1000 }));
    const idsB = Array.from({ length: 4 }, (_, i) => v7({ msecs: start + 500 + i * 1000 }));
    // Both models answered the same customers.
    await served(a, idsA, () => "legit", customer);
    await served(b, idsB, () => "legit", customer);
    const at = new Date(start + 60_000).toISOString();
    const ownA = idsA.map((predictionId) => ({ predictionId, kpi: "revenue", value: 10, at }));
    expect((await post("/v1/outcomes", ownA, keyA)).status).toBe(202);
    const fromB = [
      // By a's prediction ids: dropped, and counted for a.
      ...idsA
        .slice(0, 3)
        .map((predictionId) => ({ predictionId, kpi: "revenue", value: 1000, at })),
      // By the customers' keys: b's answers only.
      ...[0, 1].map((i) => ({ key: customer(i), kpi: "converted", value: 1, at })),
    ];
    expect((await post("/v1/outcomes", fromB, keyB)).status).toBe(202);

    await runMonitoring(env, new Date(start + WINDOW + 30_000), { settleMs: 0, health: false });
    const rowsA = await results(a, start);
    expect(find(rowsA, "v1", "kpi_count", "revenue").map((r) => r.value)).toEqual([4]);
    expect(find(rowsA, "v1", "kpi_sum", "revenue").map((r) => r.value)).toEqual([40]);
    expect(find(rowsA, "v1", "kpi_count", "converted")).toEqual([]);
    expect(find(rowsA, "", "outcomes_wrong_model")).toEqual([
      expect.objectContaining({ value: 3, status: "warn", role: "all" }),
    ]);
    const rowsB = await results(b, start);
    expect(find(rowsB, "v1", "kpi_count", "converted").map((r) => r.value)).toEqual([2]);
    expect(find(rowsB, "v1", "kpi_count", "revenue")).toEqual([]);
  });
});
