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
});
