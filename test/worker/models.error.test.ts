import { describe, expect, it } from "vitest";
import {
  call,
  classificationModel,
  createModel,
  createVersion,
  type ErrorJson,
  json,
  regressionModel,
  uniqueName,
} from "./helpers";

async function expectError(response: Response, status: number, code: string, mentions?: string) {
  expect(response.status).toBe(status);
  const body = await json<ErrorJson>(response);
  expect(body.error.code).toBe(code);
  expect(body.error.requestId).toBe(response.headers.get("x-request-id"));
  if (mentions) expect(body.error.message).toContain(mentions);
  return body;
}

describe("models: errors", () => {
  it("answers 409 MODEL_EXISTS for a duplicate name and keeps the first", async () => {
    const name = uniqueName();
    await createModel(classificationModel(name, { owner: "first" }));
    const response = await call("/admin/models", {
      method: "POST",
      body: classificationModel(name, { owner: "second" }),
    });
    await expectError(response, 409, "MODEL_EXISTS", name);
    expect((await json(await call(`/admin/models/${name}`))).owner).toBe("first");
  });

  it("answers 404 MODEL_NOT_FOUND for an unknown model", async () => {
    await expectError(
      await call("/admin/models/no-such-model"),
      404,
      "MODEL_NOT_FOUND",
      "no-such-model",
    );
    await expectError(
      await call("/admin/models/no-such-model", { method: "PATCH", body: { owner: "x" } }),
      404,
      "MODEL_NOT_FOUND",
    );
  });

  it("names every failing field of an invalid model", async () => {
    const body = classificationModel("Bad Name!", {
      task: "clustering",
      inputSchema: {
        type: "object",
        properties: { age: { type: "integer", minimum: 10, maximum: 5 } },
        required: ["height"],
      },
    });
    const error = await expectError(
      await call("/admin/models", { method: "POST", body }),
      400,
      "VALIDATION_FAILED",
    );
    const paths = (error.error.details ?? []).map((d) => d.path);
    expect(paths).toEqual(expect.arrayContaining(["name", "task"]));
    expect(error.error.message).toContain("name");
  });

  it("checks the input schema's own consistency", async () => {
    const body = classificationModel(uniqueName(), {
      inputSchema: {
        type: "object",
        properties: { age: { type: "integer", minimum: 10, maximum: 5, enum: [1.5] } },
        required: ["height"],
      },
    });
    const error = await expectError(
      await call("/admin/models", { method: "POST", body }),
      400,
      "VALIDATION_FAILED",
    );
    const paths = (error.error.details ?? []).map((d) => d.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        "inputSchema.required[0]",
        "inputSchema.properties.age.minimum",
        "inputSchema.properties.age.enum[0]",
      ]),
    );
  });

  it("requires classes and a positive class for binary classification, and refuses them for regression", async () => {
    const noClasses = classificationModel(uniqueName(), {
      classes: undefined,
      positiveClass: undefined,
    });
    let error = await expectError(
      await call("/admin/models", { method: "POST", body: noClasses }),
      400,
      "VALIDATION_FAILED",
    );
    expect(error.error.details?.map((d) => d.path)).toContain("classes");

    const noPositive = classificationModel(uniqueName(), { positiveClass: undefined });
    error = await expectError(
      await call("/admin/models", { method: "POST", body: noPositive }),
      400,
      "VALIDATION_FAILED",
    );
    expect(error.error.details?.map((d) => d.path)).toContain("positiveClass");

    const wrongPositive = classificationModel(uniqueName(), { positiveClass: "maybe" });
    error = await expectError(
      await call("/admin/models", { method: "POST", body: wrongPositive }),
      400,
      "VALIDATION_FAILED",
    );
    expect(error.error.details?.map((d) => d.path)).toContain("positiveClass");

    const regressionWithClasses = regressionModel(uniqueName(), { classes: ["a", "b"] });
    error = await expectError(
      await call("/admin/models", { method: "POST", body: regressionWithClasses }),
      400,
      "VALIDATION_FAILED",
    );
    expect(error.error.details?.map((d) => d.path)).toContain("classes");
  });

  it("refuses a static fallback the model could not produce, and a version fallback to a missing version", async () => {
    const badLabel = classificationModel(uniqueName(), {
      fallback: { kind: "static", output: { label: "maybe" } },
    });
    let error = await expectError(
      await call("/admin/models", { method: "POST", body: badLabel }),
      400,
      "VALIDATION_FAILED",
    );
    expect(error.error.details?.map((d) => d.path)).toContain("fallback.output.label");

    const name = uniqueName();
    await createModel(classificationModel(name));
    error = await expectError(
      await call(`/admin/models/${name}`, {
        method: "PATCH",
        body: { fallback: { kind: "version", version: "v9" } },
      }),
      400,
      "VALIDATION_FAILED",
      "v9",
    );
    expect(error.error.details?.map((d) => d.path)).toContain("fallback.version");
    expect((await json(await call(`/admin/models/${name}`))).fallback).toEqual({ kind: "none" });
  });

  it("refuses a version fallback to the model's only version, which could never answer", async () => {
    const name = uniqueName();
    await createModel(classificationModel(name));
    await createVersion(name, "v1");
    const error = await expectError(
      await call(`/admin/models/${name}`, {
        method: "PATCH",
        body: { owner: "fraud-team@example.com", fallback: { kind: "version", version: "v1" } },
      }),
      400,
      "VALIDATION_FAILED",
      "fallback.version",
    );
    expect(error.error.details).toEqual([
      {
        path: "fallback.version",
        message: expect.stringMatching(
          /^'v1' is the model's only version, so it is the one serving: .*Register a second version/,
        ),
      },
    ]);
    const model = await json(await call(`/admin/models/${name}`));
    expect(model).toMatchObject({ owner: "risk-ml@example.com", fallback: { kind: "none" } });

    // With a second version there is something to fall back to.
    await createVersion(name, "v2");
    const patched = await call(`/admin/models/${name}`, {
      method: "PATCH",
      body: { fallback: { kind: "version", version: "v1" } },
    });
    expect(patched.status).toBe(200);
    expect((await json(patched)).fallback).toEqual({ kind: "version", version: "v1" });
  });

  it("refuses to patch immutable or unknown fields, and an empty patch", async () => {
    const name = uniqueName();
    await createModel(regressionModel(name));
    const error = await expectError(
      await call(`/admin/models/${name}`, { method: "PATCH", body: { task: "classification" } }),
      400,
      "VALIDATION_FAILED",
    );
    expect(error.error.message).toContain("task");
    await expectError(
      await call(`/admin/models/${name}`, { method: "PATCH", body: {} }),
      400,
      "VALIDATION_FAILED",
    );
  });

  it("answers 400 for a bad pagination limit or cursor", async () => {
    const limit = await expectError(
      await call("/admin/models?limit=0"),
      400,
      "VALIDATION_FAILED",
      "limit",
    );
    expect(limit.error.details?.[0]?.path).toBe("limit");
    await expectError(
      await call("/admin/models?cursor=not-a-cursor"),
      400,
      "INVALID_CURSOR",
      "cursor",
    );
  });
});
