import { z } from "@hono/zod-openapi";
import { eq, sql } from "drizzle-orm";
import { models, type StoredGovernance } from "../../shared/db/schema";
import {
  policyChangeNeeds,
  policyFingerprint,
  resolvePolicy,
} from "../../shared/governance/policy";
import { ModelName } from "../../shared/schemas/common";
import { Governance, SetGovernanceBody } from "../../shared/schemas/governance";
import { apiRouter } from "../router";
import { approvalRequired, consumeApproval, recordConsumption } from "./approval-gate";
import { type AuditRecord, queueNotices, runChange } from "./change";
import { findModel } from "./models";
import { errorResponses, IdempotencyHeader, jsonBody, jsonContent } from "./openapi";
import { adminRoute } from "./route";

/** A model's governance policy: its risk tier and whose approvals each change needs. */
export const governanceApi = apiRouter();

const ModelParams = z.object({
  model: ModelName.openapi({ param: { name: "model", in: "path" } }),
});

function governanceResource(model: string, stored: StoredGovernance | null) {
  return {
    model,
    governed: stored !== null,
    tier: stored?.tier ?? null,
    freeCanaryPercent: stored?.freeCanaryPercent ?? null,
    freeShadowSampleRate: stored?.freeShadowSampleRate ?? null,
    approvals: stored?.approvals ?? null,
    updatedAt: stored?.updatedAt ?? null,
    updatedBy: stored?.updatedBy ?? null,
  };
}

/** What the trail keeps of a policy: all of it but who set it (the row says that). */
function auditedPolicy(stored: StoredGovernance | null) {
  if (!stored) return null;
  const { updatedAt: _at, updatedBy: _by, ...policy } = stored;
  return policy;
}

governanceApi.openapi(
  adminRoute({
    permission: "models.read",
    method: "get",
    path: "/models/{model}/governance",
    tags: ["Governance"],
    summary: "A model's governance policy: risk tier and approvals",
    request: { params: ModelParams },
    responses: {
      200: jsonContent(Governance, "The policy (governed: false until one is set)"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const model = await findModel(c.var.database(), c.req.valid("param").model);
    return c.json(governanceResource(model.name, model.governance ?? null), 200);
  },
);

governanceApi.openapi(
  adminRoute({
    permission: "governance.write",
    method: "put",
    path: "/models/{model}/governance",
    tags: ["Governance"],
    summary: "Set a model's risk tier, and change its defaults",
    description:
      "The tier's defaults apply where the body does not change them. A risk officer's permission; audited as model.governance.update. A change that loosens the policy in force (a lower tier, larger free bounds, a role no longer asked for) needs the approvals its `policy.change` names: send the approved request as `approvalId`.",
    request: { params: ModelParams, headers: IdempotencyHeader, body: jsonBody(SetGovernanceBody) },
    responses: {
      200: jsonContent(Governance, "The policy now in force"),
      ...errorResponses(400, 401, 403, 404, 409, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const name = c.req.valid("param").model;
    const { approvalId, ...body } = c.req.valid("json");
    const policy = resolvePolicy(body);
    const deliveries: number[] = [];
    const { body: shown } = await runChange(c, async (tx) => {
      const current = await findModel(tx, name, true);
      const before = current.governance ?? null;
      const need = policyChangeNeeds(before, policy);
      const audit: AuditRecord[] = [];
      if (need && before) {
        if (!approvalId) throw approvalRequired(name, [need]);
        const consumed = await consumeApproval(
          c,
          tx,
          name,
          approvalId,
          need,
          policyFingerprint(before),
        );
        deliveries.push(...(await recordConsumption(c, tx, consumed, need.reason, null)));
      }
      const stored: StoredGovernance = {
        ...policy,
        updatedAt: new Date().toISOString(),
        updatedBy: c.var.principal.actor,
      };
      await tx
        .update(models)
        .set({ governance: stored, updatedAt: sql`now()` })
        .where(eq(models.id, current.id));
      audit.push({
        action: "model.governance.update",
        targetType: "model",
        target: `models/${name}`,
        before: auditedPolicy(before),
        after: auditedPolicy(stored),
      });
      return { status: 200, body: governanceResource(name, stored), audit };
    });
    queueNotices(c, deliveries);
    return c.json(shown, 200);
  },
);
