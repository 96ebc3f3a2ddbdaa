import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  call,
  classificationModel,
  createModel,
  type ErrorJson,
  json,
  uniqueName,
} from "./helpers";
import { putRollout } from "./rollout-helpers";

const upstreamBase = (env as unknown as Record<string, string>).TEST_UPSTREAM ?? "";

interface PredictJson {
  predictionId?: string;
  predictionIds?: string[];
  model: string;
  version: string | null;
  outputs: unknown;
  fallback: boolean;
}

function upstream(
  path: string,
  protocol: "json" | "v2" = "json",
  extra: Record<string, unknown> = {},
) {
  return { kind: "http", url: `${upstreamBase}${path}`, protocol, timeoutMs: 500, ...extra };
}

async function setUp(options: {
  versions: Record<string, ReturnType<typeof upstream>>;
  rollout: Record<string, unknown>;
  model?: Record<string, unknown>;
}): Promise<{ model: string; key: string }> {
  const model = uniqueName("pred");
  await createModel(classificationModel(model, options.model ?? {}));
  for (const [version, up] of Object.entries(options.versions)) {
    const response = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: { version, upstream: up },
    });
    expect(response.status).toBe(201);
  }
  expect((await putRollout(model, { leaseMs: 250, ...options.rollout })).status).toBe(200);
  const created = await json<{ key: string }>(
    await call("/admin/keys", { method: "POST", body: { name: "client", models: [model] } }),
  );
  return { model, key: created.key };
}

async function predict(
  model: string,
  body: unknown,
  key: string | null,
  headers: Record<string, string> = {},
) {
  const all: Record<string, string> = { "content-type": "application/json", ...headers };
  if (key) all.authorization = `Bearer ${key}`;
  return exports.default.fetch(
    new Request(`http://airlock.test/v1/models/${model}/predict`, {
      method: "POST",
      headers: all,
      body: JSON.stringify(body),
    }),
  );
}

async function peerRequests(): Promise<
  { path: string; headers: Record<string, string>; body: unknown }[]
> {
  return (await fetch(`${upstreamBase}/__requests`)).json();
}

describe("predict: serving", () => {
  it("serves a single prediction from a JSON upstream, in canonical form, with its headers", async () => {
    const { model, key } = await setUp({
      versions: { v1: upstream("/json/score") },
      rollout: { champion: "v1" },
    });
    await peerRequests();
    const response = await predict(model, { inputs: { amount: 250, country: "DE" } }, key, {
      traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    });
    expect(response.status).toBe(200);
    const body = await json<PredictJson>(response);
    expect(body).toMatchObject({
      model,
      version: "v1",
      outputs: { label: "fraud", score: 0.9 },
      fallback: false,
    });
    expect(body.predictionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(response.headers.get("x-airlock-version")).toBe("v1");
    expect(response.headers.get("x-airlock-prediction-id")).toBe(body.predictionId);
    expect(Number(response.headers.get("x-airlock-state-version"))).toBeGreaterThan(0);
    const [seen] = await peerRequests();
    expect(seen?.body).toEqual({ inputs: { amount: 250, country: "DE" } });
    expect(seen?.headers.traceparent).toBe(
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
  });

  it("serves a batch in input order from a V2 upstream, sending features as named tensors with the credential", async () => {
    const { model, key } = await setUp({
      versions: {
        v1: upstream("/v2/models/fraud/infer", "v2", { credential: "UPSTREAM_FRAUD_MODEL_TOKEN" }),
      },
      rollout: { champion: "v1" },
    });
    await peerRequests();
    const rows = [
      { amount: 5, country: "DE" },
      { amount: 500, country: "US" },
      { amount: 99.5, country: "FR", is_new_customer: true },
    ];
    const response = await predict(model, { inputs: rows, key: "customer-7" }, key);
    expect(response.status).toBe(200);
    const body = await json<PredictJson>(response);
    expect(body.outputs).toEqual([
      { label: "legit", score: 0.1 },
      { label: "fraud", score: 0.9 },
      { label: "legit", score: 0.1 },
    ]);
    expect(body.predictionIds).toHaveLength(3);
    expect(new Set(body.predictionIds).size).toBe(3);
    const [seen] = await peerRequests();
    expect(seen?.headers.authorization).toBe("Bearer upstream-secret-for-tests");
    const tensors = (
      (seen?.body ?? { inputs: [] }) as {
        inputs: { name: string; datatype: string; shape: number[]; data: unknown[] }[];
      }
    ).inputs;
    expect(tensors.find((t) => t.name === "amount")).toEqual({
      name: "amount",
      datatype: "FP64",
      shape: [3],
      data: [5, 500, 99.5],
    });
    expect(tensors.find((t) => t.name === "country")).toMatchObject({
      datatype: "BYTES",
      data: ["DE", "US", "FR"],
    });
  });

  it("maps a JSON upstream's own response shape through the version's output mapping", async () => {
    const { model, key } = await setUp({
      versions: {
        v1: upstream("/json/mapped", "json", {
          outputMapping: { score: "/result/fraudProbability" },
          threshold: 0.5,
        }),
      },
      rollout: { champion: "v1" },
    });
    const body = await json<PredictJson>(
      await predict(model, { inputs: { amount: 120, country: "DE" } }, key),
    );
    expect(body.outputs).toEqual({ label: "fraud", score: 0.9 });
  });

  it("keeps keys on their side of a sticky canary, near the configured share", async () => {
    const { model, key } = await setUp({
      versions: { v1: upstream("/json/score"), v2: upstream("/json/score") },
      rollout: { champion: "v1", canary: { version: "v2", percent: 20 } },
    });
    const first = new Map<string, string>();
    for (let i = 0; i < 150; i++) {
      const response = await predict(
        model,
        { inputs: { amount: 1, country: "DE" }, key: `k${i}` },
        key,
      );
      first.set(`k${i}`, response.headers.get("x-airlock-version") ?? "");
    }
    const canary = [...first.values()].filter((v) => v === "v2").length;
    expect(canary).toBeGreaterThan(10);
    expect(canary).toBeLessThan(55);
    for (let i = 0; i < 150; i += 7) {
      const response = await predict(
        model,
        { inputs: { amount: 1, country: "DE" }, key: `k${i}` },
        key,
      );
      expect(response.headers.get("x-airlock-version")).toBe(first.get(`k${i}`));
    }
  });
});

describe("predict: keys and errors", () => {
  it("answers 401 without a valid key, 404 for a valid key not allowed for the model, and serves public models without one", async () => {
    const { model, key } = await setUp({
      versions: { v1: upstream("/json/score") },
      rollout: { champion: "v1" },
    });
    const other = await setUp({
      versions: { v1: upstream("/json/score") },
      rollout: { champion: "v1" },
    });
    const body = { inputs: { amount: 1, country: "DE" } };
    expect((await predict(model, body, null)).status).toBe(401);
    expect((await predict(model, body, "ak_not-a-real-key")).status).toBe(401);
    const wrongModel = await predict(model, body, other.key);
    expect(wrongModel.status).toBe(404);
    expect((await json<ErrorJson>(wrongModel)).error.code).toBe("MODEL_NOT_FOUND");
    // Unknown models: the same answers, so keys cannot probe for names.
    expect((await predict("no-such-model-here", body, null)).status).toBe(401);
    expect((await predict("no-such-model-here", body, "ak_not-a-real-key")).status).toBe(401);
    expect((await predict("no-such-model-here", body, key)).status).toBe(404);

    const revoked = await json<{ id: string }[]>(await call(`/admin/keys?model=${model}`)).then(
      async (page) => {
        const id = (page as unknown as { items: { id: string }[] }).items[0]?.id ?? "";
        return call(`/admin/keys/${id}`, { method: "DELETE" });
      },
    );
    expect(revoked.status).toBe(200);
    expect((await predict(model, body, key)).status).toBe(401);

    expect(
      (await call(`/admin/models/${model}`, { method: "PATCH", body: { public: true } })).status,
    ).toBe(200);
    expect((await predict(model, body, null)).status).toBe(200);
  });

  it("names every failing field of every row, all or nothing", async () => {
    const { model, key } = await setUp({
      versions: { v1: upstream("/json/score") },
      rollout: { champion: "v1" },
    });
    await peerRequests();
    const response = await predict(
      model,
      { inputs: [{ amount: 1, country: "DE" }, { amount: -5, country: "XX" }, { country: "DE" }] },
      key,
    );
    expect(response.status).toBe(400);
    const error = await json<ErrorJson>(response);
    expect(error.error.code).toBe("VALIDATION_FAILED");
    expect(error.error.details?.map((d) => d.path)).toEqual([
      "inputs[1].amount",
      "inputs[1].country",
      "inputs[2].amount",
    ]);
    expect(await peerRequests()).toEqual([]);
    expect((await predict(model, { input: {} }, key)).status).toBe(400);
  });

  it("answers 503 NO_SERVING_VERSION before a champion is set", async () => {
    const model = uniqueName("pred");
    await createModel(classificationModel(model, { public: true }));
    const response = await predict(model, { inputs: { amount: 1, country: "DE" } }, null);
    expect(response.status).toBe(503);
    expect((await json<ErrorJson>(response)).error.code).toBe("NO_SERVING_VERSION");
  });
});

describe("predict: failures, fallbacks and the kill switch", () => {
  it("answers 502 UPSTREAM_FAILED with the failure's code when the champion fails and there is no fallback", async () => {
    for (const [path, code] of [
      ["/fail", "UPSTREAM_ERROR"],
      ["/garbage", "UPSTREAM_BAD_RESPONSE"],
      ["/slow", "UPSTREAM_TIMEOUT"],
    ] as const) {
      const { model, key } = await setUp({
        versions: { v1: upstream(path) },
        rollout: { champion: "v1" },
      });
      const response = await predict(model, { inputs: { amount: 1, country: "DE" } }, key);
      expect(response.status, path).toBe(502);
      const error = await json<ErrorJson>(response);
      expect(error.error.code).toBe("UPSTREAM_FAILED");
      expect(error.error.message).toContain("v1");
      expect(error.error.details).toEqual([{ path: "upstream", message: code }]);
    }
  });

  it("falls back to another version, marked as a fallback and served under that version", async () => {
    const { model, key } = await setUp({
      versions: { v1: upstream("/fail"), v2: upstream("/json/score") },
      rollout: { champion: "v1" },
    });
    expect(
      (
        await call(`/admin/models/${model}`, {
          method: "PATCH",
          body: { fallback: { kind: "version", version: "v2" } },
        })
      ).status,
    ).toBe(200);
    const response = await predict(model, { inputs: { amount: 300, country: "DE" } }, key);
    expect(response.status).toBe(200);
    expect(await json<PredictJson>(response)).toMatchObject({
      version: "v2",
      fallback: true,
      outputs: { label: "fraud" },
    });
  });

  it("answers with the static fallback on failure and when killed, and 503 MODEL_DISABLED without one", async () => {
    const { model, key } = await setUp({
      versions: { v1: upstream("/fail") },
      rollout: { champion: "v1" },
      model: { fallback: { kind: "static", output: { label: "legit", score: 0.01 } } },
    });
    const failed = await json<PredictJson>(
      await predict(model, { inputs: { amount: 300, country: "DE" } }, key),
    );
    expect(failed).toMatchObject({
      version: null,
      fallback: true,
      outputs: { label: "legit", score: 0.01 },
    });

    const killed = await call(`/admin/models/${model}/kill-switch`, {
      method: "POST",
      body: { scope: "model", reason: "drill" },
    });
    expect(killed.status).toBe(200);
    await peerRequests();
    const whileKilled = await json<PredictJson>(
      await predict(
        model,
        {
          inputs: [
            { amount: 1, country: "DE" },
            { amount: 2, country: "FR" },
          ],
        },
        key,
      ),
    );
    expect(whileKilled).toMatchObject({
      version: null,
      fallback: true,
      outputs: [{ label: "legit" }, { label: "legit" }],
    });
    expect(await peerRequests()).toEqual([]);

    const bare = await setUp({
      versions: { v1: upstream("/json/score") },
      rollout: { champion: "v1" },
    });
    await call(`/admin/models/${bare.model}/kill-switch`, {
      method: "POST",
      body: { scope: "model", reason: "drill" },
    });
    const disabled = await predict(bare.model, { inputs: { amount: 1, country: "DE" } }, bare.key);
    expect(disabled.status).toBe(503);
    expect((await json<ErrorJson>(disabled)).error.code).toBe("MODEL_DISABLED");
  });
});
