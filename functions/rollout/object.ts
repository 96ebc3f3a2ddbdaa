import type { Context } from "hono";
import type { RolloutView } from "../../durable-objects/model-rollout";
import { ApiError } from "../../shared/errors";
import { changeContext } from "../admin/change";
import type { AppEnv } from "../app-env";
import { loadCatalogue } from "./catalogue";
import { rolloutObject } from "./leases";

/** Calls the model's rollout object; an unreachable object is a 503, never a guess. */
export async function callObject<T>(model: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof ApiError) throw error;
    throw new ApiError(
      "ROLLOUT_UNAVAILABLE",
      `The rollout state of model '${model}' cannot be reached; try again`,
      {
        headers: { "retry-after": "1" },
        cause: error,
      },
    );
  }
}

/** Makes sure the object knows the model (first use, or after a registry change). */
export async function ensureConfigured(c: Context<AppEnv>, model: string): Promise<RolloutView> {
  const stub = rolloutObject(c.env, model);
  const view = await callObject(model, () => stub.read(1));
  if (view.snapshot.profile) return view;
  const catalogue = await loadCatalogue(c.var.database(), model);
  const result = await callObject(model, () => stub.configure(catalogue, changeContext(c)));
  if (!result.ok) throw new ApiError("ROLLOUT_UNAVAILABLE", result.message);
  return result.view;
}
