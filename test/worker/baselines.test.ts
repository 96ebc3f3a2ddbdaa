import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { storeLogs } from "../../functions/queue/prediction-logs";
import { mulberry32 } from "../../scripts/lib/traffic/random.ts";
import type { PredictionEvent } from "../../shared/inference/events";
import { BASELINE_SAMPLE_SIZE } from "../../shared/monitoring/baseline";
import {
  call,
  classificationModel,
  createModel,
  type ErrorJson,
  httpUpstream,
  json,
  query,
  uniqueName,
} from "./helpers";

interface Summary {
  kind: "numeric" | "categorical";
  n: number;
  missing: number;
  distinct?: number;
  min?: number;
  max?: number;
  mean?: number;
  std?: number;
  sample?: number[];
  sampled?: boolean;
  counts?: Record<string, number>;
  other?: number;
}
interface BaselineJson {
  model: string;
  version: string;
  rows: number;
  source: { kind: string; from?: string; to?: string; role?: string };
  features: Record<string, Summary>;
  predictions: Record<string, Summary>;
}

/** Rows of the helpers' classification model: amount, country, is_new_customer, tier (1-3). */
function rowsOf(count: number, seed: number) {
  const next = mulberry32(seed);
  const countries = ["DE", "FR", "US"];
  return Array.from({ length: count }, () => {
    const row: Record<string, unknown> = {
      amount: Math.round(next() * 100_000) / 100,
      country: countries[Math.floor(next() * 3)],
      tier: 1 + Math.floor(next() * 3),
    };
    if (next() < 0.8) row.is_new_customer = next() < 0.25;
    return row;
  });
}

async function setUp() {
  const model = uniqueName("base");
  await createModel(
    classificationModel(model, {
      inputSchema: {
        type: "object",
        properties: {
          amount: { type: "number", minimum: 0 },
          country: { type: "string", enum: ["DE", "FR", "US"] },
          is_new_customer: { type: "boolean" },
          tier: { type: "integer", minimum: 1, maximum: 3 },
        },
        required: ["amount", "country"],
      },
    }),
  );
  const created = await call(`/admin/models/${model}/versions`, {
    method: "POST",
    body: { version: "v1", upstream: httpUpstream },
  });
  expect(created.status).toBe(201);
  return model;
}

const sorted = (values: number[]) => [...values].sort((a, b) => a - b);
const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;

describe("baselines", () => {
  it("summarises uploaded rows and predictions per feature", async () => {
    const model = await setUp();
    expect((await call(`/admin/models/${model}/versions/v1/baseline`)).status).toBe(404);
    const rows = rowsOf(400, 1);
    const predictions = rows.map((_, i) => ({
      label: i % 4 === 0 ? "fraud" : "legit",
      score: (i % 97) / 100,
    }));
    const response = await call(`/admin/models/${model}/versions/v1/baseline`, {
      method: "POST",
      body: { rows, predictions },
    });
    expect(response.status).toBe(200);
    const stored = await json<BaselineJson>(
      await call(`/admin/models/${model}/versions/v1/baseline`),
    );
    expect(stored.rows).toBe(400);
    expect(stored.source).toEqual({ kind: "upload" });
    const amounts = rows.map((r) => r.amount as number);
    const amount = stored.features.amount as Summary;
    expect(amount.kind).toBe("numeric");
    expect(amount.n).toBe(400);
    expect(amount.missing).toBe(0);
    expect(amount.sampled).toBe(false);
    expect(amount.sample).toEqual(sorted(amounts));
    expect(amount.mean).toBeCloseTo(mean(amounts), 9);
    expect(amount.min).toBe(Math.min(...amounts));
    // A whole number with 3 values and a boolean are categories.
    const tiers = stored.features.tier as Summary;
    expect(tiers.kind).toBe("categorical");
    for (const t of [1, 2, 3])
      expect(tiers.counts?.[String(t)]).toBe(rows.filter((r) => r.tier === t).length);
    const newCustomer = stored.features.is_new_customer as Summary;
    expect(newCustomer.missing).toBe(rows.filter((r) => !("is_new_customer" in r)).length);
    expect(newCustomer.counts?.true).toBe(rows.filter((r) => r.is_new_customer === true).length);
    expect(stored.features.country?.counts?.DE).toBe(rows.filter((r) => r.country === "DE").length);
    expect(stored.predictions.label?.counts?.fraud).toBe(100);
    expect(stored.predictions.score?.kind).toBe("numeric");
    const [audit] = await query<{ action: string; after: { rows: number } }>(
      sql`SELECT action, after FROM audit_log WHERE target = ${`models/${model}/versions/v1`}
          AND action = 'version.baseline.set'`,
    );
    expect(audit?.after.rows).toBe(400);
  });

  it("names every failing field of uploaded rows, and what is wrong with the body", async () => {
    const model = await setUp();
    const rows = rowsOf(10, 2);
    rows[3] = { ...rows[3], amount: -5 };
    rows[7] = { ...rows[7], country: "XX" };
    const bad = await call(`/admin/models/${model}/versions/v1/baseline`, {
      method: "POST",
      body: { rows },
    });
    expect(bad.status).toBe(400);
    const error = (await json<ErrorJson>(bad)).error;
    expect(error.code).toBe("VALIDATION_FAILED");
    expect(error.details?.map((d) => d.path)).toEqual(["rows[3].amount", "rows[7].country"]);
    const both = await call(`/admin/models/${model}/versions/v1/baseline`, {
      method: "POST",
      body: { rows: rowsOf(2, 3), from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z" },
    });
    expect(both.status).toBe(400);
    expect((await json<ErrorJson>(both)).error.details?.[0]?.path).toBe("from");
    const neither = await call(`/admin/models/${model}/versions/v1/baseline`, {
      method: "POST",
      body: {},
    });
    expect((await json<ErrorJson>(neither)).error.details?.[0]?.path).toBe("rows");
    const mismatched = await call(`/admin/models/${model}/versions/v1/baseline`, {
      method: "POST",
      body: { rows: rowsOf(3, 4), predictions: [{ label: "legit" }] },
    });
    expect((await json<ErrorJson>(mismatched)).error.details?.[0]?.path).toBe("predictions");
    const missing = await call(`/admin/models/${uniqueName("none")}/versions/v1/baseline`, {
      method: "POST",
      body: { rows: rowsOf(3, 5) },
    });
    expect(missing.status).toBe(404);
  });

  it("summarises a window of the version's traffic in Postgres exactly as it summarises the same rows uploaded", async () => {
    const model = await setUp();
    // More rows than the reference sample holds: the sample becomes quantiles.
    const rows = rowsOf(BASELINE_SAMPLE_SIZE + 500, 6);
    const start = Date.parse("2026-11-20T10:00:00Z");
    const predictions = rows.map((_, i) => ({
      label: i % 3 === 0 ? "fraud" : "legit",
      score: ((i * 7919) % 1000) / 1000,
    }));
    const events: PredictionEvent[] = rows.map((row, i) => ({
      role: "served",
      predictionId: crypto.randomUUID(),
      requestId: crypto.randomUUID(),
      model,
      version: "v1",
      prediction: predictions[i] as PredictionEvent["prediction"],
      inputs: row,
      attributes: {},
      keyHmac: null,
      latencyMs: 1,
      status: "ok",
      errorCode: null,
      stateVersion: 1,
      timestamp: new Date(start + i * 1000).toISOString(),
    }));
    // A shadow result and one outside the window must not count.
    events.push({ ...(events[0] as PredictionEvent), role: "shadow", predictionId: "shadow-1" });
    events.push({
      ...(events[0] as PredictionEvent),
      predictionId: "late-1",
      timestamp: new Date(start + 10_000_000).toISOString(),
    });
    await storeLogs(env, events, []);
    const window = {
      from: new Date(start).toISOString(),
      to: new Date(start + rows.length * 1000).toISOString(),
    };
    const fromTraffic = await call(`/admin/models/${model}/versions/v1/baseline`, {
      method: "POST",
      body: window,
    });
    expect(fromTraffic.status).toBe(200);
    const traffic = await json<BaselineJson>(fromTraffic);
    expect(traffic.source).toEqual({ kind: "traffic", ...window, role: "served" });
    expect(traffic.rows).toBe(rows.length);
    // The same rows uploaded, to compare.
    const uploaded = await json<BaselineJson>(
      await call(`/admin/models/${model}/versions/v1/baseline`, {
        method: "POST",
        body: { rows, predictions },
      }),
    );
    for (const name of ["country", "is_new_customer", "tier"])
      expect(traffic.features[name], name).toEqual(uploaded.features[name]);
    const a = traffic.features.amount as Summary;
    const b = uploaded.features.amount as Summary;
    expect(a.sampled).toBe(true);
    expect(a.sample).toHaveLength(BASELINE_SAMPLE_SIZE);
    expect(a.sample).toEqual(b.sample);
    for (const key of ["n", "missing", "distinct", "min", "max"] as const)
      expect(a[key]).toBe(b[key]);
    expect(a.mean).toBeCloseTo(b.mean as number, 6);
    expect(a.std).toBeCloseTo(b.std as number, 6);
    expect(traffic.predictions.label).toEqual(uploaded.predictions.label);
    expect(traffic.predictions.score?.sample).toEqual(uploaded.predictions.score?.sample);
  });

  it("takes a baseline with the version at registration, validated like an upload", async () => {
    const model = await setUp();
    const rows = rowsOf(50, 8);
    const created = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: { version: "v2", upstream: httpUpstream, baseline: { rows } },
    });
    expect(created.status).toBe(201);
    const stored = await json<BaselineJson>(
      await call(`/admin/models/${model}/versions/v2/baseline`),
    );
    expect(stored.rows).toBe(50);
    expect(stored.features.amount?.sample).toEqual(sorted(rows.map((r) => r.amount as number)));
    const bad = rowsOf(5, 9);
    bad[1] = { ...bad[1], amount: "a lot" };
    const refused = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: { version: "v3", upstream: httpUpstream, baseline: { rows: bad } },
    });
    expect(refused.status).toBe(400);
    expect((await json<ErrorJson>(refused)).error.details?.[0]?.path).toBe(
      "baseline.rows[1].amount",
    );
    // Nothing of the refused version was stored.
    expect((await call(`/admin/models/${model}/versions/v3`)).status).toBe(404);
  });

  it("refuses a window without traffic, and keeps the earlier baseline", async () => {
    const model = await setUp();
    await call(`/admin/models/${model}/versions/v1/baseline`, {
      method: "POST",
      body: { rows: rowsOf(20, 7) },
    });
    const empty = await call(`/admin/models/${model}/versions/v1/baseline`, {
      method: "POST",
      body: { from: "2026-01-01T00:00:00Z", to: "2026-01-02T00:00:00Z" },
    });
    expect(empty.status).toBe(422);
    expect((await json<ErrorJson>(empty)).error.code).toBe("BASELINE_EMPTY");
    const kept = await json<BaselineJson>(
      await call(`/admin/models/${model}/versions/v1/baseline`),
    );
    expect(kept.rows).toBe(20);
  });
});
