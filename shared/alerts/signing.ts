import { toHex } from "../crypto";
import type { AlertNotice } from "./types";

/**
 * Signed generic webhooks. The receiver recomputes
 * `v1=` + hex(HMAC-SHA256(secret, `${timestamp}.${body}`)) from the raw body
 * and the timestamp header, and rejects timestamps outside its tolerance so
 * that a captured delivery cannot be replayed later.
 */

export const SIGNATURE_HEADER = "x-airlock-signature";
export const TIMESTAMP_HEADER = "x-airlock-timestamp";
export const SIGNATURE_VERSION = "v1";
export const DEFAULT_TOLERANCE_SECONDS = 300;

const encoder = new TextEncoder();

export type WebhookVerification =
  | { ok: true }
  | { ok: false; reason: "missing" | "stale" | "mismatch" };

/**
 * The JSON body of a delivery. It depends on the notice only, so a redelivery
 * sends the same bytes and only the timestamp (and so the signature) differs.
 * The fields are listed one by one so that nothing else that happens to be on
 * the object reaches a receiver, in a fixed order.
 */
export function webhookBody(notice: AlertNotice): string {
  const alert: Required<AlertNotice> = {
    alertId: notice.alertId,
    state: notice.state,
    severity: notice.severity,
    rule: notice.rule,
    model: notice.model,
    version: notice.version,
    role: notice.role,
    metric: notice.metric,
    dimension: notice.dimension,
    value: notice.value,
    threshold: notice.threshold,
    comparison: notice.comparison,
    statistics: notice.statistics,
    windowSeconds: notice.windowSeconds,
    windowStart: notice.windowStart,
    firstSeenAt: notice.firstSeenAt,
    lastSeenAt: notice.lastSeenAt,
    resolvedAt: notice.resolvedAt,
    count: notice.count,
    summary: notice.summary,
    link: notice.link,
  };
  return JSON.stringify({ type: `alert.${notice.state}`, alert });
}

export async function signWebhook(
  secret: string,
  body: string,
  timestampSeconds: number,
): Promise<{ timestamp: string; signature: string }> {
  if (!Number.isFinite(timestampSeconds)) throw new Error("the timestamp must be a finite number");
  const timestamp = String(Math.floor(timestampSeconds));
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret), signedBytes(timestamp, body));
  return { timestamp, signature: `${SIGNATURE_VERSION}=${toHex(new Uint8Array(mac))}` };
}

/**
 * Checks a delivery's signature, then its age (in both directions, for clock
 * skew). The signature is checked with `crypto.subtle.verify`, which compares
 * the MACs in constant time in workerd and in Node alike, so no hand-written
 * comparison is needed; the only early exit is on the shape of the header
 * (`v1=` and 64 hex digits), which every genuine signature has and which says
 * nothing about the secret. "stale" is reported only for a genuine signature.
 */
export async function verifyWebhook(
  secret: string,
  body: string,
  headers: { timestamp: string | null | undefined; signature: string | null | undefined },
  nowSeconds: number,
  toleranceSeconds = DEFAULT_TOLERANCE_SECONDS,
): Promise<WebhookVerification> {
  const timestamp = headers.timestamp?.trim();
  const signature = headers.signature?.trim();
  if (!timestamp || !signature) return { ok: false, reason: "missing" };
  const mac = parseSignature(signature);
  if (!mac) return { ok: false, reason: "mismatch" };
  const genuine = await crypto.subtle.verify(
    "HMAC",
    await hmacKey(secret),
    mac,
    signedBytes(timestamp, body),
  );
  if (!genuine) return { ok: false, reason: "mismatch" };
  const sentAt = /^\d{1,15}$/.test(timestamp) ? Number(timestamp) : Number.NaN;
  if (!(Math.abs(nowSeconds - sentAt) <= toleranceSeconds)) return { ok: false, reason: "stale" };
  return { ok: true };
}

function hmacKey(secret: string): Promise<CryptoKey> {
  if (!secret) throw new Error("the webhook signing secret is empty");
  return crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

function signedBytes(timestamp: string, body: string): Uint8Array {
  return encoder.encode(`${timestamp}.${body}`);
}

function parseSignature(header: string): Uint8Array | null {
  const match = /^v1=([0-9a-f]{64})$/i.exec(header);
  if (!match?.[1]) return null;
  const hex = match[1];
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 32; i++) bytes[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}
