/**
 * Retiring a version for good: only out of the rollout and not the
 * fallback; afterwards no rollout, set or reverted to, may name it; under a
 * governance policy it needs its approvals; audited with the person.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { call, type ErrorJson, json, principalWithToken } from "./helpers";
import { modelWithVersions, putRollout, type RolloutJson } from "./rollout-helpers";

interface VersionJson {
  status: string;
  retired: { at: string; by: string; reason: string } | null;
}

const retire = (model: string, version: string, body: Record<string, unknown>, token?: string) =>
  call(`/admin/models/${model}/versions/${version}/retire`, {
    method: "POST",
    body,
    ...(token ? { token } : {}),
  });

async function codeOf(response: Response) {
  return { status: response.status, ...(await json<ErrorJson>(response)).error };
}

describe("retiring a version", () => {
  let model: string;
  let operator: { id: string; token: string };
  beforeAll(async () => {
    model = await modelWithVersions(5, "ret");
    operator = await principalWithToken([{ role: "operator" }]);
    expect(
      (await putRollout(model, { champion: "v1", shadows: [{ version: "v3", sampleRate: 1 }] }))
        .status,
    ).toBe(200);
  });

  it("refuses a version in the rollout or the fallback, and keeps the rest", async () => {
    expect(await codeOf(await retire(model, "v3", { reason: "superseded" }))).toMatchObject({
      status: 409,
      code: "VERSION_IN_USE",
    });
    expect(
      (
        await call(`/admin/models/${model}`, {
          method: "PATCH",
          body: { fallback: { kind: "version", version: "v4" } },
        })
      ).status,
    ).toBe(200);
    const fallback = await codeOf(await retire(model, "v4", { reason: "superseded" }));
    expect(fallback).toMatchObject({ status: 409, code: "VERSION_IN_USE" });
    expect(fallback.message).toContain("fallback");
    expect((await retire(model, "v9", { reason: "x" })).status).toBe(404);
    expect(await codeOf(await retire(model, "v2", {}))).toMatchObject({
      status: 400,
      code: "VALIDATION_FAILED",
    });
  });

  it("retires for good: audited, idempotent, and never named in a rollout again", async () => {
    const done = await retire(
      model,
      "v2",
      { reason: "failed its fairness review" },
      operator.token,
    );
    expect(done.status).toBe(200);
    const shown = await json<VersionJson>(done);
    expect(shown).toMatchObject({
      status: "retired",
      retired: { by: operator.id, reason: "failed its fairness review" },
    });
    const again = await json<VersionJson>(await retire(model, "v2", { reason: "again" }));
    expect(again.retired?.reason).toBe("failed its fairness review");
    const trail = await json<{ items: { action: string; actor: string }[] }>(
      await call(`/admin/audit?target=models/${model}/versions/v2`),
    );
    expect(trail.items.filter((e) => e.action === "version.retire")).toEqual([
      expect.objectContaining({ action: "version.retire", actor: operator.id }),
    ]);

    const named = await codeOf(
      await putRollout(model, { champion: "v1", shadows: [{ version: "v2", sampleRate: 0.5 }] }),
    );
    expect(named).toMatchObject({
      status: 409,
      code: "VERSION_RETIRED",
      details: [{ path: "shadows[0].version", message: "is retired" }],
    });
  });

  it("refuses a revert to a state that named a version since retired", async () => {
    const withV5 = await json<RolloutJson>(
      await putRollout(model, { champion: "v1", shadows: [{ version: "v5", sampleRate: 1 }] }),
    );
    expect((await putRollout(model, { champion: "v1" })).status).toBe(200);
    expect((await retire(model, "v5", { reason: "done" })).status).toBe(200);
    const revert = await call(`/admin/models/${model}/rollout/revert`, {
      method: "POST",
      body: { stateVersion: withV5.stateVersion },
    });
    expect(await codeOf(revert)).toMatchObject({ status: 409, code: "VERSION_RETIRED" });
  });

  it("needs the approvals the governance policy names", async () => {
    const governed = await modelWithVersions(2, "retg");
    const owner = await principalWithToken([{ role: "owner", model: governed }]);
    const risk = await principalWithToken([{ role: "risk_officer" }]);
    expect((await putRollout(governed, { champion: "v1" })).status).toBe(200);
    expect(
      (
        await call(`/admin/models/${governed}/governance`, {
          method: "PUT",
          token: risk.token,
          body: { tier: "low" },
        })
      ).status,
    ).toBe(200);
    const refused = await codeOf(await retire(governed, "v2", { reason: "old" }, operator.token));
    expect(refused).toMatchObject({ status: 403, code: "APPROVAL_REQUIRED" });
    expect(refused.details).toEqual([
      { path: "version.retire", message: "needs the model's owner" },
    ]);

    const asked = await call(`/admin/models/${governed}/approvals`, {
      method: "POST",
      token: operator.token,
      body: { action: "version.retire", target: { version: "v2" }, reason: "old" },
    });
    expect(asked.status).toBe(201);
    const { id } = await json<{ id: string }>(asked);
    expect(
      (
        await call(`/admin/approvals/${id}/approve`, {
          method: "POST",
          token: owner.token,
          body: {},
        })
      ).status,
    ).toBe(200);
    const done = await retire(governed, "v2", { reason: "old", approvalId: id }, operator.token);
    expect(done.status).toBe(200);
    expect((await json<{ status: string }>(await call(`/admin/approvals/${id}`))).status).toBe(
      "consumed",
    );
    // Asking about a version that does not exist is a 404.
    const missing = await call(`/admin/models/${governed}/approvals`, {
      method: "POST",
      token: operator.token,
      body: { action: "version.retire", target: { version: "v9" }, reason: "x" },
    });
    expect(missing.status).toBe(404);
  });
});
