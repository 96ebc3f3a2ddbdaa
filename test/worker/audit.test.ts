import { runInDurableObject } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import type { ModelRollout } from "../../durable-objects/model-rollout";
import {
  call,
  classificationModel,
  createModel,
  createVersion,
  database,
  errorChain,
  json,
  rejection,
  uniqueName,
} from "./helpers";
import { rolloutStub } from "./rollout-helpers";

interface AuditPage {
  items: {
    id: string;
    action: string;
    target: string;
    actor: string;
    before: unknown;
    after: Record<string, unknown> | null;
    requestId: string | null;
    source: string;
  }[];
  nextCursor: string | null;
}

describe("audit trail", () => {
  it("records every admin change with actor, before, after and request id, newest first", async () => {
    const model = uniqueName();
    const created = await createModel(classificationModel(model));
    await createVersion(model, "v1");
    const patched = await call(`/admin/models/${model}`, {
      method: "PATCH",
      body: { owner: "team-b" },
    });
    expect(patched.status).toBe(200);
    // The rollout object writes its own rows when its outbox flushes: flush it now.
    await runInDurableObject(rolloutStub(model), (instance: ModelRollout) =>
      instance.flushOutbox(),
    );

    const page = await json<AuditPage>(await call(`/admin/audit?target=models/${model}`));
    // The model's change reaches its rollout object, whose registry sync is in the trail too.
    expect(page.items.map((e) => [e.action, e.target])).toEqual([
      ["registry.sync", `models/${model}/rollout`],
      ["model.update", `models/${model}`],
      ["version.create", `models/${model}/versions/v1`],
      ["model.create", `models/${model}`],
    ]);
    const [, update, , create] = page.items;
    expect(update).toMatchObject({
      actor: "prn_testadmin",
      auth: { method: "token", tokenId: "tok_testadmin" },
      source: "api",
      before: { owner: "risk-ml@example.com" },
      after: { owner: "team-b" },
      requestId: patched.headers.get("x-request-id"),
    });
    expect(create?.before).toBeNull();
    expect(create?.after).toMatchObject({ name: model, task: "classification" });
    expect(create?.requestId).toBe(created.headers.get("x-request-id"));
  });

  it("filters by action and pages with a cursor", async () => {
    const model = uniqueName();
    await createModel(classificationModel(model));
    for (const v of ["v1", "v2", "v3"]) await createVersion(model, v);
    const first = await json<AuditPage>(
      await call(`/admin/audit?target=models/${model}&action=version.create&limit=2`),
    );
    expect(first.items.map((e) => e.target)).toEqual([
      `models/${model}/versions/v3`,
      `models/${model}/versions/v2`,
    ]);
    const second = await json<AuditPage>(
      await call(
        `/admin/audit?target=models/${model}&action=version.create&limit=2&cursor=${first.nextCursor}`,
      ),
    );
    expect(second.items.map((e) => e.target)).toEqual([`models/${model}/versions/v1`]);
    expect(second.nextCursor).toBeNull();
  });

  it("does not match other models that share a prefix", async () => {
    const model = uniqueName("pre");
    await createModel(classificationModel(model));
    await createModel(classificationModel(`${model}x`));
    const page = await json<AuditPage>(await call(`/admin/audit?target=models/${model}`));
    expect(page.items.map((e) => e.target)).toEqual([`models/${model}`]);
  });

  it("writes no audit row for a change that failed", async () => {
    const model = uniqueName();
    await createModel(classificationModel(model));
    const dup = await call("/admin/models", { method: "POST", body: classificationModel(model) });
    expect(dup.status).toBe(409);
    const page = await json<AuditPage>(await call(`/admin/audit?target=models/${model}`));
    expect(page.items).toHaveLength(1);
  });

  it("keeps the trail append-only in the database itself", async () => {
    const model = uniqueName();
    await createModel(classificationModel(model));
    const { db, close } = database();
    try {
      const update = await rejection(
        db.execute(sql`update audit_log set actor = 'x' where target = ${`models/${model}`}`),
      );
      expect(errorChain(update)).toMatch(/audit_log is append-only: UPDATE refused/);
      const remove = await rejection(
        db.execute(sql`delete from audit_log where target = ${`models/${model}`}`),
      );
      expect(errorChain(remove)).toMatch(/audit_log is append-only: DELETE refused/);
      const rows = await db.execute(
        sql`select actor from audit_log where target = ${`models/${model}`}`,
      );
      expect(rows.rows).toEqual([{ actor: "prn_testadmin" }]);
    } finally {
      await close();
    }
  });
});
