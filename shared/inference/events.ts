import { v7 } from "uuid";
import { z } from "zod";
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

/**
 * Packs events into as few messages as fit under the size limit, keeping
 * their order. An event too large on its own has its inputs replaced by a
 * marker so that the result is still logged.
 */
export function packEvents(
  events: PredictionEvent[],
  maxBytes = MAX_MESSAGE_BYTES,
): PredictionLogMessage[] {
  return packSized(events, maxBytes).map((sized) => sized.message);
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

function packSized(events: PredictionEvent[], maxBytes: number): SizedMessage[] {
  const messages: SizedMessage[] = [];
  const overhead = encoder.encode(JSON.stringify({ schema: 1, results: [] })).length;
  let current: PredictionEvent[] = [];
  let size = overhead;
  for (const original of events) {
    let event = original;
    let bytes = encoder.encode(JSON.stringify(event)).length + 1;
    if (bytes + overhead > maxBytes) {
      event = { ...event, inputs: { truncated: true, bytes } };
      bytes = encoder.encode(JSON.stringify(event)).length + 1;
    }
    if (current.length > 0 && size + bytes > maxBytes) {
      messages.push({ message: { schema: 1, results: current }, bytes: size });
      current = [];
      size = overhead;
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

/**
 * What the log consumer accepts: a message is stored whole or, when it does
 * not match, set aside as a dead letter (a poison message must not hold up
 * the rest of its batch).
 */
export const PredictionLogMessageSchema = z.object({
  schema: z.literal(1),
  results: z
    .array(
      z.object({
        role: z.enum(eventRoles),
        predictionId: z.string().min(1).max(128),
        requestId: z.string().max(256),
        model: z.string().min(1).max(128),
        version: z.string().max(128),
        prediction: z.unknown(),
        inputs: z.unknown(),
        attributes: z.record(z.string(), z.string()),
        keyHmac: z.string().max(128).nullable(),
        latencyMs: z.number().finite().min(0),
        status: z.enum(["ok", "error", "timeout", "rejected"]),
        errorCode: z.string().max(128).nullable(),
        stateVersion: z.number().int().min(0),
        timestamp: z.iso.datetime({ offset: true }),
        issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
      }),
    )
    .min(1),
});
