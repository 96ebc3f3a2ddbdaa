import { readBodyCapped, redirectCause } from "../../shared/egress";
import type { InputRow } from "../../shared/inference/inputs";
import {
  type CanonicalPrediction,
  fromJsonResponse,
  fromV2Response,
  type ModelOutputSpec,
} from "../../shared/inference/outputs";
import { toV2Request } from "../../shared/inference/v2-request";
import type { UpstreamRef } from "../../shared/rollout/state";
import type { InputSchema } from "../../shared/schemas/model";

export type UpstreamFailure =
  | "UPSTREAM_TIMEOUT"
  | "UPSTREAM_ERROR"
  | "UPSTREAM_BAD_RESPONSE"
  /** Refused before calling: the URL or the credential breaks the egress rules. */
  | "UPSTREAM_FORBIDDEN"
  /** Answered 3xx: redirects are never followed. */
  | "UPSTREAM_REDIRECT"
  | "UPSTREAM_CIRCUIT_OPEN"
  /** A builtin model's file could not be loaded or compiled. */
  | "MODEL_UNAVAILABLE"
  /** A builtin model could not evaluate the rows (e.g. a missing value it cannot take). */
  | "MODEL_FAILED";

export type UpstreamOutcome =
  | { ok: true; predictions: CanonicalPrediction[]; latencyMs: number }
  | { ok: false; code: UpstreamFailure; cause: string; status?: number; latencyMs: number };

/** Most of an upstream's answer that is read: a longer body is a bad response. */
export const MAX_UPSTREAM_RESPONSE_BYTES = 4 * 1024 * 1024;

/** An upstream reached over HTTP (the only kind called over the network). */
export type HttpUpstreamRef = Extract<UpstreamRef, { kind: "http" }>;

export interface UpstreamCall {
  upstream: HttpUpstreamRef;
  schema: InputSchema;
  spec: ModelOutputSpec;
  rows: InputRow[];
  batch: boolean;
  /** Secrets by name, for `credential`. */
  secrets: Record<string, unknown>;
  traceparent?: string | undefined;
  requestId: string;
  /** Checked before a retry: false when the model's lease no longer allows calling (e.g. killed). */
  recheck?: (() => Promise<boolean>) | undefined;
}

/**
 * Calls one version's HTTP upstream and maps its answer to canonical predictions.
 * Callers go through `callVersion`, which applies the egress rules and the
 * circuit breaker first. A redirect is a failure, never followed: its target
 * would escape those rules.
 * Never throws: every failure is an outcome with a cause, so the caller can
 * apply the model's fallback. A failed call is repeated once only when the
 * version says its upstream is idempotent: otherwise the first attempt may
 * already have reached the model.
 */
export async function callUpstream(call: UpstreamCall): Promise<UpstreamOutcome> {
  const first = await attempt(call);
  const retryable =
    !first.ok &&
    (first.code === "UPSTREAM_TIMEOUT" ||
      (first.code === "UPSTREAM_ERROR" && (first.status === undefined || first.status >= 500)));
  if (!retryable || !call.upstream.idempotent) return first;
  if (call.recheck && !(await call.recheck())) return first;
  const second = await attempt(call);
  return { ...second, latencyMs: first.latencyMs + second.latencyMs };
}

async function attempt(call: UpstreamCall): Promise<UpstreamOutcome> {
  const started = performance.now();
  const elapsed = () => Math.round((performance.now() - started) * 10) / 10;
  const { upstream } = call;
  const headers: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/json",
    "x-request-id": call.requestId,
  };
  if (call.traceparent) headers.traceparent = call.traceparent;
  if (upstream.credential) {
    const secret = call.secrets[upstream.credential];
    if (typeof secret !== "string" || secret === "") {
      return {
        ok: false,
        code: "UPSTREAM_ERROR",
        cause: `secret '${upstream.credential}' is not configured`,
        latencyMs: 0,
      };
    }
    headers.authorization = `Bearer ${secret}`;
  }
  const body =
    upstream.protocol === "v2"
      ? toV2Request(call.schema, call.rows, { request_id: call.requestId })
      : { inputs: call.batch ? call.rows : call.rows[0] };
  let response: Response;
  try {
    response = await fetch(upstream.url, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
      redirect: "manual",
      signal: AbortSignal.timeout(upstream.timeoutMs),
    });
  } catch (error) {
    const timedOut =
      error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
    return {
      ok: false,
      code: timedOut ? "UPSTREAM_TIMEOUT" : "UPSTREAM_ERROR",
      cause: timedOut
        ? `no answer within ${upstream.timeoutMs} ms`
        : `request failed: ${error instanceof Error ? error.message : String(error)}`,
      latencyMs: elapsed(),
    };
  }
  if (response.status >= 300 && response.status < 400) {
    await response.body?.cancel().catch(() => undefined);
    return {
      ok: false,
      code: "UPSTREAM_REDIRECT",
      cause: redirectCause(response, upstream.url),
      status: response.status,
      latencyMs: elapsed(),
    };
  }
  let parsed: unknown;
  try {
    const read = await readBodyCapped(response, MAX_UPSTREAM_RESPONSE_BYTES);
    if (!read.ok) {
      return {
        ok: false,
        code: "UPSTREAM_BAD_RESPONSE",
        cause: `status ${response.status}, ${read.cause}`,
        status: response.status,
        latencyMs: elapsed(),
      };
    }
    parsed = read.text === "" ? undefined : JSON.parse(read.text);
  } catch {
    return {
      ok: false,
      code: "UPSTREAM_BAD_RESPONSE",
      cause: `status ${response.status}, body is not JSON`,
      status: response.status,
      latencyMs: elapsed(),
    };
  }
  if (!response.ok) {
    return {
      ok: false,
      code: "UPSTREAM_ERROR",
      cause: `status ${response.status}`,
      status: response.status,
      latencyMs: elapsed(),
    };
  }
  const options = upstream.threshold === undefined ? {} : { threshold: upstream.threshold };
  const mapped =
    upstream.protocol === "v2"
      ? fromV2Response(call.spec, parsed, call.rows.length, upstream.outputMapping, options)
      : fromJsonResponse(call.spec, parsed, call.rows.length, upstream.outputMapping, {
          ...options,
          batch: call.batch,
        });
  if (!mapped.ok) {
    return {
      ok: false,
      code: "UPSTREAM_BAD_RESPONSE",
      cause: mapped.reason,
      status: response.status,
      latencyMs: elapsed(),
    };
  }
  return { ok: true, predictions: mapped.predictions, latencyMs: elapsed() };
}
