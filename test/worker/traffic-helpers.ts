/**
 * Logged traffic for monitoring tests: rows drawn from the demo model's
 * traffic profile (the traffic generator's, seeded, with drift on demand) and
 * the served results that carry them.
 */

import demo from "../../scripts/demo/demo-credit-risk.json";
import { parseDrift } from "../../scripts/lib/traffic/drift.ts";
import { createGenerator } from "../../scripts/lib/traffic/generate.ts";
import { profileFor, resolveProfile } from "../../scripts/lib/traffic/profile.ts";
import type { PredictionEvent } from "../../shared/inference/events";

/** `count` rows of the demo model's traffic profile, seeded, with optional drifts. */
export function rowsFrom(model: string, seed: number, count: number, drifts: string[] = []) {
  const schema = demo.model.inputSchema as Parameters<typeof resolveProfile>[0]["inputSchema"];
  const profile = resolveProfile(
    { name: model, inputSchema: schema, task: "classification" },
    profileFor("demo-credit-risk", undefined).profile,
  );
  const generator = createGenerator(profile, {
    seed,
    rate: 100,
    total: count,
    batchRate: 0,
    batchMax: 1,
    labelRate: 0,
    labelDelay: { min: 0, max: 0 },
    drifts: drifts.map(parseDrift),
  });
  return Array.from({ length: count }, (_, i) => generator.request(i).rows[0]?.inputs ?? {});
}

export function events(
  model: string,
  rows: Record<string, unknown>[],
  start: number,
): PredictionEvent[] {
  return rows.map((inputs, i) => ({
    role: "served",
    predictionId: crypto.randomUUID(),
    requestId: crypto.randomUUID(),
    model,
    version: "v1",
    prediction: { label: "repaid", score: 0.1 + ((i * 37) % 50) / 100 },
    inputs,
    attributes: {},
    keyHmac: null,
    latencyMs: 2,
    status: "ok",
    errorCode: null,
    stateVersion: 1,
    timestamp: new Date(start + Math.floor((i * 890_000) / rows.length)).toISOString(),
  }));
}

/** A monitoring result as GET /admin/models/{model}/monitoring returns it. */
export interface ResultRow {
  version: string;
  role: string;
  windowSeconds: number;
  windowStart: string;
  metric: string;
  dimension: string;
  value: number | null;
  reason: string | null;
  status: string;
  details: Record<string, unknown>;
  runId: number;
}
