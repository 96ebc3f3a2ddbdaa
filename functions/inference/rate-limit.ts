import type { Context } from "hono";
import { ApiError } from "../../shared/errors";
import type { AppEnv } from "../app-env";

/**
 * Requests per API key (or per client address), counted by the platform's rate
 * limiter binding: every request is one call of `limit()`.
 *
 * Awaiting that call before each request puts the binding's round trip on the
 * request path. So for a subject whose last answer here was "allowed" less
 * than a second ago, the call runs alongside the request (counted the same,
 * in waitUntil) and its answer is remembered: once the binding says "limited",
 * this isolate answers 429 without asking again for the next second, then
 * asks (awaited) again. The cost of that is bounded and stated: when a key
 * crosses its limit, the requests this isolate already admitted while that
 * answer was on its way go through (at most the key's concurrency here). The
 * binding itself counts per location and is eventually consistent, so exact
 * counts were never on offer. A subject seen for the first time, or not for a
 * second, is checked before the request as before, and so is every check
 * that guards a database lookup (`strict`).
 */

/** How long an "allowed" answer lets the next requests go ahead of their check. */
const ALLOWED_FRESH_MS = 1000;
/** How long a "limited" answer is reused before the binding is asked again. */
const LIMITED_HOLD_MS = 1000;
/** Subjects remembered per isolate; the oldest are forgotten first. */
const MAX_SUBJECTS = 10_000;

interface Verdict {
  allowedAt: number;
  limitedUntil: number;
}

/** The binding's last answers in this isolate, by subject. */
export class Verdicts {
  readonly #entries = new Map<string, Verdict>();

  constructor(private readonly maxSubjects = MAX_SUBJECTS) {}

  /** What a request for the subject may do now without waiting for the binding. */
  state(subject: string, now: number): "limited" | "allowed" | "unknown" {
    const verdict = this.#entries.get(subject);
    if (!verdict) return "unknown";
    if (verdict.limitedUntil > now) return "limited";
    return now - verdict.allowedAt < ALLOWED_FRESH_MS ? "allowed" : "unknown";
  }

  record(subject: string, success: boolean, now: number): void {
    const verdict = this.#entries.get(subject) ?? { allowedAt: -Infinity, limitedUntil: 0 };
    if (success) {
      verdict.allowedAt = now;
      verdict.limitedUntil = 0;
    } else {
      verdict.allowedAt = -Infinity;
      verdict.limitedUntil = now + LIMITED_HOLD_MS;
    }
    // Re-inserting keeps the map in order of last answer, oldest first.
    this.#entries.delete(subject);
    this.#entries.set(subject, verdict);
    while (this.#entries.size > this.maxSubjects) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
  }

  get size(): number {
    return this.#entries.size;
  }
}

const verdictsByLimiter = new WeakMap<RateLimit, Verdicts>();

function verdictsFor(limiter: RateLimit): Verdicts {
  let verdicts = verdictsByLimiter.get(limiter);
  if (!verdicts) {
    verdicts = new Verdicts();
    verdictsByLimiter.set(limiter, verdicts);
  }
  return verdicts;
}

const rateLimited = (subject: string) =>
  new ApiError(
    "RATE_LIMITED",
    subject.startsWith("key:")
      ? "Too many requests for this API key; slow down"
      : "Too many requests from this client address; slow down",
    { headers: { "retry-after": "60" } },
  );

/**
 * Counts one request for the API key (or, without one, the client address)
 * and throws RATE_LIMITED when over the limit. `strict` awaits the binding
 * every time. Pass only a key that has been checked: a token nobody checked
 * must never choose its own subject.
 */
export async function rateLimit(
  c: Context<AppEnv>,
  keyHash: string | null,
  { strict = false }: { strict?: boolean } = {},
): Promise<void> {
  const subject = keyHash
    ? `key:${keyHash}`
    : `ip:${c.req.header("cf-connecting-ip") ?? "unknown"}`;
  const limiter = c.env.PREDICT_RATE_LIMITER;
  const verdicts = verdictsFor(limiter);
  const state = verdicts.state(subject, Date.now());
  if (state === "limited") throw rateLimited(subject);
  const check = limiter.limit({ key: subject }).then(({ success }) => {
    verdicts.record(subject, success, Date.now());
    return success;
  });
  if (state === "allowed" && !strict) {
    c.executionCtx.waitUntil(check.catch(() => undefined));
    return;
  }
  if (!(await check)) throw rateLimited(subject);
}
