import { env, exports } from "cloudflare:workers";
import type { SQL } from "drizzle-orm";
import { openDatabase } from "../../shared/db/client";
import type { PredictionLogMessage } from "../../shared/inference/events";

export const BASE = "http://airlock.test";

/** The local alert receiver (test/global-setup.ts). */
export const alertReceiverBase = String(
  (env as unknown as Record<string, unknown>).TEST_ALERT_RECEIVER ?? "",
);

let counter = 0;
/** A model name no other test uses, so tests share one database safely. */
export function uniqueName(prefix = "m"): string {
  counter += 1;
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}-${counter}`;
}

/** The personal access token of the tests' admin person (test/global-setup.ts). */
export const adminToken = (): string =>
  (env as unknown as { TEST_ADMIN_PAT: string }).TEST_ADMIN_PAT;

export function adminHeaders(extra: Record<string, string> = {}): Record<string, string> {
  return { authorization: `Bearer ${adminToken()}`, ...extra };
}

export interface CallOptions {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  token?: string | null;
}

/** Calls the Worker's own fetch handler, as a client would. */
export async function call(path: string, options: CallOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  if (options.token !== null) headers.authorization ??= `Bearer ${options.token ?? adminToken()}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    headers["content-type"] ??= "application/json";
  }
  return exports.default.fetch(
    new Request(`${BASE}${path}`, { method: options.method ?? "GET", headers, body }),
  );
}

export async function json<T = Record<string, unknown>>(response: Response): Promise<T> {
  return (await response.json()) as T;
}

export interface ErrorJson {
  error: {
    code: string;
    message: string;
    requestId: string;
    details?: { path: string; message: string }[];
  };
}

export function classificationModel(name: string, overrides: Record<string, unknown> = {}) {
  return {
    name,
    task: "classification",
    owner: "risk-ml@example.com",
    description: "Flags card-not-present transactions for review",
    inputSchema: {
      type: "object",
      properties: {
        amount: { type: "number", minimum: 0 },
        country: { type: "string", enum: ["DE", "FR", "US"] },
        is_new_customer: { type: "boolean" },
      },
      required: ["amount", "country"],
    },
    classes: ["legit", "fraud"],
    positiveClass: "fraud",
    ...overrides,
  };
}

export function regressionModel(name: string, overrides: Record<string, unknown> = {}) {
  return {
    name,
    task: "regression",
    owner: "pricing@example.com",
    description: "Predicts basket value",
    inputSchema: {
      type: "object",
      properties: { items: { type: "integer", minimum: 0 } },
      required: ["items"],
    },
    ...overrides,
  };
}

/** A version whose upstream answers: the local model server's scorer (test/global-setup.ts). */
export const scoringVersion = {
  upstream: {
    kind: "http",
    url: `${(env as unknown as Record<string, string>).TEST_UPSTREAM ?? ""}/json/score`,
    protocol: "json",
    timeoutMs: 2_000,
  },
};

export const httpUpstream = {
  kind: "http",
  url: "https://models.example.com/v2/models/fraud/infer",
  protocol: "v2",
  timeoutMs: 800,
};

export async function createModel(body: Record<string, unknown>): Promise<Response> {
  const response = await call("/admin/models", { method: "POST", body });
  if (response.status !== 201)
    throw new Error(`model creation failed: ${response.status} ${await response.text()}`);
  return response;
}

export async function createVersion(
  model: string,
  version: string,
  extra: Record<string, unknown> = {},
) {
  const response = await call(`/admin/models/${model}/versions`, {
    method: "POST",
    body: { version, upstream: httpUpstream, ...extra },
  });
  if (response.status !== 201)
    throw new Error(`version creation failed: ${response.status} ${await response.text()}`);
  return response;
}

/** Direct database access for checks the API does not expose. */
export function database() {
  return openDatabase(env);
}

/** A bridge whose Postgres is down (see test/global-setup.ts). */
export const deadDatabaseProxy =
  (env as unknown as Record<string, string>).DEAD_DATABASE_WS_PROXY ?? "";

/** The messages of an error and its causes, for asserting on what the database said. */
export function errorChain(error: unknown): string {
  const messages: string[] = [];
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 6; depth++) {
    messages.push(e.message);
    e = e.cause;
  }
  return messages.join(" <- ");
}

export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the promise to reject");
}

/** A bare execution context, for calling the Worker's fetch with a modified env. */
export function executionContext(): ExecutionContext {
  return {
    waitUntil: () => {},
    passThroughOnException: () => {},
    props: {},
  } as unknown as ExecutionContext;
}

/** Records what the Worker puts on the PREDICTION_LOGS queue (the platform binding's interface). */
export function recordingQueue() {
  const messages: PredictionLogMessage[] = [];
  const queue = {
    send: async (body: PredictionLogMessage) => {
      messages.push(body);
    },
    sendBatch: async (batch: { body: PredictionLogMessage }[]) => {
      for (const item of batch) messages.push(item.body);
    },
  };
  return { messages, queue };
}

/** Runs one statement on the test database and returns its rows. */
export async function query<T>(statement: SQL): Promise<T[]> {
  const db = database();
  try {
    return (await db.db.execute(statement)).rows as T[];
  } finally {
    await db.close();
  }
}

/** A new principal with these grants, and a token for it, made by the tests' admin. */
export async function principalWithToken(
  grants: { role: string; model?: string }[],
  kind: "person" | "service" = "person",
): Promise<{ id: string; token: string }> {
  const name = uniqueName("p");
  const created = await call("/admin/principals", {
    method: "POST",
    body: {
      kind,
      displayName: `Test ${name}`,
      ...(kind === "person" ? { email: `${name}@example.com` } : {}),
      grants,
    },
  });
  if (created.status !== 201)
    throw new Error(`principal creation failed: ${created.status} ${await created.text()}`);
  const { id } = await json<{ id: string }>(created);
  const issued = await call(`/admin/principals/${id}/tokens`, {
    method: "POST",
    body: { name: "test", expiresInDays: 1 },
  });
  if (issued.status !== 201)
    throw new Error(`token issue failed: ${issued.status} ${await issued.text()}`);
  const { token } = await json<{ token: string }>(issued);
  return { id, token };
}

/**
 * A model card with every section the definition of done asks of its
 * author (shared/governance/card.ts), for tests whose subject is not the
 * card; tests of the card itself spell out what they leave out.
 */
export function completeModelCard(overrides: Record<string, unknown> = {}) {
  return {
    intendedUse: "Flags card-not-present transactions for manual review.",
    outOfScopeUse: "Declining a payment without a person looking at it.",
    trainingData: {
      description: "Card-not-present transactions, January to June",
      source: "warehouse.transactions",
      sensitiveAttributes: { used: [], excluded: ["age", "nationality"] },
    },
    provenance: { framework: "xgboost", codeRevision: "9f2c1e0" },
    evaluationMetrics: [
      { name: "roc_auc", value: 0.94, dataset: "holdout" },
      { name: "roc_auc", value: 0.92, dataset: "holdout", segment: "country=FR" },
    ],
    fairnessAnalysis: {
      attributes: ["country"],
      summary: "Recall within two points across countries.",
    },
    limitations: "Not trained on business accounts.",
    mitigations: "Business accounts are routed to the rules engine.",
    humanOversight: {
      killSwitchOwner: "fraud-oncall",
      rollbackPlan: "Engage the kill switch for challengers, then revert the rollout.",
    },
    ...overrides,
  };
}

/** A model card with its intended use alone: the definition of done misses the rest. */
export const thinModelCard = { intendedUse: "Scores transactions." };

/** What the definition of done lists as missing from `thinModelCard`, for a version, in order. */
export const thinCardMissing = (version: string) =>
  [
    "outOfScopeUse",
    "trainingData",
    "trainingData.sensitiveAttributes",
    "provenance",
    "evaluationMetrics",
    "evaluationMetrics",
    "fairnessAnalysis",
    "limitations",
    "mitigations",
    "humanOversight.killSwitchOwner",
    "humanOversight.rollbackPlan",
  ].map((path) => `versions/${version}/modelCard.${path}`);

/** Rows of the input schema of `classificationModel`, for a baseline. */
export const classificationBaselineRows = [
  { amount: 12.5, country: "DE", is_new_customer: false },
  { amount: 80, country: "FR", is_new_customer: true },
  { amount: 230.1, country: "US" },
];

async function expectOk(response: Response, what: string): Promise<Response> {
  if (response.status >= 300)
    throw new Error(`${what} failed: ${response.status} ${await response.text()}`);
  return response;
}

/** Sets a version's monitoring baseline from rows of its model's input schema. */
export async function setBaseline(
  model: string,
  version: string,
  rows: Record<string, unknown>[] = classificationBaselineRows,
): Promise<void> {
  const path = `/admin/models/${model}/versions/${version}/baseline`;
  await expectOk(await call(path, { method: "POST", body: { rows } }), `baseline of ${version}`);
}

/** Gives a model a data policy that stores everything: set, and changing nothing. */
export async function setDataPolicy(model: string): Promise<void> {
  const path = `/admin/models/${model}/data-policy`;
  await expectOk(await call(path, { method: "PUT", body: {} }), "data policy");
}

/**
 * Gives a governed model what Airlock fills in its versions' definition
 * of done, through the API: a baseline for each of `versions` (rows of
 * its input schema), a destination that takes its alerts (and no other
 * notice) at the local receiver, and a data policy.
 */
export async function fillAirlockItems(
  model: string,
  versions: string[],
  rows: Record<string, unknown>[] = classificationBaselineRows,
): Promise<{ destinationId: string }> {
  for (const version of versions) await setBaseline(model, version, rows);
  const destination = await expectOk(
    await call("/admin/alert-destinations", {
      method: "POST",
      body: {
        name: `${model} alerts`,
        kind: "slack",
        url: `${alertReceiverBase}/hooks/alerts-${model}`,
        models: [model],
        // Alerts only: a test's count of approval notices stays its own.
        types: ["alert.*"],
        includeSystem: false,
      },
    }),
    "destination",
  );
  const { id } = await json<{ id: string }>(destination);
  await setDataPolicy(model);
  return { destinationId: id };
}
