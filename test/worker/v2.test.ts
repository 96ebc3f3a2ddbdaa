/// <reference types="vite/client" />
/**
 * The Open Inference Protocol (V2) routes. Every body is checked against the
 * protocol's own OpenAPI document (its component schemas, with a JSON Schema
 * validator), on happy and error paths.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { Validator } from "@cfworker/json-schema";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import worker from "../../functions/index";
import { keyHmac } from "../../shared/inference/events";
import specText from "../fixtures/open-inference-protocol/rest_predict_v2.yaml?raw";
import {
  call,
  classificationModel,
  createModel,
  json,
  recordingQueue,
  uniqueName,
} from "./helpers";
import { putRollout } from "./rollout-helpers";

const SPEC_ID = "https://open-inference-protocol.test/rest_predict_v2.json";
/** The document's schemas without its `x-` extensions (their examples hold `id` keys a validator would read as schema ids). */
function withoutExtensions(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutExtensions);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([key]) => !key.startsWith("x-"))
      .map(([key, item]) => [key, withoutExtensions(item)]),
  );
}
const spec = withoutExtensions(parse(specText)) as Record<string, unknown>;
type SchemaName =
  | "metadata_server_response"
  | "metadata_server_error_response"
  | "metadata_model_response"
  | "metadata_model_error_response"
  | "inference_request"
  | "inference_response"
  | "inference_error_response";

/** Asserts that `body` is valid against the protocol's component schema `name`. */
function expectSchema(name: SchemaName, body: unknown) {
  const validator = new Validator({ $ref: `${SPEC_ID}#/components/schemas/${name}` }, "7", false);
  validator.addSchema({ ...spec, $id: SPEC_ID } as never, SPEC_ID);
  const result = validator.validate(body);
  expect(result.errors, `${name}: ${JSON.stringify(body)}`).toEqual([]);
  expect(result.valid).toBe(true);
}

const schema = {
  type: "object",
  properties: {
    amount: { type: "number", minimum: 0 },
    tenure: { type: "integer", minimum: 0 },
    new_customer: { type: "boolean" },
    channel: { type: "string", enum: ["web", "app"] },
  },
  required: ["amount", "tenure", "new_customer"],
};
const features = ["amount", "tenure", "new_customer"];
const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
const binaryFile = (intercept: number) => ({
  kind: "builtin",
  format: "sklearn-linear",
  model: {
    features,
    coef: [[0.01, -0.2, 0.8]],
    intercept: [intercept],
    classes: ["legit", "fraud"],
  },
});
const score = (row: { amount: number; tenure: number; new_customer: boolean }, intercept = -1) =>
  sigmoid(0.01 * row.amount - 0.2 * row.tenure + 0.8 * (row.new_customer ? 1 : 0) + intercept);

async function binaryModel(
  options: {
    versions?: Record<string, unknown>;
    rollout?: Record<string, unknown> | null;
    model?: Record<string, unknown>;
  } = {},
) {
  const model = uniqueName("v2");
  await createModel(
    classificationModel(model, { inputSchema: schema, public: true, ...options.model }),
  );
  const versions = options.versions ?? {
    v1: binaryFile(-1),
    v2: binaryFile(-2),
    v3: binaryFile(0),
  };
  for (const [version, upstream] of Object.entries(versions)) {
    const response = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: { version, upstream },
    });
    if (response.status !== 201) throw new Error(`${response.status} ${await response.text()}`);
  }
  if (options.rollout !== null) {
    expect(
      (await putRollout(model, { leaseMs: 250, ...(options.rollout ?? { champion: "v1" }) }))
        .status,
    ).toBe(200);
  }
  return model;
}

/** Calls the Worker with a recording queue, and waits for work after the response. */
async function request(
  path: string,
  init: { method?: string; body?: unknown; headers?: Record<string, string> } = {},
) {
  const { messages, queue } = recordingQueue();
  const ctx = createExecutionContext();
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  if (init.body !== undefined) headers["content-type"] ??= "application/json";
  const response = await worker.fetch(
    new Request(`http://airlock.test${path}`, {
      method: init.method ?? (init.body === undefined ? "GET" : "POST"),
      headers,
      body:
        init.body === undefined
          ? undefined
          : typeof init.body === "string"
            ? init.body
            : JSON.stringify(init.body),
    }),
    { ...env, PREDICTION_LOGS: queue } as unknown as Env,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return { response, results: messages.flatMap((m) => m.results) };
}

const rows = [
  { amount: 120, tenure: 3, new_customer: true },
  { amount: 40, tenure: 10, new_customer: false },
  { amount: 999.5, tenure: 0, new_customer: true },
];
function tensors(batch: typeof rows, nested = false) {
  const column = <K extends keyof (typeof rows)[number]>(name: K) => batch.map((r) => r[name]);
  const shape = nested ? [batch.length, 1] : [batch.length];
  const data = (values: unknown[]) => (nested ? values.map((v) => [v]) : values);
  return [
    { name: "amount", shape, datatype: "FP64", data: data(column("amount")) },
    { name: "tenure", shape, datatype: "INT64", data: data(column("tenure")) },
    { name: "new_customer", shape, datatype: "BOOL", data: data(column("new_customer")) },
  ];
}

interface InferJson {
  model_name: string;
  model_version?: string;
  id: string;
  parameters: Record<string, unknown>;
  outputs: {
    name: string;
    shape: number[];
    datatype: string;
    data: unknown[];
    parameters?: Record<string, unknown>;
  }[];
}
const output = (body: InferJson, name: string) => body.outputs.find((o) => o.name === name);

async function expectError(
  response: Response,
  status: number,
  code: string,
  schemaName: SchemaName = "inference_error_response",
) {
  expect(response.status).toBe(status);
  expect(response.headers.get("x-airlock-error-code")).toBe(code);
  const body = await json<{ error: string }>(response);
  expectSchema(schemaName, body);
  expect(Object.keys(body)).toEqual(["error"]);
  return body.error;
}

describe("V2: server routes", () => {
  it("answers server metadata at /v2 and /v2/, and health with empty 200s, without a key", async () => {
    for (const path of ["/v2", "/v2/"]) {
      const { response } = await request(path);
      expect(response.status).toBe(200);
      const body = await json(response);
      expectSchema("metadata_server_response", body);
      expect(body).toEqual({ name: "airlock", version: "0.1.0", extensions: [] });
    }
    for (const path of ["/v2/health/live", "/v2/health/ready"]) {
      const { response } = await request(path);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe("");
    }
    const missing = await request("/v2/nothing-here");
    expect(
      await expectError(missing.response, 404, "ROUTE_NOT_FOUND", "metadata_server_error_response"),
    ).toMatch(/No route/);
  });
});

describe("V2: model metadata and readiness", () => {
  it("describes the model's inputs, outputs and live versions", async () => {
    const model = await binaryModel({
      rollout: { champion: "v1", canary: { version: "v2", percent: 10 } },
    });
    const { response } = await request(`/v2/models/${model}`);
    expect(response.status).toBe(200);
    const body = await json(response);
    expectSchema("metadata_model_response", body);
    // Inputs come in the stored schema's order (Postgres keeps object keys in its own order).
    const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
    (body.inputs as { name: string }[]).sort(byName);
    expect(body).toEqual({
      name: model,
      versions: ["v1", "v2"],
      platform: "airlock",
      inputs: [
        { name: "amount", datatype: "FP64", shape: [-1] },
        { name: "channel", datatype: "BYTES", shape: [-1] },
        { name: "new_customer", datatype: "BOOL", shape: [-1] },
        { name: "tenure", datatype: "INT64", shape: [-1] },
      ],
      outputs: [
        { name: "label", datatype: "BYTES", shape: [-1] },
        { name: "score", datatype: "FP64", shape: [-1] },
        { name: "probabilities", datatype: "FP64", shape: [-1, 2] },
      ],
    });
    const version = await request(`/v2/models/${model}/versions/v2`);
    expect(version.response.status).toBe(200);
    const versionBody = await json(version.response);
    expectSchema("metadata_model_response", versionBody);
    expect(versionBody.versions).toEqual(["v2"]);
    // v3 is registered but not live.
    await expectError(
      (await request(`/v2/models/${model}/versions/v3`)).response,
      404,
      "VERSION_NOT_FOUND",
      "metadata_model_error_response",
    );
  });

  it("is ready with a live version, not ready without one or when killed", async () => {
    const model = await binaryModel();
    expect((await request(`/v2/models/${model}/ready`)).response.status).toBe(200);
    expect((await request(`/v2/models/${model}/versions/v1/ready`)).response.status).toBe(200);
    expect((await request(`/v2/models/${model}/versions/v2/ready`)).response.status).toBe(404);
    const idle = await binaryModel({ rollout: null });
    const notReady = (await request(`/v2/models/${idle}/ready`)).response;
    expect(notReady.status).toBe(400);
    expect(notReady.headers.get("x-airlock-error-code")).toBe("MODEL_NOT_READY");
    const engaged = await call(`/admin/models/${model}/kill-switch`, {
      method: "POST",
      body: { scope: "model", reason: "drill" },
    });
    expect(engaged.status).toBe(200);
    expect((await request(`/v2/models/${model}/ready`)).response.status).toBe(400);
    expect((await request(`/v2/models/${model}/versions/v1/ready`)).response.status).toBe(404);
  });

  it("keeps the key rules: 401 without a key on a private model, 404 for unknown models", async () => {
    const model = await binaryModel({ model: { public: false } });
    await expectError(
      (await request(`/v2/models/${model}`)).response,
      401,
      "UNAUTHORIZED",
      "metadata_model_error_response",
    );
    await expectError(
      (await request(`/v2/models/${model}/infer`, { body: { inputs: tensors(rows) } })).response,
      401,
      "UNAUTHORIZED",
    );
    const key = await json<{ key: string }>(
      await call("/admin/keys", { method: "POST", body: { name: "v2-client", models: [model] } }),
    );
    const allowed = await request(`/v2/models/${model}`, {
      headers: { authorization: `Bearer ${key.key}` },
    });
    expect(allowed.response.status).toBe(200);
    const unknown = await request("/v2/models/no-such-model-anywhere", {
      headers: { authorization: `Bearer ${key.key}` },
    });
    await expectError(unknown.response, 404, "MODEL_NOT_FOUND", "metadata_model_error_response");
  });
});

describe("V2: inference", () => {
  it("serves a batch of tensors like the JSON route, with prediction ids and the request id", async () => {
    const model = await binaryModel();
    const body = { id: "req-42", inputs: tensors(rows) };
    expectSchema("inference_request", body);
    const { response, results } = await request(`/v2/models/${model}/infer`, { body });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-airlock-version")).toBe("v1");
    const answer = await json<InferJson>(response);
    expectSchema("inference_response", answer);
    expect(answer).toMatchObject({ model_name: model, model_version: "v1", id: "req-42" });
    expect(output(answer, "score")).toMatchObject({ shape: [3], datatype: "FP64" });
    expect(output(answer, "score")?.data).toEqual(rows.map((r) => expect.closeTo(score(r), 12)));
    expect(output(answer, "label")).toEqual({
      name: "label",
      shape: [3],
      datatype: "BYTES",
      data: rows.map((r) => (score(r) >= 0.5 ? "fraud" : "legit")),
    });
    const ids = String(answer.parameters.prediction_id).split(",");
    expect(ids).toHaveLength(3);
    expect(answer.parameters.fallback).toBeUndefined();
    // Logged like a JSON prediction: one served result per row, by prediction id.
    const served = results.filter((r) => r.role === "served");
    expect(served.map((r) => r.predictionId)).toEqual(ids);
    expect(served[0]?.inputs).toEqual(rows[0]);
    // The JSON route gives the same predictions.
    const viaJson = await json<{ outputs: { score: number }[] }>(
      (await request(`/v1/models/${model}/predict`, { body: { inputs: rows } })).response,
    );
    expect(viaJson.outputs.map((o) => o.score)).toEqual(output(answer, "score")?.data);
  });

  it("reads nested data and [rows, 1] shapes, null as a missing value, and picks requested outputs", async () => {
    const model = await binaryModel();
    const body = {
      inputs: [
        ...tensors(rows, true),
        { name: "channel", shape: [3], datatype: "BYTES", data: ["web", null, "app"] },
      ],
      outputs: [{ name: "label" }],
    };
    // `null` for a missing value goes beyond the protocol's tensor data: check the rest.
    expectSchema("inference_request", { ...body, inputs: tensors(rows, true) });
    const { response, results } = await request(`/v2/models/${model}/infer`, { body });
    expect(response.status).toBe(200);
    const answer = await json<InferJson>(response);
    expectSchema("inference_response", answer);
    expect(answer.outputs.map((o) => o.name)).toEqual(["label"]);
    expect(answer.id).toBe(response.headers.get("x-request-id"));
    expect(results.find((r) => r.role === "served")?.inputs).toEqual({
      ...rows[0],
      channel: "web",
    });
  });

  it("carries the bucketing key and segment attributes in parameters, sticky like the JSON route", async () => {
    const model = await binaryModel({
      rollout: {
        champion: "v1",
        canary: { version: "v2", percent: 50 },
        shadows: [{ version: "v3", sampleRate: 1 }],
      },
    });
    let canary = 0;
    for (let i = 0; i < 12; i++) {
      const key = `customer-${i}`;
      const { response, results } = await request(`/v2/models/${model}/infer`, {
        body: {
          parameters: { key, "attribute.region": "eu", "attribute.tier": 2 },
          inputs: tensors(rows.slice(0, 1)),
        },
      });
      expect(response.status).toBe(200);
      const version = (await json<InferJson>(response)).model_version;
      if (version === "v2") canary++;
      const viaJson = (
        await request(`/v1/models/${model}/predict`, { body: { inputs: rows[0], key } })
      ).response.headers.get("x-airlock-version");
      expect(viaJson).toBe(version);
      const primary = results.find((r) => r.role !== "shadow");
      expect(primary).toMatchObject({ version, attributes: { region: "eu", tier: "2" } });
      expect(primary?.keyHmac).toBe(await keyHmac(env.LOG_HMAC_KEY, key));
      const shadow = results.find((r) => r.role === "shadow");
      expect(shadow).toMatchObject({ version: "v3", predictionId: primary?.predictionId });
      expect((shadow?.prediction as { score: number } | undefined)?.score).toBeCloseTo(
        score(rows[0] as (typeof rows)[number], 0),
        12,
      );
    }
    expect(canary).toBeGreaterThan(0);
    expect(canary).toBeLessThan(12);
  });

  it("serves exactly a live version on the versioned route, and 404 for any other", async () => {
    const model = await binaryModel({
      rollout: { champion: "v1", canary: { version: "v2", percent: 1 } },
    });
    for (const version of ["v1", "v2"]) {
      const { response } = await request(`/v2/models/${model}/versions/${version}/infer`, {
        body: { inputs: tensors(rows) },
      });
      expect(response.status).toBe(200);
      const answer = await json<InferJson>(response);
      expectSchema("inference_response", answer);
      expect(answer.model_version).toBe(version);
      const intercept = version === "v1" ? -1 : -2;
      expect(output(answer, "score")?.data).toEqual(
        rows.map((r) => expect.closeTo(score(r, intercept), 12)),
      );
    }
    for (const version of ["v3", "v404"]) {
      const { response } = await request(`/v2/models/${model}/versions/${version}/infer`, {
        body: { inputs: tensors(rows) },
      });
      expect(await expectError(response, 404, "VERSION_NOT_FOUND")).toContain(version);
    }
  });

  it("answers a killed model with its static fallback as tensors, or 503", async () => {
    const withFallback = await binaryModel({
      model: { fallback: { kind: "static", output: { label: "legit", score: 0.01 } } },
    });
    const bare = await binaryModel();
    for (const model of [withFallback, bare]) {
      const engaged = await call(`/admin/models/${model}/kill-switch`, {
        method: "POST",
        body: { scope: "model", reason: "drill" },
      });
      expect(engaged.status).toBe(200);
    }
    const { response } = await request(`/v2/models/${withFallback}/infer`, {
      body: { inputs: tensors(rows) },
    });
    expect(response.status).toBe(200);
    const answer = await json<InferJson>(response);
    expectSchema("inference_response", answer);
    expect(answer.model_version).toBeUndefined();
    expect(answer.parameters.fallback).toBe(true);
    expect(output(answer, "label")?.data).toEqual(["legit", "legit", "legit"]);
    expect(output(answer, "score")?.data).toEqual([0.01, 0.01, 0.01]);
    const killed = await request(`/v2/models/${bare}/infer`, { body: { inputs: tensors(rows) } });
    expect(await expectError(killed.response, 503, "MODEL_DISABLED")).toMatch(/kill switch/);
    const pinned = await request(`/v2/models/${withFallback}/versions/v1/infer`, {
      body: { inputs: tensors(rows) },
    });
    await expectError(pinned.response, 404, "VERSION_NOT_FOUND");
  });

  it("sends probabilities as a [rows, classes] tensor and regression values as `value`", async () => {
    const multi = uniqueName("v2");
    await createModel(
      classificationModel(multi, {
        inputSchema: schema,
        public: true,
        classes: ["low", "mid", "high"],
        positiveClass: undefined,
      }),
    );
    await call(`/admin/models/${multi}/versions`, {
      method: "POST",
      body: {
        version: "v1",
        upstream: {
          kind: "builtin",
          format: "sklearn-linear",
          model: {
            features,
            coef: [
              [0.01, 0, 0],
              [0, 0.1, 0],
              [0, 0, 1],
            ],
            intercept: [0, 0, 0],
            classes: ["low", "mid", "high"],
          },
        },
      },
    });
    await putRollout(multi, { champion: "v1", leaseMs: 250 });
    const { response } = await request(`/v2/models/${multi}/infer`, {
      body: { inputs: tensors(rows.slice(0, 2)) },
    });
    expect(response.status).toBe(200);
    const answer = await json<InferJson>(response);
    expectSchema("inference_response", answer);
    const probabilities = output(answer, "probabilities");
    expect(probabilities).toMatchObject({
      shape: [2, 3],
      datatype: "FP64",
      parameters: { classes: '["low","mid","high"]' },
    });
    expect(probabilities?.data).toHaveLength(6);
    const first = (probabilities?.data ?? []).slice(0, 3) as number[];
    const margins = [1.2, 0.3, 1];
    const total = margins.map(Math.exp).reduce((a, b) => a + b);
    expect(first).toEqual(margins.map((m) => expect.closeTo(Math.exp(m) / total, 12)));
    expect(output(answer, "score")).toBeUndefined();

    const regression = uniqueName("v2");
    await createModel({
      name: regression,
      task: "regression",
      owner: "pricing@example.com",
      description: "basket value",
      inputSchema: {
        type: "object",
        properties: { items: { type: "integer", minimum: 0 } },
        required: ["items"],
      },
      public: true,
    });
    await call(`/admin/models/${regression}/versions`, {
      method: "POST",
      body: {
        version: "v1",
        upstream: {
          kind: "builtin",
          format: "sklearn-linear",
          model: { features: ["items"], coef: [2.5], intercept: 1 },
        },
      },
    });
    await putRollout(regression, { champion: "v1", leaseMs: 250 });
    const value = await request(`/v2/models/${regression}/infer`, {
      body: { inputs: [{ name: "items", shape: [2], datatype: "UINT32", data: [2, 4] }] },
    });
    const valueAnswer = await json<InferJson>(value.response);
    expectSchema("inference_response", valueAnswer);
    expect(valueAnswer.outputs).toEqual([
      { name: "value", shape: [2], datatype: "FP64", data: [6, 11] },
    ]);
  });
});

describe("V2: refused requests", () => {
  const cases: [string, unknown, RegExp][] = [
    ["no inputs", { inputs: [] }, /inputs: must be a non-empty array/],
    [
      "an unknown datatype",
      { inputs: [{ name: "amount", shape: [1], datatype: "FLOAT", data: [1] }] },
      /inputs\[0\] \(amount\)\.datatype: must be one of BOOL/,
    ],
    [
      "a shape that is not one value per row",
      { inputs: [{ name: "amount", shape: [1, 2], datatype: "FP64", data: [1, 2] }] },
      /shape: must be \[rows\] or \[rows, 1\]/,
    ],
    [
      "data that does not fill the shape",
      { inputs: [{ name: "amount", shape: [2], datatype: "FP64", data: [1] }] },
      /data: must hold 2 values/,
    ],
    [
      "rows that differ between inputs",
      {
        inputs: [
          { name: "amount", shape: [2], datatype: "FP64", data: [1, 2] },
          { name: "tenure", shape: [3], datatype: "INT64", data: [1, 2, 3] },
        ],
      },
      /has 3 rows, but the first input has 2/,
    ],
    [
      "an element of the wrong type",
      { inputs: [{ name: "tenure", shape: [2], datatype: "INT64", data: [1, 2.5] }] },
      /data\[1\]: must be an integer \(INT64\)/,
    ],
    [
      "an integer outside its datatype's range",
      { inputs: [{ name: "tenure", shape: [2], datatype: "INT8", data: [1, 1000] }] },
      /data\[1\]: must be between -128 and 127 \(INT8\)/,
    ],
    [
      "a negative unsigned integer",
      { inputs: [{ name: "tenure", shape: [1], datatype: "UINT16", data: [-1] }] },
      /data\[0\]: must be between 0 and 65535 \(UINT16\)/,
    ],
    [
      "an input that is not a feature",
      { inputs: [{ name: "zip", shape: [1], datatype: "BYTES", data: ["10115"] }] },
      /'zip' is not a feature of this model/,
    ],
    [
      "an unknown output",
      { inputs: tensors(rows), outputs: [{ name: "logits" }] },
      /'logits' is not an output of this model/,
    ],
    [
      "a parameter that is not a scalar",
      { inputs: tensors(rows), parameters: { key: ["a"] } },
      /parameters\.key: must be a string, number or boolean/,
    ],
    [
      "more than 100 rows",
      {
        inputs: [{ name: "amount", shape: [101], datatype: "FP64", data: new Array(101).fill(1) }],
      },
      /must have 1 to 100 rows, got 101/,
    ],
  ];
  it.each(cases)(
    "refuses %s with 400 and the protocol's error object",
    async (_label, body, message) => {
      const model = await binaryModel();
      const { response, results } = await request(`/v2/models/${model}/infer`, { body });
      expect(await expectError(response, 400, "VALIDATION_FAILED")).toMatch(message);
      expect(results.filter((r) => r.role === "served")).toEqual([]);
    },
  );

  it("names the tensor element that breaks the input schema, and logs the rejection", async () => {
    const model = await binaryModel();
    const bad = tensors(rows);
    (bad[0] as { data: unknown[] }).data = [120, -5, 3];
    const { response, results } = await request(`/v2/models/${model}/infer`, {
      body: { inputs: bad },
    });
    expect(await expectError(response, 400, "VALIDATION_FAILED")).toMatch(
      /amount\[1\]: must be at least 0/,
    );
    expect(results.map((r) => r.role)).toEqual(["rejected"]);
  });

  it("refuses a body that is not JSON, or not sent as JSON", async () => {
    const model = await binaryModel();
    await expectError(
      (await request(`/v2/models/${model}/infer`, { body: "{" })).response,
      400,
      "MALFORMED_JSON",
    );
    await expectError(
      (
        await request(`/v2/models/${model}/infer`, {
          body: "x",
          headers: { "content-type": "text/plain" },
        })
      ).response,
      415,
      "UNSUPPORTED_MEDIA_TYPE",
    );
  });
});
