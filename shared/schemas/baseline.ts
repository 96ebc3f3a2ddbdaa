import { z } from "@hono/zod-openapi";
import { MAX_BASELINE_UPLOAD_ROWS } from "../monitoring/baseline";
import { Timestamp } from "./common";

const Row = z.record(z.string(), z.unknown());

/** Rows (and their predictions) uploaded as a version's baseline. */
export const UploadedBaseline = z
  .object({
    rows: z.array(Row).min(1).max(MAX_BASELINE_UPLOAD_ROWS),
    predictions: z.array(Row).min(1).max(MAX_BASELINE_UPLOAD_ROWS).optional(),
  })
  .strict()
  .superRefine((body, ctx) => {
    if (body.predictions && body.predictions.length !== body.rows.length) {
      ctx.addIssue({
        code: "custom",
        path: ["predictions"],
        message: `must have one prediction per row (${body.rows.length}), got ${body.predictions.length}`,
      });
    }
  });

/**
 * Sets a version's baseline from uploaded rows (validated against the model's
 * input schema), or from a window of the version's own traffic. Parsed by
 * shape (not a union) so that errors name the field.
 */
export const SetBaselineBody = z
  .object({
    rows: z
      .array(Row)
      .min(1)
      .max(MAX_BASELINE_UPLOAD_ROWS)
      .optional()
      .openapi({
        description: `Up to ${MAX_BASELINE_UPLOAD_ROWS} rows of features, as the version saw them in training or validation.`,
      }),
    predictions: z.array(Row).min(1).max(MAX_BASELINE_UPLOAD_ROWS).optional().openapi({
      description:
        "The version's canonical predictions for those rows (`label`, `score` or `value`), in the same order: the reference for prediction drift.",
    }),
    from: Timestamp.optional(),
    to: Timestamp.optional(),
    role: z.enum(["served", "canary", "shadow"]).optional().openapi({
      description: "Which of the version's results in the window (default served).",
    }),
  })
  .strict()
  .superRefine((body, ctx) => {
    const window = body.from !== undefined || body.to !== undefined || body.role !== undefined;
    if (body.rows === undefined && !window) {
      ctx.addIssue({ code: "custom", path: ["rows"], message: "give rows, or from and to" });
      return;
    }
    if (body.rows !== undefined && window) {
      ctx.addIssue({
        code: "custom",
        path: [body.from !== undefined ? "from" : body.to !== undefined ? "to" : "role"],
        message: "give rows, or a window (from, to), not both",
      });
      return;
    }
    if (body.predictions !== undefined && body.rows === undefined) {
      ctx.addIssue({ code: "custom", path: ["predictions"], message: "goes with rows" });
    }
    if (body.rows && body.predictions && body.predictions.length !== body.rows.length) {
      ctx.addIssue({
        code: "custom",
        path: ["predictions"],
        message: `must have one prediction per row (${body.rows.length}), got ${body.predictions.length}`,
      });
    }
    if (window) {
      if (body.from === undefined)
        ctx.addIssue({ code: "custom", path: ["from"], message: "is required with to" });
      if (body.to === undefined)
        ctx.addIssue({ code: "custom", path: ["to"], message: "is required with from" });
      if (
        body.from !== undefined &&
        body.to !== undefined &&
        Date.parse(body.from) >= Date.parse(body.to)
      )
        ctx.addIssue({ code: "custom", path: ["to"], message: "must be after from" });
    }
  })
  .openapi("SetBaseline");
export type SetBaselineBody = z.infer<typeof SetBaselineBody>;

const NumericSummary = z.object({
  kind: z.literal("numeric"),
  n: z.number(),
  missing: z.number(),
  distinct: z.number(),
  min: z.number(),
  max: z.number(),
  mean: z.number(),
  std: z.number(),
  sample: z.array(z.number()),
  sampled: z.boolean(),
});
const CategoricalSummary = z.object({
  kind: z.literal("categorical"),
  n: z.number(),
  missing: z.number(),
  counts: z.record(z.string(), z.number()),
  other: z.number(),
});
const DimensionSummary = z.discriminatedUnion("kind", [NumericSummary, CategoricalSummary]);

export const BaselineResource = z
  .object({
    model: z.string(),
    version: z.string(),
    schema: z.literal(1),
    source: z.discriminatedUnion("kind", [
      z.object({ kind: z.literal("upload") }),
      z.object({
        kind: z.literal("traffic"),
        from: Timestamp,
        to: Timestamp,
        role: z.enum(["served", "canary", "shadow"]),
      }),
    ]),
    rows: z.number(),
    createdAt: Timestamp,
    createdBy: z.string(),
    features: z.record(z.string(), DimensionSummary),
    predictions: z.record(z.string(), DimensionSummary),
  })
  .openapi("Baseline");
