import { describe, expect, it } from "vitest";
import {
  BUCKETS,
  bucketOf,
  canaryServes,
  murmur3,
  randomBucket,
} from "../../shared/rollout/routing";
import { mulberry32, tolerance } from "./random";

const encoder = new TextEncoder();
const utf8 = (text: string) => encoder.encode(text);

/** Keys as callers send them: user ids, in sequence. */
const keys = (count: number, prefix = "user-") =>
  Array.from({ length: count }, (_, i) => `${prefix}${i}`);

const bump = (counts: number[], index: number) => {
  counts[index] = (counts[index] ?? 0) + 1;
};

describe("murmur3", () => {
  // The published MurmurHash3_x86_32 vectors (SMHasher), rechecked against an
  // independent implementation.
  const vectors: [string, Uint8Array, number, number][] = [
    ["empty, seed 0", new Uint8Array(0), 0, 0x00000000],
    ["empty, seed 1", new Uint8Array(0), 1, 0x514e28b7],
    ["empty, seed 0xffffffff", new Uint8Array(0), 0xffffffff, 0x81f16f39],
    ["four zero bytes", new Uint8Array([0, 0, 0, 0]), 0, 0x2362f9de],
    ["four 0xff bytes", new Uint8Array([0xff, 0xff, 0xff, 0xff]), 0, 0x76293b50],
    ["'hello'", utf8("hello"), 0, 0x248bfa47],
    ["the quick brown fox", utf8("The quick brown fox jumps over the lazy dog"), 0, 0x2e4ff723],
    ["'aaaa', seed 0x9747b28c", utf8("aaaa"), 0x9747b28c, 0x5a97808a],
    ["'abc', seed 0x9747b28c", utf8("abc"), 0x9747b28c, 0xc84a62dd],
    ["'Hello, world!', seed 0x9747b28c", utf8("Hello, world!"), 0x9747b28c, 0x24884cba],
    // One of each tail length, and multi-byte UTF-8.
    ["'a'", utf8("a"), 0, 0x3c2569b2],
    ["'ab'", utf8("ab"), 0, 0x9bbfd75f],
    ["'abc'", utf8("abc"), 0, 0xb3dd93fa],
    ["'abcd'", utf8("abcd"), 0, 0x43ed676a],
    ["'Hello, world!', seed 1234", utf8("Hello, world!"), 1234, 0xfaf6cdb3],
    ["'ä€😀', seed 42", utf8("ä€😀"), 42, 0xf1795a58],
  ];
  for (const [name, bytes, seed, expected] of vectors) {
    it(`matches the reference for ${name}`, () => {
      expect(murmur3(bytes, seed)).toBe(expected);
    });
  }

  it("defaults the seed to 0 and treats a negative seed as its unsigned 32-bit value", () => {
    expect(murmur3(utf8("hello"))).toBe(0x248bfa47);
    expect(murmur3(new Uint8Array(0), -1)).toBe(0x81f16f39);
  });

  it("returns an unsigned 32-bit integer, the same every time", () => {
    const random = mulberry32(3);
    for (let i = 0; i < 2_000; i++) {
      const bytes = new Uint8Array(Math.floor(random() * 40)).map(() => Math.floor(random() * 256));
      const h = murmur3(bytes);
      expect(Number.isInteger(h)).toBe(true);
      expect(h).toBeGreaterThanOrEqual(0);
      expect(h).toBeLessThan(2 ** 32);
      expect(murmur3(bytes.slice())).toBe(h);
    }
  });

  it("changes with any single byte of the input", () => {
    const base = utf8("The quick brown fox jumps over the lazy dog");
    const h = murmur3(base);
    for (let i = 0; i < base.length; i++) {
      const flipped = base.slice();
      flipped[i] = (flipped[i] as number) ^ 1;
      expect(murmur3(flipped)).not.toBe(h);
    }
  });
});

describe("bucketOf", () => {
  it("hashes the length-prefixed model, salt and key", () => {
    // murmur3("5:fraud|2:s1|user-1") = ...8224 mod 10000, checked independently.
    expect(bucketOf("fraud", "s1", "user-1")).toBe(8_224);
    expect(bucketOf("fraud", "s1", "user-2")).toBe(4_278);
    expect(bucketOf("churn", "9f2c", "acct-42")).toBe(8_191);
    expect(bucketOf("m", "", "")).toBe(7_401);
    expect(bucketOf("fraud", "s1", "user-1")).toBe(murmur3(utf8("5:fraud|2:s1|user-1")) % BUCKETS);
  });

  it("is deterministic and within 0..9999", () => {
    expect(BUCKETS).toBe(10_000);
    for (const key of keys(5_000)) {
      const b = bucketOf("fraud", "salt-a", key);
      expect(Number.isInteger(b)).toBe(true);
      expect(b).toBeGreaterThanOrEqual(0);
      expect(b).toBeLessThan(BUCKETS);
      expect(bucketOf("fraud", "salt-a", key)).toBe(b);
    }
  });

  it("spreads 100k sequential keys evenly over the deciles", () => {
    const n = 100_000;
    const deciles = new Array<number>(10).fill(0);
    for (const key of keys(n)) {
      const b = bucketOf("fraud", "salt-a", key);
      bump(deciles, Math.floor(b / 1_000));
    }
    const expected = n / 10;
    const allowed = tolerance(n, 0.1); // 5 sigma, about 474
    for (const count of deciles) expect(Math.abs(count - expected)).toBeLessThan(allowed);
    expect(deciles.reduce((a, b) => a + b, 0)).toBe(n);
  });

  it("passes a chi-square test over 100 bins for several key shapes", () => {
    const n = 100_000;
    const shapes = [
      keys(n),
      keys(n, "acct_").map((k) => `${k}@example.com`),
      Array.from({ length: n }, (_, i) => String(i)),
    ];
    for (const shape of shapes) {
      const bins = new Array<number>(100).fill(0);
      for (const key of shape) bump(bins, Math.floor(bucketOf("churn", "7c1d", key) / 100));
      const expected = n / 100;
      const chi2 = bins.reduce((sum, count) => sum + (count - expected) ** 2 / expected, 0);
      // 99 degrees of freedom: the 99.99th percentile is 160.1.
      expect(chi2).toBeLessThan(160);
    }
  });

  it("gives a canary the share its percentage asks for", () => {
    const n = 100_000;
    const buckets = keys(n).map((key) => bucketOf("fraud", "salt-b", key));
    for (const percent of [0.5, 5, 33.33, 50, 90]) {
      const p = Math.round(percent * 100) / BUCKETS;
      const served = buckets.filter((b) => canaryServes(b, percent)).length;
      expect(Math.abs(served - n * p)).toBeLessThan(tolerance(n, p));
    }
    expect(buckets.filter((b) => canaryServes(b, 0)).length).toBe(0);
    expect(buckets.filter((b) => canaryServes(b, 100)).length).toBe(n);
  });

  it("keeps a key on the canary as the percentage rises", () => {
    const buckets = keys(20_000).map((key) => bucketOf("fraud", "salt-c", key));
    const steps = [0, 0.5, 1, 5, 10, 25, 33.33, 50, 75, 99.99, 100];
    let previous = new Set<number>();
    for (const percent of steps) {
      const onCanary = new Set(buckets.flatMap((b, i) => (canaryServes(b, percent) ? [i] : [])));
      for (const i of previous) expect(onCanary.has(i)).toBe(true);
      expect(onCanary.size).toBeGreaterThanOrEqual(previous.size);
      previous = onCanary;
    }
    expect(previous.size).toBe(20_000);
  });

  it("moves off the canary, when lowered, exactly the keys at or above the new threshold", () => {
    const buckets = keys(20_000).map((key) => bucketOf("fraud", "salt-c", key));
    const before = buckets.map((b) => canaryServes(b, 50));
    const after = buckets.map((b) => canaryServes(b, 20));
    let moved = 0;
    for (const [i, b] of buckets.entries()) {
      if (after[i]) expect(before[i]).toBe(true); // nobody joins when lowering
      if (before[i] && !after[i]) {
        moved++;
        expect(b).toBeGreaterThanOrEqual(2_000);
        expect(b).toBeLessThan(5_000);
      }
      if (before[i] && b < 2_000) expect(after[i]).toBe(true);
    }
    expect(Math.abs(moved - 20_000 * 0.3)).toBeLessThan(tolerance(20_000, 0.3));
  });

  it("draws an unrelated assignment under a new salt", () => {
    const n = 20_000;
    const a = keys(n).map((key) => bucketOf("fraud", "salt-old", key));
    const b = keys(n).map((key) => bucketOf("fraud", "salt-new", key));
    const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
    const ma = mean(a);
    const mb = mean(b);
    let cov = 0;
    let va = 0;
    let vb = 0;
    for (let i = 0; i < n; i++) {
      const da = (a[i] as number) - ma;
      const db = (b[i] as number) - mb;
      cov += da * db;
      va += da * da;
      vb += db * db;
    }
    const correlation = cov / Math.sqrt(va * vb);
    expect(Math.abs(correlation)).toBeLessThan(0.04); // ~5.6 sigma at n = 20k
    // At 10%, the canaries overlap as independent draws would: about 1% of keys.
    const both = a.filter((x, i) => canaryServes(x, 10) && canaryServes(b[i] as number, 10)).length;
    expect(Math.abs(both - n * 0.01)).toBeLessThan(tolerance(n, 0.01));
    expect(a.filter((x, i) => x === b[i]).length).toBeLessThan(20);
  });

  it("draws an unrelated assignment for another model with the same salt", () => {
    const n = 20_000;
    const a = keys(n).map((key) => bucketOf("fraud", "s", key));
    const b = keys(n).map((key) => bucketOf("churn", "s", key));
    const both = a.filter((x, i) => canaryServes(x, 50) && canaryServes(b[i] as number, 50)).length;
    expect(Math.abs(both - n * 0.25)).toBeLessThan(tolerance(n, 0.25));
  });

  it("never lets text move across part boundaries", () => {
    // Each pair would collide if the parts were simply concatenated or joined with "|".
    const pairs: [[string, string, string], [string, string, string]][] = [
      [
        ["ab", "c", ""],
        ["a", "bc", ""],
      ],
      [
        ["m", "s", "x"],
        ["m", "sx", ""],
      ],
      [
        ["a", "b|c", ""],
        ["a|b", "c", ""],
      ],
      [
        ["m", "s|x", ""],
        ["m", "s", "x|"],
      ],
    ];
    for (const [[m1, s1, k1], [m2, s2, k2]] of pairs) {
      expect(m1 + s1 + k1 === m2 + s2 + k2 || `${m1}|${s1}|${k1}` === `${m2}|${s2}|${k2}`).toBe(
        true,
      );
      let same = 0;
      for (const key of keys(2_000)) {
        if (bucketOf(m1, s1, k1 + key) === bucketOf(m2, s2, k2 + key)) same++;
      }
      // Independent buckets agree 1 time in 10,000: 0.2 expected here.
      expect(same).toBeLessThan(5);
    }
  });
});

describe("canaryServes", () => {
  it("serves the buckets below round(percent * 100)", () => {
    expect(canaryServes(499, 5)).toBe(true);
    expect(canaryServes(500, 5)).toBe(false);
    expect(canaryServes(0, 0.01)).toBe(true);
    expect(canaryServes(1, 0.01)).toBe(false);
    expect(canaryServes(49, 0.5)).toBe(true);
    expect(canaryServes(50, 0.5)).toBe(false);
    expect(canaryServes(3_332, 33.33)).toBe(true);
    expect(canaryServes(3_333, 33.33)).toBe(false);
    expect(canaryServes(0, 0)).toBe(false);
    expect(canaryServes(9_999, 100)).toBe(true);
    expect(canaryServes(9_999, 99.99)).toBe(false);
  });

  it("serves exactly round(percent * 100) of the 10,000 buckets", () => {
    for (const [percent, count] of [
      [0, 0],
      [0.01, 1],
      [0.5, 50],
      [5, 500],
      [33.33, 3_333],
      [50, 5_000],
      [66.67, 6_667],
      [99.99, 9_999],
      [100, 10_000],
    ] as const) {
      let served = 0;
      for (let b = 0; b < BUCKETS; b++) if (canaryServes(b, percent)) served++;
      expect(served).toBe(count);
    }
  });
});

describe("randomBucket", () => {
  it("maps the draw onto 0..9999", () => {
    expect(randomBucket(() => 0)).toBe(0);
    expect(randomBucket(() => 0.00005)).toBe(0);
    expect(randomBucket(() => 0.0001)).toBe(1);
    expect(randomBucket(() => 0.5)).toBe(5_000);
    expect(randomBucket(() => 0.999999)).toBe(9_999);
    expect(randomBucket(() => 1 - Number.EPSILON)).toBe(9_999);
  });

  it("stays in range even for a draw of exactly 1", () => {
    expect(randomBucket(() => 1)).toBe(9_999);
  });

  it("uses Math.random by default, uniformly", () => {
    const n = 50_000;
    const deciles = new Array<number>(10).fill(0);
    for (let i = 0; i < n; i++) {
      const b = randomBucket();
      expect(Number.isInteger(b)).toBe(true);
      expect(b).toBeGreaterThanOrEqual(0);
      expect(b).toBeLessThan(BUCKETS);
      bump(deciles, Math.floor(b / 1_000));
    }
    for (const count of deciles) expect(Math.abs(count - n / 10)).toBeLessThan(tolerance(n, 0.1));
  });
});
