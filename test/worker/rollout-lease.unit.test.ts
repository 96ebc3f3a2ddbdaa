import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  DEFAULT_LEASE_MS,
  GrantLedger,
  HeldLease,
  LEASE_MARGIN_MS,
  type LeaseFetcher,
  type LeaseGrant,
  LeaseKeeper,
  MAX_LEASE_MS,
  MIN_LEASE_MS,
} from "../../shared/rollout/lease";
import { mulberry32 } from "./random";

// ---- helpers ----------------------------------------------------------------

function grantOf(leaseMs = 1_000, stateVersion = 1): LeaseGrant<string> {
  return { state: `state-${stateVersion}`, stateVersion, leaseMs };
}

interface PendingFetch {
  /** Clock reading when the keeper asked for this lease. */
  sentAt: number;
  resolve(grant: LeaseGrant<string>): void;
  reject(error: unknown): void;
}

/** A lease fetcher whose answers the test hands out one by one. */
class FakeFetcher {
  readonly pending: PendingFetch[] = [];
  calls = 0;

  constructor(private readonly clock: () => number) {}

  readonly fetch: LeaseFetcher<string> = () => {
    this.calls++;
    return new Promise<LeaseGrant<string>>((resolve, reject) => {
      this.pending.push({ sentAt: this.clock(), resolve, reject });
    });
  };

  /** The oldest fetch not yet answered. */
  next(): PendingFetch {
    const fetch = this.pending.shift();
    if (!fetch) throw new Error("no lease fetch is pending");
    return fetch;
  }
}

/** Lets every continuation that is ready run (promise chains only, no timers). */
async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await Promise.resolve();
}

interface Tracked<T> {
  settled: boolean;
  value: T | undefined;
  error: unknown;
}

function track<T>(promise: Promise<T>): Tracked<T> {
  const t: Tracked<T> = { settled: false, value: undefined, error: undefined };
  promise.then(
    (value) => {
      t.settled = true;
      t.value = value;
    },
    (error: unknown) => {
      t.settled = true;
      t.error = error;
    },
  );
  return t;
}

// ---- constants ----------------------------------------------------------------

describe("lease constants", () => {
  it("default to a one second lease, a 50 ms margin and a 30 s ceiling", () => {
    expect(DEFAULT_LEASE_MS).toBe(1_000);
    expect(LEASE_MARGIN_MS).toBe(50);
    expect(MAX_LEASE_MS).toBe(30_000);
    expect(DEFAULT_LEASE_MS).toBeGreaterThanOrEqual(MIN_LEASE_MS);
    expect(DEFAULT_LEASE_MS).toBeLessThanOrEqual(MAX_LEASE_MS);
  });

  it("leave the shortest allowed lease a usable window after the drift margin", () => {
    // A lease of MIN_LEASE_MS is valid until requestedAt + MIN - margin: with
    // MIN equal to the margin it is never valid, and every request fails closed.
    expect(MIN_LEASE_MS).toBeGreaterThan(LEASE_MARGIN_MS);
    expect(new HeldLease(grantOf(MIN_LEASE_MS), 10_000).isValid(10_000)).toBe(true);
  });
});

// ---- the object's side ------------------------------------------------------------

describe("GrantLedger", () => {
  it("acknowledges nothing before start + longest lease + margin, even with no grants", () => {
    expect(new GrantLedger(10_000, 1_000).acknowledgeAt()).toBe(11_050);
    expect(new GrantLedger(10_000, 30_000).acknowledgeAt()).toBe(40_050);
    expect(new GrantLedger(10_000, 1_000, 0).acknowledgeAt()).toBe(11_000);
    expect(new GrantLedger(10_000, 1_000, 7).acknowledgeAt()).toBe(11_007);
    expect(new GrantLedger(10_000, 1_000).marginMs).toBe(LEASE_MARGIN_MS);
  });

  it("keeps the restart fence when every grant expires before it", () => {
    const ledger = new GrantLedger(10_000, 1_000);
    ledger.grant(10_000, 500);
    ledger.grant(10_400, 600); // expires exactly at the fence
    expect(ledger.acknowledgeAt()).toBe(11_050);
  });

  it("waits for a grant that outlives the fence: grant time + T + margin", () => {
    const ledger = new GrantLedger(10_000, 1_000);
    ledger.grant(10_600, 1_000);
    expect(ledger.acknowledgeAt()).toBe(11_650);
    ledger.grant(10_601, 1_000);
    expect(ledger.acknowledgeAt()).toBe(11_651);
  });

  it("keeps the latest expiry whatever the order and length of grants", () => {
    const ledger = new GrantLedger(0, 100);
    ledger.grant(12_000, 1_000); // 13_000
    ledger.grant(12_500, 100); // 12_600: later grant, earlier expiry
    expect(ledger.acknowledgeAt()).toBe(13_050);
    ledger.grant(11_000, 5_000); // 16_000: earlier grant, later expiry
    expect(ledger.acknowledgeAt()).toBe(16_050);
    ledger.grant(5_000, 1_000); // long gone
    expect(ledger.acknowledgeAt()).toBe(16_050);
  });

  it("answers the same when asked twice (asking does not move it)", () => {
    const ledger = new GrantLedger(0, 1_000);
    ledger.grant(2_000, 1_000);
    expect(ledger.acknowledgeAt()).toBe(3_050);
    expect(ledger.acknowledgeAt()).toBe(3_050);
  });

  it("is never earlier than any grant + T + margin, nor the fence + margin (random grants)", () => {
    const random = mulberry32(7);
    for (let round = 0; round < 50; round++) {
      const startedAt = Math.floor(random() * 100_000);
      const longest = MIN_LEASE_MS + Math.floor(random() * (MAX_LEASE_MS - MIN_LEASE_MS));
      const margin = Math.floor(random() * 200);
      const ledger = new GrantLedger(startedAt, longest, margin);
      let expected = startedAt + longest;
      for (let i = 0; i < 40; i++) {
        const at = startedAt + Math.floor(random() * 60_000);
        const leaseMs = MIN_LEASE_MS + Math.floor(random() * 5_000);
        ledger.grant(at, leaseMs);
        expected = Math.max(expected, at + leaseMs);
        expect(ledger.acknowledgeAt()).toBeGreaterThanOrEqual(at + leaseMs + margin);
        expect(ledger.acknowledgeAt()).toBe(expected + margin);
      }
    }
  });
});

// ---- the isolate's side: one lease -------------------------------------------------

describe("HeldLease", () => {
  it("is valid until requestedAt + T - margin, counted from the send, not the arrival", () => {
    expect(new HeldLease(grantOf(1_000), 5_000).validUntil).toBe(5_950);
    expect(new HeldLease(grantOf(1_000), 5_000, 0).validUntil).toBe(6_000);
    expect(new HeldLease(grantOf(200), 5_000, 10).validUntil).toBe(5_190);
    expect(new HeldLease(grantOf(1_000), 5_000).marginMs).toBe(LEASE_MARGIN_MS);
  });

  it("is invalid from exactly validUntil on", () => {
    const lease = new HeldLease(grantOf(1_000), 5_000);
    expect(lease.isValid(5_000)).toBe(true);
    expect(lease.isValid(5_949)).toBe(true);
    expect(lease.isValid(5_949.999)).toBe(true);
    expect(lease.isValid(5_950)).toBe(false);
    expect(lease.isValid(5_951)).toBe(false);
    expect(lease.isValid(1e12)).toBe(false);
  });

  it("tolerates a clock that steps back by the margin, and no more", () => {
    const lease = new HeldLease(grantOf(1_000), 5_000);
    expect(lease.isValid(4_950)).toBe(true);
    expect(lease.isValid(4_949)).toBe(false);
    expect(lease.isValid(0)).toBe(false);
  });

  it("asks for renewal from the middle of its usable window", () => {
    // Usable window [5000, 5950): renew from 5000 + 950 / 2 = 5475.
    const lease = new HeldLease(grantOf(1_000), 5_000);
    expect(lease.shouldRenew(5_000)).toBe(false);
    expect(lease.shouldRenew(5_474)).toBe(false);
    expect(lease.shouldRenew(5_475)).toBe(true);
    expect(lease.shouldRenew(5_949)).toBe(true);
    const long = new HeldLease(grantOf(30_000), 0, 0);
    expect(long.shouldRenew(14_999)).toBe(false);
    expect(long.shouldRenew(15_000)).toBe(true);
  });

  it("starts renewal strictly inside the usable window for every lease length allowed", () => {
    for (const leaseMs of [MIN_LEASE_MS, 100, 250, DEFAULT_LEASE_MS, 5_000, MAX_LEASE_MS]) {
      const lease = new HeldLease(grantOf(leaseMs), 1_000);
      const renewFrom = 1_000 + (leaseMs - LEASE_MARGIN_MS) / 2;
      expect(lease.shouldRenew(Math.ceil(renewFrom))).toBe(true);
      expect(lease.isValid(lease.validUntil - 1)).toBe(true);
      expect(lease.shouldRenew(lease.validUntil - 1)).toBe(true);
      expect(Math.ceil(renewFrom)).toBeLessThan(lease.validUntil);
    }
  });
});

// ---- the isolate's side: keeping a lease fresh ----------------------------------------

describe("LeaseKeeper", () => {
  let now: number;
  const clock = () => now;
  let fetcher: FakeFetcher;
  let keeper: LeaseKeeper<string>;

  beforeEach(() => {
    now = 1_000;
    fetcher = new FakeFetcher(clock);
    keeper = new LeaseKeeper(fetcher.fetch, clock);
  });

  /** Gives the keeper a lease requested at `at` (answered 10 ms later). */
  async function primed(at = 1_000, leaseMs = 1_000, stateVersion = 1) {
    now = at;
    const first = keeper.current();
    now = at + 10;
    fetcher.next().resolve(grantOf(leaseMs, stateVersion));
    return first;
  }

  it("fetches the first lease in the foreground, timed from when it was sent", async () => {
    expect(keeper.held).toBeUndefined();
    const pending = track(keeper.current());
    await settle();
    expect(fetcher.calls).toBe(1);
    expect(pending.settled).toBe(false);
    now = 1_030;
    fetcher.next().resolve(grantOf(1_000, 3));
    await settle();
    expect(pending.error).toBeUndefined();
    const lease = pending.value;
    expect(lease?.requestedAt).toBe(1_000);
    expect(lease?.validUntil).toBe(1_950);
    expect(lease?.grant).toEqual(grantOf(1_000, 3));
    expect(keeper.held).toBe(lease);
  });

  it("serves from the held lease in its first half without any fetch", async () => {
    const lease = await primed();
    const handed: Promise<unknown>[] = [];
    for (const t of [1_010, 1_200, 1_474]) {
      now = t;
      expect(await keeper.current((p) => handed.push(p))).toBe(lease);
    }
    expect(fetcher.calls).toBe(1);
    expect(handed).toHaveLength(0);
  });

  it("reads the clock afresh at each request: exactly at validUntil it fetches", async () => {
    const lease = await primed();
    now = 1_949;
    expect(await keeper.current()).toBe(lease); // last valid instant (starts a renewal)
    const renewal = fetcher.next();
    now = 1_950;
    const pending = track(keeper.current());
    await settle();
    expect(fetcher.calls).toBe(3); // the renewal, then a foreground fetch
    expect(pending.settled).toBe(false);
    const foreground = fetcher.next();
    expect(foreground.sentAt).toBe(1_950);
    now = 1_960;
    foreground.resolve(grantOf(1_000, 2));
    await settle();
    expect(pending.value?.requestedAt).toBe(1_950);
    expect(pending.value?.grant.stateVersion).toBe(2);
    renewal.resolve(grantOf(1_000, 1));
    await settle();
    // The late renewal was sent earlier than the lease now held: it is not adopted.
    expect(keeper.held?.requestedAt).toBe(1_950);
  });

  it("renews in the second half with exactly one background fetch handed to `background`", async () => {
    const lease = await primed();
    const handed: Promise<unknown>[] = [];
    now = 1_475;
    const served = track(keeper.current((p) => handed.push(p)));
    await settle();
    // The request is served at once from the held lease; the renewal runs behind it.
    expect(served.value).toBe(lease);
    expect(fetcher.calls).toBe(2);
    expect(handed).toHaveLength(1);

    // More requests while the renewal is in flight start nothing more.
    for (const t of [1_476, 1_600, 1_900, 1_949]) {
      now = t;
      expect(await keeper.current((p) => handed.push(p))).toBe(lease);
    }
    expect(fetcher.calls).toBe(2);
    expect(handed).toHaveLength(1);

    const renewal = fetcher.next();
    expect(renewal.sentAt).toBe(1_475);
    const background = track(handed[0] as Promise<unknown>);
    await settle();
    expect(background.settled).toBe(false);
    renewal.resolve(grantOf(1_000, 2));
    await settle();
    expect(background.settled).toBe(true);
    expect(background.error).toBeUndefined();

    const renewed = keeper.held;
    expect(renewed?.requestedAt).toBe(1_475);
    expect(renewed?.grant.stateVersion).toBe(2);
    // The old lease is over at 1950; the renewed one serves, and being half
    // used itself (1475 + 950 / 2), starts the next renewal.
    now = 1_950;
    expect(await keeper.current((p) => handed.push(p))).toBe(renewed);
    expect(fetcher.calls).toBe(3);
    expect(handed).toHaveLength(2);
  });

  it("renews again in the second half of the renewed lease", async () => {
    await primed();
    const handed: Promise<unknown>[] = [];
    now = 1_500;
    await keeper.current((p) => handed.push(p));
    fetcher.next().resolve(grantOf(1_000, 2));
    await settle();
    // Renewed lease: requested at 1500, valid until 2450, renew from 1975.
    now = 1_974;
    await keeper.current((p) => handed.push(p));
    expect(fetcher.calls).toBe(2);
    now = 1_975;
    await keeper.current((p) => handed.push(p));
    expect(fetcher.calls).toBe(3);
    expect(handed).toHaveLength(2);
  });

  it("starts the renewal even without a `background` callback", async () => {
    const lease = await primed();
    now = 1_500;
    expect(await keeper.current()).toBe(lease);
    expect(fetcher.calls).toBe(2);
    fetcher.next().resolve(grantOf(1_000, 2));
    await settle();
    expect(keeper.held?.requestedAt).toBe(1_500);
  });

  it("survives a failed background renewal: same lease, error swallowed, next request retries", async () => {
    const lease = await primed();
    const handed: Promise<unknown>[] = [];
    now = 1_500;
    await keeper.current((p) => handed.push(p));
    const background = track(handed[0] as Promise<unknown>);
    fetcher.next().reject(new Error("object unreachable"));
    await settle();
    expect(background.settled).toBe(true);
    expect(background.error).toBeUndefined();
    expect(keeper.held).toBe(lease);

    now = 1_600;
    expect(await keeper.current((p) => handed.push(p))).toBe(lease);
    expect(fetcher.calls).toBe(3);
    expect(handed).toHaveLength(2);
  });

  describe("without a `background` callback", () => {
    const unhandled: unknown[] = [];
    const listener = (event: Event) => {
      unhandled.push((event as PromiseRejectionEvent).reason);
    };
    beforeEach(() => {
      unhandled.length = 0;
      globalThis.addEventListener("unhandledrejection", listener);
    });
    afterEach(() => {
      globalThis.removeEventListener("unhandledrejection", listener);
    });

    it("a failed renewal leaves no unhandled rejection behind", async () => {
      const lease = await primed();
      now = 1_500;
      expect(await keeper.current()).toBe(lease);
      fetcher.next().reject(new Error("renewal failed"));
      await settle();
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(unhandled.map(String)).toEqual([]);
      // And the keeper is still usable: the next request in the second half renews again.
      now = 1_600;
      expect(await keeper.current()).toBe(lease);
      expect(fetcher.calls).toBe(3);
      fetcher.next().resolve(grantOf(1_000, 2));
      await settle();
      expect(keeper.held?.requestedAt).toBe(1_600);
    });
  });

  it("fetches in the foreground once the lease has expired", async () => {
    await primed();
    now = 5_000;
    const pending = track(keeper.current());
    await settle();
    expect(pending.settled).toBe(false);
    expect(fetcher.calls).toBe(2);
    now = 5_020;
    fetcher.next().resolve(grantOf(1_000, 4));
    await settle();
    expect(pending.value?.requestedAt).toBe(5_000);
    expect(pending.value?.grant.stateVersion).toBe(4);
    expect(keeper.held).toBe(pending.value);
  });

  it("never makes a request wait on a renewal another request started", async () => {
    await primed();
    const handed: Promise<unknown>[] = [];
    now = 1_900;
    await keeper.current((p) => handed.push(p)); // starts the background renewal
    const renewal = fetcher.next();

    now = 2_000; // expired, renewal still in flight
    const mine = track(keeper.current((p) => handed.push(p)));
    await settle();
    expect(fetcher.calls).toBe(3); // its own fetch, not the renewal's
    const own = fetcher.next();
    expect(own.sentAt).toBe(2_000);
    now = 2_010;
    own.resolve(grantOf(1_000, 2));
    await settle();
    expect(mine.value?.requestedAt).toBe(2_000); // served while the renewal still hangs
    expect(handed).toHaveLength(1);

    renewal.resolve(grantOf(1_000, 1));
    await settle();
    expect(keeper.held?.requestedAt).toBe(2_000);
  });

  it("lets concurrent first requests each fetch, and serves each on its own answer", async () => {
    now = 1_000;
    const a = track(keeper.current());
    now = 1_005;
    const b = track(keeper.current());
    await settle();
    expect(fetcher.calls).toBe(2);
    const fetchA = fetcher.next();
    const fetchB = fetcher.next();
    now = 1_020;
    fetchB.resolve(grantOf(1_000, 2));
    await settle();
    expect(b.value?.requestedAt).toBe(1_005);
    expect(a.settled).toBe(false);
    fetchA.resolve(grantOf(1_000, 1));
    await settle();
    expect(a.value?.requestedAt).toBe(1_000);
    // The later-sent lease stays held, whichever arrived last.
    expect(keeper.held?.requestedAt).toBe(1_005);
  });

  it("retries once when the lease arrives already expired, and serves the retry", async () => {
    const pending = track(keeper.current());
    await settle();
    now = 1_950; // the answer lands exactly at validUntil: unusable
    fetcher.next().resolve(grantOf(1_000, 1));
    await settle();
    expect(fetcher.calls).toBe(2);
    expect(pending.settled).toBe(false);
    const retry = fetcher.next();
    expect(retry.sentAt).toBe(1_950);
    now = 1_970;
    retry.resolve(grantOf(1_000, 2));
    await settle();
    expect(pending.value?.requestedAt).toBe(1_950);
    expect(pending.value?.validUntil).toBe(2_900);
    expect(pending.value?.grant.stateVersion).toBe(2);
  });

  it("throws when the retry arrives expired too, after exactly two fetches", async () => {
    const pending = track(keeper.current());
    await settle();
    now = 3_000;
    fetcher.next().resolve(grantOf(1_000, 1));
    await settle();
    now = 5_000;
    fetcher.next().resolve(grantOf(1_000, 1));
    await settle();
    expect(pending.settled).toBe(true);
    expect(pending.error).toBeInstanceOf(Error);
    expect((pending.error as Error).message).toBe("lease expired before it arrived");
    expect(fetcher.calls).toBe(2);
    expect(fetcher.pending).toHaveLength(0);
  });

  it("fails closed with the fetch's own error, and tries again on the next request", async () => {
    const failure = new Error("object unreachable");
    const pending = track(keeper.current());
    await settle();
    fetcher.next().reject(failure);
    await settle();
    expect(pending.error).toBe(failure);
    expect(fetcher.calls).toBe(1);
    expect(keeper.held).toBeUndefined();

    now = 1_100;
    const again = track(keeper.current());
    await settle();
    expect(fetcher.calls).toBe(2);
    fetcher.next().resolve(grantOf(1_000, 1));
    await settle();
    expect(again.value?.requestedAt).toBe(1_100);
  });

  it("fails closed with the retry's error when the retry fails", async () => {
    const failure = new Error("still unreachable");
    const pending = track(keeper.current());
    await settle();
    now = 2_500;
    fetcher.next().resolve(grantOf(1_000, 1));
    await settle();
    fetcher.next().reject(failure);
    await settle();
    expect(pending.error).toBe(failure);
  });

  it("never falls back to an expired lease when the fetch fails", async () => {
    await primed();
    now = 2_000;
    const pending = track(keeper.current());
    await settle();
    fetcher.next().reject(new Error("down"));
    await settle();
    expect(pending.error).toBeInstanceOf(Error);
    expect((pending.error as Error).message).toBe("down");
  });

  it("refetches when the clock has stepped back past the margin", async () => {
    const lease = await primed();
    now = 950;
    expect(await keeper.current()).toBe(lease);
    now = 949;
    const pending = track(keeper.current());
    await settle();
    expect(fetcher.calls).toBe(2);
    fetcher.next().resolve(grantOf(1_000, 2));
    await settle();
    expect(pending.value?.requestedAt).toBe(949);
  });

  it("serves a lease of the shortest length a rollout may set", async () => {
    const pending = track(keeper.current());
    await settle();
    // Answered in the same instant: the best case a lease can ever have.
    fetcher.next().resolve(grantOf(MIN_LEASE_MS, 1));
    await settle();
    expect(pending.error).toBeUndefined();
    expect(pending.value?.isValid(now)).toBe(true);
    expect(fetcher.calls).toBe(1);
  });

  it("applies its own margin to the leases it holds", async () => {
    const noMargin = new LeaseKeeper(fetcher.fetch, clock, 0);
    const pending = track(noMargin.current());
    await settle();
    fetcher.next().resolve(grantOf(1_000, 1));
    await settle();
    expect(pending.value?.validUntil).toBe(2_000);
    expect(pending.value?.marginMs).toBe(0);
  });

  it("uses Date.now when no clock is given", async () => {
    const real = new LeaseKeeper<string>(async () => grantOf(DEFAULT_LEASE_MS, 1));
    const before = Date.now();
    const lease = await real.current();
    expect(lease.requestedAt).toBeGreaterThanOrEqual(before);
    expect(lease.requestedAt).toBeLessThanOrEqual(Date.now());
  });
});

// ---- the promise, simulated ---------------------------------------------------------

/**
 * A direct check of the arithmetic: leases granted before a commit, held by
 * isolates whose clocks are never ahead of the object's and wobble by at most
 * the margin, are all invalid for any request that starts at or after the
 * acknowledgement. Restarts replace the ledger and rely on the fence.
 */
/**
 * Grants, commits and restarts at random on the object; every lease granted
 * before a commit is then checked, as an isolate would, at and after the
 * acknowledgement. Returns each lease found still valid.
 */
function ledgerSimulation(seed: number, ledgerMarginMs = LEASE_MARGIN_MS) {
  const random = mulberry32(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const leaseChoices = [MIN_LEASE_MS, 100, 250, 1_000, 3_000];
  let leaseMs = 1_000;
  let longest = leaseMs;
  let ledger = new GrantLedger(0, longest, ledgerMarginMs);
  let version = 1;
  interface Issued {
    lease: HeldLease<string>;
    /** The isolate's clock is the object's minus this, minus a wobble within the margin. */
    base: number;
  }
  const issued: Issued[] = [];
  let checks = 0;
  let restarts = 0;
  const stillValid: string[] = [];
  let t = 0;
  for (let step = 0; step < 3_000; step++) {
    t += int(0, 40);
    const roll = random();
    if (roll < 0.8) {
      // An isolate sent a request `latency` ago; the object grants it now.
      const base = int(0, 500);
      const wobble = int(0, LEASE_MARGIN_MS);
      const latency = int(0, 30);
      const sentAtIsolate = t - latency - base - wobble;
      ledger.grant(t, leaseMs);
      const grant: LeaseGrant<string> = { state: `s${version}`, stateVersion: version, leaseMs };
      issued.push({ lease: new HeldLease(grant, sentAtIsolate), base });
    } else if (roll < 0.95) {
      version++;
      if (random() < 0.4) leaseMs = leaseChoices[int(0, leaseChoices.length - 1)] as number;
      longest = Math.max(longest, leaseMs);
      const ackAt = Math.max(t, ledger.acknowledgeAt());
      for (const { lease, base } of issued) {
        if (lease.grant.stateVersion >= version) continue;
        for (const r of [ackAt, ackAt + 1, ackAt + int(0, 2_000)]) {
          // The same isolate later: still never ahead, its wobble anywhere
          // within the margin (so it may have fallen further behind).
          const isolateNow = r - base - int(0, LEASE_MARGIN_MS);
          checks++;
          if (lease.isValid(isolateNow))
            stillValid.push(`v${lease.grant.stateVersion} valid at ${r} (ack ${ackAt})`);
        }
      }
    } else {
      restarts++;
      ledger = new GrantLedger(t, longest, ledgerMarginMs);
    }
  }
  return { checks, restarts, stillValid };
}

describe("lease promise: every old lease is over at acknowledgement", () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    it(`holds for random grants, commits and restarts (seed ${seed})`, () => {
      const { checks, restarts, stillValid } = ledgerSimulation(seed);
      expect(stillValid).toEqual([]);
      expect(checks).toBeGreaterThan(100_000);
      expect(restarts).toBeGreaterThan(50);
    });
  }

  it("finds old leases still valid when the object acknowledges a little too early", () => {
    const { stillValid } = ledgerSimulation(1, -(LEASE_MARGIN_MS + 10));
    expect(stillValid.length).toBeGreaterThan(0);
  });
});

interface SimOptions {
  seed: number;
  /** Simulated milliseconds. */
  duration: number;
  /** Makes the object's ledger (for the negative controls). */
  ledger?: (startedAt: number, longestLeaseMs: number) => GrantLedger;
}

interface SimResult {
  requests: number;
  served: number;
  failedClosed: number;
  fetches: number;
  fetchErrors: number;
  slowFetches: number;
  backgroundRenewals: number;
  commits: number;
  restarts: number;
  violations: string[];
}

/**
 * A discrete-event simulation of isolates (each with a LeaseKeeper and a clock
 * behind the object's by a fixed offset plus a wobble within the margin)
 * reading a model's state from an object that commits changes, restarts, and
 * acknowledges each change at max(commit time, ledger.acknowledgeAt()). A
 * violation is a request that starts at or after an acknowledgement and is
 * served an older state version, or an isolate holding a valid lease on an
 * older state at the moment of acknowledgement.
 */
async function simulate(options: SimOptions): Promise<SimResult> {
  const random = mulberry32(options.seed);
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const makeLedger =
    options.ledger ?? ((startedAt, longestLeaseMs) => new GrantLedger(startedAt, longestLeaseMs));
  const result: SimResult = {
    requests: 0,
    served: 0,
    failedClosed: 0,
    fetches: 0,
    fetchErrors: 0,
    slowFetches: 0,
    backgroundRenewals: 0,
    commits: 0,
    restarts: 0,
    violations: [],
  };

  let now = 0; // the object's clock, and real time
  let seq = 0;
  const queue: { at: number; seq: number; run: () => void }[] = [];
  const schedule = (at: number, run: () => void) => {
    queue.push({ at, seq: seq++, run });
  };

  // The object: persisted state, an in-memory ledger.
  const leaseChoices = [100, 200, 500, 1_000];
  let stateVersion = 1;
  let leaseMs = 1_000;
  let longest = leaseMs;
  let ledger = makeLedger(now, longest);
  const acks: { version: number; at: number }[] = [];
  const requiredAt = (t: number) =>
    acks.reduce((max, ack) => (ack.at <= t && ack.version > max ? ack.version : max), 0);

  const latency = () => {
    const roll = random();
    if (roll < 0.9) return int(0, 20);
    if (roll < 0.98) return int(20, 200);
    result.slowFetches++;
    return int(1_000, 1_600);
  };

  const isolates = Array.from({ length: 4 }, (_, index) => {
    const isolate = {
      index,
      base: int(0, 400),
      wobble: int(0, LEASE_MARGIN_MS),
      clock: () => now - isolate.base - isolate.wobble,
      keeper: undefined as unknown as LeaseKeeper<string>,
    };
    const fetchGrant: LeaseFetcher<string> = () =>
      new Promise<LeaseGrant<string>>((resolve, reject) => {
        result.fetches++;
        const fails = random() < 0.03;
        const lostBeforeGrant = random() < 0.5;
        schedule(now + latency(), () => {
          if (fails && lostBeforeGrant) {
            result.fetchErrors++;
            reject(new Error("object unreachable"));
            return;
          }
          ledger.grant(now, leaseMs);
          const grant = { state: `s${stateVersion}`, stateVersion, leaseMs };
          schedule(now + latency(), () => {
            if (fails) {
              result.fetchErrors++;
              reject(new Error("response lost"));
            } else resolve(grant);
          });
        });
      });
    isolate.keeper = new LeaseKeeper(fetchGrant, isolate.clock);
    return isolate;
  });

  const checkHeldAtAck = (version: number) => {
    for (const isolate of isolates) {
      const held = isolate.keeper.held;
      if (held && held.grant.stateVersion < version && held.isValid(isolate.clock())) {
        result.violations.push(
          `t=${now}: isolate ${isolate.index} still holds a valid lease on v${held.grant.stateVersion} after v${version} was acknowledged`,
        );
      }
    }
  };

  const commit = () => {
    stateVersion++;
    result.commits++;
    if (random() < 0.4) leaseMs = leaseChoices[int(0, leaseChoices.length - 1)] as number;
    longest = Math.max(longest, leaseMs);
    const version = stateVersion;
    const at = Math.max(now, ledger.acknowledgeAt());
    acks.push({ version, at });
    schedule(at, () => checkHeldAtAck(version));
  };

  // Event sources.
  for (const isolate of isolates) {
    const arrive = () => {
      if (now >= options.duration) return;
      result.requests++;
      const startedAt = now;
      const required = requiredAt(now);
      isolate.keeper
        .current((renewal) => {
          result.backgroundRenewals++;
          void renewal;
        })
        .then(
          (lease) => {
            result.served++;
            if (lease.grant.stateVersion < required) {
              result.violations.push(
                `request at t=${startedAt} on isolate ${isolate.index} served v${lease.grant.stateVersion}, v${required} was acknowledged`,
              );
            }
          },
          () => {
            result.failedClosed++;
          },
        );
      schedule(now + (random() < 0.1 ? int(300, 1_500) : int(0, 40)), arrive);
    };
    schedule(int(0, 50), arrive);
    const wobble = () => {
      if (now >= options.duration) return;
      isolate.wobble = int(0, LEASE_MARGIN_MS);
      schedule(now + int(100, 600), wobble);
    };
    schedule(int(100, 600), wobble);
  }
  const admin = () => {
    if (now >= options.duration) return;
    commit();
    schedule(now + int(100, 2_500), admin);
  };
  schedule(int(100, 1_000), admin);
  const restart = () => {
    if (now >= options.duration) return;
    result.restarts++;
    ledger = makeLedger(now, longest);
    // Often a change lands right after a restart: the fence must cover it.
    if (random() < 0.7) schedule(now + int(0, 30), commit);
    schedule(now + int(1_500, 6_000), restart);
  };
  schedule(int(1_000, 3_000), restart);

  while (queue.length > 0) {
    let first = 0;
    for (let i = 1; i < queue.length; i++) {
      const a = queue[i] as (typeof queue)[number];
      const b = queue[first] as (typeof queue)[number];
      if (a.at < b.at || (a.at === b.at && a.seq < b.seq)) first = i;
    }
    const [event] = queue.splice(first, 1);
    if (!event) break;
    now = event.at;
    event.run();
    await settle();
  }
  return result;
}

describe("lease promise: simulated isolates and object", () => {
  for (const seed of [11, 12, 13]) {
    it(`no request starting after an acknowledgement sees the old state (seed ${seed})`, async () => {
      const result = await simulate({ seed, duration: 200_000 });
      expect(result.violations).toEqual([]);
      // The run exercised what it claims to.
      expect(result.requests).toBeGreaterThan(6_000);
      expect(result.served).toBeGreaterThan(6_000);
      expect(result.failedClosed).toBeGreaterThan(0);
      expect(result.fetchErrors).toBeGreaterThan(20);
      expect(result.slowFetches).toBeGreaterThan(20);
      expect(result.backgroundRenewals).toBeGreaterThan(500);
      expect(result.commits).toBeGreaterThan(150);
      expect(result.restarts).toBeGreaterThan(40);
      // Leases do their job: far fewer fetches than requests.
      expect(result.fetches).toBeLessThan(result.requests / 2);
      expect(result.served + result.failedClosed).toBe(result.requests);
    });
  }

  it("catches an object that acknowledges without waiting for its leases", async () => {
    class Hasty extends GrantLedger {
      override acknowledgeAt(): number {
        return 0;
      }
    }
    const result = await simulate({
      seed: 11,
      duration: 20_000,
      ledger: (s, l) => new Hasty(s, l),
    });
    expect(result.violations.length).toBeGreaterThan(0);
  });

  it("catches an object that forgets the restart fence", async () => {
    const result = await simulate({
      seed: 11,
      duration: 40_000,
      ledger: (startedAt) => new GrantLedger(startedAt, 0),
    });
    expect(result.violations.length).toBeGreaterThan(0);
  });

  it("catches an acknowledgement that comes a little earlier than the leases allow", async () => {
    // Acknowledging 10 ms before grant + T - isolate margin: only just wrong.
    const result = await simulate({
      seed: 11,
      duration: 200_000,
      ledger: (startedAt, longest) => new GrantLedger(startedAt, longest, -(LEASE_MARGIN_MS + 10)),
    });
    expect(result.violations.length).toBeGreaterThan(0);
  });
});
