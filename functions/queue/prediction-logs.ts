/**
 * Queue consumers of the prediction-log pipeline.
 *
 * `airlock-prediction-logs`: each batch (up to 100 messages, each carrying
 * one or more results) is written in one statement: every table's rows as one
 * jsonb parameter, inserted ON CONFLICT DO NOTHING, so a redelivered batch
 * changes nothing. A message that does not match the event schema (a poison
 * message) is stored as a dead letter in the same statement and acked: it
 * never holds up the rest of its batch. When Postgres fails, every message is
 * retried with exponential backoff; after `max_retries` the platform moves
 * them to the dead-letter queue.
 *
 * `airlock-prediction-logs-dlq`: stores each message whole in `dead_letters`,
 * retrying with backoff (up to 6 hours apart, 100 times) for as long as the
 * queue keeps messages, so a long database outage loses nothing. An operator
 * replays them with `POST /admin/dead-letters/replay`.
 */
import { sql } from "drizzle-orm";
import { type Database, openDatabase } from "../../shared/db/client";
import { describeError } from "../../shared/errors";
import {
  type PredictionLogMessage,
  PredictionLogMessageSchema,
} from "../../shared/inference/events";
import { retryDelaySeconds, toRows } from "../../shared/logs/rows";
import {
  ALERT_DELIVERIES_DLQ,
  ALERT_DELIVERIES_QUEUE,
  consumeAlertDeadLetters,
  consumeAlertDeliveries,
} from "./alert-deliveries";

export const PREDICTION_LOGS_QUEUE = "airlock-prediction-logs";
export const PREDICTION_LOGS_DLQ = "airlock-prediction-logs-dlq";

interface DeadLetterRow {
  message_id: string;
  queue: string;
  body: unknown;
  error: string;
  attempts: number;
}

export interface StoredCounts {
  predictions: number;
  refs: number;
  rejected: number;
  deadLetters: number;
}

/** The queue handler: one consumer per queue, and a loud error for any other. */
export async function handleQueue(
  batch: MessageBatch<unknown>,
  env: Env,
  _ctx?: ExecutionContext,
): Promise<void> {
  switch (batch.queue) {
    case PREDICTION_LOGS_QUEUE:
      return consumePredictionLogs(batch, env);
    case PREDICTION_LOGS_DLQ:
      return consumeDeadLetters(batch, env);
    case ALERT_DELIVERIES_QUEUE:
      return consumeAlertDeliveries(batch, env);
    case ALERT_DELIVERIES_DLQ:
      return consumeAlertDeadLetters(batch, env);
    default:
      throw new Error(`No consumer for queue '${batch.queue}'`);
  }
}

export async function consumePredictionLogs(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const valid: PredictionLogMessage[] = [];
  const poison: DeadLetterRow[] = [];
  for (const message of batch.messages) {
    const parsed = PredictionLogMessageSchema.safeParse(message.body);
    if (parsed.success) valid.push(parsed.data as PredictionLogMessage);
    else {
      const issue = parsed.error.issues[0];
      poison.push({
        message_id: message.id,
        queue: batch.queue,
        body: jsonBody(message.body),
        error: `malformed message: ${issue ? `${issue.path.join(".") || "body"}: ${issue.message}` : "invalid"}`,
        attempts: message.attempts,
      });
    }
  }
  try {
    const counts = await storeLogs(
      env,
      valid.flatMap((m) => m.results),
      poison,
    );
    batch.ackAll();
    console.log(
      JSON.stringify({
        level: poison.length > 0 ? "warn" : "info",
        event: "prediction_logs.stored",
        messages: batch.messages.length,
        ...counts,
        poison: poison.length,
      }),
    );
  } catch (error) {
    for (const message of batch.messages) {
      message.retry({ delaySeconds: retryDelaySeconds(message.attempts, 2, 300) });
    }
    console.error(
      JSON.stringify({
        level: "error",
        event: "prediction_logs.store_failed",
        messages: batch.messages.length,
        error: describeError(error),
      }),
    );
  }
}

export async function consumeDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const rows = batch.messages.map((message) => ({
    message_id: message.id,
    queue: PREDICTION_LOGS_QUEUE,
    body: jsonBody(message.body),
    error: `not stored after ${message.attempts} deliveries to ${PREDICTION_LOGS_QUEUE}`,
    attempts: message.attempts,
  }));
  try {
    await storeLogs(env, [], rows);
    batch.ackAll();
    console.error(
      JSON.stringify({ level: "error", event: "dead_letters.stored", messages: rows.length }),
    );
  } catch (error) {
    for (const message of batch.messages) {
      message.retry({ delaySeconds: retryDelaySeconds(message.attempts, 60, 6 * 60 * 60) });
    }
    console.error(
      JSON.stringify({
        level: "error",
        event: "dead_letters.store_failed",
        error: describeError(error),
      }),
    );
  }
}

const predictionColumns =
  sql.raw(`prediction_id text, role text, version text, created_at timestamptz,
  request_id text, model text, inputs jsonb, prediction jsonb, attributes jsonb, key_hmac text,
  latency_ms double precision, status text, error_code text, state_version bigint`);
const rejectedColumns = sql.raw(`prediction_id text, created_at timestamptz, request_id text,
  model text, inputs jsonb, issues jsonb, attributes jsonb, key_hmac text, state_version bigint`);
const deadLetterColumns = sql.raw(
  "message_id text, queue text, body jsonb, error text, attempts integer",
);

/** Results per statement: a batch of full messages holds thousands; see storeLogs. */
export const RESULTS_PER_STATEMENT = 1000;

/**
 * Stores results and dead letters on one connection, in statements of up to
 * RESULTS_PER_STATEMENT results, each kind of row passed once per statement
 * as one jsonb parameter (results feed both `predictions` and
 * `prediction_refs`); rows already stored are left alone, so a batch that
 * fails halfway and is delivered again stores the rest and doubles nothing.
 * A batch of one-request messages is one statement; a batch of full,
 * coalesced messages is a few, which keeps each statement's working set
 * within the server's work_mem. Returns how many rows were new.
 */
export async function storeLogs(
  env: Env,
  results: PredictionLogMessage["results"],
  deadLetters: DeadLetterRow[],
): Promise<StoredCounts> {
  const total = { predictions: 0, refs: 0, rejected: 0, deadLetters: 0 };
  if (results.length + deadLetters.length === 0) return total;
  const handle = openDatabase(env);
  try {
    for (let start = 0; start === 0 || start < results.length; start += RESULTS_PER_STATEMENT) {
      const counts = await storeChunk(
        handle.db,
        results.slice(start, start + RESULTS_PER_STATEMENT),
        start === 0 ? deadLetters : [],
      );
      total.predictions += counts.predictions;
      total.refs += counts.refs;
      total.rejected += counts.rejected;
      total.deadLetters += counts.deadLetters;
    }
    return total;
  } finally {
    await handle.close();
  }
}

async function storeChunk(
  db: Database,
  results: PredictionLogMessage["results"],
  deadLetters: DeadLetterRow[],
): Promise<StoredCounts> {
  const rows = toRows(results);
  if (rows.predictions.length + rows.rejected.length + deadLetters.length === 0) {
    return { predictions: 0, refs: 0, rejected: 0, deadLetters: 0 };
  }
  const result = await db.execute<{
    predictions: string;
    refs: string;
    rejected: string;
    dead_letters: string;
  }>(sql`
      WITH x AS MATERIALIZED (
        SELECT * FROM jsonb_to_recordset(${JSON.stringify(rows.predictions)}::jsonb)
          AS x(${predictionColumns})
      ), p AS (
        INSERT INTO predictions (prediction_id, role, version, created_at, request_id, model,
          inputs, prediction, attributes, key_hmac, latency_ms, status, error_code, state_version)
        SELECT prediction_id, role, version, created_at, request_id, model,
          coalesce(inputs, 'null'::jsonb), prediction, attributes, key_hmac, latency_ms, status,
          error_code, state_version
        FROM x
        ON CONFLICT DO NOTHING
        RETURNING 1
      ), r AS (
        INSERT INTO prediction_refs (prediction_id, role, version, created_at, model, prediction,
          attributes, key_hmac)
        SELECT prediction_id, role, version, created_at, model, prediction, attributes, key_hmac
        FROM x
        ON CONFLICT DO NOTHING
        RETURNING 1
      ), j AS (
        INSERT INTO rejected_requests (prediction_id, created_at, request_id, model, inputs, issues,
          attributes, key_hmac, state_version)
        SELECT prediction_id, created_at, request_id, model, inputs, issues, attributes, key_hmac,
          state_version
        FROM jsonb_to_recordset(${JSON.stringify(rows.rejected)}::jsonb) AS x(${rejectedColumns})
        ON CONFLICT DO NOTHING
        RETURNING 1
      ), d AS (
        INSERT INTO dead_letters (message_id, queue, body, error, attempts)
        SELECT message_id, queue, body, error, attempts
        FROM jsonb_to_recordset(${JSON.stringify(deadLetters)}::jsonb) AS x(${deadLetterColumns})
        ON CONFLICT (message_id) DO NOTHING
        RETURNING 1
      )
      SELECT (SELECT count(*) FROM p) AS predictions, (SELECT count(*) FROM r) AS refs,
        (SELECT count(*) FROM j) AS rejected, (SELECT count(*) FROM d) AS dead_letters`);
  const counts = result.rows[0];
  return {
    predictions: Number(counts?.predictions ?? 0),
    refs: Number(counts?.refs ?? 0),
    rejected: Number(counts?.rejected ?? 0),
    deadLetters: Number(counts?.dead_letters ?? 0),
  };
}

/** A message body as JSON: binary bodies as base64 text. */
function jsonBody(body: unknown): unknown {
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) {
    const bytes =
      body instanceof ArrayBuffer
        ? new Uint8Array(body)
        : new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
    let text = "";
    for (const byte of bytes) text += String.fromCharCode(byte);
    return { base64: btoa(text) };
  }
  return body === undefined ? null : body;
}
