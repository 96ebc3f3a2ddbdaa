import type { MiddlewareHandler } from "hono";
import { ApiError } from "../../shared/errors";
import type { AppEnv } from "../app-env";
import { keepParsedBody, readBoundedJson } from "../middleware/input-guard";
import { admit } from "./serve";

/** Inference bodies are JSON; anything else is refused before any work. */
export function requireJson(contentType: string | undefined): void {
  if (!/^application\/json\b/i.test(contentType ?? "")) {
    throw new ApiError(
      "UNSUPPORTED_MEDIA_TYPE",
      "Request body must be sent as Content-Type: application/json",
    );
  }
}

export interface AdmissionOptions {
  /** The route takes a JSON body: refuse other media first, read it once admitted. */
  json?: boolean;
}

/**
 * The first step of every inference route, before its request is validated:
 * admission (lease, key, rate limit, existence, in an order that lets no key
 * probe for model names), then, for routes with a body, reading it under the
 * body bounds and the string rule. The route's own validator then checks the
 * body against the schema its OpenAPI description is generated from, so a
 * caller the model does not admit learns nothing from what it sent.
 */
export function admission({ json = false }: AdmissionOptions = {}): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (json) requireJson(c.req.header("content-type"));
    c.set("admitted", await admit(c, c.req.param("model") ?? ""));
    if (json) keepParsedBody(c.req, await readBoundedJson(c.req));
    await next();
  };
}
