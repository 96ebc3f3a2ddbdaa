/**
 * A sample as the statistics read it: ascending, without NaN. NaN is a
 * missing value (and would never compare equal to itself while merging two
 * samples); infinities are kept, as values beyond every other.
 */
export function sortedValues(values: ArrayLike<number>): Float64Array<ArrayBuffer> {
  const sorted = Float64Array.from(values).sort();
  // Float64Array sorts NaN last.
  let end = sorted.length;
  while (end > 0 && Number.isNaN(sorted[end - 1])) end--;
  return end === sorted.length ? sorted : sorted.slice(0, end);
}
