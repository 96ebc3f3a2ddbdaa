import { app } from "./app";
import { handleScheduled } from "./jobs";
import { handleQueue } from "./queue";

export { AlertDestination } from "../durable-objects/alert-destination";
export { AuditCheckpoints } from "../durable-objects/audit-checkpoints";
export { ModelRollout } from "../durable-objects/model-rollout";

/**
 * The Worker: everything that enters it comes through this object.
 *
 * fetch: Hono (`./app`), by route family:
 * - `/admin/…` for operators (`./admin`): models, versions, artifacts and
 *   baselines, rollouts and the kill switch, API keys, audit, predictions,
 *   dead letters, monitoring, alert rules, alerts and their destinations;
 * - `/v1/models/{model}/predict` for clients (`./inference/predict.ts`),
 *   routed by the model's rollout state, which lives in one `ModelRollout`
 *   Durable Object per model, read through leases (`./rollout/leases.ts`);
 * - `/v1/feedback` and `/v1/outcomes`: ground-truth labels and business
 *   outcomes (`./inference/feedback.ts`);
 * - `/v2/…`: the Open Inference Protocol (KServe, Triton, MLServer clients)
 *   onto the same routing (`./inference/v2.ts`);
 * - `/health`: liveness, touching no binding;
 * - `/openapi.json`, `/docs` and `/assets/…`: the API description, its
 *   Swagger UI page and the page's files (`./docs`, `./static`);
 * - `/__scheduled?cron=…`: only locally (`LOCAL_TRIGGERS`), a cron job now.
 *
 * queue (`./queue`): `airlock-prediction-logs` (results from PREDICTION_LOGS
 * into Postgres) and its dead-letter queue `airlock-prediction-logs-dlq`;
 * `airlock-alert-deliveries` (alert notices to their destinations, through
 * an `AlertDestination` Durable Object each) and
 * `airlock-alert-deliveries-dlq`; `airlock-monitoring-runs` (runs asked for
 * now, and backfills).
 *
 * scheduled (`./jobs`, the crons in wrangler.toml `[triggers]`): hourly at
 * minute 17, log partition upkeep and retention, then Airlock's own health;
 * every 15 minutes, the monitoring job.
 */
export default {
  fetch: app.fetch,
  queue: handleQueue,
  scheduled: handleScheduled,
} satisfies ExportedHandler<Env>;
