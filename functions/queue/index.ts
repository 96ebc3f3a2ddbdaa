/**
 * The queue handler: every queue the Worker consumes (wrangler.toml
 * `[[queues.consumers]]`), each to its consumer, and a loud error for any
 * other (test/worker/wrangler-handlers.test.ts holds the two lists together).
 *
 * - `airlock-prediction-logs` and its dead-letter queue
 *   `airlock-prediction-logs-dlq`: prediction results into Postgres, and
 *   what could not be stored into `dead_letters` (./prediction-logs.ts).
 * - `airlock-alert-deliveries` and `airlock-alert-deliveries-dlq`: alert
 *   notices to their destinations, and those never delivered
 *   (./alert-deliveries.ts).
 * - `airlock-monitoring-runs`: monitoring runs asked for now and backfills,
 *   in chunks (./monitoring-runs.ts).
 * - `airlock-erasures`: erasures of a data subject's records, a bounded step
 *   per message (./erasures.ts).
 * - `airlock-plan-evaluations`: a rollout plan evaluated when its rollout
 *   object wakes it (./plan-evaluations.ts).
 */
import {
  ALERT_DELIVERIES_DLQ,
  ALERT_DELIVERIES_QUEUE,
  consumeAlertDeadLetters,
  consumeAlertDeliveries,
} from "./alert-deliveries";
import { consumeErasures, ERASURES_QUEUE } from "./erasures";
import { consumeMonitoringRuns, MONITORING_RUNS_QUEUE } from "./monitoring-runs";
import { consumePlanEvaluations, PLAN_EVALUATIONS_QUEUE } from "./plan-evaluations";
import {
  consumeDeadLetters,
  consumePredictionLogs,
  PREDICTION_LOGS_DLQ,
  PREDICTION_LOGS_QUEUE,
} from "./prediction-logs";

/** The queue handler: one consumer per queue, and a loud error for any other. */
export async function handleQueue(
  batch: MessageBatch<unknown>,
  env: Env,
  _ctx?: ExecutionContext,
): Promise<void> {
  switch (batch.queue) {
    case PREDICTION_LOGS_QUEUE:
      return consumePredictionLogs(batch, env);
    case PREDICTION_LOGS_DLQ:
      return consumeDeadLetters(batch, env);
    case ALERT_DELIVERIES_QUEUE:
      return consumeAlertDeliveries(batch, env);
    case ALERT_DELIVERIES_DLQ:
      return consumeAlertDeadLetters(batch, env);
    case MONITORING_RUNS_QUEUE:
      return consumeMonitoringRuns(batch, env);
    case ERASURES_QUEUE:
      return consumeErasures(batch, env);
    case PLAN_EVALUATIONS_QUEUE:
      return consumePlanEvaluations(batch, env);
    default:
      throw new Error(`No consumer for queue '${batch.queue}'`);
  }
}
