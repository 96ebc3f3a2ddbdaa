import { z } from "@hono/zod-openapi";
import { Hono } from "hono";
import { ApiError, validationError } from "../../shared/errors";
import type { AppEnv } from "../app-env";
import { readBoundedJson } from "../middleware/input-guard";
import { admit, servePrediction } from "./serve";

/** Client inference routes, Airlock's JSON protocol: `POST /v1/models/{model}/predict`. */
export const predictApi = new Hono<AppEnv>();

export const Attributes = z
  .record(
    z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be 1 to 64 letters, digits, '_', '.' or '-'"),
    z.string().max(256),
  )
  .refine((a) => Object.keys(a).length <= 32, "must have at most 32 attributes");

export const BucketingKey = z.string().min(1).max(256);

const PredictBody = z
  .object({
    inputs: z.unknown(),
    key: BucketingKey.optional(),
    attributes: Attributes.optional(),
  })
  .strict()
  .refine((body) => body.inputs !== undefined, { message: "is required", path: ["inputs"] });

/** Inference bodies are JSON; anything else is refused before any work. */
export function requireJson(contentType: string | undefined): void {
  if (!/^application\/json\b/i.test(contentType ?? "")) {
    throw new ApiError(
      "UNSUPPORTED_MEDIA_TYPE",
      "Request body must be sent as Content-Type: application/json",
    );
  }
}

/**
 * Reads an inference body under the same depth bound and string rule as
 * every admin body (functions/middleware/input-guard.ts), after admission:
 * a body is read only for a client the model admits.
 */
export function readJson(request: { text(): Promise<string> }): Promise<unknown> {
  return readBoundedJson(request);
}

predictApi.post("/models/:model/predict", async (c) => {
  requireJson(c.req.header("content-type"));
  const admitted = await admit(c, c.req.param("model"));
  const parsed = PredictBody.safeParse(await readJson(c.req));
  if (!parsed.success) throw validationError(parsed.error.issues, "body");
  const served = await servePrediction(c, admitted, {
    inputs: parsed.data.inputs,
    key: parsed.data.key,
    attributes: parsed.data.attributes ?? {},
  });
  const { model } = admitted;
  const { version, outputs, fallback, predictionIds, batch } = served;
  return c.json(
    batch
      ? { predictionIds, model, version, outputs, fallback }
      : { predictionId: predictionIds[0], model, version, outputs: outputs[0], fallback },
    200,
  );
});
