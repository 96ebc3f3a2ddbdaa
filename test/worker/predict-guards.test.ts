import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../functions/index";
import {
  call,
  classificationModel,
  createModel,
  type ErrorJson,
  executionContext,
  json,
  uniqueName,
} from "./helpers";
import { putRollout } from "./rollout-helpers";

const bindings = env as unknown as Record<string, unknown>;
const upstreamBase = String(bindings.TEST_UPSTREAM ?? "");

async function publicModel(up: Record<string, unknown>, fallback?: unknown): Promise<string> {
  const model = uniqueName("guard");
  await createModel(
    classificationModel(model, { public: true, ...(fallback ? { fallback } : {}) }),
  );
  expect(
    (
      await call(`/admin/models/${model}/versions`, {
        method: "POST",
        body: { version: "v1", upstream: up },
      })
    ).status,
  ).toBe(201);
  expect((await putRollout(model, { champion: "v1", leaseMs: 250 })).status).toBe(200);
  return model;
}

const predict = (model: string) =>
  exports.default.fetch(
    new Request(`http://airlock.test/v1/models/${model}/predict`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ inputs: { amount: 1, country: "DE" } }),
    }),
  );

async function peerCalls(path: string): Promise<number> {
  const recorded = (await (await fetch(`${upstreamBase}/__requests`)).json()) as { path: string }[];
  return recorded.filter((r) => r.path === path).length;
}

describe("predict: upstream guards", () => {
  it("retries a failed call once for an idempotent version, and never for others", async () => {
    const id = crypto.randomUUID();
    const idempotent = await publicModel({
      kind: "http",
      url: `${upstreamBase}/flaky/${id}`,
      protocol: "json",
      timeoutMs: 500,
      idempotent: true,
    });
    await peerCalls("");
    const ok = await predict(idempotent);
    expect(ok.status).toBe(200);
    expect(await peerCalls(`/flaky/${id}`)).toBe(2);

    const other = crypto.randomUUID();
    const once = await publicModel({
      kind: "http",
      url: `${upstreamBase}/flaky/${other}`,
      protocol: "json",
      timeoutMs: 500,
    });
    const failed = await predict(once);
    expect(failed.status).toBe(502);
    expect(await peerCalls(`/flaky/${other}`)).toBe(1);
  });

  it("opens the version's circuit after repeated failures and stops calling it", async () => {
    const model = await publicModel(
      { kind: "http", url: `${upstreamBase}/fail`, protocol: "json", timeoutMs: 500 },
      { kind: "static", output: { label: "legit" } },
    );
    await peerCalls("");
    for (let i = 0; i < 8; i++) {
      const response = await predict(model);
      expect(response.status).toBe(200);
      expect((await json<{ fallback: boolean }>(response)).fallback).toBe(true);
    }
    // Five failures open the circuit; the next three never reach the upstream.
    expect(await peerCalls("/fail")).toBe(5);
  });

  it("refuses an upstream host the allowlist no longer allows, before calling it", async () => {
    // Registration applies the allowlist too: this version was allowed then.
    const path = `/landing/${crypto.randomUUID()}`;
    const model = await publicModel({
      kind: "http",
      url: `${upstreamBase}${path}`,
      protocol: "json",
      timeoutMs: 300,
    });
    const response = await worker.fetch(
      new Request(`http://airlock.test/v1/models/${model}/predict`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ inputs: { amount: 1, country: "DE" } }),
      }),
      { ...env, UPSTREAM_ALLOWED_HOSTS: "" } as unknown as Env,
      executionContext(),
    );
    expect(response.status).toBe(502);
    const error = (await json<ErrorJson>(response)).error;
    expect(error.details).toEqual([{ path: "upstream", message: "UPSTREAM_FORBIDDEN" }]);
    // The policy is for operators (the logs), not for whoever calls.
    expect(error.message).not.toContain("UPSTREAM_ALLOWED_HOSTS");
    const seen = await fetch(`${upstreamBase}/__requests?path=${encodeURIComponent(path)}`);
    expect(await seen.json()).toEqual([]);
  });

  it("limits requests per client with the platform's rate limiter: 429 with Retry-After", async () => {
    const model = await publicModel({
      kind: "http",
      url: `${upstreamBase}/json/score`,
      protocol: "json",
      timeoutMs: 500,
    });
    // The binding allows 3 per minute. The first request is checked before it
    // runs; later ones, while the last answer was "allowed", run alongside
    // their check. So the fourth goes through (its check says "limited"), and
    // from then on the isolate answers 429 without asking again.
    const limiter = bindings.TEST_TIGHT_LIMITER as RateLimit;
    let calls = 0;
    const counting: RateLimit = {
      limit: (options) => {
        calls++;
        return limiter.limit(options);
      },
    };
    const tight = { ...env, PREDICT_RATE_LIMITER: counting } as unknown as Env;
    const client = `203.0.113.7/${crypto.randomUUID()}`;
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < 6; i++) {
      const ctx = createExecutionContext();
      const response = await worker.fetch(
        new Request(`http://airlock.test/v1/models/${model}/predict`, {
          method: "POST",
          headers: { "content-type": "application/json", "cf-connecting-ip": client },
          body: JSON.stringify({ inputs: { amount: 1, country: "DE" } }),
        }),
        tight,
        ctx,
      );
      await waitOnExecutionContext(ctx);
      statuses.push(response.status);
      if (response.status === 429) limited = response;
    }
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
    expect(calls).toBe(4);
    expect(limited?.headers.get("retry-after")).toBe("60");
    expect((await json<ErrorJson>(limited as Response)).error.code).toBe("RATE_LIMITED");
  });

  it("limits requests with made-up keys per client address before looking keys up", async () => {
    const model = uniqueName("guard");
    await createModel(classificationModel(model));
    const tight = { ...env, PREDICT_RATE_LIMITER: bindings.TEST_TIGHT_LIMITER } as unknown as Env;
    const client = `198.51.100.9/${crypto.randomUUID()}`;
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const response = await worker.fetch(
        new Request(`http://airlock.test/v1/models/${model}/predict`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            authorization: `Bearer ak_made-up-${i}`,
            "cf-connecting-ip": client,
          },
          body: JSON.stringify({ inputs: { amount: 1, country: "DE" } }),
        }),
        tight,
        executionContext(),
      );
      statuses.push(response.status);
    }
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
  });
});
