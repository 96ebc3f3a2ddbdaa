import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import worker from "../../functions/index";
import { errorStatus } from "../../shared/errors";
import type { PredictionLogMessage } from "../../shared/inference/events";
import {
  call,
  classificationModel,
  createModel,
  json,
  query,
  recordingQueue,
} from "../worker/helpers";
import { deliver, LOGS } from "../worker/log-helpers";
import { putRollout } from "../worker/rollout-helpers";
import { zodWordingIn } from "../worker/validation-wording";
import { type Components, encodePart, type JsonSchema, textFor, valueFor } from "./arbitraries";

/**
 * Property-based fuzzing of every route in /openapi.json. Each route gets
 * requests derived from its documented parameters and body, with hostile
 * strings, numbers, nesting and sizes in their place, while a stream of
 * valid predictions runs on another model through the same isolate and
 * the same log queue. It holds that:
 *   - no request gets a 5xx (but the documented 503s of a model the
 *     suite itself left without a champion or killed);
 *   - every 4xx carries a known error code, every 400 for a bad field
 *     names it, and no 400 speaks zod's default words;
 *   - every valid prediction of the stream is stored.
 * Seeded: FUZZ_SEED (default below) and FUZZ_RUNS cases per route (default
 * 40; FUZZ_VERBOSE=1 lists the statuses per route); a failure prints the
 * seed, the route and the request that replays it.
 * It runs in its own project on its own database (vitest.config.ts), so
 * what it creates, replays or discards touches no other test's data.
 */

/** FUZZ_SEED and FUZZ_RUNS from the environment of `npm test` (vitest.config.ts passes them). */
const settings = env as unknown as Record<string, string | undefined>;
const SEED = Number(settings.FUZZ_SEED || 20_261_201);
const RUNS = Number(settings.FUZZ_RUNS || 40);

interface Operation {
  method: string;
  path: string;
  parameters: { name: string; in: string; schema?: JsonSchema }[];
  body: JsonSchema | undefined;
}

interface Doc {
  paths: Record<
    string,
    Record<
      string,
      {
        parameters?: Operation["parameters"];
        requestBody?: { content?: Record<string, { schema?: JsonSchema }> };
      }
    >
  >;
  components: Components;
}

const schema = {
  type: "object",
  properties: {
    amount: { type: "number", minimum: 0 },
    tenure: { type: "integer", minimum: 0 },
    new_customer: { type: "boolean" },
  },
  required: ["amount", "tenure", "new_customer"],
};
const builtin = {
  kind: "builtin",
  format: "sklearn-linear",
  model: {
    features: ["amount", "tenure", "new_customer"],
    coef: [[0.01, -0.2, 0.8]],
    intercept: [-1],
    classes: ["legit", "fraud"],
  },
};

async function servingModel(name: string, isPublic: boolean) {
  await createModel(
    classificationModel(name, {
      inputSchema: schema,
      public: isPublic,
      fallback: { kind: "static", output: { label: "legit" } },
    }),
  );
  for (const version of ["v1", "v2"]) {
    const created = await call(`/admin/models/${name}/versions`, {
      method: "POST",
      body: { version, upstream: builtin },
    });
    expect(created.status).toBe(201);
  }
  expect((await putRollout(name, { champion: "v1", leaseMs: 250 })).status).toBe(200);
}

const suffix = crypto.randomUUID().slice(0, 8);
const target = `fuzz-target-${suffix}`;
const stream = `fuzz-stream-${suffix}`;
const { messages, queue } = recordingQueue();
let apiKey = "";
let predictionId = "";
let streaming = true;
const streamIds: string[] = [];
let streamLoop: Promise<void> = Promise.resolve();
const statuses = new Map<string, number>();

/** The Worker with the suite's recording log queue, waiting for its work after the response. */
async function send(request: Request): Promise<Response> {
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    request,
    { ...env, PREDICTION_LOGS: queue } as unknown as Env,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return response;
}

/** Valid predictions for the stream model, one after another, until the fuzzing ends. */
/** Each client's share of the stream: well within the rate limit of its address. */
const STREAM_PER_CLIENT = 400;

async function validStream(client: number) {
  let n = client * 1000;
  for (let sent = 0; streaming && sent < STREAM_PER_CLIENT; sent++) {
    const response = await send(
      new Request(`http://airlock.test/v1/models/${stream}/predict`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          inputs: { amount: n % 500, tenure: n % 12, new_customer: n % 2 === 0 },
          attributes: { seg: `s${n % 3}` },
        }),
      }),
    );
    expect(response.status).toBe(200);
    streamIds.push(response.headers.get("x-airlock-prediction-id") ?? "");
    n += 1;
    // Let the fuzzing requests interleave with the stream's.
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

/** Values of the resources the suite owns, for path parameters by name. */
function pools(): Record<string, string[]> {
  return {
    model: [target],
    version: ["v1", "v2"],
    predictionId: [predictionId, crypto.randomUUID()],
    id: ["1", "999999999999", crypto.randomUUID()],
    sha256: ["a".repeat(64)],
  };
}

/** Body fields named like the suite's resources take their values now and then. */
function fieldPools(): Record<string, unknown[]> {
  return {
    model: [target],
    models: [[target]],
    version: ["v1", "v2"],
    champion: ["v1"],
    predictionId: [predictionId],
    label: ["legit", "fraud"],
    inputs: [
      { amount: 12.5, tenure: 3, new_customer: false },
      [{ amount: 1, tenure: 0, new_customer: true }],
    ],
    stateVersion: [1, 2],
  };
}

function operations(doc: Doc): Operation[] {
  const out: Operation[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      out.push({
        method: method.toUpperCase(),
        path,
        parameters: operation.parameters ?? [],
        body: operation.requestBody?.content?.["application/json"]?.schema,
      });
    }
  }
  return out;
}

interface Generated {
  path: Record<string, string>;
  query: [string, string][];
  body: { kind: "json"; value: unknown } | { kind: "raw"; text: string } | { kind: "none" };
  auth: "good" | "none" | "junk";
  contentType: string;
  idempotencyKey: string | null;
}

function requestArbitrary(op: Operation, doc: Doc): fc.Arbitrary<Generated> {
  const owned = pools();
  const pathParams = op.parameters.filter((p) => p.in === "path");
  const queryParams = op.parameters.filter((p) => p.in === "query");
  const path = fc.record(
    Object.fromEntries(pathParams.map((p) => [p.name, textFor(owned[p.name] ?? [])])),
  ) as fc.Arbitrary<Record<string, string>>;
  const query = fc
    .tuple(
      ...queryParams.map((p) =>
        fc.option(
          fc.oneof(
            { weight: 3, arbitrary: textFor([]) },
            {
              weight: 1,
              arbitrary: valueFor(p.schema ?? {}, doc.components).map((v) =>
                typeof v === "string" ? v : (JSON.stringify(v) ?? ""),
              ),
            },
          ),
          { freq: 1 },
        ),
      ),
    )
    .map((values) =>
      values.flatMap((value, i) =>
        value === null ? [] : [[queryParams[i]?.name ?? "", value] as [string, string]],
      ),
    );
  const body: fc.Arbitrary<Generated["body"]> = op.body
    ? fc.oneof(
        {
          weight: 9,
          arbitrary: valueFor(op.body, doc.components, 0, fieldPools()).map((value) => ({
            kind: "json" as const,
            value,
          })),
        },
        {
          weight: 1,
          arbitrary: fc
            .constantFrom("", "{", "null", "[]", '{"a":1}{', "\u0000", '{"x":"\\ud800"}')
            .map((text) => ({ kind: "raw" as const, text })),
        },
      )
    : fc.constant({ kind: "none" as const });
  return fc.record({
    path,
    query,
    body,
    auth: fc.constantFrom("good", "good", "good", "good", "good", "none", "junk") as fc.Arbitrary<
      Generated["auth"]
    >,
    contentType: fc.constantFrom(
      "application/json",
      "application/json",
      "application/json; charset=utf-8",
      "text/plain",
    ),
    idempotencyKey: fc.option(fc.constantFrom("k-1", "k 2", "x".repeat(300)), { freq: 4 }),
  });
}

function toRequest(op: Operation, generated: Generated): Request {
  let path = op.path.replace(/\{([^}]+)\}/g, (_, name: string) =>
    encodePart(generated.path[name] ?? ""),
  );
  if (generated.query.length > 0) {
    path += `?${generated.query.map(([k, v]) => `${encodePart(k)}=${encodePart(v)}`).join("&")}`;
  }
  const headers: Record<string, string> = {};
  const admin = op.path.startsWith("/admin");
  if (generated.auth === "good") {
    headers.authorization = `Bearer ${admin ? (env as unknown as { TEST_ADMIN_PAT: string }).TEST_ADMIN_PAT : apiKey}`;
  } else if (generated.auth === "junk") {
    headers.authorization = `Bearer junk-${crypto.randomUUID()}`;
  }
  if (generated.idempotencyKey !== null) headers["idempotency-key"] = generated.idempotencyKey;
  let body: string | undefined;
  if (generated.body.kind !== "none") {
    headers["content-type"] = generated.contentType;
    body =
      generated.body.kind === "raw" ? generated.body.text : JSON.stringify(generated.body.value);
  }
  return new Request(`http://airlock.test${path}`, { method: op.method, headers, body });
}

const knownCodes = new Set(Object.keys(errorStatus));
/** The 503s a model is in by its own state, which the suite's changes can put the target in. */
const stateful503 = new Set(["NO_SERVING_VERSION", "MODEL_DISABLED"]);

/** What a response must hold; returns the problem, or null. */
async function problemWith(op: Operation, response: Response): Promise<string | null> {
  const v2 = op.path.startsWith("/v2");
  const text = await response.text();
  if (response.status < 400) return null;
  let body: { error?: unknown } | null = null;
  try {
    body = text === "" ? null : (JSON.parse(text) as { error?: unknown });
  } catch {
    return `status ${response.status} with a body that is not JSON: ${text.slice(0, 200)}`;
  }
  const code = v2
    ? response.headers.get("x-airlock-error-code")
    : (body?.error as { code?: string } | undefined)?.code;
  if (!code || (!knownCodes.has(code) && code !== "MODEL_NOT_READY")) {
    return `status ${response.status} without a known error code: ${text.slice(0, 300)}`;
  }
  if (response.status >= 500 && !(response.status === 503 && stateful503.has(code))) {
    return `status ${response.status} ${code}: ${text.slice(0, 300)}`;
  }
  if (response.status === 400 && (code === "VALIDATION_FAILED" || code === "BODY_TOO_DEEP")) {
    if (v2) {
      const message = typeof body?.error === "string" ? body.error : "";
      if (!/: /.test(message)) return `400 ${code} names no field: ${message}`;
    } else {
      const error = body?.error as {
        message?: string;
        details?: { path?: string; message?: string }[];
      };
      const first = error.details?.[0];
      if (!first?.path || !first.message) return `400 ${code} without details: ${text}`;
      if (!error.message?.includes(first.path)) {
        return `400 ${code} whose message does not name ${first.path}: ${error.message}`;
      }
    }
  }
  if (response.status === 400) {
    // Words for people, never zod's defaults ("Invalid input: expected string, received …").
    const error = v2
      ? { message: typeof body?.error === "string" ? body.error : "" }
      : (body?.error as { message?: string; details?: { path?: string; message?: string }[] });
    const wording = zodWordingIn(error);
    if (wording) return `400 ${code}: ${wording}`;
  }
  return null;
}

describe("API fuzzing: every documented route", () => {
  let doc: Doc;

  beforeAll(async () => {
    await servingModel(target, false);
    await servingModel(stream, true);
    const key = await json<{ key: string }>(
      await call("/admin/keys", { method: "POST", body: { name: "fuzz", models: [target] } }),
    );
    apiKey = key.key;
    const served = await send(
      new Request(`http://airlock.test/v1/models/${target}/predict`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${apiKey}` },
        body: JSON.stringify({ inputs: { amount: 1, tenure: 1, new_customer: true } }),
      }),
    );
    expect(served.status).toBe(200);
    predictionId = served.headers.get("x-airlock-prediction-id") ?? "";
    doc = await json<Doc>(await call("/openapi.json", { token: null }));
    // Three clients at once, so their results share log windows with the fuzzing's.
    streamLoop = Promise.all([0, 1, 2].map((client) => validStream(client))).then(() => {});
  });

  afterAll(async () => {
    streaming = false;
    await streamLoop;
  });

  it("answers no 5xx, names every bad field, and costs the valid stream nothing", {
    timeout: 600_000,
  }, async () => {
    const ops = operations(doc);
    expect(ops.length).toBeGreaterThan(40);
    let cases = 0;
    for (const [index, op] of ops.entries()) {
      const seed = SEED + index;
      try {
        await fc.assert(
          fc.asyncProperty(requestArbitrary(op, doc), async (generated) => {
            const response = await send(toRequest(op, generated));
            cases += 1;
            const key = `${op.method} ${op.path} ${response.status}`;
            statuses.set(key, (statuses.get(key) ?? 0) + 1);
            const problem = await problemWith(op, response);
            if (problem) throw new Error(problem);
          }),
          { seed, numRuns: RUNS },
        );
      } catch (error) {
        throw new Error(
          `${op.method} ${op.path} (FUZZ_SEED=${SEED}, route seed ${seed}): ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    }
    streaming = false;
    await streamLoop;
    console.log(
      `fuzz: ${ops.length} routes, ${cases} cases (FUZZ_SEED=${SEED}, FUZZ_RUNS=${RUNS}); ${streamIds.length} valid predictions alongside`,
    );
    const byStatus = new Map<string, number>();
    for (const [key, n] of statuses) {
      const status = key.slice(key.lastIndexOf(" ") + 1);
      byStatus.set(status, (byStatus.get(status) ?? 0) + n);
    }
    console.log(
      `fuzz: responses by status: ${[...byStatus]
        .sort()
        .map(([status, n]) => `${status}: ${n}`)
        .join(", ")}`,
    );
    if (settings.FUZZ_VERBOSE) console.log([...statuses].sort().join("\n"));
    expect(cases).toBe(ops.length * RUNS);

    // Every valid prediction that went out alongside the fuzzing is stored.
    expect(streamIds.length).toBeGreaterThan(0);
    const bodies = messages.map((body: PredictionLogMessage) => ({ body }));
    for (let i = 0; i < bodies.length; i += 100) {
      const result = await deliver(LOGS, bodies.slice(i, i + 100));
      expect(result.retryMessages).toEqual([]);
    }
    const stored = await query<{ prediction_id: string }>(
      sql`SELECT prediction_id FROM predictions WHERE model = ${stream} AND role = 'served'`,
    );
    const have = new Set(stored.map((row) => row.prediction_id));
    expect(streamIds.filter((id) => !have.has(id))).toEqual([]);
  });
});
