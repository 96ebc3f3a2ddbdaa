import { runInDurableObject } from "cloudflare:test";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import type { ModelRollout } from "../../durable-objects/model-rollout";
import { sha256Hex } from "../../shared/crypto";
import {
  call,
  classificationModel,
  createModel,
  database,
  type ErrorJson,
  json,
  uniqueName,
} from "./helpers";
import { rolloutStub } from "./rollout-helpers";

interface KeyJson {
  id: string;
  key?: string;
  name: string;
  prefix: string;
  models: string[];
  expiresAt: string | null;
  revokedAt: string | null;
}

async function allowedHashes(model: string): Promise<string[]> {
  return runInDurableObject(
    rolloutStub(model),
    (instance: ModelRollout) => instance.lease(model).state.profile?.apiKeyHashes ?? [],
  );
}

describe("API keys", () => {
  it("shows a new key once, stores only its hash, and hands the hash to the model's rollout", async () => {
    const model = uniqueName("keyed");
    await createModel(classificationModel(model));
    const response = await call("/admin/keys", {
      method: "POST",
      body: { name: "checkout", models: [model] },
    });
    expect(response.status).toBe(201);
    const created = await json<KeyJson>(response);
    expect(created.key).toMatch(/^ak_[A-Za-z0-9_-]{43}$/);
    expect(created).toMatchObject({
      name: "checkout",
      models: [model],
      revokedAt: null,
      expiresAt: null,
    });
    expect(created.key?.startsWith(created.prefix)).toBe(true);
    const key = created.key as string;

    const { db, close } = database();
    try {
      const rows = await db.execute(sql`select * from api_keys where id = ${created.id}`);
      const row = rows.rows[0] as Record<string, unknown>;
      expect(row.key_hash).toBe(await sha256Hex(key));
      expect(JSON.stringify(row)).not.toContain(key);
      const audit = await db.execute(
        sql`select after::text as after from audit_log where target = ${`keys/${created.id}`}`,
      );
      expect(audit.rows).toHaveLength(1);
      expect(JSON.stringify(audit.rows)).not.toContain(key);
    } finally {
      await close();
    }

    const list = await json<{ items: KeyJson[] }>(await call(`/admin/keys?model=${model}`));
    expect(list.items.map((k) => k.id)).toEqual([created.id]);
    expect(JSON.stringify(list)).not.toContain(key);
    expect(await allowedHashes(model)).toEqual([await sha256Hex(key)]);
  });

  it("replays a creation without the key", async () => {
    const model = uniqueName("keyed");
    await createModel(classificationModel(model));
    const headers = { "idempotency-key": crypto.randomUUID() };
    const first = await json<KeyJson>(
      await call("/admin/keys", { method: "POST", body: { name: "a", models: [model] }, headers }),
    );
    expect(first.key).toBeDefined();
    const replay = await call("/admin/keys", {
      method: "POST",
      body: { name: "a", models: [model] },
      headers,
    });
    expect(replay.status).toBe(201);
    const body = await json<KeyJson>(replay);
    expect(body.id).toBe(first.id);
    expect(body.key).toBeUndefined();
    expect(JSON.stringify(body)).not.toContain(first.key as string);
  });

  it("revokes a key: gone from the model's rollout by the time the call returns, and audited", async () => {
    const model = uniqueName("keyed");
    await createModel(classificationModel(model));
    const created = await json<KeyJson>(
      await call("/admin/keys", { method: "POST", body: { name: "b", models: [model] } }),
    );
    expect(await allowedHashes(model)).toHaveLength(1);
    const revoked = await call(`/admin/keys/${created.id}`, { method: "DELETE" });
    expect(revoked.status).toBe(200);
    expect((await json<KeyJson>(revoked)).revokedAt).not.toBeNull();
    expect(await allowedHashes(model)).toEqual([]);
    const again = await call(`/admin/keys/${created.id}`, { method: "DELETE" });
    expect(again.status).toBe(200);
    const audit = await json<{ items: { action: string }[] }>(
      await call(`/admin/audit?target=keys/${created.id}`),
    );
    expect(audit.items.map((e) => e.action)).toEqual(["api_key.revoke", "api_key.create"]);
  });

  it("refuses unknown models, past expiry and unknown keys", async () => {
    const model = uniqueName("keyed");
    await createModel(classificationModel(model));
    const unknown = await call("/admin/keys", {
      method: "POST",
      body: { name: "c", models: [model, "ghost-model"] },
    });
    expect(unknown.status).toBe(400);
    expect((await json<ErrorJson>(unknown)).error.details?.[0]?.path).toBe("models[1]");
    const past = await call("/admin/keys", {
      method: "POST",
      body: { name: "c", models: [model], expiresAt: "2020-01-01T00:00:00Z" },
    });
    expect(past.status).toBe(400);
    expect((await json<ErrorJson>(past)).error.details?.[0]?.path).toBe("expiresAt");
    const missing = await call("/admin/keys/key_doesnotexist", { method: "DELETE" });
    expect(missing.status).toBe(404);
    expect((await json<ErrorJson>(missing)).error.code).toBe("KEY_NOT_FOUND");
    expect(await allowedHashes(model)).toEqual([]);
  });

  it("needs the admin token", async () => {
    expect((await call("/admin/keys", { token: null })).status).toBe(401);
    expect(
      (
        await call("/admin/keys", {
          method: "POST",
          body: { name: "x", models: ["m"] },
          token: null,
        })
      ).status,
    ).toBe(401);
    expect((await call("/admin/keys/key_x", { method: "DELETE", token: null })).status).toBe(401);
  });
});
