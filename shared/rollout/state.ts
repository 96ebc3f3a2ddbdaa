import { z } from "@hono/zod-openapi";
import type { DataPolicy } from "../privacy/data-policy";
import { VersionLabel } from "../schemas/common";
import type { Fallback, InputSchema, Task } from "../schemas/model";
import { MAX_LEASE_MS, MIN_LEASE_MS } from "./lease";
import { bucketOf, canaryServes, randomBucket } from "./routing";
import type { VersionStatus } from "./status";

export const ShadowTarget = z
  .object({ version: VersionLabel, sampleRate: z.number().min(0).max(1) })
  .strict()
  .openapi("ShadowTarget");
export type ShadowTarget = z.infer<typeof ShadowTarget>;

export const RolloutBody = z
  .object({
    champion: VersionLabel,
    shadows: z.array(ShadowTarget).max(10).default([]),
    canary: z
      .object({ version: VersionLabel, percent: z.number().min(0).max(100) })
      .strict()
      .nullable()
      .default(null),
    leaseMs: z.number().int().min(MIN_LEASE_MS).max(MAX_LEASE_MS).optional().openapi({
      description:
        "How long isolates may use a lease on this state (default 1000 ms). Longer: fewer lease requests, slower acknowledgements.",
    }),
    approvalId: z.string().min(1).max(64).optional().openapi({
      description:
        "An approved request for this change, where the model's governance policy needs one (docs/governance.md); consumed by it.",
    }),
  })
  .strict()
  .superRefine((body, ctx) => {
    const seen = new Map<string, string>([[body.champion, "champion"]]);
    if (body.canary) {
      if (seen.has(body.canary.version)) {
        ctx.addIssue({
          code: "custom",
          path: ["canary", "version"],
          message: "is already the champion",
        });
      }
      seen.set(body.canary.version, "canary");
    }
    for (const [i, shadow] of body.shadows.entries()) {
      const role = seen.get(shadow.version);
      if (role)
        ctx.addIssue({
          code: "custom",
          path: ["shadows", i, "version"],
          message: `is already the ${role}`,
        });
      seen.set(shadow.version, "shadow");
    }
  })
  .openapi("RolloutChange", {
    example: {
      champion: "v1",
      shadows: [{ version: "v2", sampleRate: 1 }],
      canary: { version: "v3", percent: 5 },
    },
  });
export type RolloutBody = z.infer<typeof RolloutBody>;

export const KillScope = z.enum(["challengers", "model"]);
export type KillScope = z.infer<typeof KillScope>;

export const KillSwitchBody = z
  .object({ scope: KillScope, reason: z.string().trim().min(1).max(1000) })
  .strict()
  .openapi("KillSwitchEngage", {
    example: { scope: "model", reason: "Upstream returning garbage since 14:02" },
  });
export type KillSwitchBody = z.infer<typeof KillSwitchBody>;

export interface Canary {
  version: string;
  percent: number;
  /** Drawn when this canary version is first set; kept while it stays. */
  salt: string;
}

export interface RolloutConfig {
  champion: string | null;
  shadows: ShadowTarget[];
  canary: Canary | null;
}

export interface KillSwitch {
  scope: KillScope;
  reason: string;
  actor: string;
  at: string;
}

/** How a live version is called. A builtin model is named by content hash, never carried. */
export type UpstreamRef =
  | {
      kind: "http";
      url: string;
      protocol: "v2" | "json";
      timeoutMs: number;
      idempotent?: boolean | undefined;
      credential?: string | undefined;
      outputMapping?:
        | { label?: string; score?: string; probabilities?: string; value?: string }
        | undefined;
      threshold?: number | undefined;
    }
  | {
      kind: "builtin";
      format: string;
      /** The model file, by content hash; isolates fetch and cache it. */
      artifactSha256: string;
      features?: string[] | undefined;
      classes?: string[] | undefined;
      threshold?: number | undefined;
    };

export interface VersionRef {
  upstream: UpstreamRef;
  upstreamSha256: string;
}

/** What a request needs from the registry without touching Postgres. */
export interface ModelProfile {
  name: string;
  task: Task;
  inputSchema: InputSchema;
  classes: string[] | null;
  positiveClass: string | null;
  fallback: Fallback;
  public: boolean;
  /** SHA-256 hashes of the API keys allowed to call this model. */
  apiKeyHashes: string[];
  /** Expiry of those keys that have one (ISO time), by hash. */
  apiKeyExpiresAt?: Record<string, string>;
  /** What of each request may be stored; absent or null: everything. */
  dataPolicy?: DataPolicy | null;
}

/** The hot-path snapshot a lease carries. */
export interface RolloutSnapshot {
  model: string;
  stateVersion: number;
  leaseMs: number;
  rollout: RolloutConfig;
  killSwitch: KillSwitch | null;
  profile: ModelProfile | null;
  /** Every version the rollout or the fallback names. */
  versions: Record<string, VersionRef>;
}

/** Versions named by the rollout or the fallback: the ones a request may call. */
export function namedVersions(rollout: RolloutConfig, fallback: Fallback | undefined): string[] {
  const names = new Set<string>();
  if (rollout.champion) names.add(rollout.champion);
  if (rollout.canary) names.add(rollout.canary.version);
  for (const shadow of rollout.shadows) names.add(shadow.version);
  if (fallback?.kind === "version") names.add(fallback.version);
  return [...names];
}

/** The rollout in force once the kill switch is applied. */
export function effectiveRollout(
  snapshot: Pick<RolloutSnapshot, "rollout" | "killSwitch">,
): RolloutConfig | "killed" {
  const { rollout, killSwitch } = snapshot;
  if (killSwitch?.scope === "model") return "killed";
  if (killSwitch?.scope === "challengers")
    return { champion: rollout.champion, shadows: [], canary: null };
  return rollout;
}

export type RouteDecision =
  | { kind: "killed" }
  | { kind: "no-champion" }
  | {
      kind: "serve";
      version: string;
      role: "champion" | "canary";
      /** The bucket drawn (null when there is no canary to decide). */
      bucket: number | null;
      shadows: string[];
    };

/**
 * Who serves a request, and which challengers get a copy. One bucket per
 * request: from the key when there is one, else one random draw.
 */
export function decideRoute(
  snapshot: Pick<RolloutSnapshot, "model" | "rollout" | "killSwitch">,
  key: string | undefined,
  random: () => number = Math.random,
): RouteDecision {
  const rollout = effectiveRollout(snapshot);
  if (rollout === "killed") return { kind: "killed" };
  if (!rollout.champion) return { kind: "no-champion" };
  const shadows = rollout.shadows
    .filter((s) => s.sampleRate >= 1 || random() < s.sampleRate)
    .map((s) => s.version);
  if (!rollout.canary)
    return { kind: "serve", version: rollout.champion, role: "champion", bucket: null, shadows };
  const bucket =
    key === undefined ? randomBucket(random) : bucketOf(snapshot.model, rollout.canary.salt, key);
  return canaryServes(bucket, rollout.canary.percent)
    ? { kind: "serve", version: rollout.canary.version, role: "canary", bucket, shadows }
    : { kind: "serve", version: rollout.champion, role: "champion", bucket, shadows };
}

/** The new rollout for a change, keeping the canary's salt while its version stays. */
export function nextRollout(
  current: RolloutConfig,
  body: RolloutBody,
  newSalt: () => string,
): RolloutConfig {
  let canary: Canary | null = null;
  if (body.canary) {
    const salt = current.canary?.version === body.canary.version ? current.canary.salt : newSalt();
    canary = { version: body.canary.version, percent: body.canary.percent, salt };
  }
  return { champion: body.champion, shadows: body.shadows, canary };
}

/**
 * Why a change may not go ahead without `force` (undefined: it may): it would
 * take away the champion while the rollout has one. Without a champion every
 * inference request is refused with 503 NO_SERVING_VERSION, whatever the
 * fallback, so this is never done by accident (a revert to the state before
 * the first champion, say).
 */
export function championRemoval(
  model: string,
  current: RolloutConfig,
  next: RolloutConfig,
  change: string,
): string | undefined {
  if (current.champion === null || next.champion !== null) return undefined;
  return `${change} would leave model '${model}' without a champion: '${current.champion}' serves it now, and every inference request would then be refused with 503 NO_SERVING_VERSION. To do it anyway, send the request again with "force": true; to stop the model on purpose, engage the kill switch instead (it keeps the rollout, and the static fallback answers if the model has one).`;
}

export type KillOutcome =
  | { kind: "changed"; killSwitch: KillSwitch }
  | { kind: "unchanged" }
  | { kind: "narrower" };

/**
 * Engaging `model` widens an engaged `challengers`; engaging the same scope
 * again changes nothing; a narrower scope than the engaged one is refused
 * (release first), so the switch never loosens by accident.
 */
export function engageKill(
  current: KillSwitch | null,
  scope: KillScope,
  reason: string,
  actor: string,
  at: string,
): KillOutcome {
  if (current?.scope === scope) return { kind: "unchanged" };
  if (current?.scope === "model" && scope === "challengers") return { kind: "narrower" };
  return { kind: "changed", killSwitch: { scope, reason, actor, at } };
}

/** The lifecycle status each version should show in the registry. */
export function statusByVersion(
  rollout: RolloutConfig,
  everLive: Iterable<string>,
): Record<string, VersionStatus> {
  const statuses: Record<string, VersionStatus> = {};
  for (const version of everLive) statuses[version] = "retired";
  for (const shadow of rollout.shadows) statuses[shadow.version] = "shadow";
  if (rollout.canary) statuses[rollout.canary.version] = "canary";
  if (rollout.champion) statuses[rollout.champion] = "champion";
  return statuses;
}
