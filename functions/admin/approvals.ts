import { z } from "@hono/zod-openapi";
import { and, desc, eq, inArray, sql } from "drizzle-orm";
import type { Context } from "hono";
import { modelsWith } from "../../shared/auth/permissions";
import { newId } from "../../shared/auth/tokens";
import type { Queryable } from "../../shared/db/client";
import { approvalDecisions, approvals, modelVersions } from "../../shared/db/schema";
import { ApiError } from "../../shared/errors";
import {
  approvalsNeeded,
  dataPolicyChangeNeeds,
  type NeededApproval,
  policyChangeNeeds,
  policyFingerprint,
  type RolloutState,
  resolvePolicy,
  rolloutFingerprint,
  versionRetireNeeds,
} from "../../shared/governance/policy";
import {
  type ApprovalEvent,
  type ApprovalNoticeType,
  roleWords,
} from "../../shared/notices/approval";
import { currentPhase, isOpen } from "../../shared/plans/state";
import { DataPolicyBody, dataPolicyFingerprint } from "../../shared/privacy/data-policy";
import { ModelName, Timestamp, VersionLabel } from "../../shared/schemas/common";
import { PolicyBody } from "../../shared/schemas/governance";
import type { NoticeDraft } from "../alerts/notices";
import type { AppEnv, Principal } from "../app-env";
import {
  evidenceBundle,
  planFingerprint,
  planOverrideNeeds,
  planStepNeeds,
} from "../plans/governance";
import { ensureConfigured } from "../rollout/object";
import { apiRouter } from "../router";
import { runChange } from "./change";
import { findModel } from "./models";
import { errorResponses, IdempotencyHeader, jsonBody, jsonContent } from "./openapi";
import { adminRoute, type ModelOf } from "./route";

/**
 * Approvals: a change that gives a model authority is asked for by one
 * person and decided by others, as the model's governance policy says.
 * The requester never decides; each needed role is one distinct person;
 * service accounts never approve; requests expire (7 days by default).
 */
export const approvalsApi = apiRouter();

type ApprovalRow = typeof approvals.$inferSelect;
type DecisionRow = typeof approvalDecisions.$inferSelect;

const DEFAULT_EXPIRY_DAYS = 7;

const Reason = z.string().trim().min(1).max(1000);

/** What a request asks for: an action and its exact target. */
const RequestBody = z
  .discriminatedUnion("action", [
    z
      .object({
        action: z.literal("champion.change"),
        target: z.object({ to: VersionLabel.nullable() }).strict(),
        reason: Reason,
        expiresInDays: z.number().int().min(1).max(30).optional(),
      })
      .strict(),
    z
      .object({
        action: z.literal("canary.raise"),
        target: z.object({ version: VersionLabel, percent: z.number().gt(0).max(100) }).strict(),
        reason: Reason,
        expiresInDays: z.number().int().min(1).max(30).optional(),
      })
      .strict(),
    z
      .object({
        action: z.literal("shadow.add"),
        target: z.object({ version: VersionLabel, sampleRate: z.number().gt(0).max(1) }).strict(),
        reason: Reason,
        expiresInDays: z.number().int().min(1).max(30).optional(),
      })
      .strict(),
    z
      .object({
        action: z.literal("version.retire"),
        target: z.object({ version: VersionLabel }).strict(),
        reason: Reason,
        expiresInDays: z.number().int().min(1).max(30).optional(),
      })
      .strict(),
    z
      .object({
        action: z.literal("policy.change"),
        target: z.object({ policy: PolicyBody }).strict(),
        reason: Reason,
        expiresInDays: z.number().int().min(1).max(30).optional(),
      })
      .strict(),
    z
      .object({
        action: z.literal("data_policy.change"),
        target: z.object({ policy: DataPolicyBody }).strict(),
        reason: Reason,
        expiresInDays: z.number().int().min(1).max(30).optional(),
      })
      .strict(),
    z
      .object({
        action: z.literal("plan.advance"),
        target: z
          .object({
            plan: z.string().min(1).max(64),
            phase: z.string().min(1).max(64).openapi({ description: "The phase to enter." }),
          })
          .strict(),
        reason: Reason,
        expiresInDays: z.number().int().min(1).max(30).optional(),
      })
      .strict(),
    z
      .object({
        action: z.literal("plan.override"),
        target: z
          .object({
            plan: z.string().min(1).max(64),
            phase: z.string().min(1).max(64).openapi({ description: "The phase to leave." }),
            action: z.enum(["advance", "skip"]),
          })
          .strict(),
        reason: Reason,
        expiresInDays: z.number().int().min(1).max(30).optional(),
      })
      .strict(),
    z
      .object({
        action: z.literal("killswitch.release"),
        target: z.object({}).strict(),
        reason: Reason,
        expiresInDays: z.number().int().min(1).max(30).optional(),
      })
      .strict(),
  ])
  .openapi("RequestApproval");
type RequestBody = z.infer<typeof RequestBody>;

const Decision = z.object({
  principalId: z.string(),
  role: z.string().nullable(),
  decision: z.enum(["approve", "reject"]),
  comment: z.string().nullable(),
  at: Timestamp,
});

const Approval = z
  .object({
    id: z.string().openapi({ example: "apr_k3v9q2m7x4c8t1b5" }),
    model: z.string(),
    action: z.string(),
    target: z.record(z.string(), z.union([z.string(), z.number(), z.null()])),
    reason: z.string(),
    roles: z.array(z.string()),
    rolesStillNeeded: z.array(z.string()),
    status: z.enum(["pending", "approved", "rejected", "expired", "consumed"]),
    requestedBy: z.string(),
    requestedAt: Timestamp,
    expiresAt: Timestamp,
    decidedAt: Timestamp.nullable(),
    consumedAt: Timestamp.nullable(),
    consumedBy: z.string().nullable(),
    decisions: z.array(Decision),
    evidence: z.record(z.string(), z.unknown()).nullable().openapi({
      description:
        "For a rollout plan's step: the evidence the approvers are shown, frozen when the request was made (the plan, its phase, gates and thresholds, and the phase's latest evaluation).",
    }),
    evidenceSha256: z.string().nullable().openapi({
      description: "SHA-256 of `evidence` (its canonical JSON).",
    }),
  })
  .openapi("Approval");

/** The roles not yet filled by an approval, one per entry. */
function stillNeeded(row: ApprovalRow, decisions: DecisionRow[]): string[] {
  const left = [...row.roles];
  for (const decision of decisions) {
    if (decision.decision !== "approve" || decision.role === null) continue;
    const at = left.indexOf(decision.role);
    if (at >= 0) left.splice(at, 1);
  }
  return left;
}

function statusOf(row: ApprovalRow, now = Date.now()) {
  if (row.status === "pending" && row.expiresAt.getTime() <= now) return "expired" as const;
  return row.status;
}

function approvalResource(row: ApprovalRow, decisions: DecisionRow[]) {
  return {
    id: row.id,
    model: row.model,
    action: row.action,
    target: row.target,
    reason: row.reason,
    roles: row.roles,
    rolesStillNeeded: statusOf(row) === "pending" ? stillNeeded(row, decisions) : [],
    status: statusOf(row),
    requestedBy: row.requestedBy,
    requestedAt: row.requestedAt.toISOString(),
    expiresAt: row.expiresAt.toISOString(),
    decidedAt: row.decidedAt?.toISOString() ?? null,
    consumedAt: row.consumedAt?.toISOString() ?? null,
    consumedBy: row.consumedBy ?? null,
    decisions: decisions.map((d) => ({
      principalId: d.principalId,
      role: d.role ?? null,
      decision: d.decision,
      comment: d.comment ?? null,
      at: d.at.toISOString(),
    })),
    evidence: row.evidence ?? null,
    evidenceSha256: row.evidenceSha256 ?? null,
  };
}

/**
 * The notice of an approval's event (asked for, decided, applied), to the
 * model's destinations that take it: `key` makes it one notice, whatever
 * retries happen.
 */
export function approvalNotice(
  type: ApprovalNoticeType,
  row: ApprovalRow,
  decisions: DecisionRow[],
  extra: Pick<ApprovalEvent, "decision" | "applied">,
): NoticeDraft {
  const resource = approvalResource(row, decisions);
  const event: ApprovalEvent = {
    type,
    at: new Date().toISOString(),
    approval: {
      id: row.id,
      model: row.model,
      action: row.action,
      target: row.target,
      change: row.change ?? `${row.action} ${JSON.stringify(row.target)}`,
      reason: row.reason,
      roles: row.roles,
      rolesStillNeeded: resource.rolesStillNeeded,
      status: resource.status,
      requestedBy: row.requestedBy,
      requestedAt: resource.requestedAt,
      expiresAt: resource.expiresAt,
    },
    ...extra,
  };
  const key =
    type === "approval.decided" ? `${type}:${row.id}:${decisions.length}` : `${type}:${row.id}`;
  return { type, model: row.model, severity: null, key, payload: event };
}

async function decisionsOf(db: Queryable, ids: string[]): Promise<Map<string, DecisionRow[]>> {
  const out = new Map<string, DecisionRow[]>(ids.map((id) => [id, []]));
  if (ids.length === 0) return out;
  const rows = await db
    .select()
    .from(approvalDecisions)
    .where(inArray(approvalDecisions.approvalId, ids))
    .orderBy(approvalDecisions.at);
  for (const row of rows) out.get(row.approvalId)?.push(row);
  return out;
}

/** Whether the principal holds the role for this model: ownership of it, or the global role. */
function holdsRole(principal: Principal, role: string, model: string): boolean {
  return principal.grants.some((grant) =>
    grant.role === "owner" ? role === "owner" && grant.model === model : grant.role === role,
  );
}

/** The rollout after the requested change, from the rollout now. */
function proposed(
  current: RolloutState,
  body: Exclude<
    RequestBody,
    {
      action:
        | "policy.change"
        | "version.retire"
        | "data_policy.change"
        | "plan.advance"
        | "plan.override";
    }
  >,
): RolloutState {
  const rollout = { ...current.rollout };
  switch (body.action) {
    case "champion.change":
      rollout.champion = body.target.to;
      break;
    case "canary.raise":
      rollout.canary = { version: body.target.version, percent: body.target.percent, salt: "" };
      break;
    case "shadow.add":
      rollout.shadows = [
        ...rollout.shadows.filter((s) => s.version !== body.target.version),
        { version: body.target.version, sampleRate: body.target.sampleRate },
      ];
      break;
    case "killswitch.release":
      return { rollout, killSwitch: null };
  }
  return { rollout, killSwitch: current.killSwitch };
}

/** A request names a version that exists (404 otherwise). */
async function findVersionOf(c: Context<AppEnv>, modelId: number, model: string, version: string) {
  const [row] = await c.var
    .database()
    .select({ id: modelVersions.id })
    .from(modelVersions)
    .where(and(eq(modelVersions.modelId, modelId), eq(modelVersions.version, version)));
  if (!row) throw new ApiError("VERSION_NOT_FOUND", `Model '${model}' has no version '${version}'`);
}

const approvalModel: ModelOf = async (c) => {
  const id = c.req.param("id") ?? "";
  if (id.length === 0 || id.length > 64) return undefined;
  const [row] = await c.var
    .database()
    .select({ model: approvals.model })
    .from(approvals)
    .where(eq(approvals.id, id));
  return row?.model;
};

const notFound = (id: string) =>
  new ApiError("APPROVAL_NOT_FOUND", `Approval '${id}' does not exist`);

approvalsApi.openapi(
  adminRoute({
    permission: "approvals.request",
    method: "post",
    path: "/models/{model}/approvals",
    tags: ["Governance"],
    summary: "Ask for an approval of a change that gives the model authority",
    description:
      "The model's governance policy says whose approvals the change needs; the request is bound to the rollout as it is now. Audited as approval.request.",
    request: {
      params: z.object({ model: ModelName.openapi({ param: { name: "model", in: "path" } }) }),
      headers: IdempotencyHeader,
      body: jsonBody(RequestBody),
    },
    responses: {
      201: jsonContent(Approval, "The pending request"),
      ...errorResponses(400, 401, 404, 409, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const name = c.req.valid("param").model;
    const body = c.req.valid("json");
    const model = await findModel(c.var.database(), name);
    const policy = model.governance;
    if (!policy) {
      throw new ApiError(
        "APPROVAL_NOT_NEEDED",
        `Model '${name}' has no governance policy, so no change of it needs an approval`,
      );
    }
    let needed: NeededApproval | undefined;
    let fingerprint: string;
    let evidence: { evidence: Record<string, unknown>; sha256: string } | null = null;
    if (body.action === "plan.advance" || body.action === "plan.override") {
      const view = await ensureConfigured(c, name);
      const plan = view.plan;
      if (!plan || plan.id !== body.target.plan)
        throw new ApiError("PLAN_NOT_FOUND", `Model '${name}' has no plan '${body.target.plan}'`);
      if (!isOpen(plan.status))
        throw new ApiError(
          "PLAN_STALE",
          `Plan ${plan.id} is ${plan.status}: it takes no more steps`,
        );
      const at = currentPhase(plan).id;
      const next = plan.phases[plan.phaseIndex + 1]?.id;
      if (body.action === "plan.override" ? body.target.phase !== at : body.target.phase !== next)
        throw new ApiError(
          "PLAN_STALE",
          `Plan ${plan.id} is in phase ${at}${next ? ` (next: ${next})` : ""}: ${body.action === "plan.override" ? `an override leaves ${at}` : `its next step enters ${next ?? "no phase"}`}, not ${body.target.phase}`,
        );
      needed =
        (body.action === "plan.override"
          ? planOverrideNeeds(policy, plan, body.target.action)
          : planStepNeeds(
              policy,
              plan,
              { rollout: view.snapshot.rollout, killSwitch: view.snapshot.killSwitch },
              body.target.phase,
            )) ?? undefined;
      fingerprint = await planFingerprint(plan, body.target.phase);
      evidence = await evidenceBundle(c.var.database(), plan, body.target.phase);
    } else if (body.action === "policy.change") {
      needed = policyChangeNeeds(policy, resolvePolicy(body.target.policy)) ?? undefined;
      fingerprint = policyFingerprint(policy);
    } else if (body.action === "data_policy.change") {
      const current = model.dataPolicy ?? null;
      needed = dataPolicyChangeNeeds(policy, current, body.target.policy) ?? undefined;
      fingerprint = dataPolicyFingerprint(current);
    } else if (body.action === "version.retire") {
      await findVersionOf(c, model.id, name, body.target.version);
      needed = versionRetireNeeds(policy, body.target.version) ?? undefined;
      const view = await ensureConfigured(c, name);
      fingerprint = rolloutFingerprint({
        rollout: view.snapshot.rollout,
        killSwitch: view.snapshot.killSwitch,
      });
    } else {
      const view = await ensureConfigured(c, name);
      const current: RolloutState = {
        rollout: view.snapshot.rollout,
        killSwitch: view.snapshot.killSwitch,
      };
      needed = approvalsNeeded(policy, current, proposed(current, body)).find(
        (n) => n.action === body.action,
      );
      fingerprint = rolloutFingerprint(current);
    }
    if (!needed) {
      throw new ApiError(
        "APPROVAL_NOT_NEEDED",
        body.action === "policy.change"
          ? `Under its ${policy.tier}-risk policy, this policy change of '${name}' needs no approval (it only tightens, or policy.change names no roles): make it directly`
          : body.action === "data_policy.change"
            ? `Under its ${policy.tier}-risk policy, this data policy of '${name}' needs no approval (it keeps no more than the one in force, or data_policy.change names no roles): make it directly`
            : `Under its ${policy.tier}-risk policy, this change of '${name}' needs no approval: make it directly`,
      );
    }
    const expiresAt = new Date(
      Date.now() + (body.expiresInDays ?? DEFAULT_EXPIRY_DAYS) * 86_400_000,
    );
    const { body: created } = await runChange(c, async (tx) => {
      const [row] = await tx
        .insert(approvals)
        .values({
          id: newId("apr_"),
          model: name,
          action: needed.action,
          target: needed.target,
          reason: body.reason,
          change: needed.reason,
          roles: needed.roles,
          fingerprint,
          evidence: evidence?.evidence ?? null,
          evidenceSha256: evidence?.sha256 ?? null,
          status: "pending",
          requestedBy: c.var.principal.actor,
          expiresAt,
        })
        .returning();
      if (!row) throw new ApiError("INTERNAL_ERROR", "The request was not stored");
      const resource = approvalResource(row, []);
      return {
        status: 201,
        body: resource,
        audit: [
          {
            action: "approval.request",
            targetType: "approval",
            target: `models/${name}/approvals/${row.id}`,
            before: null,
            after: {
              id: row.id,
              action: row.action,
              target: row.target,
              roles: row.roles,
              reason: row.reason,
              change: needed.reason,
            },
          },
        ],
        notices: [approvalNotice("approval.requested", row, [], { decision: null, applied: null })],
      };
    });
    return c.json(created, 201);
  },
);

const ListQuery = z.object({
  decidableBy: z
    .literal("me")
    .optional()
    .openapi({
      param: { name: "decidableBy", in: "query" },
      description: "Only pending requests the caller may decide now.",
    }),
  status: z
    .enum(["pending", "approved", "rejected", "expired", "consumed"])
    .optional()
    .openapi({ param: { name: "status", in: "query" } }),
  model: ModelName.optional().openapi({ param: { name: "model", in: "query" } }),
});

approvalsApi.openapi(
  adminRoute({
    permission: "models.read",
    model: "resource",
    method: "get",
    path: "/approvals",
    tags: ["Governance"],
    summary: "Requests across models, newest first; `?decidableBy=me` for what you may decide",
    request: { query: ListQuery },
    responses: {
      200: jsonContent(z.object({ items: z.array(Approval) }), "The requests (at most 200)"),
      ...errorResponses(400, 401, 503),
    },
  }),
  async (c) => {
    const query = c.req.valid("query");
    const principal = c.var.principal;
    const visible = modelsWith(principal, "models.read");
    if (visible !== "all" && visible.length === 0) return c.json({ items: [] }, 200);
    const db = c.var.database();
    const rows = await db
      .select()
      .from(approvals)
      .where(
        and(
          visible === "all" ? undefined : inArray(approvals.model, visible),
          query.model === undefined ? undefined : eq(approvals.model, query.model),
          query.decidableBy || query.status === "pending" || query.status === "expired"
            ? eq(approvals.status, "pending")
            : query.status === undefined
              ? undefined
              : eq(approvals.status, query.status),
        ),
      )
      .orderBy(desc(approvals.requestedAt))
      .limit(200);
    const decisions = await decisionsOf(
      db,
      rows.map((row) => row.id),
    );
    let items = rows.map((row) => approvalResource(row, decisions.get(row.id) ?? []));
    if (query.status) items = items.filter((item) => item.status === query.status);
    if (query.decidableBy) {
      items = items.filter(
        (item) =>
          principal.kind === "person" &&
          item.status === "pending" &&
          item.requestedBy !== principal.id &&
          !item.decisions.some((d) => d.principalId === principal.id) &&
          item.rolesStillNeeded.some((role) => holdsRole(principal, role, item.model)),
      );
    }
    return c.json({ items }, 200);
  },
);

approvalsApi.openapi(
  adminRoute({
    permission: "models.read",
    modelOf: approvalModel,
    method: "get",
    path: "/approvals/{id}",
    tags: ["Governance"],
    summary: "One request, with its decisions and the roles still needed",
    request: {
      params: z.object({
        id: z
          .string()
          .min(1)
          .max(64)
          .openapi({ param: { name: "id", in: "path" } }),
      }),
    },
    responses: {
      200: jsonContent(Approval, "The request"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const db = c.var.database();
    const [row] = await db.select().from(approvals).where(eq(approvals.id, id));
    if (!row) throw notFound(id);
    return c.json(approvalResource(row, (await decisionsOf(db, [id])).get(id) ?? []), 200);
  },
);

/** Approves or rejects, under the two-person rule, in one transaction with its audit row. */
async function decide(
  c: Context<AppEnv>,
  id: string,
  decision: "approve" | "reject",
  comment: string | null,
) {
  const principal = c.var.principal;
  return runChange(c, async (tx) => {
    const [row] = await tx.select().from(approvals).where(eq(approvals.id, id)).for("update");
    if (!row) throw notFound(id);
    const earlier = (await decisionsOf(tx, [id])).get(id) ?? [];
    const status = statusOf(row);
    if (status !== "pending") {
      throw new ApiError(
        "APPROVAL_NOT_PENDING",
        `Approval '${id}' is ${status}: it can no longer be decided`,
      );
    }
    if (principal.kind !== "person") {
      throw new ApiError(
        "FORBIDDEN",
        "Service accounts never approve or reject: a person decides",
        {
          details: [{ path: "permission", message: "approvals.decide" }],
        },
      );
    }
    if (row.requestedBy === principal.id) {
      throw new ApiError("FORBIDDEN", "The person who asked never decides their own request", {
        details: [{ path: "permission", message: "approvals.decide" }],
      });
    }
    if (earlier.some((d) => d.principalId === principal.id)) {
      throw new ApiError(
        "APPROVAL_ALREADY_DECIDED",
        "You have decided this request already: each role needs a different person",
      );
    }
    const left = stillNeeded(row, earlier);
    const role = left.find((r) => holdsRole(principal, r, row.model));
    if (!role) {
      throw new ApiError(
        "FORBIDDEN",
        `This request still needs ${roleWords(left)}; you hold none of those roles`,
        { details: [{ path: "permission", message: "approvals.decide" }] },
      );
    }
    await tx.insert(approvalDecisions).values({
      approvalId: id,
      principalId: principal.id,
      role: decision === "approve" ? role : null,
      decision,
      comment,
    });
    const done = decision === "reject" || left.length === 1;
    const nextStatus = decision === "reject" ? "rejected" : done ? "approved" : "pending";
    const [updated] = await tx
      .update(approvals)
      .set({ status: nextStatus, decidedAt: done ? sql`now()` : null })
      .where(eq(approvals.id, id))
      .returning();
    if (!updated) throw notFound(id);
    const decisions = (await decisionsOf(tx, [id])).get(id) ?? [];
    return {
      status: 200 as const,
      body: approvalResource(updated, decisions),
      audit: [
        {
          action: `approval.${decision}`,
          targetType: "approval",
          target: `models/${row.model}/approvals/${id}`,
          before: { status: row.status, rolesStillNeeded: left },
          after: {
            status: nextStatus,
            role: decision === "approve" ? role : null,
            comment,
            rolesStillNeeded: approvalResource(updated, decisions).rolesStillNeeded,
          },
        },
      ],
      notices: [
        approvalNotice("approval.decided", updated, decisions, {
          decision: {
            by: principal.id,
            decision,
            role: decision === "approve" ? role : null,
            comment,
          },
          applied: null,
        }),
      ],
    };
  });
}

const DecideParams = z.object({
  id: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "id", in: "path" } }),
});

approvalsApi.openapi(
  adminRoute({
    permission: "approvals.decide",
    modelOf: approvalModel,
    method: "post",
    path: "/approvals/{id}/approve",
    tags: ["Governance"],
    summary: "Approve a request, for a role it still needs that you hold",
    request: {
      params: DecideParams,
      headers: IdempotencyHeader,
      body: jsonBody(
        z
          .object({ comment: z.string().trim().min(1).max(1000).optional() })
          .strict()
          .openapi("Approve"),
      ),
    },
    responses: {
      200: jsonContent(Approval, "The request, approved once every role has approved"),
      ...errorResponses(400, 401, 404, 409, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const { body } = await decide(
      c,
      c.req.valid("param").id,
      "approve",
      c.req.valid("json").comment ?? null,
    );
    return c.json(body, 200);
  },
);

approvalsApi.openapi(
  adminRoute({
    permission: "approvals.decide",
    modelOf: approvalModel,
    method: "post",
    path: "/approvals/{id}/reject",
    tags: ["Governance"],
    summary: "Reject a request, with a comment saying why",
    request: {
      params: DecideParams,
      headers: IdempotencyHeader,
      body: jsonBody(
        z
          .object({ comment: z.string().trim().min(1).max(1000) })
          .strict()
          .openapi("Reject"),
      ),
    },
    responses: {
      200: jsonContent(Approval, "The rejected request"),
      ...errorResponses(400, 401, 404, 409, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const { body } = await decide(
      c,
      c.req.valid("param").id,
      "reject",
      c.req.valid("json").comment,
    );
    return c.json(body, 200);
  },
);
