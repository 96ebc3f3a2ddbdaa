import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  DEMO_BASELINE_ROWS,
  DEMO_BASELINE_SEED,
  demoBaselineRows,
} from "../../scripts/demo/baseline.ts";
import demo from "../../scripts/demo/demo-credit-risk.json";
import { parseOptions } from "../../scripts/lib/traffic/args.ts";
import { InputSchemaFormat } from "../../scripts/lib/traffic/format.ts";
import { createGenerator } from "../../scripts/lib/traffic/generate.ts";
import { profileFor, resolveProfile } from "../../scripts/lib/traffic/profile.ts";
import { binWindow, detectDatasetDrift, detectDrift, type FeatureDrift } from "../../shared/drift";
import { validateRowList } from "../../shared/inference/inputs";
import {
  baselineFromRows,
  categoryOf,
  MAX_BASELINE_UPLOAD_ROWS,
} from "../../shared/monitoring/baseline";
import { numericThresholds } from "../../shared/monitoring/drift-rows";
import type { InputSchema } from "../../shared/schemas/model";

/**
 * The baseline `npm start` gives the demo model's versions, against the traffic generator's
 * "no drift" traffic: the same profile, another seed. Judged by the monitoring job's own
 * functions, as it judges a 15-minute window (the window the default alert rules read).
 */

const schema = demo.model.inputSchema as InputSchema;
const rows = demoBaselineRows(demo.model);
const baseline = baselineFromRows(schema, "classification", rows, undefined, {
  createdAt: new Date(0).toISOString(),
  createdBy: "test",
});

/** Rows of `npm run traffic` with its defaults (seed, rate, batches) for `seconds` of sending. */
function defaultTraffic(seconds: number): Record<string, unknown>[] {
  const options = parseOptions([]);
  const model = demo.model;
  const profile = resolveProfile(
    {
      name: model.name,
      inputSchema: InputSchemaFormat.parse(model.inputSchema),
      task: "classification",
      classes: model.classes,
      positiveClass: model.positiveClass,
    },
    profileFor(model.name, undefined).profile,
  );
  const generator = createGenerator(profile, {
    seed: options.seed,
    rate: options.rate,
    total: null,
    batchRate: options.batchRate,
    batchMax: options.batchMax,
    labelRate: options.labelRate,
    labelDelay: options.labelDelay,
    drifts: [],
  });
  const out: Record<string, unknown>[] = [];
  for (let i = 0; i < options.rate * seconds; i++)
    for (const row of generator.request(i).rows) out.push(row.inputs);
  return out;
}

/** Each feature's drift as the job computes it from a window's aggregates. */
function windowDrift(window: readonly Record<string, unknown>[]): Record<string, FeatureDrift> {
  const out: Record<string, FeatureDrift> = {};
  for (const [name, reference] of Object.entries(baseline.features)) {
    const values = window.map((row) => row[name]);
    if (reference.kind === "numeric") {
      const edges = numericThresholds(reference, undefined, name);
      out[name] = detectDrift(
        "numeric",
        { sample: reference.sample, n: reference.n, distinct: reference.distinct },
        binWindow(edges, values as number[]),
      );
    } else {
      const counts: Record<string, number> = {};
      for (const value of values as (string | number | boolean)[])
        counts[categoryOf(value)] = (counts[categoryOf(value)] ?? 0) + 1;
      out[name] = detectDrift("categorical", reference.counts, counts);
    }
  }
  return out;
}

describe("the demo model's baseline", () => {
  it("is the same 5,000 rows every time, each valid against the input schema", () => {
    expect(DEMO_BASELINE_ROWS).toBe(5000);
    expect(rows).toHaveLength(DEMO_BASELINE_ROWS);
    expect(demoBaselineRows(demo.model)).toEqual(rows);
    expect(demoBaselineRows(demo.model, 10, DEMO_BASELINE_SEED + 1)).not.toEqual(rows.slice(0, 10));
    const checked = validateRowList(schema, rows, "rows");
    expect(checked.ok ? [] : checked.issues.slice(0, 3)).toEqual([]);
    for (const row of rows.slice(0, 100))
      expect(Object.keys(row).sort()).toEqual(Object.keys(schema.properties).sort());
  });

  it("fits one upload: within the row limit and the body limit", () => {
    expect(DEMO_BASELINE_ROWS).toBeLessThanOrEqual(MAX_BASELINE_UPLOAD_ROWS);
    const bytes = new TextEncoder().encode(JSON.stringify({ rows })).length;
    // About 760 kB: a quarter of the limit to spare.
    expect(bytes).toBeLessThan(0.8 * Number(env.MAX_BODY_BYTES));
  });

  it("summarises every feature, with more than 1,000 rows so distances judge drift", () => {
    expect(Object.keys(baseline.features).sort()).toEqual(Object.keys(schema.properties).sort());
    expect(baseline.rows).toBe(DEMO_BASELINE_ROWS);
    const drift = windowDrift(rows.slice(0, 100));
    for (const [name, result] of Object.entries(drift))
      expect([name, result.method]).toEqual([
        name,
        baseline.features[name]?.kind === "numeric" ? "wasserstein" : "jensen_shannon",
      ]);
  });

  it("finds no drift in a 15-minute window of the traffic generator's default traffic", () => {
    const window = defaultTraffic(900);
    expect(window.length).toBeGreaterThan(10_000);
    const drift = windowDrift(window);
    const flagged = Object.entries(drift)
      .filter(([, result]) => result.drift || result.psi.level !== "ok")
      .map(
        ([name, result]) => `${name}: ${result.method} ${result.value}, psi ${result.psi.value}`,
      );
    expect(flagged).toEqual([]);
    expect(detectDatasetDrift(drift).drifted).toBe(0);
  });

  it("finds the drift the traffic generator adds", () => {
    const options = parseOptions(["--drift", "income:shift=0.5sd@0"]);
    const model = demo.model;
    const profile = resolveProfile(
      { name: model.name, inputSchema: InputSchemaFormat.parse(model.inputSchema) },
      profileFor(model.name, undefined).profile,
    );
    const generator = createGenerator(profile, { ...options, total: 2000 });
    const window = Array.from({ length: 2000 }, (_, i) => generator.request(i).rows).flat();
    const drift = windowDrift(window.map((row) => row.inputs));
    expect(drift.income?.drift).toBe(true);
    expect(
      Object.entries(drift)
        .filter(([name, result]) => name !== "income" && result.drift)
        .map(([name]) => name),
    ).toEqual([]);
  });
});
