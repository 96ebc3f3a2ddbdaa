/**
 * People, service accounts, roles and personal access tokens, end to end
 * through the Worker: what the bootstrap token may do, what each role is
 * refused (before validation), tokens that stop at once, single sign-on
 * behind Cloudflare Access against a local key server, and an audit trail
 * that names each principal without copying their details.
 */
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { importJWK, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import worker from "../../functions/index";
import { sha256Hex } from "../../shared/crypto";
import {
  call,
  classificationModel,
  createModel,
  database,
  type ErrorJson,
  executionContext,
  json,
  principalWithToken,
  uniqueName,
} from "./helpers";

const bootstrap = env.ADMIN_TOKEN;

interface PrincipalJson {
  id: string;
  kind: string;
  email: string | null;
  grants: { role: string; model?: string }[];
  disabledAt: string | null;
}
interface TokenJson {
  id: string;
  token?: string;
  prefix: string;
  expiresAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

const principal = principalWithToken;

async function forbidden(response: Response, permission: string) {
  expect(response.status).toBe(403);
  const body = await json<ErrorJson>(response);
  expect(body.error.code).toBe("FORBIDDEN");
  expect(body.error.message).toContain(`'${permission}'`);
  expect(body.error.details).toEqual([{ path: "permission", message: permission }]);
}

describe("the bootstrap token", () => {
  it("creates a person with a role and issues their token, and is refused everything else", async () => {
    const email = `${uniqueName("first")}@example.com`;
    const created = await call("/admin/principals", {
      method: "POST",
      token: bootstrap,
      body: { kind: "person", displayName: "First Admin", email, grants: [{ role: "admin" }] },
    });
    expect(created.status).toBe(201);
    const person = await json<PrincipalJson>(created);
    expect(person).toMatchObject({ kind: "person", email, grants: [{ role: "admin" }] });
    const issued = await call(`/admin/principals/${person.id}/tokens`, {
      method: "POST",
      token: bootstrap,
      body: { name: "first", expiresInDays: 30 },
    });
    expect(issued.status).toBe(201);
    const { token } = await json<TokenJson>(issued);
    expect(token).toMatch(/^airlock_pat_[A-Za-z0-9_-]{43}$/);
    const me = await json<{ principal: PrincipalJson; auth: { method: string } }>(
      await call("/admin/me", { token }),
    );
    expect(me.principal.id).toBe(person.id);
    expect(me.auth.method).toBe("token");

    await forbidden(await call("/admin/models", { token: bootstrap }), "models.read");
    await forbidden(await call("/admin/audit", { token: bootstrap }), "audit.read");
    await forbidden(await call("/admin/principals", { token: bootstrap }), "principals.read");

    // Its uses are audited as the bootstrap token.
    const trail = await json<{ items: { actor: string; action: string; auth: unknown }[] }>(
      await call(`/admin/audit?target=principals/${person.id}`),
    );
    expect(trail.items.map((e) => [e.action, e.actor, e.auth])).toEqual([
      ["token.create", "admin:bootstrap", { method: "bootstrap", tokenId: null }],
      ["principal.create", "admin:bootstrap", { method: "bootstrap", tokenId: null }],
    ]);
    // Names and emails stay with the principal.
    expect(JSON.stringify(trail)).not.toContain(email);
    expect(JSON.stringify(trail)).not.toContain("First Admin");
  });

  it("engages a kill switch", async () => {
    const model = uniqueName("boot");
    await createModel(classificationModel(model));
    const engaged = await call(`/admin/models/${model}/kill-switch`, {
      method: "POST",
      token: bootstrap,
      body: { scope: "model", reason: "break-glass drill" },
    });
    expect(engaged.status).toBe(200);
    await forbidden(
      await call(`/admin/models/${model}/kill-switch`, { method: "DELETE", token: bootstrap }),
      "killswitch.release",
    );
  });
});

describe("personal access tokens", () => {
  it("are shown once, stored as SHA-256, always expire and note their last use", async () => {
    const { id } = await principal([{ role: "viewer" }]);
    const issued = await call(`/admin/principals/${id}/tokens`, {
      method: "POST",
      headers: { "idempotency-key": `tok-${id}` },
      body: { name: "laptop", expiresInDays: 90 },
    });
    const created = await json<TokenJson>(issued);
    const token = created.token ?? "";
    expect(created.prefix).toBe(token.slice(0, 16));
    // A replay does not show the token again.
    const replay = await call(`/admin/principals/${id}/tokens`, {
      method: "POST",
      headers: { "idempotency-key": `tok-${id}` },
      body: { name: "laptop", expiresInDays: 90 },
    });
    expect((await json<TokenJson>(replay)).token).toBeUndefined();
    const { db, close } = database();
    try {
      const rows = await db.execute<{ token_hash: string; last_used_at: string | null }>(
        sql`select token_hash, last_used_at from principal_tokens where id = ${created.id}`,
      );
      expect(rows.rows[0]?.token_hash).toBe(await sha256Hex(token));
      expect(rows.rows[0]?.last_used_at).toBeNull();
      const everything = await db.execute(sql`select * from principal_tokens`);
      expect(JSON.stringify(everything.rows)).not.toContain(token);
    } finally {
      await close();
    }
    expect((await call("/admin/me", { token })).status).toBe(200);
    const listed = await json<{ items: TokenJson[] }>(await call(`/admin/principals/${id}/tokens`));
    const mine = listed.items.find((t) => t.id === created.id);
    expect(mine?.lastUsedAt).not.toBeNull();
    expect(JSON.stringify(listed)).not.toContain(token);

    for (const body of [
      { name: "no expiry" },
      { name: "past", expiresAt: "2020-01-01T00:00:00Z" },
      { name: "too long", expiresInDays: 400 },
      { name: "far", expiresAt: new Date(Date.now() + 400 * 86_400_000).toISOString() },
    ]) {
      const refused = await call(`/admin/principals/${id}/tokens`, { method: "POST", body });
      expect(refused.status, body.name).toBe(400);
      expect((await json<ErrorJson>(refused)).error.details?.[0]?.path).toMatch(/^expires/);
    }
  });

  it("stop at once when revoked, expired, or their principal disabled", async () => {
    const viewer = await principal([{ role: "viewer" }]);
    const second = await json<TokenJson>(
      await call(`/admin/principals/${viewer.id}/tokens`, {
        method: "POST",
        body: { name: "second", expiresInDays: 1 },
      }),
    );
    expect((await call("/admin/models", { token: viewer.token })).status).toBe(200);
    const revoked = await call(`/admin/principals/${viewer.id}/tokens/${second.id}`, {
      method: "DELETE",
    });
    expect((await json<TokenJson>(revoked)).revokedAt).not.toBeNull();
    expect((await call("/admin/models", { token: second.token ?? "" })).status).toBe(401);
    expect((await call("/admin/models", { token: viewer.token })).status).toBe(200);

    const { db, close } = database();
    try {
      await db.execute(
        sql`update principal_tokens set expires_at = now() - interval '1 second'
            where principal_id = ${viewer.id}`,
      );
    } finally {
      await close();
    }
    expect((await call("/admin/models", { token: viewer.token })).status).toBe(401);

    const other = await principal([{ role: "operator" }]);
    expect((await call("/admin/models", { token: other.token })).status).toBe(200);
    const disabled = await call(`/admin/principals/${other.id}/disable`, {
      method: "POST",
      body: { reason: "left the team" },
    });
    expect((await json<PrincipalJson>(disabled)).disabledAt).not.toBeNull();
    const after = await call("/admin/models", { token: other.token });
    expect(after.status).toBe(401);
    expect(after.headers.get("www-authenticate")).toContain("Bearer");
  });

  it("are issued by people to themselves, never by service accounts", async () => {
    const person = await principal([{ role: "viewer" }]);
    const own = await call("/admin/me/tokens", {
      method: "POST",
      token: person.token,
      body: { name: "mine", expiresInDays: 7 },
    });
    expect(own.status).toBe(201);
    const { id: tokenId } = await json<TokenJson>(own);
    expect(
      (await call(`/admin/me/tokens/${tokenId}`, { method: "DELETE", token: person.token })).status,
    ).toBe(200);
    const service = await principal([{ role: "operator" }], "service");
    await forbidden(
      await call("/admin/me/tokens", {
        method: "POST",
        token: service.token,
        body: { name: "mine", expiresInDays: 7 },
      }),
      "self.tokens",
    );
  });
});

describe("roles", () => {
  it("are refused before the body is validated, naming the permission", async () => {
    const viewer = await principal([{ role: "viewer" }]);
    // An invalid body: a refused caller learns nothing from validation.
    await forbidden(
      await call("/admin/models", { method: "POST", token: viewer.token, body: { name: 5 } }),
      "models.register",
    );
    await forbidden(
      await call("/admin/principals", { method: "POST", token: viewer.token, body: {} }),
      "principals.manage",
    );
  });

  it("give an owner their model and nothing of another's", async () => {
    const mine = uniqueName("own");
    const theirs = uniqueName("other");
    await createModel(classificationModel(mine));
    await createModel(classificationModel(theirs));
    const owner = await principal([{ role: "owner", model: mine }]);
    const patch = (model: string) =>
      call(`/admin/models/${model}`, {
        method: "PATCH",
        token: owner.token,
        body: { description: "changed by its owner" },
      });
    expect((await patch(mine)).status).toBe(200);
    await forbidden(await patch(theirs), "models.write");
    await forbidden(await call(`/admin/models/${theirs}`, { token: owner.token }), "models.read");
    // The list shows the owned model only.
    const listed = await json<{ items: { name: string }[] }>(
      await call("/admin/models?limit=200", { token: owner.token }),
    );
    expect(listed.items.map((m) => m.name)).toEqual([mine]);
    // The change is audited under the owner's id and token.
    const trail = await json<{ items: { actor: string; auth: { tokenId: string } }[] }>(
      await call(`/admin/audit?target=models/${mine}&action=model.update`),
    );
    expect(trail.items[0]?.actor).toBe(owner.id);
  });

  it("are granted and revoked, audited, for models that exist", async () => {
    const model = uniqueName("grant");
    await createModel(classificationModel(model));
    const { id } = await principal([]);
    const missing = await call(`/admin/principals/${id}/grants`, {
      method: "POST",
      body: { role: "owner", model: "no-such-model" },
    });
    expect(missing.status).toBe(400);
    expect((await json<ErrorJson>(missing)).error.details?.[0]?.path).toBe("model");
    const granted = await call(`/admin/principals/${id}/grants`, {
      method: "POST",
      body: { role: "owner", model },
    });
    expect(granted.status).toBe(201);
    const again = await call(`/admin/principals/${id}/grants`, {
      method: "POST",
      body: { role: "owner", model },
    });
    expect(again.status).toBe(200);
    const revoked = await call(`/admin/principals/${id}/grants/owner/${model}`, {
      method: "DELETE",
    });
    expect((await json<PrincipalJson>(revoked)).grants).toEqual([]);
    const gone = await call(`/admin/principals/${id}/grants/owner/${model}`, { method: "DELETE" });
    expect((await json<ErrorJson>(gone)).error.code).toBe("GRANT_NOT_FOUND");
    const trail = await json<{ items: { action: string }[] }>(
      await call(`/admin/audit?target=principals/${id}`),
    );
    expect(trail.items.map((e) => e.action).slice(0, 2)).toEqual([
      "principal.revoke",
      "principal.grant",
    ]);
  });

  it("make reading a prediction's data a permission of its own, and audit each read", async () => {
    const viewer = await principal([{ role: "viewer" }]);
    const officer = await principal([{ role: "risk_officer" }]);
    const predictionId = crypto.randomUUID();
    await forbidden(
      await call(`/admin/predictions/${predictionId}`, { token: viewer.token }),
      "data.read",
    );
    const { db, close } = database();
    try {
      await db.execute(
        sql`insert into outcomes (api_key_id, prediction_id, model, kpi, value, at)
            values ('key_test', ${predictionId}, 'some-model', 'revenue', 1, now())`,
      );
    } finally {
      await close();
    }
    const read = await call(`/admin/predictions/${predictionId}`, { token: officer.token });
    expect(read.status).toBe(200);
    const trail = await json<{ items: { action: string; actor: string }[] }>(
      await call(`/admin/audit?target=predictions/${predictionId}`),
    );
    expect(trail.items).toMatchObject([{ action: "prediction.read", actor: officer.id }]);
  });

  it("are served as data, the same table the check uses", async () => {
    const table = await json<{ roles: Record<string, string[]>; bootstrap: string[] }>(
      await call("/admin/permissions"),
    );
    expect(table.roles.viewer).toContain("models.read");
    expect(table.roles.viewer).not.toContain("models.register");
    expect(table.bootstrap.sort()).toEqual(["killswitch.engage", "principals.manage"]);
  });
});

describe("single sign-on behind Cloudflare Access", () => {
  const bindings = env as unknown as Record<string, string>;
  const teamDomain = bindings.TEST_ACCESS_TEAM_DOMAIN ?? "";
  const AUD = "airlock-admin-aud";
  const key = importJWK(JSON.parse(bindings.TEST_ACCESS_PRIVATE_JWK ?? "{}"), "RS256");
  const kid = (JSON.parse(bindings.TEST_ACCESS_PRIVATE_JWK ?? "{}") as { kid: string }).kid;
  const accessEnv = { ...env, ACCESS_TEAM_DOMAIN: teamDomain, ACCESS_AUD: AUD };

  async function assertion(claims: Record<string, unknown>, aud = AUD): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({
      aud: [aud],
      iss: teamDomain,
      iat: now,
      exp: now + 600,
      sub: "s",
      ...claims,
    })
      .setProtectedHeader({ alg: "RS256", kid })
      .sign(await key);
  }
  const me = (jwt: string) =>
    worker.fetch(
      new Request("http://airlock.test/admin/me", { headers: { "cf-access-jwt-assertion": jwt } }),
      accessEnv,
      executionContext(),
    );

  it("maps a verified email to its person and a service token to its service account", async () => {
    const name = uniqueName("sso");
    const email = `${name}@example.com`;
    const person = await call("/admin/principals", {
      method: "POST",
      body: { kind: "person", displayName: "SSO Person", email, grants: [{ role: "viewer" }] },
    });
    const { id } = await json<PrincipalJson>(person);
    const signedIn = await me(await assertion({ email: email.toUpperCase() }));
    expect(signedIn.status).toBe(200);
    const body = await json<{ principal: PrincipalJson; auth: { method: string } }>(signedIn);
    expect(body.principal.id).toBe(id);
    expect(body.auth.method).toBe("sso");

    const service = await call("/admin/principals", {
      method: "POST",
      body: { kind: "service", displayName: "CI", accessCommonName: `${name}.access`, grants: [] },
    });
    const serviceId = (await json<PrincipalJson>(service)).id;
    const asService = await me(await assertion({ common_name: `${name}.access` }));
    expect((await json<{ principal: PrincipalJson }>(asService)).principal.id).toBe(serviceId);

    const unknown = await me(await assertion({ email: `nobody-${name}@example.com` }));
    expect(unknown.status).toBe(401);
    expect((await json<ErrorJson>(unknown)).error.message).toContain("No enabled person");
    const wrongAudience = await me(await assertion({ email }, "another-app"));
    expect(wrongAudience.status).toBe(401);
    const good = await assertion({ email });
    const [head, payload, signature] = good.split(".");
    const tampered = `${head}.${btoa(JSON.stringify({ ...JSON.parse(atob(payload ?? "")), email: "admin@example.com" })).replace(/=+$/, "")}.${signature}`;
    expect((await me(tampered)).status).toBe(401);
    const unsigned = `${btoa(JSON.stringify({ alg: "none" })).replace(/=+$/, "")}.${payload}.`;
    expect((await me(unsigned)).status).toBe(401);

    // Disabled: the next sign-in is refused.
    await call(`/admin/principals/${id}/disable`, { method: "POST", body: {} });
    expect((await me(good)).status).toBe(401);
  });

  it("is off where it is not configured", async () => {
    const response = await call("/admin/me", {
      token: null,
      headers: { "cf-access-jwt-assertion": await assertion({ email: "x@example.com" }) },
    });
    expect(response.status).toBe(401);
  });
});
