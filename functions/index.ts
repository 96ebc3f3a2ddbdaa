import { app } from "./app";
import { handleScheduled } from "./jobs";
import { handleQueue } from "./queue/prediction-logs";

export { AlertDestination } from "../durable-objects/alert-destination";
export { ModelRollout } from "../durable-objects/model-rollout";

/**
 * The Worker. Requests enter through Hono (`./app`): `/admin` for operators,
 * `/openapi.json` and `/docs` for the API description. Each model's rollout
 * state lives in a `ModelRollout` Durable Object, read through leases
 * (`./rollout/leases`). Prediction results travel on the PREDICTION_LOGS
 * queue to `./queue/prediction-logs`, which stores them in Postgres; cron
 * triggers run the jobs in `./jobs`.
 */
export default {
  fetch: app.fetch,
  queue: handleQueue,
  scheduled: handleScheduled,
} satisfies ExportedHandler<Env>;
