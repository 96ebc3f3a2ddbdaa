import type { Context } from "hono";
import { ApiError } from "../../shared/errors";
import { changeContext } from "../admin/change";
import type { AppEnv } from "../app-env";
import { loadCatalogue } from "./catalogue";
import { rolloutObject } from "./leases";

/**
 * Pushes a model's registry data (input schema, classes, fallback, public
 * flag, versions) to its rollout object after a change in Postgres, and
 * returns once the object has acknowledged it under the rollout promise.
 * If the object cannot be reached the change stays stored and the caller
 * answers 503: repeating the request pushes again.
 */
export async function pushRegistryChange(c: Context<AppEnv>, model: string): Promise<void> {
  const catalogue = await loadCatalogue(c.var.database(), model);
  let result: Awaited<ReturnType<ReturnType<typeof rolloutObject>["configure"]>>;
  try {
    result = await rolloutObject(c.env, model).configure(catalogue, changeContext(c));
  } catch (error) {
    throw new ApiError(
      "ROLLOUT_UNAVAILABLE",
      `The change to model '${model}' is stored but its rollout state could not be updated; repeat the request`,
      { headers: { "retry-after": "1" }, cause: error },
    );
  }
  if (!result.ok) throw new ApiError("ROLLOUT_UNAVAILABLE", result.message);
  c.header("x-airlock-state-version", String(result.view.snapshot.stateVersion));
}
