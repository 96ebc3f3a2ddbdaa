import { createRoute, z } from "@hono/zod-openapi";
import { DrizzleQueryError } from "drizzle-orm/errors";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { requestId } from "hono/request-id";
import { MAX_MODEL_BYTES } from "../shared/builtin";
import { isConnectionError } from "../shared/db/client";
import { ApiError, type ErrorBody, errorStatus } from "../shared/errors";
import { validationMessage } from "../shared/validation-messages";
import { adminApi, isVersionUpload } from "./admin";
import type { AppEnv } from "./app-env";
import { docsPage, docsSecurityHeaders } from "./docs";
import { feedbackApi } from "./inference/feedback";
import { predictApi } from "./inference/predict";
import { serverMetadata, v2Api } from "./inference/v2";
import { localTriggers } from "./jobs";
import { database } from "./middleware/database";
import { apiRouter } from "./router";
import { assets } from "./static";

// Every parse in the Worker words its failures for people (shared/validation-messages.ts).
z.config({ customError: validationMessage });

export const app = apiRouter();

app.use("*", requestId({ headerName: "x-request-id", limitLength: 128 }));
app.use("*", async (c, next) => {
  await next();
  c.header("x-content-type-options", "nosniff");
  if (c.req.path.startsWith("/admin")) c.header("cache-control", "no-store");
});
/** Registering a version may carry a builtin model file: its limit plus room for the rest. */
const VERSION_UPLOAD_BYTES = MAX_MODEL_BYTES + 1_048_576;

app.use("*", (c, next) => {
  const maxSize = isVersionUpload(c.req.method, c.req.path)
    ? VERSION_UPLOAD_BYTES
    : Number(c.env.MAX_BODY_BYTES) || 1_048_576;
  return bodyLimit({
    maxSize,
    onError: () => {
      throw new ApiError("PAYLOAD_TOO_LARGE", `Request body exceeds ${maxSize} bytes`);
    },
  })(c, next);
});
app.use("*", database());

app.openapi(
  createRoute({
    method: "get",
    path: "/health",
    tags: ["Service"],
    summary: "Liveness of the Worker (no database or binding is touched)",
    responses: {
      200: {
        description: "Up",
        content: { "application/json": { schema: z.object({ status: z.literal("ok") }) } },
      },
    },
  }),
  (c) => c.json({ status: "ok" as const }, 200),
);
app.route("/admin", adminApi);
app.route("/v1", predictApi);
app.route("/v1", feedbackApi);
app.route("/v2", v2Api);
// Local runs only (LOCAL_TRIGGERS): fire a cron job now.
app.route("/__scheduled", localTriggers);
// The protocol names both `v2` and `v2/` for server metadata.
app.get("/v2/", serverMetadata);

app.openAPIRegistry.registerComponent("securitySchemes", "ApiKey", {
  type: "http",
  scheme: "bearer",
  description: "A client API key (POST /admin/keys).",
});
app.openAPIRegistry.registerComponent("securitySchemes", "AdminToken", {
  type: "http",
  scheme: "bearer",
  description:
    "A personal access token (airlock_pat_…, POST /admin/me/tokens), or the bootstrap token (ADMIN_TOKEN) on the routes it may call. Behind Cloudflare Access, single sign-on instead.",
});
app.doc31("/openapi.json", {
  openapi: "3.1.0",
  info: {
    title: "Airlock",
    version: "0.1.0",
    description:
      "Edge serving and governance for ML models: registry, rollouts, kill switch, prediction logs and monitoring.",
  },
  tags: [
    { name: "Service", description: "The Worker itself" },
    { name: "Models", description: "The model registry" },
    { name: "Versions", description: "Versions of a model, with upstreams and model cards" },
    { name: "Inference", description: "Client predictions" },
    {
      name: "Open Inference Protocol (V2)",
      description: "KServe / Triton / MLServer clients: the same routing as /v1 predict",
    },
    { name: "Rollout", description: "Champion, shadows, canary and kill switch, per model" },
    { name: "API keys", description: "Keys that clients use to call models" },
    { name: "Audit", description: "The trail of every change" },
    {
      name: "Governance",
      description: "Each model's risk tier and whose approvals its changes need",
    },
    {
      name: "People and permissions",
      description: "Principals, their roles and tokens; who you are; the permissions table",
    },
    { name: "Prediction logs", description: "Dead letters of the log pipeline, and their replay" },
  ],
});
app.get("/docs", docsSecurityHeaders, docsPage);
// The docs page's CSS and JS, served by the Worker itself (functions/static).
app.use("/assets/*", assets.serve());

app.notFound((c) => {
  const allowed = allowedMethods(c.req.path);
  if (allowed.length > 0) {
    return errorResponse(
      c,
      new ApiError(
        "METHOD_NOT_ALLOWED",
        `${c.req.method} is not allowed on ${c.req.path}; use ${allowed.join(", ")}`,
        {
          headers: { allow: allowed.join(", ") },
        },
      ),
    );
  }
  return errorResponse(
    c,
    new ApiError("ROUTE_NOT_FOUND", `No route for ${c.req.method} ${c.req.path}`),
  );
});

/** The app's routes as patterns, built once: which methods a path has, for 405's Allow. */
let routePatterns: { method: string; pattern: RegExp }[] | undefined;

function allowedMethods(path: string): string[] {
  routePatterns ??= app.routes
    .filter((route) => route.method !== "ALL")
    .map((route) => ({
      method: route.method,
      pattern: new RegExp(
        `^${route.path
          .replace(/[.+?^${}()|[\]\\]/g, "\\$&")
          .replace(/:[^/]+/g, "[^/]+")
          .replace(/\*/g, ".*")}/?$`,
      ),
    }));
  const methods = new Set(routePatterns.filter((r) => r.pattern.test(path)).map((r) => r.method));
  if (methods.has("GET")) methods.add("HEAD");
  return [...methods].sort();
}

app.onError((error, c) => errorResponse(c, toApiError(error)));

function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof HTTPException) {
    if (error.status === 400 && /malformed json/i.test(error.message)) {
      return new ApiError("MALFORMED_JSON", "Request body is not valid JSON");
    }
    if (error.status === 415) {
      return new ApiError(
        "UNSUPPORTED_MEDIA_TYPE",
        "Request body must be sent as Content-Type: application/json",
      );
    }
    if (error.status === 413) return new ApiError("PAYLOAD_TOO_LARGE", "Request body is too large");
    if (error.status === 401)
      return new ApiError("UNAUTHORIZED", "A valid bearer token is required");
    if (error.status === 405)
      return new ApiError("METHOD_NOT_ALLOWED", error.message || "Method not allowed");
    if (error.status === 400)
      return new ApiError("VALIDATION_FAILED", error.message || "Invalid request");
  }
  if (isConnectionError(error)) {
    return new ApiError("DATABASE_UNAVAILABLE", "The database is unavailable; retry later", {
      headers: { "retry-after": "5" },
      cause: error,
    });
  }
  return new ApiError("INTERNAL_ERROR", "Internal error", { cause: error });
}

function errorResponse(c: Context<AppEnv>, error: ApiError): Response {
  const status = errorStatus[error.code];
  if (status >= 500) {
    console.error(
      JSON.stringify({
        level: "error",
        requestId: c.var.requestId,
        code: error.code,
        method: c.req.method,
        path: c.req.path,
        cause: describe(error.cause),
      }),
    );
  }
  for (const [name, value] of Object.entries(error.headers ?? {})) c.header(name, value);
  if (isOpenInferencePath(c.req.path)) {
    // The Open Inference Protocol's error object, so its clients parse it;
    // Airlock's code travels in a header.
    c.header("x-airlock-error-code", error.code);
    return c.json({ error: error.message }, status);
  }
  const body: ErrorBody = {
    error: {
      code: error.code,
      message: error.message,
      requestId: c.var.requestId ?? "",
      ...(error.details ? { details: error.details } : {}),
    },
  };
  return c.json(body, status);
}

function isOpenInferencePath(path: string): boolean {
  return path === "/v2" || path.startsWith("/v2/");
}

function describe(cause: unknown): string | undefined {
  if (cause === undefined) return undefined;
  if (cause instanceof Error) {
    // drizzle's wrapper: the statement stays, its parameters (request data) do not.
    const message =
      cause instanceof DrizzleQueryError ? `Failed query: ${cause.query}` : cause.message;
    return `${cause.name}: ${message}${cause.cause ? ` <- ${describe(cause.cause)}` : ""}`;
  }
  if (typeof Event !== "undefined" && cause instanceof Event) return `${cause.type} event`;
  return String(cause);
}
