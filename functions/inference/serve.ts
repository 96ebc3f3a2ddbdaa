import { and, eq, gt, isNull, or, sql } from "drizzle-orm";
import type { Context } from "hono";
import { sha256Hex } from "../../shared/crypto";
import { apiKeys } from "../../shared/db/schema";
import { ApiError } from "../../shared/errors";
import {
  keyHmac,
  newPredictionId,
  type PredictionEvent,
  type ResultFields,
} from "../../shared/inference/events";
import { type InputRow, validateInputs } from "../../shared/inference/inputs";
import type { CanonicalPrediction } from "../../shared/inference/outputs";
import { MODEL_NAME_PATTERN } from "../../shared/model-name";
import { redacts, storableAttributes, storableInputs } from "../../shared/privacy/data-policy";
import {
  decideRoute,
  effectiveRollout,
  type ModelProfile,
  type RolloutSnapshot,
  type RouteDecision,
  type UpstreamRef,
  type VersionRef,
} from "../../shared/rollout/state";
import type { AppEnv } from "../app-env";
import { bearerToken } from "../middleware/bearer";
import { storeUnsentMessages } from "../queue/prediction-logs";
import { loadCatalogue } from "../rollout/catalogue";
import {
  currentRollout,
  holdsLease,
  knownUnknown,
  rememberUnknown,
  rolloutObject,
} from "../rollout/leases";
import { logBatchWindowMs, logResults } from "./log-batcher";
import { rateLimit } from "./rate-limit";
import type { UpstreamOutcome } from "./upstream";
import { callVersion, type VersionCall } from "./versions";

/** The id of the API key with this hash, if it is neither revoked nor expired. */
export async function validKeyId(c: Context<AppEnv>, keyHash: string): Promise<string | undefined> {
  const [key] = await c.var
    .database()
    .select({ id: apiKeys.id })
    .from(apiKeys)
    .where(
      and(
        eq(apiKeys.keyHash, keyHash),
        isNull(apiKeys.revokedAt),
        or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, sql`now()`)),
      ),
    )
    .limit(1);
  return key?.id;
}

/** Is this key valid for any model? Asked only on the rejection path, to pick 401 or 404. */
async function keyExistsAnywhere(c: Context<AppEnv>, keyHash: string): Promise<boolean> {
  try {
    return (await validKeyId(c, keyHash)) !== undefined;
  } catch {
    return false; // cannot tell: the safer answer is 401
  }
}

export const unauthorized = () =>
  new ApiError("UNAUTHORIZED", "A valid API key is required: Authorization: Bearer <key>", {
    headers: { "www-authenticate": 'Bearer realm="airlock"' },
  });
export const notFound = (model: string) =>
  new ApiError("MODEL_NOT_FOUND", `Model '${model}' does not exist`);

/** Is this key in the model's snapshot, and not expired? Needs no lookup. */
function allowedFor(profile: ModelProfile, keyHash: string, now: number): boolean {
  if (!profile.apiKeyHashes.includes(keyHash)) return false;
  const expiresAt = profile.apiKeyExpiresAt?.[keyHash];
  return !expiresAt || Date.parse(expiresAt) > now;
}

/**
 * Order of checks, so keys cannot probe for model names: no or invalid key on
 * a non-public (or unknown) model is 401; a valid key not allowed for the
 * model, or an unknown model, is 404. Returns the rate-limit subject: the
 * key's hash once the key is checked against the model, else null (the
 * client's address). A token that was not checked never chooses the subject:
 * otherwise a new made-up token per request would be a new subject each time.
 */
async function authorize(
  c: Context<AppEnv>,
  model: string,
  snapshot: RolloutSnapshot | undefined,
  keyHash: string | null,
  now: number,
  guard: () => Promise<void>,
): Promise<string | null> {
  const profile = snapshot?.profile;
  if (profile && keyHash && allowedFor(profile, keyHash, now)) return keyHash;
  if (profile?.public) return null;
  if (!keyHash) throw unauthorized();
  // Telling 401 from 404 costs a database read.
  await guard();
  throw (await keyExistsAnywhere(c, keyHash)) ? notFound(model) : unauthorized();
}

/**
 * The snapshot a request starting now uses; sets up a model's object on first
 * use. A name the registry did not know a moment ago costs nothing; anything
 * the isolate cannot answer from a lease it holds (the object, the registry)
 * is guarded first.
 */
async function snapshotFor(
  c: Context<AppEnv>,
  model: string,
  now: number,
  guard: () => Promise<void>,
): Promise<RolloutSnapshot | undefined> {
  if (knownUnknown(model, now)) return undefined;
  if (!holdsLease(model, now)) await guard();
  const lease = await currentRollout(c.env, model, (work) => c.executionCtx.waitUntil(work));
  if (lease.grant.state.profile) return lease.grant.state;
  // Never set up: only the registry knows whether the model exists.
  let catalogue: Awaited<ReturnType<typeof loadCatalogue>>;
  try {
    catalogue = await loadCatalogue(c.var.database(), model);
  } catch (error) {
    if (error instanceof ApiError && error.code === "MODEL_NOT_FOUND") {
      rememberUnknown(model, now, lease);
      return undefined;
    }
    throw error;
  }
  const object = rolloutObject(c.env, model);
  const result = await object.configure(catalogue, {
    actor: "system:first-request",
    requestId: c.var.requestId,
  });
  if (!result.ok) throw new ApiError("ROLLOUT_UNAVAILABLE", result.message);
  return (await object.lease()).state;
}

/** The parameters of a call to one version on behalf of this request. */
function versionCall(
  c: Context<AppEnv>,
  model: string,
  profile: ModelProfile,
  version: string,
  ref: VersionRef,
  rows: InputRow[],
  batch: boolean,
  upstream: UpstreamRef = ref.upstream,
): VersionCall {
  return {
    env: c.env,
    model,
    version,
    upstreamSha256: ref.upstreamSha256,
    upstream,
    schema: profile.inputSchema,
    spec: { task: profile.task, classes: profile.classes, positiveClass: profile.positiveClass },
    rows,
    batch,
    secrets: c.env as unknown as Record<string, unknown>,
    traceparent: c.req.header("traceparent"),
    requestId: c.var.requestId,
    waitUntil: (promise) => c.executionCtx.waitUntil(promise),
  };
}

/** A request admitted to a model: its key is valid for it and within its rate. */
export interface Admitted {
  model: string;
  snapshot: RolloutSnapshot;
  profile: ModelProfile;
  now: number;
}

/**
 * The checks every inference route makes before reading the body, in an
 * order that lets no key probe for model names: lease (or first set-up),
 * key, rate limit, existence. Whatever the isolate cannot answer from memory
 * (a lease fetch, the registry, the key table) is paid for first, once per
 * request, by the client's address, strictly: a flood of unknown names or
 * made-up keys is refused before it costs a lookup.
 */
export async function admit(c: Context<AppEnv>, model: string): Promise<Admitted> {
  const now = Date.now();
  const token = bearerToken(c.req.header("authorization"));
  const keyHash = token ? await sha256Hex(token) : null;
  let guarded = false;
  const guard = async () => {
    if (guarded) return;
    guarded = true;
    await rateLimit(c, null, { strict: true });
  };
  const snapshot = MODEL_NAME_PATTERN.test(model)
    ? await snapshotFor(c, model, now, guard)
    : undefined;
  const subject = await authorize(c, model, snapshot, keyHash, now, guard);
  // An address already counted for this request is not counted again.
  if (subject !== null || !guarded) await rateLimit(c, subject);
  if (!snapshot?.profile) throw notFound(model);
  return { model, snapshot, profile: snapshot.profile, now };
}

export interface PredictionRequest {
  /** One object of features, or an array of them (a batch). */
  inputs: unknown;
  key?: string | undefined;
  attributes: Record<string, string>;
  /** Serve exactly this version, which must be live (champion or canary). */
  version?: string | undefined;
  /** How an input issue's path reads in this protocol (default: `inputs[3].amount`). */
  issuePath?: ((path: string) => string) | undefined;
}

export interface Served {
  /** Null for a static fallback. */
  version: string | null;
  outputs: CanonicalPrediction[];
  fallback: boolean;
  predictionIds: string[];
  batch: boolean;
}

/**
 * Routes, calls and logs one admitted prediction request, whatever the
 * protocol: validation, the routing decision (or the pinned version), the
 * kill switch, the call with its fallbacks, shadows (and the champion's
 * control of a canary answer) after the response, and every result on the
 * log queue. Errors are thrown as ApiErrors.
 */
export async function servePrediction(
  c: Context<AppEnv>,
  admitted: Admitted,
  request: PredictionRequest,
): Promise<Served> {
  const { model, snapshot, profile, now } = admitted;
  const secret = c.env.LOG_HMAC_KEY;
  // The model's data policy applies here, before any event exists: what it
  // drops never reaches the queue, Postgres, dead letters or logs.
  const policy = redacts(profile.dataPolicy) ? profile.dataPolicy : null;
  const attributes = policy
    ? await storableAttributes(policy, request.attributes, secret)
    : request.attributes;
  /** Each input row (by identity) as the policy lets it be stored. */
  const storable = new Map<unknown, unknown>();
  const storableOf = async (inputs: unknown) => {
    if (policy) storable.set(inputs, await storableInputs(policy, inputs, secret));
  };
  const hashedKey = request.key === undefined ? null : await keyHmac(secret, request.key);
  const event = (fields: ResultFields): PredictionEvent => {
    if (policy && !storable.has(fields.inputs))
      throw new Error("inputs reached a log event without the model's data policy");
    return {
      ...fields,
      inputs: policy ? storable.get(fields.inputs) : fields.inputs,
      requestId: c.var.requestId,
      model,
      attributes,
      keyHmac: hashedKey,
      stateVersion: snapshot.stateVersion,
      timestamp: new Date(now).toISOString(),
    };
  };
  const validated = validateInputs(profile.inputSchema, request.inputs);
  if (!validated.ok) {
    await storableOf(request.inputs);
    // Rejected requests feed data-quality monitoring.
    logEvents(c, [
      event({
        role: "rejected",
        predictionId: newPredictionId(now),
        version: "",
        prediction: null,
        inputs: request.inputs,
        latencyMs: 0,
        status: "rejected",
        errorCode: "VALIDATION_FAILED",
        // Bounded like everything logged: the body's depth and size are
        // bounded on reading, and a batch's issues here.
        issues: validated.issues.slice(0, MAX_LOGGED_ISSUES),
      }),
    ]);
    const issues = request.issuePath
      ? validated.issues.map((issue) => ({
          ...issue,
          path: request.issuePath?.(issue.path) ?? issue.path,
        }))
      : validated.issues;
    throw new ApiError(
      "VALIDATION_FAILED",
      `Invalid inputs: ${issues
        .slice(0, 5)
        .map((i) => `${i.path}: ${i.message}`)
        .join("; ")}`,
      { details: issues },
    );
  }
  const { rows, batch } = validated;
  if (policy) for (const row of rows) await storableOf(row);

  c.header("x-airlock-state-version", String(snapshot.stateVersion));
  const decision = pinnedOr(snapshot, request.version, decideRoute(snapshot, request.key));
  const ids = rows.map(() => newPredictionId(now));
  const respond = (
    version: string | null,
    outputs: CanonicalPrediction[],
    fallback: boolean,
    latencyMs = 0,
  ): Served => {
    const role = fallback
      ? "fallback"
      : decision.kind === "serve" && decision.role === "canary"
        ? "canary"
        : "served";
    logEvents(
      c,
      rows.map((row, i) =>
        event({
          role,
          predictionId: ids[i] ?? "",
          version: version ?? "",
          prediction: outputs[i] ?? null,
          inputs: row,
          latencyMs,
          status: "ok",
          errorCode: null,
        }),
      ),
    );
    if (version) c.header("x-airlock-version", version);
    c.header("x-airlock-prediction-id", ids.join(","));
    return { version, outputs, fallback, predictionIds: ids, batch };
  };
  const staticOutputs = (): CanonicalPrediction[] | undefined => {
    const fallback = profile.fallback;
    return fallback.kind === "static" ? rows.map(() => fallback.output) : undefined;
  };

  if (decision.kind === "killed") {
    const outputs = staticOutputs();
    if (outputs) return respond(null, outputs, true);
    throw new ApiError("MODEL_DISABLED", `Model '${model}' is stopped by its kill switch`);
  }
  if (decision.kind === "no-champion") {
    throw new ApiError("NO_SERVING_VERSION", `Model '${model}' has no serving version`);
  }

  // Work that starts later on behalf of this request (a retry, a fallback
  // call) checks the lease again first: never call past a kill switch.
  const stillServing = async () => {
    try {
      return effectiveRollout((await currentRollout(c.env, model)).grant.state) !== "killed";
    } catch {
      return false;
    }
  };
  const call = (version: string, rowsToSend: InputRow[]): Promise<UpstreamOutcome> => {
    const ref = snapshot.versions[version];
    if (!ref)
      return Promise.resolve({
        ok: false,
        code: "UPSTREAM_ERROR",
        cause: `version '${version}' is not in the rollout state`,
        latencyMs: 0,
      });
    return callVersion({
      ...versionCall(c, model, profile, version, ref, rowsToSend, batch),
      recheck: stillServing,
    });
  };

  const served = await call(decision.version, rows);
  const copies: Copy[] = decision.shadows.map((version) => ({ version, role: "shadow" }));
  // The champion also scores what the canary answered, as a control: its load
  // stays what it was before the canary, and canary and champion can be
  // compared request by request, not only as populations.
  const champion = decision.role === "canary" ? championOf(snapshot) : null;
  if (champion) copies.push({ version: champion, role: "control" });
  if (copies.length > 0) {
    c.executionCtx.waitUntil(runCopies(c, model, copies, rows, batch, ids, event));
  }
  if (served.ok) return respond(decision.version, served.predictions, false, served.latencyMs);
  // The failed call is a result too: monitoring counts errors per version.
  logEvents(
    c,
    rows.map((row, i) =>
      event({
        role: decision.role === "canary" ? "canary" : "served",
        predictionId: ids[i] ?? "",
        version: decision.version,
        prediction: null,
        inputs: row,
        latencyMs: served.latencyMs,
        status: served.code === "UPSTREAM_TIMEOUT" ? "timeout" : "error",
        errorCode: served.code,
      }),
    ),
  );

  const fallback = profile.fallback;
  if (
    fallback.kind === "version" &&
    fallback.version !== decision.version &&
    (await stillServing())
  ) {
    const second = await call(fallback.version, rows);
    if (second.ok) return respond(fallback.version, second.predictions, true, second.latencyMs);
  }
  const outputs = staticOutputs();
  if (outputs) return respond(null, outputs, true);
  // The cause can name secrets, hosts and the egress policy: it is logged
  // (`upstream.failed`, by callVersion) for operators; the client gets its code.
  throw new ApiError(
    "UPSTREAM_FAILED",
    `Version '${decision.version}' failed (${served.code}); the cause is logged under this request id`,
    { details: [{ path: "upstream", message: served.code }] },
  );
}

/**
 * A request for one version (the Open Inference Protocol's versioned routes)
 * is served by it only while it is live: the champion, or the canary, under
 * the kill switch. A killed model answers as it would on any route.
 */
function pinnedOr(
  snapshot: RolloutSnapshot,
  version: string | undefined,
  decision: RouteDecision,
): RouteDecision {
  if (version === undefined || decision.kind === "killed") return decision;
  const live = servingVersions(snapshot);
  if (!live.includes(version)) throw versionNotFound(snapshot.model, version);
  const shadows = decision.kind === "serve" ? decision.shadows : [];
  const rollout = effectiveRollout(snapshot);
  const role = rollout !== "killed" && rollout.champion === version ? "champion" : "canary";
  return { kind: "serve", version, role, bucket: null, shadows };
}

/** The versions that may serve now: champion and canary, as the kill switch allows. */
export function servingVersions(snapshot: RolloutSnapshot): string[] {
  const rollout = effectiveRollout(snapshot);
  if (rollout === "killed") return [];
  const live: string[] = [];
  if (rollout.champion) live.push(rollout.champion);
  if (rollout.canary) live.push(rollout.canary.version);
  return live;
}

export const versionNotFound = (model: string, version: string) =>
  new ApiError("VERSION_NOT_FOUND", `Model '${model}' has no live version '${version}'`);

/** Issues of a rejected request kept in its log event (the response names them all). */
const MAX_LOGGED_ISSUES = 100;

/**
 * Sends results once the response is on its way, coalesced with the
 * isolate's other results; what the queue refuses goes straight into
 * `dead_letters`.
 */
function logEvents(c: Context<AppEnv>, events: PredictionEvent[]) {
  logResults(c.env.PREDICTION_LOGS, events, {
    windowMs: logBatchWindowMs(c.env.LOG_BATCH_WINDOW_MS),
    requestId: c.var.requestId,
    waitUntil: (promise) => c.executionCtx.waitUntil(promise),
    onUnsent: (messages, cause) => storeUnsentMessages(c.env, messages, cause),
  });
}

/** Longest a shadow or control call may take, well inside the time the runtime grants after a response. */
const SHADOW_TIMEOUT_CAP_MS = 10_000;

/** The champion in force for a snapshot, under the kill switch. */
function championOf(snapshot: RolloutSnapshot): string | null {
  const rollout = effectiveRollout(snapshot);
  return rollout === "killed" ? null : rollout.champion;
}

/**
 * A version that gets a copy of a request after the response: a shadow, or
 * the champion as the control of a request the canary answered.
 */
interface Copy {
  version: string;
  role: "shadow" | "control";
}

/**
 * Copies get the same inputs after the client's response is on its way.
 * The lease is checked again first: a shadow suspended or killed in the
 * meantime is not called, nor a control once the challengers or the model
 * are killed or the champion has changed. Their results go out together in
 * one message.
 */
async function runCopies(
  c: Context<AppEnv>,
  model: string,
  copies: Copy[],
  rows: InputRow[],
  batch: boolean,
  ids: string[],
  event: (fields: ResultFields) => PredictionEvent,
): Promise<void> {
  let snapshot: RolloutSnapshot;
  try {
    snapshot = (await currentRollout(c.env, model)).grant.state;
  } catch {
    return; // no valid lease: call nothing
  }
  const rollout = effectiveRollout(snapshot);
  if (rollout === "killed" || !snapshot.profile) return;
  const shadows = new Set(rollout.shadows.map((s) => s.version));
  const challengersKilled = snapshot.killSwitch?.scope === "challengers";
  const stillLive = ({ version, role }: Copy) =>
    role === "shadow" ? shadows.has(version) : !challengersKilled && rollout.champion === version;
  const profile = snapshot.profile;
  const results = await Promise.all(
    copies
      .filter((copy) => stillLive(copy) && snapshot.versions[copy.version])
      .map(async ({ version, role }) => {
        const ref = snapshot.versions[version];
        if (!ref) return [];
        const upstream =
          ref.upstream.kind === "http"
            ? {
                ...ref.upstream,
                timeoutMs: Math.min(ref.upstream.timeoutMs, SHADOW_TIMEOUT_CAP_MS),
              }
            : ref.upstream;
        const outcome = await callVersion(
          versionCall(c, model, profile, version, ref, rows, batch, upstream),
        );
        return rows.map((row, i) =>
          event({
            role,
            predictionId: ids[i] ?? "",
            version,
            prediction: outcome.ok ? (outcome.predictions[i] ?? null) : null,
            inputs: row,
            latencyMs: outcome.latencyMs,
            status: outcome.ok ? "ok" : outcome.code === "UPSTREAM_TIMEOUT" ? "timeout" : "error",
            errorCode: outcome.ok ? null : outcome.code,
          }),
        );
      }),
  );
  logEvents(c, results.flat());
}
