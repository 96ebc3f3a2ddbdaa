/**
 * What a rollout change needs approved, by tier: only changes that give a
 * model authority, with their exact targets; and the fingerprint an
 * approval is bound to.
 */
import { describe, expect, it } from "vitest";
import {
  approvalsNeeded,
  dataPolicyChangeNeeds,
  type GovernancePolicy,
  policyChangeNeeds,
  policyFingerprint,
  policyLoosening,
  RISK_TIERS,
  type RolloutState,
  resolvePolicy,
  rolloutFingerprint,
  tierDefaults,
} from "../../shared/governance/policy";
import {
  type DataPolicy,
  dataPolicyFingerprint,
  dataPolicyLoosening,
} from "../../shared/privacy/data-policy";

const state = (rollout: Partial<RolloutState["rollout"]>, killed = false): RolloutState => ({
  rollout: { champion: null, shadows: [], canary: null, ...rollout },
  killSwitch: killed
    ? { scope: "model", reason: "r", actor: "a", at: "2026-12-07T00:00:00Z" }
    : null,
});
const canary = (version: string, percent: number) => ({ version, percent, salt: "s" });

describe("approvalsNeeded", () => {
  const low = tierDefaults("low");
  const medium = tierDefaults("medium");
  const high = tierDefaults("high");
  const base = state({ champion: "v1" });

  it("asks nothing for a canary up to the free share, and owner and risk officer above it (medium)", () => {
    expect(
      approvalsNeeded(medium, base, state({ champion: "v1", canary: canary("v2", 5) })),
    ).toEqual([]);
    expect(
      approvalsNeeded(medium, base, state({ champion: "v1", canary: canary("v2", 25) })),
    ).toEqual([
      {
        action: "canary.raise",
        target: { version: "v2", percent: 25 },
        roles: ["owner", "risk_officer"],
        reason: "sends 25% of traffic to the canary v2 (above the 5% that needs no approval)",
      },
    ]);
  });

  it("asks nothing to lower or remove a canary, a shadow, or to engage a kill switch", () => {
    const full = state({
      champion: "v1",
      canary: canary("v2", 50),
      shadows: [{ version: "v3", sampleRate: 1 }],
    });
    for (const policy of [low, medium, high]) {
      expect(
        approvalsNeeded(policy, full, state({ champion: "v1", canary: canary("v2", 10) })),
      ).toEqual([]);
      expect(approvalsNeeded(policy, full, state({ champion: "v1" }))).toEqual([]);
      expect(
        approvalsNeeded(policy, full, { ...full, killSwitch: state({}, true).killSwitch }),
      ).toEqual([]);
    }
  });

  it("asks for a champion change by tier, the review board too on high", () => {
    const promote = state({ champion: "v2" });
    expect(approvalsNeeded(low, base, promote).map((n) => n.roles)).toEqual([["owner"]]);
    expect(approvalsNeeded(medium, base, promote).map((n) => n.roles)).toEqual([
      ["owner", "risk_officer"],
    ]);
    expect(approvalsNeeded(high, base, promote)).toMatchObject([
      {
        action: "champion.change",
        target: { from: "v1", to: "v2" },
        roles: ["owner", "risk_officer", "review_board"],
      },
    ]);
    expect(approvalsNeeded(high, base, state({}))[0]?.reason).toBe("takes the champion v1 away");
  });

  it("asks for a new canary version's whole share, not the rise over the old one's", () => {
    const before = state({ champion: "v1", canary: canary("v2", 20) });
    expect(
      approvalsNeeded(medium, before, state({ champion: "v1", canary: canary("v3", 10) })),
    ).toMatchObject([{ action: "canary.raise", target: { version: "v3", percent: 10 } }]);
    expect(
      approvalsNeeded(medium, before, state({ champion: "v1", canary: canary("v2", 30) })),
    ).toMatchObject([{ action: "canary.raise", target: { version: "v2", percent: 30 } }]);
  });

  it("asks for shadows above the free rate, and for releasing a kill switch from medium up", () => {
    const shadow = state({ champion: "v1", shadows: [{ version: "v2", sampleRate: 0.5 }] });
    expect(approvalsNeeded(low, base, shadow)).toEqual([]);
    expect(approvalsNeeded(medium, base, shadow)).toMatchObject([
      { action: "shadow.add", target: { version: "v2", sampleRate: 0.5 }, roles: ["owner"] },
    ]);
    const killed = state({ champion: "v1" }, true);
    expect(approvalsNeeded(low, killed, base)).toEqual([]);
    expect(approvalsNeeded(medium, killed, base)).toMatchObject([
      { action: "killswitch.release", roles: ["owner", "risk_officer"] },
    ]);
  });

  it("follows a policy's own changes to its tier's defaults", () => {
    const custom: GovernancePolicy = {
      ...medium,
      freeCanaryPercent: 30,
      approvals: { ...medium.approvals, "champion.change": [] },
    };
    expect(
      approvalsNeeded(custom, base, state({ champion: "v2", canary: canary("v3", 25) })),
    ).toEqual([]);
  });

  it("has defaults for every tier and every action", () => {
    for (const tier of RISK_TIERS) {
      const policy = tierDefaults(tier);
      expect(policy.tier).toBe(tier);
      expect(Object.keys(policy.approvals).sort()).toEqual(
        [
          "canary.raise",
          "champion.change",
          "data_policy.change",
          "killswitch.release",
          "plan.advance",
          "plan.override",
          "policy.change",
          "shadow.add",
          "version.retire",
        ].sort(),
      );
    }
  });
});

describe("rolloutFingerprint", () => {
  it("changes with champion, canary share, shadows and kill switch, not with salts or order", () => {
    const a = state({
      champion: "v1",
      canary: canary("v2", 10),
      shadows: [
        { version: "v3", sampleRate: 1 },
        { version: "v4", sampleRate: 0.5 },
      ],
    });
    const reordered = state({
      champion: "v1",
      canary: { version: "v2", percent: 10, salt: "other" },
      shadows: [
        { version: "v4", sampleRate: 0.5 },
        { version: "v3", sampleRate: 1 },
      ],
    });
    expect(rolloutFingerprint(reordered)).toBe(rolloutFingerprint(a));
    for (const changed of [
      state({ ...a.rollout, champion: "v2" }),
      state({ ...a.rollout, canary: canary("v2", 11) }),
      state({ ...a.rollout, shadows: [{ version: "v3", sampleRate: 1 }] }),
      state(a.rollout, true),
    ])
      expect(rolloutFingerprint(changed)).not.toBe(rolloutFingerprint(a));
  });
});

describe("policy changes", () => {
  const high = tierDefaults("high");
  it("loosen when the tier falls, a free bound rises, or a role is no longer asked for", () => {
    expect(policyLoosening(high, tierDefaults("medium"))).toContain(
      "lowers the tier from high to medium",
    );
    expect(policyLoosening(high, { ...high, freeCanaryPercent: 2 })).toEqual([
      "raises the free canary share from 1% to 2%",
    ]);
    expect(
      policyLoosening(high, {
        ...high,
        approvals: { ...high.approvals, "champion.change": ["owner", "risk_officer"] },
      }),
    ).toEqual(["champion.change no longer needs the approval of a review_board"]);
    // Tightening, or a first policy, loosens nothing.
    expect(policyLoosening(tierDefaults("low"), high)).toEqual([]);
    expect(policyLoosening(null, tierDefaults("low"))).toEqual([]);
  });

  it("need approval only where the policy in force asks for it, bound to the exact new policy", () => {
    expect(policyChangeNeeds(tierDefaults("medium"), tierDefaults("low"))).toBeNull();
    const need = policyChangeNeeds(high, tierDefaults("low"));
    expect(need).toMatchObject({
      action: "policy.change",
      roles: ["review_board"],
      target: { tier: "low", policy: policyFingerprint(tierDefaults("low")) },
    });
    expect(policyChangeNeeds(high, { ...high, freeCanaryPercent: 0.5 })).toBeNull();
  });

  it("fingerprint a policy whatever the order of its keys and roles", () => {
    const reordered = resolvePolicy({
      tier: "high",
      approvals: { "champion.change": ["review_board", "risk_officer", "owner"] },
    });
    expect(policyFingerprint(reordered)).toBe(policyFingerprint(high));
    expect(policyFingerprint({ ...high, freeCanaryPercent: 2 })).not.toBe(policyFingerprint(high));
  });
});

describe("data policy changes", () => {
  const strict: DataPolicy = {
    fields: { income: "drop", zip: "hash" },
    attributes: { email: "hash" },
    retentionDays: 30,
  };
  it("keep more when a treatment weakens or the retention grows", () => {
    expect(
      dataPolicyLoosening(strict, {
        fields: { income: "hash" },
        attributes: { email: "drop" },
        retentionDays: 30,
      }),
    ).toEqual([
      "hashes the field income, dropped until now",
      "stores the field zip, hashed until now",
    ]);
    expect(dataPolicyLoosening(strict, { ...strict, retentionDays: 31 })).toEqual([
      "keeps the model's rows 31 days instead of 30",
    ]);
    const { retentionDays: _, ...forever } = strict;
    expect(dataPolicyLoosening(strict, forever)).toEqual([
      "keeps the model's rows as long as each table does, instead of 30 days",
    ]);
    // Taking data away, or a first policy, keeps no more.
    expect(
      dataPolicyLoosening(strict, {
        fields: { income: "drop", zip: "drop", age: "hash" },
        attributes: { email: "drop" },
        retentionDays: 7,
      }),
    ).toEqual([]);
    expect(dataPolicyLoosening(null, { fields: {}, attributes: {} })).toEqual([]);
  });

  it("need the approvals the tier names, bound to the exact new policy", () => {
    const looser: DataPolicy = { ...strict, retentionDays: 60 };
    expect(dataPolicyChangeNeeds(tierDefaults("low"), strict, looser)).toBeNull();
    expect(dataPolicyChangeNeeds(null, strict, looser)).toBeNull();
    expect(dataPolicyChangeNeeds(tierDefaults("high"), strict, looser)).toEqual({
      action: "data_policy.change",
      target: { policy: dataPolicyFingerprint(looser) },
      roles: ["risk_officer", "review_board"],
      reason: "keeps more of the model's data: it keeps the model's rows 60 days instead of 30",
    });
    expect(
      dataPolicyChangeNeeds(tierDefaults("medium"), strict, { ...strict, retentionDays: 10 }),
    ).toBeNull();
  });

  it("fingerprint a data policy whatever its order and its explicit store entries", () => {
    expect(
      dataPolicyFingerprint({
        retentionDays: 30,
        attributes: { email: "hash", region: "store" },
        fields: { zip: "hash", income: "drop" },
      }),
    ).toBe(dataPolicyFingerprint(strict));
    expect(dataPolicyFingerprint({ ...strict, retentionDays: 31 })).not.toBe(
      dataPolicyFingerprint(strict),
    );
    expect(dataPolicyFingerprint(null)).toBe(dataPolicyFingerprint({ fields: {}, attributes: {} }));
  });
});
