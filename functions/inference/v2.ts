import type { Context } from "hono";
import { Hono } from "hono";
import { ApiError } from "../../shared/errors";
import {
  decodeV2Request,
  encodeV2Response,
  modelMetadata,
  tensorIssuePath,
} from "../../shared/inference/v2-protocol";
import { AIRLOCK_VERSION } from "../../shared/version";
import type { AppEnv } from "../app-env";
import { readJson, requireJson } from "./predict";
import { type Admitted, admit, liveVersions, servePrediction, versionNotFound } from "./serve";

/**
 * The Open Inference Protocol (V2), as KServe, Triton and MLServer clients
 * speak it. Inference is routed exactly like `/v1/models/{model}/predict`;
 * versioned routes serve only a live version. Errors on these routes are the
 * protocol's `{ "error": "<message>" }` with Airlock's code in the
 * `x-airlock-error-code` header (see the app's error handler).
 */
export const v2Api = new Hono<AppEnv>();

export const serverMetadata = (c: Context<AppEnv>) =>
  c.json({ name: "airlock", version: AIRLOCK_VERSION, extensions: [] as string[] }, 200);

v2Api.get("/", serverMetadata);
v2Api.get("/health/live", (c) => c.body(null, 200));
// The gateway holds no model in memory that could be loading: it is ready
// when it is live. Each model's readiness is its own route.
v2Api.get("/health/ready", (c) => c.body(null, 200));

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
  if (!liveVersions(admitted.snapshot).includes(version)) {
    throw versionNotFound(admitted.model, version);
  }
  return version;
}

v2Api.get("/models/:model", async (c) => {
  const admitted = await admit(c, c.req.param("model"));
  return metadata(c, admitted, liveVersions(admitted.snapshot));
});

v2Api.get("/models/:model/ready", async (c) => {
  const admitted = await admit(c, c.req.param("model"));
  return ready(c, liveVersions(admitted.snapshot).length > 0);
});

v2Api.get("/models/:model/versions/:version", async (c) => {
  const admitted = await admit(c, c.req.param("model"));
  return metadata(c, admitted, [liveVersion(admitted, c.req.param("version"))]);
});

v2Api.get("/models/:model/versions/:version/ready", async (c) => {
  const admitted = await admit(c, c.req.param("model"));
  liveVersion(admitted, c.req.param("version"));
  return ready(c, true);
});

async function infer(c: Context<AppEnv>, model: string, version?: string) {
  requireJson(c.req.header("content-type"));
  const admitted = await admit(c, model);
  // A version that is not live answers 404 whatever the body holds.
  if (version !== undefined) liveVersion(admitted, version);
  const { profile } = admitted;
  const decoded = decodeV2Request(await readJson(c.req), profile.inputSchema, profile.task);
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

v2Api.post("/models/:model/infer", (c) => infer(c, c.req.param("model")));
v2Api.post("/models/:model/versions/:version/infer", (c) =>
  infer(c, c.req.param("model"), c.req.param("version")),
);
