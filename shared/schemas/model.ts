import { z } from "@hono/zod-openapi";
import { ClassLabel, FeatureName, ModelName, Timestamp, VersionLabel } from "./common";

/**
 * The subset of JSON Schema that describes a model's inputs: a flat object of
 * typed features. Small on purpose: every rule here is enforced on the hot
 * path and mirrored by monitoring (data quality, drift per feature).
 */
const NumericFeature = z
  .object({
    type: z.enum(["number", "integer"]),
    description: z.string().max(1000).optional(),
    minimum: z.number().optional(),
    maximum: z.number().optional(),
    enum: z.array(z.number()).min(1).max(1000).optional(),
  })
  .strict();

const StringFeature = z
  .object({
    type: z.literal("string"),
    description: z.string().max(1000).optional(),
    enum: z.array(z.string().max(256)).min(1).max(1000).optional(),
    maxLength: z.number().int().min(1).max(65536).optional(),
  })
  .strict();

const BooleanFeature = z
  .object({
    type: z.literal("boolean"),
    description: z.string().max(1000).optional(),
  })
  .strict();

export const FeatureSchema = z.discriminatedUnion("type", [
  NumericFeature,
  StringFeature,
  BooleanFeature,
]);
export type FeatureSchema = z.infer<typeof FeatureSchema>;

export const InputSchema = z
  .object({
    type: z.literal("object"),
    properties: z.record(FeatureName, FeatureSchema),
    required: z.array(FeatureName).max(1000).optional(),
    additionalProperties: z.boolean().optional(),
  })
  .strict()
  .superRefine((schema, ctx) => {
    const names = Object.keys(schema.properties);
    if (names.length === 0) {
      ctx.addIssue({
        code: "custom",
        path: ["properties"],
        message: "must declare at least one feature",
      });
    }
    if (names.length > 1000) {
      ctx.addIssue({
        code: "custom",
        path: ["properties"],
        message: "must declare at most 1000 features",
      });
    }
    const seen = new Set<string>();
    for (const [i, name] of (schema.required ?? []).entries()) {
      if (!(name in schema.properties)) {
        ctx.addIssue({
          code: "custom",
          path: ["required", i],
          message: `names '${name}', which is not in properties`,
        });
      }
      if (seen.has(name)) {
        ctx.addIssue({ code: "custom", path: ["required", i], message: `repeats '${name}'` });
      }
      seen.add(name);
    }
    for (const [name, feature] of Object.entries(schema.properties)) {
      if (feature.type !== "number" && feature.type !== "integer") continue;
      const path = ["properties", name];
      if (
        feature.minimum !== undefined &&
        feature.maximum !== undefined &&
        feature.minimum > feature.maximum
      ) {
        ctx.addIssue({
          code: "custom",
          path: [...path, "minimum"],
          message: "must not exceed maximum",
        });
      }
      for (const [i, value] of (feature.enum ?? []).entries()) {
        if (feature.type === "integer" && !Number.isInteger(value)) {
          ctx.addIssue({
            code: "custom",
            path: [...path, "enum", i],
            message: "must be an integer",
          });
        }
        if (
          (feature.minimum !== undefined && value < feature.minimum) ||
          (feature.maximum !== undefined && value > feature.maximum)
        ) {
          ctx.addIssue({
            code: "custom",
            path: [...path, "enum", i],
            message: "lies outside minimum..maximum",
          });
        }
      }
    }
  })
  .openapi("InputSchema", {
    example: {
      type: "object",
      properties: {
        amount: { type: "number", minimum: 0 },
        country: { type: "string", enum: ["DE", "FR", "US"] },
        is_new_customer: { type: "boolean" },
      },
      required: ["amount", "country"],
    },
  });
export type InputSchema = z.infer<typeof InputSchema>;

/**
 * A prediction in its canonical form. Classification carries the label and,
 * optionally, the positive-class score (binary) or class probabilities;
 * regression carries a value.
 */
export const ClassificationPrediction = z
  .object({
    label: ClassLabel,
    score: z.number().min(0).max(1).optional(),
    probabilities: z.record(ClassLabel, z.number().min(0).max(1)).optional(),
  })
  .strict();
export const RegressionPrediction = z.object({ value: z.number() }).strict();

/**
 * What happens when the serving version fails: nothing (502 to the client),
 * another named version, or a fixed output. A killed model uses the static
 * output too.
 */
export const Fallback = z
  .discriminatedUnion("kind", [
    z.object({ kind: z.literal("none") }).strict(),
    z.object({ kind: z.literal("version"), version: VersionLabel }).strict(),
    z
      .object({
        kind: z.literal("static"),
        output: z.union([ClassificationPrediction, RegressionPrediction]),
      })
      .strict(),
  ])
  .openapi("Fallback", { example: { kind: "static", output: { label: "legit", score: 0.01 } } });
export type Fallback = z.infer<typeof Fallback>;

const Task = z.enum(["classification", "regression"]);
export type Task = z.infer<typeof Task>;

const Owner = z.string().trim().min(1).max(200).openapi({ example: "risk-ml@example.com" });
const Description = z.string().max(5000);

export const CreateModelBody = z
  .object({
    name: ModelName,
    task: Task,
    owner: Owner,
    description: Description,
    inputSchema: InputSchema,
    classes: z.array(ClassLabel).min(2).max(1000).optional(),
    positiveClass: ClassLabel.optional(),
    public: z.boolean().default(false),
    fallback: Fallback.default({ kind: "none" }),
  })
  .strict()
  .superRefine((body, ctx) => {
    checkClasses(body, ctx);
    if (body.fallback.kind === "version") {
      ctx.addIssue({
        code: "custom",
        path: ["fallback", "version"],
        message:
          "a new model has no versions yet; set a version fallback with PATCH once it exists",
      });
    }
    for (const issue of staticFallbackIssues(body.fallback, body.task, body.classes)) {
      ctx.addIssue({ code: "custom", ...issue });
    }
  })
  .openapi("CreateModel");
export type CreateModelBody = z.infer<typeof CreateModelBody>;

export const UpdateModelBody = z
  .object({
    description: Description.optional(),
    owner: Owner.optional(),
    public: z.boolean().optional(),
    fallback: Fallback.optional(),
  })
  .strict()
  .refine((body) => Object.keys(body).length > 0, { message: "must change at least one field" })
  .openapi("UpdateModel");
export type UpdateModelBody = z.infer<typeof UpdateModelBody>;

export const Model = z
  .object({
    name: ModelName,
    task: Task,
    owner: z.string(),
    description: z.string(),
    inputSchema: InputSchema,
    classes: z.array(z.string()).nullable(),
    positiveClass: z.string().nullable(),
    public: z.boolean(),
    fallback: Fallback,
    createdAt: Timestamp,
    updatedAt: Timestamp,
  })
  .openapi("Model");
export type Model = z.infer<typeof Model>;

function checkClasses(
  body: { task: Task; classes?: string[] | undefined; positiveClass?: string | undefined },
  ctx: z.RefinementCtx,
) {
  if (body.task === "regression") {
    if (body.classes !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["classes"],
        message: "is only allowed for classification",
      });
    }
    if (body.positiveClass !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["positiveClass"],
        message: "is only allowed for classification",
      });
    }
    return;
  }
  if (body.classes === undefined) {
    ctx.addIssue({ code: "custom", path: ["classes"], message: "is required for classification" });
    return;
  }
  const seen = new Set<string>();
  for (const [i, label] of body.classes.entries()) {
    if (seen.has(label))
      ctx.addIssue({ code: "custom", path: ["classes", i], message: `repeats '${label}'` });
    seen.add(label);
  }
  if (body.positiveClass === undefined) {
    if (body.classes.length === 2) {
      ctx.addIssue({
        code: "custom",
        path: ["positiveClass"],
        message: "is required for binary classification (scores and quality metrics refer to it)",
      });
    }
  } else if (!seen.has(body.positiveClass)) {
    ctx.addIssue({ code: "custom", path: ["positiveClass"], message: "must be one of classes" });
  }
}

export interface SchemaIssue {
  path: PropertyKey[];
  message: string;
}

/** A static fallback must be a prediction the model itself could have made. */
export function staticFallbackIssues(
  fallback: Fallback,
  task: Task,
  classes: readonly string[] | null | undefined,
): SchemaIssue[] {
  if (fallback.kind !== "static") return [];
  const output = fallback.output;
  if (task === "regression") {
    return "value" in output
      ? []
      : [{ path: ["fallback", "output"], message: "must be { value: number } for regression" }];
  }
  if (!("label" in output))
    return [{ path: ["fallback", "output"], message: "must carry a label for classification" }];
  const issues: SchemaIssue[] = [];
  if (classes && !classes.includes(output.label)) {
    issues.push({
      path: ["fallback", "output", "label"],
      message: "must be one of the model's classes",
    });
  }
  for (const label of Object.keys(output.probabilities ?? {})) {
    if (classes && !classes.includes(label)) {
      issues.push({
        path: ["fallback", "output", "probabilities", label],
        message: "is not one of the model's classes",
      });
    }
  }
  return issues;
}
