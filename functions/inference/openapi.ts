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

// ---- Open Inference Protocol (V2) ---------------------------------------------------------------

const V2Error = z.object({ error: z.string() }).openapi("V2Error", {
  description: "Airlock's error code is in the x-airlock-error-code header.",
});
const v2Error = (description: string) => ({
  description,
  content: { "application/json": { schema: V2Error } },
});
const V2Parameters = z
  .record(z.string(), z.union([z.string(), z.number(), z.boolean()]))
  .openapi("V2Parameters");
const TensorData = z.array(z.unknown()).openapi({ description: "Row-major, flat or nested." });
const V2InputTensor = z
  .object({
    name: z.string(),
    shape: z.array(z.number().int()),
    datatype: z.string(),
    parameters: V2Parameters.optional(),
    data: TensorData,
  })
  .openapi("V2InputTensor");
const V2InferenceRequest = z
  .object({
    id: z.string().optional(),
    parameters: V2Parameters.optional().openapi({
      description: "`key`: the sticky bucketing key; `attribute.<name>`: a segment attribute.",
    }),
    inputs: z.array(V2InputTensor),
    outputs: z
      .array(z.object({ name: z.string(), parameters: V2Parameters.optional() }))
      .optional(),
  })
  .openapi("V2InferenceRequest", {
    example: {
      id: "42",
      parameters: { key: "customer-42", "attribute.region": "eu" },
      inputs: [
        { name: "amount", shape: [2], datatype: "FP64", data: [250, 12.5] },
        { name: "country", shape: [2], datatype: "BYTES", data: ["DE", "FR"] },
      ],
    },
  });
const V2InferenceResponse = z
  .object({
    model_name: z.string(),
    model_version: z.string().optional(),
    id: z.string(),
    parameters: V2Parameters.openapi({
      description:
        "`prediction_id`: comma-separated, in row order; `fallback`: true when a fallback answered.",
    }),
    outputs: z.array(V2InputTensor),
  })
  .openapi("V2InferenceResponse");
const V2MetadataTensor = z.object({
  name: z.string(),
  datatype: z.string(),
  shape: z.array(z.number().int()),
});
const V2ModelMetadata = z
  .object({
    name: z.string(),
    versions: z.array(z.string()),
    platform: z.string(),
    inputs: z.array(V2MetadataTensor),
    outputs: z.array(V2MetadataTensor),
  })
  .openapi("V2ModelMetadata");
const modelParam = z.string().openapi({ param: { name: "model", in: "path" } });
const versionParam = z.string().openapi({ param: { name: "version", in: "path" } });
const keyErrors = {
  401: v2Error("No or invalid API key"),
  404: v2Error("Unknown model, a key not allowed for it, or a version that is not live"),
  429: v2Error("Rate limited; see Retry-After"),
};
const tags = ["Open Inference Protocol (V2)"];

/** The model, and the version on the versioned routes. */
const pathParams = (versioned: boolean) =>
  versioned
    ? z.object({ model: modelParam, version: versionParam })
    : z.object({ model: modelParam });

function inferPath(path: string, versioned: boolean) {
  return {
    method: "post" as const,
    path,
    tags,
    summary: versioned
      ? "Infer with exactly this version, while it is live"
      : "Infer, routed like /v1 predict (champion, canary, shadows, kill switch, fallback)",
    security: [{ ApiKey: [] }],
    request: {
      params: pathParams(versioned),
      body: { required: true, content: { "application/json": { schema: V2InferenceRequest } } },
    },
    responses: {
      200: {
        description: "Output tensors label, score, probabilities or value",
        content: { "application/json": { schema: V2InferenceResponse } },
      },
      400: v2Error("Malformed request or inputs that fail the model's input schema"),
      ...keyErrors,
      413: v2Error("Body larger than the configured limit"),
      415: v2Error("Body is not application/json"),
      502: v2Error("The serving version failed and the model has no fallback"),
      503: v2Error("No serving version, or model disabled by its kill switch"),
    },
  };
}

function metadataPath(path: string, versioned: boolean) {
  return {
    method: "get" as const,
    path,
    tags,
    summary: versioned
      ? "A live version's metadata"
      : "Model metadata: inputs, outputs, live versions",
    security: [{ ApiKey: [] }],
    request: {
      params: pathParams(versioned),
    },
    responses: {
      200: {
        description: "Metadata",
        content: { "application/json": { schema: V2ModelMetadata } },
      },
      ...keyErrors,
    },
  };
}

function readyPath(path: string, versioned: boolean) {
  return {
    method: "get" as const,
    path,
    tags,
    summary: versioned ? "Whether this version is live" : "Whether the model would serve now",
    security: [{ ApiKey: [] }],
    request: {
      params: pathParams(versioned),
    },
    responses: {
      200: { description: "Ready (empty body)" },
      400: {
        description:
          "Not ready: no live version, or killed (x-airlock-error-code: MODEL_NOT_READY)",
      },
      ...keyErrors,
    },
  };
}

export const v2Paths = [
  {
    method: "get" as const,
    path: "/v2",
    tags,
    summary: "Server metadata (also at /v2/)",
    responses: {
      200: {
        description: "Server metadata",
        content: {
          "application/json": {
            schema: z.object({
              name: z.string(),
              version: z.string(),
              extensions: z.array(z.string()),
            }),
          },
        },
      },
    },
  },
  {
    method: "get" as const,
    path: "/v2/health/live",
    tags,
    summary: "Server live",
    responses: { 200: { description: "Live (empty body)" } },
  },
  {
    method: "get" as const,
    path: "/v2/health/ready",
    tags,
    summary: "Server ready",
    responses: { 200: { description: "Ready (empty body)" } },
  },
  metadataPath("/v2/models/{model}", false),
  readyPath("/v2/models/{model}/ready", false),
  inferPath("/v2/models/{model}/infer", false),
  metadataPath("/v2/models/{model}/versions/{version}", true),
  readyPath("/v2/models/{model}/versions/{version}/ready", true),
  inferPath("/v2/models/{model}/versions/{version}/infer", true),
];
