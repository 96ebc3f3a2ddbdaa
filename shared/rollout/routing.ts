/**
 * Sticky canary routing. A key's bucket is `hash(model, salt, key) mod 10000`;
 * the canary serves buckets below `percent * 100`. Raising the percentage only
 * adds buckets, so a key on the canary stays there until the percentage falls
 * below its bucket. A new canary version gets a new salt, and so a fresh draw.
 */
export const BUCKETS = 10_000;

const encoder = new TextEncoder();

/** MurmurHash3 (x86, 32-bit): fast, well mixed, and the same everywhere. */
export function murmur3(bytes: Uint8Array, seed = 0): number {
  let h = seed >>> 0;
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  const blocks = bytes.length >>> 2;
  for (let i = 0; i < blocks; i++) {
    const o = i * 4;
    let k =
      (bytes[o] ?? 0) |
      ((bytes[o + 1] ?? 0) << 8) |
      ((bytes[o + 2] ?? 0) << 16) |
      ((bytes[o + 3] ?? 0) << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = blocks * 4;
  const rest = bytes.length & 3;
  if (rest > 0) {
    let k = 0;
    if (rest === 3) k ^= (bytes[tail + 2] ?? 0) << 16;
    if (rest >= 2) k ^= (bytes[tail + 1] ?? 0) << 8;
    k ^= bytes[tail] ?? 0;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The bucket (0..9999) of a key for one model and canary salt. */
export function bucketOf(model: string, salt: string, key: string): number {
  // Length-prefixed parts, so ("ab", "c") and ("a", "bc") never collide.
  const text = `${model.length}:${model}|${salt.length}:${salt}|${key}`;
  return murmur3(encoder.encode(text)) % BUCKETS;
}

/** True when the canary at `percent` (0..100, fractional allowed) serves this bucket. */
export function canaryServes(bucket: number, percent: number): boolean {
  return bucket < Math.round(percent * 100);
}

/** A bucket for a request without a key: one uniform draw. */
export function randomBucket(random: () => number = Math.random): number {
  return Math.min(BUCKETS - 1, Math.floor(random() * BUCKETS));
}
