import { z } from "@hono/zod-openapi";
import { and, desc, eq, like, or, type SQL, sql } from "drizzle-orm";
import { CHAIN_START } from "../../shared/audit/chain";
import { auditLog } from "../../shared/db/schema";
import { validationError } from "../../shared/errors";
import { resumeAfter, splitPage } from "../../shared/pagination";
import { AuditEntry } from "../../shared/schemas/audit";
import { PaginationQuery, pageOf } from "../../shared/schemas/common";
import { verifyTrail } from "../audit/verify";
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
    summary: "Read the audit trail, newest first (by its sequence)",
    request: { query: AuditQuery },
    responses: {
      200: jsonContent(pageOf(AuditEntry), "A page of audit entries"),
      ...errorResponses(400, 401, 503),
    },
  }),
  async (c) => {
    const { limit, cursor, target, action, actor } = c.req.valid("query");
    const before = resumeAfter(cursor, { seq: "number", id: "number" });
    // The trail's order is its sequence (rows from before the chain, which have none, last).
    const position = sql`(coalesce(${auditLog.seq}, 0), ${auditLog.id})`;
    const filters: (SQL | undefined)[] = [
      before === undefined ? undefined : sql`${position} < (${before.seq}, ${before.id})`,
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
      .orderBy(desc(sql`coalesce(${auditLog.seq}, 0)`), desc(auditLog.id))
      .limit(limit + 1);
    const page = splitPage(rows, limit, (last) => ({ seq: last.seq ?? 0, id: last.id }));
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
          seq: row.seq ?? null,
          hash: row.hash ?? null,
        })),
        nextCursor: page.nextCursor,
      },
      200,
    );
  },
);

const ChainPointSchema = z.object({ seq: z.number().int(), hash: z.string() });

const Verification = z
  .object({
    ok: z
      .boolean()
      .openapi({ description: "False when a row breaks the chain (`broken` says which)." }),
    from: ChainPointSchema.openapi({
      description: "The row the check started after (seq 0: the start).",
    }),
    checked: z.number().int(),
    head: ChainPointSchema.openapi({ description: "The last row that held." }),
    complete: z
      .boolean()
      .openapi({ description: "Whether the check reached the end of the trail." }),
    next: ChainPointSchema.nullable().openapi({
      description: "Where to resume (`?from=&fromHash=`) when the check stopped at `limit`.",
    }),
    broken: z
      .object({
        seq: z.number().int(),
        reason: z.enum([
          "gap",
          "prev_hash",
          "hash",
          "content_seq",
          "content_unreadable",
          "columns",
          "prior_rows",
          "tail",
          "checkpoint",
        ]),
        message: z.string(),
      })
      .nullable(),
    recordedHead: ChainPointSchema.nullable().openapi({
      description: "The database's own record of the chain's last row.",
    }),
  })
  .openapi("AuditVerification");

auditApi.openapi(
  adminRoute({
    permission: "audit.read",
    method: "get",
    path: "/verify",
    tags: ["Audit"],
    summary: "Recompute the audit chain and name the first broken row",
    description:
      "Checks up to `limit` rows after `from` (the start, or a row known good such as a checkpoint's, with its hash): each follows the one before, its hash is its content's, its columns say what its content says; at the start, the rows before the chain against the genesis row; at the end, the trail against the recorded head. Resume with `next`.",
    request: {
      query: z.object({
        from: z.coerce
          .number()
          .int()
          .min(0)
          .default(0)
          .openapi({
            param: { name: "from", in: "query" },
            description: "Sequence number to start after.",
          }),
        fromHash: z
          .string()
          .regex(/^[0-9a-f]{64}$/, "must be 64 lowercase hex digits")
          .optional()
          .openapi({
            param: { name: "fromHash", in: "query" },
            description: "That row's hash (required with `from` above 0).",
          }),
        limit: z.coerce
          .number()
          .int()
          .min(1)
          .max(50_000)
          .default(10_000)
          .openapi({ param: { name: "limit", in: "query" } }),
      }),
    },
    responses: {
      200: jsonContent(Verification, "What the check found"),
      ...errorResponses(400, 401, 503),
    },
  }),
  async (c) => {
    const { from, fromHash, limit } = c.req.valid("query");
    if (from > 0 && !fromHash)
      throw validationError(
        [{ path: ["fromHash"], message: "is required when from is above 0" }],
        "query",
      );
    const verification = await verifyTrail(c.var.database(), {
      from: from === 0 ? CHAIN_START : { seq: from, hash: fromHash ?? "" },
      limit,
    });
    return c.json(verification, 200);
  },
);
