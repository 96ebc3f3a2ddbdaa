import type {
  Catalogue,
  ChangeContext,
  ChangeResult,
  ModelRollout,
  RolloutView,
} from "../../durable-objects/model-rollout";
import { ApiError } from "../../shared/errors";
import { type HeldLease, type LeaseGrant, LeaseKeeper } from "../../shared/rollout/lease";
import type { KillSwitchBody, RolloutBody, RolloutSnapshot } from "../../shared/rollout/state";

/**
 * One lease keeper per model, per isolate: requests read rollout state from
 * the held lease and only cross to the model's object to renew it.
 */
const keepers = new Map<string, LeaseKeeper<RolloutSnapshot>>();

/** The model's rollout object, with the RPC methods typed as the object declares them. */
export interface RolloutClient {
  lease(): Promise<LeaseGrant<RolloutSnapshot>>;
  read(historyLimit?: number): Promise<RolloutView>;
  configure(catalogue: Catalogue, context: ChangeContext): Promise<ChangeResult>;
  setRollout(
    body: RolloutBody,
    catalogue: Catalogue,
    context: ChangeContext,
  ): Promise<ChangeResult>;
  revert(stateVersion: number, catalogue: Catalogue, context: ChangeContext): Promise<ChangeResult>;
  engageKillSwitch(body: KillSwitchBody, context: ChangeContext): Promise<ChangeResult>;
  releaseKillSwitch(context: ChangeContext): Promise<ChangeResult>;
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
  let keeper = keepers.get(model);
  if (!keeper) {
    keeper = new LeaseKeeper(() => rolloutObject(env, model).lease());
    keepers.set(model, keeper);
  }
  try {
    return await keeper.current(background);
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
