import { v7 } from "uuid";
import { z } from "zod";
import { Timestamp } from "../schemas/common";
import { inspectJson, storable } from "../storable";
import type { FeatureValue } from "./inputs";
import type { CanonicalPrediction } from "./outputs";

/**
 * Where a result came from. `control` is the champion's answer to a request
 * the canary answered, computed after the response like a shadow's and never
 * returned to the client.
 */
export const eventRoles = [
  "served",
  "canary",
  "fallback",
  "shadow",
  "control",
  "rejected",
] as const;

/**
 * A prediction result as it travels on the PREDICTION_LOGS queue. Its
 * identity is (predictionId, role, version); a static fallback has the empty
 * version. The client's bucketing key is never logged, only its HMAC.
 */
export interface PredictionEvent {
  role: (typeof eventRoles)[number];
  predictionId: string;
  requestId: string;
  model: string;
  version: string;
  prediction: CanonicalPrediction | null;
  inputs: Record<string, FeatureValue> | unknown;
  attributes: Record<string, string>;
  keyHmac: string | null;
  latencyMs: number;
  status: "ok" | "error" | "timeout" | "rejected";
  errorCode: string | null;
  stateVersion: number;
  timestamp: string;
  /** Rejected requests: what failed the input schema. */
  issues?: { path: string; message: string }[];
}

/** What differs from one result of a request to the next; the rest is the request's. */
export type ResultFields = Pick<
  PredictionEvent,
  | "role"
  | "predictionId"
  | "version"
  | "prediction"
  | "inputs"
  | "latencyMs"
  | "status"
  | "errorCode"
  | "issues"
>;

/**
 * A new prediction id: a UUIDv7 (RFC 9562) whose timestamp is `now`, the
 * admission time that is also the prediction's created_at, so the id alone
 * gives its window and partition. With a given time, 73 of the 74 bits after
 * the timestamp are drawn at random for each id, so ids of the same
 * millisecond, from one isolate or many, differ but for a chance of about
 * n²/2^74 among n of them.
 */
export function newPredictionId(now: number): string {
  return v7({ msecs: now });
}

export interface PredictionLogMessage {
  schema: 1;
  results: PredictionEvent[];
}

/** Queue messages are limited to 128 KB; stay well under it. */
export const MAX_MESSAGE_BYTES = 120 * 1024;

const encoder = new TextEncoder();

/** One sendBatch call carries at most 100 messages and 256 KB in all; stay under it. */
export const MAX_SEND_BATCH_MESSAGES = 100;
export const MAX_SEND_BATCH_BYTES = 240 * 1024;

interface SizedMessage {
  message: PredictionLogMessage;
  bytes: number;
}

/** An event with its serialized size, measured once. */
export interface SizedEvent {
  event: PredictionEvent;
  bytes: number;
}

const MESSAGE_OVERHEAD = encoder.encode(JSON.stringify({ schema: 1, results: [] })).length;

function serializedBytes(event: PredictionEvent): number {
  return encoder.encode(JSON.stringify(event)).length + 1;
}

/**
 * An event as it will travel, and its size; never throws. An event too large
 * for one message has its inputs, then its prediction, replaced by a marker,
 * so that the result is still logged; one that cannot be serialized at all
 * (which the body bounds should make impossible) is marked the same way. Only
 * an event that no marker makes serializable is dropped, with its cause.
 */
export function sizeEvent(
  event: PredictionEvent,
  maxMessageBytes = MAX_MESSAGE_BYTES,
): SizedEvent | { dropped: string } {
  const room = maxMessageBytes - MESSAGE_OVERHEAD;
  let current = event;
  let bytes: number;
  try {
    bytes = serializedBytes(current);
  } catch (error) {
    current = { ...current, inputs: { unserializable: true, error: String(error) } };
    try {
      bytes = serializedBytes(current);
    } catch (again) {
      return { dropped: `not serializable: ${String(again)}` };
    }
  }
  if (bytes > room) {
    current = { ...current, inputs: { truncated: true, bytes } };
    bytes = serializedBytes(current);
  }
  if (bytes > room) {
    current = { ...current, prediction: { truncated: true, bytes } as never };
    bytes = serializedBytes(current);
  }
  if (bytes > room)
    return {
      dropped: `${bytes} bytes, larger than one message even without its inputs and prediction`,
    };
  return { event: current, bytes };
}

/**
 * Packs events into as few messages as fit under the size limit, keeping
 * their order. An event too large on its own has its inputs replaced by a
 * marker so that the result is still logged (see sizeEvent).
 */
export function packEvents(
  events: PredictionEvent[],
  maxBytes = MAX_MESSAGE_BYTES,
): PredictionLogMessage[] {
  return packSized(sizeAll(events, maxBytes), maxBytes).map((sized) => sized.message);
}

/**
 * Packs events into messages (as packEvents) and the messages into groups
 * that one sendBatch call accepts: at most 100 messages and 240 KB.
 */
export function packSendBatches(
  events: PredictionEvent[],
  maxMessageBytes = MAX_MESSAGE_BYTES,
  maxBatchBytes = MAX_SEND_BATCH_BYTES,
): PredictionLogMessage[][] {
  return packSizedSendBatches(sizeAll(events, maxMessageBytes), maxMessageBytes, maxBatchBytes);
}

/** packSendBatches for events already sized (sizeEvent). */
export function packSizedSendBatches(
  events: SizedEvent[],
  maxMessageBytes = MAX_MESSAGE_BYTES,
  maxBatchBytes = MAX_SEND_BATCH_BYTES,
): PredictionLogMessage[][] {
  const batches: PredictionLogMessage[][] = [];
  let current: PredictionLogMessage[] = [];
  let size = 0;
  for (const { message, bytes } of packSized(events, maxMessageBytes)) {
    if (
      current.length > 0 &&
      (size + bytes > maxBatchBytes || current.length >= MAX_SEND_BATCH_MESSAGES)
    ) {
      batches.push(current);
      current = [];
      size = 0;
    }
    current.push(message);
    size += bytes;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

function sizeAll(events: PredictionEvent[], maxBytes: number): SizedEvent[] {
  const sized: SizedEvent[] = [];
  for (const event of events) {
    const fitted = sizeEvent(event, maxBytes);
    if ("event" in fitted) sized.push(fitted);
  }
  return sized;
}

function packSized(events: SizedEvent[], maxBytes: number): SizedMessage[] {
  const messages: SizedMessage[] = [];
  let current: PredictionEvent[] = [];
  let size = MESSAGE_OVERHEAD;
  for (const { event, bytes } of events) {
    if (current.length > 0 && size + bytes > maxBytes) {
      messages.push({ message: { schema: 1, results: current }, bytes: size });
      current = [];
      size = MESSAGE_OVERHEAD;
    }
    current.push(event);
    size += bytes;
  }
  if (current.length > 0) messages.push({ message: { schema: 1, results: current }, bytes: size });
  return messages;
}

/** Imported HMAC keys by secret: importing once per isolate keeps it off each request. */
const hmacKeys = new Map<string, Promise<CryptoKey>>();

/** HMAC-SHA-256 of a bucketing key, hex: joins a customer's results without storing the key. */
export async function keyHmac(secret: string, key: string): Promise<string> {
  let cryptoKey = hmacKeys.get(secret);
  if (!cryptoKey) {
    cryptoKey = crypto.subtle.importKey(
      "raw",
      encoder.encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    hmacKeys.set(secret, cryptoKey);
  }
  const signature = new Uint8Array(
    await crypto.subtle.sign("HMAC", await cryptoKey, encoder.encode(key)),
  );
  let hex = "";
  for (const byte of signature) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

/** Deepest nesting the consumer stores in a result's inputs or prediction, as the body bound. */
const STORED_JSON_DEPTH = 32;

/** Any JSON within the depth bound whose strings all follow the string rule. */
const StorableJson = z.unknown().superRefine((value, ctx) => {
  const problem = inspectJson(value, { maxDepth: STORED_JSON_DEPTH });
  if (problem?.kind === "too_deep") {
    ctx.addIssue({
      code: "custom",
      message: `nests more than ${STORED_JSON_DEPTH} levels deep`,
      path: problem.path.slice(0, 6),
    });
  } else if (problem) {
    ctx.addIssue({ code: "custom", message: problem.message, path: problem.path });
  }
});

const text = (max: number) => storable(z.string().max(max));

/**
 * One result as the log consumer accepts it: a result that does not match
 * (malformed, or holding what Postgres cannot store) is set aside as a dead
 * letter of its own, and the rest of its message is stored.
 */
export const PredictionResultSchema = z.object({
  role: z.enum(eventRoles),
  predictionId: storable(z.string().min(1).max(128)),
  requestId: text(256),
  model: storable(z.string().min(1).max(128)),
  version: text(128),
  prediction: StorableJson,
  inputs: StorableJson,
  attributes: z.record(text(128), text(1024)),
  keyHmac: text(128).nullable(),
  latencyMs: z.number().finite().min(0),
  status: z.enum(["ok", "error", "timeout", "rejected"]),
  errorCode: text(128).nullable(),
  stateVersion: z.number().int().min(0),
  timestamp: Timestamp,
  issues: z.array(z.object({ path: text(1024), message: text(1024) })).optional(),
});

/** A message's envelope: its results are checked one by one (PredictionResultSchema). */
export const PredictionLogEnvelopeSchema = z.object({
  schema: z.literal(1),
  results: z.array(z.unknown()).min(1),
});

/** A whole message whose every result is well-formed: what a replay puts back on the queue. */
export const PredictionLogMessageSchema = z.object({
  schema: z.literal(1),
  results: z.array(PredictionResultSchema).min(1),
});
