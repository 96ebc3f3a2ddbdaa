import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { and, asc, desc, eq, gte, lt, sql } from "drizzle-orm";
import { models, monitoringResults, monitoringRuns } from "../../shared/db/schema";
import { ApiError } from "../../shared/errors";
import { predictionKinds } from "../../shared/monitoring/baseline";
import { Timestamp, VersionLabel } from "../../shared/schemas/common";
import { MonitoringSettings } from "../../shared/schemas/monitoring";
import type { AppEnv } from "../app-env";
import { OUTCOME_METRICS } from "../monitoring/kpis";
import { LABEL_METRICS } from "../monitoring/labels";
import { runChange } from "./change";
import { findModel, modelParams } from "./models";
import { adminSecurity, errorResponses, IdempotencyHeader, jsonBody, jsonContent } from "./openapi";
import { validationHook } from "./validation";

/** The metric names the monitoring jobs write (functions/monitoring/*.ts; README). */
export const monitoringMetrics = [
  "results",
  "drift",
  "psi",
  "dataset_drift",
  "missing_rate",
  "out_of_range_rate",
  "unseen_category_rate",
  "schema_rejection_rate",
  "error_rate",
  "latency_p50",
  "latency_p95",
  "latency_p99",
  "fallback_rate",
  "shadow_agreement",
  "shadow_score_difference",
  "shadow_mean_abs_difference",
  "shadow_correlation",
  "shadow_latency_delta_ms",
  "shadow_error_rate_delta",
  "canary_agreement",
  "canary_score_difference",
  "canary_mean_abs_difference",
  "canary_correlation",
  "canary_latency_delta_ms",
  "canary_error_rate_delta",
  "circuit_open_rate",
  ...LABEL_METRICS,
  ...OUTCOME_METRICS,
] as const;

/** Results one call returns at most; `truncated` says when more matched. */
const MAX_RESULTS = 5000;
const DAY_MS = 86_400_000;

export const monitoringApi = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

const MonitoringQuery = z
  .object({
    from: Timestamp.optional().openapi({
      param: { name: "from", in: "query" },
      description: "Windows starting at or after this (default: 24 hours before `to`).",
    }),
    to: Timestamp.optional().openapi({
      param: { name: "to", in: "query" },
      description: "Windows starting before this (default: now). At most 31 days after `from`.",
    }),
    version: z
      .union([VersionLabel, z.literal("")])
      .optional()
      .openapi({
        param: { name: "version", in: "query" },
        description: "One version; the empty string selects model-level results.",
      }),
    role: z
      .enum(["served", "canary", "shadow", "control", "fallback", "all"])
      .optional()
      .openapi({ param: { name: "role", in: "query" } }),
    metric: z
      .enum(monitoringMetrics)
      .optional()
      .openapi({ param: { name: "metric", in: "query" } }),
    window: z.coerce
      .number()
      .pipe(z.union([z.literal(900), z.literal(3600), z.literal(86_400)]))
      .optional()
      .openapi({
        param: { name: "window", in: "query" },
        description: "Window length in seconds: 900, 3600 or 86400.",
      }),
  })
  .superRefine((query, ctx) => {
    const to = query.to ? Date.parse(query.to) : Date.now();
    const from = query.from ? Date.parse(query.from) : to - DAY_MS;
    if (from >= to) ctx.addIssue({ code: "custom", path: ["to"], message: "must be after from" });
    else if (to - from > 31 * DAY_MS)
      ctx.addIssue({
        code: "custom",
        path: ["from"],
        message: "must be at most 31 days before to",
      });
  });

const MonitoringResult = z
  .object({
    version: z.string(),
    role: z.string(),
    windowSeconds: z.number(),
    windowStart: Timestamp,
    metric: z.string(),
    dimension: z.string(),
    value: z.number().nullable(),
    reason: z.string().nullable(),
    status: z.enum(["ok", "warn", "alert", "unknown"]),
    details: z.record(z.string(), z.unknown()),
    computedAt: Timestamp,
    runId: z.number().int().openapi({ description: "The monitoring run that computed it." }),
  })
  .openapi("MonitoringResult");

monitoringApi.openapi(
  createRoute({
    method: "get",
    path: "/models/{model}/monitoring",
    tags: ["Monitoring"],
    summary:
      "A model's monitoring results per window: operations, drift, data quality, comparisons, quality, fairness, KPIs",
    description: `Oldest window first. Metrics: ${monitoringMetrics.join(", ")}. A statistic that is not finite has value null and a reason. At most ${MAX_RESULTS} results; \`truncated\` says when more matched (narrow the range or filter).`,
    security: adminSecurity,
    request: { params: modelParams, query: MonitoringQuery },
    responses: {
      200: jsonContent(
        z.object({
          model: z.string(),
          from: Timestamp,
          to: Timestamp,
          items: z.array(MonitoringResult),
          truncated: z.boolean(),
        }),
        "Results in the range",
      ),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { model: modelName } = c.req.valid("param");
    const query = c.req.valid("query");
    const to = query.to ? new Date(query.to) : new Date();
    const from = query.from ? new Date(query.from) : new Date(to.getTime() - DAY_MS);
    const db = c.var.database();
    await findModel(db, modelName);
    const rows = await db
      .select()
      .from(monitoringResults)
      .where(
        and(
          eq(monitoringResults.model, modelName),
          gte(monitoringResults.windowStart, from),
          lt(monitoringResults.windowStart, to),
          query.version === undefined ? undefined : eq(monitoringResults.version, query.version),
          query.role === undefined ? undefined : eq(monitoringResults.role, query.role),
          query.metric === undefined ? undefined : eq(monitoringResults.metric, query.metric),
          query.window === undefined
            ? undefined
            : eq(monitoringResults.windowSeconds, query.window),
        ),
      )
      .orderBy(
        asc(monitoringResults.windowStart),
        asc(monitoringResults.windowSeconds),
        asc(monitoringResults.version),
        asc(monitoringResults.role),
        asc(monitoringResults.metric),
        asc(monitoringResults.dimension),
      )
      .limit(MAX_RESULTS + 1);
    return c.json(
      {
        model: modelName,
        from: from.toISOString(),
        to: to.toISOString(),
        items: rows.slice(0, MAX_RESULTS).map((row) => ({
          version: row.version,
          role: row.role,
          windowSeconds: row.windowSeconds,
          windowStart: row.windowStart.toISOString(),
          metric: row.metric,
          dimension: row.dimension,
          value: row.value,
          reason: row.reason,
          status: row.status as "ok" | "warn" | "alert" | "unknown",
          details: row.details,
          computedAt: row.computedAt.toISOString(),
          runId: row.runId,
        })),
        truncated: rows.length > MAX_RESULTS,
      },
      200,
    );
  },
);

monitoringApi.openapi(
  createRoute({
    method: "get",
    path: "/monitoring/runs",
    tags: ["Monitoring"],
    summary: "The latest runs of the monitoring jobs, newest first",
    security: adminSecurity,
    request: {
      query: z.object({
        limit: z.coerce
          .number()
          .int()
          .min(1)
          .max(200)
          .default(50)
          .openapi({ param: { name: "limit", in: "query" } }),
      }),
    },
    responses: {
      200: jsonContent(
        z.object({
          items: z.array(
            z.object({
              id: z.number(),
              job: z.string(),
              status: z.enum(["running", "succeeded", "failed"]),
              startedAt: Timestamp,
              finishedAt: Timestamp.nullable(),
              durationMs: z.number().nullable(),
              windows: z.number(),
              results: z.number(),
              error: z.string().nullable(),
            }),
          ),
        }),
        "Runs",
      ),
      ...errorResponses(400, 401, 503),
    },
  }),
  async (c) => {
    const { limit } = c.req.valid("query");
    const rows = await c.var
      .database()
      .select()
      .from(monitoringRuns)
      .orderBy(desc(monitoringRuns.id))
      .limit(limit);
    return c.json(
      {
        items: rows.map((row) => ({
          id: row.id,
          job: row.job,
          status: row.status as "running" | "succeeded" | "failed",
          startedAt: row.startedAt.toISOString(),
          finishedAt: row.finishedAt ? row.finishedAt.toISOString() : null,
          durationMs: row.durationMs,
          windows: row.windows,
          results: row.results,
          error: row.error,
        })),
      },
      200,
    );
  },
);

monitoringApi.openapi(
  createRoute({
    method: "get",
    path: "/models/{model}/monitoring/settings",
    tags: ["Monitoring"],
    summary: "A model's monitoring settings (empty: the defaults)",
    security: adminSecurity,
    request: { params: modelParams },
    responses: {
      200: jsonContent(MonitoringSettings, "The settings"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const model = await findModel(c.var.database(), c.req.valid("param").model);
    return c.json(model.monitoring ?? {}, 200);
  },
);

monitoringApi.openapi(
  createRoute({
    method: "put",
    path: "/models/{model}/monitoring/settings",
    tags: ["Monitoring"],
    summary: "Replace a model's monitoring settings",
    description:
      "Drift overrides apply from the next monitoring run. Per-feature entries must name a feature of the model's input schema, or `prediction.<field>`. Audited as model.monitoring.update.",
    security: adminSecurity,
    request: {
      params: modelParams,
      headers: IdempotencyHeader,
      body: jsonBody(MonitoringSettings),
    },
    responses: {
      200: jsonContent(MonitoringSettings, "The new settings"),
      ...errorResponses(400, 401, 404, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const name = c.req.valid("param").model;
    const settings = c.req.valid("json");
    const { body } = await runChange(c, async (tx) => {
      const current = await findModel(tx, name, true);
      const known = new Set([
        ...Object.keys(current.inputSchema.properties),
        ...Object.keys(predictionKinds(current.task)).map((field) => `prediction.${field}`),
      ]);
      const unknown = Object.keys(settings.drift?.features ?? {}).filter((f) => !known.has(f));
      if (unknown.length > 0) {
        throw new ApiError(
          "VALIDATION_FAILED",
          `Invalid body: drift.features: ${unknown.map((f) => `'${f}'`).join(", ")} is not a feature of '${name}'`,
          {
            details: unknown.map((f) => ({
              path: `drift.features.${f}`,
              message: "is not a feature of this model (or prediction.<field>)",
            })),
          },
        );
      }
      await tx
        .update(models)
        .set({ monitoring: settings, updatedAt: sql`now()` })
        .where(eq(models.id, current.id));
      return {
        status: 200,
        body: settings,
        audit: [
          {
            action: "model.monitoring.update",
            targetType: "model",
            target: `models/${name}`,
            before: current.monitoring ?? {},
            after: settings,
          },
        ],
      };
    });
    return c.json(body, 200);
  },
);
