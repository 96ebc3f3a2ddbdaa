/**
 * Erasing a person's details: their name, email and tokens' names go, their
 * tokens stop, the id stays; nothing of them was ever in the audit trail,
 * which still verifies, and erasing is itself recorded without the values.
 */
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { call, classificationModel, json, principalWithToken, query, uniqueName } from "./helpers";

interface PrincipalJson {
  id: string;
  displayName: string;
  email: string | null;
  disabledAt: string | null;
  erasedAt: string | null;
}

describe("erasing a principal", () => {
  it("removes the person's details, keeps the id, stops the tokens and keeps the chain whole", async () => {
    const person = await principalWithToken([{ role: "operator" }]);
    const before = await json<PrincipalJson>(await call(`/admin/principals/${person.id}`));
    const { displayName, email } = before;
    expect(email).toMatch(/@example\.com$/);
    // The person acts: the trail names them by id.
    const model = uniqueName("era");
    const created = await call("/admin/models", {
      method: "POST",
      body: classificationModel(model),
      token: person.token,
    });
    expect(created.status).toBe(201);

    const erased = await call(`/admin/principals/${person.id}/erase`, {
      method: "POST",
      body: { reason: "erasure request 2026-114" },
    });
    expect(erased.status).toBe(200);
    const after = await json<PrincipalJson>(erased);
    expect(after).toMatchObject({ id: person.id, displayName: "Erased principal", email: null });
    expect(after.erasedAt).not.toBeNull();
    expect(after.disabledAt).not.toBeNull();

    // Its tokens stop, and their names are gone.
    expect((await call("/admin/models", { token: person.token })).status).toBe(401);
    const tokens = await json<{ items: { name: string; revokedAt: string | null }[] }>(
      await call(`/admin/principals/${person.id}/tokens`),
    );
    expect(tokens.items.length).toBeGreaterThan(0);
    for (const token of tokens.items) {
      expect(token.name).toBe("erased");
      expect(token.revokedAt).not.toBeNull();
    }

    // Nowhere in the database, the trail included; the trail still names the id.
    const [found] = await query<{ n: string }>(sql`
      SELECT (SELECT count(*) FROM principals WHERE email = ${email} OR display_name = ${displayName})
        + (SELECT count(*) FROM audit_log
           WHERE content LIKE ${`%${email}%`} OR content LIKE ${`%${displayName}%`}) AS n`);
    expect(Number(found?.n)).toBe(0);
    const trail = await json<{ items: { action: string; actor: string; after: unknown }[] }>(
      await call(`/admin/audit?target=principals/${person.id}&limit=5`),
    );
    expect(trail.items[0]).toMatchObject({ action: "principal.erase", actor: "prn_testadmin" });
    expect(trail.items[0]?.after).toMatchObject({ erased: true, tokens: tokens.items.length });
    const acted = await json<{ items: { actor: string }[] }>(
      await call(`/admin/audit?target=models/${model}&action=model.create&limit=1`),
    );
    expect(acted.items[0]?.actor).toBe(person.id);
    const verified = await json<{ ok: boolean }>(await call("/admin/audit/verify?limit=50000"));
    expect(verified.ok).toBe(true);

    // Erasing again changes nothing, and records nothing more.
    const again = await call(`/admin/principals/${person.id}/erase`, { method: "POST", body: {} });
    expect(again.status).toBe(200);
    const [rows] = await query<{ n: string }>(
      sql`SELECT count(*) AS n FROM audit_log WHERE target = ${`principals/${person.id}`} AND action = 'principal.erase'`,
    );
    expect(Number(rows?.n)).toBe(1);

    // The email is free for whoever holds it next.
    const reused = await call("/admin/principals", {
      method: "POST",
      body: { kind: "person", displayName: "Someone new", email },
    });
    expect(reused.status).toBe(201);
  });
});
