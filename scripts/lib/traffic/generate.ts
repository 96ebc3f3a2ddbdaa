// The requests of a run, each a pure function of (profile, options, index): the same seed gives
// the same bodies, labels and outcomes whatever the server answers and however fast. Pure.
//
// Each request draws from three streams seeded by (seed, index): its shape and base feature
// values, the drift changes, and the truth (labels, label decisions, outcomes). So a drift
// leaves every other feature, and every request before it starts, exactly as without it.
import {
  applyDrift,
  type Corruption,
  type Drift,
  type Phase,
  phaseOf,
  planPhases,
  sentRow,
} from "./drift.ts";
import type { Value } from "./expression.ts";
import { customerAttributes, type ResolvedProfile, type Row, type TruthDraw } from "./profile.ts";
import { mixSeed, mulberry32, uniformInt, weightedIndex } from "./random.ts";

export interface GeneratorOptions {
  seed: number;
  /** Requests per second: planned send time of request i is i / rate. */
  rate: number;
  /** Planned requests; null: until stopped. */
  total: number | null;
  /** Share of requests that are batches of 2..batchMax rows. */
  batchRate: number;
  batchMax: number;
  /** Share of accepted predictions whose label (and outcomes) are sent. */
  labelRate: number;
  /** Seconds between a prediction's answer and its label: uniform in [min, max]. */
  labelDelay: { min: number; max: number };
  drifts: readonly Drift[];
}

export interface PredictBody {
  inputs: Record<string, Value> | Record<string, Value>[];
  key: string;
  attributes: Record<string, string>;
}

export interface GeneratedRow {
  /** The features as sent. */
  inputs: Record<string, Value>;
  /** Features sent null, left out or out of range. */
  corrupted: Record<string, Corruption>;
  /** This row's segment attributes (a batch sends only those all its rows share). */
  attributes: Record<string, string>;
  /** The true label (null: the profile has no true model). */
  truth: TruthDraw | null;
  /** Whether the label and outcomes go out if the prediction is accepted, and when. */
  label: { send: boolean; delaySeconds: number };
  outcomes: { kpi: string; value: number }[];
}

export interface GeneratedRequest {
  index: number;
  /** Planned send time, seconds from the start. */
  plannedSeconds: number;
  phase: number;
  customer: number;
  body: PredictBody;
  rows: GeneratedRow[];
}

export interface Generator {
  phases: Phase[];
  request(index: number): GeneratedRequest;
}

const STREAM_SHAPE = 0;
const STREAM_DRIFT = 1;
const STREAM_TRUTH = 2;

export function customerKey(customer: number): string {
  return `cust-${String(customer).padStart(6, "0")}`;
}

export function createGenerator(profile: ResolvedProfile, options: GeneratorOptions): Generator {
  const phases = planPhases(options.drifts, options.rate, options.total);
  const pool = customerAttributes(profile.attributes, profile.customers, options.seed);
  const requestScoped = profile.attributes.filter((a) => a.kind === "request");
  const bands = profile.attributes.filter((a) => a.kind === "band");
  const seed = options.seed >>> 0;

  const request = (index: number): GeneratedRequest => {
    const shape = mulberry32(mixSeed(seed, index, STREAM_SHAPE));
    const driftStream = mulberry32(mixSeed(seed, index, STREAM_DRIFT));
    const truthStream = mulberry32(mixSeed(seed, index, STREAM_TRUTH));
    const phase = phaseOf(phases, index);
    const active = phase.drifts.map((i) => options.drifts[i] as Drift);

    const batch = options.batchMax >= 2 && shape() < options.batchRate;
    const count = batch ? uniformInt(shape, 2, options.batchMax) : 1;
    const customer = Math.floor(shape() * profile.customers);
    const shared: Record<string, string> = { ...pool[customer] };
    for (const attribute of requestScoped)
      shared[attribute.name] = attribute.values[weightedIndex(shape, attribute.weights)] ?? "";

    const rows: GeneratedRow[] = [];
    for (let r = 0; r < count; r++) {
      const base: Row = {};
      for (const feature of profile.features) base[feature.name] = feature.draw(shape, base);
      const drifted = applyDrift(base, active, profile, driftStream);
      const inputs = sentRow(drifted, profile.featureOrder);
      // Bands read the value sent: a client without the age cannot tell its band.
      const attributes = { ...shared };
      for (const band of bands) {
        const value = inputs[band.feature as string];
        if (typeof value === "number") attributes[band.name] = band.bandOf?.(value) ?? "";
      }
      // The truth sees the true values (drifted, not corrupted), and the true bands.
      const trueAttributes = { ...shared };
      for (const band of bands) {
        const value = drifted.values[band.feature as string];
        if (typeof value === "number") trueAttributes[band.name] = band.bandOf?.(value) ?? "";
      }
      const send = truthStream() < options.labelRate;
      const { min, max } = options.labelDelay;
      const delaySeconds = min + (max - min) * truthStream();
      const truth = profile.truth
        ? profile.truth.draw(drifted.values, trueAttributes, truthStream)
        : null;
      const outcomes: GeneratedRow["outcomes"] = [];
      if (truth) {
        for (const outcome of profile.outcomes) {
          const value = outcome.value(drifted.values, trueAttributes, truth.label, truthStream);
          if (value !== null) outcomes.push({ kpi: outcome.spec.kpi, value });
        }
      }
      rows.push({
        inputs,
        corrupted: Object.fromEntries([...drifted.corrupted].map(([name, c]) => [name, c.kind])),
        attributes,
        truth,
        label: { send: send && truth !== null, delaySeconds },
        outcomes,
      });
    }
    // A batch carries one set of attributes: those true of every row.
    const attributes: Record<string, string> = {};
    for (const [name, value] of Object.entries(rows[0]?.attributes ?? {})) {
      if (rows.every((row) => row.attributes[name] === value)) attributes[name] = value;
    }
    return {
      index,
      plannedSeconds: index / options.rate,
      phase: phase.index,
      customer,
      body: {
        inputs: batch ? rows.map((row) => row.inputs) : (rows[0]?.inputs ?? {}),
        key: customerKey(customer),
        attributes,
      },
      rows,
    };
  };

  return { phases, request };
}
