import { z } from "@hono/zod-openapi";
import { and, desc, eq, inArray, sql } from "drizzle-orm";
import { API_KEY_PREFIX, newSecret } from "../../shared/auth/tokens";
import { sha256Hex } from "../../shared/crypto";
import { apiKeys, models } from "../../shared/db/schema";
import { ApiError, validationError } from "../../shared/errors";
import { cursorTime, resumeAfter, splitPage } from "../../shared/pagination";
import { ModelName, PaginationQuery, pageOf } from "../../shared/schemas/common";
import { ApiKey, CreatedApiKey, CreateKeyBody } from "../../shared/schemas/keys";
import { pushRegistryChange } from "../rollout/sync";
import { apiRouter } from "../router";
import { runChange } from "./change";
import { errorResponses, IdempotencyHeader, jsonBody, jsonContent } from "./openapi";
import { adminRoute } from "./route";

export const keysApi = apiRouter();

type KeyRow = typeof apiKeys.$inferSelect;

function keyResource(row: KeyRow): ApiKey {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    models: row.models,
    createdAt: row.createdAt.toISOString(),
    createdBy: row.createdBy,
    expiresAt: row.expiresAt?.toISOString() ?? null,
    revokedAt: row.revokedAt?.toISOString() ?? null,
  };
}

/** `ak_` and 256 random bits, base64url: long enough that a fast hash is a safe store. */
/** Pushes the allowed key hashes of each model to its rollout object. */
async function pushKeys(c: Parameters<typeof pushRegistryChange>[0], modelNames: string[]) {
  for (const model of modelNames) await pushRegistryChange(c, model);
}

keysApi.openapi(
  adminRoute({
    permission: "keys.manage",
    method: "post",
    path: "/",
    tags: ["API keys"],
    summary: "Create an API key for some models",
    description:
      "The key is in this response only; Airlock stores its SHA-256. A replay with the same Idempotency-Key returns the key's record without the key.",
    request: { headers: IdempotencyHeader, body: jsonBody(CreateKeyBody) },
    responses: {
      201: jsonContent(CreatedApiKey, "The key, shown once"),
      ...errorResponses(400, 401, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    if (body.expiresAt && Date.parse(body.expiresAt) <= Date.now()) {
      throw validationError([{ path: ["expiresAt"], message: "must be in the future" }], "body");
    }
    const key = newSecret(API_KEY_PREFIX);
    const keyHash = await sha256Hex(key);
    const { body: created } = await runChange(c, async (tx) => {
      const found = await tx
        .select({ name: models.name })
        .from(models)
        .where(inArray(models.name, body.models));
      const known = new Set(found.map((m) => m.name));
      const missing = body.models.flatMap((name, i) =>
        known.has(name) ? [] : [{ path: ["models", i], message: `model '${name}' does not exist` }],
      );
      if (missing.length > 0) throw validationError(missing, "body");
      const [row] = await tx
        .insert(apiKeys)
        .values({
          id: `key_${crypto.randomUUID().replace(/-/g, "").slice(0, 20)}`,
          name: body.name,
          prefix: key.slice(0, 10),
          keyHash,
          models: body.models,
          createdBy: c.var.principal.actor,
          expiresAt: body.expiresAt ? new Date(body.expiresAt) : null,
        })
        .returning();
      if (!row) throw new ApiError("INTERNAL_ERROR", "Key was not stored");
      const resource = keyResource(row);
      return {
        status: 201,
        body: { ...resource, key },
        replayBody: resource,
        audit: [
          {
            action: "api_key.create",
            targetType: "api_key",
            target: `keys/${row.id}`,
            before: null,
            after: resource,
          },
        ],
      };
    });
    await pushKeys(c, body.models);
    c.header("location", `/admin/keys/${created.id}`);
    return c.json(created, 201);
  },
);

keysApi.openapi(
  adminRoute({
    permission: "keys.read",
    method: "get",
    path: "/",
    tags: ["API keys"],
    summary: "List API keys, newest first (never the keys themselves)",
    request: {
      query: PaginationQuery.extend({
        model: ModelName.optional().openapi({ param: { name: "model", in: "query" } }),
      }),
    },
    responses: {
      200: jsonContent(pageOf(ApiKey), "A page of keys"),
      ...errorResponses(400, 401, 503),
    },
  }),
  async (c) => {
    const { limit, cursor, model } = c.req.valid("query");
    const before = resumeAfter(cursor, { created: "number", id: "string" });
    const rows = await c.var
      .database()
      .select()
      .from(apiKeys)
      .where(
        and(
          model === undefined
            ? undefined
            : sql`${apiKeys.models} @> ${JSON.stringify([model])}::jsonb`,
          before === undefined
            ? undefined
            : sql`(${apiKeys.createdAt}, ${apiKeys.id}) < (${cursorTime(before.created).toISOString()}::timestamptz, ${before.id})`,
        ),
      )
      .orderBy(desc(apiKeys.createdAt), desc(apiKeys.id))
      .limit(limit + 1);
    const page = splitPage(rows, limit, (last) => ({
      created: last.createdAt.getTime(),
      id: last.id,
    }));
    return c.json({ items: page.rows.map(keyResource), nextCursor: page.nextCursor }, 200);
  },
);

keysApi.openapi(
  adminRoute({
    permission: "keys.manage",
    method: "delete",
    path: "/{id}",
    tags: ["API keys"],
    summary: "Revoke an API key",
    description:
      "Returns once no request that starts afterwards can use the key (the rollout promise).",
    request: {
      params: z.object({
        id: z
          .string()
          .min(1)
          .max(64)
          .openapi({ param: { name: "id", in: "path" } }),
      }),
    },
    responses: { 200: jsonContent(ApiKey, "The revoked key"), ...errorResponses(401, 404, 503) },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const { body } = await runChange(c, async (tx) => {
      const [current] = await tx.select().from(apiKeys).where(eq(apiKeys.id, id)).for("update");
      if (!current) throw new ApiError("KEY_NOT_FOUND", `API key '${id}' does not exist`);
      if (current.revokedAt) return { status: 200, body: keyResource(current), audit: [] };
      const [row] = await tx
        .update(apiKeys)
        .set({ revokedAt: sql`now()`, revokedBy: c.var.principal.actor })
        .where(eq(apiKeys.id, id))
        .returning();
      if (!row) throw new ApiError("KEY_NOT_FOUND", `API key '${id}' does not exist`);
      const resource = keyResource(row);
      return {
        status: 200,
        body: resource,
        audit: [
          {
            action: "api_key.revoke",
            targetType: "api_key",
            target: `keys/${id}`,
            before: keyResource(current),
            after: resource,
          },
        ],
      };
    });
    // Repeating a revocation pushes again, so a failed push can always be completed.
    await pushKeys(c, body.models);
    return c.json(body, 200);
  },
);
