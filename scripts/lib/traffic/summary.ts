// What a run actually sent, per phase: counts, answers, and the empirical distribution of each
// feature and attribute, for the manifest a test compares monitoring output with. Pure.
import type { Value } from "./expression.ts";
import type { FeatureSchema } from "./format.ts";
import type { GeneratedRequest } from "./generate.ts";

/** Quantile with linear interpolation between closest ranks; NaN for no values. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const position = (sorted.length - 1) * q;
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  const a = sorted[lower] ?? Number.NaN;
  const b = sorted[upper] ?? Number.NaN;
  return a + (b - a) * (position - lower);
}

/** Whether a present value breaks the feature's schema (what Airlock would reject it for). */
export function breaksSchema(schema: FeatureSchema, value: Value): boolean {
  if (value === null) return false;
  switch (schema.type) {
    case "boolean":
      return typeof value !== "boolean";
    case "string":
      return (
        typeof value !== "string" ||
        (schema.enum !== undefined && !schema.enum.includes(value)) ||
        (schema.maxLength !== undefined && [...value].length > schema.maxLength)
      );
    case "number":
    case "integer":
      return (
        typeof value !== "number" ||
        !Number.isFinite(value) ||
        (schema.type === "integer" && !Number.isInteger(value)) ||
        (schema.enum !== undefined && !schema.enum.includes(value)) ||
        (schema.minimum !== undefined && value < schema.minimum) ||
        (schema.maximum !== undefined && value > schema.maximum)
      );
  }
}

function round(value: number, digits = 6): number {
  if (!Number.isFinite(value)) return value;
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

export type FeatureSummary =
  | {
      kind: "numeric";
      rows: number;
      /** Present, non-null values the statistics are over (out-of-range ones included). */
      n: number;
      missing: number;
      omitted: number;
      outOfRange: number;
      mean: number | null;
      std: number | null;
      min: number | null;
      p05: number | null;
      p25: number | null;
      p50: number | null;
      p75: number | null;
      p95: number | null;
      max: number | null;
    }
  | {
      kind: "categorical";
      rows: number;
      n: number;
      missing: number;
      omitted: number;
      outOfRange: number;
      /** Share of each value among the n present values. */
      proportions: Record<string, number>;
    };

class FeatureTally {
  rows = 0;
  missing = 0;
  omitted = 0;
  outOfRange = 0;
  readonly numbers: number[] = [];
  readonly counts = new Map<string, number>();
  readonly schema: FeatureSchema;
  readonly numeric: boolean;
  constructor(schema: FeatureSchema, numeric: boolean) {
    this.schema = schema;
    this.numeric = numeric;
  }

  add(row: Record<string, Value>, name: string) {
    this.rows++;
    if (!Object.hasOwn(row, name)) {
      this.omitted++;
      return;
    }
    const value = row[name] as Value;
    if (value === null) {
      this.missing++;
      return;
    }
    if (breaksSchema(this.schema, value)) this.outOfRange++;
    if (this.numeric && typeof value === "number") this.numbers.push(value);
    else this.counts.set(String(value), (this.counts.get(String(value)) ?? 0) + 1);
  }

  summary(): FeatureSummary {
    const base = {
      rows: this.rows,
      missing: this.missing,
      omitted: this.omitted,
      outOfRange: this.outOfRange,
    };
    if (!this.numeric) {
      let n = 0;
      for (const count of this.counts.values()) n += count;
      const proportions = Object.fromEntries(
        [...this.counts.entries()]
          .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
          .map(([value, count]) => [value, round(count / n)]),
      );
      return { kind: "categorical", ...base, n, proportions };
    }
    const values = Float64Array.from(this.numbers).sort();
    const n = values.length;
    let sum = 0;
    for (const v of values) sum += v;
    const mean = sum / n;
    let squares = 0;
    for (const v of values) squares += (v - mean) ** 2;
    const q = (p: number) => (n === 0 ? null : round(quantile(values, p)));
    return {
      kind: "numeric",
      ...base,
      n,
      mean: n === 0 ? null : round(mean),
      std: n < 2 ? null : round(Math.sqrt(squares / (n - 1))),
      min: q(0),
      p05: q(0.05),
      p25: q(0.25),
      p50: q(0.5),
      p75: q(0.75),
      p95: q(0.95),
      max: q(1),
    };
  }
}

/** Per-feature summaries of a stream of rows. */
export class RowsTally {
  readonly features = new Map<string, FeatureTally>();
  constructor(schema: Record<string, FeatureSchema>) {
    for (const [name, feature] of Object.entries(schema)) {
      const numeric = (feature.type === "number" || feature.type === "integer") && !feature.enum;
      this.features.set(name, new FeatureTally(feature, numeric));
    }
  }
  add(row: Record<string, Value>) {
    for (const [name, tally] of this.features) tally.add(row, name);
  }
  summary(): Record<string, FeatureSummary> {
    return Object.fromEntries([...this.features].map(([name, tally]) => [name, tally.summary()]));
  }
}

function increment(map: Record<string, number>, key: string, by = 1) {
  map[key] = (map[key] ?? 0) + by;
}

/** Everything counted about one phase. */
export class PhaseTally {
  requests = 0;
  rows = 0;
  batches = 0;
  /** HTTP status (or "error" for no answer) -> requests. */
  readonly responses: Record<string, number> = {};
  acceptedRows = 0;
  readonly sent: RowsTally;
  readonly accepted: RowsTally;
  /** attribute -> value -> rows sent with it ("(none)" when a batch left it out). */
  readonly attributes: Record<string, Record<string, number>> = {};
  /** Truth over every row sent: label -> rows, and the mean probability of the positive label. */
  readonly trueLabels: Record<string, number> = {};
  probabilitySum = 0;
  probabilityRows = 0;
  /** Labels and outcomes that went out, and how the server answered them. */
  readonly labels = {
    sent: 0,
    accepted: 0,
    failed: 0,
    dropped: 0,
    byLabel: {} as Record<string, number>,
  };
  readonly outcomes: Record<
    string,
    { sent: number; accepted: number; failed: number; sum: number }
  > = {};

  private readonly attributeNames: readonly string[];

  constructor(schema: Record<string, FeatureSchema>, attributeNames: readonly string[]) {
    this.attributeNames = attributeNames;
    this.sent = new RowsTally(schema);
    this.accepted = new RowsTally(schema);
    for (const name of attributeNames) this.attributes[name] = {};
  }

  addSent(request: GeneratedRequest) {
    this.requests++;
    this.rows += request.rows.length;
    if (request.rows.length > 1 || Array.isArray(request.body.inputs)) this.batches++;
    for (const row of request.rows) {
      this.sent.add(row.inputs);
      for (const name of this.attributeNames) {
        increment(
          this.attributes[name] as Record<string, number>,
          request.body.attributes[name] ?? "(none)",
        );
      }
      if (row.truth) {
        increment(this.trueLabels, String(row.truth.label));
        if (row.truth.probability !== undefined) {
          this.probabilitySum += row.truth.probability;
          this.probabilityRows++;
        }
      }
    }
  }

  addResponse(request: GeneratedRequest, status: number | "error") {
    increment(this.responses, String(status));
    if (typeof status === "number" && status >= 200 && status < 300) {
      this.acceptedRows += request.rows.length;
      for (const row of request.rows) this.accepted.add(row.inputs);
    }
  }

  summary(options: { accepted: boolean }) {
    const proportions = (counts: Record<string, number>) => {
      const total = Object.values(counts).reduce((a, b) => a + b, 0);
      return Object.fromEntries(
        Object.entries(counts)
          .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
          .map(([k, v]) => [k, round(v / total)]),
      );
    };
    const labelRows = Object.values(this.trueLabels).reduce((a, b) => a + b, 0);
    return {
      sent: { requests: this.requests, rows: this.rows, batches: this.batches },
      ...(options.accepted ? { responses: this.responses, acceptedRows: this.acceptedRows } : {}),
      features: this.sent.summary(),
      ...(options.accepted ? { acceptedFeatures: this.accepted.summary() } : {}),
      attributes: Object.fromEntries(
        Object.entries(this.attributes).map(([name, counts]) => [name, proportions(counts)]),
      ),
      truth: {
        rows: labelRows,
        labels: labelRows === 0 ? {} : proportions(this.trueLabels),
        ...(this.probabilityRows > 0
          ? { meanProbability: round(this.probabilitySum / this.probabilityRows) }
          : {}),
      },
      ...(options.accepted
        ? {
            labels: this.labels,
            outcomes: Object.fromEntries(
              Object.entries(this.outcomes).map(([kpi, o]) => [
                kpi,
                { ...o, sum: round(o.sum, 2) },
              ]),
            ),
          }
        : {}),
    };
  }
}
