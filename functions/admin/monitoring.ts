import { z } from "@hono/zod-openapi";
import { and, asc, desc, eq, gte, lt, sql } from "drizzle-orm";
import { models, monitoringResults, monitoringRuns } from "../../shared/db/schema";
import { ApiError } from "../../shared/errors";
import { predictionKinds } from "../../shared/monitoring/baseline";
import { METRIC_STATUSES, type MetricStatus } from "../../shared/monitoring/metric-row";
import {
  describeSeconds,
  MAX_BACKFILL_WINDOWS,
  windowLengths,
  windowsToBackfill,
} from "../../shared/monitoring/windows";
import { Timestamp, VersionLabel } from "../../shared/schemas/common";
import { MonitoringSettings } from "../../shared/schemas/monitoring";
import { OUTCOME_METRICS } from "../monitoring/kpis";
import { LABEL_METRICS } from "../monitoring/labels";
import { MONITORING_JOB } from "../monitoring/windows";
import { apiRouter } from "../router";
import { runChange } from "./change";
import { findModel, modelParams } from "./models";
import {
  errorResponses,
  IdempotencyHeader,
  jsonBody,
  jsonContent,
  NumericIdParams,
} from "./openapi";
import { adminRoute } from "./route";

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

export const monitoringApi = apiRouter();

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
      .int()
      .positive()
      .optional()
      .openapi({
        param: { name: "window", in: "query" },
        description:
          "Window length in seconds: the monitoring window (MONITORING_WINDOW_SECONDS, 900 by default) or a roll-up of 4 or 96 of them (3600, 86400 by default).",
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
    status: z.enum(METRIC_STATUSES).openapi({
      description:
        "ok, warn, alert: the verdict; insufficient_data: too few values for one (details.counts and details.needed say how many it had and needed), neither a pass nor an alert; unknown: the statistic is not defined for these data.",
    }),
    details: z.record(z.string(), z.unknown()),
    computedAt: Timestamp,
    runId: z.number().int().openapi({ description: "The monitoring run that computed it." }),
  })
  .openapi("MonitoringResult");

monitoringApi.openapi(
  adminRoute({
    permission: "monitoring.read",
    method: "get",
    path: "/models/{model}/monitoring",
    tags: ["Monitoring"],
    summary:
      "A model's monitoring results per window: operations, drift, data quality, comparisons, quality, fairness, KPIs",
    description: `Oldest window first. Metrics: ${monitoringMetrics.join(", ")}. A statistic that is not finite has value null and a reason. At most ${MAX_RESULTS} results; \`truncated\` says when more matched (narrow the range or filter).`,
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
    const lengths = windowLengths(c.env.MONITORING_WINDOW_SECONDS);
    if (query.window !== undefined && !lengths.all.includes(query.window)) {
      throw new ApiError(
        "VALIDATION_FAILED",
        `window: must be one of the monitoring windows, ${lengths.all.join(", ")} (seconds)`,
        {
          details: [
            { path: "window", message: `must be one of ${lengths.all.join(", ")} (seconds)` },
          ],
        },
      );
    }
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
          status: row.status as MetricStatus,
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

const RunStatus = z.enum(["queued", "running", "succeeded", "failed"]);
const RunKind = z.enum(["scheduled", "requested", "backfill", "direct"]);

const VersionSummary = z
  .object({
    model: z.string(),
    version: z.string(),
    computed: z.record(z.string(), z.number()).openapi({
      description: "Windows whose drift and data quality were computed, per role.",
    }),
    skipped: z.record(z.string(), z.number()).openapi({
      description:
        "Windows in which drift and data quality were not computed, by reason: `no baseline` (results but no baseline to compare with), `no traffic` (a baseline but no results of a monitored role).",
    }),
  })
  .openapi("MonitoringRunVersion");

const MonitoringRunSummary = z
  .object({
    id: z.number(),
    job: z.string(),
    kind: RunKind.nullable().openapi({
      description:
        "scheduled (the cron), requested (POST now), backfill (POST with a range), direct (called by a test); null for runs recorded before kinds were.",
    }),
    status: RunStatus,
    startedAt: Timestamp,
    finishedAt: Timestamp.nullable(),
    durationMs: z.number().nullable(),
    windows: z
      .number()
      .openapi({ description: "(model, version, role, window) entries computed." }),
    results: z.number(),
    error: z.string().nullable(),
  })
  .openapi("MonitoringRunSummary");

const MonitoringRun = MonitoringRunSummary.extend({
  windowSeconds: z.number().nullable().openapi({ description: "The base window of the run." }),
  range: z
    .object({ from: Timestamp, to: Timestamp })
    .nullable()
    .openapi({ description: "A backfill's range." }),
  progress: z
    .object({ windowsDone: z.number(), windowsTotal: z.number() })
    .nullable()
    .openapi({ description: "A backfill's windows computed so far, of every length." }),
  windowRange: z
    .object({ from: Timestamp, to: Timestamp })
    .nullable()
    .openapi({ description: "The span of the windows a run (not a backfill) computed." }),
  versions: z.array(VersionSummary),
  missed: z.object({ from: Timestamp, to: Timestamp, windows: z.number() }).nullable().openapi({
    description:
      "Base windows that ended while no run came, older than one run catches up on (a day of windows): a backfill over this range computes them.",
  }),
  evaluatedAt: z.array(Timestamp).openapi({
    description: "Ends of the base windows at which the models' alert rules were evaluated.",
  }),
  alerts: z
    .object({
      opened: z.number(),
      folded: z.number(),
      resolved: z.number(),
      notices: z.number(),
      insufficient: z.number().openapi({
        description:
          "Results a rule watches that had too little data to judge (insufficient_data): neither a pass nor a breach.",
      }),
    })
    .nullable()
    .openapi({
      description:
        "What the rules' evaluations did; null for a backfill or a run that did not finish.",
    }),
}).openapi("MonitoringRun");

type RunRow = typeof monitoringRuns.$inferSelect;
type RunDetails = {
  kind?: z.infer<typeof RunKind>;
  windowSeconds?: number;
  from?: string;
  to?: string;
  progress?: { windowsDone: number; windowsTotal: number };
  windowRange?: { from: string; to: string } | null;
  versions?: z.infer<typeof VersionSummary>[];
  missed?: { from: string; to: string; windows: number } | null;
  evaluatedAt?: string[];
  alerts?: {
    opened: number;
    folded: number;
    resolved: number;
    notices: number;
    insufficient?: number;
  };
};

function runSummary(row: RunRow): z.infer<typeof MonitoringRunSummary> {
  const details = row.details as RunDetails;
  return {
    id: row.id,
    job: row.job,
    kind: details.kind ?? null,
    status: row.status as z.infer<typeof RunStatus>,
    startedAt: row.startedAt.toISOString(),
    finishedAt: row.finishedAt ? row.finishedAt.toISOString() : null,
    durationMs: row.durationMs,
    windows: row.windows,
    results: row.results,
    error: row.error,
  };
}

function runResource(row: RunRow): z.infer<typeof MonitoringRun> {
  const details = row.details as RunDetails;
  return {
    ...runSummary(row),
    windowSeconds: details.windowSeconds ?? null,
    range: details.from && details.to ? { from: details.from, to: details.to } : null,
    progress: details.progress ?? null,
    windowRange: details.windowRange ?? null,
    versions: details.versions ?? [],
    missed: details.missed ?? null,
    evaluatedAt: details.evaluatedAt ?? [],
    alerts: details.alerts ? { insufficient: 0, ...details.alerts } : null,
  };
}

monitoringApi.openapi(
  adminRoute({
    permission: "monitoring.read",
    method: "get",
    path: "/monitoring/runs",
    tags: ["Monitoring"],
    summary: "The latest runs of the monitoring jobs, newest first",
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
      200: jsonContent(z.object({ items: z.array(MonitoringRunSummary) }), "Runs"),
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
    return c.json({ items: rows.map(runSummary) }, 200);
  },
);

monitoringApi.openapi(
  adminRoute({
    permission: "monitoring.read",
    method: "get",
    path: "/monitoring/runs/{id}",
    tags: ["Monitoring"],
    summary: "One monitoring run: what it computed and skipped, per model and version",
    request: { params: NumericIdParams },
    responses: {
      200: jsonContent(MonitoringRun, "The run"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const [row] = await c.var
      .database()
      .select()
      .from(monitoringRuns)
      .where(eq(monitoringRuns.id, id));
    if (!row) throw new ApiError("RUN_NOT_FOUND", `Monitoring run ${id} does not exist`);
    return c.json(runResource(row), 200);
  },
);

const RunRequest = z
  .object({
    from: Timestamp.optional().openapi({
      description: "A backfill: start of the range (windows starting at or after it).",
    }),
    to: Timestamp.optional().openapi({
      description: "A backfill: end of the range (windows ending at or before it).",
    }),
  })
  .strict()
  .superRefine((body, ctx) => {
    if ((body.from === undefined) !== (body.to === undefined)) {
      const missing = body.from === undefined ? "from" : "to";
      ctx.addIssue({
        code: "custom",
        path: [missing],
        message:
          "is required with the other end of the range (give both for a backfill, neither for a run now)",
      });
    } else if (body.from !== undefined && body.to !== undefined) {
      if (Date.parse(body.from) >= Date.parse(body.to))
        ctx.addIssue({ code: "custom", path: ["to"], message: "must be after from" });
    }
  })
  .openapi("MonitoringRunRequest");

monitoringApi.openapi(
  adminRoute({
    permission: "monitoring.run",
    method: "post",
    path: "/monitoring/runs",
    tags: ["Monitoring"],
    summary: "Run monitoring now, or backfill a past range",
    description: `Without a body (or \`{}\`), a run now: like the cron, it computes every window that ended since the last run's coverage and evaluates the alert rules. With \`from\` and \`to\`, a backfill: every window, of every length, that lies inside the range and has ended (at most ${MAX_BACKFILL_WINDOWS} base windows); alerts are not evaluated for the past. The run is queued and computed by its own consumer: follow it with \`GET /admin/monitoring/runs/{id}\` until it has \`succeeded\` or \`failed\`. Audited as monitoring.run.request.`,
    request: {
      headers: IdempotencyHeader,
      body: { required: false, content: { "application/json": { schema: RunRequest } } },
    },
    responses: {
      201: jsonContent(MonitoringRun, "The run, queued"),
      ...errorResponses(400, 401, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    // Without a Content-Type the body is not read: `{}`, a run now.
    const body = c.req.valid("json");
    const lengths = windowLengths(c.env.MONITORING_WINDOW_SECONDS);
    const now = new Date();
    let kind: "requested" | "backfill" = "requested";
    if (body.from !== undefined && body.to !== undefined) {
      kind = "backfill";
      const from = new Date(body.from);
      const to = new Date(body.to);
      const base = lengths.base * 1000;
      const span = Math.ceil((Math.min(to.getTime(), now.getTime()) - from.getTime()) / base);
      if (span > MAX_BACKFILL_WINDOWS) {
        throw new ApiError(
          "VALIDATION_FAILED",
          `from: the range holds ${span} windows of ${describeSeconds(lengths.base)}; a backfill takes at most ${MAX_BACKFILL_WINDOWS}: split it`,
          { details: [{ path: "from", message: `at most ${MAX_BACKFILL_WINDOWS} windows` }] },
        );
      }
      if (windowsToBackfill(from, to, now, lengths).length === 0) {
        throw new ApiError(
          "VALIDATION_FAILED",
          `to: no window of ${describeSeconds(lengths.base)} lies inside the range and has ended; a backfill computes only whole, ended windows`,
          { details: [{ path: "to", message: "the range holds no whole window that has ended" }] },
        );
      }
    }
    const asked = {
      kind,
      requestedAt: now.toISOString(),
      windowSeconds: lengths.base,
      ...(kind === "backfill" ? { from: body.from, to: body.to } : {}),
    };
    const { body: created } = await runChange(c, async (tx) => {
      const [row] = await tx
        .insert(monitoringRuns)
        .values({ job: MONITORING_JOB, status: "queued", details: asked })
        .returning();
      if (!row) throw new Error("the run was not recorded");
      return {
        status: 201,
        body: runResource(row),
        audit: [
          {
            action: "monitoring.run.request",
            targetType: "monitoring_run",
            target: `monitoring/runs/${row.id}`,
            before: null,
            after: asked,
          },
        ],
      };
    });
    try {
      await c.env.MONITORING_RUNS.send({ runId: created.id });
    } catch (error) {
      // The run is recorded; say it will not start rather than leave it queued.
      await c.var
        .database()
        .update(monitoringRuns)
        .set({ status: "failed", finishedAt: sql`now()`, error: "could not be queued" })
        .where(eq(monitoringRuns.id, created.id));
      throw error;
    }
    return c.json(created, 201);
  },
);

monitoringApi.openapi(
  adminRoute({
    permission: "monitoring.read",
    method: "get",
    path: "/models/{model}/monitoring/settings",
    tags: ["Monitoring"],
    summary: "A model's monitoring settings (empty: the defaults)",
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
  adminRoute({
    permission: "monitoring.write",
    method: "put",
    path: "/models/{model}/monitoring/settings",
    tags: ["Monitoring"],
    summary: "Replace a model's monitoring settings",
    description:
      "Drift overrides apply from the next monitoring run. Per-feature entries must name a feature of the model's input schema, or `prediction.<field>`. Audited as model.monitoring.update.",
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
