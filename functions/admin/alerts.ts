import { z } from "@hono/zod-openapi";
import { and, desc, eq, gte, inArray, lt, sql } from "drizzle-orm";
import { AlertRuleOverrides, RuleError, resolveRules } from "../../shared/alerts/rules";
import { modelsWith } from "../../shared/auth/permissions";
import { encryptSecret, maskUrl, parseEncryptionKey } from "../../shared/crypto-box";
import type { Database, Queryable } from "../../shared/db/client";
import {
  alertAcknowledgements,
  alertDeliveries,
  alertDestinations,
  alerts,
  models,
} from "../../shared/db/schema";
import { checkEgressUrl, parseEgressAllowlist } from "../../shared/egress";
import { ApiError, describeError, validationError } from "../../shared/errors";
import { windowLengths } from "../../shared/monitoring/windows";
import {
  isNoticeFilter,
  NOTICE_FAMILIES,
  NOTICE_TYPES,
  TEST_NOTICE_TYPE,
} from "../../shared/notices/types";
import { resumeAfter, splitPage } from "../../shared/pagination";
import { ModelName, PaginationQuery, pageOf, Timestamp } from "../../shared/schemas/common";
import type { AlertDeliveryMessage } from "../alerts/evaluate";
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
import { adminRoute, type ModelOf } from "./route";

export const alertsApi = apiRouter();

// ---- destinations ----------------------------------------------------------

const HttpsUrl = z
  .string()
  .max(2048)
  .url()
  .refine((value) => /^https?:\/\//.test(value), "must be an http(s) URL");

const NoticeTypes = z
  .array(
    z
      .string()
      .max(64)
      .refine(
        isNoticeFilter,
        `must be a notice type (${Object.keys(NOTICE_TYPES).join(", ")}) or a family of them (${NOTICE_FAMILIES.map((f) => `${f}.*`).join(", ")})`,
      ),
  )
  .min(1)
  .max(20);

const CreateDestination = z
  .object({
    name: z.string().min(1).max(100),
    kind: z.enum(["slack", "webhook"]).openapi({
      description:
        "slack: a Slack incoming-webhook URL (Block Kit messages). webhook: any HTTPS endpoint, sent a JSON body signed with HMAC-SHA256.",
    }),
    url: HttpsUrl.openapi({
      description:
        "Stored encrypted; never returned (only a hint). The egress rules of model upstreams: https to a public host or address, never user:password@; http, private addresses and local names only for hosts on UPSTREAM_ALLOWED_HOSTS. Checked again at each send; redirects are not followed.",
    }),
    secret: z.string().min(32).max(256).optional().openapi({
      description:
        "webhook only (required): the signing secret, at least 32 characters. Stored encrypted; never returned.",
    }),
    models: z.array(ModelName).min(1).max(100).nullable().optional().openapi({
      description: "Notices about these models only; omitted or null: every model.",
    }),
    minSeverity: z.enum(["warning", "critical"]).default("warning").openapi({
      description:
        "The lowest severity of the notices that have one (alerts) sent here; notices without a severity (approvals) are filtered by type alone.",
    }),
    includeSystem: z.boolean().default(true).openapi({
      description: "Whether Airlock's own health alerts (dead letters, late jobs…) go here too.",
    }),
    types: NoticeTypes.nullable().optional().openapi({
      description:
        "The notice types sent here: exact types (`approval.requested`) or families (`approval.*`); omitted or null: every type.",
    }),
  })
  .strict()
  .superRefine((body, ctx) => {
    if (body.kind === "webhook" && body.secret === undefined)
      ctx.addIssue({ code: "custom", path: ["secret"], message: "is required for a webhook" });
    if (body.kind === "slack" && body.secret !== undefined)
      ctx.addIssue({ code: "custom", path: ["secret"], message: "is only for webhooks" });
  })
  .openapi("CreateAlertDestination");

const Destination = z
  .object({
    id: z.string(),
    name: z.string(),
    kind: z.enum(["slack", "webhook"]),
    urlHint: z.string().openapi({ description: "Scheme, host and the last characters only." }),
    signed: z.boolean(),
    models: z.array(z.string()).nullable(),
    minSeverity: z.enum(["warning", "critical"]),
    includeSystem: z.boolean(),
    types: z.array(z.string()).nullable().openapi({ description: "Null: every notice type." }),
    createdAt: Timestamp,
    createdBy: z.string(),
    deletedAt: Timestamp.nullable(),
  })
  .openapi("AlertDestination");
type Destination = z.infer<typeof Destination>;

function destinationResource(row: typeof alertDestinations.$inferSelect): Destination {
  return {
    id: row.id,
    name: row.name,
    kind: row.kind,
    urlHint: row.urlHint,
    signed: row.secretBox !== null,
    models: row.models ?? null,
    minSeverity: row.minSeverity,
    includeSystem: row.includeSystem,
    types: row.types ?? null,
    createdAt: row.createdAt.toISOString(),
    createdBy: row.createdBy,
    deletedAt: row.deletedAt?.toISOString() ?? null,
  };
}

/** A destination's change as answered: the destination now, audited with before and after. */
function destinationChanged(
  action: string,
  current: typeof alertDestinations.$inferSelect,
  row: typeof alertDestinations.$inferSelect | undefined,
) {
  const resource = destinationResource(row ?? current);
  return {
    status: 200 as const,
    body: resource,
    audit: [
      {
        action,
        targetType: "alert_destination",
        target: `alert-destinations/${current.id}`,
        before: destinationResource(current),
        after: resource,
      },
    ],
  };
}

/** Refuses a list of models that names one that does not exist, naming it. */
async function requireModels(tx: Queryable, names: string[]): Promise<void> {
  const found = await tx
    .select({ name: models.name })
    .from(models)
    .where(sql`${models.name} = ANY(${`{${names.join(",")}}`}::text[])`);
  const known = new Set(found.map((m) => m.name));
  const missing = names.flatMap((name, i) =>
    known.has(name) ? [] : [{ path: ["models", i], message: `model '${name}' does not exist` }],
  );
  if (missing.length > 0) throw validationError(missing, "body");
}

const destinationParams = z.object({
  id: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "id", in: "path" } }),
});

alertsApi.openapi(
  adminRoute({
    permission: "alerts.manage",
    method: "post",
    path: "/alert-destinations",
    tags: ["Alerts"],
    summary: "Add an alert destination (Slack incoming webhook or signed webhook)",
    description:
      "The URL and the signing secret are encrypted with AES-256-GCM under the ALERT_ENCRYPTION_KEY secret and never returned. Audited as alert_destination.create (without them).",
    request: { headers: IdempotencyHeader, body: jsonBody(CreateDestination) },
    responses: {
      201: jsonContent(Destination, "The destination"),
      ...errorResponses(400, 401, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    // The egress rules of model upstreams, with today's allowlist; checked again at each send.
    const allowed = checkEgressUrl(body.url, parseEgressAllowlist(c.env.UPSTREAM_ALLOWED_HOSTS));
    if (!allowed.ok) throw validationError([{ path: ["url"], message: allowed.reason }], "body");
    const id = `dst_${crypto.randomUUID().replace(/-/g, "").slice(0, 20)}`;
    const key = await parseEncryptionKey(c.env.ALERT_ENCRYPTION_KEY).catch((error) => {
      throw new ApiError("INTERNAL_ERROR", String(error instanceof Error ? error.message : error));
    });
    const urlBox = await encryptSecret(key, body.url, `${id}:url`);
    const secretBox =
      body.secret === undefined ? null : await encryptSecret(key, body.secret, `${id}:secret`);
    const { body: created } = await runChange(c, async (tx) => {
      if (body.models) await requireModels(tx, body.models);
      const [row] = await tx
        .insert(alertDestinations)
        .values({
          id,
          name: body.name,
          kind: body.kind,
          urlBox,
          urlHint: maskUrl(body.url),
          secretBox,
          models: body.models ?? null,
          minSeverity: body.minSeverity,
          includeSystem: body.includeSystem,
          types: body.types ?? null,
          createdBy: c.var.principal.actor,
        })
        .returning();
      if (!row) throw new ApiError("INTERNAL_ERROR", "Destination was not stored");
      const resource = destinationResource(row);
      return {
        status: 201,
        body: resource,
        audit: [
          {
            action: "alert_destination.create",
            targetType: "alert_destination",
            target: `alert-destinations/${id}`,
            before: null,
            after: resource,
          },
        ],
      };
    });
    c.header("location", `/admin/alert-destinations/${created.id}`);
    return c.json(created, 201);
  },
);

alertsApi.openapi(
  adminRoute({
    permission: "alerts.read",
    method: "get",
    path: "/alert-destinations",
    tags: ["Alerts"],
    summary: "List alert destinations (URLs masked, secrets never shown)",
    request: {
      query: z.object({
        deleted: z
          .enum(["true", "false"])
          .optional()
          .openapi({
            param: { name: "deleted", in: "query" },
            description: "Include deleted ones.",
          }),
      }),
    },
    responses: {
      200: jsonContent(z.object({ items: z.array(Destination) }), "Destinations"),
      ...errorResponses(400, 401, 503),
    },
  }),
  async (c) => {
    const { deleted } = c.req.valid("query");
    const rows = await c.var
      .database()
      .select()
      .from(alertDestinations)
      .where(deleted === "true" ? undefined : sql`${alertDestinations.deletedAt} IS NULL`)
      .orderBy(desc(alertDestinations.createdAt));
    return c.json({ items: rows.map(destinationResource) }, 200);
  },
);

const UpdateDestination = z
  .object({
    name: z.string().min(1).max(100).optional(),
    models: z.array(ModelName).min(1).max(100).nullable().optional().openapi({
      description: "Notices about these models only; null: every model.",
    }),
    minSeverity: z.enum(["warning", "critical"]).optional(),
    includeSystem: z.boolean().optional(),
    types: NoticeTypes.nullable()
      .optional()
      .openapi({ description: "The notice types sent here; null: every type." }),
  })
  .strict()
  .refine((body) => Object.keys(body).length > 0, "names nothing to change")
  .openapi("UpdateAlertDestination");

alertsApi.openapi(
  adminRoute({
    permission: "alerts.manage",
    method: "patch",
    path: "/alert-destinations/{id}",
    tags: ["Alerts"],
    summary: "Change what a destination takes: its name, models, severity and notice types",
    description:
      "The URL and the secret are not changed here: add a new destination and delete this one. Notices created before keep going. Audited as alert_destination.update, with the destination before and after.",
    request: {
      params: destinationParams,
      headers: IdempotencyHeader,
      body: jsonBody(UpdateDestination),
    },
    responses: {
      200: jsonContent(Destination, "The destination"),
      ...errorResponses(400, 401, 404, 409, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const { body: updated } = await runChange(c, async (tx) => {
      const [current] = await tx
        .select()
        .from(alertDestinations)
        .where(eq(alertDestinations.id, id))
        .for("update");
      if (!current)
        throw new ApiError("DESTINATION_NOT_FOUND", `Alert destination '${id}' does not exist`);
      if (current.deletedAt)
        throw new ApiError(
          "DESTINATION_DELETED",
          `Alert destination '${id}' was deleted; add a new one instead`,
        );
      if (body.models) await requireModels(tx, body.models);
      const [row] = await tx
        .update(alertDestinations)
        .set({
          name: body.name,
          models: body.models,
          minSeverity: body.minSeverity,
          includeSystem: body.includeSystem,
          types: body.types,
        })
        .where(eq(alertDestinations.id, id))
        .returning();
      return destinationChanged("alert_destination.update", current, row);
    });
    return c.json(updated, 200);
  },
);

alertsApi.openapi(
  adminRoute({
    permission: "alerts.manage",
    method: "delete",
    path: "/alert-destinations/{id}",
    tags: ["Alerts"],
    summary: "Delete an alert destination",
    description:
      "No notice is sent there afterwards; notices still pending are dropped. The row stays (deliveries refer to it), without use. Audited.",
    request: { params: destinationParams },
    responses: {
      200: jsonContent(Destination, "The deleted destination"),
      ...errorResponses(401, 404, 503),
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const { body } = await runChange(c, async (tx) => {
      const [current] = await tx
        .select()
        .from(alertDestinations)
        .where(eq(alertDestinations.id, id))
        .for("update");
      if (!current)
        throw new ApiError("DESTINATION_NOT_FOUND", `Alert destination '${id}' does not exist`);
      if (current.deletedAt) return { status: 200, body: destinationResource(current), audit: [] };
      const [row] = await tx
        .update(alertDestinations)
        .set({ deletedAt: sql`now()`, deletedBy: c.var.principal.actor })
        .where(eq(alertDestinations.id, id))
        .returning();
      await tx
        .update(alertDeliveries)
        .set({ status: "dropped", lastError: "destination deleted", updatedAt: sql`now()` })
        .where(and(eq(alertDeliveries.destinationId, id), eq(alertDeliveries.status, "pending")));
      return destinationChanged("alert_destination.delete", current, row);
    });
    return c.json(body, 200);
  },
);

// ---- alerts ----------------------------------------------------------------

const Acknowledgement = z
  .object({
    acknowledgedAt: Timestamp,
    acknowledgedBy: z.string(),
    note: z.string().nullable(),
  })
  .openapi("AlertAcknowledgement");
type Acknowledgement = z.infer<typeof Acknowledgement>;

const Alert = z
  .object({
    id: z.number().int(),
    state: z.enum(["pending", "firing", "resolved"]).openapi({
      description:
        "pending: found, but not yet for as many evaluations as its rule asks (nobody is told); firing; resolved.",
    }),
    severity: z.enum(["warning", "critical"]),
    rule: z.string(),
    model: z.string().openapi({ description: "Empty for Airlock's own health." }),
    version: z.string(),
    role: z.string(),
    metric: z.string(),
    dimension: z.string(),
    value: z.number().nullable(),
    threshold: z.number().nullable(),
    comparison: z.enum(["above", "below"]),
    statistics: z
      .array(
        z.object({
          metric: z.string(),
          name: z.string(),
          value: z.number().nullable(),
          threshold: z.number().nullable(),
          comparison: z.enum(["above", "below"]),
          violating: z.boolean(),
        }),
      )
      .openapi({
        description:
          "Every statistic the rule compared at the last evaluation, each with its value, threshold and the direction that breaks the rule; `value`, `threshold` and `comparison` are the leading one's (the first that broke the rule).",
      }),
    windowSeconds: z.number().nullable(),
    windowStart: Timestamp.nullable(),
    summary: z.string(),
    count: z.number().int(),
    firstSeenAt: Timestamp,
    lastSeenAt: Timestamp,
    clearSince: Timestamp.nullable(),
    resolvedAt: Timestamp.nullable(),
    resolution: z.enum(["recovered", "no_data", "unconfirmed"]).nullable(),
    acknowledgedAt: Timestamp.nullable().openapi({
      description: "The latest acknowledgement's time; null if nobody has acknowledged it.",
    }),
    acknowledgedBy: z.string().nullable().openapi({
      description: "Who made the latest acknowledgement.",
    }),
    acknowledgements: z.array(Acknowledgement).openapi({
      description: "Every acknowledgement, oldest first; none is ever changed or removed.",
    }),
  })
  .openapi("Alert");
type Alert = z.infer<typeof Alert>;

const iso = (d: Date | null) => (d === null ? null : d.toISOString());

function acknowledgementResource(row: typeof alertAcknowledgements.$inferSelect): Acknowledgement {
  return {
    acknowledgedAt: row.acknowledgedAt.toISOString(),
    acknowledgedBy: row.acknowledgedBy,
    note: row.note,
  };
}

/** The acknowledgements of these alerts, oldest first, by alert. */
async function acknowledgementsOf(
  db: Pick<Database, "select">,
  ids: number[],
): Promise<Map<number, Acknowledgement[]>> {
  const out = new Map<number, Acknowledgement[]>();
  if (ids.length === 0) return out;
  const rows = await db
    .select()
    .from(alertAcknowledgements)
    .where(inArray(alertAcknowledgements.alertId, ids))
    .orderBy(alertAcknowledgements.id);
  for (const row of rows) {
    const list = out.get(row.alertId) ?? [];
    list.push(acknowledgementResource(row));
    out.set(row.alertId, list);
  }
  return out;
}

function alertResource(
  row: typeof alerts.$inferSelect,
  acknowledgements: Acknowledgement[],
): Alert {
  const latest = acknowledgements.at(-1);
  return {
    id: row.id,
    state: row.state,
    severity: row.severity,
    rule: row.rule,
    model: row.model,
    version: row.version,
    role: row.role,
    metric: row.metric,
    dimension: row.dimension,
    value: row.value,
    threshold: row.threshold,
    comparison: row.comparison,
    statistics: row.statistics,
    windowSeconds: row.windowSeconds,
    windowStart: iso(row.windowStart),
    summary: row.summary,
    count: row.count,
    firstSeenAt: row.firstSeenAt.toISOString(),
    lastSeenAt: row.lastSeenAt.toISOString(),
    clearSince: iso(row.clearSince),
    resolvedAt: iso(row.resolvedAt),
    resolution: row.resolution,
    acknowledgedAt: latest?.acknowledgedAt ?? null,
    acknowledgedBy: latest?.acknowledgedBy ?? null,
    acknowledgements,
  };
}

alertsApi.openapi(
  adminRoute({
    permission: "alerts.read",
    model: "resource",
    method: "get",
    path: "/alerts",
    tags: ["Alerts"],
    summary: "List alerts, newest first",
    description:
      "Filters: state (`open`: pending or firing), model (the empty string: Airlock's own health), severity, rule, and the first-seen time range. Each alert comes with its acknowledgements.",
    request: {
      query: PaginationQuery.extend({
        state: z
          .enum(["open", "pending", "firing", "resolved"])
          .optional()
          .openapi({
            param: { name: "state", in: "query" },
            description: "`open`: pending or firing, every alert not yet resolved.",
          }),
        model: z
          .union([ModelName, z.literal("")])
          .optional()
          .openapi({ param: { name: "model", in: "query" } }),
        severity: z
          .enum(["warning", "critical"])
          .optional()
          .openapi({ param: { name: "severity", in: "query" } }),
        rule: z
          .string()
          .max(64)
          .optional()
          .openapi({ param: { name: "rule", in: "query" } }),
        from: Timestamp.optional().openapi({ param: { name: "from", in: "query" } }),
        to: Timestamp.optional().openapi({ param: { name: "to", in: "query" } }),
      }),
    },
    responses: {
      200: jsonContent(pageOf(Alert), "A page of alerts"),
      ...errorResponses(400, 401, 503),
    },
  }),
  async (c) => {
    const query = c.req.valid("query");
    const before = resumeAfter(query.cursor, { id: "number" });
    // Only the alerts of models the caller may read them on.
    const visible = modelsWith(c.var.principal, "alerts.read");
    if (visible !== "all" && visible.length === 0)
      return c.json({ items: [], nextCursor: null }, 200);
    const db = c.var.database();
    const rows = await db
      .select()
      .from(alerts)
      .where(
        and(
          visible === "all" ? undefined : inArray(alerts.model, visible),
          query.state === undefined
            ? undefined
            : query.state === "open"
              ? inArray(alerts.state, ["pending", "firing"])
              : eq(alerts.state, query.state),
          query.model === undefined ? undefined : eq(alerts.model, query.model),
          query.severity === undefined ? undefined : eq(alerts.severity, query.severity),
          query.rule === undefined ? undefined : eq(alerts.rule, query.rule),
          query.from === undefined ? undefined : gte(alerts.firstSeenAt, new Date(query.from)),
          query.to === undefined ? undefined : lt(alerts.firstSeenAt, new Date(query.to)),
          before === undefined ? undefined : lt(alerts.id, before.id),
        ),
      )
      .orderBy(desc(alerts.id))
      .limit(query.limit + 1);
    const page = splitPage(rows, query.limit, (last) => ({ id: last.id }));
    const acknowledgements = await acknowledgementsOf(
      db,
      page.rows.map((row) => row.id),
    );
    return c.json(
      {
        items: page.rows.map((row) => alertResource(row, acknowledgements.get(row.id) ?? [])),
        nextCursor: page.nextCursor,
      },
      200,
    );
  },
);

const Delivery = z
  .object({
    id: z.number().int(),
    type: z.string().openapi({
      description:
        "The notice type: `alert.firing`, `alert.resolved`, `alert.test` (POST /admin/alert-destinations/{id}/test), `approval.requested`, `approval.decided`, `approval.applied`.",
    }),
    model: z.string().nullable().openapi({
      description:
        "The model the notice is about; empty for Airlock's own health; null for a test.",
    }),
    alertId: z.number().int().nullable().openapi({ description: "Set for alert notices alone." }),
    destinationId: z.string(),
    transition: z.enum(["firing", "resolved", "test"]).nullable().openapi({
      description:
        "An alert notice's transition (firing or resolved), or `test`; null for other notice types.",
    }),
    status: z.enum(["pending", "sent", "failed", "dropped"]).openapi({
      description:
        "pending: queued or waiting to be tried again; sent; failed: refused for good, or retries exhausted (a test notice: any attempt that did not succeed); dropped: its destination was deleted.",
    }),
    attempts: z.number().int(),
    lastStatus: z.number().int().nullable().openapi({
      description: "The receiver's HTTP status at the last attempt; null if it did not answer.",
    }),
    lastError: z.string().nullable(),
    nextAttemptAt: Timestamp.nullable(),
    createdAt: Timestamp,
    sentAt: Timestamp.nullable(),
  })
  .openapi("AlertDelivery");
type Delivery = z.infer<typeof Delivery>;

function deliveryResource(row: typeof alertDeliveries.$inferSelect): Delivery {
  return {
    id: row.id,
    type: row.type,
    model: row.model,
    alertId: row.alertId,
    destinationId: row.destinationId,
    transition: row.transition,
    status: row.status,
    attempts: row.attempts,
    lastStatus: row.lastStatus,
    lastError: row.lastError,
    nextAttemptAt: iso(row.nextAttemptAt),
    createdAt: row.createdAt.toISOString(),
    sentAt: iso(row.sentAt),
  };
}

alertsApi.openapi(
  adminRoute({
    permission: "alerts.read",
    modelOf: alertModel,
    method: "get",
    path: "/alerts/{id}",
    tags: ["Alerts"],
    summary: "One alert, with its acknowledgements and deliveries",
    request: { params: NumericIdParams },
    responses: {
      200: jsonContent(Alert.extend({ deliveries: z.array(Delivery) }), "The alert"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const db = c.var.database();
    const [row] = await db.select().from(alerts).where(eq(alerts.id, id));
    if (!row) throw new ApiError("ALERT_NOT_FOUND", `Alert ${id} does not exist`);
    const acknowledgements = await acknowledgementsOf(db, [id]);
    const deliveries = await db
      .select()
      .from(alertDeliveries)
      .where(eq(alertDeliveries.alertId, id))
      .orderBy(alertDeliveries.id);
    return c.json(
      {
        ...alertResource(row, acknowledgements.get(id) ?? []),
        deliveries: deliveries.map(deliveryResource),
      },
      200,
    );
  },
);

alertsApi.openapi(
  adminRoute({
    permission: "alerts.acknowledge",
    modelOf: alertModel,
    method: "post",
    path: "/alerts/{id}/acknowledge",
    tags: ["Alerts"],
    summary: "Acknowledge an alert: someone is on it",
    description:
      "Adds an acknowledgement (who, when, and an optional note) to the alert's list; earlier ones stay as they were. The alert keeps firing until its condition clears. Audited as alert.acknowledge.",
    request: {
      params: NumericIdParams,
      headers: IdempotencyHeader,
      body: jsonBody(
        z
          .object({
            note: z.string().max(1000).optional().openapi({
              description: "Shown as `note` in the alert's `acknowledgements`.",
            }),
          })
          .strict(),
      ),
    },
    responses: {
      200: jsonContent(Alert, "The acknowledged alert, with every acknowledgement"),
      ...errorResponses(400, 401, 404, 413, 415, 503),
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const note = c.req.valid("json").note ?? null;
    const { body } = await runChange(c, async (tx) => {
      // Locked so that acknowledgements of one alert are recorded (and audited) one at a time.
      const [current] = await tx.select().from(alerts).where(eq(alerts.id, id)).for("update");
      if (!current) throw new ApiError("ALERT_NOT_FOUND", `Alert ${id} does not exist`);
      const earlier = (await acknowledgementsOf(tx, [id])).get(id) ?? [];
      const [added] = await tx
        .insert(alertAcknowledgements)
        .values({ alertId: id, acknowledgedBy: c.var.principal.actor, note })
        .returning();
      if (!added) throw new ApiError("INTERNAL_ERROR", "Acknowledgement was not stored");
      const acknowledgement = acknowledgementResource(added);
      const previous = earlier.at(-1);
      return {
        status: 200,
        body: alertResource(current, [...earlier, acknowledgement]),
        audit: [
          {
            action: "alert.acknowledge",
            targetType: "alert",
            target: `alerts/${id}`,
            before: {
              acknowledgedAt: previous?.acknowledgedAt ?? null,
              acknowledgedBy: previous?.acknowledgedBy ?? null,
            },
            after: acknowledgement,
          },
        ],
      };
    });
    return c.json(body, 200);
  },
);

// ---- test notices and deliveries -------------------------------------------

/** Longest a test waits for its outcome (`wait`), and how long by default. */
const TEST_WAIT_MAX_SECONDS = 30;
const TEST_WAIT_DEFAULT_SECONDS = 15;

/**
 * The delivery once it is no longer pending, or as it stands when `waitMs`
 * has passed. Polled: the send happens in the queue consumer, another
 * invocation, which tells nobody but the row.
 */
async function awaitDelivery(
  db: Database,
  id: number,
  waitMs: number,
): Promise<typeof alertDeliveries.$inferSelect | undefined> {
  const deadline = Date.now() + waitMs;
  let pause = 100;
  for (;;) {
    const [row] = await db.select().from(alertDeliveries).where(eq(alertDeliveries.id, id));
    const left = deadline - Date.now();
    if (row?.status !== "pending" || left <= 0) return row;
    await scheduler.wait(Math.min(pause, left));
    pause = Math.min(pause * 2, 1000);
  }
}

alertsApi.openapi(
  adminRoute({
    permission: "alerts.manage",
    method: "post",
    path: "/alert-destinations/{id}/test",
    tags: ["Alerts"],
    summary: "Send a test notice to a destination and report what its receiver said",
    description: `The test notice goes the way an alert's does (a delivery row, the ALERT_DELIVERIES queue, the destination's object, its URL checked against the egress rules, signed for a webhook), but belongs to no alert: Slack shows "Test notice from Airlock", a webhook gets \`{ "type": "alert.test", "test": true, … }\` with no \`alert\` object. It is tried once, without retries. The call waits up to \`wait\` seconds (default ${TEST_WAIT_DEFAULT_SECONDS}, at most ${TEST_WAIT_MAX_SECONDS}) for the outcome: \`status\` sent, or failed with the receiver's \`lastStatus\` and \`lastError\`; still pending after that, follow it at the Location (GET /admin/alert-deliveries/{id}). A retry with the same Idempotency-Key sends nothing more and answers the delivery as it was created. Audited as alert_destination.test.`,
    request: {
      params: destinationParams,
      headers: IdempotencyHeader,
      query: z.object({
        wait: z.coerce
          .number()
          .int()
          .min(0)
          .max(TEST_WAIT_MAX_SECONDS)
          .default(TEST_WAIT_DEFAULT_SECONDS)
          .openapi({
            param: { name: "wait", in: "query" },
            description: "Seconds to wait for the outcome; 0 answers at once.",
          }),
      }),
    },
    responses: {
      201: jsonContent(Delivery, "The test delivery, as it stands when the call returns"),
      ...errorResponses(400, 401, 404, 409, 503),
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const { wait } = c.req.valid("query");
    const { body: created } = await runChange(c, async (tx) => {
      const [destination] = await tx
        .select()
        .from(alertDestinations)
        .where(eq(alertDestinations.id, id))
        .for("share");
      if (!destination)
        throw new ApiError("DESTINATION_NOT_FOUND", `Alert destination '${id}' does not exist`);
      if (destination.deletedAt)
        throw new ApiError(
          "DESTINATION_DELETED",
          `Alert destination '${id}' was deleted; add it again to test it`,
        );
      const [row] = await tx
        .insert(alertDeliveries)
        .values({ type: TEST_NOTICE_TYPE, alertId: null, destinationId: id, transition: "test" })
        .returning();
      if (!row) throw new ApiError("INTERNAL_ERROR", "Test delivery was not stored");
      const delivery = deliveryResource(row);
      return {
        status: 201,
        body: delivery,
        audit: [
          {
            action: "alert_destination.test",
            targetType: "alert_destination",
            target: `alert-destinations/${id}`,
            before: null,
            after: { deliveryId: delivery.id },
          },
        ],
      };
    });
    const db = c.var.database();
    try {
      await c.env.ALERT_DELIVERIES.send({ deliveryId: created.id } satisfies AlertDeliveryMessage);
    } catch (error) {
      // Never sent later: a test that is not tried now has no outcome worth having.
      await db
        .update(alertDeliveries)
        .set({
          status: "failed",
          lastError: `could not be queued: ${describeError(error)}`.slice(0, 500),
          updatedAt: sql`now()`,
        })
        .where(and(eq(alertDeliveries.id, created.id), eq(alertDeliveries.status, "pending")));
    }
    const outcome = await awaitDelivery(db, created.id, wait * 1000);
    c.header("location", `/admin/alert-deliveries/${created.id}`);
    return c.json(outcome ? deliveryResource(outcome) : created, 201);
  },
);

alertsApi.openapi(
  adminRoute({
    permission: "alerts.read",
    modelOf: deliveryModel,
    method: "get",
    path: "/alert-deliveries/{id}",
    tags: ["Alerts"],
    summary: "One delivery: an alert's notice to a destination, or a test notice",
    request: { params: NumericIdParams },
    responses: {
      200: jsonContent(Delivery, "The delivery"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const [row] = await c.var
      .database()
      .select({ delivery: alertDeliveries, model: alerts.model })
      .from(alertDeliveries)
      .leftJoin(alerts, eq(alerts.id, alertDeliveries.alertId))
      .where(eq(alertDeliveries.id, id));
    if (!row) throw new ApiError("DELIVERY_NOT_FOUND", `Alert delivery ${id} does not exist`);
    return c.json(deliveryResource(row.delivery), 200);
  },
);

/** The model of the alert a route names by id (undefined: no such alert). */
async function alertModel(c: Parameters<ModelOf>[0]): ReturnType<ModelOf> {
  const id = Number(c.req.param("id"));
  if (!Number.isSafeInteger(id) || id < 1) return undefined;
  const [row] = await c.var
    .database()
    .select({ model: alerts.model })
    .from(alerts)
    .where(eq(alerts.id, id));
  return row?.model;
}

/** The model a delivery's notice is about; null for a test notice, which belongs to no model. */
async function deliveryModel(c: Parameters<ModelOf>[0]): ReturnType<ModelOf> {
  const id = Number(c.req.param("id"));
  if (!Number.isSafeInteger(id) || id < 1) return undefined;
  const [row] = await c.var
    .database()
    .select({ model: alertDeliveries.model })
    .from(alertDeliveries)
    .where(eq(alertDeliveries.id, id));
  return row === undefined ? undefined : (row.model ?? null);
}

// ---- rules -----------------------------------------------------------------

alertsApi.openapi(
  adminRoute({
    permission: "monitoring.read",
    method: "get",
    path: "/models/{model}/alert-rules",
    tags: ["Alerts"],
    summary: "A model's alert rules: its overrides and the rules in force",
    request: { params: modelParams },
    responses: {
      200: jsonContent(
        z.object({
          overrides: AlertRuleOverrides,
          rules: z.record(z.string(), z.unknown()),
          cooldownMinutes: z.number(),
          staleMinutes: z.number(),
        }),
        "The rules",
      ),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const model = await findModel(c.var.database(), c.req.valid("param").model);
    const overrides = model.alertRules ?? {};
    const lengths = windowLengths(c.env.MONITORING_WINDOW_SECONDS);
    let resolved: ReturnType<typeof resolveRules>;
    try {
      resolved = resolveRules(overrides, lengths);
    } catch (error) {
      // Overrides saved under another window length: shown with the defaults.
      if (!(error instanceof RuleError)) throw error;
      resolved = resolveRules(null, lengths);
    }
    return c.json({ overrides, ...resolved }, 200);
  },
);

alertsApi.openapi(
  adminRoute({
    permission: "monitoring.write",
    method: "put",
    path: "/models/{model}/alert-rules",
    tags: ["Alerts"],
    summary: "Replace a model's alert rule overrides",
    description:
      "Per rule, the fields to change (`enabled`, `severity`, `windowSeconds`, `threshold`, …; each must fit the rule's kind), and `cooldownMinutes`, `staleMinutes`. `{}` restores the defaults. Applies from the next evaluation. Audited as model.alert_rules.update.",
    request: {
      params: modelParams,
      headers: IdempotencyHeader,
      body: jsonBody(AlertRuleOverrides),
    },
    responses: {
      200: jsonContent(AlertRuleOverrides, "The new overrides"),
      ...errorResponses(400, 401, 404, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const name = c.req.valid("param").model;
    const overrides = c.req.valid("json");
    try {
      resolveRules(overrides, windowLengths(c.env.MONITORING_WINDOW_SECONDS));
    } catch (error) {
      if (!(error instanceof RuleError)) throw error;
      throw new ApiError("VALIDATION_FAILED", `Invalid body: ${error.message}`, {
        details: [{ path: error.path, message: error.message.slice(error.path.length + 2) }],
      });
    }
    const { body } = await runChange(c, async (tx) => {
      const current = await findModel(tx, name, true);
      await tx
        .update(models)
        .set({ alertRules: overrides, updatedAt: sql`now()` })
        .where(eq(models.id, current.id));
      return {
        status: 200,
        body: overrides,
        audit: [
          {
            action: "model.alert_rules.update",
            targetType: "model",
            target: `models/${name}`,
            before: current.alertRules ?? {},
            after: overrides,
          },
        ],
      };
    });
    return c.json(body, 200);
  },
);
