import { z } from "@hono/zod-openapi";
import { and, asc, eq, gt, inArray, sql } from "drizzle-orm";
import { modelsWith } from "../../shared/auth/permissions";
import type { Queryable, Transaction } from "../../shared/db/client";
import { models, modelVersions } from "../../shared/db/schema";
import { ApiError, validationError } from "../../shared/errors";
import { policyInForce } from "../../shared/governance/policy";
import { resumeAfter, splitPage } from "../../shared/pagination";
import { ModelName, PaginationQuery, pageOf } from "../../shared/schemas/common";
import {
  CreateModelBody,
  Model,
  staticFallbackIssues,
  UpdateModelBody,
} from "../../shared/schemas/model";
import { pushRegistryChange } from "../rollout/sync";
import { apiRouter } from "../router";
import { runChange } from "./change";
import { errorResponses, IdempotencyHeader, jsonBody, jsonContent } from "./openapi";
import { adminRoute } from "./route";
import { modelResource } from "./serialize";

export const modelParams = z.object({
  model: ModelName.openapi({ param: { name: "model", in: "path" } }),
});

export const modelsApi = apiRouter();

export async function findModel(db: Queryable, name: string, forUpdate = false) {
  const query = db.select().from(models).where(eq(models.name, name));
  const [row] = forUpdate ? await query.for("update") : await query;
  if (!row) throw new ApiError("MODEL_NOT_FOUND", `Model '${name}' does not exist`);
  return row.governance ? { ...row, governance: policyInForce(row.governance) } : row;
}

modelsApi.openapi(
  adminRoute({
    permission: "models.register",
    method: "post",
    path: "/",
    tags: ["Models"],
    summary: "Register a model",
    request: { headers: IdempotencyHeader, body: jsonBody(CreateModelBody) },
    responses: {
      201: jsonContent(Model, "The stored model"),
      ...errorResponses(400, 401, 409, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const { status, body: model } = await runChange(c, async (tx) => {
      const [row] = await tx
        .insert(models)
        .values({
          name: body.name,
          task: body.task,
          owner: body.owner,
          description: body.description,
          inputSchema: body.inputSchema,
          classes: body.classes ?? null,
          positiveClass: body.positiveClass ?? null,
          public: body.public,
          fallback: body.fallback,
        })
        .onConflictDoNothing({ target: models.name })
        .returning();
      if (!row) throw new ApiError("MODEL_EXISTS", `Model '${body.name}' already exists`);
      const resource = modelResource(row);
      return {
        status: 201,
        body: resource,
        audit: [
          {
            action: "model.create",
            targetType: "model",
            target: `models/${row.name}`,
            before: null,
            after: resource,
          },
        ],
      };
    });
    c.header("location", `/admin/models/${model.name}`);
    return c.json(model, status as 201);
  },
);

modelsApi.openapi(
  adminRoute({
    permission: "models.read",
    model: "resource",
    method: "get",
    path: "/",
    tags: ["Models"],
    summary: "List models by name",
    request: { query: PaginationQuery },
    responses: {
      200: jsonContent(pageOf(Model), "A page of models"),
      ...errorResponses(400, 401, 503),
    },
  }),
  async (c) => {
    const { limit, cursor } = c.req.valid("query");
    const after = resumeAfter(cursor, { name: "string" });
    // Only the models the caller may read: all, or those it owns.
    const visible = modelsWith(c.var.principal, "models.read");
    if (visible !== "all" && visible.length === 0)
      return c.json({ items: [], nextCursor: null }, 200);
    const rows = await c.var
      .database()
      .select()
      .from(models)
      .where(
        and(
          visible === "all" ? undefined : inArray(models.name, visible),
          after === undefined ? undefined : gt(models.name, after.name),
        ),
      )
      .orderBy(asc(models.name))
      .limit(limit + 1);
    const page = splitPage(rows, limit, (last) => ({ name: last.name }));
    return c.json({ items: page.rows.map(modelResource), nextCursor: page.nextCursor }, 200);
  },
);

modelsApi.openapi(
  adminRoute({
    permission: "models.read",
    method: "get",
    path: "/{model}",
    tags: ["Models"],
    summary: "Read a model",
    request: { params: modelParams },
    responses: { 200: jsonContent(Model, "The model"), ...errorResponses(400, 401, 404, 503) },
  }),
  async (c) => {
    const row = await findModel(c.var.database(), c.req.valid("param").model);
    return c.json(modelResource(row), 200);
  },
);

modelsApi.openapi(
  adminRoute({
    permission: "models.write",
    method: "patch",
    path: "/{model}",
    tags: ["Models"],
    summary: "Change a model's description, owner, public flag or fallback",
    request: { params: modelParams, body: jsonBody(UpdateModelBody) },
    responses: {
      200: jsonContent(Model, "The updated model"),
      ...errorResponses(400, 401, 404, 413, 415, 503),
    },
  }),
  async (c) => {
    const name = c.req.valid("param").model;
    const patch = c.req.valid("json");
    const { body } = await runChange(c, async (tx) => {
      const current = await findModel(tx, name, true);
      if (patch.fallback) await checkFallback(tx, current, patch.fallback);
      const changed = Object.fromEntries(
        Object.entries(patch).filter(
          ([field, value]) =>
            JSON.stringify(value) !== JSON.stringify(current[field as keyof typeof patch]),
        ),
      ) as typeof patch;
      if (Object.keys(changed).length === 0)
        return { status: 200, body: modelResource(current), audit: [] };
      const [row] = await tx
        .update(models)
        .set({ ...changed, updatedAt: sql`now()` })
        .where(eq(models.id, current.id))
        .returning();
      if (!row) throw new ApiError("MODEL_NOT_FOUND", `Model '${name}' does not exist`);
      const before = Object.fromEntries(
        Object.keys(changed).map((field) => [field, current[field as keyof typeof patch]]),
      );
      return {
        status: 200,
        body: modelResource(row),
        audit: [
          {
            action: "model.update",
            targetType: "model",
            target: `models/${name}`,
            before,
            after: changed,
          },
        ],
      };
    });
    // Requests read the model through its rollout object: acknowledge only once they see the change.
    await pushRegistryChange(c, name);
    return c.json(body, 200);
  },
);

async function checkFallback(
  tx: Transaction,
  model: typeof models.$inferSelect,
  fallback: NonNullable<UpdateModelBody["fallback"]>,
) {
  const issues = staticFallbackIssues(fallback, model.task, model.classes);
  if (fallback.kind === "version") {
    const [version] = await tx
      .select({ status: modelVersions.status })
      .from(modelVersions)
      .where(and(eq(modelVersions.modelId, model.id), eq(modelVersions.version, fallback.version)));
    if (!version) {
      issues.push({
        path: ["fallback", "version"],
        message: `version '${fallback.version}' does not exist`,
      });
    } else if (version.status === "retired") {
      issues.push({
        path: ["fallback", "version"],
        message: `version '${fallback.version}' is retired`,
      });
    } else if ((await versionCount(tx, model.id)) === 1) {
      // The only version is the one that serves, and a fallback is never
      // called for the version that has just failed.
      issues.push({
        path: ["fallback", "version"],
        message: `'${fallback.version}' is the model's only version, so it is the one serving: when it fails there is no other version to fall back to. Register a second version to fall back to, or use a static fallback`,
      });
    }
  }
  if (issues.length > 0) throw validationError(issues, "body");
}

async function versionCount(tx: Transaction, modelId: number): Promise<number> {
  const [row] = await tx
    .select({ count: sql<number>`count(*)::int` })
    .from(modelVersions)
    .where(eq(modelVersions.modelId, modelId));
  return row?.count ?? 0;
}
