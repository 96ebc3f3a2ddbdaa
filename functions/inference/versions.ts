import { checkEgressUrl, parseEgressAllowlist, refusedUpstreamSecret } from "../../shared/egress";
import { CircuitBreaker, type Transition } from "../../shared/inference/circuit-breaker";
import { LruMap } from "../../shared/lru";
import type { UpstreamRef } from "../../shared/rollout/state";
import { callBuiltin } from "./builtin";
import { callUpstream, type UpstreamCall, type UpstreamOutcome } from "./upstream";

/** Upstreams whose breaker an isolate keeps; the least recently called go first. */
const MAX_BREAKERS = 1_000;

/** The configured allowlist, parsed once per isolate rather than once per call. */
let parsedAllowlist: { source: string | undefined; hosts: Set<string> } | undefined;
function allowlistOf(source: string | undefined): Set<string> {
  const cached = parsedAllowlist;
  if (cached && cached.source === source) return cached.hosts;
  const hosts = parseEgressAllowlist(source);
  parsedAllowlist = { source, hosts };
  return hosts;
}

/**
 * One breaker per version's upstream, per isolate, for the MAX_BREAKERS
 * versions called most recently: one pushed out starts closed again.
 */
const breakers = new LruMap<string, CircuitBreaker>(MAX_BREAKERS);

function logTransition(model: string, version: string, transition: Transition | undefined) {
  if (!transition) return;
  console.log(
    JSON.stringify({
      level: transition.to === "open" ? "warn" : "info",
      event: `circuit.${transition.to === "half-open" ? "half_open" : transition.to === "open" ? "opened" : "closed"}`,
      model,
      version,
      failures: transition.failures,
    }),
  );
}

export interface VersionCall extends Omit<UpstreamCall, "upstream"> {
  upstream: UpstreamRef;
  model: string;
  version: string;
  upstreamSha256: string;
  env: Env;
  waitUntil?: ((promise: Promise<unknown>) => void) | undefined;
}

/**
 * Calls a version: a builtin model in this isolate, an HTTP upstream through
 * the egress rules and its circuit breaker. A refused URL or credential fails
 * before the breaker, so only real calls count toward opening it. The rules
 * are those in force now, whatever they were when the version was registered.
 * A failure's cause is logged here, for operators: clients see only its code.
 */
export async function callVersion(call: VersionCall): Promise<UpstreamOutcome> {
  const outcome = await callChecked(call);
  // An open circuit fails every call fast; its opening is logged once instead.
  if (!outcome.ok && outcome.code !== "UPSTREAM_CIRCUIT_OPEN") {
    console.log(
      JSON.stringify({
        level: "warn",
        event: "upstream.failed",
        model: call.model,
        version: call.version,
        requestId: call.requestId,
        code: outcome.code,
        cause: outcome.cause,
        status: outcome.status,
      }),
    );
  }
  return outcome;
}

async function callChecked(call: VersionCall): Promise<UpstreamOutcome> {
  const allowlist = allowlistOf(call.env.UPSTREAM_ALLOWED_HOSTS);
  const { upstream } = call;
  // Builtin models run here: no network, so neither allowlist nor breaker applies.
  if (upstream.kind === "builtin") return callBuiltin({ ...call, upstream });
  const allowed = checkEgressUrl(upstream.url, allowlist);
  if (!allowed.ok)
    return { ok: false, code: "UPSTREAM_FORBIDDEN", cause: allowed.reason, latencyMs: 0 };
  const credential = upstream.credential && refusedUpstreamSecret(upstream.credential);
  if (credential) return { ok: false, code: "UPSTREAM_FORBIDDEN", cause: credential, latencyMs: 0 };

  const id = `${call.model}/${call.version}/${call.upstreamSha256}`;
  let breaker = breakers.get(id);
  if (!breaker) {
    breaker = new CircuitBreaker();
    breakers.set(id, breaker);
  }
  const gate = breaker.allow(Date.now());
  logTransition(call.model, call.version, gate.transition);
  if (!gate.allowed) {
    return {
      ok: false,
      code: "UPSTREAM_CIRCUIT_OPEN",
      cause: "circuit open after repeated failures",
      latencyMs: 0,
    };
  }
  const outcome = await callUpstream({ ...call, upstream });
  logTransition(
    call.model,
    call.version,
    outcome.ok ? breaker.success() : breaker.failure(Date.now()),
  );
  return outcome;
}

/** The breaker state of each version this isolate has called (diagnostics and tests). */
export function breakerStates(): Record<string, string> {
  return Object.fromEntries([...breakers.entries()].map(([id, breaker]) => [id, breaker.state]));
}
