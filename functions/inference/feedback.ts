import { z } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import type { Context } from "hono";
import { Hono } from "hono";
import { sha256Hex } from "../../shared/crypto";
import { validationError } from "../../shared/errors";
import { keyHmac } from "../../shared/inference/events";
import type { AppEnv } from "../app-env";
import { BucketingKey, readJson, requireJson } from "./predict";
import { rateLimit } from "./rate-limit";
import { bearer, unauthorized, validKeyId } from "./serve";

/**
 * What clients learn after a prediction: ground-truth labels
 * (`POST /v1/feedback`) and business KPI events (`POST /v1/outcomes`), one
 * object or an array of up to 1000. Both need an API key (any valid key: a
 * label may arrive before its prediction's log row, so the model is not known
 * yet) and answer 202: stored, to be joined to predictions by id or key.
 */
export const feedbackApi = new Hono<AppEnv>();

export const MAX_FEEDBACK_ITEMS = 1000;

const PredictionId = z.string().min(1).max(128);
const Time = z.iso.datetime({ offset: true });

const Feedback = z
  .object({
    predictionId: PredictionId,
    label: z.union([z.number().finite(), z.string().min(1).max(256)]),
    observedAt: Time.optional(),
  })
  .strict();

const Outcome = z
  .object({
    id: z.string().min(1).max(128).optional(),
    predictionId: PredictionId.optional(),
    key: BucketingKey.optional(),
    kpi: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1 to 64 letters, digits, '_', '.' or '-'"),
    value: z.number().finite(),
    at: Time.optional(),
  })
  .strict()
  .refine((o) => o.predictionId !== undefined || o.key !== undefined, {
    message: "needs a predictionId or a key",
    path: ["predictionId"],
  });

/**
 * The API key's id: any valid key may report; the rate limit is the key's.
 * Looking the key up costs a database read, so the client's address is
 * counted first, strictly: a made-up token never reaches Postgres unlimited.
 */
async function reporter(c: Context<AppEnv>): Promise<string> {
  await rateLimit(c, null, { strict: true });
  const token = bearer.exec(c.req.header("authorization") ?? "")?.[1];
  if (!token) throw unauthorized();
  const keyHash = await sha256Hex(token);
  const keyId = await validKeyId(c, keyHash);
  if (!keyId) throw unauthorized();
  await rateLimit(c, keyHash);
  return keyId;
}

async function parse<T extends z.ZodType>(c: Context<AppEnv>, schema: T): Promise<z.infer<T>[]> {
  requireJson(c.req.header("content-type"));
  const body = await readJson(c.req);
  // One object or an array of them; parsed by its shape so errors name the field.
  const parsed = Array.isArray(body)
    ? z.array(schema).min(1).max(MAX_FEEDBACK_ITEMS).safeParse(body)
    : schema.safeParse(body);
  if (!parsed.success) throw validationError(parsed.error.issues, "body");
  return (Array.isArray(parsed.data) ? parsed.data : [parsed.data]) as z.infer<T>[];
}

feedbackApi.post("/feedback", async (c) => {
  const apiKeyId = await reporter(c);
  const items = await parse(c, Feedback);
  const now = new Date().toISOString();
  const rows = items.map((item) => ({
    prediction_id: item.predictionId,
    label: item.label,
    observed_at: item.observedAt ?? now,
    api_key_id: apiKeyId,
  }));
  // The last label for a prediction in this request is the current one.
  const latest = [...new Map(rows.map((row) => [row.prediction_id, row])).values()];
  await c.var.database().execute(sql`
    WITH events AS (
      INSERT INTO feedback_events (prediction_id, label, observed_at, api_key_id)
      SELECT prediction_id, label, observed_at, api_key_id
      FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
        AS x(prediction_id text, label jsonb, observed_at timestamptz, api_key_id text)
    )
    INSERT INTO feedback (prediction_id, label, observed_at, api_key_id)
    SELECT prediction_id, label, observed_at, api_key_id
    FROM jsonb_to_recordset(${JSON.stringify(latest)}::jsonb)
      AS x(prediction_id text, label jsonb, observed_at timestamptz, api_key_id text)
    ON CONFLICT (prediction_id) DO UPDATE SET
      label = excluded.label,
      observed_at = excluded.observed_at,
      api_key_id = excluded.api_key_id,
      revision = feedback.revision + 1,
      updated_at = now()`);
  return c.json({ accepted: rows.length }, 202);
});

feedbackApi.post("/outcomes", async (c) => {
  const apiKeyId = await reporter(c);
  const items = await parse(c, Outcome);
  const now = new Date().toISOString();
  const rows = await Promise.all(
    items.map(async (item) => ({
      client_id: item.id ?? null,
      api_key_id: apiKeyId,
      prediction_id: item.predictionId ?? null,
      // Like the logs, never the key itself.
      key_hmac: item.key === undefined ? null : await keyHmac(c.env.LOG_HMAC_KEY, item.key),
      kpi: item.kpi,
      value: item.value,
      at: item.at ?? now,
    })),
  );
  const result = await c.var.database().execute(sql`
    INSERT INTO outcomes (client_id, api_key_id, prediction_id, key_hmac, kpi, value, at)
    SELECT client_id, api_key_id, prediction_id, key_hmac, kpi, value, at
    FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS x(client_id text, api_key_id text,
      prediction_id text, key_hmac text, kpi text, value double precision, at timestamptz)
    ON CONFLICT (api_key_id, client_id) WHERE client_id IS NOT NULL DO NOTHING`);
  return c.json({ accepted: rows.length, stored: result.rowCount ?? 0 }, 202);
});
