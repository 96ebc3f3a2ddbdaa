import { z } from "@hono/zod-openapi";
import { and, desc, eq, like, lt, or, type SQL } from "drizzle-orm";
import { auditLog } from "../../shared/db/schema";
import { resumeAfter, splitPage } from "../../shared/pagination";
import { AuditEntry } from "../../shared/schemas/audit";
import { PaginationQuery, pageOf } from "../../shared/schemas/common";
import { apiRouter } from "../router";
import { errorResponses, jsonContent } from "./openapi";
import { adminRoute } from "./route";

export const auditApi = apiRouter();

const AuditQuery = PaginationQuery.extend({
  target: z
    .string()
    .min(1)
    .max(300)
    .optional()
    .openapi({
      param: { name: "target", in: "query" },
      description:
        "A target such as `models/fraud`: matches it and everything under it (its versions).",
      example: "models/fraud-detector",
    }),
  action: z
    .string()
    .max(100)
    .optional()
    .openapi({ param: { name: "action", in: "query" }, example: "model.update" }),
  actor: z
    .string()
    .max(200)
    .optional()
    .openapi({ param: { name: "actor", in: "query" } }),
});

const escapeLike = (value: string) => value.replace(/[\\%_]/g, (ch) => `\\${ch}`);

auditApi.openapi(
  adminRoute({
    permission: "audit.read",
    method: "get",
    path: "/",
    tags: ["Audit"],
    summary: "Read the audit trail, newest first",
    request: { query: AuditQuery },
    responses: {
      200: jsonContent(pageOf(AuditEntry), "A page of audit entries"),
      ...errorResponses(400, 401, 503),
    },
  }),
  async (c) => {
    const { limit, cursor, target, action, actor } = c.req.valid("query");
    const before = resumeAfter(cursor, { id: "number" });
    const filters: (SQL | undefined)[] = [
      before === undefined ? undefined : lt(auditLog.id, before.id),
      target === undefined
        ? undefined
        : or(
            eq(auditLog.target, target),
            like(auditLog.target, `${escapeLike(target.replace(/\/+$/, ""))}/%`),
          ),
      action === undefined ? undefined : eq(auditLog.action, action),
      actor === undefined ? undefined : eq(auditLog.actor, actor),
    ];
    const rows = await c.var
      .database()
      .select()
      .from(auditLog)
      .where(and(...filters))
      .orderBy(desc(auditLog.id))
      .limit(limit + 1);
    const page = splitPage(rows, limit, (last) => ({ id: last.id }));
    return c.json(
      {
        items: page.rows.map((row) => ({
          id: String(row.id),
          eventId: row.eventId,
          source: row.source,
          actor: row.actor,
          auth: row.authMethod
            ? { method: row.authMethod, tokenId: row.authTokenId ?? null }
            : null,
          action: row.action,
          targetType: row.targetType,
          target: row.target,
          before: row.before ?? null,
          after: row.after ?? null,
          at: row.at.toISOString(),
          requestId: row.requestId ?? null,
        })),
        nextCursor: page.nextCursor,
      },
      200,
    );
  },
);
