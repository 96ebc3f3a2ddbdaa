import { env } from "cloudflare:workers";
import { expect } from "vitest";
import {
  call,
  classificationModel,
  createModel,
  createVersion,
  json,
  scoringVersion,
  uniqueName,
} from "./helpers";

export interface RolloutJson {
  model: string;
  stateVersion: number;
  leaseMs: number;
  champion: string | null;
  shadows: { version: string; sampleRate: number }[];
  canary: { version: string; percent: number } | null;
  killSwitch: { engaged: boolean; scope?: string; reason?: string; actor?: string; at?: string };
  history: {
    stateVersion: number;
    action: string;
    actor: string;
    before: unknown;
    after: unknown;
  }[];
  pendingAuditEvents: number;
  acknowledgedAfterMs?: number;
}

export interface RouteJson {
  stateVersion: number;
  decision: "serve" | "killed" | "no-champion";
  version: string | null;
  role: "champion" | "canary" | null;
  bucket: number | null;
  shadows: string[];
}

/** A model with versions v1..vN registered, and no rollout yet. */
export async function modelWithVersions(count = 3, prefix = "ro"): Promise<string> {
  const model = uniqueName(prefix);
  await createModel(
    classificationModel(model, { fallback: { kind: "static", output: { label: "legit" } } }),
  );
  for (let i = 1; i <= count; i++) await createVersion(model, `v${i}`);
  return model;
}

export async function putRollout(
  model: string,
  body: unknown,
  headers: Record<string, string> = {},
) {
  return call(`/admin/models/${model}/rollout`, { method: "PUT", body, headers });
}

export async function route(
  model: string,
  key?: string,
): Promise<{ response: Response; body: RouteJson }> {
  const query = key === undefined ? "" : `?key=${encodeURIComponent(key)}`;
  const response = await call(`/admin/models/${model}/rollout/route${query}`);
  if (response.status !== 200)
    throw new Error(`route: ${response.status} ${await response.text()}`);
  return { response, body: await json<RouteJson>(response) };
}

export function rolloutStub(model: string) {
  return env.MODEL_ROLLOUT.getByName(model);
}

/** A public classification model answered by v1, with v2 in shadow on every request. */
export async function modelWithShadow(prefix: string): Promise<string> {
  const model = uniqueName(prefix);
  await createModel(classificationModel(model, { public: true }));
  await createVersion(model, "v1", scoringVersion);
  await createVersion(model, "v2", scoringVersion);
  const rollout = await putRollout(model, {
    champion: "v1",
    shadows: [{ version: "v2", sampleRate: 1 }],
    leaseMs: 250,
  });
  expect(rollout.status).toBe(200);
  return model;
}
