import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  adminToken,
  call,
  classificationModel,
  createModel,
  type ErrorJson,
  json,
  uniqueName,
} from "./helpers";

const adminRoutes: [string, string][] = [
  ["GET", "/admin/models"],
  ["POST", "/admin/models"],
  ["GET", "/admin/models/some-model"],
  ["PATCH", "/admin/models/some-model"],
  ["GET", "/admin/models/some-model/versions"],
  ["POST", "/admin/models/some-model/versions"],
  ["GET", "/admin/models/some-model/versions/v1"],
  ["PATCH", "/admin/models/some-model/versions/v1"],
  ["GET", "/admin/audit"],
  ["GET", "/admin/does-not-exist"],
];

describe("admin API: security", () => {
  it.each(adminRoutes)("%s %s answers 401 without a token", async (method, path) => {
    const response = await call(path, {
      method,
      token: null,
      body: method === "GET" ? undefined : {},
    });
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toContain("Bearer");
    const body = await json<ErrorJson>(response);
    expect(body.error.code).toBe("UNAUTHORIZED");
  });

  it.each(adminRoutes)("%s %s answers 401 with a wrong token", async (method, path) => {
    const response = await call(path, {
      method,
      token: `${env.ADMIN_TOKEN}x`,
      body: method === "GET" ? undefined : {},
    });
    expect(response.status).toBe(401);
  });

  it("gives the same 401 for existing and missing models, so names cannot be probed", async () => {
    const name = uniqueName();
    await createModel(classificationModel(name));
    const existing = await call(`/admin/models/${name}`, {
      token: "wrong-token-wrong-token-wrong-token",
    });
    const missing = await call("/admin/models/never-created", {
      token: "wrong-token-wrong-token-wrong-token",
    });
    expect(existing.status).toBe(401);
    expect(missing.status).toBe(401);
    const a = await json<ErrorJson>(existing);
    const b = await json<ErrorJson>(missing);
    expect(a.error.message).toBe(b.error.message);
    expect(a.error.code).toBe(b.error.code);
  });

  it("accepts only the Bearer scheme", async () => {
    const basic = await call("/admin/models", {
      headers: { authorization: `Basic ${btoa(`admin:${adminToken()}`)}` },
    });
    expect(basic.status).toBe(401);
    const raw = await call("/admin/models", { headers: { authorization: adminToken() } });
    expect(raw.status).toBe(401);
    const ok = await call("/admin/models", {
      headers: { authorization: `bearer ${adminToken()}` },
    });
    expect(ok.status).toBe(200);
  });

  it("does not create anything for an unauthenticated POST", async () => {
    const name = uniqueName();
    const response = await call("/admin/models", {
      method: "POST",
      body: classificationModel(name),
      token: null,
    });
    expect(response.status).toBe(401);
    expect((await call(`/admin/models/${name}`)).status).toBe(404);
  });

  it("marks admin responses as not cacheable", async () => {
    const response = await call("/admin/models");
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
  });
});
