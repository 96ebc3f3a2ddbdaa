import { DurableObject } from "cloudflare:workers";
import { SIGNATURE_HEADER, signWebhook, TIMESTAMP_HEADER } from "../shared/alerts/signing";
import { decryptSecret, parseEncryptionKey } from "../shared/crypto-box";
import {
  checkEgressUrl,
  parseEgressAllowlist,
  readBodyCapped,
  redirectCause,
} from "../shared/egress";
import { type Notice, noticeSlackMessage, noticeWebhookBody } from "../shared/notices/render";

/** One notice for this destination, as the delivery consumer hands it over. */
export interface DeliveryRequest {
  /**
   * Unique per notice: the alert and its transition (`<alertId>:firing`),
   * `test:<deliveryId>`, or another notice's key (`approval.decided:apr_…:2`).
   */
  noticeKey: string;
  destinationId: string;
  kind: "slack" | "webhook";
  urlBox: string;
  secretBox: string | null;
  /** An alert's firing or resolution, a destination's test (`state: "test"`), or an approval's notice. */
  notice: Notice;
}

export type DeliveryOutcome =
  | { kind: "sent"; status: number }
  /** Sent before: a redelivered message posts nothing. */
  | { kind: "duplicate" }
  /** Try again after `delaySeconds` (a 429's Retry-After, a receiver down or failing). */
  | { kind: "retry"; delaySeconds: number; status: number | null; error: string }
  /** The receiver refused it for good (4xx other than 408/429): retrying cannot help. */
  | { kind: "failed"; status: number; error: string };

/** At most one message per second per destination (Slack's incoming-webhook limit). */
export const MIN_INTERVAL_MS = 1000;
/** A receiver gets this long to answer. */
export const SEND_TIMEOUT_MS = 10_000;
/** Longest the object waits in line itself; a longer Retry-After goes back to the queue. */
const MAX_WAIT_MS = 30_000;
/** Retry-After when a 429 gives none. */
const DEFAULT_RETRY_AFTER_SECONDS = 30;
/** Most of a receiver's answer read (only its first characters are kept, for the record). */
const MAX_RECEIVER_BODY_BYTES = 64 * 1024;
/** Notices remembered as sent, for deduplication. */
const SENT_KEPT_DAYS = 30;

/** Seconds from a Retry-After header: delta-seconds or an HTTP date. */
export function retryAfterSeconds(header: string | null, now: number): number {
  if (!header) return DEFAULT_RETRY_AFTER_SECONDS;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Math.min(Number(trimmed), 86_400);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return DEFAULT_RETRY_AFTER_SECONDS;
  return Math.min(86_400, Math.max(0, Math.ceil((date - now) / 1000)));
}

/**
 * One object per alert destination. Calls are serialised in the object (a
 * promise chain), so sends never overlap; sends are spaced at least a second
 * apart and after a 429 no send starts before its Retry-After has passed.
 * What was sent is kept in SQLite storage by notice key, so a redelivered
 * queue message does not post twice. The URL and signing secret are
 * decrypted here, only for the send.
 */
export class AlertDestination extends DurableObject<Env> {
  #sql: SqlStorage;
  #line: Promise<unknown> = Promise.resolve();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    this.#sql.exec(
      "CREATE TABLE IF NOT EXISTS sent (notice_key TEXT PRIMARY KEY, at INTEGER NOT NULL, status INTEGER NOT NULL)",
    );
    this.#sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  }

  /** Sends one notice (in line behind any other send of this destination). */
  deliver(request: DeliveryRequest): Promise<DeliveryOutcome> {
    const turn = this.#line.then(() => this.#deliver(request));
    this.#line = turn.catch(() => undefined);
    return turn;
  }

  /** Whether a notice was sent (tests and diagnostics). */
  wasSent(noticeKey: string): boolean {
    return (
      this.#sql.exec("SELECT 1 FROM sent WHERE notice_key = ?", noticeKey).toArray().length > 0
    );
  }

  #nextAllowedAt(): number {
    const row = this.#sql
      .exec<{ value: string }>("SELECT value FROM meta WHERE key = 'next_allowed_at'")
      .toArray()[0];
    return row ? Number(row.value) : 0;
  }

  #setNextAllowedAt(at: number): void {
    this.#sql.exec(
      "INSERT INTO meta (key, value) VALUES ('next_allowed_at', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      String(at),
    );
  }

  async #deliver(request: DeliveryRequest): Promise<DeliveryOutcome> {
    if (this.wasSent(request.noticeKey)) return { kind: "duplicate" };
    const wait = this.#nextAllowedAt() - Date.now();
    if (wait > MAX_WAIT_MS) {
      return {
        kind: "retry",
        delaySeconds: Math.ceil(wait / 1000),
        status: null,
        error: "waiting for the receiver's Retry-After",
      };
    }
    if (wait > 0) await scheduler.wait(wait);

    const key = await parseEncryptionKey(this.env.ALERT_ENCRYPTION_KEY);
    const url = await decryptSecret(key, request.urlBox, `${request.destinationId}:url`);
    // Checked again at each send: the allowlist may have narrowed since the destination was made.
    const allowed = checkEgressUrl(url, parseEgressAllowlist(this.env.UPSTREAM_ALLOWED_HOSTS));
    if (!allowed.ok) return { kind: "failed", status: 0, error: `URL refused: ${allowed.reason}` };
    let body: string;
    const headers: Record<string, string> = { "content-type": "application/json" };
    const notice = request.notice;
    if (request.kind === "slack") {
      body = JSON.stringify(noticeSlackMessage(notice));
    } else {
      if (!request.secretBox) {
        return { kind: "failed", status: 0, error: "webhook destination without a signing secret" };
      }
      const secret = await decryptSecret(key, request.secretBox, `${request.destinationId}:secret`);
      body = noticeWebhookBody(notice);
      const signed = await signWebhook(secret, body, Math.floor(Date.now() / 1000));
      headers[TIMESTAMP_HEADER] = signed.timestamp;
      headers[SIGNATURE_HEADER] = signed.signature;
    }

    let response: Response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers,
        body,
        // A redirect's target would escape the check above: never followed.
        redirect: "manual",
        signal: AbortSignal.timeout(SEND_TIMEOUT_MS),
      });
    } catch (error) {
      this.#setNextAllowedAt(Date.now() + MIN_INTERVAL_MS);
      return {
        kind: "retry",
        delaySeconds: 0,
        status: null,
        error: `receiver unreachable: ${String(error).slice(0, 200)}`,
      };
    }
    const now = Date.now();
    if (response.status >= 300 && response.status < 400) {
      await response.body?.cancel().catch(() => undefined);
      this.#setNextAllowedAt(now + MIN_INTERVAL_MS);
      // Retrying cannot help: the destination's URL has to change.
      return { kind: "failed", status: response.status, error: redirectCause(response, url) };
    }
    // Read the body so the connection is released (a bounded part of it); keep a little for the record.
    const read = await readBodyCapped(response, MAX_RECEIVER_BODY_BYTES).catch(() => undefined);
    const text = (read?.ok ? read.text : "").slice(0, 200);
    if (response.ok) {
      this.#sql.exec(
        "INSERT INTO sent (notice_key, at, status) VALUES (?, ?, ?) ON CONFLICT (notice_key) DO NOTHING",
        request.noticeKey,
        now,
        response.status,
      );
      this.#sql.exec("DELETE FROM sent WHERE at < ?", now - SENT_KEPT_DAYS * 86_400_000);
      this.#setNextAllowedAt(now + MIN_INTERVAL_MS);
      return { kind: "sent", status: response.status };
    }
    if (response.status === 429) {
      const seconds = retryAfterSeconds(response.headers.get("retry-after"), now);
      this.#setNextAllowedAt(now + Math.max(seconds * 1000, MIN_INTERVAL_MS));
      return {
        kind: "retry",
        delaySeconds: seconds,
        status: 429,
        error: `rate limited: ${text}`,
      };
    }
    this.#setNextAllowedAt(now + MIN_INTERVAL_MS);
    if (response.status >= 500 || response.status === 408) {
      return {
        kind: "retry",
        delaySeconds: 0,
        status: response.status,
        error: `receiver error ${response.status}: ${text}`,
      };
    }
    return {
      kind: "failed",
      status: response.status,
      error: `refused ${response.status}: ${text}`,
    };
  }
}
