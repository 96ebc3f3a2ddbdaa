/**
 * Admission under abuse: who is counted by the rate limiter, and what an
 * unknown or unauthenticated request may cost before it is refused.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../../functions/index";
import { call, classificationModel, createModel, json, uniqueName } from "./helpers";
import { putRollout } from "./rollout-helpers";

const bindings = env as unknown as Record<string, unknown>;
const upstreamBase = String(bindings.TEST_UPSTREAM ?? "");
/** Allows 3 requests per subject per minute. */
const tightLimiter = bindings.TEST_TIGHT_LIMITER as RateLimit;

async function publicModel(): Promise<string> {
  const model = uniqueName("adm");
  await createModel(classificationModel(model, { public: true }));
  const version = await call(`/admin/models/${model}/versions`, {
    method: "POST",
    body: {
      version: "v1",
      upstream: {
        kind: "http",
        url: `${upstreamBase}/json/score`,
        protocol: "json",
        timeoutMs: 500,
      },
    },
  });
  expect(version.status).toBe(201);
  expect((await putRollout(model, { champion: "v1", leaseMs: 250 })).status).toBe(200);
  return model;
}

async function keyFor(model: string): Promise<string> {
  const response = await call("/admin/keys", {
    method: "POST",
    body: { name: `adm-${model}`, models: [model] },
  });
  expect(response.status).toBe(201);
  return (await json<{ key: string }>(response)).key;
}

/** Records the subject of every call the limiter sees. */
function countingLimiter(limiter: RateLimit): { binding: RateLimit; subjects: string[] } {
  const subjects: string[] = [];
  return {
    subjects,
    binding: {
      limit: (options) => {
        subjects.push(options.key);
        return limiter.limit(options);
      },
    },
  };
}

/** One request through the Worker, its background work (the limiter's counts) awaited. */
async function predict(
  testEnv: Env,
  model: string,
  headers: Record<string, string>,
): Promise<Response> {
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`http://airlock.test/v1/models/${model}/predict`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ inputs: { amount: 1, country: "DE" } }),
    }),
    testEnv,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return response;
}

describe("rate-limit subjects", () => {
  it("counts a public model's requests with made-up tokens against the client's address", async () => {
    const model = await publicModel();
    const limiter = countingLimiter(tightLimiter);
    const tight = { ...env, PREDICT_RATE_LIMITER: limiter.binding } as unknown as Env;
    const client = `203.0.113.21/${crypto.randomUUID()}`;
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const response = await predict(tight, model, {
        authorization: `Bearer junk-${crypto.randomUUID()}`,
        "cf-connecting-ip": client,
      });
      statuses.push(response.status);
    }
    // As for any one subject: the fourth runs alongside the check that finds
    // the limit, and from then on the isolate refuses the address.
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
    expect(new Set(limiter.subjects)).toEqual(new Set([`ip:${client}`]));
  });

  it("counts a public model's requests with a checked key against the key, wherever they come from", async () => {
    const model = await publicModel();
    const key = await keyFor(model);
    const limiter = countingLimiter(tightLimiter);
    const tight = { ...env, PREDICT_RATE_LIMITER: limiter.binding } as unknown as Env;
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const response = await predict(tight, model, {
        authorization: `Bearer ${key}`,
        "cf-connecting-ip": `198.51.100.${i}/${crypto.randomUUID()}`,
      });
      statuses.push(response.status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
    expect(limiter.subjects.every((s) => s.startsWith("key:"))).toBe(true);
  });
});
