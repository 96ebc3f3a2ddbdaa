/**
 * Admission under abuse: who is counted by the rate limiter, and what an
 * unknown or unauthenticated request may cost before it is refused.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import worker from "../../functions/index";
import { leaseMemory } from "../../functions/rollout/leases";
import { MIN_LEASE_MS } from "../../shared/rollout/lease";
import {
  call,
  classificationModel,
  createModel,
  deadDatabaseProxy,
  type ErrorJson,
  json,
  uniqueName,
} from "./helpers";
import { putRollout } from "./rollout-helpers";

const bindings = env as unknown as Record<string, unknown>;
const upstreamBase = String(bindings.TEST_UPSTREAM ?? "");

async function publicModel(model = uniqueName("adm")): Promise<string> {
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

/**
 * A limiter that allows `limit` requests per subject and records the subject
 * of every call: decided by counts, not by the platform's clock-aligned windows.
 */
function countingLimiter(limit: number): { binding: RateLimit; subjects: string[] } {
  const subjects: string[] = [];
  const counts = new Map<string, number>();
  return {
    subjects,
    binding: {
      limit: async ({ key }) => {
        subjects.push(key);
        const count = (counts.get(key) ?? 0) + 1;
        counts.set(key, count);
        return { success: count <= limit };
      },
    },
  };
}

/**
 * Runs `work` with the isolate's clock stopped at `at`: leases and the
 * limiter's remembered answers then expire only when a test says so.
 */
async function frozenAt<T>(at: number, work: () => Promise<T>): Promise<T> {
  const clock = vi.spyOn(Date, "now").mockReturnValue(at);
  try {
    return await work();
  } finally {
    clock.mockRestore();
  }
}

const address = () => `192.0.2.1/${crypto.randomUUID()}`;

/** A limiter that refuses everyone. */
const refusing: RateLimit = { limit: async () => ({ success: false }) };

/** The rollout objects' namespace, recording the name of every object asked for. */
function countingRollout(): { namespace: Env["MODEL_ROLLOUT"]; asked: string[] } {
  const asked: string[] = [];
  const real = env.MODEL_ROLLOUT;
  const namespace = new Proxy(real, {
    get(target, property) {
      if (property === "getByName")
        return (name: string, ...rest: unknown[]) => {
          asked.push(name);
          return (target.getByName as (...args: unknown[]) => unknown)(name, ...rest);
        };
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { namespace, asked };
}

/** One request through the Worker, its background work (the limiter's counts) awaited. */
async function send(testEnv: Env, path: string, headers: Record<string, string>, body: unknown) {
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`http://airlock.test${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    }),
    testEnv,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return response;
}

const predict = (testEnv: Env, model: string, headers: Record<string, string>) =>
  send(testEnv, `/v1/models/${model}/predict`, headers, { inputs: { amount: 1, country: "DE" } });

describe("rate-limit subjects", () => {
  it("counts a public model's requests with made-up tokens against the client's address", async () => {
    const model = await publicModel();
    const limiter = countingLimiter(3);
    const tight = { ...env, PREDICT_RATE_LIMITER: limiter.binding } as unknown as Env;
    const client = address();
    const statuses = await frozenAt(Date.now(), async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        const response = await predict(tight, model, {
          authorization: `Bearer junk-${crypto.randomUUID()}`,
          "cf-connecting-ip": client,
        });
        statuses.push(response.status);
      }
      return statuses;
    });
    // As for any one subject: the fourth runs alongside the check that finds
    // the limit, and from then on the isolate refuses the address.
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
    expect(limiter.subjects).toEqual(Array(4).fill(`ip:${client}`));
  });

  it("counts a public model's requests with a checked key against the key, wherever they come from", async () => {
    const model = await publicModel();
    const key = await keyFor(model);
    const limiter = countingLimiter(3);
    const tight = { ...env, PREDICT_RATE_LIMITER: limiter.binding } as unknown as Env;
    const statuses = await frozenAt(Date.now(), async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        const response = await predict(tight, model, {
          authorization: `Bearer ${key}`,
          "cf-connecting-ip": address(),
        });
        statuses.push(response.status);
      }
      return statuses;
    });
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
    // The first request also paid, by its address, for fetching the lease.
    expect(limiter.subjects.filter((s) => s.startsWith("key:"))).toHaveLength(4);
    expect(limiter.subjects.filter((s) => s.startsWith("ip:"))).toHaveLength(1);
  });
});

describe("unknown and unauthenticated requests", () => {
  it.each([
    ["without a key", {}],
    ["with a made-up key", { authorization: "Bearer ak_made-up" }],
  ])("are limited per address before an unknown name costs a lookup (%s)", async (_, auth) => {
    const rollout = countingRollout();
    // Any database read would fail: the request must be refused before one.
    const guarded = {
      ...env,
      PREDICT_RATE_LIMITER: refusing,
      MODEL_ROLLOUT: rollout.namespace,
      DATABASE_WS_PROXY: deadDatabaseProxy,
    } as unknown as Env;
    const response = await predict(guarded, uniqueName("nobody"), {
      ...auth,
      "cf-connecting-ip": address(),
    });
    expect(response.status).toBe(429);
    expect((await json<ErrorJson>(response)).error.code).toBe("RATE_LIMITED");
    expect(rollout.asked).toEqual([]);
  });

  it("limits /v1/feedback per address before the key is looked up", async () => {
    const guarded = {
      ...env,
      PREDICT_RATE_LIMITER: refusing,
      DATABASE_WS_PROXY: deadDatabaseProxy,
    } as unknown as Env;
    for (const path of ["/v1/feedback", "/v1/outcomes"]) {
      const response = await send(
        guarded,
        path,
        { authorization: "Bearer ak_made-up", "cf-connecting-ip": address() },
        { predictionId: crypto.randomUUID(), label: "fraud", kpi: "x", value: 1 },
      );
      expect(response.status, path).toBe(429);
    }
  });

  it("asks neither the rollout object nor the registry again about a name it just found unknown", async () => {
    const name = uniqueName("ghost");
    const rollout = countingRollout();
    const counted = { ...env, MODEL_ROLLOUT: rollout.namespace } as unknown as Env;
    // Any database read would fail.
    const noDatabase = { ...counted, DATABASE_WS_PROXY: deadDatabaseProxy } as unknown as Env;
    const headers = { "cf-connecting-ip": address() };
    const t0 = Date.now();
    await frozenAt(t0, async () => {
      expect((await predict(counted, name, headers)).status).toBe(401);
      expect(rollout.asked).toEqual([name]);
      expect((await predict(noDatabase, name, headers)).status).toBe(401);
    });
    await frozenAt(t0 + MIN_LEASE_MS - 1, async () => {
      expect((await predict(noDatabase, name, headers)).status).toBe(401);
    });
    expect(rollout.asked).toEqual([name]);
    // Never longer than the minimum lease.
    await frozenAt(t0 + MIN_LEASE_MS, async () => {
      expect((await predict(counted, name, headers)).status).toBe(401);
    });
    expect(rollout.asked).toEqual([name, name]);
  });

  it("finds a model created a moment after its name was found unknown, within the minimum lease", async () => {
    const name = uniqueName("late");
    const headers = { "cf-connecting-ip": address() };
    const t0 = Date.now();
    await frozenAt(t0, async () => {
      expect((await predict(env, name, headers)).status).toBe(401);
    });
    await publicModel(name);
    await frozenAt(t0 + MIN_LEASE_MS, async () => {
      expect((await predict(env, name, headers)).status).toBe(200);
    });
  });

  it("gives unknown names no lease keeper, so they cannot crowd out the models in use", async () => {
    const before = leaseMemory();
    const headers = { "cf-connecting-ip": address() };
    for (let i = 0; i < 5; i++) {
      expect((await predict(env, uniqueName("junk"), headers)).status).toBe(401);
    }
    const after = leaseMemory();
    expect(after.keepers).toBe(before.keepers);
    expect(after.unknownModels).toBe(before.unknownModels + 5);
  });
});
