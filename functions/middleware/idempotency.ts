import { and, eq, isNull, lte, sql } from "drizzle-orm";
import type { Context, MiddlewareHandler } from "hono";
import { canonicalJson, sha256Hex } from "../../shared/crypto";
import { idempotencyKeys } from "../../shared/db/schema";
import { ApiError } from "../../shared/errors";
import type { AppEnv } from "../app-env";

const keyPattern = /^[!-~]{1,255}$/;

export interface IdempotencyOptions {
  /** How long a stored response answers retries. */
  retentionSeconds?: number;
  /** How long a reservation blocks a concurrent retry before it is taken over. */
  lockSeconds?: number;
  /** Routes that keep no idempotency record. */
  skip?: (c: Context<AppEnv>) => boolean;
}

/**
 * `Idempotency-Key` for mutating POSTs. The key is reserved before the
 * handler runs; the handler stores its response in the same transaction as
 * its change (see `runChange`), so a retry either replays that response or
 * finds no change made. A change that does not run in Postgres has its 2xx
 * stored right after it. Client errors are stored too; server errors release
 * the key so the retry runs again.
 */
export function idempotency({
  retentionSeconds = 24 * 3600,
  lockSeconds = 30,
  skip = () => false,
}: IdempotencyOptions = {}): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    c.set("idempotency", undefined);
    const key = c.req.header("idempotency-key");
    if (key === undefined || c.req.method !== "POST" || skip(c)) return next();
    if (!keyPattern.test(key)) {
      throw new ApiError(
        "VALIDATION_FAILED",
        "Header 'Idempotency-Key' must be 1 to 255 printable ASCII characters",
        {
          details: [
            { path: "Idempotency-Key", message: "must be 1 to 255 printable ASCII characters" },
          ],
        },
      );
    }
    const principal = c.var.principal.id;
    const fingerprint = await fingerprintRequest(c.req.method, c.req.path, await c.req.text());
    const db = c.var.database();
    const now = Date.now();
    const lockedUntil = new Date(now + lockSeconds * 1000);
    const expiredBefore = new Date(now - retentionSeconds * 1000);

    const reserved = await db
      .insert(idempotencyKeys)
      .values({ principal, key, fingerprint, lockedUntil })
      .onConflictDoUpdate({
        // An expired record is forgotten: the key starts afresh.
        target: [idempotencyKeys.principal, idempotencyKeys.key],
        set: {
          fingerprint,
          lockedUntil,
          responseStatus: null,
          responseBody: null,
          createdAt: sql`now()`,
        },
        setWhere: lte(idempotencyKeys.createdAt, expiredBefore),
      })
      .returning({ key: idempotencyKeys.key });

    if (reserved.length === 0) {
      const [existing] = await db
        .select()
        .from(idempotencyKeys)
        .where(and(eq(idempotencyKeys.principal, principal), eq(idempotencyKeys.key, key)));
      if (!existing)
        throw new ApiError(
          "IDEMPOTENCY_KEY_IN_USE",
          "Idempotency-Key is being processed; retry shortly",
        );
      if (existing.fingerprint !== fingerprint) {
        throw new ApiError(
          "IDEMPOTENCY_KEY_REUSED",
          "Idempotency-Key was already used with a different request; use a new key for a new request",
        );
      }
      if (existing.responseStatus !== null) {
        c.header("idempotent-replayed", "true");
        return c.json(existing.responseBody, existing.responseStatus as 200);
      }
      // Reserved but unanswered: in flight, or its worker died. Take over a stale one.
      const taken = await db
        .update(idempotencyKeys)
        .set({ lockedUntil })
        .where(
          and(
            eq(idempotencyKeys.principal, principal),
            eq(idempotencyKeys.key, key),
            isNull(idempotencyKeys.responseStatus),
            lte(idempotencyKeys.lockedUntil, new Date(now)),
          ),
        )
        .returning({ key: idempotencyKeys.key });
      if (taken.length === 0) {
        throw new ApiError(
          "IDEMPOTENCY_KEY_IN_USE",
          "A request with this Idempotency-Key is still in progress",
          {
            headers: { "retry-after": String(lockSeconds) },
          },
        );
      }
    }

    const reservation = { principal, key, stored: false };
    c.set("idempotency", reservation);
    await next();
    if (reservation.stored) return;

    const status = c.res.status;
    const where = and(
      eq(idempotencyKeys.principal, principal),
      eq(idempotencyKeys.key, key),
      isNull(idempotencyKeys.responseStatus),
    );
    // A change made outside Postgres (a rollout revert goes to the model's
    // rollout object) cannot store its response with it: it is stored now,
    // so a retry replays it instead of changing the state again.
    const replayable = (status >= 200 && status < 300) || (status >= 400 && status < 500);
    if (replayable && status !== 401 && status !== 429) {
      const body = await c.res.clone().json();
      await db
        .update(idempotencyKeys)
        .set({ responseStatus: status, responseBody: body })
        .where(where);
    } else {
      await db.delete(idempotencyKeys).where(where);
    }
  };
}

export async function fingerprintRequest(
  method: string,
  path: string,
  body: string,
): Promise<string> {
  let canonical = body;
  try {
    canonical = canonicalJson(JSON.parse(body));
  } catch {
    // Not JSON: the raw text is the fingerprint; validation will reject it anyway.
  }
  return sha256Hex(`${method} ${path}\n${canonical}`);
}
