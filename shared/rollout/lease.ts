/**
 * Leases on a model's rollout state, and the promise they keep: once a change
 * has been acknowledged (2xx), every request that starts afterwards sees it.
 *
 * The object grants a lease of length T from its own storage; the isolate
 * uses it until the moment it *sent* the lease request plus T, minus a margin
 * for clock drift. A change is committed first, and acknowledged only once
 * every lease granted under the old state has run out (on the object's clock,
 * grant time + T, which is never earlier than the isolate's send time + T)
 * plus the margin. An object that restarted has lost its record of grants, so
 * it acknowledges nothing before its start time plus the longest T plus the
 * margin. Clocks are injected, so all of this is tested without waiting.
 */

export const DEFAULT_LEASE_MS = 1_000;
/** Shortest lease a model may set: well above the margin plus a round trip to the object. */
export const MIN_LEASE_MS = 250;
export const MAX_LEASE_MS = 30_000;
/** Allowance for clock drift and scheduling between isolate and object. */
export const LEASE_MARGIN_MS = 50;

/** The object's side: the record of what it has granted. */
export class GrantLedger {
  #latestExpiry: number;
  readonly #restartFence: number;

  /**
   * @param startedAt when this object instance started (its clock)
   * @param longestLeaseMs the longest lease this object may ever have granted
   *   before the restart (persisted, so it survives eviction)
   */
  constructor(
    startedAt: number,
    longestLeaseMs: number,
    readonly marginMs = LEASE_MARGIN_MS,
  ) {
    this.#restartFence = startedAt + longestLeaseMs;
    this.#latestExpiry = 0;
  }

  /** Records a lease granted at `now` for `leaseMs`. */
  grant(now: number, leaseMs: number): void {
    this.#latestExpiry = Math.max(this.#latestExpiry, now + leaseMs);
  }

  /**
   * The earliest time at which a change committed now may be acknowledged:
   * after every earlier lease and the restart fence, plus the margin.
   */
  acknowledgeAt(): number {
    return Math.max(this.#latestExpiry, this.#restartFence) + this.marginMs;
  }
}

export interface LeaseGrant<S> {
  state: S;
  stateVersion: number;
  leaseMs: number;
}

/** The isolate's side: one model's current lease. */
export class HeldLease<S> {
  constructor(
    readonly grant: LeaseGrant<S>,
    /** When the isolate sent the request that returned this grant (its clock). */
    readonly requestedAt: number,
    readonly marginMs = LEASE_MARGIN_MS,
  ) {}

  /** Last instant (exclusive) at which a request may start under this lease. */
  get validUntil(): number {
    return this.requestedAt + this.grant.leaseMs - this.marginMs;
  }

  isValid(now: number): boolean {
    return now < this.validUntil && now >= this.requestedAt - this.marginMs;
  }

  /** Renew ahead of expiry, so a busy isolate never waits: in the last half of the lease. */
  shouldRenew(now: number): boolean {
    return now >= this.requestedAt + (this.grant.leaseMs - this.marginMs) / 2;
  }
}

export type LeaseFetcher<S> = () => Promise<LeaseGrant<S>>;

/**
 * Keeps one model's lease fresh in an isolate: answers from the held lease
 * while it is valid, renews in the background once it is half used, and
 * fetches a lease itself only when none is valid. A request never waits on a
 * fetch started by another request (the runtime ties I/O to its request).
 */
export class LeaseKeeper<S> {
  #held: HeldLease<S> | undefined;
  #renewing = false;

  constructor(
    private readonly fetchGrant: LeaseFetcher<S>,
    private readonly clock: () => number = Date.now,
    private readonly marginMs = LEASE_MARGIN_MS,
  ) {}

  /**
   * The lease a request starting now must use. `background` receives a
   * renewal started ahead of expiry (give it to ctx.waitUntil).
   */
  async current(background?: (renewal: Promise<unknown>) => void): Promise<HeldLease<S>> {
    const now = this.clock();
    const held = this.#held;
    if (held?.isValid(now)) {
      if (held.shouldRenew(now) && !this.#renewing) {
        this.#renewing = true;
        // A failed renewal is harmless (the next request fetches in the
        // foreground), so it must not surface as an unhandled rejection.
        const renewal = this.#fetch()
          .finally(() => {
            this.#renewing = false;
          })
          .catch(() => {});
        background?.(renewal);
      }
      return held;
    }
    const fresh = await this.#fetch();
    if (fresh.isValid(this.clock())) return fresh;
    // The fetch took longer than the lease: one more try, then give up.
    const retry = await this.#fetch();
    if (retry.isValid(this.clock())) return retry;
    throw new Error("lease expired before it arrived");
  }

  /** The lease held now, if any (for tests and diagnostics). */
  get held(): HeldLease<S> | undefined {
    return this.#held;
  }

  async #fetch(): Promise<HeldLease<S>> {
    const requestedAt = this.clock();
    const grant = await this.fetchGrant();
    const lease = new HeldLease(grant, requestedAt, this.marginMs);
    if (!this.#held || lease.requestedAt >= this.#held.requestedAt) this.#held = lease;
    return lease;
  }
}
