/**
 * Rollout plans under a governance policy: starting one needs what its
 * shadow needs, overriding the gates by hand needs the policy's
 * `plan.override` approvals bound to the plan and its phase, and a plan
 * never moves on evidence it could not read.
 */
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import { evaluatePlans } from "../../functions/plans/run";
import {
  call,
  classificationModel,
  completeModelCard,
  createModel,
  createVersion,
  deadDatabaseProxy,
  type ErrorJson,
  fillAirlockItems,
  json,
  principalWithToken,
  query,
  uniqueName,
} from "./helpers";
import { putRollout, type RolloutJson } from "./rollout-helpers";

interface PlanJson {
  id: string;
  phase: string;
  status: string;
}

interface ApprovalJson {
  id: string;
  status: string;
  roles: string[];
  target: Record<string, unknown>;
  evidence: { binding: Record<string, unknown>; evaluation: unknown } | null;
  evidenceSha256: string | null;
}

let operator: { id: string; token: string };
let owner: { id: string; token: string };
let risk: { id: string; token: string };

/** A medium-risk model: v1 serving, v2 ready for authority. */
async function governedModel(): Promise<string> {
  const model = uniqueName("pg");
  await createModel(classificationModel(model));
  await createVersion(model, "v1");
  await createVersion(model, "v2", { modelCard: completeModelCard() });
  expect((await putRollout(model, { champion: "v1" })).status).toBe(200);
  await fillAirlockItems(model, ["v2"]);
  const set = await call(`/admin/models/${model}/governance`, {
    method: "PUT",
    body: { tier: "medium" },
  });
  expect(set.status).toBe(200);
  owner = await principalWithToken([{ role: "owner", model }]);
  return model;
}

const ask = (model: string, body: unknown) =>
  call(`/admin/models/${model}/approvals`, { method: "POST", token: operator.token, body });

async function approved(model: string, body: unknown): Promise<ApprovalJson> {
  const asked = await ask(model, body);
  expect(asked.status, await asked.clone().text()).toBe(201);
  const request = await json<ApprovalJson>(asked);
  // Each role it needs, by a person who holds it (never the operator who asked).
  for (const role of request.roles) {
    const person = role === "owner" ? owner : risk;
    const decided = await call(`/admin/approvals/${request.id}/approve`, {
      method: "POST",
      token: person.token,
      body: {},
    });
    expect(decided.status).toBe(200);
  }
  return request;
}

describe("rollout plans under a governance policy", () => {
  beforeAll(async () => {
    operator = await principalWithToken([{ role: "operator" }]);
    risk = await principalWithToken([{ role: "risk_officer" }]);
  });

  it("starts only with the shadow's approval, and overrides the gates only with plan.override's", async () => {
    const model = await governedModel();
    // A shadow on every request is above medium's free 10%: it needs shadow.add.
    const refused = await call(`/admin/models/${model}/plans`, {
      method: "POST",
      token: operator.token,
      body: { challenger: "v2" },
    });
    expect(refused.status).toBe(403);
    expect((await json<ErrorJson>(refused)).error.code).toBe("APPROVAL_REQUIRED");
    const shadow = await approved(model, {
      action: "shadow.add",
      target: { version: "v2", sampleRate: 1 },
      reason: "start the plan",
    });
    const started = await call(`/admin/models/${model}/plans`, {
      method: "POST",
      token: operator.token,
      body: { challenger: "v2", approvalId: shadow.id },
    });
    expect(started.status, await started.clone().text()).toBe(201);
    const plan = await json<PlanJson>(started);

    // By hand, past the gates: refused without plan.override's approval.
    const bare = await call(`/admin/models/${model}/plans/${plan.id}/advance`, {
      method: "POST",
      token: operator.token,
      body: { reason: "the business needs it now" },
    });
    expect(bare.status).toBe(403);
    const body = await json<ErrorJson>(bare);
    expect(body.error.code).toBe("APPROVAL_REQUIRED");
    expect(body.error.message).toContain("out of shadow by hand");

    // An override asked for another phase than the one the plan is in is stale.
    const wrongPhase = await ask(model, {
      action: "plan.override",
      target: { plan: plan.id, phase: "canary_1", action: "advance" },
      reason: "x",
    });
    expect(wrongPhase.status).toBe(409);
    expect((await json<ErrorJson>(wrongPhase)).error.code).toBe("PLAN_STALE");

    const override = await approved(model, {
      action: "plan.override",
      target: { plan: plan.id, phase: "shadow", action: "advance" },
      reason: "the business needs it now",
    });
    // The approvers were shown the plan's binding, frozen with its hash.
    expect(override.evidence?.binding).toMatchObject({
      plan: plan.id,
      challenger: "v2",
      champion: "v1",
      phase: "shadow",
    });
    expect(override.evidenceSha256).toMatch(/^[0-9a-f]{64}$/);
    // A skip is another action: this approval does not allow it.
    const skip = await call(`/admin/models/${model}/plans/${plan.id}/skip`, {
      method: "POST",
      token: operator.token,
      body: { reason: "x", approvalId: override.id },
    });
    expect(skip.status).toBe(409);
    expect((await json<ErrorJson>(skip)).error.code).toBe("APPROVAL_MISMATCH");

    const advanced = await call(`/admin/models/${model}/plans/${plan.id}/advance`, {
      method: "POST",
      token: operator.token,
      body: { reason: "the business needs it now", approvalId: override.id },
    });
    expect(advanced.status, await advanced.clone().text()).toBe(200);
    expect((await json<PlanJson>(advanced)).phase).toBe("canary_1");
    const rollout = await json<RolloutJson>(await call(`/admin/models/${model}/rollout`));
    expect(rollout.canary).toEqual({ version: "v2", percent: 1 });
    const [row] = await query<{ status: string; consumed_by: string }>(
      sql`SELECT status, consumed_by FROM approvals WHERE id = ${override.id}`,
    );
    expect(row?.status).toBe("consumed");
    // Used once: a second advance with it is refused.
    const again = await call(`/admin/models/${model}/plans/${plan.id}/advance`, {
      method: "POST",
      token: operator.token,
      body: { reason: "again", approvalId: override.id },
    });
    expect(again.status).toBe(409);
    expect((await json<ErrorJson>(again)).error.code).toBe("APPROVAL_CONSUMED");
  });

  it("never moves a plan on evidence it could not read", async () => {
    const model = uniqueName("pg");
    await createModel(classificationModel(model));
    await createVersion(model, "v1");
    await createVersion(model, "v2");
    expect((await putRollout(model, { champion: "v1" })).status).toBe(200);
    const started = await call(`/admin/models/${model}/plans`, {
      method: "POST",
      body: { challenger: "v2", phases: { shadow: { minDwellSeconds: 0, minRequests: 0 } } },
    });
    expect(started.status).toBe(201);
    const plan = await json<PlanJson>(started);
    // The database does not answer: the run fails, and nothing moves.
    const dead = { ...env, DATABASE_WS_PROXY: deadDatabaseProxy } as Env;
    await expect(evaluatePlans(dead, new Date(), { planId: plan.id })).rejects.toThrow();
    const shown = await json<PlanJson>(await call(`/admin/models/${model}/plans/${plan.id}`));
    expect(shown).toMatchObject({ phase: "shadow", status: "active" });
    const evaluations = await query<{ id: number }>(
      sql`SELECT id FROM plan_evaluations WHERE plan_id = ${plan.id}`,
    );
    expect(evaluations).toEqual([]);
  });
});
