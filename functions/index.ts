import { app } from "./app";

export { ModelRollout } from "../durable-objects/model-rollout";

/**
 * The Worker. Requests enter through Hono (`./app`): `/admin` for operators,
 * `/openapi.json` and `/docs` for the API description. Each model's rollout
 * state lives in a `ModelRollout` Durable Object, read through leases
 * (`./rollout/leases`). Inference routes, the prediction-log queue consumer
 * and cron jobs join this file as they are built.
 */
export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
