import { z } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import type { Context } from "hono";
import type { RolloutChangeResult, RolloutView } from "../../durable-objects/model-rollout";
import { ApiError, validationError } from "../../shared/errors";
import {
  decideRoute,
  KillSwitchBody,
  namedVersions,
  RolloutBody,
  ShadowTarget,
} from "../../shared/rollout/state";
import { Timestamp } from "../../shared/schemas/common";
import type { AppEnv } from "../app-env";
import { loadCatalogue, refuseRetired } from "../rollout/catalogue";
import { currentRollout, rolloutObject } from "../rollout/leases";
import { callObject, ensureConfigured } from "../rollout/object";
import { apiRouter } from "../router";
import { governedChange } from "./approval-gate";
import { changeContext } from "./change";
import { modelParams } from "./models";
import { errorResponses, IdempotencyHeader, jsonBody, jsonContent } from "./openapi";
import { adminRoute } from "./route";

export const rolloutApi = apiRouter();

const KillSwitchView = z
  .object({
    engaged: z.boolean(),
    scope: z.enum(["challengers", "model"]).optional(),
    reason: z.string().optional(),
    actor: z.string().optional(),
    at: Timestamp.optional(),
  })
  .openapi("KillSwitch");

const Rollout = z
  .object({
    model: z.string(),
    stateVersion: z.number().int(),
    leaseMs: z.number().int(),
    champion: z.string().nullable(),
    shadows: z.array(ShadowTarget),
    canary: z.object({ version: z.string(), percent: z.number() }).nullable(),
    killSwitch: KillSwitchView,
    history: z.array(
      z.object({
        stateVersion: z.number().int(),
        at: Timestamp,
        actor: z.string(),
        action: z.string(),
        requestId: z.string().nullable(),
        before: z.unknown(),
        after: z.unknown(),
      }),
    ),
    pendingAuditEvents: z
      .number()
      .int()
      .openapi({ description: "Changes not yet written to the Postgres audit log." }),
    oldestPendingAuditAt: Timestamp.nullable().openapi({
      description: "When the oldest change still waiting for the audit log was made.",
    }),
    auditFlushAttempts: z.number().int().openapi({
      description: "Failed attempts to write the oldest waiting change; 0 when none failed.",
    }),
    lastAuditFlushError: z.string().nullable().openapi({
      description: "Why the last attempt failed (the rollout object retries with backoff).",
    }),
    acknowledgedAfterMs: z.number().optional().openapi({
      description: "How long the change waited for leases on the old state to run out.",
    }),
  })
  .openapi("Rollout");

export const RolloutAtStateSchema = z
  .object({
    model: z.string(),
    stateVersion: z.number().int(),
    at: Timestamp.openapi({ description: "When the change that made this state was made." }),
    actor: z.string(),
    action: z.string(),
    requestId: z.string().nullable(),
    champion: z.string().nullable(),
    shadows: z.array(ShadowTarget),
    canary: z.object({ version: z.string(), percent: z.number() }).nullable(),
    killSwitch: KillSwitchView,
    killSwitchChangedAt: z.number().int().nullable().openapi({
      description: "The state whose change last engaged or released the kill switch (null: never).",
    }),
    auditSeq: z.number().int().nullable().openapi({
      description:
        "The change's row in the audit trail (its `seq`), to check against the chain; null while it waits in the rollout object's outbox.",
    }),
  })
  .openapi("RolloutAtState");

/** The state change `stateVersion` of `model` made, with its audit row; 404 if none did. */
export async function rolloutAtState(
  c: Context<AppEnv>,
  model: string,
  stateVersion: number,
): Promise<z.infer<typeof RolloutAtStateSchema>> {
  const state = await callObject(model, () => rolloutObject(c.env, model).stateAt(stateVersion));
  if (!state)
    throw new ApiError(
      "STATE_NOT_FOUND",
      `Model '${model}' has no rollout state ${stateVersion} in its history`,
    );
  const [row] = (
    await c.var
      .database()
      .execute<{ seq: string | null }>(
        sql`SELECT seq FROM audit_log WHERE event_id = ${`rollout:${model}:${stateVersion}`}`,
      )
  ).rows;
  const { rollout, killSwitch } = state;
  return {
    model,
    stateVersion: state.stateVersion,
    at: state.at,
    actor: state.actor,
    action: state.action,
    requestId: state.requestId,
    champion: rollout.champion,
    shadows: rollout.shadows,
    canary: rollout.canary
      ? { version: rollout.canary.version, percent: rollout.canary.percent }
      : null,
    killSwitch: killSwitch ? { engaged: true, ...killSwitch } : { engaged: false },
    killSwitchChangedAt: state.killSwitchChangedAt,
    auditSeq: row?.seq == null ? null : Number(row.seq),
  };
}

const IfMatchHeader = z.object({
  "if-match": z
    .string()
    .optional()
    .openapi({
      param: { name: "if-match", in: "header" },
      description:
        "Apply only if the rollout is still at this stateVersion (the ETag of a GET); 412 otherwise.",
    }),
});

/** Canary salts stay inside: with one, a client could pick keys that land on the canary. */
function withoutSalts(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutSalts);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([key]) => key !== "salt")
        .map(([key, item]) => [key, withoutSalts(item)]),
    );
  }
  return value;
}

function rolloutResource(view: RolloutView, acknowledgedAfterMs?: number): z.infer<typeof Rollout> {
  const { snapshot } = view;
  const kill = snapshot.killSwitch;
  return {
    model: snapshot.model,
    stateVersion: snapshot.stateVersion,
    leaseMs: snapshot.leaseMs,
    champion: snapshot.rollout.champion,
    shadows: snapshot.rollout.shadows,
    canary: snapshot.rollout.canary
      ? { version: snapshot.rollout.canary.version, percent: snapshot.rollout.canary.percent }
      : null,
    killSwitch: kill ? { engaged: true, ...kill } : { engaged: false },
    history: view.history.map((entry) => ({
      ...entry,
      before: withoutSalts(entry.before),
      after: withoutSalts(entry.after),
    })),
    pendingAuditEvents: view.pendingAuditEvents,
    oldestPendingAuditAt: view.oldestPendingAuditAt,
    auditFlushAttempts: view.auditFlushAttempts,
    lastAuditFlushError: view.lastAuditFlushError,
    ...(acknowledgedAfterMs === undefined ? {} : { acknowledgedAfterMs }),
  };
}

function ifMatch(c: Context<AppEnv>): number | undefined {
  const header = c.req.header("if-match");
  if (header === undefined) return undefined;
  const match = /^\s*(?:W\/)?"?(\d{1,15})"?\s*$/.exec(header);
  if (!match?.[1]) {
    throw new ApiError(
      "VALIDATION_FAILED",
      "Header 'If-Match' must be a rollout stateVersion such as \"12\"",
      {
        details: [{ path: "If-Match", message: "must be a stateVersion" }],
      },
    );
  }
  return Number(match[1]);
}

function context(c: Context<AppEnv>) {
  return { ...changeContext(c), ifMatch: ifMatch(c) };
}

function respond(
  c: Context<AppEnv>,
  result: RolloutChangeResult,
  versionPaths?: Map<string, string>,
) {
  if (!result.ok) {
    c.header("etag", `"${result.stateVersion}"`);
    if (result.code === "VERSION_NOT_FOUND" && versionPaths) {
      const missing = /version '([^']+)'/.exec(result.message)?.[1] ?? "";
      throw validationError(
        [{ path: [versionPaths.get(missing) ?? "version"], message: result.message }],
        "body",
      );
    }
    if (result.code === "NOT_CONFIGURED") throw new ApiError("MODEL_NOT_FOUND", result.message);
    throw new ApiError(result.code, result.message);
  }
  c.header("etag", `"${result.view.snapshot.stateVersion}"`);
  c.header("x-airlock-state-version", String(result.view.snapshot.stateVersion));
  return c.json(rolloutResource(result.view, result.acknowledgedAfterMs), 200);
}

rolloutApi.openapi(
  adminRoute({
    permission: "models.read",
    method: "get",
    path: "/{model}/rollout",
    tags: ["Rollout"],
    summary: "Read a model's rollout state, kill switch and history",
    request: {
      params: modelParams,
      query: z.object({
        history: z.coerce
          .number()
          .int()
          .min(0)
          .max(500)
          .default(50)
          .openapi({ param: { name: "history", in: "query" } }),
        stateVersion: z.coerce
          .number()
          .int()
          .min(1)
          .optional()
          .openapi({
            param: { name: "stateVersion", in: "query" },
            description:
              "The state one change made, exactly (not a time): the rollout and kill switch in force from that change to the next, who made it, and its row in the audit trail.",
          }),
      }),
    },
    responses: {
      200: jsonContent(
        Rollout.or(RolloutAtStateSchema),
        "The rollout state (ETag: its stateVersion); with `stateVersion`, the state that change made",
      ),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { model } = c.req.valid("param");
    const { history, stateVersion } = c.req.valid("query");
    await ensureConfigured(c, model);
    if (stateVersion !== undefined)
      return c.json(await rolloutAtState(c, model, stateVersion), 200);
    const view = await callObject(model, () => rolloutObject(c.env, model).read(history));
    c.header("etag", `"${view.snapshot.stateVersion}"`);
    c.header("x-airlock-state-version", String(view.snapshot.stateVersion));
    return c.json(rolloutResource(view), 200);
  },
);

rolloutApi.openapi(
  adminRoute({
    permission: "rollout.write",
    method: "put",
    path: "/{model}/rollout",
    tags: ["Rollout"],
    summary: "Set the champion, shadows and canary",
    description:
      "Returns 200 only once every request that starts afterwards sees the new state (leases on the old state have run out). A canary keeps its bucketing salt while its version stays. While the kill switch is engaged, the change is stored and takes effect on release.",
    request: { params: modelParams, headers: IfMatchHeader, body: jsonBody(RolloutBody) },
    responses: {
      200: jsonContent(Rollout, "The new state"),
      ...errorResponses(400, 401, 404, 409, 412, 413, 415, 503),
    },
  }),
  async (c) => {
    const { model } = c.req.valid("param");
    const body = c.req.valid("json");
    const catalogue = await loadCatalogue(c.var.database(), model);
    const paths = new Map<string, string>([[body.champion, "champion"]]);
    if (body.canary) paths.set(body.canary.version, "canary.version");
    for (const [i, shadow] of body.shadows.entries())
      paths.set(shadow.version, `shadows[${i}].version`);
    await refuseRetired(c.var.database(), model, [...paths.keys()], paths);
    const { approvalId, ...change } = body;
    const result = await governedChange(
      c,
      model,
      approvalId,
      (current) => ({
        rollout: {
          champion: change.champion,
          shadows: change.shadows,
          canary: change.canary ? { ...change.canary, salt: "" } : null,
        },
        killSwitch: current.killSwitch,
      }),
      (at) =>
        callObject(model, () =>
          rolloutObject(c.env, model).setRollout(change, catalogue, {
            ...context(c),
            ...(at === undefined ? {} : { ifMatch: context(c).ifMatch ?? at }),
          }),
        ),
    );
    return respond(c, result, paths);
  },
);

rolloutApi.openapi(
  adminRoute({
    permission: "rollout.write",
    method: "post",
    path: "/{model}/rollout/revert",
    tags: ["Rollout"],
    summary: "Restore the rollout as it was after an earlier change",
    description:
      "A revert to a state without a champion (such as the state before the first champion was set) while the model has one would refuse every inference request with 503 NO_SERVING_VERSION: it is a 409 CHAMPION_REQUIRED unless `force` is true.",
    request: {
      params: modelParams,
      headers: IfMatchHeader.extend(IdempotencyHeader.shape),
      body: jsonBody(
        z
          .object({
            stateVersion: z.number().int().min(1),
            approvalId: z.string().min(1).max(64).optional().openapi({
              description:
                "An approved request for what the revert changes, where the model's governance policy needs one.",
            }),
            force: z.boolean().default(false).openapi({
              description:
                "Revert even when the state reverted to has no champion and the model has one now.",
            }),
          })
          .strict()
          .openapi("RolloutRevert"),
      ),
    },
    responses: {
      200: jsonContent(Rollout, "The new state"),
      ...errorResponses(400, 401, 404, 409, 412, 415, 503),
    },
  }),
  async (c) => {
    const { model } = c.req.valid("param");
    const { stateVersion, force, approvalId } = c.req.valid("json");
    const catalogue = await loadCatalogue(c.var.database(), model);
    // A revert is held to the policy like any change: by what it would restore.
    const restored = await callObject(model, () =>
      rolloutObject(c.env, model).rolloutAt(stateVersion),
    );
    if (restored) await refuseRetired(c.var.database(), model, namedVersions(restored, undefined));
    const result = await governedChange(
      c,
      model,
      approvalId,
      (current) => ({ rollout: restored ?? current.rollout, killSwitch: current.killSwitch }),
      (at) =>
        callObject(model, () =>
          rolloutObject(c.env, model).revert(stateVersion, catalogue, {
            ...context(c),
            force,
            ...(at === undefined ? {} : { ifMatch: context(c).ifMatch ?? at }),
          }),
        ),
    );
    return respond(c, result);
  },
);

rolloutApi.openapi(
  adminRoute({
    permission: "killswitch.engage",
    method: "post",
    path: "/{model}/kill-switch",
    tags: ["Rollout"],
    summary: "Engage the kill switch",
    description:
      "`challengers` suspends canary and shadows; `model` stops the model (static fallback or 503). Works while Postgres is down once the model's object has been set up; the audit row follows when Postgres is back.",
    request: { params: modelParams, headers: IfMatchHeader, body: jsonBody(KillSwitchBody) },
    responses: {
      200: jsonContent(Rollout, "The new state"),
      ...errorResponses(400, 401, 404, 409, 412, 415, 503),
    },
  }),
  async (c) => {
    const { model } = c.req.valid("param");
    const body = c.req.valid("json");
    await ensureConfigured(c, model);
    const result = await callObject(model, () =>
      rolloutObject(c.env, model).engageKillSwitch(body, context(c)),
    );
    return respond(c, result);
  },
);

rolloutApi.openapi(
  adminRoute({
    permission: "killswitch.release",
    method: "delete",
    path: "/{model}/kill-switch",
    tags: ["Rollout"],
    summary: "Release the kill switch, restoring the rollout in force before it was engaged",
    request: {
      params: modelParams,
      headers: IfMatchHeader,
      query: z.object({
        approvalId: z
          .string()
          .min(1)
          .max(64)
          .optional()
          .openapi({
            param: { name: "approvalId", in: "query" },
            description: "An approved request to release it, where the model's policy needs one.",
          }),
      }),
    },
    responses: {
      200: jsonContent(Rollout, "The new state"),
      ...errorResponses(400, 401, 403, 404, 409, 412, 503),
    },
  }),
  async (c) => {
    const { model } = c.req.valid("param");
    const { approvalId } = c.req.valid("query");
    await ensureConfigured(c, model);
    const result = await governedChange(
      c,
      model,
      approvalId,
      (current) => ({ rollout: current.rollout, killSwitch: null }),
      (at) =>
        callObject(model, () =>
          rolloutObject(c.env, model).releaseKillSwitch({
            ...context(c),
            ...(at === undefined ? {} : { ifMatch: context(c).ifMatch ?? at }),
          }),
        ),
    );
    return respond(c, result);
  },
);

const RouteExplanation = z
  .object({
    model: z.string(),
    stateVersion: z.number().int(),
    decision: z.enum(["serve", "killed", "no-champion"]),
    version: z.string().nullable(),
    role: z.enum(["champion", "canary"]).nullable(),
    bucket: z.number().int().nullable(),
    shadows: z.array(z.string()),
  })
  .openapi("RouteExplanation");

rolloutApi.openapi(
  adminRoute({
    permission: "models.read",
    method: "get",
    path: "/{model}/rollout/route",
    tags: ["Rollout"],
    summary: "Explain where a request with this key would go now",
    description:
      "Answered through the same lease as inference requests, so `x-airlock-state-version` shows the state a client request starting now would use.",
    request: {
      params: modelParams,
      query: z.object({
        key: z
          .string()
          .min(1)
          .max(256)
          .optional()
          .openapi({ param: { name: "key", in: "query" } }),
      }),
    },
    responses: {
      200: jsonContent(RouteExplanation, "The routing decision"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { model } = c.req.valid("param");
    const { key } = c.req.valid("query");
    const lease = await currentRollout(c.env, model, (work) => c.executionCtx.waitUntil(work));
    const snapshot = lease.grant.state;
    if (!snapshot.profile) {
      // Never set up: confirm the model exists, then set its object up.
      await ensureConfigured(c, model);
    }
    const decision = decideRoute(snapshot, key);
    c.header("x-airlock-state-version", String(snapshot.stateVersion));
    return c.json(
      {
        model,
        stateVersion: snapshot.stateVersion,
        decision: decision.kind,
        version: decision.kind === "serve" ? decision.version : null,
        role: decision.kind === "serve" ? decision.role : null,
        bucket: decision.kind === "serve" ? decision.bucket : null,
        shadows: decision.kind === "serve" ? decision.shadows : [],
      },
      200,
    );
  },
);
