import { z } from "@hono/zod-openapi";
import { and, desc, eq, inArray, sql } from "drizzle-orm";
import type { Context } from "hono";
import {
  BOOTSTRAP_PERMISSIONS,
  GLOBAL_ROLES,
  type Grant,
  holdsEverywhere,
  PERMISSION_NAMES,
  PERMISSIONS,
  ROLE_PERMISSIONS,
} from "../../shared/auth/permissions";
import { newId, newSecret, PERSONAL_TOKEN_PREFIX, secretHint } from "../../shared/auth/tokens";
import { sha256Hex } from "../../shared/crypto";
import type { Queryable, Transaction } from "../../shared/db/client";
import {
  accessSettings,
  models,
  principalGrants,
  principals,
  principalTokens,
} from "../../shared/db/schema";
import { ApiError, validationError } from "../../shared/errors";
import { cursorTime, resumeAfter, splitPage } from "../../shared/pagination";
import { PaginationQuery, pageOf } from "../../shared/schemas/common";
import {
  BootstrapSetting,
  CreatedToken,
  CreatePrincipalBody,
  CreateTokenBody,
  DisablePrincipalBody,
  Grant as GrantSchema,
  MAX_TOKEN_DAYS,
  Me,
  Principal,
  Token,
} from "../../shared/schemas/principals";
import type { AppEnv } from "../app-env";
import { bootstrapDisabled } from "../middleware/admin-auth";
import { apiRouter } from "../router";
import { runChange } from "./change";
import { errorResponses, IdempotencyHeader, jsonBody, jsonContent } from "./openapi";
import { adminRoute } from "./route";

/**
 * People and service accounts, their roles and their personal access
 * tokens; who the caller is; the permissions table; the bootstrap token.
 * Every change is audited without the person's name or email (they live
 * with the principal only).
 */
export const principalsApi = apiRouter();

type PrincipalRow = typeof principals.$inferSelect;
type TokenRow = typeof principalTokens.$inferSelect;

const PrincipalParams = z.object({
  id: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "id", in: "path" }, example: "prn_k3v9q2m7x4c8t1b5" }),
});
const TokenParams = PrincipalParams.extend({
  tokenId: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "tokenId", in: "path" } }),
});
const OwnTokenParams = TokenParams.omit({ id: true });

function grantOf(row: { role: string; model: string }): Grant {
  return row.role === "owner"
    ? { role: "owner", model: row.model }
    : { role: row.role as (typeof GLOBAL_ROLES)[number] };
}

async function grantsOf(db: Queryable, ids: string[]): Promise<Map<string, Grant[]>> {
  const out = new Map<string, Grant[]>(ids.map((id) => [id, []]));
  if (ids.length === 0) return out;
  const rows = await db
    .select()
    .from(principalGrants)
    .where(inArray(principalGrants.principalId, ids))
    .orderBy(principalGrants.role, principalGrants.model);
  for (const row of rows) out.get(row.principalId)?.push(grantOf(row));
  return out;
}

function principalResource(row: PrincipalRow, grants: Grant[]) {
  return {
    id: row.id,
    kind: row.kind,
    displayName: row.displayName,
    email: row.email ?? null,
    accessCommonName: row.accessCommonName ?? null,
    grants,
    createdAt: row.createdAt.toISOString(),
    createdBy: row.createdBy,
    disabledAt: row.disabledAt?.toISOString() ?? null,
    disabledBy: row.disabledBy ?? null,
    erasedAt: row.erasedAt?.toISOString() ?? null,
  };
}

function tokenResource(row: TokenRow) {
  return {
    id: row.id,
    principalId: row.principalId,
    name: row.name,
    prefix: row.prefix,
    createdAt: row.createdAt.toISOString(),
    createdBy: row.createdBy,
    expiresAt: row.expiresAt.toISOString(),
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
    revokedAt: row.revokedAt?.toISOString() ?? null,
    revokedBy: row.revokedBy ?? null,
  };
}

/** What the trail keeps of a principal: no name, no email. */
const auditedPrincipal = (row: PrincipalRow, grants: Grant[]) => ({
  id: row.id,
  kind: row.kind,
  grants,
  disabled: row.disabledAt !== null,
});

const notFound = (id: string) =>
  new ApiError("PRINCIPAL_NOT_FOUND", `Principal '${id}' does not exist`);

async function findPrincipal(db: Queryable, id: string, forUpdate = false): Promise<PrincipalRow> {
  const query = db.select().from(principals).where(eq(principals.id, id));
  const [row] = forUpdate ? await query.for("update") : await query;
  if (!row) throw notFound(id);
  return row;
}

/** Refuses grants of models that do not exist, naming each (`at` gives the body path of grant i). */
async function checkGrantModels(
  tx: Transaction,
  grants: Grant[],
  at: (i: number) => (string | number)[],
) {
  const named = grants.flatMap((grant, i) =>
    grant.role === "owner" ? [{ i, model: grant.model }] : [],
  );
  if (named.length === 0) return;
  const found = await tx
    .select({ name: models.name })
    .from(models)
    .where(
      inArray(
        models.name,
        named.map((n) => n.model),
      ),
    );
  const known = new Set(found.map((row) => row.name));
  const missing = named.flatMap(({ i, model }) =>
    known.has(model)
      ? []
      : [{ path: [...at(i), "model"], message: `model '${model}' does not exist` }],
  );
  if (missing.length > 0) throw validationError(missing, "body");
}

/**
 * Refuses a change that would leave no enabled admin person while the
 * bootstrap token is off: nobody could then grant a role again.
 */
async function keepAnAdmin(tx: Transaction, losing: string) {
  if (!(await bootstrapOff(tx))) return;
  if ((await adminPeople(tx, losing)) === 0) {
    throw new ApiError(
      "LAST_ADMIN",
      "This would leave no enabled admin person while the bootstrap token is off; grant admin to someone else first, or turn the bootstrap token back on",
    );
  }
}

/** Enabled people holding admin, but `except`. */
async function adminPeople(db: Queryable, except: string | null = null): Promise<number> {
  const { rows } = await db.execute<{ n: number }>(sql`
    SELECT count(*)::int AS n FROM principals p JOIN principal_grants g ON g.principal_id = p.id
    WHERE g.role = 'admin' AND p.kind = 'person' AND p.disabled_at IS NULL
      AND p.id IS DISTINCT FROM ${except}::text`);
  return rows[0]?.n ?? 0;
}

async function bootstrapOff(db: Queryable): Promise<boolean> {
  const [row] = await db
    .select({ value: accessSettings.value })
    .from(accessSettings)
    .where(eq(accessSettings.name, "bootstrap_disabled"));
  return row?.value === true;
}

function tokenExpiry(body: z.infer<typeof CreateTokenBody>): Date {
  const now = Date.now();
  const latest = now + MAX_TOKEN_DAYS * 86_400_000;
  if (body.expiresInDays !== undefined) return new Date(now + body.expiresInDays * 86_400_000);
  const at = Date.parse(body.expiresAt ?? "");
  if (!(at > now))
    throw validationError([{ path: ["expiresAt"], message: "must be in the future" }], "body");
  if (at > latest)
    throw validationError(
      [{ path: ["expiresAt"], message: `must be at most ${MAX_TOKEN_DAYS} days ahead` }],
      "body",
    );
  return new Date(at);
}

/** Issues a token for a principal, audited; the token is in the first response only. */
async function issueToken(
  c: Context<AppEnv>,
  principalId: string,
  body: z.infer<typeof CreateTokenBody>,
) {
  const expiresAt = tokenExpiry(body);
  const token = newSecret(PERSONAL_TOKEN_PREFIX);
  const tokenHash = await sha256Hex(token);
  return runChange(c, async (tx) => {
    const principal = await findPrincipal(tx, principalId, true);
    if (principal.disabledAt)
      throw new ApiError("PRINCIPAL_DISABLED", `Principal '${principalId}' is disabled`);
    const [row] = await tx
      .insert(principalTokens)
      .values({
        id: newId("tok_"),
        principalId,
        name: body.name,
        prefix: secretHint(token, PERSONAL_TOKEN_PREFIX),
        tokenHash,
        createdBy: c.var.principal.actor,
        expiresAt,
      })
      .returning();
    if (!row) throw new ApiError("INTERNAL_ERROR", "Token was not stored");
    const resource = tokenResource(row);
    return {
      status: 201,
      body: { ...resource, token },
      replayBody: resource,
      audit: [
        {
          action: "token.create",
          targetType: "token",
          target: `principals/${principalId}/tokens/${row.id}`,
          before: null,
          after: { id: row.id, principalId, expiresAt: resource.expiresAt },
        },
      ],
    };
  });
}

async function listTokens(c: Context<AppEnv>, principalId: string) {
  const db = c.var.database();
  await findPrincipal(db, principalId);
  const rows = await db
    .select()
    .from(principalTokens)
    .where(eq(principalTokens.principalId, principalId))
    .orderBy(desc(principalTokens.createdAt), desc(principalTokens.id))
    .limit(500);
  return { items: rows.map(tokenResource) };
}

async function revokeToken(c: Context<AppEnv>, principalId: string, tokenId: string) {
  return runChange(c, async (tx) => {
    const [row] = await tx
      .select()
      .from(principalTokens)
      .where(and(eq(principalTokens.id, tokenId), eq(principalTokens.principalId, principalId)))
      .for("update");
    if (!row)
      throw new ApiError("TOKEN_NOT_FOUND", `Principal '${principalId}' has no token '${tokenId}'`);
    if (row.revokedAt) return { status: 200, body: tokenResource(row), audit: [] };
    const [revoked] = await tx
      .update(principalTokens)
      .set({ revokedAt: new Date(), revokedBy: c.var.principal.actor })
      .where(eq(principalTokens.id, tokenId))
      .returning();
    if (!revoked) throw new ApiError("INTERNAL_ERROR", "Token was not revoked");
    return {
      status: 200,
      body: tokenResource(revoked),
      audit: [
        {
          action: "token.revoke",
          targetType: "token",
          target: `principals/${principalId}/tokens/${tokenId}`,
          before: { revoked: false },
          after: { revoked: true },
        },
      ],
    };
  });
}

// ---- principals ----------------------------------------------------------------

principalsApi.openapi(
  adminRoute({
    permission: "principals.manage",
    method: "post",
    path: "/principals",
    tags: ["People and permissions"],
    summary: "Add a person or a service account, with roles",
    description:
      "The bootstrap token may call this. Names and emails stay with the principal; the audit trail names it by id.",
    request: { headers: IdempotencyHeader, body: jsonBody(CreatePrincipalBody) },
    responses: {
      201: jsonContent(Principal, "The principal"),
      ...errorResponses(400, 401, 409, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const grants = dedupe(body.grants ?? []);
    const { status, body: created } = await runChange(c, async (tx) => {
      await checkGrantModels(tx, grants, (i) => ["grants", i]);
      const [row] = await tx
        .insert(principals)
        .values({
          id: newId("prn_"),
          kind: body.kind,
          displayName: body.displayName,
          email: body.email ?? null,
          accessCommonName: body.accessCommonName ?? null,
          createdBy: c.var.principal.actor,
        })
        .onConflictDoNothing()
        .returning();
      if (!row) {
        const field = body.email !== undefined ? "email" : "accessCommonName";
        const [existing] = await tx
          .select({ id: principals.id })
          .from(principals)
          .where(
            body.email !== undefined
              ? eq(principals.email, body.email)
              : eq(principals.accessCommonName, body.accessCommonName ?? ""),
          );
        throw new ApiError(
          "PRINCIPAL_EXISTS",
          `A principal with this ${field} exists${existing ? `: ${existing.id}` : ""}`,
          {
            details: [
              { path: field, message: `belongs to ${existing?.id ?? "another principal"}` },
            ],
          },
        );
      }
      if (grants.length > 0) {
        await tx.insert(principalGrants).values(
          grants.map((grant) => ({
            principalId: row.id,
            role: grant.role,
            model: grant.role === "owner" ? grant.model : "",
            grantedBy: c.var.principal.actor,
          })),
        );
      }
      return {
        status: 201 as const,
        body: principalResource(row, grants),
        audit: [
          {
            action: "principal.create",
            targetType: "principal",
            target: `principals/${row.id}`,
            before: null,
            after: auditedPrincipal(row, grants),
          },
        ],
      };
    });
    return c.json(created, status as 201);
  },
);

function dedupe(grants: Grant[]): Grant[] {
  const seen = new Map<string, Grant>();
  for (const grant of grants)
    seen.set(`${grant.role}/${grant.role === "owner" ? grant.model : ""}`, grant);
  return [...seen.values()];
}

principalsApi.openapi(
  adminRoute({
    permission: "principals.read",
    method: "get",
    path: "/principals",
    tags: ["People and permissions"],
    summary: "List people and service accounts, newest first",
    request: {
      query: PaginationQuery.extend({
        kind: z
          .enum(["person", "service"])
          .optional()
          .openapi({ param: { name: "kind", in: "query" } }),
      }),
    },
    responses: {
      200: jsonContent(pageOf(Principal), "A page of principals"),
      ...errorResponses(400, 401, 503),
    },
  }),
  async (c) => {
    const { limit, cursor, kind } = c.req.valid("query");
    const before = resumeAfter(cursor, { created: "number", id: "string" });
    const db = c.var.database();
    const rows = await db
      .select()
      .from(principals)
      .where(
        and(
          kind === undefined ? undefined : eq(principals.kind, kind),
          before === undefined
            ? undefined
            : sql`(${principals.createdAt}, ${principals.id}) < (${cursorTime(before.created).toISOString()}::timestamptz, ${before.id})`,
        ),
      )
      .orderBy(desc(principals.createdAt), desc(principals.id))
      .limit(limit + 1);
    const page = splitPage(rows, limit, (last) => ({
      created: last.createdAt.getTime(),
      id: last.id,
    }));
    const grants = await grantsOf(
      db,
      page.rows.map((row) => row.id),
    );
    return c.json(
      {
        items: page.rows.map((row) => principalResource(row, grants.get(row.id) ?? [])),
        nextCursor: page.nextCursor,
      },
      200,
    );
  },
);

principalsApi.openapi(
  adminRoute({
    permission: "principals.read",
    method: "get",
    path: "/principals/{id}",
    tags: ["People and permissions"],
    summary: "One principal, with its roles",
    request: { params: PrincipalParams },
    responses: {
      200: jsonContent(Principal, "The principal"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const db = c.var.database();
    const row = await findPrincipal(db, id);
    return c.json(principalResource(row, (await grantsOf(db, [id])).get(id) ?? []), 200);
  },
);

principalsApi.openapi(
  adminRoute({
    permission: "principals.manage",
    method: "post",
    path: "/principals/{id}/disable",
    tags: ["People and permissions"],
    summary: "Disable a principal: its tokens and sign-ins stop at once",
    request: {
      params: PrincipalParams,
      headers: IdempotencyHeader,
      body: jsonBody(DisablePrincipalBody),
    },
    responses: {
      200: jsonContent(Principal, "The disabled principal"),
      ...errorResponses(400, 401, 404, 409, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const { reason } = c.req.valid("json");
    const { body } = await runChange(c, async (tx) => {
      const row = await findPrincipal(tx, id, true);
      const grants = (await grantsOf(tx, [id])).get(id) ?? [];
      if (row.disabledAt) return { status: 200, body: principalResource(row, grants), audit: [] };
      await keepAnAdmin(tx, id);
      const [disabled] = await tx
        .update(principals)
        .set({ disabledAt: new Date(), disabledBy: c.var.principal.actor })
        .where(eq(principals.id, id))
        .returning();
      if (!disabled) throw notFound(id);
      return {
        status: 200,
        body: principalResource(disabled, grants),
        audit: [
          {
            action: "principal.disable",
            targetType: "principal",
            target: `principals/${id}`,
            before: auditedPrincipal(row, grants),
            after: { ...auditedPrincipal(disabled, grants), reason: reason ?? null },
          },
        ],
      };
    });
    return c.json(body, 200);
  },
);

/** What an erased principal is called from then on. */
export const ERASED_NAME = "Erased principal";

principalsApi.openapi(
  adminRoute({
    permission: "principals.manage",
    method: "post",
    path: "/principals/{id}/erase",
    tags: ["People and permissions"],
    summary: "Erase a principal's details: name, email, tokens' names",
    description:
      "The right to erasure, without breaking the audit chain (which names principals by id only): the display name becomes `Erased principal`, the email (or Access common name) and the names of its tokens are removed, its tokens are revoked and it is disabled. The id stays, so the trail, approvals and notices still say what that principal did. Audited as `principal.erase`, without the erased values. Erasing again changes nothing.",
    request: {
      params: PrincipalParams,
      headers: IdempotencyHeader,
      body: jsonBody(DisablePrincipalBody),
    },
    responses: {
      200: jsonContent(Principal, "The erased principal"),
      ...errorResponses(400, 401, 404, 409, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const { reason } = c.req.valid("json");
    const { body } = await runChange(c, async (tx) => {
      const row = await findPrincipal(tx, id, true);
      const grants = (await grantsOf(tx, [id])).get(id) ?? [];
      if (row.erasedAt) return { status: 200, body: principalResource(row, grants), audit: [] };
      if (!row.disabledAt) await keepAnAdmin(tx, id);
      const actor = c.var.principal.actor;
      const [erased] = await tx
        .update(principals)
        .set({
          displayName: ERASED_NAME,
          email: null,
          accessCommonName: null,
          disabledAt: row.disabledAt ?? new Date(),
          disabledBy: row.disabledBy ?? actor,
          erasedAt: new Date(),
          erasedBy: actor,
        })
        .where(eq(principals.id, id))
        .returning();
      if (!erased) throw notFound(id);
      const revoked = await tx
        .update(principalTokens)
        .set({
          name: "erased",
          revokedAt: sql`coalesce(${principalTokens.revokedAt}, now())`,
          revokedBy: sql`coalesce(${principalTokens.revokedBy}, ${actor})`,
        })
        .where(eq(principalTokens.principalId, id))
        .returning({ id: principalTokens.id });
      return {
        status: 200,
        body: principalResource(erased, grants),
        audit: [
          {
            action: "principal.erase",
            targetType: "principal",
            target: `principals/${id}`,
            before: { ...auditedPrincipal(row, grants), erased: false },
            after: {
              ...auditedPrincipal(erased, grants),
              erased: true,
              tokens: revoked.length,
              reason: reason ?? null,
            },
          },
        ],
      };
    });
    return c.json(body, 200);
  },
);

// ---- grants --------------------------------------------------------------------

principalsApi.openapi(
  adminRoute({
    permission: "principals.manage",
    method: "post",
    path: "/principals/{id}/grants",
    tags: ["People and permissions"],
    summary: "Grant a role: a global one, or ownership of a model",
    description: "The bootstrap token may call this. Granting a role already held changes nothing.",
    request: { params: PrincipalParams, headers: IdempotencyHeader, body: jsonBody(GrantSchema) },
    responses: {
      200: jsonContent(Principal, "The principal, with the role (already held)"),
      201: jsonContent(Principal, "The principal, with the new role"),
      ...errorResponses(400, 401, 404, 409, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const grant = c.req.valid("json") as Grant;
    const model = grant.role === "owner" ? grant.model : "";
    const { status, body } = await runChange(c, async (tx) => {
      const row = await findPrincipal(tx, id, true);
      if (row.disabledAt) throw new ApiError("PRINCIPAL_DISABLED", `Principal '${id}' is disabled`);
      await checkGrantModels(tx, [grant], () => []);
      const before = (await grantsOf(tx, [id])).get(id) ?? [];
      const added = await tx
        .insert(principalGrants)
        .values({ principalId: id, role: grant.role, model, grantedBy: c.var.principal.actor })
        .onConflictDoNothing()
        .returning();
      const after = (await grantsOf(tx, [id])).get(id) ?? [];
      if (added.length === 0)
        return { status: 200, body: principalResource(row, after), audit: [] };
      return {
        status: 201,
        body: principalResource(row, after),
        audit: [
          {
            action: "principal.grant",
            targetType: "principal",
            target: `principals/${id}`,
            before: { grants: before },
            after: { grants: after, granted: grant },
          },
        ],
      };
    });
    return c.json(body, status as 200 | 201);
  },
);

const RoleParams = PrincipalParams.extend({
  role: z.enum(GLOBAL_ROLES).openapi({ param: { name: "role", in: "path" } }),
});
const OwnershipParams = PrincipalParams.extend({
  model: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "model", in: "path" } }),
});

/** Revokes one grant, audited; revoking the last admin while the bootstrap token is off is refused. */
async function revokeGrant(c: Context<AppEnv>, id: string, grant: Grant) {
  const model = grant.role === "owner" ? grant.model : "";
  return runChange(c, async (tx) => {
    const row = await findPrincipal(tx, id, true);
    const before = (await grantsOf(tx, [id])).get(id) ?? [];
    if (grant.role === "admin") await keepAnAdmin(tx, id);
    const removed = await tx
      .delete(principalGrants)
      .where(
        and(
          eq(principalGrants.principalId, id),
          eq(principalGrants.role, grant.role),
          eq(principalGrants.model, model),
        ),
      )
      .returning();
    if (removed.length === 0) {
      throw new ApiError(
        "GRANT_NOT_FOUND",
        `Principal '${id}' does not hold ${grant.role === "owner" ? `ownership of '${model}'` : `the role '${grant.role}'`}`,
      );
    }
    const after = (await grantsOf(tx, [id])).get(id) ?? [];
    return {
      status: 200 as const,
      body: principalResource(row, after),
      audit: [
        {
          action: "principal.revoke",
          targetType: "principal",
          target: `principals/${id}`,
          before: { grants: before },
          after: { grants: after, revoked: grant },
        },
      ],
    };
  });
}

principalsApi.openapi(
  adminRoute({
    permission: "principals.manage",
    method: "delete",
    path: "/principals/{id}/grants/{role}",
    tags: ["People and permissions"],
    summary: "Revoke a global role",
    request: { params: RoleParams },
    responses: {
      200: jsonContent(Principal, "The principal, without the role"),
      ...errorResponses(400, 401, 404, 409, 503),
    },
  }),
  async (c) => {
    const { id, role } = c.req.valid("param");
    const { body } = await revokeGrant(c, id, { role });
    return c.json(body, 200);
  },
);

principalsApi.openapi(
  adminRoute({
    permission: "principals.manage",
    method: "delete",
    path: "/principals/{id}/grants/owner/{model}",
    tags: ["People and permissions"],
    summary: "Revoke ownership of a model",
    request: { params: OwnershipParams },
    responses: {
      200: jsonContent(Principal, "The principal, without the ownership"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { id, model } = c.req.valid("param");
    const { body } = await revokeGrant(c, id, { role: "owner", model });
    return c.json(body, 200);
  },
);

// ---- tokens --------------------------------------------------------------------

principalsApi.openapi(
  adminRoute({
    permission: "principals.manage",
    method: "post",
    path: "/principals/{id}/tokens",
    tags: ["People and permissions"],
    summary: "Issue a personal access token for a principal (shown once)",
    description:
      "The bootstrap token may call this, to give a new admin their first token. Airlock stores the token's SHA-256 only.",
    request: {
      params: PrincipalParams,
      headers: IdempotencyHeader,
      body: jsonBody(CreateTokenBody),
    },
    responses: {
      201: jsonContent(CreatedToken, "The token, shown once"),
      ...errorResponses(400, 401, 404, 409, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const { body } = await issueToken(c, id, c.req.valid("json"));
    return c.json(body, 201);
  },
);

principalsApi.openapi(
  adminRoute({
    permission: "principals.read",
    method: "get",
    path: "/principals/{id}/tokens",
    tags: ["People and permissions"],
    summary: "A principal's tokens (never the tokens themselves)",
    request: { params: PrincipalParams },
    responses: {
      200: jsonContent(z.object({ items: z.array(Token) }), "The tokens, newest first"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => c.json(await listTokens(c, c.req.valid("param").id), 200),
);

principalsApi.openapi(
  adminRoute({
    permission: "principals.manage",
    method: "delete",
    path: "/principals/{id}/tokens/{tokenId}",
    tags: ["People and permissions"],
    summary: "Revoke a principal's token: it stops at once",
    request: { params: TokenParams },
    responses: {
      200: jsonContent(Token, "The revoked token"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { id, tokenId } = c.req.valid("param");
    const { body } = await revokeToken(c, id, tokenId);
    return c.json(body, 200);
  },
);

// ---- the caller ----------------------------------------------------------------

principalsApi.openapi(
  adminRoute({
    permission: "self.read",
    method: "get",
    path: "/me",
    tags: ["People and permissions"],
    summary: "Who the caller is: principal, roles, permissions, how it signed in",
    responses: {
      200: jsonContent(Me, "The caller"),
      ...errorResponses(401, 503),
    },
  }),
  async (c) => {
    const caller = c.var.principal;
    const auth = {
      method: caller.auth.method,
      tokenId: caller.auth.method === "token" ? caller.auth.tokenId : null,
    };
    const row = await findPrincipal(c.var.database(), caller.id);
    return c.json(
      {
        principal: principalResource(row, [...caller.grants]),
        actor: caller.actor,
        auth,
        permissions: PERMISSION_NAMES.filter((p) => holdsEverywhere(caller, p)),
        ownedModels: caller.grants.flatMap((g) => (g.role === "owner" ? [g.model] : [])),
      },
      200,
    );
  },
);

principalsApi.openapi(
  adminRoute({
    permission: "self.tokens",
    method: "post",
    path: "/me/tokens",
    tags: ["People and permissions"],
    summary: "Issue yourself a personal access token (people only; shown once)",
    request: { headers: IdempotencyHeader, body: jsonBody(CreateTokenBody) },
    responses: {
      201: jsonContent(CreatedToken, "The token, shown once"),
      ...errorResponses(400, 401, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const { body } = await issueToken(c, c.var.principal.id, c.req.valid("json"));
    return c.json(body, 201);
  },
);

principalsApi.openapi(
  adminRoute({
    permission: "self.tokens",
    method: "get",
    path: "/me/tokens",
    tags: ["People and permissions"],
    summary: "Your tokens (never the tokens themselves)",
    responses: {
      200: jsonContent(z.object({ items: z.array(Token) }), "Your tokens, newest first"),
      ...errorResponses(401, 503),
    },
  }),
  async (c) => c.json(await listTokens(c, c.var.principal.id), 200),
);

principalsApi.openapi(
  adminRoute({
    permission: "self.tokens",
    method: "delete",
    path: "/me/tokens/{tokenId}",
    tags: ["People and permissions"],
    summary: "Revoke one of your tokens",
    request: { params: OwnTokenParams },
    responses: {
      200: jsonContent(Token, "The revoked token"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { body } = await revokeToken(c, c.var.principal.id, c.req.valid("param").tokenId);
    return c.json(body, 200);
  },
);

// ---- the permissions table ---------------------------------------------------------

const PermissionsTable = z
  .object({
    permissions: z.array(
      z.object({
        name: z.enum(PERMISSION_NAMES),
        scope: z.enum(["model", "global"]),
        description: z.string(),
      }),
    ),
    roles: z.record(z.string(), z.array(z.enum(PERMISSION_NAMES))),
    bootstrap: z.array(z.enum(PERMISSION_NAMES)),
  })
  .openapi("PermissionsTable");

principalsApi.openapi(
  adminRoute({
    permission: "self.read",
    method: "get",
    path: "/permissions",
    tags: ["People and permissions"],
    summary: "Which role holds which permission, as data",
    responses: {
      200: jsonContent(PermissionsTable, "The table"),
      ...errorResponses(401),
    },
  }),
  (c) =>
    c.json(
      {
        permissions: PERMISSION_NAMES.map((name) => ({ name, ...PERMISSIONS[name] })),
        roles: Object.fromEntries(
          Object.entries(ROLE_PERMISSIONS).map(([role, held]) => [role, [...held]]),
        ),
        bootstrap: [...BOOTSTRAP_PERMISSIONS],
      },
      200,
    ),
);

// ---- the bootstrap token -----------------------------------------------------------

principalsApi.openapi(
  adminRoute({
    permission: "bootstrap.manage",
    method: "get",
    path: "/bootstrap",
    tags: ["People and permissions"],
    summary: "Whether the bootstrap token (ADMIN_TOKEN) is on",
    responses: {
      200: jsonContent(BootstrapSetting, "The setting"),
      ...errorResponses(401, 503),
    },
  }),
  async (c) =>
    c.json(
      {
        enabled: !(await bootstrapDisabled(c)),
        configured: (c.env.ADMIN_TOKEN ?? "").length >= 32,
      },
      200,
    ),
);

principalsApi.openapi(
  adminRoute({
    permission: "bootstrap.manage",
    method: "put",
    path: "/bootstrap",
    tags: ["People and permissions"],
    summary: "Turn the bootstrap token off (or on again)",
    description:
      "Turning it off needs an enabled admin person. While it is off, ADMIN_TOKEN opens nothing, except that a kill switch can still be engaged with it while Postgres is down.",
    request: {
      headers: IdempotencyHeader,
      body: jsonBody(z.object({ enabled: z.boolean() }).strict().openapi("SetBootstrap")),
    },
    responses: {
      200: jsonContent(BootstrapSetting, "The setting"),
      ...errorResponses(400, 401, 409, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const { enabled } = c.req.valid("json");
    const { body } = await runChange(c, async (tx) => {
      const wasOff = await bootstrapOff(tx);
      const configured = (c.env.ADMIN_TOKEN ?? "").length >= 32;
      if (wasOff === !enabled) return { status: 200, body: { enabled, configured }, audit: [] };
      if (!enabled && (await adminPeople(tx)) === 0) {
        throw new ApiError(
          "LAST_ADMIN",
          "Turning the bootstrap token off needs an enabled admin person first",
        );
      }
      await tx
        .insert(accessSettings)
        .values({ name: "bootstrap_disabled", value: !enabled, updatedBy: c.var.principal.actor })
        .onConflictDoUpdate({
          target: accessSettings.name,
          set: { value: !enabled, updatedAt: new Date(), updatedBy: c.var.principal.actor },
        });
      return {
        status: 200,
        body: { enabled, configured },
        audit: [
          {
            action: "bootstrap.update",
            targetType: "setting",
            target: "settings/bootstrap",
            before: { enabled: !wasOff },
            after: { enabled },
          },
        ],
      };
    });
    return c.json(body, 200);
  },
);
