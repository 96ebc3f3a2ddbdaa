/**
 * Governance policy: which changes give a model more authority, and whose
 * approval each needs, by the model's risk tier. Pure: the routes store a
 * policy per model and ask `approvalsNeeded` what a change requires.
 *
 * Taking authority away never needs an approval: engaging a kill switch,
 * lowering or removing a canary, removing a shadow or lowering its rate.
 * Changing a policy is done by a risk officer (a permission); a policy may
 * also ask approvals for it (`policy.change`), as the high tier does of the
 * review board. So with a model's data policy: keeping more of the model's
 * data (`data_policy.change`) may need approvals, keeping less never does.
 */
import {
  type DataPolicy,
  dataPolicyFingerprint,
  dataPolicyLoosening,
} from "../privacy/data-policy";
import type { KillSwitch, RolloutConfig } from "../rollout/state";

export const RISK_TIERS = ["low", "medium", "high"] as const;
export type RiskTier = (typeof RISK_TIERS)[number];

/** The changes a policy governs; later features add theirs. */
export const GOVERNED_ACTIONS = {
  "champion.change": "Promote a version to champion, or take the champion away",
  "canary.raise": "Set a canary above the free share, or raise its share",
  "shadow.add": "Add a shadow, or raise its sample rate, above the free rate",
  "killswitch.release": "Release a kill switch",
  "version.retire": "Retire a version",
  "policy.change": "Change the governance policy itself",
  "data_policy.change":
    "Keep more of the model's data: store what was hashed or dropped, or keep it longer",
  "plan.advance":
    "Let a rollout plan take a step its gates passed that gives more authority than the free bounds (a canary above the free share, the champion)",
  "plan.override": "Advance or skip a rollout plan's phase by hand, whatever its gates say",
} as const;
export type GovernedAction = keyof typeof GOVERNED_ACTIONS;
export const GOVERNED_ACTION_NAMES = Object.keys(GOVERNED_ACTIONS) as GovernedAction[];

/** Who can approve: a global role, or the model's owner. */
export const APPROVER_ROLES = ["owner", "risk_officer", "review_board", "admin"] as const;
export type ApproverRole = (typeof APPROVER_ROLES)[number];

export interface GovernancePolicy {
  tier: RiskTier;
  /** A canary at or below this share (percent) needs no approval. */
  freeCanaryPercent: number;
  /** A shadow at or below this sample rate needs no approval. */
  freeShadowSampleRate: number;
  /** Per action, the roles whose approval it needs: one distinct person per entry. */
  approvals: Record<GovernedAction, ApproverRole[]>;
}

/** The defaults of each tier; a policy may change any of them. */
export function tierDefaults(tier: RiskTier): GovernancePolicy {
  const ownerAndRisk: ApproverRole[] = ["owner", "risk_officer"];
  switch (tier) {
    case "low":
      return {
        tier,
        freeCanaryPercent: 5,
        freeShadowSampleRate: 1,
        approvals: {
          "champion.change": ["owner"],
          "canary.raise": ["owner"],
          "shadow.add": [],
          "killswitch.release": [],
          "version.retire": ["owner"],
          "policy.change": [],
          "data_policy.change": [],
          "plan.advance": ["owner"],
          "plan.override": ["owner"],
        },
      };
    case "medium":
      return {
        tier,
        freeCanaryPercent: 5,
        freeShadowSampleRate: 0.1,
        approvals: {
          "champion.change": ownerAndRisk,
          "canary.raise": ownerAndRisk,
          "shadow.add": ["owner"],
          "killswitch.release": ownerAndRisk,
          "version.retire": ["owner"],
          "policy.change": [],
          // The owner wants the data; a risk officer answers for keeping it.
          "data_policy.change": ["risk_officer"],
          "plan.advance": ownerAndRisk,
          "plan.override": ownerAndRisk,
        },
      };
    case "high":
      return {
        tier,
        freeCanaryPercent: 1,
        freeShadowSampleRate: 0.1,
        approvals: {
          "champion.change": [...ownerAndRisk, "review_board"],
          "canary.raise": ownerAndRisk,
          "shadow.add": ownerAndRisk,
          "killswitch.release": ownerAndRisk,
          "version.retire": ownerAndRisk,
          "policy.change": ["review_board"],
          "data_policy.change": ["risk_officer", "review_board"],
          "plan.advance": [...ownerAndRisk, "review_board"],
          "plan.override": [...ownerAndRisk, "review_board"],
        },
      };
  }
}

/** A change that needs approvals: what it is, exactly, and whose. */
export interface NeededApproval {
  action: GovernedAction;
  /** The exact target an approval must name (versions, percent, rate). */
  target: Record<string, string | number | null>;
  roles: ApproverRole[];
  /** In words, for the 403 and the approval request. */
  reason: string;
}

export interface RolloutState {
  rollout: RolloutConfig;
  killSwitch: KillSwitch | null;
}

/**
 * What moving from `before` to `after` needs approved under `policy`:
 * only the changes that give authority; an empty list when none do.
 */
export function approvalsNeeded(
  policy: GovernancePolicy,
  before: RolloutState,
  after: RolloutState,
): NeededApproval[] {
  const needed: NeededApproval[] = [];
  const add = (action: GovernedAction, target: NeededApproval["target"], reason: string) => {
    const roles = policy.approvals[action];
    if (roles.length > 0) needed.push({ action, target, roles: [...roles], reason });
  };
  const was = before.rollout;
  const now = after.rollout;
  if (was.champion !== now.champion) {
    add(
      "champion.change",
      { from: was.champion, to: now.champion },
      now.champion === null
        ? `takes the champion ${was.champion} away`
        : `makes ${now.champion} the champion${was.champion ? ` instead of ${was.champion}` : ""}`,
    );
  }
  if (now.canary) {
    const previous = was.canary?.version === now.canary.version ? was.canary.percent : 0;
    if (now.canary.percent > previous && now.canary.percent > policy.freeCanaryPercent) {
      add(
        "canary.raise",
        { version: now.canary.version, percent: now.canary.percent },
        `sends ${now.canary.percent}% of traffic to the canary ${now.canary.version}` +
          ` (above the ${policy.freeCanaryPercent}% that needs no approval)`,
      );
    }
  }
  for (const shadow of now.shadows) {
    const previous = was.shadows.find((s) => s.version === shadow.version)?.sampleRate ?? 0;
    if (shadow.sampleRate > previous && shadow.sampleRate > policy.freeShadowSampleRate) {
      add(
        "shadow.add",
        { version: shadow.version, sampleRate: shadow.sampleRate },
        `copies ${shadow.sampleRate * 100}% of traffic to the shadow ${shadow.version}` +
          ` (above the ${policy.freeShadowSampleRate * 100}% that needs no approval)`,
      );
    }
  }
  if (before.killSwitch && !after.killSwitch) {
    add(
      "killswitch.release",
      { scope: before.killSwitch.scope },
      `releases the kill switch (${before.killSwitch.scope})`,
    );
  }
  return needed;
}

/**
 * A fingerprint of what an approval saw: champion, canary, shadows and kill
 * switch, not `stateVersion` (which registry syncs also move). An approval
 * is consumed only while the rollout still has this fingerprint.
 */
export function rolloutFingerprint(state: RolloutState): string {
  const { rollout, killSwitch } = state;
  return JSON.stringify({
    champion: rollout.champion,
    canary: rollout.canary
      ? { version: rollout.canary.version, percent: rollout.canary.percent }
      : null,
    shadows: [...rollout.shadows]
      .map((s) => ({ version: s.version, sampleRate: s.sampleRate }))
      .sort((a, b) => a.version.localeCompare(b.version)),
    killSwitch: killSwitch?.scope ?? null,
  });
}

const TIER_RANK: Record<RiskTier, number> = { low: 0, medium: 1, high: 2 };

/** A policy as one text, the same for the same policy whatever the order of its keys and roles. */
export function policyFingerprint(policy: GovernancePolicy): string {
  return JSON.stringify({
    tier: policy.tier,
    freeCanaryPercent: policy.freeCanaryPercent,
    freeShadowSampleRate: policy.freeShadowSampleRate,
    approvals: Object.fromEntries(
      GOVERNED_ACTION_NAMES.map((action) => [action, [...(policy.approvals[action] ?? [])].sort()]),
    ),
  });
}

/**
 * How a new policy gives the model more room than the one in force, in
 * words: a lower tier, larger free bounds, or a role no longer asked for.
 * Empty when it only tightens (or when there was no policy): tightening
 * never waits.
 */
export function policyLoosening(
  before: GovernancePolicy | null,
  after: GovernancePolicy,
): string[] {
  if (!before) return [];
  const found: string[] = [];
  if (TIER_RANK[after.tier] < TIER_RANK[before.tier])
    found.push(`lowers the tier from ${before.tier} to ${after.tier}`);
  if (after.freeCanaryPercent > before.freeCanaryPercent)
    found.push(
      `raises the free canary share from ${before.freeCanaryPercent}% to ${after.freeCanaryPercent}%`,
    );
  if (after.freeShadowSampleRate > before.freeShadowSampleRate)
    found.push(
      `raises the free shadow sample rate from ${before.freeShadowSampleRate} to ${after.freeShadowSampleRate}`,
    );
  for (const action of GOVERNED_ACTION_NAMES) {
    const left = [...(after.approvals[action] ?? [])];
    for (const role of before.approvals[action] ?? []) {
      const at = left.indexOf(role);
      if (at >= 0) left.splice(at, 1);
      else found.push(`${action} no longer needs the approval of a ${role}`);
    }
  }
  return found;
}

/**
 * A stored policy as it is in force: an action added to Airlock after the
 * policy was set (it names no roles for it) takes its tier's default, so a
 * new action is governed from the day it exists, not from the day a risk
 * officer next sets the policy.
 */
export function policyInForce<P extends GovernancePolicy>(stored: P): P {
  const defaults = tierDefaults(stored.tier).approvals;
  const approvals = { ...stored.approvals };
  for (const action of GOVERNED_ACTION_NAMES)
    if (approvals[action] === undefined) approvals[action] = defaults[action];
  return { ...stored, approvals };
}

/** A policy from a tier and the defaults it changes. */
export function resolvePolicy(body: {
  tier: RiskTier;
  freeCanaryPercent?: number;
  freeShadowSampleRate?: number;
  approvals?: Partial<Record<GovernedAction, ApproverRole[]>>;
}): GovernancePolicy {
  const defaults = tierDefaults(body.tier);
  const approvals = { ...defaults.approvals };
  for (const action of GOVERNED_ACTION_NAMES) {
    const roles = body.approvals?.[action];
    if (roles) approvals[action] = roles;
  }
  return {
    tier: body.tier,
    freeCanaryPercent: body.freeCanaryPercent ?? defaults.freeCanaryPercent,
    freeShadowSampleRate: body.freeShadowSampleRate ?? defaults.freeShadowSampleRate,
    approvals,
  };
}

/**
 * What a change of policy needs under the policy in force: nothing when it
 * only tightens or `policy.change` names no roles; otherwise one approval,
 * bound to the exact new policy.
 */
export function policyChangeNeeds(
  before: GovernancePolicy | null,
  after: GovernancePolicy,
): NeededApproval | null {
  const roles = before?.approvals["policy.change"] ?? [];
  const loosening = policyLoosening(before, after);
  if (roles.length === 0 || loosening.length === 0) return null;
  return {
    action: "policy.change",
    target: { tier: after.tier, policy: policyFingerprint(after) },
    roles: [...roles],
    reason: `changes the governance policy: it ${loosening.join("; ")}`,
  };
}

/** What retiring a version for good needs under a policy (null: nothing). */
export function versionRetireNeeds(
  policy: GovernancePolicy | null,
  version: string,
): NeededApproval | null {
  const roles = policy?.approvals["version.retire"] ?? [];
  if (roles.length === 0) return null;
  return {
    action: "version.retire",
    target: { version },
    roles: [...roles],
    reason: `retires the version ${version} for good`,
  };
}

/**
 * What a change of a model's data policy needs under its governance policy:
 * nothing when it only takes data away or `data_policy.change` names no
 * roles; otherwise one approval, bound to the exact new data policy.
 */
export function dataPolicyChangeNeeds(
  governance: GovernancePolicy | null,
  before: DataPolicy | null,
  after: DataPolicy,
): NeededApproval | null {
  const roles = governance?.approvals["data_policy.change"] ?? [];
  const loosening = dataPolicyLoosening(before, after);
  if (roles.length === 0 || loosening.length === 0) return null;
  return {
    action: "data_policy.change",
    target: { policy: dataPolicyFingerprint(after) },
    roles: [...roles],
    reason: `keeps more of the model's data: it ${loosening.join("; ")}`,
  };
}
