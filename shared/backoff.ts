/**
 * Seconds before a queue message that failed is tried again: `base` after
 * the first attempt, doubling with each attempt after it, never above `cap`.
 */
export function exponentialBackoffSeconds(attempts: number, base: number, cap: number): number {
  const exponent = Math.max(0, Math.min(attempts - 1, 30));
  return Math.min(cap, base * 2 ** exponent);
}
