import { z } from "@hono/zod-openapi";
import { and, desc, eq, like, or, type SQL, sql } from "drizzle-orm";
import { CHAIN_START } from "../../shared/audit/chain";
import {
  type Checkpoint,
  importSigningKey,
  type PublicKey,
  verifyCheckpoint,
} from "../../shared/audit/checkpoint";
import { isConnectionError } from "../../shared/db/client";
import { auditLog } from "../../shared/db/schema";
import { ApiError, describeError, validationError } from "../../shared/errors";
import { resumeAfter, splitPage } from "../../shared/pagination";
import { AuditEntry } from "../../shared/schemas/audit";
import { PaginationQuery, pageOf, Timestamp } from "../../shared/schemas/common";
import { checkpointStore, takeCheckpoint } from "../audit/checkpoints";
import { exportStart, exportStream } from "../audit/export";
import { verifyTrail } from "../audit/verify";
import { apiRouter } from "../router";
import { auditRead } from "./change";
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

/** A `from` query parameter: the sequence number a check or an export starts after (0: the start). */
const afterSeq = (description: string) =>
  z.coerce
    .number()
    .int()
    .min(0)
    .default(0)
    .openapi({ param: { name: "from", in: "query" }, description });

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
          "recorded_checkpoint",
        ]),
        message: z.string(),
      })
      .nullable(),
    recordedHead: ChainPointSchema.nullable().openapi({
      description: "The database's own record of the chain's last row.",
    }),
    checkpoint: z
      .object({ seq: z.number().int(), hash: z.string(), at: z.string() })
      .nullable()
      .openapi({
        description:
          "The latest signed checkpoint, from the store outside Postgres, that the trail was held to.",
      }),
    recordedCheckpoint: z
      .object({ seq: z.number().int(), hash: z.string(), at: z.string() })
      .nullable()
      .openapi({
        description:
          "The latest checkpoint in the database's own record (`audit_checkpoints`), which the trail was held to as well.",
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
        from: afterSeq("Sequence number to start after."),
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
    const key = await signingKey(c.env);
    const latest = await storeCall(() => checkpointStore(c.env).latest());
    // A checkpoint that does not verify under our own key is no evidence of anything.
    const checkpoint = latest && (await verifyCheckpoint(latest, key.publicKey)) ? latest : null;
    const verification = await verifyTrail(c.var.database(), {
      from: from === 0 ? CHAIN_START : { seq: from, hash: fromHash ?? "" },
      limit,
      checkpoint,
    });
    return c.json(verification, 200);
  },
);

const CheckpointSchema = z
  .object({
    seq: z.number().int(),
    hash: z.string(),
    at: Timestamp,
    keyId: z.string(),
    signature: z.string().openapi({
      description:
        "Ed25519, base64url, over `airlock-audit-checkpoint/v1\\n<seq>\\n<hash>\\n<at>\\n<keyId>`.",
    }),
  })
  .openapi("AuditCheckpoint");

auditApi.openapi(
  adminRoute({
    permission: "audit.read",
    method: "get",
    path: "/checkpoints",
    tags: ["Audit"],
    summary: "Signed checkpoints of the chain's head, kept outside Postgres, newest first",
    description:
      "Taken at least every 100 rows and hourly, signed with Ed25519 under AUDIT_SIGNING_KEY, and stored in a Durable Object of their own, which the database cannot rewrite. Keep one elsewhere: an export verified against it shows any rewrite before it.",
    request: {
      query: z.object({
        limit: z.coerce
          .number()
          .int()
          .min(1)
          .max(500)
          .default(50)
          .openapi({ param: { name: "limit", in: "query" } }),
        before: z.coerce
          .number()
          .int()
          .min(1)
          .optional()
          .openapi({
            param: { name: "before", in: "query" },
            description: "Only checkpoints of earlier rows.",
          }),
      }),
    },
    responses: {
      200: jsonContent(z.object({ items: z.array(CheckpointSchema) }), "Checkpoints"),
      ...errorResponses(400, 401, 503),
    },
  }),
  async (c) => {
    const { limit, before } = c.req.valid("query");
    const items = await storeCall(() => checkpointStore(c.env).list(limit, before));
    return c.json({ items }, 200);
  },
);

auditApi.openapi(
  adminRoute({
    permission: "audit.checkpoint",
    method: "post",
    path: "/checkpoints",
    tags: ["Audit"],
    summary: "Take a signed checkpoint of the trail's head now",
    description:
      "Records the request in the trail, then signs the head (that row included) and appends the checkpoint to the store outside Postgres, to the database's own record, and to the destinations that ask for `audit.checkpoint`. 201 with the new checkpoint; 200 with the latest when the head has not moved since; 409 `AUDIT_CHECKPOINT_REFUSED` when the store holds a checkpoint the trail no longer reaches, or another hash for its row: the trail was rewritten. Keep the answer somewhere Airlock cannot write.",
    responses: {
      201: jsonContent(
        z.object({ kind: z.literal("stored"), checkpoint: CheckpointSchema }),
        "The new checkpoint",
      ),
      200: jsonContent(
        z.object({ kind: z.literal("unchanged"), checkpoint: CheckpointSchema }),
        "The head has not moved since the latest checkpoint, which is returned",
      ),
      ...errorResponses(401, 409, 500, 503),
    },
  }),
  async (c) => {
    await auditRead(c, {
      action: "audit.checkpoint",
      targetType: "audit",
      target: "audit",
      after: null,
    });
    await signingKey(c.env);
    const outcome = await storeCall(() => takeCheckpoint(c.var.database(), c.env, new Date(), 1));
    if (outcome.kind === "refused")
      throw new ApiError(
        "AUDIT_CHECKPOINT_REFUSED",
        `The checkpoint store refused the trail's head: ${outcome.reason}. Its latest checkpoint is row ${outcome.latest.seq}, signed ${outcome.latest.at}; verify the trail (GET /admin/audit/verify)`,
      );
    if (outcome.kind === "stored") return c.json(outcome, 201);
    if (outcome.kind === "unchanged") return c.json(outcome, 200);
    // minRows 1: a head that moved is always signed.
    throw new ApiError("INTERNAL_ERROR", "The checkpoint was skipped");
  },
);

auditApi.openapi(
  adminRoute({
    permission: "audit.read",
    method: "get",
    path: "/public-key",
    tags: ["Audit"],
    summary: "The public key that checks the checkpoints' signatures",
    description:
      "An Ed25519 JWK and its id (the first 16 hex digits of SHA-256 of the raw key). Publish it, or keep it with the checkpoints you keep: `npm run audit:verify` takes it.",
    responses: {
      200: jsonContent(
        z
          .object({
            algorithm: z.literal("Ed25519"),
            keyId: z.string(),
            jwk: z.object({ kty: z.literal("OKP"), crv: z.literal("Ed25519"), x: z.string() }),
          })
          .openapi("AuditPublicKey"),
        "The public key",
      ),
      ...errorResponses(401, 500),
    },
  }),
  async (c) => {
    const key = await signingKey(c.env);
    return c.json({ algorithm: "Ed25519" as const, ...key.publicKey }, 200);
  },
);

auditApi.openapi(
  adminRoute({
    permission: "audit.read",
    method: "get",
    path: "/export",
    tags: ["Audit"],
    summary: "Export the trail, with its checkpoints, for offline verification",
    description:
      "NDJSON, streamed: a header (the rows covered, the head, the public key), the rows written before the chain (from the start), every row of the chain as stored (content, previous hash, hash), the signed checkpoints from the store outside Postgres, and an end line with the counts. `npm run audit:verify -- FILE --checkpoint FILE` checks it without trusting the server. Exporting is itself recorded in the trail (`audit.export`).",
    request: {
      query: z.object({
        from: afterSeq(
          "Export the rows after this sequence number (0: the whole trail, with the rows before the chain).",
        ),
      }),
    },
    responses: {
      200: {
        description: "The export, one JSON object per line",
        content: { "application/x-ndjson": { schema: z.string() } },
      },
      ...errorResponses(400, 401, 503),
    },
  }),
  async (c) => {
    const { from } = c.req.valid("query");
    const db = c.var.database();
    const start = await exportStart(db, from);
    if (!start)
      throw validationError(
        [{ path: ["from"], message: `is not a row of the trail (no row ${from})` }],
        "query",
      );
    // Read before the head (functions/audit/export.ts): every one signs a row the export reaches.
    const checkpoints = await storeCall(() => allCheckpoints());
    let publicKey: PublicKey | null = null;
    try {
      publicKey = (await importSigningKey(c.env.AUDIT_SIGNING_KEY)).publicKey;
    } catch {
      // Exported without one: the rows still verify; the checkpoints need a key kept elsewhere.
    }
    await auditRead(c, {
      action: "audit.export",
      targetType: "audit",
      target: "audit",
      after: { from },
    });
    const body = exportStream(c.env, { from: start, checkpoints, publicKey });
    // A stream, which the typed responses (JSON or text) cannot describe.
    return c.body(body, 200, {
      "content-type": "application/x-ndjson; charset=utf-8",
      "content-disposition": `attachment; filename="airlock-audit-${new Date().toISOString().slice(0, 10)}.ndjson"`,
      "cache-control": "no-store",
    }) as never;

    async function allCheckpoints(): Promise<Checkpoint[]> {
      const store = checkpointStore(c.env);
      const all: Checkpoint[] = [];
      let before: number | undefined;
      for (;;) {
        const page = await store.list(500, before);
        all.push(...page);
        if (page.length < 500) return all;
        before = page.at(-1)?.seq;
      }
    }
  },
);

async function signingKey(env: Env) {
  try {
    return await importSigningKey(env.AUDIT_SIGNING_KEY);
  } catch (error) {
    throw new ApiError(
      "INTERNAL_ERROR",
      `The audit signing key is not usable: ${describeError(error)}`,
    );
  }
}

/** A call to the checkpoint store; unreachable is a 503 to retry (Postgres' errors stay its own). */
async function storeCall<T>(call: () => Promise<T> | T): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof ApiError || isConnectionError(error)) throw error;
    throw new ApiError(
      "AUDIT_STORE_UNAVAILABLE",
      "The audit checkpoint store could not be reached; retry",
      {
        headers: { "retry-after": "1" },
        cause: error,
      },
    );
  }
}
