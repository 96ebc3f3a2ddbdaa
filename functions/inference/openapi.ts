import { z } from "@hono/zod-openapi";
import { ErrorBody } from "../../shared/errors";

/** The client prediction contract, for the OpenAPI document (the route validates with the model's input schema). */
const Feature = z.union([z.number(), z.string(), z.boolean(), z.null()]);
const Prediction = z
  .union([
    z.object({
      label: z.string(),
      score: z.number().optional(),
      probabilities: z.record(z.string(), z.number()).optional(),
    }),
    z.object({ value: z.number() }),
  ])
  .openapi("Prediction");

export const PredictRequest = z
  .object({
    inputs: z.union([
      z.record(z.string(), Feature),
      z.array(z.record(z.string(), Feature)).min(1).max(100),
    ]),
    key: z
      .string()
      .min(1)
      .max(256)
      .optional()
      .openapi({ description: "Sticky bucketing key (a customer or session id)." }),
    attributes: z.record(z.string(), z.string()).optional().openapi({
      description: "Segment labels kept for fairness analysis, never sent to the model.",
    }),
  })
  .openapi("PredictRequest", {
    example: { inputs: { amount: 250, country: "DE" }, key: "customer-42" },
  });

export const PredictResponse = z
  .union([
    z.object({
      predictionId: z.string(),
      model: z.string(),
      version: z.string().nullable(),
      outputs: Prediction,
      fallback: z.boolean(),
    }),
    z.object({
      predictionIds: z.array(z.string()),
      model: z.string(),
      version: z.string().nullable(),
      outputs: z.array(Prediction),
      fallback: z.boolean(),
    }),
  ])
  .openapi("PredictResponse");

const error = (description: string) => ({
  description,
  content: { "application/json": { schema: ErrorBody } },
});

export const predictPath = {
  method: "post" as const,
  path: "/v1/models/{model}/predict",
  tags: ["Inference"],
  summary: "Predict with a model's serving version",
  security: [{ ApiKey: [] }],
  request: {
    params: z.object({ model: z.string().openapi({ param: { name: "model", in: "path" } }) }),
    body: { required: true, content: { "application/json": { schema: PredictRequest } } },
  },
  responses: {
    200: {
      description:
        "Predictions; headers x-airlock-version, x-airlock-prediction-id, x-airlock-state-version",
      content: { "application/json": { schema: PredictResponse } },
    },
    400: error("Inputs fail the model's input schema: `details` name every field of every row"),
    401: error("No or invalid API key"),
    404: error("Unknown model, or a key not allowed for it"),
    413: error("Body larger than the configured limit"),
    415: error("Body is not application/json"),
    429: error("Rate limited; see Retry-After"),
    502: error("The serving version failed and the model has no fallback"),
    503: error(
      "No serving version, model disabled by its kill switch, or rollout state unavailable",
    ),
  },
};
