/**
 * A model's governance policy: unset until a risk officer sets a tier, the
 * tier's defaults with the changes the body makes, refused to everyone
 * without `governance.write`, and audited with the person who set it.
 */
import { describe, expect, it } from "vitest";
import { tierDefaults } from "../../shared/governance/policy";
import {
  call,
  classificationModel,
  createModel,
  type ErrorJson,
  json,
  principalWithToken,
  uniqueName,
} from "./helpers";

interface GovernanceJson {
  governed: boolean;
  tier: string | null;
  freeCanaryPercent: number | null;
  approvals: Record<string, string[]> | null;
  updatedBy: string | null;
}

describe("governance policy", () => {
  it("is unset at first, then the tier's defaults with the body's changes, audited", async () => {
    const model = uniqueName("gov");
    await createModel(classificationModel(model));
    const unset = await json<GovernanceJson>(await call(`/admin/models/${model}/governance`));
    expect(unset).toMatchObject({ governed: false, tier: null, approvals: null });

    const risk = await principalWithToken([{ role: "risk_officer" }]);
    const set = await call(`/admin/models/${model}/governance`, {
      method: "PUT",
      token: risk.token,
      body: { tier: "medium", freeCanaryPercent: 10, approvals: { "shadow.add": [] } },
    });
    expect(set.status).toBe(200);
    const policy = await json<GovernanceJson>(set);
    const defaults = tierDefaults("medium");
    expect(policy).toMatchObject({
      governed: true,
      tier: "medium",
      freeCanaryPercent: 10,
      updatedBy: risk.id,
      approvals: { ...defaults.approvals, "shadow.add": [] },
    });
    expect(await json<GovernanceJson>(await call(`/admin/models/${model}/governance`))).toEqual(
      policy,
    );

    const trail = await json<{
      items: { action: string; actor: string; before: unknown; after: unknown }[];
    }>(await call(`/admin/audit?target=models/${model}&action=model.governance.update`));
    expect(trail.items).toMatchObject([
      { actor: risk.id, before: null, after: { tier: "medium", freeCanaryPercent: 10 } },
    ]);
  });

  it("is set by a risk officer or an admin, not by the model's owner or an operator", async () => {
    const model = uniqueName("gov");
    await createModel(classificationModel(model));
    for (const grants of [
      [{ role: "owner", model }],
      [{ role: "operator" }],
      [{ role: "viewer" }],
    ]) {
      const { token } = await principalWithToken(grants);
      const refused = await call(`/admin/models/${model}/governance`, {
        method: "PUT",
        token,
        body: { tier: "low" },
      });
      expect(refused.status).toBe(403);
      expect((await json<ErrorJson>(refused)).error.details).toEqual([
        { path: "permission", message: "governance.write" },
      ]);
    }
    expect(
      (await call(`/admin/models/${model}/governance`, { method: "PUT", body: { tier: "high" } }))
        .status,
    ).toBe(200);
  });

  it("names each bad field", async () => {
    const model = uniqueName("gov");
    await createModel(classificationModel(model));
    for (const [body, field] of [
      [{ tier: "extreme" }, "tier"],
      [{}, "tier"],
      [{ tier: "low", approvals: { "model.delete": [] } }, "approvals"],
      [{ tier: "low", approvals: { "canary.raise": ["intern"] } }, "approvals.canary.raise[0]"],
      [{ tier: "low", freeCanaryPercent: 101 }, "freeCanaryPercent"],
    ] as const) {
      const response = await call(`/admin/models/${model}/governance`, { method: "PUT", body });
      expect(response.status, JSON.stringify(body)).toBe(400);
      const details = (await json<ErrorJson>(response)).error.details ?? [];
      expect(
        details.map((d) => d.path),
        JSON.stringify(body),
      ).toContain(field);
    }
    const missing = await call("/admin/models/no-such-model/governance");
    expect((await json<ErrorJson>(missing)).error.code).toBe("MODEL_NOT_FOUND");
  });

  it("loosened under a policy whose policy.change names roles needs their approval; tightened never waits", async () => {
    const model = uniqueName("govp");
    await createModel(classificationModel(model));
    const risk = await principalWithToken([{ role: "risk_officer" }]);
    const board = await principalWithToken([{ role: "review_board" }]);
    const put = (body: Record<string, unknown>) =>
      call(`/admin/models/${model}/governance`, { method: "PUT", token: risk.token, body });
    const ask = (policy: Record<string, unknown>) =>
      call(`/admin/models/${model}/approvals`, {
        method: "POST",
        token: risk.token,
        body: {
          action: "policy.change",
          target: { policy },
          reason: "the model is retired to a side use",
        },
      });
    expect((await put({ tier: "high" })).status).toBe(200);
    // Tightening: more roles, a smaller free share.
    expect((await put({ tier: "high", freeCanaryPercent: 0.5 })).status).toBe(200);
    // Asking to tighten is pointless: refused as not needed.
    const pointless = await ask({ tier: "high", freeCanaryPercent: 0.1 });
    expect((await json<ErrorJson>(pointless)).error.code).toBe("APPROVAL_NOT_NEEDED");
    // Loosening without an approval: refused, saying how it loosens and whose approval it needs.
    const refused = await put({ tier: "medium" });
    expect(refused.status).toBe(403);
    const error = (await json<ErrorJson>(refused)).error;
    expect(error.code).toBe("APPROVAL_REQUIRED");
    expect(error.message).toContain("lowers the tier from high to medium");
    expect(error.details).toEqual([
      { path: "policy.change", message: "needs a review-board member" },
    ]);

    const asked = await ask({ tier: "medium" });
    expect(asked.status).toBe(201);
    const approval = await json<{ id: string; target: Record<string, unknown>; roles: string[] }>(
      asked,
    );
    expect(approval.roles).toEqual(["review_board"]);
    expect(approval.target.tier).toBe("medium");
    // The requester cannot decide it; a review-board member can.
    expect(
      (
        await call(`/admin/approvals/${approval.id}/approve`, {
          method: "POST",
          token: risk.token,
          body: {},
        })
      ).status,
    ).toBe(403);
    expect(
      (
        await call(`/admin/approvals/${approval.id}/approve`, {
          method: "POST",
          token: board.token,
          body: {},
        })
      ).status,
    ).toBe(200);
    // Another policy than the approved one is a mismatch.
    const other = await put({ tier: "low", approvalId: approval.id });
    expect((await json<ErrorJson>(other)).error.code).toBe("APPROVAL_MISMATCH");
    const applied = await put({ tier: "medium", approvalId: approval.id });
    expect(applied.status).toBe(200);
    expect((await json<GovernanceJson>(applied)).tier).toBe("medium");
    const shown = await json<{ status: string }>(await call(`/admin/approvals/${approval.id}`));
    expect(shown.status).toBe("consumed");

    // A policy changed since the request makes it stale.
    expect((await put({ tier: "high" })).status).toBe(200);
    const later = await json<{ id: string }>(await ask({ tier: "low" }));
    await call(`/admin/approvals/${later.id}/approve`, {
      method: "POST",
      token: board.token,
      body: {},
    });
    expect((await put({ tier: "high", freeCanaryPercent: 0.5 })).status).toBe(200);
    const stale = await put({ tier: "low", approvalId: later.id });
    expect((await json<ErrorJson>(stale)).error.code).toBe("APPROVAL_STALE");

    const trail = await json<{ items: { action: string; actor: string }[] }>(
      await call(`/admin/audit?target=models/${model}/approvals/${approval.id}`),
    );
    expect(trail.items.map((e) => [e.action, e.actor])).toEqual([
      ["approval.consume", risk.id],
      ["approval.approve", board.id],
      ["approval.request", risk.id],
    ]);
  });
});
