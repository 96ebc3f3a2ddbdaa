/**
 * The governance checklist of a version, end to end: a governed model
 * with a complete card, a baseline, a destination, a data policy and an
 * approved canary, whose every piece of evidence is checked against the
 * database (each audit `seq` is that row of the trail); an ungoverned
 * model; and the version it defaults to.
 */
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import {
  call,
  classificationModel,
  completeModelCard,
  createModel,
  createVersion,
  type ErrorJson,
  fillAirlockItems,
  json,
  principalWithToken,
  query,
  uniqueName,
} from "./helpers";
import { putRollout } from "./rollout-helpers";

interface Evidence {
  kind: string;
  ref: string;
  detail?: string;
}
interface Item {
  id: string;
  function: string;
  title: string;
  state: string;
  evidence: Evidence[];
  note?: string;
}
interface ChecklistJson {
  model: string;
  version: string;
  governed: boolean;
  riskTier: string | null;
  readyForAuthority: boolean;
  functions: { function: string; items: Item[] }[];
}

function itemsOf(checklist: ChecklistJson): Map<string, Item> {
  return new Map(
    checklist.functions.flatMap((group) => group.items).map((item) => [item.id, item]),
  );
}

async function auditRow(seq: string) {
  const [row] = await query<{ action: string; target: string; actor: string; hash: string }>(
    sql`SELECT action, target, actor, hash FROM audit_log WHERE seq = ${Number(seq)}`,
  );
  return row;
}

const auditRefs = (item: Item | undefined) =>
  (item?.evidence ?? []).filter((e) => e.kind === "audit").map((e) => e.ref);

describe("the governance checklist", () => {
  it("shows a governed version's evidence, each piece as the database holds it", async () => {
    const model = uniqueName("chk");
    await createModel(classificationModel(model));
    await createVersion(model, "v1");
    await createVersion(model, "v2", { modelCard: completeModelCard() });
    expect((await putRollout(model, { champion: "v1" })).status).toBe(200);
    const risk = await principalWithToken([{ role: "risk_officer" }]);
    const owner = await principalWithToken([{ role: "owner", model }]);
    const operator = await principalWithToken([{ role: "operator" }]);
    const governed = await call(`/admin/models/${model}/governance`, {
      method: "PUT",
      token: risk.token,
      body: { tier: "medium" },
    });
    expect(governed.status).toBe(200);
    const { destinationId } = await fillAirlockItems(model, ["v2"]);

    // A 25% canary, asked for, approved by the owner and a risk officer, applied.
    const asked = await call(`/admin/models/${model}/approvals`, {
      method: "POST",
      token: operator.token,
      body: {
        action: "canary.raise",
        target: { version: "v2", percent: 25 },
        reason: "a week in shadow",
      },
    });
    const { id: approvalId } = await json<{ id: string }>(asked);
    for (const who of [owner, risk])
      expect(
        (
          await call(`/admin/approvals/${approvalId}/approve`, {
            method: "POST",
            token: who.token,
            body: {},
          })
        ).status,
      ).toBe(200);
    const applied = await putRollout(
      model,
      { champion: "v1", canary: { version: "v2", percent: 25 }, approvalId },
      { authorization: `Bearer ${operator.token}` },
    );
    expect(applied.status).toBe(200);

    const response = await call(`/admin/models/${model}/checklist?version=v2`);
    expect(response.status).toBe(200);
    const checklist = await json<ChecklistJson>(response);
    expect(checklist).toMatchObject({
      model,
      version: "v2",
      governed: true,
      riskTier: "medium",
      readyForAuthority: true,
    });
    expect(checklist.functions.map((group) => group.function)).toEqual([
      "Govern",
      "Map",
      "Measure",
      "Manage",
    ]);
    for (const group of checklist.functions)
      for (const item of group.items) expect(item.function).toBe(group.function);
    const items = itemsOf(checklist);
    const unmet = [...items.values()].filter((item) => item.state !== "met").map((i) => i.id);
    expect(unmet).toEqual(["monitoring_results", "online_evidence"]);
    expect(items.get("online_evidence")?.note).toBe("no rollout plan has evaluated this version");

    // The policy: who set it, and its audit row.
    const policy = items.get("governance_policy");
    expect(policy?.evidence[0]).toMatchObject({
      kind: "setting",
      ref: `models/${model}/governance`,
      detail: expect.stringContaining(`tier medium, set by ${risk.id}`),
    });
    const [policySeq] = auditRefs(policy);
    expect(await auditRow(policySeq ?? "0")).toMatchObject({
      action: "model.governance.update",
      target: `models/${model}`,
      actor: risk.id,
    });

    // The approval and its consumption in the trail.
    const approvals = items.get("approvals");
    expect(approvals?.evidence.find((e) => e.kind === "approval")).toMatchObject({
      ref: approvalId,
      detail: expect.stringContaining(`canary.raise {"percent":25,"version":"v2"}, consumed`),
    });
    const [consumeSeq] = auditRefs(approvals);
    expect(await auditRow(consumeSeq ?? "0")).toMatchObject({
      action: "approval.consume",
      target: `models/${model}/approvals/${approvalId}`,
      actor: operator.id,
    });

    // The data policy and the baseline, each by its audit row.
    const [policyChange] = auditRefs(items.get("data_policy"));
    expect(await auditRow(policyChange ?? "0")).toMatchObject({
      action: "data_policy.update",
      target: `models/${model}/data-policy`,
    });
    const [baselineSeq] = auditRefs(items.get("baseline"));
    expect(await auditRow(baselineSeq ?? "0")).toMatchObject({
      action: "version.baseline.set",
      target: `models/${model}/versions/v2`,
    });

    // Card sections at the card's revision and hash.
    const [card] = await query<{ card_revision: number; card_sha256: string }>(
      sql`SELECT v.card_revision, v.card_sha256 FROM model_versions v JOIN models m ON m.id = v.model_id
          WHERE m.name = ${model} AND v.version = 'v2'`,
    );
    expect(items.get("fairness_analysis")?.evidence).toEqual([
      {
        kind: "card_section",
        ref: "versions/v2/modelCard.fairnessAnalysis",
        detail: `revision ${card?.card_revision}, sha256 ${card?.card_sha256}`,
      },
    ]);
    expect(items.get("training_data")?.evidence.map((e) => e.ref)).toEqual([
      "versions/v2/modelCard.trainingData",
      "versions/v2/modelCard.trainingData.sensitiveAttributes",
      "versions/v2/modelCard.provenance",
    ]);

    // The destination, and the chain's head as it was: that row's hash.
    expect(items.get("alert_destinations")?.evidence).toEqual([
      { kind: "setting", ref: `alert-destinations/${destinationId}` },
    ]);
    const head = items.get("audit_trail")?.evidence[0];
    expect(head?.detail).toBe(`chain head, hash ${(await auditRow(head?.ref ?? "0"))?.hash}`);
    expect(Number(head?.ref)).toBeGreaterThanOrEqual(Number(consumeSeq));
  });

  it("defaults to the champion, and says what an ungoverned model lacks", async () => {
    const model = uniqueName("chk");
    await createModel(classificationModel(model));
    await createVersion(model, "v1", { modelCard: { intendedUse: "Scores transactions." } });
    const noChampion = await call(`/admin/models/${model}/checklist`);
    expect(noChampion.status).toBe(400);
    expect((await json<ErrorJson>(noChampion)).error.details).toEqual([
      { path: "version", message: `is required: '${model}' has no champion` },
    ]);
    expect((await putRollout(model, { champion: "v1" })).status).toBe(200);

    const checklist = await json<ChecklistJson>(await call(`/admin/models/${model}/checklist`));
    expect(checklist).toMatchObject({
      version: "v1",
      governed: false,
      riskTier: null,
      readyForAuthority: false,
    });
    const items = itemsOf(checklist);
    expect(items.get("governance_policy")).toMatchObject({ state: "unmet", evidence: [] });
    expect(items.get("governance_policy")?.note).toContain("no governance policy");
    expect(items.get("risk_tier")?.state).toBe("unmet");
    expect(items.get("approvals")?.state).toBe("not_applicable");
    expect(items.get("intended_use")).toMatchObject({
      state: "unmet",
      note: "the card does not say what the model must not be used for (outOfScopeUse)",
    });
    expect(items.get("intended_use")?.evidence.map((e) => e.ref)).toEqual([
      "versions/v1/modelCard.intendedUse",
    ]);
    for (const id of ["data_policy", "baseline", "alert_destinations", "kill_switch_owner"])
      expect(items.get(id)?.state, id).toBe("unmet");

    const unknown = await call(`/admin/models/${model}/checklist?version=v9`);
    expect(unknown.status).toBe(404);
    expect((await json<ErrorJson>(unknown)).error.code).toBe("VERSION_NOT_FOUND");
  });
});
