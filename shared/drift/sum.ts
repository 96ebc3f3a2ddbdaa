/**
 * Compensated (Neumaier) summation: sums of thousands of terms stay within a
 * rounding or two of the exact sum, so results do not depend on the order in
 * which a database or a library happened to add them.
 */
export class Sum {
  private total = 0;
  private compensation = 0;

  add(value: number): this {
    const next = this.total + value;
    if (Math.abs(this.total) >= Math.abs(value)) this.compensation += this.total - next + value;
    else this.compensation += value - next + this.total;
    this.total = next;
    return this;
  }

  get value(): number {
    return this.total + this.compensation;
  }
}

export function sum(values: Iterable<number>): number {
  const total = new Sum();
  for (const value of values) total.add(value);
  return total.value;
}
