import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import worker from "../../functions/index";
import { openDatabase } from "../../shared/db/client";
import {
  adminToken,
  call,
  classificationModel,
  createModel,
  deadDatabaseProxy,
  type ErrorJson,
  executionContext,
  httpUpstream,
  json,
  uniqueName,
} from "./helpers";

describe("Postgres", () => {
  it("serves concurrent admin requests that each hold their own connection", async () => {
    const names = Array.from({ length: 12 }, () => uniqueName("conc"));
    const responses = await Promise.all(
      names.map((name) =>
        call("/admin/models", { method: "POST", body: classificationModel(name) }),
      ),
    );
    expect(responses.map((r) => r.status)).toEqual(names.map(() => 201));
    const read = await Promise.all(names.map((name) => call(`/admin/models/${name}`)));
    expect(read.map((r) => r.status)).toEqual(names.map(() => 200));
  });

  it("keeps several connections open at once, interleaving their statements", async () => {
    const handles = Array.from({ length: 8 }, () => openDatabase(env));
    try {
      // Every connection runs a statement before any of them runs its second.
      const first = await Promise.all(
        handles.map(({ db }, i) => db.execute(sql`select ${i}::int as i`)),
      );
      expect(first.map((r) => (r.rows[0] as { i: number }).i)).toEqual(handles.map((_, i) => i));
      const second = await Promise.all(
        handles.map(({ db }, i) =>
          db.execute(sql`select ${i * 10}::int as i, 'c' || ${String(i)} as tag`),
        ),
      );
      expect(second.map((r) => r.rows[0])).toEqual(
        handles.map((_, i) => ({ i: i * 10, tag: `c${i}` })),
      );
    } finally {
      await Promise.all(handles.map((h) => h.close()));
    }
  });

  it("runs concurrent transactions without mixing them up", async () => {
    const model = uniqueName();
    await createModel(classificationModel(model));
    const labels = Array.from({ length: 15 }, (_, i) => `v${i}`);
    const responses = await Promise.all(
      labels.map((version) =>
        call(`/admin/models/${model}/versions`, {
          method: "POST",
          body: { version, upstream: httpUpstream },
        }),
      ),
    );
    expect(responses.map((r) => r.status)).toEqual(labels.map(() => 201));
    const page = await json<{ items: { version: string }[] }>(
      await call(`/admin/models/${model}/versions?limit=100`),
    );
    expect(page.items.map((v) => v.version).sort()).toEqual([...labels].sort());
  });

  it("answers 503 DATABASE_UNAVAILABLE with Retry-After when Postgres refuses connections, and stores nothing", async () => {
    const name = uniqueName();
    const response = await worker.fetch(
      new Request("http://airlock.test/admin/models", {
        method: "POST",
        headers: { authorization: `Bearer ${adminToken()}`, "content-type": "application/json" },
        body: JSON.stringify(classificationModel(name)),
      }),
      { ...env, DATABASE_WS_PROXY: deadDatabaseProxy },
      executionContext(),
    );
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("5");
    const body = await json<ErrorJson>(response);
    expect(body.error.code).toBe("DATABASE_UNAVAILABLE");
    expect(body.error.message).not.toMatch(/127\.0\.0\.1|websocket|ECONNREFUSED/i);
    expect((await call(`/admin/models/${name}`)).status).toBe(404);
  });

  it("answers 503 when the database endpoint itself cannot be reached", async () => {
    const response = await worker.fetch(
      new Request("http://airlock.test/admin/models", {
        headers: { authorization: `Bearer ${adminToken()}` },
      }),
      { ...env, DATABASE_WS_PROXY: "127.0.0.1:9" },
      executionContext(),
    );
    expect(response.status).toBe(503);
    expect((await json<ErrorJson>(response)).error.code).toBe("DATABASE_UNAVAILABLE");
  });

  it("rolls a change back whole when its audit row cannot be written", async () => {
    const name = uniqueName("atomic");
    const trigger = `fail_${name.replace(/-/g, "_")}`;
    const { db, close } = openDatabase(env);
    try {
      // A fault injected into the database: audit inserts for this one model fail.
      await db.execute(
        sql.raw(`create function ${trigger}() returns trigger language plpgsql as $$
          begin if new.target = 'models/${name}' then raise exception 'injected audit failure'; end if; return new; end $$`),
      );
      await db.execute(
        sql.raw(
          `create trigger ${trigger} before insert on audit_log for each row execute function ${trigger}()`,
        ),
      );
      const response = await call("/admin/models", {
        method: "POST",
        body: classificationModel(name),
      });
      expect(response.status).toBe(500);
      expect(await response.text()).not.toContain("injected");
      expect((await call(`/admin/models/${name}`)).status).toBe(404);
    } finally {
      await db.execute(sql.raw(`drop trigger if exists ${trigger} on audit_log`));
      await db.execute(sql.raw(`drop function if exists ${trigger}()`));
      await close();
    }
    // Without the fault the same request succeeds: the failure above was the audit row's.
    expect(
      (await call("/admin/models", { method: "POST", body: classificationModel(name) })).status,
    ).toBe(201);
  });
});
