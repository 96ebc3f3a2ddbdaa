/**
 * Prediction-log messages as table rows. Pure: the consumer passes each
 * table's rows to Postgres as one jsonb parameter.
 */
import type { resultRoles } from "../db/schema";
import type { PredictionEvent } from "../inference/events";

export interface PredictionRow {
  prediction_id: string;
  role: (typeof resultRoles)[number];
  version: string;
  created_at: string;
  request_id: string;
  model: string;
  inputs: unknown;
  prediction: unknown;
  attributes: Record<string, string>;
  key_hmac: string | null;
  latency_ms: number;
  status: "ok" | "error" | "timeout";
  error_code: string | null;
  state_version: number;
}

export interface RejectedRow {
  prediction_id: string;
  created_at: string;
  request_id: string;
  model: string;
  inputs: unknown;
  issues: { path: string; message: string }[];
  attributes: Record<string, string>;
  key_hmac: string | null;
  state_version: number;
}

export interface LogRows {
  predictions: PredictionRow[];
  rejected: RejectedRow[];
}

export function toRows(results: readonly PredictionEvent[]): LogRows {
  const rows: LogRows = { predictions: [], rejected: [] };
  for (const event of results) {
    if (event.role === "rejected") {
      rows.rejected.push({
        prediction_id: event.predictionId,
        created_at: event.timestamp,
        request_id: event.requestId,
        model: event.model,
        inputs: event.inputs ?? null,
        issues: event.issues ?? [],
        attributes: event.attributes,
        key_hmac: event.keyHmac,
        state_version: event.stateVersion,
      });
      continue;
    }
    rows.predictions.push({
      prediction_id: event.predictionId,
      role: event.role,
      version: event.version,
      created_at: event.timestamp,
      request_id: event.requestId,
      model: event.model,
      inputs: event.inputs ?? null,
      prediction: event.prediction ?? null,
      attributes: event.attributes,
      key_hmac: event.keyHmac,
      latency_ms: event.latencyMs,
      status: event.status === "rejected" ? "error" : event.status,
      error_code: event.errorCode,
      state_version: event.stateVersion,
    });
  }
  return rows;
}
