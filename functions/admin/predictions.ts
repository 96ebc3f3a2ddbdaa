import { z } from "@hono/zod-openapi";
import { asc, eq, sql } from "drizzle-orm";
import { feedback, outcomes, predictions } from "../../shared/db/schema";
import { ApiError } from "../../shared/errors";
import { Timestamp } from "../../shared/schemas/common";
import { apiRouter } from "../router";
import { auditRead } from "./change";
import { errorResponses, jsonContent } from "./openapi";
import { ProvenanceSchema, provenanceOf } from "./provenance";
import { adminRoute, type ModelOf } from "./route";

/** One prediction as the log pipeline stored it: every result, its label, its outcomes. */
export const predictionsApi = apiRouter();

const StoredPrediction = z
  .object({
    predictionId: z.string(),
    results: z.array(
      z.object({
        role: z.string(),
        version: z.string(),
        model: z.string(),
        requestId: z.string(),
        prediction: z.unknown(),
        inputs: z.unknown(),
        attributes: z.record(z.string(), z.string()),
        latencyMs: z.number(),
        status: z.string(),
        errorCode: z.string().nullable(),
        stateVersion: z.number(),
        createdAt: Timestamp,
        storedAt: Timestamp,
      }),
    ),
    feedback: z
      .object({
        label: z.union([z.string(), z.number()]),
        observedAt: Timestamp,
        revision: z.number(),
      })
      .nullable(),
    outcomes: z.array(z.object({ kpi: z.string(), value: z.number(), at: Timestamp })),
    provenance: ProvenanceSchema.nullable().openapi({
      description:
        "What stood behind the answer returned: the version and role, the rollout at its state, the approvals behind that rollout, and their audit rows. From the long-kept references once the full rows have aged out; null when no answer returned is stored.",
    }),
  })
  .openapi("StoredPrediction");

predictionsApi.openapi(
  adminRoute({
    permission: "data.read",
    modelOf: predictionModel,
    method: "get",
    path: "/{predictionId}",
    tags: ["Prediction logs"],
    summary:
      "A prediction's stored results (served, canary, control, fallback, shadows), label and outcomes",
    request: {
      params: z.object({
        predictionId: z
          .string()
          .min(1)
          .max(128)
          .openapi({ param: { name: "predictionId", in: "path" } }),
      }),
    },
    responses: {
      200: jsonContent(StoredPrediction, "What is stored about the prediction"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { predictionId } = c.req.valid("param");
    const db = c.var.database();
    const [rows, labels, kpis] = await Promise.all([
      db
        .select()
        .from(predictions)
        .where(eq(predictions.predictionId, predictionId))
        .orderBy(asc(predictions.storedAt)),
      db.select().from(feedback).where(eq(feedback.predictionId, predictionId)),
      db
        .select()
        .from(outcomes)
        .where(eq(outcomes.predictionId, predictionId))
        .orderBy(asc(outcomes.at)),
    ]);
    // The label that counts is the one naming the prediction's model; one
    // naming another model is never joined to it (functions/monitoring/labels.ts).
    const model = rows[0]?.model;
    const label = model === undefined ? labels[0] : labels.find((l) => l.model === model);
    // The answer the client got: served, canary or fallback (never a shadow or the control).
    const [answered] = (
      await db.execute<{
        role: string;
        version: string;
        model: string;
        state_version: string | null;
        created_at: string;
      }>(sql`
        SELECT role, version, model, state_version, created_at FROM prediction_refs
        WHERE prediction_id = ${predictionId} AND role IN ('served', 'canary', 'fallback')
          AND state_version IS NOT NULL
        ORDER BY created_at LIMIT 1`)
    ).rows;
    if (rows.length === 0 && !label && kpis.length === 0 && !answered) {
      throw new ApiError(
        "PREDICTION_NOT_FOUND",
        `Nothing is stored for prediction '${predictionId}' (yet, or past retention)`,
      );
    }
    const owner = model ?? label?.model ?? kpis[0]?.model ?? answered?.model ?? null;
    const servedRow = rows.find((row) => ["served", "canary", "fallback"].includes(row.role));
    const served = servedRow
      ? {
          role: servedRow.role,
          version: servedRow.version,
          stateVersion: servedRow.stateVersion,
          createdAt: servedRow.createdAt.toISOString(),
        }
      : answered
        ? {
            role: answered.role,
            version: answered.version,
            stateVersion: Number(answered.state_version),
            createdAt: new Date(answered.created_at).toISOString(),
          }
        : null;
    const provenance = served && owner !== null ? await provenanceOf(c, owner, served) : null;
    await auditRead(c, {
      action: "prediction.read",
      targetType: "prediction",
      target: `predictions/${predictionId}`,
      after: {
        model: owner,
        results: rows.length,
        label: label !== undefined,
        outcomes: kpis.length,
      },
    });
    return c.json(
      {
        predictionId,
        results: rows.map((row) => ({
          role: row.role,
          version: row.version,
          model: row.model,
          requestId: row.requestId,
          prediction: row.prediction ?? null,
          inputs: row.inputs,
          attributes: row.attributes,
          latencyMs: row.latencyMs,
          status: row.status,
          errorCode: row.errorCode ?? null,
          stateVersion: row.stateVersion,
          createdAt: row.createdAt.toISOString(),
          storedAt: row.storedAt.toISOString(),
        })),
        feedback: label
          ? {
              label: label.label,
              observedAt: label.observedAt.toISOString(),
              revision: label.revision,
            }
          : null,
        outcomes: kpis.map((o) => ({ kpi: o.kpi, value: o.value, at: o.at.toISOString() })),
        provenance,
      },
      200,
    );
  },
);

/**
 * The model a prediction belongs to: its results', else its label's, else
 * its outcomes' (undefined: nothing is stored for it).
 */
async function predictionModel(c: Parameters<ModelOf>[0]): ReturnType<ModelOf> {
  const id = c.req.param("predictionId") ?? "";
  if (id.length === 0 || id.length > 128) return undefined;
  const { rows } = await c.var.database().execute<{ model: string }>(sql`
    (SELECT model, 1 AS source FROM predictions WHERE prediction_id = ${id} LIMIT 1)
    UNION ALL (SELECT model, 2 FROM prediction_refs WHERE prediction_id = ${id} LIMIT 1)
    UNION ALL (SELECT model, 3 FROM feedback WHERE prediction_id = ${id} LIMIT 1)
    UNION ALL (SELECT model, 4 FROM outcomes WHERE prediction_id = ${id} LIMIT 1)
    ORDER BY source LIMIT 1`);
  return rows[0]?.model;
}
