import { app } from "./app";

/**
 * The Worker. Requests enter through Hono (`./app`): `/admin` for operators,
 * `/openapi.json` and `/docs` for the API description. Inference routes,
 * the prediction-log queue consumer, cron jobs and the per-model rollout
 * Durable Object join this file as they are built.
 */
export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
