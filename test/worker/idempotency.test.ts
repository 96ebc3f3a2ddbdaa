import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import {
  call,
  classificationModel,
  createModel,
  database,
  type ErrorJson,
  httpUpstream,
  json,
  uniqueName,
} from "./helpers";

async function auditCount(target: string): Promise<number> {
  const { db, close } = database();
  try {
    const result = await db.execute(
      sql`select count(*)::int as n from audit_log where target = ${target}`,
    );
    return (result.rows[0] as { n: number }).n;
  } finally {
    await close();
  }
}

describe("Idempotency-Key", () => {
  it("returns the first response to a retry with the same key and body, changing nothing twice", async () => {
    const name = uniqueName();
    const key = crypto.randomUUID();
    const first = await call("/admin/models", {
      method: "POST",
      body: classificationModel(name),
      headers: { "idempotency-key": key },
    });
    expect(first.status).toBe(201);
    const firstBody = await json(first);
    // Same body, keys in another order: the same request.
    const reordered = Object.fromEntries(Object.entries(classificationModel(name)).reverse());
    const retry = await call("/admin/models", {
      method: "POST",
      body: reordered,
      headers: { "idempotency-key": key },
    });
    expect(retry.status).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(await json(retry)).toEqual(firstBody);
    expect(await auditCount(`models/${name}`)).toBe(1);
  });

  it("answers 422 when the same key comes with another body", async () => {
    const key = crypto.randomUUID();
    const name = uniqueName();
    expect(
      (
        await call("/admin/models", {
          method: "POST",
          body: classificationModel(name),
          headers: { "idempotency-key": key },
        })
      ).status,
    ).toBe(201);
    const other = uniqueName();
    const reuse = await call("/admin/models", {
      method: "POST",
      body: classificationModel(other),
      headers: { "idempotency-key": key },
    });
    expect(reuse.status).toBe(422);
    expect((await json<ErrorJson>(reuse)).error.code).toBe("IDEMPOTENCY_KEY_REUSED");
    expect((await call(`/admin/models/${other}`)).status).toBe(404);
  });

  it("treats the same key on another path as another request", async () => {
    const name = uniqueName();
    await createModel(classificationModel(name));
    const key = crypto.randomUUID();
    const body = { version: "v1", upstream: httpUpstream };
    const a = await call(`/admin/models/${name}/versions`, {
      method: "POST",
      body,
      headers: { "idempotency-key": key },
    });
    expect(a.status).toBe(201);
    const other = uniqueName();
    await createModel(classificationModel(other));
    const b = await call(`/admin/models/${other}/versions`, {
      method: "POST",
      body,
      headers: { "idempotency-key": key },
    });
    expect(b.status).toBe(422);
  });

  it("replays a stored client error, and lets a retry after a server error run again", async () => {
    const name = uniqueName();
    await createModel(classificationModel(name));
    const key = crypto.randomUUID();
    const dup = await call("/admin/models", {
      method: "POST",
      body: classificationModel(name),
      headers: { "idempotency-key": key },
    });
    expect(dup.status).toBe(409);
    const again = await call("/admin/models", {
      method: "POST",
      body: classificationModel(name),
      headers: { "idempotency-key": key },
    });
    expect(again.status).toBe(409);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
  });

  it("lets only one of two concurrent requests with the same key make the change", async () => {
    const name = uniqueName();
    const key = crypto.randomUUID();
    const send = () =>
      call("/admin/models", {
        method: "POST",
        body: classificationModel(name),
        headers: { "idempotency-key": key },
      });
    const responses = await Promise.all([send(), send(), send()]);
    const statuses = responses.map((r) => r.status).sort();
    // Each is either the creation, its replay, or told to retry while it is in flight.
    for (const status of statuses) expect([201, 409]).toContain(status);
    expect(statuses.filter((s) => s === 201).length).toBeGreaterThanOrEqual(1);
    for (const response of responses.filter((r) => r.status === 409)) {
      expect((await json<ErrorJson>(response)).error.code).toBe("IDEMPOTENCY_KEY_IN_USE");
    }
    expect(await auditCount(`models/${name}`)).toBe(1);
  });

  it("refuses a malformed key", async () => {
    const response = await call("/admin/models", {
      method: "POST",
      body: classificationModel(uniqueName()),
      headers: { "idempotency-key": "x".repeat(300) },
    });
    expect(response.status).toBe(400);
    expect((await json<ErrorJson>(response)).error.message).toContain("Idempotency-Key");
  });
});
