/**
 * What a failing call tells a client (a code) against what it tells
 * operators (the cause, in the logs). The test upstream is local
 * (test/global-setup.ts), on an allowlisted 127.0.0.1.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import worker from "../../functions/index";
import {
  call,
  classificationModel,
  createModel,
  type ErrorJson,
  recordingQueue,
  uniqueName,
} from "./helpers";
import { putRollout } from "./rollout-helpers";

const bindings = env as unknown as Record<string, string>;
const upstreamBase = bindings.TEST_UPSTREAM ?? "";

afterEach(() => {
  vi.restoreAllMocks();
});

function register(model: string, upstream: Record<string, unknown>, version = "v1") {
  return call(`/admin/models/${model}/versions`, {
    method: "POST",
    body: { version, upstream },
  });
}

/** A public model (so its 502s are what anyone can read) serving `upstream` as v1. */
async function servingModel(upstream: Record<string, unknown>): Promise<string> {
  const model = uniqueName("egress");
  expect((await createModel(classificationModel(model, { public: true }))).status).toBe(201);
  const created = await register(model, { protocol: "json", timeoutMs: 2000, ...upstream });
  expect(created.status, await created.clone().text()).toBe(201);
  expect((await putRollout(model, { champion: "v1", leaseMs: 250 })).status).toBe(200);
  return model;
}

/** One unauthenticated prediction, with the results it logs and the Worker's JSON log lines. */
async function predict(model: string) {
  const { messages, queue } = recordingQueue();
  const lines: Record<string, unknown>[] = [];
  const log = console.log;
  const spy = vi.spyOn(console, "log").mockImplementation((...args: unknown[]) => {
    try {
      lines.push(JSON.parse(String(args[0])) as Record<string, unknown>);
    } catch {
      log(...args);
    }
  });
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`http://airlock.test/v1/models/${model}/predict`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ inputs: { amount: 1, country: "DE" } }),
    }),
    { ...env, PREDICTION_LOGS: queue } as unknown as Env,
    ctx,
  );
  const text = await response.text();
  await waitOnExecutionContext(ctx);
  spy.mockRestore();
  return {
    status: response.status,
    text,
    error: (text.startsWith("{") ? JSON.parse(text) : {}) as ErrorJson,
    results: messages.flatMap((m) => m.results),
    failures: lines.filter((line) => line.event === "upstream.failed"),
  };
}

describe("egress: calling an upstream", () => {
  it("tells an unauthenticated client a failure's code, and only operators its cause", async () => {
    const model = await servingModel({
      kind: "http",
      url: `${upstreamBase}/json/score`,
      credential: "UPSTREAM_NOT_CONFIGURED_TOKEN",
    });
    const { status, text, error, failures } = await predict(model);
    expect(status).toBe(502);
    expect(error.error.code).toBe("UPSTREAM_FAILED");
    expect(error.error.message).toBe(
      "Version 'v1' failed (UPSTREAM_ERROR); the cause is logged under this request id",
    );
    expect(text).not.toContain("UPSTREAM_NOT_CONFIGURED_TOKEN");
    expect(failures[0]).toMatchObject({
      code: "UPSTREAM_ERROR",
      cause: "secret 'UPSTREAM_NOT_CONFIGURED_TOKEN' is not configured",
      requestId: error.error.requestId,
    });
  });
});
