import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { and, asc, desc, eq, inArray, isNotNull, isNull, lt, type SQL } from "drizzle-orm";
import { alertDeliveries, deadLetters } from "../../shared/db/schema";
import { PredictionLogMessageSchema } from "../../shared/inference/events";
import { decodeCursor, encodeCursor } from "../../shared/pagination";
import { PaginationQuery, pageOf, Timestamp } from "../../shared/schemas/common";
import type { AppEnv } from "../app-env";
import { ALERT_DELIVERIES_QUEUE } from "../queue/alert-deliveries";
import { runChange } from "./change";
import { adminSecurity, errorResponses, IdempotencyHeader, jsonBody, jsonContent } from "./openapi";
import { validationHook } from "./validation";

/**
 * Prediction-log messages that could not be stored: poison messages and
 * everything the dead-letter queue received. Operators read them and replay
 * them onto the log queue; storage is idempotent, so a replay can never
 * double a result. Alert notices that exhausted their retries are kept here
 * too; a replay puts them back on the alert queue (their destination's object
 * still never sends one twice).
 */
export const deadLettersApi = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

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
    body: z.unknown(),
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
});

deadLettersApi.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["Prediction logs"],
    summary: "List dead letters, newest first",
    security: adminSecurity,
    request: { query: DeadLetterQuery },
    responses: {
      200: jsonContent(pageOf(DeadLetter), "A page of dead letters"),
      ...errorResponses(400, 401, 503),
    },
  }),
  async (c) => {
    const { limit, cursor, replayed } = c.req.valid("query");
    const before = cursor ? (decodeCursor(cursor, { id: "number" }).id as number) : undefined;
    const filters: (SQL | undefined)[] = [
      before === undefined ? undefined : lt(deadLetters.id, before),
      replayed === undefined
        ? undefined
        : replayed === "true"
          ? isNotNull(deadLetters.replayedAt)
          : isNull(deadLetters.replayedAt),
    ];
    const rows = await c.var
      .database()
      .select()
      .from(deadLetters)
      .where(and(...filters))
      .orderBy(desc(deadLetters.id))
      .limit(limit + 1);
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return c.json(
      {
        items: page.map((row) => ({
          id: String(row.id),
          messageId: row.messageId,
          queue: row.queue,
          error: row.error,
          attempts: row.attempts,
          receivedAt: row.receivedAt.toISOString(),
          replayedAt: row.replayedAt?.toISOString() ?? null,
          replayedBy: row.replayedBy ?? null,
          body: row.body ?? null,
        })),
        nextCursor: rows.length > limit && last ? encodeCursor({ id: last.id }) : null,
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
  createRoute({
    method: "post",
    path: "/replay",
    tags: ["Prediction logs"],
    summary: "Put pending dead letters back on the prediction-log queue",
    description:
      "Sends each pending dead letter that is a well-formed log message back to PREDICTION_LOGS and marks it replayed; malformed ones stay pending and are listed as skipped. Storage is idempotent: replaying twice doubles nothing.",
    security: adminSecurity,
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
        const parsed = PredictionLogMessageSchema.safeParse(row.body);
        if (!parsed.success) {
          skipped.push({ id: String(row.id), reason: "not a well-formed prediction-log message" });
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
