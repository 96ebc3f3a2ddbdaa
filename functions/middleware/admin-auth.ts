import { sql } from "drizzle-orm";
import type { Context, MiddlewareHandler } from "hono";
import { AccessJwtError, accessConfigFromEnv, verifyAccessJwt } from "../../shared/auth/access-jwt";
import type { Grant } from "../../shared/auth/permissions";
import { PERSONAL_TOKEN_PREFIX } from "../../shared/auth/tokens";
import { secretsEqual, sha256Hex } from "../../shared/crypto";
import { isConnectionError } from "../../shared/db/client";
import { ApiError } from "../../shared/errors";
import type { AppEnv, Principal } from "../app-env";
import { bearerToken } from "./bearer";

export interface AdminAuthOptions {
  /** Shortest bootstrap token accepted; a shorter configured one opens nothing. */
  minTokenLength?: number;
}

/** The bootstrap token's principal: it acts as itself, never as a person. */
export const BOOTSTRAP_PRINCIPAL: Principal = {
  id: "bootstrap",
  actor: "admin:bootstrap",
  kind: "bootstrap",
  grants: [],
  auth: { method: "bootstrap" },
};

/** `lastUsedAt` is written at most this often per token. */
const LAST_USED_RESOLUTION = "1 minute";

const unauthorized = (message = "A valid admin bearer token is required") =>
  new ApiError("UNAUTHORIZED", message, {
    headers: { "www-authenticate": 'Bearer realm="airlock-admin"' },
  });

/**
 * Who is calling, before routing, so a 401 reveals nothing about what
 * exists. In order:
 *
 * - `Authorization: Bearer airlock_pat_…`: a personal access token, looked
 *   up by its SHA-256; it must be neither revoked nor expired, and its
 *   principal enabled.
 * - `Authorization: Bearer <ADMIN_TOKEN>`: the bootstrap token, compared in
 *   constant time, unless an admin turned it off (access_settings). While
 *   Postgres cannot answer, it is honoured without that check: its only
 *   reach without Postgres is engaging a kill switch, which takes authority
 *   away and never gives any.
 * - No Authorization header, and `Cf-Access-Jwt-Assertion`: single sign-on
 *   behind Cloudflare Access, where it is configured; the verified email
 *   names a person, a service token's `common_name` a service account.
 *
 * What a principal may do is checked per route (functions/admin/route.ts).
 */
export function adminAuth({
  minTokenLength = 32,
}: AdminAuthOptions = {}): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const authorization = c.req.header("authorization");
    const token = bearerToken(authorization);
    let principal: Principal;
    if (token?.startsWith(PERSONAL_TOKEN_PREFIX)) {
      principal = await tokenPrincipal(c, token);
    } else if (token !== undefined) {
      principal = await bootstrapPrincipal(c, token, minTokenLength);
    } else if (authorization === undefined && c.req.header("cf-access-jwt-assertion")) {
      principal = await accessPrincipal(c, c.req.header("cf-access-jwt-assertion") ?? "");
    } else {
      throw unauthorized();
    }
    c.set("principal", principal);
    await next();
  };
}

interface PrincipalRow extends Record<string, unknown> {
  id: string;
  kind: "person" | "service";
  token_id: string | null;
  stale: boolean | null;
  grants: Grant[];
}

const grantsOf = sql`COALESCE((
  SELECT jsonb_agg(CASE WHEN g.role = 'owner'
    THEN jsonb_build_object('role', g.role, 'model', g.model)
    ELSE jsonb_build_object('role', g.role) END ORDER BY g.role, g.model)
  FROM principal_grants g WHERE g.principal_id = p.id), '[]'::jsonb) AS grants`;

async function tokenPrincipal(c: Context<AppEnv>, token: string): Promise<Principal> {
  const hash = await sha256Hex(token);
  const db = c.var.database();
  const { rows } = await db.execute<PrincipalRow>(sql`
    SELECT p.id, p.kind, t.id AS token_id,
      (t.last_used_at IS NULL OR t.last_used_at < now() - ${LAST_USED_RESOLUTION}::interval) AS stale,
      ${grantsOf}
    FROM principal_tokens t JOIN principals p ON p.id = t.principal_id
    WHERE t.token_hash = ${hash} AND t.revoked_at IS NULL AND t.expires_at > now()
      AND p.disabled_at IS NULL`);
  const row = rows[0];
  if (!row?.token_id) throw unauthorized();
  if (row.stale) {
    await db.execute(sql`
      UPDATE principal_tokens SET last_used_at = now()
      WHERE id = ${row.token_id}
        AND (last_used_at IS NULL OR last_used_at < now() - ${LAST_USED_RESOLUTION}::interval)`);
  }
  return {
    id: row.id,
    actor: row.id,
    kind: row.kind,
    grants: row.grants,
    auth: { method: "token", tokenId: row.token_id },
  };
}

async function bootstrapPrincipal(
  c: Context<AppEnv>,
  token: string,
  minTokenLength: number,
): Promise<Principal> {
  const expected = c.env.ADMIN_TOKEN ?? "";
  if (expected.length < minTokenLength) {
    console.error(
      "ADMIN_TOKEN is missing or shorter than %d characters: the bootstrap token opens nothing",
      minTokenLength,
    );
    throw unauthorized();
  }
  if (!(await secretsEqual(token, expected))) throw unauthorized();
  try {
    if (await bootstrapDisabled(c)) {
      throw unauthorized("The bootstrap token is turned off; use a personal access token");
    }
  } catch (error) {
    if (!isConnectionError(error)) throw error;
    // Break-glass: see above.
  }
  return BOOTSTRAP_PRINCIPAL;
}

/** Whether an admin turned the bootstrap token off (DELETE /admin/bootstrap). */
export async function bootstrapDisabled(c: Context<AppEnv>): Promise<boolean> {
  const { rows } = await c.var
    .database()
    .execute<{ value: unknown }>(
      sql`SELECT value FROM access_settings WHERE name = 'bootstrap_disabled'`,
    );
  return rows[0]?.value === true;
}

async function accessPrincipal(c: Context<AppEnv>, assertion: string): Promise<Principal> {
  let config: ReturnType<typeof accessConfigFromEnv>;
  try {
    config = accessConfigFromEnv(c.env);
  } catch (error) {
    console.error("Single sign-on is misconfigured: %s", (error as Error).message);
    throw unauthorized("Single sign-on is misconfigured on this deployment; use a token");
  }
  if (!config) throw unauthorized();
  let identity: Awaited<ReturnType<typeof verifyAccessJwt>>;
  try {
    identity = await verifyAccessJwt(assertion, config);
  } catch (error) {
    if (error instanceof AccessJwtError) {
      throw unauthorized(`The Cloudflare Access assertion was refused: ${error.message}`);
    }
    throw error;
  }
  const match =
    identity.kind === "person"
      ? sql`p.kind = 'person' AND p.email = ${identity.email}`
      : sql`p.kind = 'service' AND p.access_common_name = ${identity.commonName}`;
  const { rows } = await c.var.database().execute<PrincipalRow>(sql`
    SELECT p.id, p.kind, NULL AS token_id, NULL AS stale, ${grantsOf}
    FROM principals p WHERE ${match} AND p.disabled_at IS NULL`);
  const row = rows[0];
  if (!row) {
    throw unauthorized(
      identity.kind === "person"
        ? `No enabled person in Airlock signs in as ${identity.email}; ask an admin to add you`
        : `No enabled service account in Airlock uses the service token ${identity.commonName}`,
    );
  }
  return { id: row.id, actor: row.id, kind: row.kind, grants: row.grants, auth: { method: "sso" } };
}
