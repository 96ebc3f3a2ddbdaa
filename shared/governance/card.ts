/**
 * The definition of done a version meets before it gets authority on a
 * governed model (a canary share, or the champion's place): a complete
 * model card, and what Airlock itself knows of the model (a baseline to
 * measure drift from, a destination for its alerts, a data policy, a risk
 * tier). Pure: the routes gather what Airlock knows and ask
 * `cardReadiness`; `versionsGainingAuthority` says which versions a
 * rollout change must hold to it.
 */
import type { RolloutConfig } from "../rollout/state";
import type { ModelCard } from "../schemas/version";
import type { RiskTier } from "./policy";

export const READINESS_ITEM_IDS = [
  "intended_use",
  "out_of_scope_use",
  "training_data",
  "sensitive_attributes",
  "provenance",
  "offline_evaluation",
  "evaluation_slices",
  "fairness_analysis",
  "limitations",
  "mitigations",
  "kill_switch_owner",
  "rollback_plan",
  "baseline",
  "alert_destinations",
  "data_policy",
  "risk_tier",
] as const;
export type ReadinessItemId = (typeof READINESS_ITEM_IDS)[number];

export interface ReadinessItem {
  id: ReadinessItemId;
  /** In a few words, for lists and the checklist. */
  title: string;
  /** Who provides it: the card's author, or Airlock from what it holds. */
  filledBy: "card" | "airlock";
  met: boolean;
  /** What it concerns: a path in the version (`modelCard.…`, `baseline`) or in the model. */
  path: string;
  /** What is missing, in plain words; only when not met. */
  message?: string;
}

/** What Airlock knows of the model and version, beside the card. */
export interface KnownFacts {
  /** Whether the version has a monitoring baseline. */
  baseline: boolean;
  /** How many destinations would receive the model's firing alerts. */
  destinations: number;
  /** Whether the model has a data policy. */
  dataPolicy: boolean;
  /** The risk tier of the model's governance policy (null: no policy). */
  riskTier: RiskTier | null;
}

export interface CardReadiness {
  complete: boolean;
  items: ReadinessItem[];
  missing: ReadinessItem[];
}

const written = (text: string | undefined): boolean => (text ?? "").trim() !== "";

function item(
  id: ReadinessItemId,
  title: string,
  filledBy: ReadinessItem["filledBy"],
  path: string,
  met: boolean,
  message: string,
): ReadinessItem {
  return met ? { id, title, filledBy, met, path } : { id, title, filledBy, met, path, message };
}

/** The card's own items: what its author writes. */
export function cardItems(card: ModelCard): ReadinessItem[] {
  const training = card.trainingData;
  const provenance = card.provenance ?? {};
  const metrics = card.evaluationMetrics ?? [];
  const fairness = card.fairnessAnalysis;
  const oversight = card.humanOversight;
  const ofCard = (id: ReadinessItemId, title: string, path: string, met: boolean, words: string) =>
    item(id, title, "card", `modelCard.${path}`, met, `the card ${words} (${path})`);
  return [
    ofCard(
      "intended_use",
      "Intended use",
      "intendedUse",
      written(card.intendedUse),
      "does not say what the model is for",
    ),
    ofCard(
      "out_of_scope_use",
      "Out-of-scope uses",
      "outOfScopeUse",
      written(card.outOfScopeUse),
      "does not say what the model must not be used for",
    ),
    ofCard(
      "training_data",
      "Training data",
      "trainingData",
      written(training?.description) || written(training?.source),
      "does not describe the training data or name its source",
    ),
    ofCard(
      "sensitive_attributes",
      "Sensitive attributes used or excluded",
      "trainingData.sensitiveAttributes",
      training?.sensitiveAttributes !== undefined,
      "does not say which sensitive attributes the model uses and which were excluded",
    ),
    ofCard(
      "provenance",
      "Provenance",
      "provenance",
      [
        provenance.trainingRun,
        provenance.codeRevision,
        provenance.artifactUri,
        provenance.artifactSha256,
      ].some(written),
      "does not say where the model came from: a training run, a code revision or the artefact",
    ),
    ofCard(
      "offline_evaluation",
      "Offline evaluation",
      "evaluationMetrics",
      metrics.some((metric) => !written(metric.segment)),
      "has no overall offline evaluation metric (one without a segment)",
    ),
    ofCard(
      "evaluation_slices",
      "Evaluation by slice",
      "evaluationMetrics",
      metrics.some((metric) => written(metric.segment)),
      "has no evaluation metric for a slice of the data (one with a segment)",
    ),
    ofCard(
      "fairness_analysis",
      "Fairness analysis",
      "fairnessAnalysis",
      (fairness?.attributes.length ?? 0) > 0 && written(fairness?.summary),
      "has no fairness analysis: the attributes analysed and a summary of what was found",
    ),
    ofCard(
      "limitations",
      "Limitations",
      "limitations",
      written(card.limitations),
      "does not state the model's limitations",
    ),
    ofCard(
      "mitigations",
      "Mitigations",
      "mitigations",
      written(card.mitigations),
      "does not say how the limitations are mitigated",
    ),
    ofCard(
      "kill_switch_owner",
      "Kill switch owner",
      "humanOversight.killSwitchOwner",
      written(oversight?.killSwitchOwner),
      "does not say who owns the kill switch",
    ),
    ofCard(
      "rollback_plan",
      "Rollback plan",
      "humanOversight.rollbackPlan",
      written(oversight?.rollbackPlan),
      "has no rollback plan",
    ),
  ];
}

/** The items Airlock fills from what it holds: never typed into the card. */
export function airlockItems(known: KnownFacts): ReadinessItem[] {
  return [
    item(
      "baseline",
      "Monitoring baseline",
      "airlock",
      "baseline",
      known.baseline,
      "the version has no monitoring baseline to measure drift from (POST …/versions/{version}/baseline)",
    ),
    item(
      "alert_destinations",
      "Alert destinations",
      "airlock",
      "alertDestinations",
      known.destinations > 0,
      "no alert destination takes this model's alerts (POST /admin/alert-destinations)",
    ),
    item(
      "data_policy",
      "Data policy",
      "airlock",
      "dataPolicy",
      known.dataPolicy,
      "the model has no data policy saying what of its requests is stored (PUT …/data-policy)",
    ),
    item(
      "risk_tier",
      "Risk tier",
      "airlock",
      "governance.tier",
      known.riskTier !== null,
      "the model has no governance policy, so no risk tier (PUT …/governance)",
    ),
  ];
}

/** Every item of the definition of done, whether it is met, and what is missing. */
export function cardReadiness(card: ModelCard, known: KnownFacts): CardReadiness {
  const items = [...cardItems(card), ...airlockItems(known)];
  const missing = items.filter((entry) => !entry.met);
  return { complete: missing.length === 0, items, missing };
}

/**
 * What the card's author still has to write, as paths in the card; one
 * path once even when two items concern it (overall and sliced metrics).
 */
export function missingCardSections(card: ModelCard): string[] {
  const paths = cardItems(card)
    .filter((entry) => !entry.met)
    .map((entry) => entry.path.slice("modelCard.".length));
  return [...new Set(paths)];
}

/**
 * The versions a change from `before` to `after` gives authority they do
 * not have now: a new champion, and a canary that had no share (a new
 * canary version, or one raised from none). Lowering or removing a canary,
 * taking the champion away and shadows give none.
 */
export function versionsGainingAuthority(before: RolloutConfig, after: RolloutConfig): string[] {
  const gaining: string[] = [];
  if (after.champion !== null && after.champion !== before.champion) gaining.push(after.champion);
  const canary = after.canary;
  if (canary && canary.percent > 0) {
    const had = before.canary?.version === canary.version ? before.canary.percent : 0;
    if (had === 0 && !gaining.includes(canary.version)) gaining.push(canary.version);
  }
  return gaining;
}
