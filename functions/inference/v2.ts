import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { ApiError } from "../../shared/errors";
import {
  decodeV2Request,
  encodeV2Response,
  modelMetadata,
  tensorIssuePath,
} from "../../shared/inference/v2-protocol";
import { AIRLOCK_VERSION } from "../../shared/version";
import type { AppEnv } from "../app-env";
import { apiRouter } from "../router";
import { admission } from "./admission";
import { type Admitted, servePrediction, servingVersions, versionNotFound } from "./serve";

/**
 * The Open Inference Protocol (V2), as KServe, Triton and MLServer clients
 * speak it. Inference is routed exactly like `/v1/models/{model}/predict`;
 * versioned routes serve only a live version. Errors on these routes are the
 * protocol's `{ "error": "<message>" }` with Airlock's code in the
 * `x-airlock-error-code` header (see the app's error handler).
 *
 * Each route's schemas validate its request's shape and generate its
 * OpenAPI description; what depends on the model (features, datatypes
 * against the input schema, row counts, outputs) is checked next, by
 * decodeV2Request, with messages that name the tensor and its element.
 */
export const v2Api = apiRouter();

const V2Error = z.object({ error: z.string() }).openapi("V2Error", {
  description: "Airlock's error code is in the x-airlock-error-code header.",
});
const v2Error = (description: string) => ({
  description,
  content: { "application/json": { schema: V2Error } },
});
const V2Scalar = z.union([z.string(), z.number(), z.boolean()], {
  error: "must be a string, number or boolean",
});
const V2Parameters = z
  .record(z.string(), V2Scalar, { error: "must be an object of scalar values" })
  .openapi("V2Parameters");
const TensorData = z
  .array(z.unknown(), { error: "must be an array of values" })
  .openapi({ description: "Row-major, flat or nested." });
const V2InputTensor = z
  .looseObject(
    {
      name: z.string({ error: "must be a feature name" }),
      shape: z.array(z.number().int(), { error: "must be an array of integers" }),
      datatype: z.string({ error: "must be a datatype such as FP64, INT64, BOOL or BYTES" }),
      parameters: V2Parameters.optional(),
      data: TensorData,
    },
    { error: "must be an input tensor" },
  )
  .openapi("V2InputTensor");
const V2RequestedOutput = z.looseObject(
  {
    name: z.string({ error: "must be an object with a name" }),
    parameters: V2Parameters.optional(),
  },
  { error: "must be an object with a name" },
);
const V2InferenceRequest = z
  .looseObject(
    {
      id: z.string({ error: "must be a string of at most 256 characters" }).optional(),
      parameters: V2Parameters.optional().openapi({
        description: "`key`: the sticky bucketing key; `attribute.<name>`: a segment attribute.",
      }),
      inputs: z.array(V2InputTensor, {
        error: "must be a non-empty array of input tensors, one per feature",
      }),
      outputs: z
        .array(V2RequestedOutput, { error: "must be an array of requested outputs" })
        .optional(),
    },
    { error: "must be an object" },
  )
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
const V2OutputTensor = z
  .object({
    name: z.string(),
    shape: z.array(z.number().int()),
    datatype: z.string(),
    parameters: V2Parameters.optional(),
    data: TensorData,
  })
  .openapi("V2OutputTensor");
const V2InferenceResponse = z
  .object({
    model_name: z.string(),
    model_version: z.string().optional(),
    id: z.string(),
    parameters: V2Parameters.openapi({
      description:
        "`prediction_id`: comma-separated, in row order; `fallback`: true when a fallback answered.",
    }),
    outputs: z.array(V2OutputTensor),
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
const ServerMetadata = z
  .object({ name: z.string(), version: z.string(), extensions: z.array(z.string()) })
  .openapi("V2ServerMetadata");

const modelParam = z.string().openapi({ param: { name: "model", in: "path" } });
const versionParam = z.string().openapi({ param: { name: "version", in: "path" } });
const ModelParams = z.object({ model: modelParam });
const VersionParams = z.object({ model: modelParam, version: versionParam });
const keyErrors = {
  401: v2Error("No or invalid API key"),
  404: v2Error("Unknown model, a key not allowed for it, or a version that is not live"),
  429: v2Error("Rate limited; see Retry-After"),
};
const tags = ["Open Inference Protocol (V2)"];
const security = [{ ApiKey: [] }];

export const serverMetadata = (c: Context<AppEnv>) =>
  c.json({ name: "airlock", version: AIRLOCK_VERSION, extensions: [] as string[] }, 200);

v2Api.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags,
    summary: "Server metadata (also at /v2)",
    responses: {
      200: {
        description: "Server metadata",
        content: { "application/json": { schema: ServerMetadata } },
      },
    },
  }),
  serverMetadata,
);

v2Api.openapi(
  createRoute({
    method: "get",
    path: "/health/live",
    tags,
    summary: "Server live",
    responses: { 200: { description: "Live (empty body)" } },
  }),
  (c) => c.body(null, 200),
);

// The gateway holds no model in memory that could be loading: it is ready
// when it is live. Each model's readiness is its own route.
v2Api.openapi(
  createRoute({
    method: "get",
    path: "/health/ready",
    tags,
    summary: "Server ready",
    responses: { 200: { description: "Ready (empty body)" } },
  }),
  (c) => c.body(null, 200),
);

function metadata(c: Context<AppEnv>, admitted: Admitted, versions: string[]) {
  const { profile } = admitted;
  return c.json(
    modelMetadata(admitted.model, versions, profile.inputSchema, profile.task, profile.classes),
    200,
  );
}

/** Ready: something would serve a prediction now (a live version, not killed). */
function ready(c: Context<AppEnv>, live: boolean) {
  return live
    ? c.body(null, 200)
    : c.body(null, 400, { "x-airlock-error-code": "MODEL_NOT_READY" });
}

function liveVersion(admitted: Admitted, version: string): string {
  if (!servingVersions(admitted.snapshot).includes(version)) {
    throw versionNotFound(admitted.model, version);
  }
  return version;
}

const metadataRoute = <P extends typeof ModelParams | typeof VersionParams>(
  path: string,
  params: P,
) =>
  createRoute({
    method: "get",
    path,
    tags,
    summary:
      params === VersionParams
        ? "A live version's metadata"
        : "Model metadata: inputs, outputs, live versions",
    security,
    middleware: [admission()] as const,
    request: { params },
    responses: {
      200: {
        description: "Metadata",
        content: { "application/json": { schema: V2ModelMetadata } },
      },
      ...keyErrors,
    },
  });

const readyRoute = <P extends typeof ModelParams | typeof VersionParams>(path: string, params: P) =>
  createRoute({
    method: "get",
    path,
    tags,
    summary:
      params === VersionParams
        ? "Whether this version is live"
        : "Whether the model would serve now",
    security,
    middleware: [admission()] as const,
    request: { params },
    responses: {
      200: { description: "Ready (empty body)" },
      400: {
        description:
          "Not ready: no live version, or killed (x-airlock-error-code: MODEL_NOT_READY)",
      },
      ...keyErrors,
    },
  });

const inferRoute = <P extends typeof ModelParams | typeof VersionParams>(path: string, params: P) =>
  createRoute({
    method: "post",
    path,
    tags,
    summary:
      params === VersionParams
        ? "Infer with exactly this version, while it is live"
        : "Infer, routed like /v1 predict (champion, canary, shadows, kill switch, fallback)",
    security,
    middleware: [admission({ json: true })] as const,
    request: {
      params,
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
  });

v2Api.openapi(metadataRoute("/models/{model}", ModelParams), (c) => {
  const admitted = c.var.admitted;
  return metadata(c, admitted, servingVersions(admitted.snapshot));
});

v2Api.openapi(readyRoute("/models/{model}/ready", ModelParams), (c) =>
  ready(c, servingVersions(c.var.admitted.snapshot).length > 0),
);

v2Api.openapi(metadataRoute("/models/{model}/versions/{version}", VersionParams), (c) => {
  const admitted = c.var.admitted;
  return metadata(c, admitted, [liveVersion(admitted, c.req.valid("param").version)]);
});

v2Api.openapi(readyRoute("/models/{model}/versions/{version}/ready", VersionParams), (c) => {
  liveVersion(c.var.admitted, c.req.valid("param").version);
  return ready(c, true);
});

async function infer(c: Context<AppEnv>, body: unknown, version?: string) {
  const admitted = c.var.admitted;
  const { model, profile } = admitted;
  // A version that is not live answers 404 whatever the body holds.
  if (version !== undefined) liveVersion(admitted, version);
  const decoded = decodeV2Request(body, profile.inputSchema, profile.task);
  if (!decoded.ok) {
    throw new ApiError(
      "VALIDATION_FAILED",
      `Invalid inference request: ${decoded.issues
        .slice(0, 5)
        .map((i) => `${i.path}: ${i.message}`)
        .join("; ")}`,
      { details: decoded.issues },
    );
  }
  const request = decoded.value;
  const served = await servePrediction(c, admitted, {
    // Always a batch: the protocol batches along the first dimension.
    inputs: request.rows,
    key: request.key,
    attributes: request.attributes,
    version,
    issuePath: tensorIssuePath,
  });
  return c.json(
    encodeV2Response({
      model,
      version: served.version,
      id: request.id ?? c.var.requestId,
      predictionIds: served.predictionIds,
      outputs: served.outputs,
      fallback: served.fallback,
      classes: profile.classes,
      requested: request.outputs,
    }),
    200,
  );
}

v2Api.openapi(inferRoute("/models/{model}/infer", ModelParams), (c) =>
  infer(c, c.req.valid("json")),
);
v2Api.openapi(inferRoute("/models/{model}/versions/{version}/infer", VersionParams), (c) =>
  infer(c, c.req.valid("json"), c.req.valid("param").version),
);
