import { describe, expect, it } from "vitest";
import { unknownUntil } from "../../functions/rollout/leases";
import { ExpiringNames, LruMap } from "../../shared/lru";
import { HeldLease, LEASE_MARGIN_MS, MIN_LEASE_MS } from "../../shared/rollout/lease";
import type { RolloutSnapshot } from "../../shared/rollout/state";

describe("LruMap", () => {
  it("forgets the least recently used entry beyond its capacity", () => {
    const map = new LruMap<string, number>(3);
    map.set("a", 1).set("b", 2).set("c", 3);
    expect(map.get("a")).toBe(1); // a is now the newest
    map.set("d", 4);
    expect(map.size).toBe(3);
    expect(map.peek("b")).toBeUndefined();
    expect([map.peek("a"), map.peek("c"), map.peek("d")]).toEqual([1, 3, 4]);
  });

  it("never grows past its capacity, however many names arrive", () => {
    const map = new LruMap<string, number>(100);
    for (let i = 0; i < 10_000; i++) map.set(`name-${i}`, i);
    expect(map.size).toBe(100);
    expect(map.peek("name-9999")).toBe(9999);
    expect(map.peek("name-9899")).toBeUndefined();
  });

  it("peeks without changing the order", () => {
    const map = new LruMap<string, number>(2);
    map.set("a", 1).set("b", 2);
    expect(map.peek("a")).toBe(1);
    map.set("c", 3);
    expect(map.peek("a")).toBeUndefined();
  });

  it("lists its entries least recently used first", () => {
    const map = new LruMap<string, number>(3);
    map.set("a", 1).set("b", 2).set("c", 3);
    map.get("a");
    map.set("d", 4);
    expect([...map.entries()]).toEqual([
      ["c", 3],
      ["a", 1],
      ["d", 4],
    ]);
  });

  it("refuses a capacity that is not a positive integer", () => {
    expect(() => new LruMap(0)).toThrow(RangeError);
    expect(() => new LruMap(1.5)).toThrow(RangeError);
  });
});

describe("ExpiringNames", () => {
  it("remembers a name until its own time, exclusive", () => {
    const names = new ExpiringNames(10);
    names.add("ghost", 1_250, 1_000);
    expect(names.has("ghost", 1_000)).toBe(true);
    expect(names.has("ghost", 1_249)).toBe(true);
    expect(names.has("ghost", 1_250)).toBe(false);
    expect(names.size).toBe(0);
  });

  it("remembers nothing for a time already past, and stays within its capacity", () => {
    const names = new ExpiringNames(2);
    names.add("past", 999, 1_000);
    expect(names.has("past", 1_000)).toBe(false);
    for (const name of ["a", "b", "c"]) names.add(name, 2_000, 1_000);
    expect(names.size).toBe(2);
    expect(names.has("a", 1_000)).toBe(false);
  });
});

describe("unknown model names", () => {
  const lease = (requestedAt: number, leaseMs: number) =>
    new HeldLease<RolloutSnapshot>(
      { state: {} as RolloutSnapshot, stateVersion: 0, leaseMs },
      requestedAt,
    );

  it("are remembered for the minimum lease at most", () => {
    expect(unknownUntil(10_000, lease(10_000, 30_000))).toBe(10_000 + MIN_LEASE_MS);
  });

  it("are never remembered past the lease they were read under", () => {
    // A change to the name's state is acknowledged only after that lease ran out.
    const short = lease(10_000, MIN_LEASE_MS);
    expect(unknownUntil(10_020, short)).toBe(10_000 + MIN_LEASE_MS - LEASE_MARGIN_MS);
    expect(unknownUntil(10_020, short)).toBe(short.validUntil);
  });
});
