import { z } from "@hono/zod-openapi";
import { and, asc, desc, eq, inArray, isNotNull, isNull, lt, type SQL } from "drizzle-orm";
import { alertDeliveries, deadLetters } from "../../shared/db/schema";
import { formatPath } from "../../shared/errors";
import { PredictionLogMessageSchema } from "../../shared/inference/events";
import { resumeAfter, splitPage } from "../../shared/pagination";
import { PaginationQuery, pageOf, Timestamp } from "../../shared/schemas/common";
import { StorableString } from "../../shared/storable";
import { ALERT_DELIVERIES_QUEUE } from "../queue/alert-deliveries";
import { apiRouter } from "../router";
import { auditRead, runChange } from "./change";
import { errorResponses, IdempotencyHeader, jsonBody, jsonContent } from "./openapi";
import { adminRoute } from "./route";

/**
 * Prediction-log messages that could not be stored: poison messages and
 * everything the dead-letter queue received. Operators read them and replay
 * them onto the log queue; storage is idempotent, so a replay can never
 * double a result. Alert notices that exhausted their retries are kept here
 * too; a replay puts them back on the alert queue (their destination's object
 * still never sends one twice).
 */
export const deadLettersApi = apiRouter();

const DeadLetter = z
  .object({
    id: z.string(),
    messageId: z.string(),
    queue: z.string(),
    error: z.string(),
    attempts: z.number().int(),
    receivedAt: Timestamp,
    replayedAt: Timestamp.nullable(),
    replayedBy: z.string().nullable(),
    discardedAt: Timestamp.nullable(),
    discardedBy: z.string().nullable(),
    discardReason: z.string().nullable(),
    body: z.unknown(),
    bodyStoredAs: z.enum(["json", "text"]).openapi({
      description:
        "`text` when the body holds what jsonb cannot (a NUL, a lone surrogate): `body` is then its JSON, parsed back.",
    }),
  })
  .openapi("DeadLetter");

const DeadLetterQuery = PaginationQuery.extend({
  replayed: z
    .enum(["true", "false"])
    .optional()
    .openapi({
      param: { name: "replayed", in: "query" },
      description: "Only replayed or only pending ones.",
    }),
  status: z
    .enum(["pending", "replayed", "discarded"])
    .optional()
    .openapi({
      param: { name: "status", in: "query" },
      description: "Only pending (neither replayed nor discarded), replayed or discarded ones.",
    }),
});

/** A dead letter's body, whether kept as jsonb or as escaped JSON text. */
function bodyOf(row: { body: unknown; bodyText: string | null }): unknown {
  if (row.bodyText === null) return row.body ?? null;
  try {
    return JSON.parse(row.bodyText);
  } catch {
    return row.bodyText;
  }
}

deadLettersApi.openapi(
  adminRoute({
    permission: "deadletters.read",
    method: "get",
    path: "/",
    tags: ["Prediction logs"],
    summary: "List dead letters, newest first",
    request: { query: DeadLetterQuery },
    responses: {
      200: jsonContent(pageOf(DeadLetter), "A page of dead letters"),
      ...errorResponses(400, 401, 503),
    },
  }),
  async (c) => {
    const { limit, cursor, replayed, status } = c.req.valid("query");
    const before = resumeAfter(cursor, { id: "number" });
    const filters: (SQL | undefined)[] = [
      before === undefined ? undefined : lt(deadLetters.id, before.id),
      replayed === undefined
        ? undefined
        : replayed === "true"
          ? isNotNull(deadLetters.replayedAt)
          : isNull(deadLetters.replayedAt),
      status === "pending"
        ? and(isNull(deadLetters.replayedAt), isNull(deadLetters.discardedAt))
        : status === "replayed"
          ? isNotNull(deadLetters.replayedAt)
          : status === "discarded"
            ? isNotNull(deadLetters.discardedAt)
            : undefined,
    ];
    const rows = await c.var
      .database()
      .select()
      .from(deadLetters)
      .where(and(...filters))
      .orderBy(desc(deadLetters.id))
      .limit(limit + 1);
    const page = splitPage(rows, limit, (last) => ({ id: last.id }));
    await auditRead(c, {
      action: "dead_letters.read",
      targetType: "dead_letters",
      target: "dead-letters",
      after: {
        ids: page.rows.map((row) => String(row.id)),
        filters: { status: status ?? null, replayed: replayed ?? null, cursor: cursor ?? null },
      },
    });
    return c.json(
      {
        items: page.rows.map((row) => ({
          id: String(row.id),
          messageId: row.messageId,
          queue: row.queue,
          error: row.error,
          attempts: row.attempts,
          receivedAt: row.receivedAt.toISOString(),
          replayedAt: row.replayedAt?.toISOString() ?? null,
          replayedBy: row.replayedBy ?? null,
          discardedAt: row.discardedAt?.toISOString() ?? null,
          discardedBy: row.discardedBy ?? null,
          discardReason: row.discardReason ?? null,
          body: bodyOf(row),
          bodyStoredAs: row.bodyText === null ? ("json" as const) : ("text" as const),
        })),
        nextCursor: page.nextCursor,
      },
      200,
    );
  },
);

const ReplayBody = z
  .object({
    ids: z
      .array(z.string().regex(/^[1-9][0-9]{0,18}$/, "must be a dead letter id"))
      .min(1)
      .max(1000)
      .optional()
      .openapi({ description: "Replay these; default: the oldest pending ones." }),
    limit: z.number().int().min(1).max(1000).default(100),
  })
  .strict()
  .openapi("ReplayDeadLetters");

const ReplayResult = z
  .object({
    replayed: z.array(z.string()),
    results: z.number().int(),
    skipped: z.array(z.object({ id: z.string(), reason: z.string() })),
  })
  .openapi("ReplayResult");

/** Messages per sendBatch call (the platform's limit). */
const SEND_BATCH = 100;

deadLettersApi.openapi(
  adminRoute({
    permission: "deadletters.manage",
    method: "post",
    path: "/replay",
    tags: ["Prediction logs"],
    summary: "Put pending dead letters back on the prediction-log queue",
    description:
      "Sends each pending dead letter that is a well-formed log message back to PREDICTION_LOGS and marks it replayed; malformed ones (including results holding text Postgres cannot store) stay pending and are listed as skipped, with the reason. Storage is idempotent: replaying twice doubles nothing.",
    request: { headers: IdempotencyHeader, body: jsonBody(ReplayBody) },
    responses: {
      200: jsonContent(ReplayResult, "What was replayed"),
      ...errorResponses(400, 401, 415, 422, 503),
    },
  }),
  async (c) => {
    const { ids, limit } = c.req.valid("json");
    const { body } = await runChange(c, async (tx) => {
      const pending = await tx
        .select()
        .from(deadLetters)
        .where(
          and(
            isNull(deadLetters.replayedAt),
            isNull(deadLetters.discardedAt),
            ids ? inArray(deadLetters.id, ids.map(Number)) : undefined,
          ),
        )
        .orderBy(asc(deadLetters.id))
        .limit(ids ? ids.length : limit)
        .for("update", { skipLocked: true });
      const skipped: { id: string; reason: string }[] = [];
      const messages: { body: z.infer<typeof PredictionLogMessageSchema> }[] = [];
      const notices: number[] = [];
      const replayed: number[] = [];
      for (const row of pending) {
        // An alert notice that exhausted its retries goes back to the alert queue.
        if (row.queue === ALERT_DELIVERIES_QUEUE) {
          const deliveryId = (row.body as { deliveryId?: unknown } | null)?.deliveryId;
          if (typeof deliveryId !== "number" || !Number.isSafeInteger(deliveryId)) {
            skipped.push({ id: String(row.id), reason: "not a well-formed alert notice" });
            continue;
          }
          notices.push(deliveryId);
          replayed.push(row.id);
          continue;
        }
        const parsed = PredictionLogMessageSchema.safeParse(bodyOf(row));
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          skipped.push({
            id: String(row.id),
            reason: `not a well-formed prediction-log message${
              issue ? ` (${formatPath(issue.path) || "body"}: ${issue.message})` : ""
            }; it can be discarded`,
          });
          continue;
        }
        messages.push({ body: parsed.data });
        replayed.push(row.id);
      }
      for (let i = 0; i < messages.length; i += SEND_BATCH) {
        await c.env.PREDICTION_LOGS.sendBatch(
          messages
            .slice(i, i + SEND_BATCH)
            .map((m) => ({ body: m.body, contentType: "json" as const })),
        );
      }
      if (notices.length > 0) {
        await tx
          .update(alertDeliveries)
          .set({ status: "pending", lastError: "replayed", updatedAt: new Date() })
          .where(and(inArray(alertDeliveries.id, notices), eq(alertDeliveries.status, "failed")));
        for (let i = 0; i < notices.length; i += SEND_BATCH) {
          await c.env.ALERT_DELIVERIES.sendBatch(
            notices.slice(i, i + SEND_BATCH).map((deliveryId) => ({ body: { deliveryId } })),
          );
        }
      }
      if (replayed.length > 0) {
        await tx
          .update(deadLetters)
          .set({ replayedAt: new Date(), replayedBy: c.var.principal.actor })
          .where(inArray(deadLetters.id, replayed));
      }
      const result = {
        replayed: replayed.map(String),
        results: messages.reduce((sum, m) => sum + m.body.results.length, 0),
        skipped,
      };
      return {
        status: 200,
        body: result,
        audit:
          replayed.length > 0
            ? [
                {
                  action: "dead_letters.replay",
                  targetType: "dead_letters",
                  target: "dead-letters",
                  before: null,
                  after: result,
                },
              ]
            : [],
      };
    });
    return c.json(body, 200);
  },
);

const DiscardBody = z
  .object({
    ids: z
      .array(z.string().regex(/^[1-9][0-9]{0,18}$/, "must be a dead letter id"))
      .min(1)
      .max(1000),
    reason: StorableString(1000)
      .min(3)
      .openapi({ description: "Why these can be let go, for the audit trail." }),
  })
  .strict()
  .openapi("DiscardDeadLetters");

const DiscardResult = z
  .object({
    discarded: z.array(z.string()),
    skipped: z.array(z.object({ id: z.string(), reason: z.string() })),
  })
  .openapi("DiscardResult");

deadLettersApi.openapi(
  adminRoute({
    permission: "deadletters.manage",
    method: "post",
    path: "/discard",
    tags: ["Prediction logs"],
    summary: "Let go of pending dead letters that can never be stored",
    description:
      "Marks pending dead letters discarded, with the operator and the reason, so they no longer count towards the dead_letters alert. Their bodies are kept (14 days, as every dead letter). Audited.",
    request: { headers: IdempotencyHeader, body: jsonBody(DiscardBody) },
    responses: {
      200: jsonContent(DiscardResult, "What was discarded"),
      ...errorResponses(400, 401, 415, 422, 503),
    },
  }),
  async (c) => {
    const { ids, reason } = c.req.valid("json");
    const { body } = await runChange(c, async (tx) => {
      const wanted = [...new Set(ids.map(Number))];
      const rows = await tx
        .select({
          id: deadLetters.id,
          replayedAt: deadLetters.replayedAt,
          discardedAt: deadLetters.discardedAt,
        })
        .from(deadLetters)
        .where(inArray(deadLetters.id, wanted))
        .for("update");
      const found = new Map(rows.map((row) => [row.id, row]));
      const skipped: { id: string; reason: string }[] = [];
      const discard: number[] = [];
      for (const id of wanted) {
        const row = found.get(id);
        if (!row) skipped.push({ id: String(id), reason: "no such dead letter" });
        else if (row.replayedAt) skipped.push({ id: String(id), reason: "already replayed" });
        else if (row.discardedAt) skipped.push({ id: String(id), reason: "already discarded" });
        else discard.push(id);
      }
      if (discard.length > 0) {
        await tx
          .update(deadLetters)
          .set({
            discardedAt: new Date(),
            discardedBy: c.var.principal.actor,
            discardReason: reason,
          })
          .where(inArray(deadLetters.id, discard));
      }
      const result = { discarded: discard.map(String), skipped };
      return {
        status: 200,
        body: result,
        audit:
          discard.length > 0
            ? [
                {
                  action: "dead_letters.discard",
                  targetType: "dead_letters",
                  target: "dead-letters",
                  before: null,
                  after: { ...result, reason },
                },
              ]
            : [],
      };
    });
    return c.json(body, 200);
  },
);
