/**
 * The two-person rule: requests for changes that give a model authority,
 * decided by people holding the roles the model's policy names: never the
 * requester, never the same person twice, never a service account, never
 * after the request expired or was decided.
 */
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import {
  call,
  classificationModel,
  completeModelCard,
  createModel,
  createVersion,
  database,
  type ErrorJson,
  fillAirlockItems,
  json,
  principalWithToken,
  uniqueName,
} from "./helpers";
import { putRollout } from "./rollout-helpers";

interface ApprovalJson {
  id: string;
  status: string;
  roles: string[];
  rolesStillNeeded: string[];
  target: Record<string, unknown>;
  decisions: {
    principalId: string;
    role: string | null;
    decision: string;
    comment: string | null;
  }[];
}

const model = uniqueName("appr");
let operator: { id: string; token: string };
let owner: { id: string; token: string };
let risk: { id: string; token: string };
let risk2: { id: string; token: string };
let bot: { id: string; token: string };
let viewer: { id: string; token: string };
/** The rollout state the approved 25% canary made. */
let stateWith25 = 0;

const request = (token: string, body: unknown, on = model) =>
  call(`/admin/models/${on}/approvals`, { method: "POST", token, body });
const approve = (token: string, id: string, comment?: string) =>
  call(`/admin/approvals/${id}/approve`, {
    method: "POST",
    token,
    body: comment ? { comment } : {},
  });
const canary25 = {
  action: "canary.raise",
  target: { version: "v2", percent: 25 },
  reason: "ready for more traffic",
};

async function errorOf(
  response: Response,
): Promise<{ status: number; code: string; message: string }> {
  const body = await json<ErrorJson>(response);
  return { status: response.status, code: body.error.code, message: body.error.message };
}

describe("approvals", () => {
  beforeAll(async () => {
    await createModel(classificationModel(model));
    await createVersion(model, "v1");
    // The canary's version meets its definition of done: approvals are the subject here.
    await createVersion(model, "v2", { modelCard: completeModelCard() });
    expect((await putRollout(model, { champion: "v1" })).status).toBe(200);
    await fillAirlockItems(model, ["v2"]);
    operator = await principalWithToken([{ role: "operator" }]);
    owner = await principalWithToken([{ role: "owner", model }]);
    risk = await principalWithToken([{ role: "risk_officer" }]);
    risk2 = await principalWithToken([{ role: "risk_officer" }]);
    bot = await principalWithToken([{ role: "risk_officer" }, { role: "operator" }], "service");
    viewer = await principalWithToken([{ role: "viewer" }]);
  });

  it("are not needed by an ungoverned model, nor within the policy's free bounds", async () => {
    expect(await errorOf(await request(operator.token, canary25))).toMatchObject({
      status: 409,
      code: "APPROVAL_NOT_NEEDED",
    });
    const set = await call(`/admin/models/${model}/governance`, {
      method: "PUT",
      token: risk.token,
      body: { tier: "medium" },
    });
    expect(set.status).toBe(200);
    const small = await request(operator.token, {
      ...canary25,
      target: { version: "v2", percent: 5 },
    });
    expect(await errorOf(small)).toMatchObject({ status: 409, code: "APPROVAL_NOT_NEEDED" });
  });

  it("need two different people with the named roles; the requester and repeats do not count", async () => {
    const asked = await request(operator.token, canary25);
    expect(asked.status).toBe(201);
    const pending = await json<ApprovalJson>(asked);
    expect(pending).toMatchObject({
      status: "pending",
      roles: ["owner", "risk_officer"],
      rolesStillNeeded: ["owner", "risk_officer"],
      target: { version: "v2", percent: 25 },
    });

    // What the risk officer may decide; not the requester, who may not.
    const mine = await json<{ items: ApprovalJson[] }>(
      await call("/admin/approvals?decidableBy=me", { token: risk.token }),
    );
    expect(mine.items.map((a) => a.id)).toContain(pending.id);
    const theirs = await json<{ items: ApprovalJson[] }>(
      await call("/admin/approvals?decidableBy=me", { token: operator.token }),
    );
    expect(theirs.items.map((a) => a.id)).not.toContain(pending.id);

    // A service account never approves, whatever its roles.
    expect(await errorOf(await approve(bot.token, pending.id))).toMatchObject({
      status: 403,
      code: "FORBIDDEN",
    });
    // A viewer holds no role to decide with.
    expect((await approve(viewer.token, pending.id)).status).toBe(403);

    const first = await json<ApprovalJson>(await approve(risk.token, pending.id, "metrics hold"));
    expect(first).toMatchObject({ status: "pending", rolesStillNeeded: ["owner"] });
    // The same person twice, and a second risk officer for a role already filled.
    expect(await errorOf(await approve(risk.token, pending.id))).toMatchObject({
      status: 409,
      code: "APPROVAL_ALREADY_DECIDED",
    });
    const second = await errorOf(await approve(risk2.token, pending.id));
    expect(second).toMatchObject({ status: 403, code: "FORBIDDEN" });
    expect(second.message).toContain("the model's owner");

    const done = await json<ApprovalJson>(await approve(owner.token, pending.id, "agreed"));
    expect(done.status).toBe("approved");
    expect(done.decisions.map((d) => [d.principalId, d.role, d.comment])).toEqual([
      [risk.id, "risk_officer", "metrics hold"],
      [owner.id, "owner", "agreed"],
    ]);
    expect(await errorOf(await approve(risk2.token, pending.id))).toMatchObject({
      status: 409,
      code: "APPROVAL_NOT_PENDING",
    });

    const trail = await json<{ items: { action: string; actor: string }[] }>(
      await call(`/admin/audit?target=models/${model}/approvals/${pending.id}`),
    );
    expect(trail.items.map((e) => [e.action, e.actor])).toEqual([
      ["approval.approve", owner.id],
      ["approval.approve", risk.id],
      ["approval.request", operator.id],
    ]);
  });

  it("are never decided by the person who asked", async () => {
    const asked = await json<ApprovalJson>(await request(owner.token, canary25));
    const self = await errorOf(await approve(owner.token, asked.id));
    expect(self).toMatchObject({ status: 403, code: "FORBIDDEN" });
    expect(self.message).toContain("never decides their own request");
  });

  it("end when rejected, with the comment, or when they expire", async () => {
    const rejected = await json<ApprovalJson>(await request(operator.token, canary25));
    const refused = await call(`/admin/approvals/${rejected.id}/reject`, {
      method: "POST",
      token: risk.token,
      body: { comment: "canary error rate too high" },
    });
    expect(await json<ApprovalJson>(refused)).toMatchObject({
      status: "rejected",
      decisions: [{ decision: "reject", comment: "canary error rate too high" }],
    });
    expect((await approve(owner.token, rejected.id)).status).toBe(409);
    const noComment = await call(`/admin/approvals/${rejected.id}/reject`, {
      method: "POST",
      token: risk2.token,
      body: {},
    });
    expect(noComment.status).toBe(400);

    const expiring = await json<ApprovalJson>(
      await request(operator.token, { ...canary25, expiresInDays: 1 }),
    );
    const { db, close } = database();
    try {
      await db.execute(
        sql`update approvals set expires_at = now() - interval '1 second' where id = ${expiring.id}`,
      );
    } finally {
      await close();
    }
    const late = await errorOf(await approve(risk.token, expiring.id));
    expect(late).toMatchObject({ status: 409, code: "APPROVAL_NOT_PENDING" });
    expect(late.message).toContain("expired");
    const shown = await json<ApprovalJson>(await call(`/admin/approvals/${expiring.id}`));
    expect(shown).toMatchObject({ status: "expired", rolesStillNeeded: [] });
  });

  it("are asked only by those who may, and name each bad field", async () => {
    expect((await request(viewer.token, canary25)).status).toBe(403);
    const bad = await request(operator.token, {
      action: "canary.raise",
      target: { version: "v2" },
      reason: "x",
    });
    expect(bad.status).toBe(400);
    expect((await json<ErrorJson>(bad)).error.details?.map((d) => d.path)).toContain(
      "target.percent",
    );
    const missing = await call("/admin/approvals/apr_none");
    expect((await json<ErrorJson>(missing)).error.code).toBe("APPROVAL_NOT_FOUND");
  });

  it("are consumed once, by the change they name, while the rollout is as they saw it", async () => {
    const put = (body: Record<string, unknown>) => putRollout(model, { champion: "v1", ...body });
    const refused = await put({ canary: { version: "v2", percent: 25 } });
    const required = await json<ErrorJson>(refused);
    expect(refused.status).toBe(403);
    expect(required.error.code).toBe("APPROVAL_REQUIRED");
    expect(required.error.details).toEqual([
      { path: "canary.raise", message: "needs the model's owner and a risk officer" },
    ]);

    const asked = await json<ApprovalJson>(await request(operator.token, canary25));
    // Still pending: not yet enough.
    const early = await put({ canary: { version: "v2", percent: 25 }, approvalId: asked.id });
    expect((await errorOf(early)).code).toBe("APPROVAL_REQUIRED");
    await approve(risk.token, asked.id);
    await approve(owner.token, asked.id);
    // Another share than the one approved.
    const other = await put({ canary: { version: "v2", percent: 30 }, approvalId: asked.id });
    expect(await errorOf(other)).toMatchObject({ status: 409, code: "APPROVAL_MISMATCH" });

    const applied = await put({ canary: { version: "v2", percent: 25 }, approvalId: asked.id });
    expect(applied.status).toBe(200);
    stateWith25 = (await json<{ stateVersion: number }>(applied)).stateVersion;
    expect((await json<ApprovalJson>(await call(`/admin/approvals/${asked.id}`))).status).toBe(
      "consumed",
    );
    // Lowering never waits; raising again with the used approval is refused.
    expect((await put({ canary: { version: "v2", percent: 5 } })).status).toBe(200);
    const twice = await put({ canary: { version: "v2", percent: 25 }, approvalId: asked.id });
    expect(await errorOf(twice)).toMatchObject({ status: 409, code: "APPROVAL_CONSUMED" });

    // Approved, then the rollout moved: ask again.
    const stale = await json<ApprovalJson>(await request(operator.token, canary25));
    await approve(risk.token, stale.id);
    await approve(owner.token, stale.id);
    expect((await put({ canary: { version: "v2", percent: 3 } })).status).toBe(200);
    const moved = await put({ canary: { version: "v2", percent: 25 }, approvalId: stale.id });
    expect(await errorOf(moved)).toMatchObject({ status: 409, code: "APPROVAL_STALE" });
    expect((await json<ApprovalJson>(await call(`/admin/approvals/${stale.id}`))).status).toBe(
      "approved",
    );

    const trail = await json<{ items: { action: string; actor: string }[] }>(
      await call(`/admin/audit?target=models/${model}/approvals/${asked.id}`),
    );
    expect(trail.items[0]?.action).toBe("approval.consume");
  });

  it("govern releasing a kill switch from medium up; engaging it never waits", async () => {
    const engaged = await call(`/admin/models/${model}/kill-switch`, {
      method: "POST",
      token: operator.token,
      body: { scope: "challengers", reason: "drill" },
    });
    expect(engaged.status).toBe(200);
    const release = (query = "") =>
      call(`/admin/models/${model}/kill-switch${query}`, {
        method: "DELETE",
        token: operator.token,
      });
    expect(await errorOf(await release())).toMatchObject({
      status: 403,
      code: "APPROVAL_REQUIRED",
    });
    const asked = await json<ApprovalJson>(
      await request(operator.token, {
        action: "killswitch.release",
        target: {},
        reason: "drill over",
      }),
    );
    await approve(owner.token, asked.id);
    await approve(risk2.token, asked.id);
    expect((await release(`?approvalId=${asked.id}`)).status).toBe(200);
  });

  it("hold a revert to the policy by what it would restore", async () => {
    // Back to the state with the approved 25% canary, from one with 3%: that raises the canary.
    expect(stateWith25).toBeGreaterThan(0);
    const revert = await call(`/admin/models/${model}/rollout/revert`, {
      method: "POST",
      token: operator.token,
      body: { stateVersion: stateWith25 },
    });
    const refused = await errorOf(revert);
    expect(refused).toMatchObject({ status: 403, code: "APPROVAL_REQUIRED" });
    expect(refused.message).toContain("sends 25% of traffic to the canary v2");
  });
});
