import { z } from "@hono/zod-openapi";
import { and, desc, eq, lt, sql } from "drizzle-orm";
import { canonicalJson, sha256Hex } from "../../shared/crypto";
import type { Queryable, Transaction } from "../../shared/db/client";
import { modelVersions } from "../../shared/db/schema";
import { checkEgressUrl, parseEgressAllowlist } from "../../shared/egress";
import { ApiError, validationError } from "../../shared/errors";
import { rolloutFingerprint, versionRetireNeeds } from "../../shared/governance/policy";
import { resumeAfter, splitPage } from "../../shared/pagination";
import { namedVersions } from "../../shared/rollout/state";
import { PaginationQuery, pageOf, Timestamp, VersionLabel } from "../../shared/schemas/common";
import {
  CreateVersionBody,
  type HttpUpstream,
  ModelCard,
  type UpstreamConfiguration,
  upstreamWarnings,
  VersionResource,
} from "../../shared/schemas/version";
import { ensureConfigured } from "../rollout/object";
import { apiRouter } from "../router";
import { approvalRequired, consumeApproval, recordConsumption } from "./approval-gate";
import { prepareBuiltin, storeBuiltin } from "./artifacts";
import { uploadedBaseline } from "./baselines";
import { queueNotices, runChange } from "./change";
import { findModel, modelParams } from "./models";
import { errorResponses, IdempotencyHeader, jsonBody, jsonContent } from "./openapi";
import { adminRoute } from "./route";
import { versionResource } from "./serialize";

const versionParams = modelParams.extend({
  version: VersionLabel.openapi({ param: { name: "version", in: "path" } }),
});

export const versionsApi = apiRouter();

/** The Worker's configuration as it bears on calling upstreams: the same facts each call meets. */
function upstreamConfiguration(env: Env): UpstreamConfiguration {
  const bindings = env as unknown as Record<string, unknown>;
  return {
    allowlist: parseEgressAllowlist(env.UPSTREAM_ALLOWED_HOSTS),
    hasSecret: (name) => {
      const value = bindings[name];
      return typeof value === "string" && value !== "";
    },
  };
}

/** A version as shown: its warnings are worked out now, so a secret set since clears its own. */
function shownVersion(
  modelName: string,
  row: typeof modelVersions.$inferSelect,
  configuration: UpstreamConfiguration,
): VersionResource {
  const warnings = upstreamWarnings(row.upstream, configuration);
  return { ...versionResource(modelName, row), servable: warnings.length === 0, warnings };
}

async function findVersion(
  db: Queryable,
  modelId: number,
  modelName: string,
  label: string,
  forUpdate = false,
) {
  const query = db
    .select()
    .from(modelVersions)
    .where(and(eq(modelVersions.modelId, modelId), eq(modelVersions.version, label)));
  const [row] = forUpdate ? await query.for("update") : await query;
  if (!row)
    throw new ApiError("VERSION_NOT_FOUND", `Model '${modelName}' has no version '${label}'`);
  return row;
}

/**
 * Keeps a revision of a version's model card and makes it the current one:
 * its hash is over the card's text as stored (jsonb's canonical text).
 */
async function recordCardRevision(
  tx: Transaction,
  versionId: number,
  revision: number,
  modelCard: unknown,
  actor: string,
): Promise<typeof modelVersions.$inferSelect> {
  const card = JSON.stringify(modelCard);
  await tx.execute(sql`
    INSERT INTO model_card_revisions (version_id, revision, model_card, sha256, created_by)
    VALUES (${versionId}, ${revision}, ${card}::jsonb,
      encode(sha256(convert_to(${card}::jsonb::text, 'UTF8')), 'hex'), ${actor})`);
  const [row] = await tx
    .update(modelVersions)
    .set({
      modelCard: modelCard as typeof modelVersions.$inferInsert.modelCard,
      cardRevision: revision,
      cardSha256: sql`encode(sha256(convert_to(${card}::jsonb::text, 'UTF8')), 'hex')`,
      updatedAt: sql`now()`,
    })
    .where(eq(modelVersions.id, versionId))
    .returning();
  if (!row) throw new Error(`version ${versionId} is gone`);
  return row;
}

versionsApi.openapi(
  adminRoute({
    permission: "models.write",
    method: "post",
    path: "/{model}/versions",
    tags: ["Versions"],
    summary: "Register a version of a model",
    description:
      "Versions are immutable once created, except their lifecycle status (mirrored from the rollout), model card and baseline. What can never serve is refused (400 naming the field: a URL the egress rules refuse, a model file that does not fit the model); what stops the version serving but can be put right later without a new version (a credential secret not set yet) is a warning in `warnings`, with `servable: false`.",
    request: { params: modelParams, headers: IdempotencyHeader, body: jsonBody(CreateVersionBody) },
    responses: {
      201: jsonContent(VersionResource, "The stored version, with its warnings"),
      ...errorResponses(400, 401, 404, 409, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const modelName = c.req.valid("param").model;
    const body = c.req.valid("json");
    const configuration = upstreamConfiguration(c.env);
    if (body.upstream.kind === "http") {
      // The egress rules with today's allowlist; checked again at each call.
      // Refused, not warned about: the allowlist changes only with a deploy,
      // which comes first when a host is to be admitted.
      const allowed = checkEgressUrl(body.upstream.url, configuration.allowlist);
      if (!allowed.ok)
        throw validationError([{ path: ["upstream", "url"], message: allowed.reason }], "body");
    }
    // A builtin model file is read and checked before the transaction: it is
    // CPU work that needs no lock.
    const builtin = body.upstream.kind === "builtin" ? await prepareBuiltin(body.upstream) : null;
    const upstream = builtin ? builtin.upstream : (body.upstream as HttpUpstream);
    const upstreamSha256 = await sha256Hex(canonicalJson(upstream));
    const { status, body: version } = await runChange(c, async (tx) => {
      // Lock the model row so a version never appears under a model being changed.
      const model = await findModel(tx, modelName, true);
      const baseline = body.baseline
        ? uploadedBaseline(model, body.baseline, "baseline.rows", {
            createdAt: new Date().toISOString(),
            createdBy: c.var.principal.actor,
          })
        : null;
      if (builtin) await storeBuiltin(tx, model, builtin, c.var.principal.actor);
      const [row] = await tx
        .insert(modelVersions)
        .values({
          modelId: model.id,
          version: body.version,
          upstream,
          upstreamSha256,
          modelCard: body.modelCard,
          baseline,
          createdBy: c.var.principal.actor,
        })
        .onConflictDoNothing({ target: [modelVersions.modelId, modelVersions.version] })
        .returning();
      if (!row)
        throw new ApiError(
          "VERSION_EXISTS",
          `Model '${modelName}' already has version '${body.version}'`,
        );
      const carded = await recordCardRevision(tx, row.id, 1, body.modelCard, c.var.principal.actor);
      const resource = shownVersion(modelName, carded, configuration);
      return {
        status: 201,
        body: resource,
        audit: [
          {
            action: "version.create",
            targetType: "version",
            target: `models/${modelName}/versions/${row.version}`,
            before: null,
            after: resource,
          },
        ],
      };
    });
    c.header("location", `/admin/models/${modelName}/versions/${version.version}`);
    return c.json(version, status as 201);
  },
);

versionsApi.openapi(
  adminRoute({
    permission: "models.read",
    method: "get",
    path: "/{model}/versions",
    tags: ["Versions"],
    summary: "List a model's versions, newest first",
    request: { params: modelParams, query: PaginationQuery },
    responses: {
      200: jsonContent(pageOf(VersionResource), "A page of versions"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const modelName = c.req.valid("param").model;
    const { limit, cursor } = c.req.valid("query");
    const before = resumeAfter(cursor, { id: "number" });
    const db = c.var.database();
    const model = await findModel(db, modelName);
    const rows = await db
      .select()
      .from(modelVersions)
      .where(
        and(
          eq(modelVersions.modelId, model.id),
          before === undefined ? undefined : lt(modelVersions.id, before.id),
        ),
      )
      .orderBy(desc(modelVersions.id))
      .limit(limit + 1);
    const page = splitPage(rows, limit, (last) => ({ id: last.id }));
    const configuration = upstreamConfiguration(c.env);
    return c.json(
      {
        items: page.rows.map((row) => shownVersion(modelName, row, configuration)),
        nextCursor: page.nextCursor,
      },
      200,
    );
  },
);

versionsApi.openapi(
  adminRoute({
    permission: "models.read",
    method: "get",
    path: "/{model}/versions/{version}",
    tags: ["Versions"],
    summary: "Read a version, with its full upstream definition",
    request: { params: versionParams },
    responses: {
      200: jsonContent(VersionResource, "The version"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { model: modelName, version } = c.req.valid("param");
    const db = c.var.database();
    const model = await findModel(db, modelName);
    const row = await findVersion(db, model.id, modelName, version);
    return c.json(shownVersion(modelName, row, upstreamConfiguration(c.env)), 200);
  },
);

const CardRevision = z
  .object({
    model: z.string(),
    version: z.string(),
    revision: z.number().int(),
    current: z.boolean().openapi({ description: "Whether it is the card in force now." }),
    modelCard: ModelCard,
    sha256: z.string().openapi({
      description: "SHA-256 of the card's text as stored (jsonb's canonical text).",
    }),
    createdAt: Timestamp.openapi({
      description: "When it was set: in force from then to the next.",
    }),
    createdBy: z.string(),
  })
  .openapi("ModelCardRevision");

versionsApi.openapi(
  adminRoute({
    permission: "models.read",
    method: "get",
    path: "/{model}/versions/{version}/card",
    tags: ["Versions"],
    summary: "A revision of a version's model card (the current one by default)",
    description:
      "Every edit of a model card keeps the card before it: revision 1 is the card the version was registered with (or, for versions registered before cards were kept, the card when they began to be). With `revision`, that one; without, the current.",
    request: {
      params: versionParams,
      query: z.object({
        revision: z.coerce
          .number()
          .int()
          .min(1)
          .optional()
          .openapi({ param: { name: "revision", in: "query" } }),
      }),
    },
    responses: {
      200: jsonContent(CardRevision, "The card at that revision"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { model: modelName, version: label } = c.req.valid("param");
    const { revision } = c.req.valid("query");
    const db = c.var.database();
    const model = await findModel(db, modelName);
    const version = await findVersion(db, model.id, modelName, label);
    const wanted = revision ?? version.cardRevision;
    const [row] = (
      await db.execute<{
        revision: number;
        model_card: ModelCard;
        sha256: string;
        created_at: string;
        created_by: string;
      }>(sql`
        SELECT revision, model_card, sha256, created_at, created_by FROM model_card_revisions
        WHERE version_id = ${version.id} AND revision = ${wanted}`)
    ).rows;
    if (!row)
      throw new ApiError(
        "CARD_REVISION_NOT_FOUND",
        `Version '${label}' of '${modelName}' has no model card revision ${wanted} (it has 1 to ${version.cardRevision})`,
      );
    return c.json(
      {
        model: modelName,
        version: label,
        revision: Number(row.revision),
        current: Number(row.revision) === version.cardRevision,
        modelCard: row.model_card,
        sha256: row.sha256,
        createdAt: new Date(row.created_at).toISOString(),
        createdBy: row.created_by,
      },
      200,
    );
  },
);

const UpdateVersionBody = z.object({ modelCard: ModelCard }).strict().openapi("UpdateVersion");

versionsApi.openapi(
  adminRoute({
    permission: "models.write",
    method: "patch",
    path: "/{model}/versions/{version}",
    tags: ["Versions"],
    summary: "Replace a version's model card",
    description:
      "The model card is the only part of a version an operator may change after creation.",
    request: { params: versionParams, body: jsonBody(UpdateVersionBody) },
    responses: {
      200: jsonContent(VersionResource, "The updated version"),
      ...errorResponses(400, 401, 404, 413, 415, 503),
    },
  }),
  async (c) => {
    const { model: modelName, version: label } = c.req.valid("param");
    const { modelCard } = c.req.valid("json");
    const { body } = await runChange(c, async (tx) => {
      const model = await findModel(tx, modelName);
      const current = await findVersion(tx, model.id, modelName, label, true);
      const row = await recordCardRevision(
        tx,
        current.id,
        current.cardRevision + 1,
        modelCard,
        c.var.principal.actor,
      );
      return {
        status: 200,
        body: shownVersion(modelName, row, upstreamConfiguration(c.env)),
        audit: [
          {
            action: "version.card.update",
            targetType: "version",
            target: `models/${modelName}/versions/${label}`,
            before: {
              modelCard: current.modelCard,
              cardRevision: current.cardRevision,
              cardSha256: current.cardSha256,
            },
            after: { modelCard, cardRevision: row.cardRevision, cardSha256: row.cardSha256 },
          },
        ],
      };
    });
    return c.json(body, 200);
  },
);

const RetireBody = z
  .object({
    reason: z.string().trim().min(1).max(1000).openapi({ description: "Why, for the trail." }),
    approvalId: z.string().min(1).max(64).optional().openapi({
      description:
        "An approved `version.retire` request for this version, when the model's governance policy asks for one.",
    }),
  })
  .strict()
  .openapi("RetireVersion");

versionsApi.openapi(
  adminRoute({
    permission: "models.write",
    method: "post",
    path: "/{model}/versions/{version}/retire",
    tags: ["Versions"],
    summary: "Retire a version for good: it may never be named in a rollout again",
    description:
      "Only a version out of the rollout (not champion, canary or shadow) and not the model's fallback. Its record, card, baseline and logs stay. Under a governance policy whose `version.retire` names roles, send the approved request as `approvalId`. Audited as version.retire; retiring a retired version changes nothing.",
    request: { params: versionParams, headers: IdempotencyHeader, body: jsonBody(RetireBody) },
    responses: {
      200: jsonContent(VersionResource, "The retired version"),
      ...errorResponses(400, 401, 403, 404, 409, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const { model: modelName, version: label } = c.req.valid("param");
    const { reason, approvalId } = c.req.valid("json");
    const view = await ensureConfigured(c, modelName);
    const live = namedVersions(view.snapshot.rollout, undefined);
    const deliveries: number[] = [];
    const { body } = await runChange(c, async (tx) => {
      const model = await findModel(tx, modelName, true);
      const current = await findVersion(tx, model.id, modelName, label, true);
      if (current.retiredAt)
        return {
          status: 200,
          body: shownVersion(modelName, current, upstreamConfiguration(c.env)),
          audit: [],
        };
      if (live.includes(label))
        throw new ApiError(
          "VERSION_IN_USE",
          `Version '${label}' of '${modelName}' is in the rollout: take it out (PUT /admin/models/${modelName}/rollout) before retiring it`,
        );
      if (model.fallback.kind === "version" && model.fallback.version === label)
        throw new ApiError(
          "VERSION_IN_USE",
          `Version '${label}' is the fallback of '${modelName}': choose another fallback (PATCH /admin/models/${modelName}) before retiring it`,
        );
      const need = versionRetireNeeds(model.governance ?? null, label);
      if (need) {
        if (!approvalId) throw approvalRequired(modelName, [need]);
        const consumed = await consumeApproval(
          c,
          tx,
          modelName,
          approvalId,
          need,
          rolloutFingerprint({
            rollout: view.snapshot.rollout,
            killSwitch: view.snapshot.killSwitch,
          }),
        );
        deliveries.push(...(await recordConsumption(c, tx, consumed, need.reason, null)));
      }
      const [row] = await tx
        .update(modelVersions)
        .set({
          status: "retired",
          retiredAt: sql`now()`,
          retiredBy: c.var.principal.actor,
          retiredReason: reason,
          updatedAt: sql`now()`,
        })
        .where(eq(modelVersions.id, current.id))
        .returning();
      if (!row)
        throw new ApiError("VERSION_NOT_FOUND", `Model '${modelName}' has no version '${label}'`);
      return {
        status: 200,
        body: shownVersion(modelName, row, upstreamConfiguration(c.env)),
        audit: [
          {
            action: "version.retire",
            targetType: "version",
            target: `models/${modelName}/versions/${label}`,
            before: { status: current.status, retired: null },
            after: { status: "retired", reason },
          },
        ],
      };
    });
    queueNotices(c, deliveries);
    return c.json(body, 200);
  },
);
