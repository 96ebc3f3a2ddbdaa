// Drift on demand: a schedule of changes to single features, the phases it cuts the run into,
// and how an active change alters a row. Pure: no I/O.
//
//   --drift FEATURE:KIND=AMOUNT[@START[..END]]
//
//   shift=1.5sd | shift=-5000   add standard deviations (of the reference sample) or units
//   scale=1.2                   multiply
//   spread=2                    stretch around the reference mean
//   rate=0.8 | rate=true:0.8    boolean: P(true) becomes 0.8
//   rate=south:0.6              categorical: that value's share becomes 0.6, the others keep
//                               their relative weights
//   missing=0.1                 10% of rows send null
//   omit=0.1                    10% of rows leave the feature out
//   out_of_range=0.05           5% of rows send a value outside the schema (beyond minimum or
//                               maximum, a value not in the enum, a string over maxLength)
//
//   START, END: 60s, 1.5m, 500ms, 2h, a bare number of seconds, or 500req (a request index).
//   Times are the requests' planned send times (index / rate), so phases do not depend on how
//   fast the server answers. END is exclusive; without it the change lasts to the end.
import type { Value } from "./expression.ts";
import type { ResolvedFeature, ResolvedProfile, Row } from "./profile.ts";
import type { Random } from "./random.ts";
import { weightedIndex } from "./random.ts";
import { parseDuration, UsageError } from "./usage.ts";

export const driftKinds = [
  "shift",
  "scale",
  "spread",
  "rate",
  "missing",
  "omit",
  "out_of_range",
] as const;
export type DriftKind = (typeof driftKinds)[number];

export type DriftPoint = { seconds: number } | { request: number };

export interface Drift {
  /** As given on the command line. */
  spec: string;
  feature: string;
  kind: DriftKind;
  amount: number;
  /** shift only: the amount is in reference standard deviations. */
  unit?: "sd";
  /** rate only: the category (or "true"/"false") whose share changes. */
  value?: string;
  start: DriftPoint;
  end?: DriftPoint;
}

const number = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?$/i;

function fail(spec: string, message: string): never {
  throw new UsageError(`--drift "${spec}": ${message}`);
}

function parsePoint(spec: string, text: string, what: string): DriftPoint {
  const request = /^(\d+)req$/.exec(text);
  if (request) return { request: Number(request[1]) };
  try {
    return { seconds: parseDuration(text, "") };
  } catch {
    return fail(spec, `${what} '${text}' is not a time (60s, 1.5m, 500ms) or a request (500req)`);
  }
}

/** Parses one --drift value (syntax only; checkDrift compares it with the profile). */
export function parseDrift(spec: string): Drift {
  const colon = spec.indexOf(":");
  if (colon <= 0)
    fail(spec, "expected FEATURE:KIND=AMOUNT[@START[..END]], e.g. income:shift=1.5sd@60s");
  const feature = spec.slice(0, colon);
  let rest = spec.slice(colon + 1);
  let start: DriftPoint = { seconds: 0 };
  let end: DriftPoint | undefined;
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    const when = rest.slice(at + 1);
    rest = rest.slice(0, at);
    const [from, to, ...extra] = when.split("..");
    if (extra.length > 0 || from === undefined || from === "")
      fail(spec, `'@${when}' is not START or START..END`);
    start = parsePoint(spec, from, "start");
    if (to !== undefined) end = parsePoint(spec, to, "end");
  }
  const equals = rest.indexOf("=");
  if (equals <= 0) fail(spec, `expected KIND=AMOUNT after '${feature}:'`);
  const kind = rest.slice(0, equals);
  const amountText = rest.slice(equals + 1);
  if (!(driftKinds as readonly string[]).includes(kind))
    fail(spec, `unknown kind '${kind}' (${driftKinds.join(", ")})`);
  const drift: Drift = { spec, feature, kind: kind as DriftKind, amount: 0, start };
  if (end) drift.end = end;
  const fraction = (text: string, what: string) => {
    if (!number.test(text)) fail(spec, `${what} '${text}' is not a number`);
    const value = Number(text);
    if (value < 0 || value > 1) fail(spec, `${what} must be between 0 and 1, got ${text}`);
    return value;
  };
  switch (drift.kind) {
    case "shift": {
      const match = /^(.*?)(sd)?$/i.exec(amountText);
      const value = match?.[1] ?? "";
      if (!number.test(value)) fail(spec, `shift '${amountText}' is not a number (1.5sd, -5000)`);
      drift.amount = Number(value);
      if (match?.[2]) drift.unit = "sd";
      break;
    }
    case "scale":
    case "spread": {
      if (!number.test(amountText) || !(Number(amountText) > 0))
        fail(spec, `${kind} '${amountText}' must be a positive number`);
      drift.amount = Number(amountText);
      break;
    }
    case "rate": {
      const split = amountText.lastIndexOf(":");
      if (split >= 0) {
        drift.value = amountText.slice(0, split);
        if (drift.value === "") fail(spec, "rate=VALUE:P needs a value before ':'");
      }
      drift.amount = fraction(amountText.slice(split + 1), "rate");
      break;
    }
    default:
      drift.amount = fraction(amountText, kind);
  }
  if (end && "seconds" in end && "seconds" in start && end.seconds <= start.seconds)
    fail(spec, "ends before it starts");
  if (end && "request" in end && "request" in start && end.request <= start.request)
    fail(spec, "ends before it starts");
  return drift;
}

function isNumeric(feature: ResolvedFeature): boolean {
  return feature.reference.kind === "numeric";
}

/** Throws a UsageError when the change does not fit the feature it names. */
export function checkDrift(drift: Drift, profile: ResolvedProfile): void {
  const feature = profile.byName.get(drift.feature);
  if (!feature)
    fail(
      drift.spec,
      `'${drift.feature}' is not a feature of '${profile.model}' (${profile.featureOrder.join(", ")})`,
    );
  const schema = feature.schema;
  switch (drift.kind) {
    case "shift":
    case "scale":
    case "spread":
      if (!isNumeric(feature))
        fail(
          drift.spec,
          `${drift.kind} needs a numeric feature; '${feature.name}' is ${schema.type}${"enum" in schema && schema.enum ? " with an enum" : ""}`,
        );
      break;
    case "rate": {
      if (schema.type === "boolean") {
        if (drift.value !== undefined && drift.value !== "true" && drift.value !== "false")
          fail(drift.spec, `'${feature.name}' is boolean: rate=P or rate=true:P / rate=false:P`);
        break;
      }
      if (isNumeric(feature))
        fail(
          drift.spec,
          `rate needs a boolean or categorical feature; '${feature.name}' is numeric`,
        );
      const values = categoriesOf(feature).values.map(String);
      if (drift.value === undefined)
        fail(
          drift.spec,
          `'${feature.name}' is categorical: rate=VALUE:P (values: ${values.join(", ")})`,
        );
      if (!values.includes(drift.value))
        fail(
          drift.spec,
          `'${drift.value}' is not a value of '${feature.name}' (${values.join(", ")})`,
        );
      break;
    }
    case "out_of_range": {
      const bounded =
        schema.type === "string"
          ? schema.enum !== undefined || schema.maxLength !== undefined
          : schema.type !== "boolean" &&
            (schema.minimum !== undefined ||
              schema.maximum !== undefined ||
              schema.enum !== undefined);
      if (!bounded)
        fail(
          drift.spec,
          `'${feature.name}' has no range to leave (no minimum, maximum, enum or maxLength in its schema); use missing or omit`,
        );
      break;
    }
    default:
      break;
  }
}

/** A boolean or categorical feature's values and weights (the reference sample's if drawn by expression). */
function categoriesOf(feature: ResolvedFeature): {
  values: (string | number | boolean)[];
  weights: number[];
} {
  if (feature.categories) return feature.categories;
  if (feature.reference.kind === "categorical") {
    const entries = Object.entries(feature.reference.proportions);
    const parse = (key: string): string | number | boolean =>
      feature.schema.type === "boolean"
        ? key === "true"
        : feature.schema.type === "string"
          ? key
          : Number(key);
    return { values: entries.map(([k]) => parse(k)), weights: entries.map(([, w]) => w) };
  }
  return { values: [], weights: [] };
}

/** Weights after a rate change: the value's share becomes p, the others keep their proportions. */
export function reweight(
  categories: { values: (string | number | boolean)[]; weights: number[] },
  value: string,
  p: number,
): { values: (string | number | boolean)[]; weights: number[] } {
  const values = [...categories.values];
  const total = categories.weights.reduce((a, b) => a + b, 0);
  let weights = categories.weights.map((w) => w / total);
  let target = values.findIndex((v) => String(v) === value);
  if (target < 0) {
    values.push(value);
    weights.push(0);
    target = values.length - 1;
  }
  const others = 1 - (weights[target] ?? 0);
  weights = weights.map((w, i) =>
    i === target ? p : others > 0 ? (w / others) * (1 - p) : (1 - p) / (values.length - 1),
  );
  return { values, weights };
}

// ---------------------------------------------------------------- phases

export interface Phase {
  index: number;
  /** Indices into the drift schedule of the changes active in this phase. */
  drifts: number[];
  /** "baseline", or the active changes' specs. */
  label: string;
  firstRequest: number;
  /** Exclusive; null when the run has no planned end. */
  endRequest: number | null;
  startSeconds: number;
  endSeconds: number | null;
}

/** The first request whose planned send time (index / rate) is at or after the point. */
export function requestIndexAt(point: DriftPoint, rate: number): number {
  return "request" in point ? point.request : Math.max(0, Math.ceil(point.seconds * rate - 1e-9));
}

/**
 * Cuts requests 0..total into phases with the same active changes. `total` null: open-ended.
 */
export function planPhases(drifts: readonly Drift[], rate: number, total: number | null): Phase[] {
  const starts = drifts.map((d) => requestIndexAt(d.start, rate));
  const ends = drifts.map((d) => (d.end ? requestIndexAt(d.end, rate) : null));
  for (const [i, drift] of drifts.entries()) {
    const end = ends[i];
    if (end !== null && end !== undefined && end <= (starts[i] ?? 0))
      fail(
        drift.spec,
        `ends (request ${end}) before it starts (request ${starts[i]}) at this --rate`,
      );
  }
  const cuts = new Set<number>([0]);
  for (const point of [...starts, ...ends]) {
    if (point !== null && point !== undefined && (total === null || point < total)) cuts.add(point);
  }
  const sorted = [...cuts].sort((a, b) => a - b);
  const phases: Phase[] = [];
  for (const [k, first] of sorted.entries()) {
    const next = sorted[k + 1] ?? total;
    const active = drifts.flatMap((_, i) => {
      const start = starts[i] ?? 0;
      const end = ends[i];
      return start <= first && (end === null || end === undefined || first < end) ? [i] : [];
    });
    const previous = phases[phases.length - 1];
    if (previous && previous.drifts.join() === active.join()) {
      previous.endRequest = next;
      previous.endSeconds = next === null ? null : next / rate;
      continue;
    }
    phases.push({
      index: phases.length,
      drifts: active,
      label: active.length === 0 ? "baseline" : active.map((i) => drifts[i]?.spec).join(" + "),
      firstRequest: first,
      endRequest: next,
      startSeconds: first / rate,
      endSeconds: next === null ? null : next / rate,
    });
  }
  return phases;
}

export function phaseOf(phases: readonly Phase[], request: number): Phase {
  let found = phases[0] as Phase;
  for (const phase of phases) if (phase.firstRequest <= request) found = phase;
  return found;
}

// ---------------------------------------------------------------- applying changes

export type Corruption = "missing" | "omit" | "out_of_range";

export interface DriftedRow {
  /** Values after shifts, scales and rate changes: what the true model sees. */
  values: Row;
  /** Features whose sent value is null, left out or out of range, and the value sent. */
  corrupted: Map<string, { kind: Corruption; sent?: Value }>;
}

/**
 * Applies the active changes to a freshly drawn row, drawing only from `random` (the drift
 * stream), so the base values of every feature stay those of a run without drift.
 */
export function applyDrift(
  row: Row,
  active: readonly Drift[],
  profile: ResolvedProfile,
  random: Random,
): DriftedRow {
  const values: Row = { ...row };
  const rates = new Map<string, Drift[]>();
  for (const drift of active) {
    const feature = profile.byName.get(drift.feature);
    if (!feature) continue;
    if (drift.kind === "rate") {
      rates.set(drift.feature, [...(rates.get(drift.feature) ?? []), drift]);
      continue;
    }
    if (drift.kind !== "shift" && drift.kind !== "scale" && drift.kind !== "spread") continue;
    const x = values[drift.feature];
    if (typeof x !== "number" || feature.reference.kind !== "numeric") continue;
    const { mean, sd } = feature.reference;
    const moved =
      drift.kind === "shift"
        ? x + drift.amount * (drift.unit === "sd" ? sd : 1)
        : drift.kind === "scale"
          ? x * drift.amount
          : mean + (x - mean) * drift.amount;
    values[drift.feature] = feature.finish(moved, values);
  }
  // Several rate changes to one feature compose; the value is drawn once from the result.
  for (const [name, drifts] of rates) {
    const feature = profile.byName.get(name) as ResolvedFeature;
    let categories = categoriesOf(feature);
    for (const drift of drifts) {
      const value =
        feature.schema.type === "boolean" ? (drift.value ?? "true") : (drift.value ?? "");
      categories = reweight(categories, value, drift.amount);
    }
    const drawn = categories.values[weightedIndex(random, categories.weights)];
    values[name] =
      feature.schema.type === "boolean" ? drawn === true || drawn === "true" : (drawn as Value);
  }
  const corrupted: DriftedRow["corrupted"] = new Map();
  for (const drift of active) {
    if (drift.kind !== "missing" && drift.kind !== "omit" && drift.kind !== "out_of_range")
      continue;
    // Three draws whether it fires or not: later rows do not depend on earlier outcomes.
    const fires = random() < drift.amount;
    const side = random();
    const size = random();
    if (!fires || corrupted.has(drift.feature)) continue;
    if (drift.kind === "out_of_range") {
      const feature = profile.byName.get(drift.feature) as ResolvedFeature;
      corrupted.set(drift.feature, {
        kind: drift.kind,
        sent: outOfRangeValue(feature, side, size),
      });
    } else {
      corrupted.set(drift.feature, { kind: drift.kind });
    }
  }
  return { values, corrupted };
}

/** The row as sent, in the schema's order: corrupted features null, left out or out of range. */
export function sentRow(drifted: DriftedRow, order: readonly string[]): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const name of order) {
    const corruption = drifted.corrupted.get(name);
    if (corruption?.kind === "omit") continue;
    out[name] = corruption ? (corruption.sent ?? null) : (drifted.values[name] ?? null);
  }
  return out;
}

/** A value just outside the schema: beyond the minimum or maximum, off the enum, too long. */
export function outOfRangeValue(feature: ResolvedFeature, side: number, size: number): Value {
  const schema = feature.schema;
  if (schema.type === "string") {
    if (schema.enum) {
      let candidate = "other";
      for (let k = 2; schema.enum.includes(candidate); k++) candidate = `other-${k}`;
      return candidate;
    }
    return "x".repeat((schema.maxLength ?? 0) + 1);
  }
  if (schema.type === "boolean") return null;
  if (schema.enum && schema.minimum === undefined && schema.maximum === undefined) {
    return Math.max(...schema.enum) + 1;
  }
  const { minimum: min, maximum: max } = schema;
  const span =
    min !== undefined && max !== undefined && max > min
      ? max - min
      : Math.max(Math.abs(min ?? max ?? 1), 1);
  // 5% to 50% of the range beyond the bound.
  const distance = span * (0.05 + 0.45 * size);
  const above = max !== undefined && (min === undefined || side >= 0.5);
  if (schema.type === "integer") {
    const step = Math.max(1, Math.round(distance));
    return above ? Math.floor(max as number) + step : Math.ceil(min as number) - step;
  }
  const value = above ? (max as number) + distance : (min as number) - distance;
  return Math.round(value * 1e4) / 1e4;
}
