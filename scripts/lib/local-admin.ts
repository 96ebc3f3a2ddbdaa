// The admin person a local Airlock acts as: `npm start` creates them on a fresh database with the
// bootstrap token, issues them a personal access token and keeps it in the state directory
// (`admin-token`, readable by its owner only); the traffic generator and the benchmarks read it
// from there. The bootstrap token itself only manages principals (creates them, grants and revokes
// roles, issues their tokens, disables them) and engages kill switches.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { stateDir } from "./environment.ts";

export const LOCAL_ADMIN_EMAIL = "admin@airlock.localhost";

/** Where the local admin's token is kept. */
export function adminTokenFile(dir = stateDir): string {
  return join(dir, "admin-token");
}

/** The local admin's token, if one was written. */
export function readAdminToken(file = adminTokenFile()): string | undefined {
  if (!existsSync(file)) return undefined;
  const token = readFileSync(file, "utf8").trim();
  return token === "" ? undefined : token;
}

export interface LocalAdmin {
  token: string;
  principalId: string;
  /** A token was issued now (the one on file was missing or no longer valid). */
  issued: boolean;
}

/**
 * Makes sure the local admin person exists and holds a valid token: the one
 * on file when it still authenticates, or a new one (issued with the
 * bootstrap token) written over it.
 */
export async function ensureLocalAdmin(
  base: string,
  bootstrapToken: string,
  file = adminTokenFile(),
): Promise<LocalAdmin> {
  const known = readAdminToken(file);
  if (known) {
    const me = await request(base, "GET", "/admin/me", known);
    if (me.status === 200) {
      const body = (await me.json()) as { principal: { id: string } };
      return { token: known, principalId: body.principal.id, issued: false };
    }
  }
  const created = await request(base, "POST", "/admin/principals", bootstrapToken, {
    kind: "person",
    displayName: "Local admin",
    email: LOCAL_ADMIN_EMAIL,
    grants: [{ role: "admin" }],
  });
  let principalId: string;
  if (created.status === 201) {
    principalId = ((await created.json()) as { id: string }).id;
  } else if (created.status === 409) {
    // The person exists (a database kept from an earlier run): a new token for them.
    const body = (await created.json()) as { error: { details?: { message: string }[] } };
    const match = /belongs to (prn_[a-z0-9]+)/.exec(body.error.details?.[0]?.message ?? "");
    if (!match?.[1])
      throw new Error(`the local admin exists but its id is unknown: ${JSON.stringify(body)}`);
    principalId = match[1];
  } else {
    throw new Error(`creating the local admin: ${created.status} ${await created.text()}`);
  }
  const issued = await request(
    base,
    "POST",
    `/admin/principals/${principalId}/tokens`,
    bootstrapToken,
    {
      name: "npm start",
      expiresInDays: 366,
    },
  );
  if (issued.status !== 201)
    throw new Error(`issuing the local admin's token: ${issued.status} ${await issued.text()}`);
  const { token } = (await issued.json()) as { token: string };
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return { token, principalId, issued: true };
}

async function request(
  base: string,
  method: string,
  path: string,
  token: string,
  body?: unknown,
): Promise<Response> {
  return fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000),
  });
}
