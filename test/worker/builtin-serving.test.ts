import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import worker from "../../functions/index";
import { builtinCacheKeys, clearBuiltinCache } from "../../functions/inference/builtin";
import { modelArtifacts, models, modelVersions } from "../../shared/db/schema";
import {
  call,
  classificationModel,
  createModel,
  database,
  deadDatabaseProxy,
  type ErrorJson,
  json,
  recordingQueue,
  regressionModel,
  uniqueName,
} from "./helpers";
import { putRollout } from "./rollout-helpers";

const schema = {
  type: "object",
  properties: {
    income: { type: "number", minimum: 0 },
    late_payments: { type: "integer", minimum: 0 },
    has_mortgage: { type: "boolean" },
    country: { type: "string" },
  },
  required: ["income", "late_payments", "has_mortgage"],
};

/** P(default) = sigmoid(-0.00002 income + 0.8 late_payments - 0.5 has_mortgage - 1). */
const logistic = {
  kind: "builtin",
  format: "sklearn-linear",
  model: {
    estimator: "LogisticRegression",
    features: ["income", "late_payments", "has_mortgage"],
    coef: [[-0.00002, 0.8, -0.5]],
    intercept: [-1],
    classes: ["repaid", "default"],
  },
};

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

async function builtinModel(
  versions: Record<string, unknown>,
  rollout: Record<string, unknown> = { champion: "v1" },
) {
  const model = uniqueName("bi");
  await createModel(
    classificationModel(model, {
      inputSchema: schema,
      classes: ["repaid", "default"],
      positiveClass: "default",
      public: true,
    }),
  );
  for (const [version, upstream] of Object.entries(versions)) {
    const response = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: { version, upstream },
    });
    if (response.status !== 201) throw new Error(`${response.status} ${await response.text()}`);
  }
  expect((await putRollout(model, { leaseMs: 250, ...rollout })).status).toBe(200);
  return model;
}

/** Calls the Worker module these tests share state with (its isolate caches). */
async function predict(model: string, inputs: unknown, overrides: Partial<Env> = {}) {
  const { queue } = recordingQueue();
  return predictWith(model, inputs, {
    PREDICTION_LOGS: queue,
    ...overrides,
  } as unknown as Partial<Env>);
}

async function predictWith(model: string, inputs: unknown, overrides: Partial<Env>) {
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`http://airlock.test/v1/models/${model}/predict`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ inputs }),
    }),
    { ...env, ...overrides } as Env,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return response;
}

const row = { income: 52_000, late_payments: 2, has_mortgage: true };
const expectedScore = sigmoid(-0.00002 * 52_000 + 0.8 * 2 - 0.5 - 1);

describe("builtin models: serving", () => {
  it("serves a logistic model in the isolate, in canonical form", async () => {
    const model = await builtinModel({ v1: logistic });
    const response = await predict(model, row);
    expect(response.status).toBe(200);
    expect(response.headers.get("x-airlock-version")).toBe("v1");
    const body = await json<{ outputs: { label: string; score: number }; fallback: boolean }>(
      response,
    );
    expect(body.fallback).toBe(false);
    expect(body.outputs.score).toBeCloseTo(expectedScore, 12);
    expect(body.outputs.label).toBe(expectedScore >= 0.5 ? "default" : "repaid");
  });

  it("serves a batch, and applies the version's threshold", async () => {
    const model = await builtinModel({ v1: { ...logistic, threshold: 0.95 } });
    const rows = [row, { ...row, late_payments: 9 }, { ...row, income: 1_000_000 }];
    const body = await json<{ outputs: { label: string; score: number }[] }>(
      await predict(model, rows),
    );
    const scores = rows.map((r) =>
      sigmoid(-0.00002 * r.income + 0.8 * r.late_payments - (r.has_mortgage ? 0.5 : 0) - 1),
    );
    expect(body.outputs.map((o) => o.score)).toEqual(scores.map((s) => expect.closeTo(s, 12)));
    expect(body.outputs.map((o) => o.label)).toEqual(
      scores.map((s) => (s >= 0.95 ? "default" : "repaid")),
    );
    expect(body.outputs[1]?.label).toBe("default");
    expect(body.outputs[0]?.label).toBe("repaid");
  });

  it("serves a regression model's value", async () => {
    const model = uniqueName("bi");
    await createModel(regressionModel(model, { public: true }));
    const created = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: {
        version: "v1",
        upstream: {
          kind: "builtin",
          format: "sklearn-linear",
          model: { features: ["items"], coef: [2.5], intercept: 10 },
        },
      },
    });
    expect(created.status).toBe(201);
    await putRollout(model, { champion: "v1", leaseMs: 250 });
    const body = await json<{ outputs: { value: number } }>(await predict(model, { items: 4 }));
    expect(body.outputs).toEqual({ value: 20 });
  });

  it("keeps serving from the isolate's copy, then the edge cache, while Postgres is down", async () => {
    const model = await builtinModel({ v1: logistic });
    expect((await predict(model, row)).status).toBe(200);
    const down = { DATABASE_WS_PROXY: deadDatabaseProxy };
    // Compiled in this isolate: no read at all.
    expect((await predict(model, row, down)).status).toBe(200);
    // A cold isolate reads the file from the edge cache.
    clearBuiltinCache();
    const fromCache = await predict(model, row, down);
    expect(fromCache.status).toBe(200);
    expect((await json<{ outputs: { score: number } }>(fromCache)).outputs.score).toBeCloseTo(
      expectedScore,
      12,
    );
  });

  it("falls back when the model file cannot be read, and never serves a corrupted copy", async () => {
    const model = await builtinModel({ v1: logistic });
    const [version] = await (async () => {
      const db = database();
      try {
        return await db.db
          .select({ upstream: modelVersions.upstream })
          .from(modelVersions)
          .innerJoin(models, eq(models.id, modelVersions.modelId))
          .where(eq(models.name, model));
      } finally {
        await db.close();
      }
    })();
    const upstream = version?.upstream;
    if (upstream?.kind !== "builtin") throw new Error("expected a builtin upstream");
    // A tampered cache entry and an unreachable database: nothing trustworthy to serve.
    await env.ARTIFACT_CACHE.put(`artifact:${upstream.artifactSha256}`, '{"tampered":true}');
    clearBuiltinCache();
    const response = await predict(model, row, { DATABASE_WS_PROXY: deadDatabaseProxy });
    expect(response.status).toBe(502);
    expect((await json<ErrorJson>(response)).error.code).toBe("UPSTREAM_FAILED");
    expect(builtinCacheKeys()).toHaveLength(0);
    // Postgres back: the file is read, checked and the cache repaired.
    const healed = await predict(model, row);
    expect(healed.status).toBe(200);
    const cached = await env.ARTIFACT_CACHE.get(`artifact:${upstream.artifactSha256}`);
    const db = database();
    try {
      const [artifact] = await db.db
        .select({ body: modelArtifacts.body })
        .from(modelArtifacts)
        .where(eq(modelArtifacts.sha256, upstream.artifactSha256));
      expect(cached).toBe(artifact?.body);
    } finally {
      await db.close();
    }
  });

  it("runs a builtin challenger in shadow next to a builtin champion", async () => {
    const challenger = {
      ...logistic,
      model: { ...logistic.model, intercept: [-2] },
    };
    const model = await builtinModel(
      { v1: logistic, v2: challenger },
      { champion: "v1", shadows: [{ version: "v2", sampleRate: 1 }] },
    );
    const { messages, queue } = recordingQueue();
    const response = await predictWith(model, row, {
      PREDICTION_LOGS: queue,
    } as unknown as Partial<Env>);
    expect(response.status).toBe(200);
    expect(response.headers.get("x-airlock-version")).toBe("v1");
    const results = messages.flatMap((m) => m.results);
    const shadow = results.find((r) => r.role === "shadow");
    expect(shadow).toMatchObject({ version: "v2", status: "ok" });
    const shadowScore = sigmoid(-0.00002 * 52_000 + 0.8 * 2 - 0.5 - 2);
    expect((shadow?.prediction as { score: number } | undefined)?.score).toBeCloseTo(
      shadowScore,
      12,
    );
    const served = results.find((r) => r.role !== "shadow");
    expect((served?.prediction as { score: number } | undefined)?.score).toBeCloseTo(
      expectedScore,
      12,
    );
  });
});

describe("builtin models: registration refused", () => {
  async function register(upstream: unknown, model?: string) {
    const name = model ?? uniqueName("bi");
    if (!model) {
      await createModel(
        classificationModel(name, {
          inputSchema: schema,
          classes: ["repaid", "default"],
          positiveClass: "default",
        }),
      );
    }
    const response = await call(`/admin/models/${name}/versions`, {
      method: "POST",
      body: { version: "v1", upstream },
    });
    return { name, response };
  }

  it.each([
    [
      "a feature the input schema lacks",
      { ...logistic.model, features: ["income", "late_payments", "zip"] },
      "upstream.features",
      /feature 'zip', which the model's input schema lacks/,
    ],
    [
      "a string feature",
      { ...logistic.model, features: ["income", "late_payments", "country"] },
      "upstream.features",
      /'country' is a string/,
    ],
    [
      "classes other than the model's",
      { ...logistic.model, classes: ["good", "bad"] },
      "upstream.classes",
      /are not the model's classes/,
    ],
    [
      "coefficients that do not fit the features",
      { ...logistic.model, coef: [[1, 2]] },
      "upstream.model.coef[0]",
      /holds 2 coefficients for 3 features/,
    ],
  ])(
    "refuses %s with 400 MODEL_FILE_INVALID naming %s, storing nothing",
    async (_label, file, path, message) => {
      const { name, response } = await register({ ...logistic, model: file });
      expect(response.status).toBe(400);
      const error = await json<ErrorJson>(response);
      expect(error.error.code).toBe("MODEL_FILE_INVALID");
      expect(error.error.details?.[0]?.path).toBe(path);
      expect(error.error.details?.[0]?.message).toMatch(message);
      expect(error.error.message).toContain(path);
      expect((await call(`/admin/models/${name}/versions/v1`)).status).toBe(404);
    },
  );

  it("names every problem in a scikit-learn linear file in one 400, a details entry each", async () => {
    const { name, response } = await register({
      ...logistic,
      model: {
        estimator: "LogisticRegression",
        features: ["income", "late_payments", "has_mortgage"],
        coef_: [[-0.00002, 0.8, -0.5]],
        intercept: [-1, 0],
        classes: ["repaid", "default"],
      },
    });
    expect(response.status).toBe(400);
    const error = await json<ErrorJson>(response);
    expect(error.error.code).toBe("MODEL_FILE_INVALID");
    expect(error.error.details).toEqual([
      {
        path: "upstream.model.coef",
        message:
          "is missing: the file has 'coef_', which this format names 'coef' (scripts/export/sklearn_export.py writes this file from a fitted estimator)",
      },
      { path: "upstream.model.intercept", message: "holds 2 values for 1 outputs" },
    ]);
    expect(error.error.message).toMatch(/^upstream\.model\.coef: is missing: .* \(and 1 more\)$/);
    expect((await call(`/admin/models/${name}/versions/v1`)).status).toBe(404);
  });

  it("refuses an unknown format before reading the file", async () => {
    const { response } = await register({ ...logistic, format: "onnx" });
    expect(response.status).toBe(400);
    const error = await json<ErrorJson>(response);
    expect(error.error.code).toBe("VALIDATION_FAILED");
    expect(error.error.details?.[0]?.path).toBe("upstream.format");
  });

  it("refuses a model file over 10 MB with 413, and a body over the upload limit too", async () => {
    const padding = "x".repeat(10 * 1024 * 1024);
    const { name, response } = await register({
      ...logistic,
      model: { ...logistic.model, estimator: padding },
    });
    expect(response.status).toBe(413);
    const error = await json<ErrorJson>(response);
    expect(error.error.code).toBe("MODEL_FILE_TOO_LARGE");
    expect(error.error.message).toMatch(
      /upstream\.model is \d+ bytes as JSON; the limit is 10485760/,
    );
    const huge = await register(
      { ...logistic, model: { ...logistic.model, estimator: `${padding}${padding}` } },
      name,
    );
    expect(huge.response.status).toBe(413);
    expect((await json<ErrorJson>(huge.response)).error.code).toBe("PAYLOAD_TOO_LARGE");
    // Other admin routes keep the ordinary limit.
    const patch = await call(`/admin/models/${name}`, {
      method: "PATCH",
      body: { description: "x".repeat(2 * 1024 * 1024) },
    });
    expect(patch.status).toBe(413);
  });
});
