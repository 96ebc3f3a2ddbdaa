// What a traffic profile file holds (`--profile file.json`), validated with zod so that a
// mistake is reported with its path. Pure: no I/O.
import { z } from "zod";

/** The subset of a model's input schema the generator needs (as Airlock's model API returns it). */
export type FeatureSchema =
  | {
      type: "number" | "integer";
      minimum?: number | undefined;
      maximum?: number | undefined;
      enum?: number[] | undefined;
    }
  | { type: "string"; enum?: string[] | undefined; maxLength?: number | undefined }
  | { type: "boolean" };

export interface InputSchema {
  type: "object";
  properties: Record<string, FeatureSchema>;
  required?: string[] | undefined;
  additionalProperties?: boolean | undefined;
}

/** What the generator knows about the model it sends traffic to. */
export interface ModelInfo {
  name: string;
  inputSchema: InputSchema;
  task?: "classification" | "regression" | undefined;
  classes?: string[] | null | undefined;
  positiveClass?: string | null | undefined;
}

const FeatureSchemaFormat = z.discriminatedUnion("type", [
  z.object({
    type: z.enum(["number", "integer"]),
    minimum: z.number().optional(),
    maximum: z.number().optional(),
    enum: z.array(z.number()).min(1).optional(),
  }),
  z.object({
    type: z.literal("string"),
    enum: z.array(z.string()).min(1).optional(),
    maxLength: z.number().int().min(1).optional(),
  }),
  z.object({ type: z.literal("boolean") }),
]);

export const InputSchemaFormat = z.object({
  type: z.literal("object"),
  properties: z.record(z.string(), FeatureSchemaFormat),
  required: z.array(z.string()).optional(),
  additionalProperties: z.boolean().optional(),
});

/** A number, or an expression over other features (see expression.ts). */
const Parameter = z.union([z.number(), z.string().min(1)]);
const Probability = z.union([z.number().min(0).max(1), z.string().min(1)]);
const Weights = z
  .record(z.string(), z.number().min(0))
  .refine((w) => Object.keys(w).length > 0, "must name at least one value")
  .refine((w) => Object.values(w).some((v) => v > 0), "must give some value a positive weight");

/** After the draw: offset added, then clipped to min..max (and the schema's), then rounded. */
const Finish = {
  offset: Parameter.optional(),
  min: Parameter.optional(),
  max: Parameter.optional(),
  decimals: z.number().int().min(0).max(12).optional(),
  description: z.string().optional(),
};

export const DistributionFormat = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("normal"), mean: Parameter, sd: Parameter, ...Finish }).strict(),
  z.object({ kind: z.literal("lognormal"), mu: Parameter, sigma: Parameter, ...Finish }).strict(),
  z
    .object({
      kind: z.literal("beta"),
      alpha: Parameter,
      beta: Parameter,
      low: Parameter.optional(),
      high: Parameter.optional(),
      ...Finish,
    })
    .strict(),
  z.object({ kind: z.literal("uniform"), low: Parameter, high: Parameter, ...Finish }).strict(),
  z.object({ kind: z.literal("uniformInt"), low: Parameter, high: Parameter, ...Finish }).strict(),
  z.object({ kind: z.literal("exponential"), mean: Parameter, ...Finish }).strict(),
  z.object({ kind: z.literal("poisson"), lambda: Parameter, ...Finish }).strict(),
  z
    .object({ kind: z.literal("bernoulli"), p: Probability, description: z.string().optional() })
    .strict(),
  z
    .object({
      kind: z.literal("categorical"),
      weights: Weights,
      description: z.string().optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal("constant"),
      value: z.union([z.number(), z.string(), z.boolean()]),
      description: z.string().optional(),
    })
    .strict(),
]);
export type Distribution = z.infer<typeof DistributionFormat>;
export type NumericDistribution = Exclude<
  Distribution,
  { kind: "bernoulli" | "categorical" | "constant" }
>;

const AttributeName = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1 to 64 letters, digits, '_', '.' or '-'");

export const AttributeFormat = z.union([
  z
    .object({
      /** customer: fixed per simulated customer (so per key); request: drawn per request. */
      scope: z.enum(["customer", "request"]).optional(),
      weights: Weights,
      description: z.string().optional(),
    })
    .strict(),
  z
    .object({
      /** A band of a numeric feature: the first band whose `below` exceeds the value. */
      feature: z.string().min(1),
      bands: z
        .array(
          z.object({ label: z.string().min(1).max(256), below: z.number().optional() }).strict(),
        )
        .min(1),
      description: z.string().optional(),
    })
    .strict()
    .superRefine((attribute, ctx) => {
      const last = attribute.bands.length - 1;
      let previous = -Infinity;
      for (const [i, band] of attribute.bands.entries()) {
        if (band.below === undefined) {
          if (i !== last)
            ctx.addIssue({
              code: "custom",
              path: ["bands", i, "below"],
              message: "only the last band may be open",
            });
          continue;
        }
        if (band.below <= previous)
          ctx.addIssue({ code: "custom", path: ["bands", i, "below"], message: "must increase" });
        previous = band.below;
      }
    }),
]);
export type Attribute = z.infer<typeof AttributeFormat>;

const Segment = z
  .object({ attribute: z.string().min(1), value: z.string(), effect: z.number() })
  .strict();
export type SegmentEffect = z.infer<typeof Segment>;

export const TruthFormat = z.discriminatedUnion("kind", [
  z
    .object({
      /** P(positive) = expit(logit + intercept + segment effects). */
      kind: z.literal("logistic"),
      positive: z.union([z.string().min(1), z.number()]),
      negative: z.union([z.string().min(1), z.number()]),
      logit: z.string().min(1),
      /** One of: the intercept, or the base rate it is solved for on the reference sample. */
      intercept: z.number().optional(),
      baseRate: z.number().gt(0).lt(1).optional(),
      segments: z.array(Segment).optional(),
      description: z.string().optional(),
    })
    .strict(),
  z
    .object({
      /** P(class) proportional to exp(logit of the class). */
      kind: z.literal("multinomial"),
      logits: z.record(z.string(), z.union([z.number(), z.string().min(1)])),
      description: z.string().optional(),
    })
    .strict(),
  z
    .object({
      /** value + segment effects + N(0, noiseSd). */
      kind: z.literal("linear"),
      value: z.string().min(1),
      noiseSd: z.number().min(0).optional(),
      decimals: z.number().int().min(0).max(12).optional(),
      segments: z.array(Segment).optional(),
      description: z.string().optional(),
    })
    .strict(),
]);
export type Truth = z.infer<typeof TruthFormat>;

export const OutcomeFormat = z
  .object({
    kpi: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1 to 64 letters, digits, '_', '.' or '-'"),
    /** Only for predictions whose true label is this; every labelled prediction without it. */
    whenLabel: z.union([z.string(), z.number()]).optional(),
    /** An expression over features, attributes and `label`. */
    value: z.union([z.number(), z.string().min(1)]),
    /** A random factor the value is multiplied by (loss given default, say). */
    multiplier: DistributionFormat.optional(),
    decimals: z.number().int().min(0).max(12).optional(),
    description: z.string().optional(),
  })
  .strict();
export type Outcome = z.infer<typeof OutcomeFormat>;

export const ProfileFormat = z
  .object({
    /** A builtin profile this one starts from; each section given here replaces its own by name. */
    extends: z.string().optional(),
    description: z.string().optional(),
    /** Used when the model's schema cannot be read from Airlock (no admin token, dry runs). */
    inputSchema: InputSchemaFormat.optional(),
    task: z.enum(["classification", "regression"]).optional(),
    classes: z.array(z.string()).optional(),
    positiveClass: z.string().optional(),
    /** Simulated customers: each is a bucketing key; keys repeat. */
    customers: z.number().int().min(1).max(10_000_000).optional(),
    features: z.record(z.string(), DistributionFormat).optional(),
    attributes: z.record(AttributeName, AttributeFormat).optional(),
    /** The true label model; null: no labels. */
    truth: TruthFormat.nullable().optional(),
    outcomes: z.array(OutcomeFormat).optional(),
  })
  .strict();
export type ProfileFile = z.infer<typeof ProfileFormat>;

/** Parses a profile file's JSON value; throws an Error listing every problem with its path. */
export function parseProfile(value: unknown, where: string): ProfileFile {
  const parsed = ProfileFormat.safeParse(value);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues
    .slice(0, 10)
    .map((issue) => `${issue.path.map(String).join(".") || "(top)"}: ${issue.message}`);
  throw new Error(`${where}: ${problems.join("; ")}`);
}
