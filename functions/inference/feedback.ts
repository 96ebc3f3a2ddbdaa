import { createRoute, z } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import type { Context, MiddlewareHandler } from "hono";
import { sha256Hex } from "../../shared/crypto";
import { ErrorBody, validationError } from "../../shared/errors";
import { keyHmac } from "../../shared/inference/events";
import { erasedRow, tombstoned } from "../../shared/privacy/erasure";
import { ModelName, Timestamp } from "../../shared/schemas/common";
import type { AppEnv } from "../app-env";
import { bearerToken } from "../middleware/bearer";
import { keepParsedBody, readBoundedJson } from "../middleware/input-guard";
import { apiRouter } from "../router";
import { requireJson } from "./admission";
import { BucketingKey } from "./predict";
import { rateLimit } from "./rate-limit";
import { notFound, unauthorized } from "./serve";

/**
 * What clients learn after a prediction: ground-truth labels
 * (`POST /v1/feedback`) and business KPI events (`POST /v1/outcomes`), one
 * object or an array of up to 1000, answered 202: stored, to be joined to
 * predictions by id or key.
 *
 * Who may say what: each item names its model (`model`, which may be left out
 * when the key covers exactly one), the API key must cover that model (404
 * otherwise, as on the predict route, so keys cannot probe for names), and a
 * label must fit the model's task at once: one of its classes, or a number
 * for a regression model. A label may arrive before its prediction's log row,
 * so nothing here needs that row: the monitoring job joins a label only to a
 * prediction of the model it names, and counts the ones it drops.
 */
export const feedbackApi = apiRouter();

export const MAX_FEEDBACK_ITEMS = 1000;

/**
 * How far past this isolate's clock a UUIDv7 prediction id's time may lie:
 * ids carry the admitting isolate's clock, and isolates' clocks differ a
 * little. Beyond it the id cannot be one this gateway made.
 */
export const PREDICTION_ID_CLOCK_SKEW_MS = 60_000;

/** The time a UUIDv7 carries (milliseconds), or null for any other UUID. */
export function uuidV7Time(id: string): number | null {
  if (id[14] !== "7") return null;
  return Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

/** A prediction id: a UUID (UUIDv7 since ids carry their time), stored in lowercase as issued. */
export const PredictionId = z
  .uuid({ message: "must be a prediction id (a UUID)" })
  .toLowerCase()
  .refine((id) => {
    const time = uuidV7Time(id);
    return time === null || time <= Date.now() + PREDICTION_ID_CLOCK_SKEW_MS;
  }, "carries a time in the future: no prediction has this id");

const Feedback = z
  .object({
    predictionId: PredictionId,
    model: ModelName.optional().openapi({
      description: "The model the prediction is of; may be left out when the key covers one model.",
    }),
    label: z.union([z.number().finite(), z.string().min(1).max(256)]).openapi({
      description: "One of the model's classes (a string), or a number for a regression model.",
    }),
    observedAt: Timestamp.optional(),
  })
  .strict()
  .openapi("Feedback");

const Outcome = z
  .object({
    id: z.string().min(1).max(128).optional(),
    predictionId: PredictionId.optional(),
    key: BucketingKey.optional(),
    model: ModelName.optional(),
    kpi: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1 to 64 letters, digits, '_', '.' or '-'"),
    value: z.number().finite(),
    at: Timestamp.optional(),
  })
  .strict()
  .refine((o) => o.predictionId !== undefined || o.key !== undefined, {
    message: "needs a predictionId or a key",
    path: ["predictionId"],
  })
  .openapi("Outcome");

/** One item, or an array of 1 to MAX_FEEDBACK_ITEMS of them. */
const oneOrMany = <T extends z.ZodType>(item: T) =>
  z.union([item, z.array(item).min(1).max(MAX_FEEDBACK_ITEMS)]);

/** What a label for a model must fit. */
interface LabelSpec {
  task: "classification" | "regression";
  classes: string[] | null;
}

/** A checked API key and the models it covers. */
export interface ReportingKey {
  id: string;
  /** Every model name the key lists. */
  names: string[];
  /** The ones that exist, with what their labels must fit. */
  models: Map<string, LabelSpec>;
}

/**
 * The API key of the request and the models it covers; the rate limit is the
 * key's. Looking the key up costs a database read, so the client's address is
 * counted first, strictly: a made-up token never reaches Postgres unlimited.
 */
async function reporter(c: Context<AppEnv>): Promise<ReportingKey> {
  await rateLimit(c, null, { strict: true });
  const token = bearerToken(c.req.header("authorization"));
  if (!token) throw unauthorized();
  const keyHash = await sha256Hex(token);
  const { rows } = await c.var.database().execute<{
    id: string;
    name: string;
    task: LabelSpec["task"] | null;
    classes: string[] | null;
  }>(sql`
    SELECT k.id, covered.name, m.task, m.classes
    FROM api_keys k
    CROSS JOIN LATERAL jsonb_array_elements_text(k.models) AS covered(name)
    LEFT JOIN models m ON m.name = covered.name
    WHERE k.key_hash = ${keyHash} AND k.revoked_at IS NULL
      AND (k.expires_at IS NULL OR k.expires_at > now())`);
  const first = rows[0];
  if (!first) throw unauthorized();
  await rateLimit(c, keyHash);
  const models = new Map<string, LabelSpec>();
  for (const row of rows)
    if (row.task) models.set(row.name, { task: row.task, classes: row.classes });
  return { id: first.id, names: rows.map((row) => row.name), models };
}

/**
 * The first step of both routes, before their bodies are validated: the key
 * (rate-limited by address first), then the body, read once under the body
 * bounds and handed to the route's validator.
 */
function reporting(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    requireJson(c.req.header("content-type"));
    c.set("reporter", await reporter(c));
    keepParsedBody(c.req, await readBoundedJson(c.req));
    await next();
  };
}

const errorResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: ErrorBody } },
});
const errors = {
  400: errorResponse("Malformed body: `details` name every failing field of every item"),
  401: errorResponse("No or invalid API key"),
  404: errorResponse("A model the key does not cover (or that does not exist)"),
  413: errorResponse("Body larger than the configured limit"),
  415: errorResponse("Body is not application/json"),
  429: errorResponse("Rate limited; see Retry-After"),
};

interface Issue {
  path: (string | number)[];
  message: string;
}

/**
 * The model each item is about. A model the key does not cover is a 404, for
 * the whole request, whether or not it exists; leaving the model out is
 * allowed only when the key covers exactly one.
 */
function modelsOf(
  key: ReportingKey,
  items: { model?: string | undefined }[],
  batch: boolean,
  issues: Issue[],
): string[] {
  for (const item of items)
    if (item.model !== undefined && !key.models.has(item.model)) throw notFound(item.model);
  const only = key.names.length === 1 ? key.names[0] : undefined;
  return items.map((item, i) => {
    const model = item.model ?? only;
    if (model !== undefined) return model;
    issues.push({
      path: batch ? [i, "model"] : ["model"],
      message: `is required: this API key covers ${key.names.length} models`,
    });
    return "";
  });
}

/** Why a label does not fit its model, if it does not. */
function labelIssue(label: string | number, model: string, spec: LabelSpec): string | undefined {
  if (spec.task === "regression")
    return typeof label === "number"
      ? undefined
      : `must be a number: '${model}' is a regression model`;
  if (typeof label !== "string") return `must be one of the classes of '${model}', as a string`;
  if (spec.classes && !spec.classes.includes(label))
    return `is not one of the classes of '${model}'`;
  return undefined;
}

feedbackApi.openapi(
  createRoute({
    method: "post",
    path: "/feedback",
    tags: ["Inference"],
    summary: "Report ground-truth labels for predictions",
    description:
      "One label or an array of up to 1000. A later label for the same prediction and model replaces the current one; every label is kept. A label may arrive before its prediction's log row.",
    security: [{ ApiKey: [] }],
    middleware: [reporting()] as const,
    request: {
      body: { required: true, content: { "application/json": { schema: oneOrMany(Feedback) } } },
    },
    responses: {
      202: {
        description:
          "Stored; `erased` counts labels for predictions that were erased, which are not stored",
        content: {
          "application/json": {
            schema: z.object({ accepted: z.number().int(), erased: z.number().int() }),
          },
        },
      },
      ...errors,
    },
  }),
  async (c) => {
    const key = c.var.reporter;
    const body = c.req.valid("json");
    const batch = Array.isArray(body);
    const items = batch ? body : [body];
    const issues: Issue[] = [];
    const names = modelsOf(key, items, batch, issues);
    items.forEach((item, i) => {
      const model = names[i] as string;
      const spec = key.models.get(model);
      const problem = spec && labelIssue(item.label, model, spec);
      if (problem) issues.push({ path: batch ? [i, "label"] : ["label"], message: problem });
    });
    if (issues.length > 0) throw validationError(issues, "body");
    const now = new Date().toISOString();
    const rows = items.map((item, i) => ({
      prediction_id: item.predictionId,
      model: names[i] as string,
      label: item.label,
      observed_at: item.observedAt ?? now,
      api_key_id: key.id,
    }));
    // The last label for a prediction and model in this request is the current one.
    const latest = [
      ...new Map(rows.map((row) => [`${row.prediction_id} ${row.model}`, row])).values(),
    ];
    // A label for an erased prediction is not stored: erased stays erased.
    const result = await c.var.database().execute<{ erased: string }>(sql`
    WITH x AS MATERIALIZED (
      SELECT r.*, ${tombstoned("r")} AS erased
      FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS r(prediction_id text,
        model text, label jsonb, observed_at timestamptz, api_key_id text)
    ), events AS (
      INSERT INTO feedback_events (prediction_id, model, label, observed_at, api_key_id)
      SELECT prediction_id, model, label, observed_at, api_key_id FROM x WHERE NOT erased
    ), current AS (
      INSERT INTO feedback (prediction_id, model, label, observed_at, api_key_id)
      SELECT prediction_id, model, label, observed_at, api_key_id
      FROM jsonb_to_recordset(${JSON.stringify(latest)}::jsonb) AS l(prediction_id text,
        model text, label jsonb, observed_at timestamptz, api_key_id text)
      WHERE NOT ${tombstoned("l")}
      ON CONFLICT (prediction_id, model) DO UPDATE SET
        label = excluded.label,
        observed_at = excluded.observed_at,
        api_key_id = excluded.api_key_id,
        revision = feedback.revision + 1,
        updated_at = now()
    )
    SELECT count(*) FILTER (WHERE erased) AS erased FROM x`);
    const erased = Number(result.rows[0]?.erased ?? 0);
    return c.json({ accepted: rows.length, erased }, 202);
  },
);

feedbackApi.openapi(
  createRoute({
    method: "post",
    path: "/outcomes",
    tags: ["Inference"],
    summary: "Report business KPI events, by prediction id or bucketing key",
    description:
      "One event or an array of up to 1000. An event with an `id` is stored once per key and id: a retry stores nothing more.",
    security: [{ ApiKey: [] }],
    middleware: [reporting()] as const,
    request: {
      body: { required: true, content: { "application/json": { schema: oneOrMany(Outcome) } } },
    },
    responses: {
      202: {
        description:
          "Accepted; `stored` counts the events that were new; `erased` those of an erased prediction or key, which are not stored",
        content: {
          "application/json": {
            schema: z.object({
              accepted: z.number().int(),
              stored: z.number().int(),
              erased: z.number().int(),
            }),
          },
        },
      },
      ...errors,
    },
  }),
  async (c) => {
    const key = c.var.reporter;
    const body = c.req.valid("json");
    const batch = Array.isArray(body);
    const items = batch ? body : [body];
    const issues: Issue[] = [];
    const names = modelsOf(key, items, batch, issues);
    if (issues.length > 0) throw validationError(issues, "body");
    const now = new Date().toISOString();
    const rows = await Promise.all(
      items.map(async (item, i) => ({
        client_id: item.id ?? null,
        api_key_id: key.id,
        model: names[i] as string,
        prediction_id: item.predictionId ?? null,
        // Like the logs, never the key itself.
        key_hmac: item.key === undefined ? null : await keyHmac(c.env.LOG_HMAC_KEY, item.key),
        kpi: item.kpi,
        value: item.value,
        at: item.at ?? now,
      })),
    );
    // An event of an erased prediction, or of an erased key from before its
    // erasure, is not stored: erased stays erased.
    const result = await c.var.database().execute<{ stored: string; erased: string }>(sql`
    WITH x AS MATERIALIZED (
      SELECT r.*, ${erasedRow("r", "at")} AS erased
      FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS r(client_id text, api_key_id text,
        model text, prediction_id text, key_hmac text, kpi text, value double precision,
        at timestamptz)
    ), stored AS (
      INSERT INTO outcomes (client_id, api_key_id, model, prediction_id, key_hmac, kpi, value, at)
      SELECT client_id, api_key_id, model, prediction_id, key_hmac, kpi, value, at
      FROM x WHERE NOT erased
      ON CONFLICT (api_key_id, client_id) WHERE client_id IS NOT NULL DO NOTHING
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM stored) AS stored, (SELECT count(*) FROM x WHERE erased) AS erased`);
    const counts = result.rows[0];
    const erased = Number(counts?.erased ?? 0);
    return c.json({ accepted: rows.length, stored: Number(counts?.stored ?? 0), erased }, 202);
  },
);
