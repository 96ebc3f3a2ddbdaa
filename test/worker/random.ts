/** Small, seedable PRNG (mulberry32), so simulations and draws are reproducible. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Allowed deviation of a count of `n` Bernoulli(p) draws: `sigmas` standard deviations. */
export const tolerance = (n: number, p: number, sigmas = 5) => sigmas * Math.sqrt(n * p * (1 - p));
