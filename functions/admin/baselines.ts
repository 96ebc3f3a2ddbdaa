import { and, eq, sql } from "drizzle-orm";
import { modelVersions } from "../../shared/db/schema";
import { ApiError } from "../../shared/errors";
import { validateRowList } from "../../shared/inference/inputs";
import {
  type Baseline,
  baselineFromRows,
  declaredKinds,
  predictionKinds,
} from "../../shared/monitoring/baseline";
import { BaselineResource, SetBaselineBody } from "../../shared/schemas/baseline";
import { VersionLabel } from "../../shared/schemas/common";
import type { InputSchema } from "../../shared/schemas/model";
import { baselineFromTraffic } from "../monitoring/baseline-sql";
import { apiRouter } from "../router";
import { runChange } from "./change";
import { findModel, modelParams } from "./models";
import { errorResponses, IdempotencyHeader, jsonBody, jsonContent } from "./openapi";
import { adminRoute } from "./route";

const versionParams = modelParams.extend({
  version: VersionLabel.openapi({ param: { name: "version", in: "path" } }),
});

export const baselinesApi = apiRouter();

const resource = (model: string, version: string, baseline: Baseline) => ({
  model,
  version,
  ...baseline,
});

/** What the audit trail keeps of a baseline: where it came from, not its samples. */
const auditView = (baseline: Baseline | null) =>
  baseline && {
    source: baseline.source,
    rows: baseline.rows,
    createdAt: baseline.createdAt,
    features: Object.keys(baseline.features),
    predictions: Object.keys(baseline.predictions),
  };

/** A baseline from uploaded rows, validated against the model's input schema (issues at `at[i].feature`). */
export function uploadedBaseline(
  model: { inputSchema: InputSchema; task: "classification" | "regression" },
  upload: { rows: Record<string, unknown>[]; predictions?: Record<string, unknown>[] | undefined },
  at: string,
  meta: { createdAt: string; createdBy: string },
): Baseline {
  const checked = validateRowList(model.inputSchema, upload.rows, at);
  if (!checked.ok) {
    const shown = checked.issues.slice(0, 5).map((i) => `${i.path}: ${i.message}`);
    throw new ApiError("VALIDATION_FAILED", `Invalid baseline rows: ${shown.join("; ")}`, {
      details: checked.issues,
    });
  }
  return baselineFromRows(model.inputSchema, model.task, checked.rows, upload.predictions, meta);
}

baselinesApi.openapi(
  adminRoute({
    permission: "models.read",
    method: "get",
    path: "/{model}/versions/{version}/baseline",
    tags: ["Monitoring"],
    summary: "Read a version's baseline",
    description:
      "Per feature and prediction field: a numeric summary (count, missing, distinct, min, max, mean, population std, and the reference sample: every value when there are at most 1000, else 1000 quantiles) or category counts.",
    request: { params: versionParams },
    responses: {
      200: jsonContent(BaselineResource, "The baseline"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { model: modelName, version } = c.req.valid("param");
    const db = c.var.database();
    const model = await findModel(db, modelName);
    const [row] = await db
      .select({ baseline: modelVersions.baseline })
      .from(modelVersions)
      .where(and(eq(modelVersions.modelId, model.id), eq(modelVersions.version, version)));
    if (!row)
      throw new ApiError("VERSION_NOT_FOUND", `Model '${modelName}' has no version '${version}'`);
    if (!row.baseline)
      throw new ApiError(
        "BASELINE_NOT_FOUND",
        `Version '${version}' of '${modelName}' has no baseline yet`,
      );
    return c.json(resource(modelName, version, row.baseline as Baseline) as never, 200);
  },
);

baselinesApi.openapi(
  adminRoute({
    permission: "models.write",
    method: "post",
    path: "/{model}/versions/{version}/baseline",
    tags: ["Monitoring"],
    summary: "Set a version's baseline, from uploaded rows or from a window of its traffic",
    description:
      "`{ rows, predictions? }`: up to 5000 rows, validated against the model's input schema (every failing field named), with the version's predictions for them. `{ from, to, role? }`: the version's own results in that window (default served), summarised in Postgres; 422 BASELINE_EMPTY when the window holds none. Replaces any earlier baseline; audited as version.baseline.set.",
    request: {
      params: versionParams,
      headers: IdempotencyHeader,
      body: jsonBody(SetBaselineBody),
    },
    responses: {
      200: jsonContent(BaselineResource, "The new baseline"),
      ...errorResponses(400, 401, 404, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const { model: modelName, version } = c.req.valid("param");
    const body = c.req.valid("json");
    const meta = { createdAt: new Date().toISOString(), createdBy: c.var.principal.actor };
    const { body: baseline } = await runChange(c, async (tx) => {
      const model = await findModel(tx, modelName);
      const [current] = await tx
        .select()
        .from(modelVersions)
        .where(and(eq(modelVersions.modelId, model.id), eq(modelVersions.version, version)))
        .for("update");
      if (!current)
        throw new ApiError("VERSION_NOT_FOUND", `Model '${modelName}' has no version '${version}'`);
      let next: Baseline;
      if (body.rows) {
        next = uploadedBaseline(
          model,
          { rows: body.rows, predictions: body.predictions },
          "rows",
          meta,
        );
      } else {
        next = await baselineFromTraffic(
          tx,
          {
            model: modelName,
            version,
            role: body.role ?? "served",
            from: new Date(body.from as string),
            to: new Date(body.to as string),
          },
          { features: declaredKinds(model.inputSchema), predictions: predictionKinds(model.task) },
          meta,
        );
        if (next.rows === 0)
          throw new ApiError(
            "BASELINE_EMPTY",
            `Version '${version}' of '${modelName}' has no ${body.role ?? "served"} results between ${body.from} and ${body.to}`,
          );
      }
      await tx
        .update(modelVersions)
        .set({ baseline: next, updatedAt: sql`now()` })
        .where(eq(modelVersions.id, current.id));
      return {
        status: 200,
        body: next,
        audit: [
          {
            action: "version.baseline.set",
            targetType: "version",
            target: `models/${modelName}/versions/${version}`,
            before: auditView((current.baseline as Baseline | null) ?? null),
            after: auditView(next),
          },
        ],
      };
    });
    return c.json(resource(modelName, version, baseline) as never, 200);
  },
);
