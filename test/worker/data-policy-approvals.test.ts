/**
 * A data policy that keeps more of a model's data than the one in force is
 * an approval action of its governance policy (`data_policy.change`): it
 * needs an approved request for exactly that policy, used once. Keeping
 * less never waits.
 */
import { sql } from "drizzle-orm";
import { beforeAll, describe, expect, it } from "vitest";
import {
  call,
  classificationModel,
  createModel,
  type ErrorJson,
  json,
  principalWithToken,
  query,
  uniqueName,
} from "./helpers";

interface ApprovalJson {
  id: string;
  status: string;
  roles: string[];
  target: Record<string, unknown>;
}

const model = uniqueName("dpa");
let owner: { id: string; token: string };
let risk: { id: string; token: string };

const put = (body: Record<string, unknown>, on = model) =>
  call(`/admin/models/${on}/data-policy`, { method: "PUT", token: risk.token, body });
const ask = (policy: Record<string, unknown>) =>
  call(`/admin/models/${model}/approvals`, {
    method: "POST",
    token: owner.token,
    body: {
      action: "data_policy.change",
      target: { policy },
      reason: "the fraud team needs amounts back",
    },
  });
const approve = (id: string) =>
  call(`/admin/approvals/${id}/approve`, { method: "POST", token: risk.token, body: {} });

async function errorOf(response: Response) {
  return { status: response.status, ...(await json<ErrorJson>(response)).error };
}

/** Asks for `policy` and has a risk officer approve it. */
async function approved(policy: Record<string, unknown>): Promise<string> {
  const asked = await ask(policy);
  expect(asked.status, await asked.clone().text()).toBe(201);
  const { id } = await json<ApprovalJson>(asked);
  expect((await approve(id)).status).toBe(200);
  return id;
}

const strict = { fields: { amount: "drop", country: "hash" }, retentionDays: 20 };
/** Looser than `strict`: the amount hashed instead of dropped, rows kept 60 days. */
const looser = { fields: { amount: "hash", country: "hash" }, retentionDays: 60 };

describe("data policy under a governance policy", () => {
  beforeAll(async () => {
    await createModel(classificationModel(model));
    owner = await principalWithToken([{ role: "owner", model }]);
    risk = await principalWithToken([{ role: "risk_officer" }]);
    expect(
      (await call(`/admin/models/${model}/governance`, { method: "PUT", body: { tier: "medium" } }))
        .status,
    ).toBe(200);
  });

  it("takes data away without an approval", async () => {
    expect((await put({ fields: { amount: "hash" }, retentionDays: 30 })).status).toBe(200);
    const tighter = await put(strict);
    expect(tighter.status, await tighter.clone().text()).toBe(200);
    // Asking to take data away is pointless: refused as not needed.
    const pointless = await ask({ ...strict, retentionDays: 10 });
    expect(await errorOf(pointless)).toMatchObject({ status: 409, code: "APPROVAL_NOT_NEEDED" });
  });

  it("refuses keeping more without an approval, saying how and whose", async () => {
    const refused = await errorOf(await put(looser));
    expect(refused).toMatchObject({ status: 403, code: "APPROVAL_REQUIRED" });
    expect(refused.message).toContain("hashes the field amount, dropped until now");
    expect(refused.message).toContain("keeps the model's rows 60 days instead of 20");
    expect(refused.details).toEqual([
      { path: "data_policy.change", message: "needs a risk officer" },
    ]);
    const shown = await json<{ retentionDays: number }>(
      await call(`/admin/models/${model}/data-policy`),
    );
    expect(shown.retentionDays).toBe(20);
  });

  it("applies the approved policy once, and no other", async () => {
    const id = await approved(looser);
    const request = await json<ApprovalJson>(await call(`/admin/approvals/${id}`));
    expect(request.roles).toEqual(["risk_officer"]);
    expect(JSON.parse(String(request.target.policy))).toEqual({
      attributes: {},
      fields: { amount: "hash", country: "hash" },
      retentionDays: 60,
    });

    const other = await errorOf(await put({ ...looser, retentionDays: 90, approvalId: id }));
    expect(other).toMatchObject({ status: 409, code: "APPROVAL_MISMATCH" });

    // The same policy, written otherwise (an explicit `store`, keys reordered).
    const applied = await put({
      retentionDays: 60,
      attributes: { region: "store" },
      fields: { country: "hash", amount: "hash" },
      approvalId: id,
    });
    expect(applied.status, await applied.clone().text()).toBe(200);
    expect(await json(applied)).toMatchObject({ fields: { amount: "hash" }, retentionDays: 60 });
    expect((await json<ApprovalJson>(await call(`/admin/approvals/${id}`))).status).toBe(
      "consumed",
    );
    const trail = await json<{ items: { action: string; actor: string }[] }>(
      await call(`/admin/audit?target=models/${model}/approvals/${id}&limit=5`),
    );
    expect(trail.items[0]).toMatchObject({ action: "approval.consume", actor: risk.id });

    // Used once: loosening again with it is refused.
    expect((await put(strict)).status).toBe(200);
    expect(await errorOf(await put({ ...looser, approvalId: id }))).toMatchObject({
      status: 409,
      code: "APPROVAL_CONSUMED",
    });
  });

  it("refuses an approval asked for under a data policy that has changed since", async () => {
    const id = await approved(looser);
    expect((await put({ ...strict, retentionDays: 15 })).status).toBe(200);
    expect(await errorOf(await put({ ...looser, approvalId: id }))).toMatchObject({
      status: 409,
      code: "APPROVAL_STALE",
    });
  });

  it("needs nothing for a model without a governance policy", async () => {
    const free = uniqueName("dpa");
    await createModel(classificationModel(free));
    expect((await put(strict, free)).status).toBe(200);
    expect((await put(looser, free)).status).toBe(200);
  });

  it("holds a policy set before the action existed to its tier's default for it", async () => {
    const older = uniqueName("dpa");
    await createModel(classificationModel(older));
    expect(
      (await call(`/admin/models/${older}/governance`, { method: "PUT", body: { tier: "medium" } }))
        .status,
    ).toBe(200);
    expect((await put(strict, older)).status).toBe(200);
    // As stored before data_policy.change was an action: no roles named for it.
    await query(sql`UPDATE models SET governance = governance #- '{approvals,data_policy.change}'
      WHERE name = ${older}`);
    const shown = await json<{ approvals: Record<string, string[]> }>(
      await call(`/admin/models/${older}/governance`),
    );
    expect(shown.approvals["data_policy.change"]).toEqual(["risk_officer"]);
    expect(await errorOf(await put(looser, older))).toMatchObject({
      status: 403,
      code: "APPROVAL_REQUIRED",
    });
  });
});
