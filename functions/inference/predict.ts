import { createRoute, z } from "@hono/zod-openapi";
import { ErrorBody } from "../../shared/errors";
import { apiRouter } from "../router";
import { admission } from "./admission";
import { servePrediction } from "./serve";

/**
 * Client inference routes, Airlock's JSON protocol: `POST /v1/models/{model}/predict`.
 * The route's schemas validate the request and generate its OpenAPI
 * description; admission runs before either (functions/inference/admission.ts).
 */
export const predictApi = apiRouter();

export const Attributes = z
  .record(
    z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1 to 64 letters, digits, '_', '.' or '-'"),
    z.string().max(256),
  )
  .refine((a) => Object.keys(a).length <= 32, "must have at most 32 attributes")
  .openapi({
    description: "Segment labels (up to 32) kept for fairness analysis, never sent to the model.",
    example: { region: "eu" },
  });

export const BucketingKey = z
  .string()
  .min(1)
  .max(256)
  .openapi({ description: "Sticky bucketing key (a customer or session id)." });

export const PredictRequest = z
  .object({
    inputs: z.unknown().openapi({
      description:
        "One object of features, or an array of 1 to 100 of them (a batch). Checked against the model's input schema: a 400 names every failing field of every row, and the rejection feeds data-quality monitoring.",
      example: { amount: 250, country: "DE" },
    }),
    key: BucketingKey.optional(),
    attributes: Attributes.optional(),
  })
  .strict()
  .refine((body) => body.inputs !== undefined, { message: "is required", path: ["inputs"] })
  .openapi("PredictRequest", {
    example: { inputs: { amount: 250, country: "DE" }, key: "customer-42" },
  });

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

const PredictResponse = z
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

/** The model in an inference path; any string, so that a bad name is a 401 or 404 like any other. */
export const ModelPathParams = z.object({
  model: z.string().openapi({ param: { name: "model", in: "path" }, example: "fraud-detector" }),
});

predictApi.openapi(
  createRoute({
    method: "post",
    path: "/models/{model}/predict",
    tags: ["Inference"],
    summary: "Predict with a model's serving version",
    security: [{ ApiKey: [] }],
    middleware: [admission({ json: true })] as const,
    request: {
      params: ModelPathParams,
      body: { required: true, content: { "application/json": { schema: PredictRequest } } },
    },
    responses: {
      200: {
        description:
          "Predictions; headers x-airlock-version, x-airlock-prediction-id, x-airlock-state-version",
        content: { "application/json": { schema: PredictResponse } },
      },
      400: error(
        "Malformed body, or inputs that fail the model's input schema: `details` name every field of every row",
      ),
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
  }),
  async (c) => {
    const body = c.req.valid("json");
    const admitted = c.var.admitted;
    const served = await servePrediction(c, admitted, {
      inputs: body.inputs,
      key: body.key,
      attributes: body.attributes ?? {},
    });
    const { model } = admitted;
    const { version, outputs, fallback, predictionIds, batch } = served;
    const [predictionId, output] = [predictionIds[0], outputs[0]];
    if (batch || predictionId === undefined || output === undefined) {
      return c.json({ predictionIds, model, version, outputs, fallback }, 200);
    }
    return c.json({ predictionId, model, version, outputs: output, fallback }, 200);
  },
);
