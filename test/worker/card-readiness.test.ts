/**
 * A definition of done before any authority: on a governed model, a
 * version gets a canary share or the champion's place only once its card
 * is complete and Airlock holds its baseline, a destination for the
 * model's alerts and a data policy. The refusal lists exactly what is
 * missing. Taking authority away, shadows and ungoverned models are never
 * held to it.
 */
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
  thinCardMissing,
  thinModelCard,
  uniqueName,
} from "./helpers";
import { putRollout, type RolloutJson } from "./rollout-helpers";

/** Low tier without the owner's approvals for promotions and canaries: the card is the subject here. */
const policy = {
  tier: "low",
  approvals: { "champion.change": [], "canary.raise": [] },
};

const thinCard = thinModelCard;

/** A model whose v1 (complete card) is champion and v2 (thin card) is in shadow. */
async function modelWithThinChallenger(governed: boolean) {
  const model = uniqueName("card");
  await createModel(classificationModel(model));
  await createVersion(model, "v1", { modelCard: completeModelCard() });
  await createVersion(model, "v2", { modelCard: thinCard });
  expect(
    (await putRollout(model, { champion: "v1", shadows: [{ version: "v2", sampleRate: 1 }] }))
      .status,
  ).toBe(200);
  if (governed) await setPolicy(model);
  return model;
}

async function setPolicy(model: string) {
  const set = await call(`/admin/models/${model}/governance`, { method: "PUT", body: policy });
  expect(set.status).toBe(200);
}

async function refusal(response: Response) {
  expect(response.status).toBe(409);
  return (await json<ErrorJson>(response)).error;
}

async function rolloutOf(model: string) {
  return json<RolloutJson>(await call(`/admin/models/${model}/rollout`));
}

describe("the definition of done on a governed model", () => {
  it("refuses a canary to a version with an incomplete card, listing exactly what is missing, until it is complete", async () => {
    const model = await modelWithThinChallenger(true);
    const canary = { champion: "v1", canary: { version: "v2", percent: 5 } };

    const first = await refusal(await putRollout(model, canary));
    expect(first.code).toBe("MODEL_CARD_INCOMPLETE");
    expect(first.message).toContain(`Version 'v2' of '${model}' cannot leave shadow`);
    expect(first.message).toContain("14 items are missing");
    expect(first.details?.map((d) => d.path)).toEqual([
      ...thinCardMissing("v2"),
      "versions/v2/baseline",
      "alertDestinations",
      "dataPolicy",
    ]);
    expect(first.details?.find((d) => d.path.endsWith("killSwitchOwner"))?.message).toBe(
      "the card does not say who owns the kill switch (humanOversight.killSwitchOwner)",
    );
    for (const detail of first.details ?? []) expect(detail.message).toMatch(/\S/);
    expect((await rolloutOf(model)).canary).toBeNull();

    // What Airlock fills: a baseline, a destination for the model's alerts, a data policy.
    await fillAirlockItems(model, ["v2"]);
    const second = await refusal(await putRollout(model, canary));
    expect(second.details?.map((d) => d.path)).toEqual(thinCardMissing("v2"));
    expect(second.message).toContain("11 items are missing");

    // The card, by its author; one section short, then whole.
    const { humanOversight: _, ...almost } = completeModelCard();
    const patch = (modelCard: unknown) =>
      call(`/admin/models/${model}/versions/v2`, { method: "PATCH", body: { modelCard } });
    const patched = await patch(almost);
    expect((await json<{ missingCardSections: string[] }>(patched)).missingCardSections).toEqual([
      "humanOversight.killSwitchOwner",
      "humanOversight.rollbackPlan",
    ]);
    const third = await refusal(await putRollout(model, canary));
    expect(third.details).toEqual([
      {
        path: "versions/v2/modelCard.humanOversight.killSwitchOwner",
        message: "the card does not say who owns the kill switch (humanOversight.killSwitchOwner)",
      },
      {
        path: "versions/v2/modelCard.humanOversight.rollbackPlan",
        message: "the card has no rollback plan (humanOversight.rollbackPlan)",
      },
    ]);
    expect(third.message).toContain("2 items are missing");

    expect((await patch(completeModelCard())).status).toBe(200);
    const applied = await putRollout(model, canary);
    expect(applied.status).toBe(200);
    expect((await json<RolloutJson>(applied)).canary).toEqual({ version: "v2", percent: 5 });
  });

  it("refuses to promote a version with an incomplete card, and a destination for other models does not count", async () => {
    const model = await modelWithThinChallenger(true);
    const other = uniqueName("other");
    await createModel(classificationModel(other));
    const elsewhere = await call("/admin/alert-destinations", {
      method: "POST",
      body: {
        name: "elsewhere",
        kind: "slack",
        url: "http://127.0.0.1:1/hooks/elsewhere",
        models: [other],
      },
    });
    expect(elsewhere.status).toBe(201);
    // A destination for every model that takes no alerts does not count either.
    const approvalsOnly = await call("/admin/alert-destinations", {
      method: "POST",
      body: {
        name: "approvals only",
        kind: "slack",
        url: "http://127.0.0.1:1/hooks/approvals",
        models: [model],
        types: ["approval.*"],
      },
    });
    expect(approvalsOnly.status).toBe(201);

    const promoted = await refusal(await putRollout(model, { champion: "v2" }));
    expect(promoted.code).toBe("MODEL_CARD_INCOMPLETE");
    expect(promoted.details?.map((d) => d.path)).toContain("alertDestinations");
    expect(promoted.details?.map((d) => d.path)).toContain("versions/v2/modelCard.limitations");
    expect((await rolloutOf(model)).champion).toBe("v1");
  });

  it("refuses a revert that would make a version with an incomplete card champion", async () => {
    const model = uniqueName("card");
    await createModel(classificationModel(model));
    await createVersion(model, "v1", { modelCard: completeModelCard() });
    await createVersion(model, "v2", { modelCard: thinCard });
    const withThinChampion = await json<RolloutJson>(await putRollout(model, { champion: "v2" }));
    await setPolicy(model);
    await fillAirlockItems(model, ["v1"]);
    expect((await putRollout(model, { champion: "v1" })).status).toBe(200);

    const revert = await call(`/admin/models/${model}/rollout/revert`, {
      method: "POST",
      body: { stateVersion: withThinChampion.stateVersion },
    });
    const refused = await refusal(revert);
    expect(refused.code).toBe("MODEL_CARD_INCOMPLETE");
    expect(refused.message).toContain("Version 'v2'");
    expect(refused.details?.map((d) => d.path)).toContain("versions/v2/baseline");
    expect((await rolloutOf(model)).champion).toBe("v1");
  });

  it("never holds lowering or removing a canary, a shadow or the kill switch to it", async () => {
    const model = uniqueName("card");
    await createModel(classificationModel(model));
    await createVersion(model, "v1", { modelCard: thinCard });
    await createVersion(model, "v2", { modelCard: thinCard });
    await createVersion(model, "v3", { modelCard: thinCard });
    // Given authority before the model was governed.
    expect(
      (await putRollout(model, { champion: "v1", canary: { version: "v2", percent: 4 } })).status,
    ).toBe(200);
    await setPolicy(model);

    const steps: unknown[] = [
      { champion: "v1", canary: { version: "v2", percent: 2 } },
      { champion: "v1", canary: { version: "v2", percent: 3 } },
      {
        champion: "v1",
        canary: { version: "v2", percent: 3 },
        shadows: [{ version: "v3", sampleRate: 1 }],
      },
      { champion: "v1", shadows: [{ version: "v3", sampleRate: 0.5 }] },
    ];
    for (const step of steps)
      expect((await putRollout(model, step)).status, JSON.stringify(step)).toBe(200);
    const engaged = await call(`/admin/models/${model}/kill-switch`, {
      method: "POST",
      body: { scope: "model", reason: "drill" },
    });
    expect(engaged.status).toBe(200);
    expect((await call(`/admin/models/${model}/kill-switch`, { method: "DELETE" })).status).toBe(
      200,
    );
    // A canary back on the version whose share was taken away is authority again.
    const back = await refusal(
      await putRollout(model, { champion: "v1", canary: { version: "v2", percent: 1 } }),
    );
    expect(back.code).toBe("MODEL_CARD_INCOMPLETE");
  });
});

describe("an ungoverned model", () => {
  it("is not held to the definition of done", async () => {
    const model = await modelWithThinChallenger(false);
    expect(
      (await putRollout(model, { champion: "v1", canary: { version: "v2", percent: 50 } })).status,
    ).toBe(200);
    expect((await putRollout(model, { champion: "v2" })).status).toBe(200);
    expect((await rolloutOf(model)).champion).toBe("v2");
  });
});
