/**
 * Queue consumers of the prediction-log pipeline (dispatched by ./index.ts).
 *
 * `airlock-prediction-logs`: each batch (up to 100 messages, each carrying
 * one or more results, often of several clients) is written in few
 * statements: every table's rows as one jsonb parameter, inserted ON
 * CONFLICT DO NOTHING, so a redelivered batch changes nothing. Nothing in
 * one message or result can cost the others: a malformed message, a
 * malformed result (one holding a string Postgres cannot store, say), or a
 * result Postgres refuses is set aside as a dead letter on its own and the
 * rest is stored and acked. When Postgres itself fails, every message is
 * retried with exponential backoff; after `max_retries` the platform moves
 * them to the dead-letter queue.
 *
 * `airlock-prediction-logs-dlq`: stores each message whole in `dead_letters`,
 * retrying with backoff (up to 6 hours apart, 100 times) for as long as the
 * queue keeps messages, so a long database outage loses nothing. A body
 * jsonb cannot hold is kept as escaped text, so this never fails on
 * content. Every unreplayed dead letter raises Airlock's own `dead_letters`
 * alert. An operator replays them with `POST /admin/dead-letters/replay`,
 * or discards what can never be stored.
 */
import { sql } from "drizzle-orm";
import { exponentialBackoffSeconds } from "../../shared/backoff";
import { type Database, isContentError, openDatabase } from "../../shared/db/client";
import { describeError, formatPath } from "../../shared/errors";
import {
  PredictionLogEnvelopeSchema,
  type PredictionLogMessage,
  PredictionResultSchema,
} from "../../shared/inference/events";
import { toRows } from "../../shared/logs/rows";
import { deadLetterBody, erasedRow, scrubBody } from "../../shared/privacy/erasure";
import { inspectJson, replaceUnstorable, storableJsonText } from "../../shared/storable";
import { erasedAmong, refsIn } from "../jobs/erasure";

export const PREDICTION_LOGS_QUEUE = "airlock-prediction-logs";
export const PREDICTION_LOGS_DLQ = "airlock-prediction-logs-dlq";

interface DeadLetterRow {
  message_id: string;
  queue: string;
  /** Null when the body is kept as text instead. */
  body: unknown;
  body_text: string | null;
  error: string;
  attempts: number;
}

export interface StoredCounts {
  predictions: number;
  refs: number;
  rejected: number;
  deadLetters: number;
  /** Results not stored because their subject was erased (a retry, a replay). */
  erased: number;
}

/** A result that matched its schema, with the message it came in. */
type Result = PredictionLogMessage["results"][number];

/**
 * Stores a batch. Each message's envelope, then each of its results, is
 * checked on its own: a malformed message, or the malformed results of a
 * message, become dead letters, and the rest is stored. A statement that
 * Postgres refuses for its content is split until the result it refuses is
 * found and set aside; only a failure of the database itself (connection,
 * any other error) retries the batch.
 */
export async function consumePredictionLogs(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const valid: Result[] = [];
  const poison: DeadLetterRow[] = [];
  for (const message of batch.messages) {
    const envelope = PredictionLogEnvelopeSchema.safeParse(message.body);
    if (!envelope.success) {
      poison.push(
        deadLetter(
          message.id,
          batch.queue,
          jsonBody(message.body),
          `malformed message: ${issueText(envelope.error.issues)}`,
          message.attempts,
        ),
      );
      continue;
    }
    const bad: unknown[] = [];
    let firstProblem = "";
    envelope.data.results.forEach((candidate, index) => {
      const parsed = PredictionResultSchema.safeParse(candidate);
      if (parsed.success) valid.push(parsed.data as Result);
      else {
        bad.push(candidate);
        if (!firstProblem) firstProblem = `results[${index}].${issueText(parsed.error.issues)}`;
      }
    });
    if (bad.length === envelope.data.results.length) {
      poison.push(
        deadLetter(
          message.id,
          batch.queue,
          jsonBody(message.body),
          `malformed message: ${firstProblem}`,
          message.attempts,
        ),
      );
    } else if (bad.length > 0) {
      // Only the malformed results: the rest of the message is stored.
      poison.push(
        deadLetter(
          `${message.id}#malformed`,
          batch.queue,
          { schema: 1, results: bad },
          `${bad.length} of ${envelope.data.results.length} results malformed, the rest stored: ${firstProblem}`,
          message.attempts,
        ),
      );
    }
  }
  try {
    const counts = await storeLogs(env, valid, poison, batch.queue);
    batch.ackAll();
    console.log(
      JSON.stringify({
        level: counts.deadLetters > 0 || poison.length > 0 ? "warn" : "info",
        event: "prediction_logs.stored",
        messages: batch.messages.length,
        ...counts,
        poison: poison.length,
      }),
    );
  } catch (error) {
    for (const message of batch.messages) {
      message.retry({ delaySeconds: exponentialBackoffSeconds(message.attempts, 2, 300) });
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

/** Every message whole in `dead_letters`; its content can never make this fail. */
export async function consumeDeadLetters(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const rows = batch.messages.map((message) =>
    deadLetter(
      message.id,
      PREDICTION_LOGS_QUEUE,
      jsonBody(message.body),
      `not stored after ${message.attempts} deliveries to ${PREDICTION_LOGS_QUEUE}`,
      message.attempts,
    ),
  );
  try {
    await storeLogs(env, [], rows);
    batch.ackAll();
    console.error(
      JSON.stringify({ level: "error", event: "dead_letters.stored", messages: rows.length }),
    );
  } catch (error) {
    for (const message of batch.messages) {
      message.retry({ delaySeconds: exponentialBackoffSeconds(message.attempts, 60, 6 * 60 * 60) });
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

/**
 * Messages the queue refused (functions/inference/log-batcher.ts), stored
 * straight into `dead_letters` so they are counted, alerted on and
 * replayable. Each is named by its first result, which is in no other message.
 */
export async function storeUnsentMessages(
  env: Env,
  messages: PredictionLogMessage[],
  cause: string,
): Promise<void> {
  const rows = messages.map((message) => {
    const first = message.results[0];
    const id = first ? `${first.predictionId}:${first.role}:${first.version}` : crypto.randomUUID();
    return deadLetter(`unsent:${id}`, PREDICTION_LOGS_QUEUE, message, cause, 0);
  });
  await storeLogs(env, [], rows);
}

/** The first zod issue as `path: message`. */
function issueText(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string {
  const issue = issues[0];
  if (!issue) return "invalid";
  return `${formatPath(issue.path) || "body"}: ${issue.message}`;
}

/**
 * A dead-letter row that always fits: the body as jsonb when jsonb can hold
 * it, otherwise as its escaped JSON text; the error made storable too.
 */
function deadLetter(
  messageId: string,
  queue: string,
  body: unknown,
  error: string,
  attempts: number,
): DeadLetterRow {
  const fitsJsonb = inspectJson(body, { maxDepth: DEAD_LETTER_JSONB_DEPTH }) === null;
  return {
    message_id: replaceUnstorable(messageId).slice(0, 512),
    queue,
    body: fitsJsonb ? body : null,
    body_text: fitsJsonb ? null : storableJsonText(body),
    error: replaceUnstorable(error).slice(0, 2000),
    attempts,
  };
}

/** Deeper bodies are kept as text: jsonb itself nests deeply, but the API that reads them back should not. */
const DEAD_LETTER_JSONB_DEPTH = 64;

const predictionColumns =
  sql.raw(`prediction_id text, role text, version text, created_at timestamptz,
  request_id text, model text, inputs jsonb, prediction jsonb, attributes jsonb, key_hmac text,
  latency_ms double precision, status text, error_code text, state_version bigint`);
const rejectedColumns = sql.raw(`prediction_id text, created_at timestamptz, request_id text,
  model text, inputs jsonb, issues jsonb, attributes jsonb, key_hmac text, state_version bigint`);
const deadLetterColumns = sql.raw(
  "message_id text, queue text, body jsonb, body_text text, error text, attempts integer",
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
 * within the server's work_mem. Dead letters go first, in a statement of
 * their own. A statement refused for its content is halved until the
 * refused result is alone; that result becomes a dead letter (`queue` names
 * where it came from). Returns how many rows were new.
 */
export async function storeLogs(
  env: Env,
  results: PredictionLogMessage["results"],
  deadLetters: DeadLetterRow[],
  queue: string = PREDICTION_LOGS_QUEUE,
): Promise<StoredCounts> {
  const total = noCounts();
  if (results.length + deadLetters.length === 0) return total;
  const handle = openDatabase(env);
  try {
    if (deadLetters.length > 0) {
      const kept = await withoutErased(handle.db, deadLetters, total);
      if (kept.length > 0) addCounts(total, await storeDeadLetters(handle.db, kept));
    }
    for (let start = 0; start < results.length; start += RESULTS_PER_STATEMENT) {
      const chunk = results.slice(start, start + RESULTS_PER_STATEMENT);
      addCounts(total, await storeIsolating(handle.db, chunk, queue));
    }
    return total;
  } finally {
    await handle.close();
  }
}

const noCounts = (): StoredCounts => ({
  predictions: 0,
  refs: 0,
  rejected: 0,
  deadLetters: 0,
  erased: 0,
});

function addCounts(total: StoredCounts, counts: StoredCounts): void {
  total.predictions += counts.predictions;
  total.refs += counts.refs;
  total.rejected += counts.rejected;
  total.deadLetters += counts.deadLetters;
  total.erased += counts.erased;
}

async function storeIsolating(
  db: Database,
  results: PredictionLogMessage["results"],
  queue: string,
): Promise<StoredCounts> {
  try {
    return await storeChunk(db, results, []);
  } catch (error) {
    if (!isContentError(error)) throw error;
    const [only] = results;
    if (results.length === 1 && only) {
      const row = deadLetter(
        `result:${only.predictionId}:${only.role}:${only.version}`,
        queue,
        { schema: 1, results: [only] },
        `result refused by Postgres, the rest of its batch stored: ${describeError(error)}`,
        1,
      );
      console.error(
        JSON.stringify({
          level: "error",
          event: "prediction_logs.result_refused",
          predictionId: only.predictionId,
          error: describeError(error),
        }),
      );
      return storeDeadLetters(db, [row]);
    }
    const half = Math.ceil(results.length / 2);
    const total = await storeIsolating(db, results.slice(0, half), queue);
    addCounts(total, await storeIsolating(db, results.slice(half), queue));
    return total;
  }
}

/**
 * Dead letters in one statement. Should Postgres still refuse one for its
 * content, every body goes in again as escaped text, which always fits.
 */
async function storeDeadLetters(db: Database, rows: DeadLetterRow[]): Promise<StoredCounts> {
  try {
    return await storeChunk(db, [], rows);
  } catch (error) {
    if (!isContentError(error)) throw error;
    const asText = rows.map((row) => ({
      ...row,
      body: null,
      body_text: row.body_text ?? storableJsonText(row.body),
    }));
    return storeChunk(db, [], asText);
  }
}

async function storeChunk(
  db: Database,
  results: PredictionLogMessage["results"],
  deadLetters: DeadLetterRow[],
): Promise<StoredCounts> {
  const rows = toRows(results);
  if (rows.predictions.length + rows.rejected.length + deadLetters.length === 0) return noCounts();
  // Results of an erased subject (a retry or replay of what was erased) are not stored.
  const result = await db.execute<{
    predictions: string;
    refs: string;
    rejected: string;
    dead_letters: string;
    erased: string;
  }>(sql`
      WITH a AS MATERIALIZED (
        SELECT x.*, ${erasedRow("x")} AS erased
        FROM jsonb_to_recordset(${JSON.stringify(rows.predictions)}::jsonb) AS x(${predictionColumns})
      ), x AS MATERIALIZED (
        SELECT * FROM a WHERE NOT erased
      ), jx AS MATERIALIZED (
        SELECT x.*, ${erasedRow("x")} AS erased
        FROM jsonb_to_recordset(${JSON.stringify(rows.rejected)}::jsonb) AS x(${rejectedColumns})
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
          attributes, key_hmac, state_version)
        SELECT prediction_id, role, version, created_at, model, prediction, attributes, key_hmac,
          state_version
        FROM x
        ON CONFLICT DO NOTHING
        RETURNING 1
      ), j AS (
        INSERT INTO rejected_requests (prediction_id, created_at, request_id, model, inputs, issues,
          attributes, key_hmac, state_version)
        SELECT prediction_id, created_at, request_id, model, inputs, issues, attributes, key_hmac,
          state_version
        FROM jx WHERE NOT erased
        ON CONFLICT DO NOTHING
        RETURNING 1
      ), d AS (
        INSERT INTO dead_letters (message_id, queue, body, body_text, error, attempts)
        SELECT message_id, queue, body, body_text, error, attempts
        FROM jsonb_to_recordset(${JSON.stringify(deadLetters)}::jsonb) AS x(${deadLetterColumns})
        ON CONFLICT (message_id) DO NOTHING
        RETURNING 1
      )
      SELECT (SELECT count(*) FROM p) AS predictions, (SELECT count(*) FROM r) AS refs,
        (SELECT count(*) FROM j) AS rejected, (SELECT count(*) FROM d) AS dead_letters,
        (SELECT count(*) FROM a WHERE erased) + (SELECT count(*) FROM jx WHERE erased) AS erased`);
  const counts = result.rows[0];
  return {
    predictions: Number(counts?.predictions ?? 0),
    refs: Number(counts?.refs ?? 0),
    rejected: Number(counts?.rejected ?? 0),
    deadLetters: Number(counts?.dead_letters ?? 0),
    erased: Number(counts?.erased ?? 0),
  };
}

/**
 * Dead letters without the results of an erased subject: a dead letter is
 * stored without them, or not at all when nothing else is left (its body
 * text, when it cannot be read as a message, is kept as it is).
 */
async function withoutErased(
  db: Database,
  rows: DeadLetterRow[],
  total: StoredCounts,
): Promise<DeadLetterRow[]> {
  const bodies = rows.map((row) => deadLetterBody(row).value);
  const erased = await erasedAmong(db, bodies.flatMap(refsIn));
  if (erased.size === 0) return rows;
  const kept: DeadLetterRow[] = [];
  rows.forEach((row, i) => {
    const body = bodies[i];
    const outcome = scrubBody(body, (ref) => erased.has(ref.predictionId));
    if (outcome.kind === "keep") kept.push(row);
    else if (outcome.kind === "edit") {
      total.erased += outcome.removed;
      kept.push(
        row.body_text === null
          ? { ...row, body: outcome.body }
          : { ...row, body_text: storableJsonText(outcome.body) },
      );
    } else total.erased += refsIn(body).length;
  });
  return kept;
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
