/**
 * Erasure of a data subject's records: `POST /admin/erasure` asks for it
 * (by bucketing key or prediction ids), `GET /admin/erasure/{id}` follows
 * it. The work is done by the erasure job, a bounded step at a time
 * (functions/jobs/erasure.ts); what is erased stays erased (tombstones).
 */
import { z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { erasedKeys, erasureRequests, erasureTombstones } from "../../shared/db/schema";
import { ApiError } from "../../shared/errors";
import { keyHmac } from "../../shared/inference/events";
import {
  ERASURE_COUNT_NAMES,
  FIRST_STEP,
  MAX_ERASURE_PREDICTION_IDS,
  noErasureCounts,
} from "../../shared/privacy/erasure";
import { ModelName } from "../../shared/schemas/common";
import { PredictionId } from "../inference/feedback";
import { BucketingKey } from "../inference/predict";
import { apiRouter } from "../router";
import { runChange } from "./change";
import { findModel } from "./models";
import {
  errorResponses,
  IdempotencyHeader,
  jsonBody,
  jsonContent,
  NumericIdParams,
} from "./openapi";
import { adminRoute } from "./route";

export const erasureApi = apiRouter();

const ErasureRequestBody = z
  .object({
    key: BucketingKey.optional().openapi({
      description:
        "A bucketing key: every record of it made up to now. Kept only as its HMAC under the log key, never as sent.",
    }),
    model: ModelName.optional().openapi({
      description: "With `key`: only this model's records (default: every model's).",
    }),
    predictionIds: z
      .array(PredictionId)
      .min(1)
      .max(MAX_ERASURE_PREDICTION_IDS)
      .optional()
      .openapi({ description: `Up to ${MAX_ERASURE_PREDICTION_IDS} prediction ids.` }),
    reason: z.string().trim().min(1).max(1000).openapi({
      description: "Why (e.g. the reference of the data subject's request); audited.",
      example: "DSR-2026-0142",
    }),
  })
  .strict()
  .superRefine((body, ctx) => {
    if ((body.key === undefined) === (body.predictionIds === undefined))
      ctx.addIssue({
        code: "custom",
        path: [body.key === undefined ? "key" : "predictionIds"],
        message:
          body.key === undefined
            ? "is required: give a bucketing key or predictionIds (one of the two)"
            : "cannot be given with key: erase by a key or by prediction ids, one at a time",
      });
    if (body.model !== undefined && body.key === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["model"],
        message: "applies to a key only: prediction ids name their predictions already",
      });
  })
  .openapi("ErasureRequest");

const Counts = z
  .object(Object.fromEntries(ERASURE_COUNT_NAMES.map((name) => [name, z.number().int()])))
  .openapi({
    description:
      "Rows erased so far, by table; dead letters holding other results too are edited, not deleted; baselines built from a window that lost rows are built again (or cleared when nothing is left).",
  });

const Erasure = z
  .object({
    id: z.number().int(),
    subject: z.enum(["key", "predictions"]),
    keyHmac: z.string().nullable().openapi({
      description: "The key's HMAC under the log key, as the logs hold it; never the key.",
    }),
    model: z.string().nullable(),
    predictionIds: z.number().int().nullable().openapi({ description: "How many ids were named." }),
    reason: z.string(),
    status: z.enum(["queued", "running", "succeeded", "failed"]),
    progress: z.object({ phase: z.string(), pass: z.number().int() }).openapi({
      description:
        "The step the job is at: logs (with the table and last partition done), feedback, dead_letters, baselines, verify, done; pass 2 or 3 when rows stored meanwhile were found.",
    }),
    counts: Counts,
    error: z.string().nullable(),
    requestedBy: z.string(),
    requestedAt: z.string(),
    finishedAt: z.string().nullable(),
  })
  .openapi("Erasure");

type ErasureRow = typeof erasureRequests.$inferSelect;

function resource(row: ErasureRow): z.infer<typeof Erasure> {
  const progress = (row.progress as { step: { phase: string; pass: number } }).step;
  return {
    id: row.id,
    subject: row.subject,
    keyHmac: row.keyHmac,
    model: row.model,
    predictionIds: row.predictionIds ? row.predictionIds.length : null,
    reason: row.reason,
    status: row.status,
    progress,
    counts: { ...noErasureCounts(), ...row.counts },
    error: row.error,
    requestedBy: row.requestedBy,
    requestedAt: row.requestedAt.toISOString(),
    finishedAt: row.finishedAt ? row.finishedAt.toISOString() : null,
  };
}

erasureApi.openapi(
  adminRoute({
    permission: "data.erase",
    method: "post",
    path: "/erasure",
    tags: ["Privacy"],
    summary: "Erase a data subject's records, by bucketing key or prediction ids",
    description:
      "Erases every prediction, reference, rejected request, label, KPI event and dead-letter result tied to the key (its records made up to now, of one model or all) or to the ids, and builds again any baseline built from traffic that lost rows. From the moment this answers, nothing of the subject is stored again: a queue retry, a dead-letter replay or a late label for it is dropped. The work runs in bounded steps: follow it with `GET /admin/erasure/{id}`. Audited as erasure.request (the key only as its HMAC), and erasure.complete with the counts.",
    request: { headers: IdempotencyHeader, body: jsonBody(ErasureRequestBody) },
    responses: {
      201: jsonContent(Erasure, "The erasure, queued"),
      ...errorResponses(400, 401, 403, 404, 413, 415, 503),
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const hashed = body.key === undefined ? null : await keyHmac(c.env.LOG_HMAC_KEY, body.key);
    const ids = body.predictionIds ? [...new Set(body.predictionIds)] : null;
    const { body: created } = await runChange(c, async (tx) => {
      if (body.model !== undefined) await findModel(tx, body.model);
      const [row] = await tx
        .insert(erasureRequests)
        .values({
          subject: hashed === null ? "predictions" : "key",
          keyHmac: hashed,
          model: body.model ?? null,
          predictionIds: ids,
          reason: body.reason,
          status: "queued",
          progress: { step: FIRST_STEP, affected: [] },
          counts: noErasureCounts(),
          requestedBy: c.var.principal.actor,
        })
        .returning();
      if (!row) throw new Error("the erasure was not recorded");
      // The tombstones first, in this transaction: from the commit on, no
      // write of the subject's records can land.
      if (hashed !== null) {
        await tx.insert(erasedKeys).values({
          keyHmac: hashed,
          erasureId: row.id,
          model: row.model,
          before: row.requestedAt,
        });
      } else if (ids) {
        const tombstones = await tx
          .insert(erasureTombstones)
          .values(ids.map((predictionId) => ({ predictionId, erasureId: row.id })))
          .onConflictDoNothing()
          .returning({ id: erasureTombstones.predictionId });
        row.counts = { ...row.counts, tombstones: tombstones.length };
        await tx
          .update(erasureRequests)
          .set({ counts: row.counts })
          .where(eq(erasureRequests.id, row.id));
      }
      return {
        status: 201,
        body: resource(row),
        audit: [
          {
            action: "erasure.request",
            targetType: "erasure",
            target: `erasure/${row.id}`,
            before: null,
            after: {
              subject: row.subject,
              keyHmac: hashed,
              model: row.model,
              predictionIds: ids,
              reason: body.reason,
            },
          },
        ],
      };
    });
    try {
      await c.env.ERASURES.send({ erasureId: created.id });
    } catch (error) {
      // Recorded, and already in force for new writes: the hourly upkeep sends it again.
      console.error(
        JSON.stringify({
          level: "error",
          event: "erasures.send_failed",
          erasureId: created.id,
          error: String(error),
        }),
      );
    }
    return c.json(created, 201);
  },
);

erasureApi.openapi(
  adminRoute({
    permission: "data.erase",
    method: "get",
    path: "/erasure/{id}",
    tags: ["Privacy"],
    summary: "One erasure: its status, step and counts",
    request: { params: NumericIdParams },
    responses: {
      200: jsonContent(Erasure, "The erasure"),
      ...errorResponses(400, 401, 403, 404, 503),
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const [row] = await c.var
      .database()
      .select()
      .from(erasureRequests)
      .where(eq(erasureRequests.id, id));
    if (!row) throw new ApiError("ERASURE_NOT_FOUND", `Erasure ${id} does not exist`);
    return c.json(resource(row), 200);
  },
);
