import { describe, expect, it } from "vitest";
import { encodeCursor } from "../../shared/pagination";
import {
  call,
  classificationModel,
  createModel,
  createVersion,
  json,
  regressionModel,
  uniqueName,
} from "./helpers";

describe("models: happy paths", () => {
  it("creates a classification model and answers 201 with the stored resource", async () => {
    const name = uniqueName("fraud");
    const response = await call("/admin/models", {
      method: "POST",
      body: classificationModel(name),
    });
    expect(response.status).toBe(201);
    expect(response.headers.get("location")).toBe(`/admin/models/${name}`);
    const model = await json(response);
    expect(model).toMatchObject({
      name,
      task: "classification",
      classes: ["legit", "fraud"],
      positiveClass: "fraud",
      public: false,
      fallback: { kind: "none" },
    });
    expect(Date.parse(model.createdAt as string)).not.toBeNaN();

    const read = await call(`/admin/models/${name}`);
    expect(read.status).toBe(200);
    expect(await json(read)).toEqual(model);
  });

  it("creates a regression model with a static fallback", async () => {
    const name = uniqueName("price");
    const response = await call("/admin/models", {
      method: "POST",
      body: regressionModel(name, {
        public: true,
        fallback: { kind: "static", output: { value: 42 } },
      }),
    });
    expect(response.status).toBe(201);
    const model = await json(response);
    expect(model).toMatchObject({
      task: "regression",
      classes: null,
      positiveClass: null,
      public: true,
    });
    expect(model.fallback).toEqual({ kind: "static", output: { value: 42 } });
  });

  it("patches description, owner, public flag and a version fallback", async () => {
    const name = uniqueName();
    await createModel(classificationModel(name));
    await createVersion(name, "v1");
    await createVersion(name, "v2");
    const response = await call(`/admin/models/${name}`, {
      method: "PATCH",
      body: {
        description: "new text",
        owner: "team-b",
        public: true,
        fallback: { kind: "version", version: "v1" },
      },
    });
    expect(response.status).toBe(200);
    const model = await json(response);
    expect(model).toMatchObject({
      description: "new text",
      owner: "team-b",
      public: true,
      fallback: { kind: "version", version: "v1" },
    });
    expect(Date.parse(model.updatedAt as string)).toBeGreaterThanOrEqual(
      Date.parse(model.createdAt as string),
    );
    expect(await json(await call(`/admin/models/${name}`))).toEqual(model);
  });

  it("pages through models by name with an opaque cursor", async () => {
    const prefix = uniqueName("page");
    const names = [`${prefix}-c`, `${prefix}-a`, `${prefix}-b`];
    for (const name of names) await createModel(regressionModel(name));
    const first = await json<{ items: { name: string }[] }>(await call("/admin/models?limit=2"));
    expect(first.items.map((m) => m.name)).toEqual(first.items.map((m) => m.name).sort());
    // Other tests add models all the while: page from just before ours, two
    // at a time, until the pages have gone past them.
    const seen: string[] = [];
    let cursor: string | null = encodeCursor({ name: prefix });
    let pages = 0;
    do {
      const response = await call(`/admin/models?limit=2&cursor=${encodeURIComponent(cursor)}`);
      expect(response.status).toBe(200);
      const page = await json<{ items: { name: string }[]; nextCursor: string | null }>(response);
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((m) => m.name));
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor && pages < 1000 && !seen.some((n) => n > `${prefix}-c`));
    const mine = seen.filter((n) => n.startsWith(prefix));
    expect(mine).toEqual([...names].sort());
    expect(pages).toBeGreaterThanOrEqual(2);
    expect(seen).toEqual([...seen].sort());
    expect(new Set(seen).size).toBe(seen.length);
  });
});
