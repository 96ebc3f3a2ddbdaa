/**
 * Serving builtin models in the isolate that took the request. A version's
 * rollout snapshot names its model file by content hash; the first request to
 * need it reads the file (from the ARTIFACT_CACHE edge cache, else Postgres),
 * checks the hash, compiles it once into typed arrays and keeps it for later
 * requests. Files never change, so nothing here ever goes stale.
 */
import { eq } from "drizzle-orm";
import { type CompiledModel, compileModel } from "../../shared/builtin";
import { predictBuiltin } from "../../shared/builtin/serve";
import { sha256Hex } from "../../shared/crypto";
import { openDatabase } from "../../shared/db/client";
import { modelArtifacts } from "../../shared/db/schema";
import type { InputRow } from "../../shared/inference/inputs";
import type { ModelOutputSpec } from "../../shared/inference/outputs";
import type { UpstreamRef } from "../../shared/rollout/state";
import type { UpstreamOutcome } from "./upstream";

export type BuiltinRef = Extract<UpstreamRef, { kind: "builtin" }>;

/** Compiled models kept per isolate, least recently used evicted first. */
const MAX_CACHED_MODELS = 32;
const MAX_CACHED_BYTES = 64 * 1024 * 1024;

interface Entry {
  model: Promise<CompiledModel>;
  bytes: number;
}

/** By the version's upstream hash: the same file with other `features` is another model. */
const compiled = new Map<string, Entry>();

export interface BuiltinCall {
  upstream: BuiltinRef;
  upstreamSha256: string;
  spec: ModelOutputSpec;
  rows: InputRow[];
  env: Env;
  /** Keeps a cache write alive after the response. */
  waitUntil?: ((promise: Promise<unknown>) => void) | undefined;
}

export async function callBuiltin(call: BuiltinCall): Promise<UpstreamOutcome> {
  const started = performance.now();
  const elapsed = () => Math.round((performance.now() - started) * 1000) / 1000;
  let model: CompiledModel;
  try {
    model = await modelFor(call);
  } catch (error) {
    return {
      ok: false,
      code: "MODEL_UNAVAILABLE",
      cause: error instanceof Error ? error.message : String(error),
      latencyMs: elapsed(),
    };
  }
  const result = predictBuiltin(model, call.spec, call.rows, call.upstream.threshold);
  if (!result.ok) {
    return { ok: false, code: "MODEL_FAILED", cause: result.reason, latencyMs: elapsed() };
  }
  return { ok: true, predictions: result.predictions, latencyMs: elapsed() };
}

function modelFor(call: BuiltinCall): Promise<CompiledModel> {
  const key = call.upstreamSha256;
  const hit = compiled.get(key);
  if (hit) {
    // Most recently used last.
    compiled.delete(key);
    compiled.set(key, hit);
    return hit.model;
  }
  const entry: Entry = { model: load(call), bytes: 0 };
  compiled.set(key, entry);
  entry.model.then(
    (model) => {
      entry.bytes = model.bytes;
      evict();
    },
    // A failed load is not remembered: the next request tries again.
    () => {
      if (compiled.get(key) === entry) compiled.delete(key);
    },
  );
  return entry.model;
}

function evict(): void {
  let total = 0;
  for (const entry of compiled.values()) total += entry.bytes;
  for (const [key, entry] of compiled) {
    if (compiled.size <= MAX_CACHED_MODELS && total <= MAX_CACHED_BYTES) break;
    if (entry.bytes === 0) continue; // still loading
    compiled.delete(key);
    total -= entry.bytes;
  }
}

async function load(call: BuiltinCall): Promise<CompiledModel> {
  const { upstream } = call;
  const body = await readArtifact(upstream.artifactSha256, call.env, call.waitUntil);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new Error(`model file ${upstream.artifactSha256} is not JSON`);
  }
  const result = compileModel(upstream.format, parsed, {
    features: upstream.features,
    classes: upstream.classes,
  });
  if (!result.ok) {
    throw new Error(
      `model file does not compile: ${result.problem.path}: ${result.problem.message}`,
    );
  }
  return result.model;
}

/**
 * The model file's text, from the edge cache or Postgres. Either way its hash
 * is checked, so a corrupted copy is never served.
 */
async function readArtifact(
  sha256: string,
  env: Env,
  waitUntil: BuiltinCall["waitUntil"],
): Promise<string> {
  const cache = env.ARTIFACT_CACHE as KVNamespace | undefined;
  const cacheKey = `artifact:${sha256}`;
  if (cache) {
    const cached = await cache.get(cacheKey, "text").catch(() => null);
    if (cached !== null && (await sha256Hex(cached)) === sha256) return cached;
  }
  const handle = openDatabase(env);
  let body: string;
  try {
    const [row] = await handle.db
      .select({ body: modelArtifacts.body })
      .from(modelArtifacts)
      .where(eq(modelArtifacts.sha256, sha256));
    if (!row) throw new Error(`model file ${sha256} is not stored`);
    body = row.body;
  } catch (error) {
    if (error instanceof Error && error.message.startsWith("model file")) throw error;
    throw new Error(`model file ${sha256} could not be read from the database`);
  } finally {
    await handle.close();
  }
  if ((await sha256Hex(body)) !== sha256) {
    throw new Error(`model file ${sha256} does not match its hash`);
  }
  if (cache) {
    const write = cache.put(cacheKey, body).catch(() => {});
    if (waitUntil) waitUntil(write);
    else await write;
  }
  return body;
}

/** Drops compiled models (tests: a cold isolate). */
export function clearBuiltinCache(): void {
  compiled.clear();
}

/** What this isolate holds (diagnostics and tests). */
export function builtinCacheKeys(): string[] {
  return [...compiled.keys()];
}
