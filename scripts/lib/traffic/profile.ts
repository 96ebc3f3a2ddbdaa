// A traffic profile resolved against a model's input schema: how each feature is drawn and
// finished (clipped, rounded), the segment attributes, the true label model and the business
// outcomes. Features the profile does not name get a generic distribution derived from the
// schema. Pure: no I/O.
import { builtinProfiles } from "./builtin.ts";
import { compileParameter, type Expression, ExpressionError, type Value } from "./expression.ts";
import type {
  Attribute,
  Distribution,
  FeatureSchema,
  ModelInfo,
  Outcome,
  ProfileFile,
  SegmentEffect,
  Truth,
} from "./format.ts";
import {
  bernoulli,
  beta,
  expit,
  exponential,
  hashString,
  lognormal,
  mulberry32,
  normal,
  poisson,
  type Random,
  shuffle,
  uniform,
  uniformInt,
  weightedIndex,
} from "./random.ts";

/** One row of features as it is built: drawn values, by feature name. */
export type Row = Record<string, Value>;

export type ReferenceStats =
  | { kind: "numeric"; mean: number; sd: number }
  | { kind: "categorical"; proportions: Record<string, number> };

export interface ResolvedFeature {
  name: string;
  schema: FeatureSchema;
  spec: Distribution;
  source: "profile" | "generic";
  /** Features its parameters read: they are drawn first. */
  dependsOn: readonly string[];
  /** A finished value (clipped, rounded) drawn from its distribution. */
  draw(random: Random, row: Row): number | string | boolean;
  /** Clips and rounds a numeric value as drawn values are (drift goes through this too). */
  finish(value: number, row: Row): number;
  /** Values and weights of a categorical or Bernoulli feature; null for numeric ones. */
  categories: { values: (string | number | boolean)[]; weights: number[] } | null;
  /** Mean and standard deviation (numeric) or proportions, from the reference sample. */
  reference: ReferenceStats;
}

export interface ResolvedAttribute {
  name: string;
  kind: "customer" | "request" | "band";
  values: string[];
  weights: number[];
  /** For a band attribute: the feature it is read from. */
  feature?: string;
  bandOf?: (value: number) => string;
}

export interface TruthDraw {
  label: string | number;
  /** Logistic: the probability of the positive label. */
  probability?: number;
  /** Linear: the expected value before noise. */
  expected?: number;
}

export interface ResolvedTruth {
  kind: Truth["kind"];
  /** The labels it can give (empty for a regression's numbers). */
  labels: (string | number)[];
  positive?: string | number;
  /** Uses exactly the same number of uniforms for every row. */
  draw(row: Row, attributes: Record<string, string>, random: Random): TruthDraw;
  /** The solved or given intercept (logistic). */
  intercept?: number;
  segments: SegmentEffect[];
}

export interface ResolvedOutcome {
  spec: Outcome;
  /** The value for one labelled row, or null when the outcome does not apply. */
  value(
    row: Row,
    attributes: Record<string, string>,
    label: string | number,
    random: Random,
  ): number | null;
}

export interface ResolvedProfile {
  model: string;
  /** Where it came from: builtin:<name>, a file name, or "generic". */
  source: string;
  description: string | undefined;
  schema: ModelInfo["inputSchema"];
  /** In drawing order (dependencies first). */
  features: ResolvedFeature[];
  byName: Map<string, ResolvedFeature>;
  /** The schema's order, in which inputs are sent. */
  featureOrder: string[];
  attributes: ResolvedAttribute[];
  customers: number;
  truth: ResolvedTruth | null;
  outcomes: ResolvedOutcome[];
  /** The whole profile as data, for the manifest and --print-profile. */
  describe(): Record<string, unknown>;
}

export class ProfileError extends Error {}

/** Rows in the reference sample that drift amounts (in standard deviations) and the base rate use. */
export const REFERENCE_ROWS = 20_000;
const REFERENCE_SEED = 0x5eed_0001;
/** Seeds for the generic true model's coefficients (with the model's name). */
const GENERIC_TRUTH_SEED = "airlock-traffic-truth";

/** The builtin profile of this model, merged with a file's profile (which may extend another). */
export function profileFor(
  model: string,
  file: ProfileFile | undefined,
): { profile: ProfileFile; source: string } {
  if (!file) {
    const builtin = builtinProfiles[model];
    return builtin
      ? { profile: builtin, source: `builtin:${model}` }
      : { profile: {}, source: "generic" };
  }
  if (file.extends === undefined) return { profile: file, source: "file" };
  const base = builtinProfiles[file.extends];
  if (!base) {
    throw new ProfileError(
      `extends '${file.extends}': no builtin profile of that name (builtin: ${Object.keys(builtinProfiles).join(", ")})`,
    );
  }
  return {
    profile: {
      ...base,
      ...file,
      features: { ...base.features, ...file.features },
      attributes: { ...base.attributes, ...file.attributes },
      truth: file.truth !== undefined ? file.truth : base.truth,
      outcomes: file.outcomes ?? base.outcomes,
    },
    source: `file extending builtin:${file.extends}`,
  };
}

export interface ResolveOptions {
  /** How the profile's origin reads in the manifest. */
  source?: string;
  /** Replaces the truth model's segment effects (an empty list removes them). */
  segments?: SegmentEffect[] | undefined;
}

export function resolveProfile(
  model: ModelInfo,
  profile: ProfileFile,
  options: ResolveOptions = {},
): ResolvedProfile {
  const schema = model.inputSchema;
  const names = Object.keys(schema.properties);
  for (const name of Object.keys(profile.features ?? {})) {
    if (!(name in schema.properties))
      throw new ProfileError(
        `feature '${name}' is not in the input schema of '${model.name}' (${names.join(", ")})`,
      );
  }
  const specs = new Map<string, { spec: Distribution; source: "profile" | "generic" }>();
  for (const name of names) {
    const given = profile.features?.[name];
    const featureSchema = schema.properties[name] as FeatureSchema;
    specs.set(
      name,
      given
        ? { spec: given, source: "profile" }
        : { spec: genericDistribution(featureSchema), source: "generic" },
    );
  }
  const drawers = new Map<string, Omit<ResolvedFeature, "reference">>();
  for (const name of names) {
    const { spec, source } = specs.get(name) as {
      spec: Distribution;
      source: "profile" | "generic";
    };
    drawers.set(
      name,
      featureDrawer(name, schema.properties[name] as FeatureSchema, spec, source, names),
    );
  }
  const order = drawingOrder(drawers);

  const attributes = resolveAttributes(profile.attributes ?? {}, drawers);
  const customers = profile.customers ?? 1000;

  // The reference sample: baseline rows with their attributes, from a fixed seed, so that
  // "1.5 standard deviations" and a base rate mean the same in every run.
  const random = mulberry32(REFERENCE_SEED);
  const referenceRows: { row: Row; attributes: Record<string, string> }[] = [];
  for (let i = 0; i < REFERENCE_ROWS; i++) {
    const row: Row = {};
    for (const name of order) row[name] = (drawers.get(name) as ResolvedFeature).draw(random, row);
    referenceRows.push({ row, attributes: drawAttributes(attributes, row, random) });
  }
  const features = order.map((name) => {
    const drawer = drawers.get(name) as Omit<ResolvedFeature, "reference">;
    return { ...drawer, reference: referenceStats(drawer, referenceRows) };
  });
  const byName = new Map(features.map((f) => [f.name, f]));

  let truthSpec = profile.truth === undefined ? genericTruth(model, byName) : profile.truth;
  if (options.segments !== undefined) {
    if (!truthSpec || truthSpec.kind === "multinomial") {
      throw new ProfileError(
        `segment effects need a logistic or linear truth model; this profile's is ${truthSpec ? truthSpec.kind : "none"}`,
      );
    }
    truthSpec = { ...truthSpec, segments: options.segments };
  }
  const truth = truthSpec
    ? resolveTruth(truthSpec, model, byName, attributes, referenceRows)
    : null;
  const outcomes = (profile.outcomes ?? []).map((outcome, i) =>
    resolveOutcome(outcome, i, truth, byName, attributes),
  );

  const source = options.source ?? "profile";
  return {
    model: model.name,
    source,
    description: profile.description,
    schema,
    features,
    byName,
    featureOrder: names,
    attributes,
    customers,
    truth,
    outcomes,
    describe: () => ({
      source,
      ...(profile.description ? { description: profile.description } : {}),
      customers,
      features: Object.fromEntries(
        names.map((name) => {
          const f = byName.get(name) as ResolvedFeature;
          return [name, { ...f.spec, source: f.source, reference: roundStats(f.reference) }];
        }),
      ),
      attributes: profile.attributes ?? {},
      truth: truthSpec
        ? {
            ...truthSpec,
            ...(truth?.intercept !== undefined ? { intercept: round(truth.intercept, 6) } : {}),
          }
        : null,
      outcomes: profile.outcomes ?? [],
      referenceRows: REFERENCE_ROWS,
    }),
  };
}

// ---------------------------------------------------------------- features

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function roundStats(stats: ReferenceStats): ReferenceStats {
  if (stats.kind === "numeric")
    return { kind: "numeric", mean: round(stats.mean, 6), sd: round(stats.sd, 6) };
  return {
    kind: "categorical",
    proportions: Object.fromEntries(
      Object.entries(stats.proportions).map(([k, v]) => [k, round(v, 6)]),
    ),
  };
}

/** Skewed weights for n categories (1, 1/2, 1/3, ...), so that one category dominates. */
function zipfWeights(n: number): number[] {
  return Array.from({ length: n }, (_, k) => 1 / (k + 1));
}

/** What a feature looks like when the profile does not say: plausible within the schema. */
export function genericDistribution(schema: FeatureSchema): Distribution {
  switch (schema.type) {
    case "boolean":
      return { kind: "bernoulli", p: 0.3 };
    case "string": {
      // Free text: five short values, which fit any maxLength.
      const values = schema.enum ?? ["a", "b", "c", "d", "e"];
      const weights = zipfWeights(values.length);
      return {
        kind: "categorical",
        weights: Object.fromEntries(values.map((v, i) => [v, weights[i] ?? 0])),
      };
    }
    case "number":
    case "integer": {
      const decimals = schema.type === "number" ? { decimals: 4 } : {};
      if (schema.enum) {
        const weights = zipfWeights(schema.enum.length);
        return {
          kind: "categorical",
          weights: Object.fromEntries(schema.enum.map((v, i) => [String(v), weights[i] ?? 0])),
        };
      }
      const { minimum: min, maximum: max } = schema;
      if (min !== undefined && max !== undefined) {
        if (min === max) return { kind: "constant", value: min };
        return { kind: "beta", alpha: 2, beta: 2, low: min, high: max, ...decimals };
      }
      if (min !== undefined)
        return { kind: "lognormal", mu: Math.log(10), sigma: 1, offset: min, ...decimals };
      if (max !== undefined) return { kind: "normal", mean: max - 20, sd: 10, ...decimals };
      return schema.type === "integer"
        ? { kind: "poisson", lambda: 3 }
        : { kind: "normal", mean: 0, sd: 1, decimals: 4 };
    }
  }
}

const distributionMakes: Record<Distribution["kind"], "number" | "boolean" | "category"> = {
  normal: "number",
  lognormal: "number",
  beta: "number",
  uniform: "number",
  uniformInt: "number",
  exponential: "number",
  poisson: "number",
  bernoulli: "boolean",
  categorical: "category",
  constant: "category",
};

function featureDrawer(
  name: string,
  schema: FeatureSchema,
  spec: Distribution,
  source: "profile" | "generic",
  featureNames: readonly string[],
): Omit<ResolvedFeature, "reference"> {
  const where = `feature '${name}'`;
  const fail = (message: string): never => {
    throw new ProfileError(`${where}: ${message}`);
  };
  const makes = distributionMakes[spec.kind];
  const compile = (key: string, parameter: number | string | undefined): Expression | undefined => {
    if (parameter === undefined) return undefined;
    try {
      return compileParameter(parameter);
    } catch (error) {
      if (error instanceof ExpressionError) fail(`${key}: ${error.message}`);
      throw error;
    }
  };
  const parameters = new Map<string, Expression>();
  for (const [key, value] of Object.entries(spec)) {
    if (key === "kind" || key === "description" || key === "decimals") continue;
    if (key === "weights" || key === "value") continue;
    const compiled = compile(key, value as number | string);
    if (compiled) parameters.set(key, compiled);
  }
  const dependsOn: string[] = [];
  for (const [key, expression] of parameters) {
    for (const dependency of expression.names) {
      if (!featureNames.includes(dependency))
        fail(`${key} reads '${dependency}', which is not a feature`);
      if (dependency === name) fail(`${key} reads the feature itself`);
      if (!dependsOn.includes(dependency)) dependsOn.push(dependency);
    }
  }
  const evaluate = (key: string, row: Row): number => {
    const expression = parameters.get(key);
    if (!expression) return Number.NaN;
    const value = expression.evaluate((n) => row[n]);
    if (!Number.isFinite(value)) {
      const inputs = Object.fromEntries(expression.names.map((n) => [n, row[n]]));
      fail(`${key} = ${expression.source} is ${value} for ${JSON.stringify(inputs)}`);
    }
    return value;
  };
  const optional = (key: string, row: Row, fallback: number) =>
    parameters.has(key) ? evaluate(key, row) : fallback;

  // Type checks: what the distribution makes must be what the schema takes.
  let categories: ResolvedFeature["categories"] = null;
  if (schema.type === "boolean") {
    if (spec.kind !== "bernoulli" && !(spec.kind === "constant" && typeof spec.value === "boolean"))
      fail(`is boolean: use a bernoulli (or a boolean constant), not ${spec.kind}`);
  } else if (makes === "boolean") {
    fail(`is ${schema.type}: a bernoulli makes booleans`);
  }
  if (spec.kind === "categorical" || spec.kind === "constant") {
    const raw =
      spec.kind === "categorical"
        ? Object.entries(spec.weights)
        : [[String(spec.value), 1] as [string, number]];
    const values = raw.map(([key]) => {
      if (schema.type === "string") {
        if (spec.kind === "constant" && typeof spec.value !== "string")
          fail("is a string: the constant must be a string");
        if (schema.enum && !schema.enum.includes(key))
          fail(`'${key}' is not one of the schema's values (${schema.enum.join(", ")})`);
        return key;
      }
      if (schema.type === "boolean") return spec.kind === "constant" ? spec.value : key;
      const number = Number(key);
      if (key.trim() === "" || !Number.isFinite(number)) fail(`'${key}' is not a number`);
      if (schema.type === "integer" && !Number.isInteger(number))
        fail(`'${key}' is not an integer`);
      if (schema.enum && !schema.enum.includes(number))
        fail(`${key} is not one of the schema's values (${schema.enum.join(", ")})`);
      if (schema.minimum !== undefined && number < schema.minimum)
        fail(`${key} is below the schema's minimum ${schema.minimum}`);
      if (schema.maximum !== undefined && number > schema.maximum)
        fail(`${key} is above the schema's maximum ${schema.maximum}`);
      return number;
    });
    categories = { values, weights: raw.map(([, w]) => w) };
  }
  if (makes === "number" && (schema.type === "string" || schema.type === "boolean"))
    fail(`is ${schema.type}: a ${spec.kind} distribution makes numbers`);
  if (makes === "number" && schema.type !== "string" && schema.type !== "boolean" && schema.enum)
    fail(`has an enum: use a categorical distribution over its values, not ${spec.kind}`);

  const decimals = "decimals" in spec ? spec.decimals : undefined;
  const finish = (value: number, row: Row): number => {
    if (schema.type !== "number" && schema.type !== "integer") return value;
    let low = schema.minimum ?? -Infinity;
    let high = schema.maximum ?? Infinity;
    if (parameters.has("min")) low = Math.max(low, evaluate("min", row));
    if (parameters.has("max")) high = Math.min(high, evaluate("max", row));
    if (schema.type === "integer") {
      low = Math.ceil(low);
      high = Math.floor(high);
    }
    let x = value;
    if (schema.type === "integer") x = Math.round(x);
    else if (decimals !== undefined) x = round(x, decimals);
    // A bound the profile sets tighter than the schema's wins; the schema's is never crossed.
    x = Math.min(high, Math.max(low, x));
    if (schema.minimum !== undefined && x < schema.minimum) x = schema.minimum;
    // -0 would be sent as 0 anyway; keep the summaries clean.
    return x === 0 ? 0 : x;
  };

  const drawRaw = (random: Random, row: Row): number | string | boolean => {
    switch (spec.kind) {
      case "normal":
        return normal(random, evaluate("mean", row), nonNegative("sd", evaluate("sd", row)));
      case "lognormal":
        return lognormal(random, evaluate("mu", row), nonNegative("sigma", evaluate("sigma", row)));
      case "beta": {
        const low = optional("low", row, 0);
        const high = optional("high", row, 1);
        return (
          low +
          (high - low) *
            beta(
              random,
              positive("alpha", evaluate("alpha", row)),
              positive("beta", evaluate("beta", row)),
            )
        );
      }
      case "uniform":
        return uniform(random, evaluate("low", row), evaluate("high", row));
      case "uniformInt":
        return uniformInt(random, evaluate("low", row), evaluate("high", row));
      case "exponential":
        return exponential(random, nonNegative("mean", evaluate("mean", row)));
      case "poisson":
        return poisson(random, nonNegative("lambda", evaluate("lambda", row)));
      case "bernoulli":
        return bernoulli(random, Math.min(1, Math.max(0, evaluate("p", row))));
      case "categorical": {
        const c = categories as NonNullable<ResolvedFeature["categories"]>;
        return c.values[weightedIndex(random, c.weights)] as string | number | boolean;
      }
      case "constant":
        return (categories as NonNullable<ResolvedFeature["categories"]>).values[0] as
          | string
          | number
          | boolean;
    }
  };
  function nonNegative(key: string, value: number): number {
    if (value < 0) fail(`${key} must not be negative, got ${value}`);
    return value;
  }
  function positive(key: string, value: number): number {
    if (value <= 0) fail(`${key} must be positive, got ${value}`);
    return value;
  }
  const offset = parameters.has("offset");

  return {
    name,
    schema,
    spec,
    source,
    dependsOn,
    categories:
      spec.kind === "bernoulli" && typeof spec.p === "number"
        ? { values: [true, false], weights: [spec.p, 1 - spec.p] }
        : categories,
    finish,
    draw: (random, row) => {
      const value = drawRaw(random, row);
      if (typeof value !== "number" || makes !== "number") return value;
      return finish(offset ? value + evaluate("offset", row) : value, row);
    },
  };
}

/** Dependencies first, otherwise the schema's order; a cycle is an error. */
function drawingOrder(drawers: Map<string, { dependsOn: readonly string[] }>): string[] {
  const order: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (name: string, path: string[]) => {
    if (state.get(name) === "done") return;
    if (state.get(name) === "visiting")
      throw new ProfileError(
        `features depend on each other in a cycle: ${[...path, name].join(" -> ")}`,
      );
    state.set(name, "visiting");
    for (const dependency of drawers.get(name)?.dependsOn ?? []) visit(dependency, [...path, name]);
    state.set(name, "done");
    order.push(name);
  };
  for (const name of drawers.keys()) visit(name, []);
  return order;
}

function referenceStats(
  feature: Omit<ResolvedFeature, "reference">,
  rows: readonly { row: Row }[],
): ReferenceStats {
  const numeric =
    (feature.schema.type === "number" || feature.schema.type === "integer") &&
    !feature.schema.enum &&
    feature.spec.kind !== "categorical";
  if (numeric) {
    let sum = 0;
    for (const { row } of rows) sum += row[feature.name] as number;
    const mean = sum / rows.length;
    let squares = 0;
    for (const { row } of rows) squares += ((row[feature.name] as number) - mean) ** 2;
    return { kind: "numeric", mean, sd: Math.sqrt(squares / (rows.length - 1)) };
  }
  const counts: Record<string, number> = {};
  for (const { row } of rows) {
    const key = String(row[feature.name]);
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return {
    kind: "categorical",
    proportions: Object.fromEntries(Object.entries(counts).map(([k, n]) => [k, n / rows.length])),
  };
}

// ---------------------------------------------------------------- attributes

function resolveAttributes(
  specs: Record<string, Attribute>,
  features: Map<string, { schema: FeatureSchema }>,
): ResolvedAttribute[] {
  return Object.entries(specs).map(([name, spec]) => {
    if ("weights" in spec) {
      const values = Object.keys(spec.weights);
      for (const value of values)
        if (value.length > 256)
          throw new ProfileError(`attribute '${name}': values are at most 256 characters`);
      return {
        name,
        kind: spec.scope ?? "request",
        values,
        weights: values.map((v) => spec.weights[v] ?? 0),
      };
    }
    const feature = features.get(spec.feature);
    if (!feature || (feature.schema.type !== "number" && feature.schema.type !== "integer"))
      throw new ProfileError(
        `attribute '${name}': '${spec.feature}' is not a numeric feature of the model`,
      );
    const bands = spec.bands;
    return {
      name,
      kind: "band",
      feature: spec.feature,
      values: bands.map((b) => b.label),
      weights: [],
      bandOf: (value: number) => {
        for (const band of bands)
          if (band.below === undefined || value < band.below) return band.label;
        return (bands[bands.length - 1] as { label: string }).label;
      },
    };
  });
}

/** Attributes of one row with customer-scoped ones drawn by their weights (the reference sample). */
function drawAttributes(
  attributes: readonly ResolvedAttribute[],
  row: Row,
  random: Random,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const attribute of attributes) {
    if (attribute.kind === "band") {
      const value = row[attribute.feature as string];
      if (typeof value === "number") out[attribute.name] = attribute.bandOf?.(value) ?? "";
    } else {
      out[attribute.name] = attribute.values[weightedIndex(random, attribute.weights)] ?? "";
    }
  }
  return out;
}

/**
 * Values of customer-scoped attributes for a pool of customers, in exact proportions (largest
 * remainder), in a seeded order: customer j has the j-th of them.
 */
export function customerAttributes(
  attributes: readonly ResolvedAttribute[],
  customers: number,
  seed: number,
): Record<string, string>[] {
  const pool: Record<string, string>[] = Array.from({ length: customers }, () => ({}));
  for (const [k, attribute] of attributes.entries()) {
    if (attribute.kind !== "customer") continue;
    const total = attribute.weights.reduce((a, b) => a + b, 0);
    const exact = attribute.weights.map((w) => (w / total) * customers);
    const counts = exact.map(Math.floor);
    const remainders = exact
      .map((x, i) => ({ i, r: x - Math.floor(x) }))
      .sort((a, b) => b.r - a.r || a.i - b.i);
    let missing = customers - counts.reduce((a, b) => a + b, 0);
    for (const { i } of remainders) {
      if (missing-- <= 0) break;
      counts[i] = (counts[i] ?? 0) + 1;
    }
    const values = attribute.values.flatMap((v, i) => Array<string>(counts[i] ?? 0).fill(v));
    shuffle(mulberry32(seed ^ hashString(`customers:${k}:${attribute.name}`)), values);
    for (const [j, customer] of pool.entries()) customer[attribute.name] = values[j] ?? "";
  }
  return pool;
}

// ---------------------------------------------------------------- truth and outcomes

function lookupIn(row: Row, attributes: Record<string, string>) {
  return (name: string): Value | undefined => (name in row ? row[name] : attributes[name]);
}

function checkNames(
  what: string,
  expression: Expression,
  features: Map<string, unknown>,
  attributes: readonly ResolvedAttribute[],
) {
  for (const name of expression.names) {
    if (!features.has(name) && !attributes.some((a) => a.name === name))
      throw new ProfileError(
        `${what} reads '${name}', which is neither a feature nor an attribute`,
      );
  }
}

function compileFor(what: string, source: number | string): Expression {
  try {
    return compileParameter(source);
  } catch (error) {
    if (error instanceof ExpressionError) throw new ProfileError(`${what}: ${error.message}`);
    throw error;
  }
}

function resolveTruth(
  spec: Truth,
  model: ModelInfo,
  features: Map<string, ResolvedFeature>,
  attributes: readonly ResolvedAttribute[],
  reference: readonly { row: Row; attributes: Record<string, string> }[],
): ResolvedTruth {
  const segments = "segments" in spec ? (spec.segments ?? []) : [];
  for (const segment of segments) {
    const attribute = attributes.find((a) => a.name === segment.attribute);
    if (!attribute)
      throw new ProfileError(
        `truth segment: '${segment.attribute}' is not an attribute of the profile (${attributes.map((a) => a.name).join(", ") || "none"})`,
      );
    if (!attribute.values.includes(segment.value))
      throw new ProfileError(
        `truth segment: '${segment.value}' is not a value of '${segment.attribute}' (${attribute.values.join(", ")})`,
      );
  }
  const segmentEffect = (attrs: Record<string, string>) => {
    let effect = 0;
    for (const s of segments) if (attrs[s.attribute] === s.value) effect += s.effect;
    return effect;
  };
  const classes = model.classes ?? null;
  const checkLabel = (label: string | number, key: string) => {
    if (classes && !classes.includes(String(label)))
      throw new ProfileError(
        `truth ${key} '${label}' is not a class of '${model.name}' (${classes.join(", ")})`,
      );
  };

  switch (spec.kind) {
    case "logistic": {
      checkLabel(spec.positive, "positive");
      checkLabel(spec.negative, "negative");
      const logit = compileFor("truth logit", spec.logit);
      checkNames("truth logit", logit, features, attributes);
      const score = (row: Row, attrs: Record<string, string>) =>
        logit.evaluate(lookupIn(row, attrs)) + segmentEffect(attrs);
      let intercept = spec.intercept ?? 0;
      if (spec.intercept === undefined && spec.baseRate !== undefined) {
        const scores = reference.map((r) => score(r.row, r.attributes));
        intercept = solveIntercept(scores, spec.baseRate);
      }
      return {
        kind: "logistic",
        labels: [spec.positive, spec.negative],
        positive: spec.positive,
        intercept,
        segments,
        draw: (row, attrs, random) => {
          const probability = expit(score(row, attrs) + intercept);
          const u = random();
          return { label: u < probability ? spec.positive : spec.negative, probability };
        },
      };
    }
    case "multinomial": {
      const labels = Object.keys(spec.logits);
      if (labels.length < 2) throw new ProfileError("truth logits: name at least two classes");
      for (const label of labels) checkLabel(label, "class");
      const logits = labels.map((label) => {
        const e = compileFor(`truth logit of '${label}'`, spec.logits[label] as number | string);
        checkNames(`truth logit of '${label}'`, e, features, attributes);
        return e;
      });
      return {
        kind: "multinomial",
        labels,
        segments: [],
        draw: (row, attrs, random) => {
          const z = logits.map((e) => e.evaluate(lookupIn(row, attrs)));
          const top = Math.max(...z);
          return {
            label:
              labels[
                weightedIndex(
                  random,
                  z.map((v) => Math.exp(v - top)),
                )
              ] ?? "",
          };
        },
      };
    }
    case "linear": {
      const value = compileFor("truth value", spec.value);
      checkNames("truth value", value, features, attributes);
      const noise = spec.noiseSd ?? 0;
      return {
        kind: "linear",
        labels: [],
        segments,
        draw: (row, attrs, random) => {
          const expected = value.evaluate(lookupIn(row, attrs)) + segmentEffect(attrs);
          const drawn = normal(random, expected, noise);
          return {
            label: spec.decimals === undefined ? drawn : round(drawn, spec.decimals),
            expected,
          };
        },
      };
    }
  }
}

/** The intercept that makes the mean of expit(score + intercept) the base rate (bisection). */
export function solveIntercept(scores: readonly number[], baseRate: number): number {
  let low = -50;
  let high = 50;
  for (let i = 0; i < 100; i++) {
    const mid = (low + high) / 2;
    let sum = 0;
    for (const s of scores) sum += expit(s + mid);
    if (sum / scores.length < baseRate) low = mid;
    else high = mid;
  }
  return (low + high) / 2;
}

function formatNumber(x: number): string {
  return String(Number(x.toPrecision(6)));
}

/**
 * A true model for a model without a builtin profile: a fixed random linear score (seeded by
 * the model's name, so the same in every run) over standardised numeric features, booleans and
 * the most common value of each categorical feature. Binary classification: logistic with a
 * 20% base rate; more classes: multinomial; regression: linear with unit noise.
 */
export function genericTruth(
  model: ModelInfo,
  features: Map<string, ResolvedFeature>,
): Truth | null {
  const random = mulberry32(hashString(`${GENERIC_TRUTH_SEED}:${model.name}`));
  const score = () => {
    const terms: string[] = [];
    for (const feature of features.values()) {
      const sign = random() < 0.5 ? -1 : 1;
      const coef = formatNumber(sign * (0.3 + 0.7 * random()));
      const name = /^[A-Za-z_][A-Za-z0-9_.]*$/.test(feature.name)
        ? feature.name
        : `\`${feature.name}\``;
      const ref = feature.reference;
      if (feature.schema.type === "boolean") terms.push(`${coef} * ${name}`);
      else if (ref.kind === "numeric") {
        if (ref.sd > 0)
          terms.push(`${coef} * (${name} - ${formatNumber(ref.mean)}) / ${formatNumber(ref.sd)}`);
      } else {
        const top = Object.entries(ref.proportions).sort((a, b) => b[1] - a[1])[0]?.[0];
        if (top !== undefined && Object.keys(ref.proportions).length > 1) {
          const literal = feature.schema.type === "string" ? JSON.stringify(top) : top;
          terms.push(`${coef} * (${name} == ${literal})`);
        }
      }
    }
    return terms.length > 0 ? terms.join(" + ") : "0";
  };
  if (model.task === "regression")
    return { kind: "linear", value: score(), noiseSd: 1, decimals: 4 };
  if (model.task !== "classification" || !model.classes || model.classes.length < 2) return null;
  if (model.classes.length === 2) {
    const positive = model.positiveClass ?? (model.classes[1] as string);
    const negative = model.classes.find((c) => c !== positive) as string;
    return { kind: "logistic", positive, negative, logit: score(), baseRate: 0.2 };
  }
  return {
    kind: "multinomial",
    logits: Object.fromEntries(model.classes.map((c, i) => [c, i === 0 ? 0 : score()])),
  };
}

function resolveOutcome(
  spec: Outcome,
  index: number,
  truth: ResolvedTruth | null,
  features: Map<string, ResolvedFeature>,
  attributes: readonly ResolvedAttribute[],
): ResolvedOutcome {
  const what = `outcome ${index} (${spec.kpi})`;
  if (!truth)
    throw new ProfileError(
      `${what}: outcomes are sent with labels; this profile has no truth model`,
    );
  if (
    spec.whenLabel !== undefined &&
    !truth.labels.some((l) => String(l) === String(spec.whenLabel))
  )
    throw new ProfileError(
      `${what}: whenLabel '${spec.whenLabel}' is not a label of the truth model (${truth.labels.join(", ") || "numbers"})`,
    );
  const value = compileFor(`${what} value`, spec.value);
  checkNames(`${what} value`, value, features, attributes);
  const multiplier = spec.multiplier
    ? featureDrawer(`${what} multiplier`, { type: "number" }, spec.multiplier, "profile", [
        ...features.keys(),
      ])
    : null;
  if (spec.multiplier && distributionMakes[spec.multiplier.kind] !== "number")
    throw new ProfileError(`${what}: the multiplier must be a numeric distribution`);
  return {
    spec,
    value: (row, attrs, label, random) => {
      // Always draw, so that the stream does not depend on the label.
      const factor = multiplier ? (multiplier.draw(random, row) as number) : 1;
      if (spec.whenLabel !== undefined && String(label) !== String(spec.whenLabel)) return null;
      const amount = value.evaluate(lookupIn(row, attrs)) * factor;
      if (!Number.isFinite(amount)) return null;
      return round(amount, spec.decimals ?? 2);
    },
  };
}
