import type {
  Catalogue,
  ChangeContext,
  ModelRollout,
  RolloutAtState,
  RolloutChangeResult,
  RolloutView,
} from "../../durable-objects/model-rollout";
import { ApiError } from "../../shared/errors";
import { ExpiringNames, LruMap } from "../../shared/lru";
import type { PlanState } from "../../shared/plans/state";
import {
  type HeldLease,
  type LeaseGrant,
  LeaseKeeper,
  MIN_LEASE_MS,
} from "../../shared/rollout/lease";
import type {
  KillSwitchBody,
  RolloutBody,
  RolloutConfig,
  RolloutSnapshot,
} from "../../shared/rollout/state";

/** Models whose lease keepers an isolate holds; forgetting one costs one lease fetch. */
export const MAX_KEEPERS = 1_000;
/** Unknown model names an isolate remembers. */
export const MAX_UNKNOWN_MODELS = 10_000;

/**
 * One lease keeper per model, per isolate: requests read rollout state from
 * the held lease and only cross to the model's object to renew it. Only
 * models that are set up take a place, the least recently used forgotten
 * first, so names nobody registered never crowd out the ones in use.
 */
const keepers = new LruMap<string, LeaseKeeper<RolloutSnapshot>>(MAX_KEEPERS);

/**
 * Names the registry did not know, so a client repeating one costs neither
 * the object nor Postgres. An entry lives at most the minimum lease, and never
 * past the lease it was read under: any change to the name's rollout state
 * (its set-up included) is acknowledged only after that lease has run out,
 * so the rollout promise holds, and a model created a moment ago is found
 * within MIN_LEASE_MS.
 */
const unknownModels = new ExpiringNames(MAX_UNKNOWN_MODELS);

/** How long a name found unknown at `now`, under `lease`, may be remembered as unknown. */
export function unknownUntil(now: number, lease: HeldLease<RolloutSnapshot>): number {
  return Math.min(now + MIN_LEASE_MS, lease.validUntil);
}

/** Remembers that the registry has no model of this name (see `unknownModels`). */
export function rememberUnknown(model: string, now: number, lease: HeldLease<RolloutSnapshot>) {
  unknownModels.add(model, unknownUntil(now, lease), now);
}

/** Did the registry say, recently enough, that there is no model of this name? */
export function knownUnknown(model: string, now: number): boolean {
  return unknownModels.has(model, now);
}

/** Does this isolate hold a lease for the model that a request starting now may use? */
export function holdsLease(model: string, now: number): boolean {
  return keepers.peek(model)?.held?.isValid(now) ?? false;
}

/** What the isolate remembers, for tests and diagnostics. */
export function leaseMemory(): { keepers: number; unknownModels: number } {
  return { keepers: keepers.size, unknownModels: unknownModels.size };
}

/** The model's rollout object, with the RPC methods typed as the object declares them. */
export interface RolloutClient {
  lease(): Promise<LeaseGrant<RolloutSnapshot>>;
  read(historyLimit?: number): Promise<RolloutView>;
  configure(catalogue: Catalogue, context: ChangeContext): Promise<RolloutChangeResult>;
  setRollout(
    body: RolloutBody,
    catalogue: Catalogue,
    context: ChangeContext,
  ): Promise<RolloutChangeResult>;
  revert(
    stateVersion: number,
    catalogue: Catalogue,
    context: ChangeContext,
  ): Promise<RolloutChangeResult>;
  engageKillSwitch(body: KillSwitchBody, context: ChangeContext): Promise<RolloutChangeResult>;
  releaseKillSwitch(context: ChangeContext): Promise<RolloutChangeResult>;
  rolloutAt(stateVersion: number): Promise<RolloutConfig | null>;
  stateAt(stateVersion: number): Promise<RolloutAtState | null>;
  plan(): Promise<PlanState | null>;
  startPlan(
    plan: PlanState,
    catalogue: Catalogue,
    context: ChangeContext,
  ): Promise<RolloutChangeResult>;
  stepPlan(
    request: Parameters<ModelRollout["stepPlan"]>[1],
    catalogue: Catalogue,
    context: ChangeContext,
  ): Promise<RolloutChangeResult>;
  changePlan(
    planId: string,
    change: "pause" | "resume" | "abort",
    reason: string,
    catalogue: Catalogue,
    context: ChangeContext,
  ): Promise<RolloutChangeResult>;
}

export function rolloutObject(env: Env, model: string): RolloutClient {
  // The generated stub types turn each union result into a union of promises;
  // the values are exactly the object's return values. The stub is resolved
  // per call, so a failure to reach the object surfaces where it is awaited.
  const stub = () => env.MODEL_ROLLOUT.getByName(model) as unknown as ModelRollout;
  return {
    lease: async () => stub().lease(model),
    read: async (historyLimit) => stub().read(model, historyLimit),
    configure: async (catalogue, context) => stub().configure(model, catalogue, context),
    setRollout: async (body, catalogue, context) =>
      stub().setRollout(model, body, catalogue, context),
    revert: async (stateVersion, catalogue, context) =>
      stub().revert(model, stateVersion, catalogue, context),
    engageKillSwitch: async (body, context) => stub().engageKillSwitch(model, body, context),
    releaseKillSwitch: async (context) => stub().releaseKillSwitch(model, context),
    rolloutAt: async (stateVersion) => stub().rolloutAt(model, stateVersion),
    stateAt: async (stateVersion) => stub().stateAt(model, stateVersion),
    plan: async () => stub().plan(model),
    startPlan: async (plan, catalogue, context) =>
      stub().startPlan(model, plan, catalogue, context),
    stepPlan: async (request, catalogue, context) =>
      stub().stepPlan(model, request, catalogue, context),
    changePlan: async (planId, change, reason, catalogue, context) =>
      stub().changePlan(model, planId, change, reason, catalogue, context),
  };
}

/**
 * The rollout state a request starting now must use. Without a valid lease
 * (the object unreachable) the caller must fail closed: 503.
 */
export async function currentRollout(
  env: Env,
  model: string,
  background?: (work: Promise<unknown>) => void,
): Promise<HeldLease<RolloutSnapshot>> {
  const kept = keepers.get(model);
  const keeper = kept ?? new LeaseKeeper(() => rolloutObject(env, model).lease());
  try {
    const held = await keeper.current(background);
    if (!kept && held.grant.state.profile) keepers.set(model, keeper);
    return held;
  } catch (error) {
    throw new ApiError(
      "ROLLOUT_UNAVAILABLE",
      `The rollout state of model '${model}' cannot be read; try again shortly`,
      {
        headers: { "retry-after": "1" },
        cause: error,
      },
    );
  }
}
