import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../../functions/app";
import worker from "../../functions/index";
import {
  adminToken,
  call,
  classificationModel,
  type ErrorJson,
  executionContext,
  json,
  uniqueName,
} from "./helpers";

describe("platform: errors, limits and headers", () => {
  it("puts an x-request-id on every response and honours a caller's", async () => {
    const ok = await call("/health", { token: null });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const mine = await call("/admin/models/missing-one", {
      headers: { "x-request-id": "trace-abc-123" },
    });
    expect(mine.headers.get("x-request-id")).toBe("trace-abc-123");
    expect((await json<ErrorJson>(mine)).error.requestId).toBe("trace-abc-123");
  });

  it("answers unknown routes with a JSON 404", async () => {
    const response = await call("/nope", { token: null });
    expect(response.status).toBe(404);
    const body = await json<ErrorJson>(response);
    expect(body.error.code).toBe("ROUTE_NOT_FOUND");
    expect(body.error.requestId).toBe(response.headers.get("x-request-id"));
  });

  it("answers malformed JSON with 400 MALFORMED_JSON, never 500", async () => {
    const response = await call("/admin/models", { method: "POST", body: '{"name": "x",' });
    expect(response.status).toBe(400);
    expect((await json<ErrorJson>(response)).error.code).toBe("MALFORMED_JSON");
  });

  it("answers a body that is not JSON with 415", async () => {
    const response = await call("/admin/models", {
      method: "POST",
      body: "name=x",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(response.status).toBe(415);
    expect((await json<ErrorJson>(response)).error.code).toBe("UNSUPPORTED_MEDIA_TYPE");
    const noType = await call("/admin/models", {
      method: "POST",
      body: JSON.stringify(classificationModel(uniqueName())),
      headers: { "content-type": "text/plain" },
    });
    expect(noType.status).toBe(415);
  });

  it("answers 413 for a body over the limit, declared or streamed, before parsing it", async () => {
    const limit = Number(env.MAX_BODY_BYTES);
    const big = JSON.stringify({
      ...classificationModel(uniqueName()),
      description: "x".repeat(limit),
    });
    const declared = await call("/admin/models", { method: "POST", body: big });
    expect(declared.status).toBe(413);
    expect((await json<ErrorJson>(declared)).error.code).toBe("PAYLOAD_TOO_LARGE");

    const encoder = new TextEncoder();
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(encoder.encode(big));
        controller.close();
      },
    });
    const streamed = await worker.fetch(
      new Request("http://airlock.test/admin/models", {
        method: "POST",
        body: stream,
        headers: { authorization: `Bearer ${adminToken()}`, "content-type": "application/json" },
        duplex: "half",
      } as RequestInit),
      env,
      executionContext(),
    );
    expect(streamed.status).toBe(413);
  });

  it("answers an internal failure with 500 and no internals", async () => {
    const response = await worker.fetch(
      new Request("http://airlock.test/admin/models", {
        headers: { authorization: `Bearer ${adminToken()}` },
      }),
      { ...env, DATABASE_URL: "this is not a url" },
      executionContext(),
    );
    expect(response.status).toBe(500);
    const text = await response.text();
    const body = JSON.parse(text) as ErrorJson;
    expect(body.error).toEqual({
      code: "INTERNAL_ERROR",
      message: "Internal error",
      requestId: expect.any(String),
    });
    expect(text).not.toMatch(/url|stack|at /i);
  });
});

describe("platform: API description", () => {
  it("serves an OpenAPI 3.1 document generated from the validating schemas", async () => {
    const response = await call("/openapi.json", { token: null });
    expect(response.status).toBe(200);
    const doc = await json<{
      openapi: string;
      paths: Record<string, Record<string, { security?: unknown; requestBody?: unknown }>>;
      components: { schemas: Record<string, unknown>; securitySchemes: Record<string, unknown> };
    }>(response);
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        "/admin/models",
        "/admin/models/{model}",
        "/admin/models/{model}/versions",
        "/admin/models/{model}/versions/{version}",
        "/admin/audit",
        "/v1/models/{model}/predict",
        "/admin/models/{model}/rollout",
        "/admin/keys",
        "/admin/artifacts/{sha256}",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{model}",
        "/v2/models/{model}/ready",
        "/v2/models/{model}/infer",
        "/v2/models/{model}/versions/{version}",
        "/v2/models/{model}/versions/{version}/ready",
        "/v2/models/{model}/versions/{version}/infer",
      ]),
    );
    expect(doc.components.schemas).toHaveProperty("BuiltinUpstream");
    expect(doc.components.schemas).toHaveProperty("V2InferenceRequest");
    expect(doc.paths["/admin/models"]?.post?.security).toEqual([{ AdminToken: [] }]);
    expect(doc.components.schemas).toHaveProperty("CreateModel");
    expect(doc.components.schemas).toHaveProperty("Error");
    expect(doc.components.securitySchemes).toHaveProperty("AdminToken");
  });

  it("describes every route the app serves, under the method it serves it", async () => {
    const doc = await json<{ paths: Record<string, Record<string, unknown>> }>(
      await call("/openapi.json", { token: null }),
    );
    // The description itself, and the protocol's trailing-slash alias of /v2.
    const meta = new Set([
      "GET /openapi.json",
      "GET /docs",
      "GET /v2/",
      // Local runs only (LOCAL_TRIGGERS), not part of the API.
      "GET /__scheduled",
      "POST /__scheduled",
    ]);
    const served = app.routes
      .filter((route) => route.method !== "ALL")
      .map((route) => `${route.method} ${route.path}`)
      .filter((route) => !meta.has(route));
    const described = new Set(
      Object.entries(doc.paths).flatMap(([path, methods]) =>
        Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`),
      ),
    );
    const toOpenApi = (route: string) => route.replace(/:([A-Za-z0-9_]+)/g, "{$1}");
    const missing = [...new Set(served.map(toOpenApi))].filter((route) => !described.has(route));
    expect(missing).toEqual([]);
    expect(served.length).toBeGreaterThan(40);
  });

  it("serves readable docs", async () => {
    const response = await call("/docs", { token: null });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/html");
    expect(await response.text()).toContain("/openapi.json");
  });
});
