/**
 * The definition of done as a pure function: each item met or missing by
 * what the card says and what Airlock knows, the words of what is missing,
 * the card's own missing sections, and which versions a rollout change
 * gives authority.
 */
import { describe, expect, it } from "vitest";
import demo from "../../scripts/demo/demo-credit-risk.json";
import {
  cardReadiness,
  type KnownFacts,
  missingCardSections,
  READINESS_ITEM_IDS,
  versionsGainingAuthority,
} from "../../shared/governance/card";
import type { RolloutConfig } from "../../shared/rollout/state";
import { ModelCard } from "../../shared/schemas/version";
import { completeModelCard } from "./helpers";

const known: KnownFacts = { baseline: true, destinations: 1, dataPolicy: true, riskTier: "medium" };
const complete = ModelCard.parse(completeModelCard());

const missingIds = (card: ModelCard, facts: KnownFacts = known) =>
  cardReadiness(card, facts).missing.map((item) => item.id);

describe("cardReadiness", () => {
  it("is complete for a complete card on a model Airlock knows everything of", () => {
    const readiness = cardReadiness(complete, known);
    expect(readiness.complete).toBe(true);
    expect(readiness.missing).toEqual([]);
    expect(readiness.items.map((item) => item.id)).toEqual([...READINESS_ITEM_IDS]);
    expect(readiness.items.every((item) => item.met && item.message === undefined)).toBe(true);
  });

  it("lists every item of an empty card and an unknown model, each with its path and words", () => {
    const readiness = cardReadiness(
      {},
      { baseline: false, destinations: 0, dataPolicy: false, riskTier: null },
    );
    expect(readiness.complete).toBe(false);
    expect(readiness.missing.map((item) => item.id)).toEqual([...READINESS_ITEM_IDS]);
    const byId = Object.fromEntries(readiness.items.map((item) => [item.id, item]));
    expect(byId.kill_switch_owner).toEqual({
      id: "kill_switch_owner",
      title: "Kill switch owner",
      filledBy: "card",
      met: false,
      path: "modelCard.humanOversight.killSwitchOwner",
      message: "the card does not say who owns the kill switch (humanOversight.killSwitchOwner)",
    });
    expect(byId.rollback_plan?.path).toBe("modelCard.humanOversight.rollbackPlan");
    expect(byId.baseline).toMatchObject({ filledBy: "airlock", path: "baseline" });
    expect(byId.alert_destinations).toMatchObject({
      filledBy: "airlock",
      path: "alertDestinations",
    });
    expect(byId.data_policy).toMatchObject({ filledBy: "airlock", path: "dataPolicy" });
    expect(byId.risk_tier).toMatchObject({ filledBy: "airlock", path: "governance.tier" });
    for (const item of readiness.items) expect(item.message).toMatch(/\S/);
  });

  it("needs an overall metric and a sliced one, each on its own", () => {
    const overallOnly = { ...complete, evaluationMetrics: [{ name: "auc", value: 0.9 }] };
    expect(missingIds(overallOnly)).toEqual(["evaluation_slices"]);
    const slicedOnly = {
      ...complete,
      evaluationMetrics: [{ name: "auc", value: 0.9, segment: "country=DE" }],
    };
    expect(missingIds(slicedOnly)).toEqual(["offline_evaluation"]);
    const blankSegment = {
      ...complete,
      evaluationMetrics: [{ name: "auc", value: 0.9, segment: " " }],
    };
    expect(missingIds(blankSegment)).toEqual(["evaluation_slices"]);
  });

  it("takes stated sensitive attributes as stated, even with empty lists", () => {
    const stated = {
      ...complete,
      trainingData: { description: "d", sensitiveAttributes: { used: [], excluded: [] } },
    };
    expect(missingIds(stated)).toEqual([]);
    expect(missingIds({ ...complete, trainingData: { description: "d" } })).toEqual([
      "sensitive_attributes",
    ]);
    expect(
      missingIds({
        ...complete,
        trainingData: { rows: 5, sensitiveAttributes: { used: [], excluded: [] } },
      }),
    ).toEqual(["training_data"]);
  });

  it("counts provenance only with a run, a revision or the artefact, not a framework alone", () => {
    expect(missingIds({ ...complete, provenance: { framework: "xgboost" } })).toEqual([
      "provenance",
    ]);
    expect(missingIds({ ...complete, provenance: { artifactUri: "s3://models/fraud/7" } })).toEqual(
      [],
    );
    expect(missingIds({ ...complete, provenance: { trainingRun: "  " } })).toEqual(["provenance"]);
  });

  it("needs a fairness analysis with an attribute and a summary", () => {
    expect(
      missingIds({ ...complete, fairnessAnalysis: { attributes: [], summary: "fine" } }),
    ).toEqual(["fairness_analysis"]);
    expect(
      missingIds({ ...complete, fairnessAnalysis: { attributes: ["region"], summary: " " } }),
    ).toEqual(["fairness_analysis"]);
  });

  it("takes blank text as missing", () => {
    const blank = {
      ...complete,
      intendedUse: " ",
      mitigations: "",
      humanOversight: { killSwitchOwner: "ops", rollbackPlan: "\n" },
    };
    expect(missingIds(blank)).toEqual(["intended_use", "mitigations", "rollback_plan"]);
  });

  it("fills the Airlock items from what it knows, never from the card", () => {
    expect(
      missingIds(complete, {
        baseline: false,
        destinations: 0,
        dataPolicy: false,
        riskTier: "low",
      }),
    ).toEqual(["baseline", "alert_destinations", "data_policy"]);
    expect(missingIds(complete, { ...known, riskTier: null })).toEqual(["risk_tier"]);
  });
});

describe("missingCardSections", () => {
  it("names the card's own missing items by their path in the card, once each", () => {
    expect(missingCardSections({})).toEqual([
      "intendedUse",
      "outOfScopeUse",
      "trainingData",
      "trainingData.sensitiveAttributes",
      "provenance",
      "evaluationMetrics",
      "fairnessAnalysis",
      "limitations",
      "mitigations",
      "humanOversight.killSwitchOwner",
      "humanOversight.rollbackPlan",
    ]);
    expect(missingCardSections(complete)).toEqual([]);
    expect(missingCardSections({ ...complete, limitations: "  " })).toEqual(["limitations"]);
  });
});

describe("the demo model's cards", () => {
  it("are valid and complete", () => {
    expect(demo.versions.length).toBeGreaterThan(1);
    for (const version of demo.versions) {
      const card = ModelCard.parse(version.modelCard);
      expect(missingCardSections(card), version.version).toEqual([]);
    }
  });
});

describe("the model card schema", () => {
  it("keeps a card written before the new sections valid, and refuses unknown keys in them", () => {
    expect(
      ModelCard.safeParse({
        intendedUse: "x",
        trainingData: { rows: 1 },
        ethicalConsiderations: "y",
      }).success,
    ).toBe(true);
    expect(complete).toEqual(completeModelCard());
    const extra = ModelCard.safeParse({
      humanOversight: { killSwitchOwner: "ops", rollbackPlan: "revert", pager: "x" },
    });
    expect(extra.success).toBe(false);
    const noPlan = ModelCard.safeParse({ humanOversight: { killSwitchOwner: "ops" } });
    expect(noPlan.error?.issues[0]?.path).toEqual(["humanOversight", "rollbackPlan"]);
  });
});

describe("versionsGainingAuthority", () => {
  const rollout = (overrides: Partial<RolloutConfig>): RolloutConfig => ({
    champion: "v1",
    shadows: [],
    canary: null,
    ...overrides,
  });
  const canary = (version: string, percent: number) => ({ version, percent, salt: "s" });

  it("names a new champion and a canary given a share it did not have", () => {
    expect(versionsGainingAuthority(rollout({}), rollout({ champion: "v2" }))).toEqual(["v2"]);
    expect(
      versionsGainingAuthority(rollout({ champion: null }), rollout({ champion: "v1" })),
    ).toEqual(["v1"]);
    expect(versionsGainingAuthority(rollout({}), rollout({ canary: canary("v2", 5) }))).toEqual([
      "v2",
    ]);
    expect(
      versionsGainingAuthority(
        rollout({ canary: canary("v2", 0) }),
        rollout({ canary: canary("v2", 10) }),
      ),
    ).toEqual(["v2"]);
    expect(
      versionsGainingAuthority(
        rollout({ canary: canary("v2", 10) }),
        rollout({ canary: canary("v3", 10) }),
      ),
    ).toEqual(["v3"]);
  });

  it("names nothing for lowering, raising a share it had, removing, shadows or no change", () => {
    const was = rollout({ canary: canary("v2", 10) });
    expect(versionsGainingAuthority(was, rollout({ canary: canary("v2", 5) }))).toEqual([]);
    expect(versionsGainingAuthority(was, rollout({ canary: canary("v2", 50) }))).toEqual([]);
    expect(versionsGainingAuthority(was, rollout({}))).toEqual([]);
    expect(versionsGainingAuthority(was, rollout({ canary: canary("v3", 0) }))).toEqual([]);
    expect(versionsGainingAuthority(rollout({}), rollout({ champion: null }))).toEqual([]);
    expect(
      versionsGainingAuthority(
        rollout({}),
        rollout({ shadows: [{ version: "v3", sampleRate: 1 }] }),
      ),
    ).toEqual([]);
    expect(versionsGainingAuthority(was, was)).toEqual([]);
  });

  it("names a version once when it becomes champion and canary in one change", () => {
    expect(
      versionsGainingAuthority(rollout({}), rollout({ champion: "v2", canary: canary("v2", 5) })),
    ).toEqual(["v2"]);
  });
});
