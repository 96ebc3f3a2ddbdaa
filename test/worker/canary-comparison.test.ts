import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { canaryComparisons, shadowComparisons } from "../../functions/monitoring/comparison";
import { storeLogs } from "../../functions/queue/prediction-logs";
import { newPredictionId, type PredictionEvent } from "../../shared/inference/events";
import type { MetricRow } from "../../shared/monitoring/metric-row";
import { database, uniqueName } from "./helpers";

const FROM = Date.parse("2026-11-23T08:00:00.000Z");
const TO = FROM + 900_000;

function result(
  model: string,
  role: PredictionEvent["role"],
  version: string,
  predictionId: string,
  at: number,
  fields: Partial<PredictionEvent> = {},
): PredictionEvent {
  return {
    role,
    predictionId,
    requestId: crypto.randomUUID(),
    model,
    version,
    prediction: null,
    inputs: {},
    attributes: {},
    keyHmac: null,
    latencyMs: 0,
    status: "ok",
    errorCode: null,
    stateVersion: 1,
    timestamp: new Date(at).toISOString(),
    ...fields,
  };
}

async function compare(compute: typeof canaryComparisons): Promise<Map<string, MetricRow[]>> {
  const handle = database();
  try {
    return await compute(handle.db, new Date(FROM), new Date(TO));
  } finally {
    await handle.close();
  }
}

const metric = (rows: MetricRow[] | undefined, name: string) =>
  rows?.find((r) => r.metric === name);

describe("canary comparison", () => {
  it("pairs each canary answer with the champion's control of the same request, in the window only", async () => {
    const model = uniqueName("cmp");
    const events: PredictionEvent[] = [];
    // 40 requests the canary v2 answered, each with the champion v1's control and a shadow v3.
    const pairs: {
      canary: { label: string; score: number } | null;
      control: { label: string; score: number } | null;
      canaryLatency: number;
      controlLatency: number;
    }[] = [];
    for (let i = 0; i < 40; i++) {
      const at = FROM + i * 20_000;
      const id = newPredictionId(at);
      const canary =
        i >= 36 ? null : { label: i % 5 === 0 ? "legit" : "fraud", score: 0.5 + (i % 3) / 10 };
      const control = i === 0 ? null : { label: "fraud", score: 0.3 + (i % 7) / 100 };
      pairs.push({ canary, control, canaryLatency: 20 + i, controlLatency: 12 });
      events.push(
        result(model, "canary", "v2", id, at, {
          prediction: canary,
          latencyMs: 20 + i,
          status: canary ? "ok" : "error",
          errorCode: canary ? null : "UPSTREAM_ERROR",
        }),
        result(model, "control", "v1", id, at, {
          prediction: control,
          latencyMs: 12,
          status: control ? "ok" : "timeout",
          errorCode: control ? null : "UPSTREAM_TIMEOUT",
        }),
        result(model, "shadow", "v3", id, at, {
          prediction: { label: "fraud", score: 0.5 },
          latencyMs: 30,
        }),
      );
    }
    // Not pairs: a control without its canary answer, a canary whose control falls in the
    // next window, a canary before the window, and a canary with only a shadow.
    const lonely = newPredictionId(FROM + 1_000);
    events.push(
      result(model, "control", "v1", lonely, FROM + 1_000, {
        prediction: { label: "legit", score: 0.1 },
        latencyMs: 999,
      }),
    );
    const edge = newPredictionId(TO - 1);
    events.push(
      result(model, "canary", "v2", edge, TO - 1, { prediction: { label: "legit", score: 0 } }),
      result(model, "control", "v1", edge, TO, { prediction: { label: "fraud", score: 1 } }),
    );
    const early = newPredictionId(FROM - 1);
    events.push(
      result(model, "canary", "v2", early, FROM - 1, { prediction: { label: "legit", score: 0 } }),
      result(model, "control", "v1", early, FROM - 1, { prediction: { label: "fraud", score: 1 } }),
    );
    const shadowOnly = newPredictionId(FROM + 2_000);
    events.push(
      result(model, "canary", "v2", shadowOnly, FROM + 2_000, {
        prediction: { label: "legit", score: 0 },
      }),
      result(model, "shadow", "v3", shadowOnly, FROM + 2_000, {
        prediction: { label: "fraud", score: 1 },
      }),
    );
    await storeLogs(env, events, []);

    const rows = (await compare(canaryComparisons)).get(`${model}\u0000v2`);
    // Expected values, straight from the pairs above.
    const labelled = pairs.filter((p) => p.canary && p.control);
    const agreeing = labelled.filter((p) => p.canary?.label === p.control?.label).length;
    const scoreDifference =
      labelled.reduce(
        (sum, p) => sum + Math.abs((p.canary?.score ?? 0) - (p.control?.score ?? 0)),
        0,
      ) / labelled.length;
    const latencyDelta =
      pairs.reduce((sum, p) => sum + p.canaryLatency - p.controlLatency, 0) / pairs.length;
    const canaryErrors = pairs.filter((p) => !p.canary).length;
    const controlErrors = pairs.filter((p) => !p.control).length;
    expect(labelled.length).toBe(35);

    expect(rows?.map((r) => r.metric).sort()).toEqual(
      [
        "canary_agreement",
        "canary_error_rate_delta",
        "canary_latency_delta_ms",
        "canary_score_difference",
      ].sort(),
    );
    for (const row of rows ?? []) {
      expect(row.dimension).toBe("v1");
      expect(row.status).toBe("ok");
      expect(row.details).toMatchObject({ pairs: 40, comparedWith: "v1" });
    }
    expect(metric(rows, "canary_agreement")?.value).toBeCloseTo(agreeing / 35, 12);
    expect(metric(rows, "canary_agreement")?.details).toMatchObject({ labelled: 35 });
    expect(metric(rows, "canary_score_difference")?.value).toBeCloseTo(scoreDifference, 12);
    expect(metric(rows, "canary_latency_delta_ms")?.value).toBeCloseTo(latencyDelta, 12);
    expect(metric(rows, "canary_error_rate_delta")?.value).toBeCloseTo(
      (canaryErrors - controlErrors) / 40,
      12,
    );

    // Shadows pair with the answer (the canary here), never with the control.
    const shadows = (await compare(shadowComparisons)).get(`${model}\u0000v3`);
    expect(new Set(shadows?.map((r) => r.dimension))).toEqual(new Set(["v2"]));
    expect(metric(shadows, "shadow_latency_delta_ms")?.details).toEqual({
      pairs: 41,
      answeredBy: "v2",
    });
  });

  it("compares a regression canary with its control by mean absolute difference and correlation", async () => {
    const model = uniqueName("cmp");
    const values = [
      [1, 2],
      [2, 4],
      [3, 5],
      [4, 9],
      [6, 8],
    ] as const;
    const control = values.map(([x]) => x);
    const canary = values.map(([, y]) => y);
    const events = values.flatMap(([value, canaryValue], i) => {
      const at = FROM + 60_000 * (i + 1);
      const id = newPredictionId(at);
      return [
        result(model, "control", "v1", id, at, { prediction: { value }, latencyMs: 10 }),
        result(model, "canary", "v2", id, at, {
          prediction: { value: canaryValue },
          latencyMs: 4,
        }),
      ];
    });
    await storeLogs(env, events, []);
    const rows = (await compare(canaryComparisons)).get(`${model}\u0000v2`);
    const n = control.length;
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const mx = mean(control);
    const my = mean(canary);
    let sxy = 0;
    let sxx = 0;
    let syy = 0;
    for (let i = 0; i < n; i++) {
      const dx = (control[i] ?? 0) - mx;
      const dy = (canary[i] ?? 0) - my;
      sxy += dx * dy;
      sxx += dx * dx;
      syy += dy * dy;
    }
    const absDifference = mean(canary.map((y, i) => Math.abs(y - (control[i] ?? 0))));
    expect(metric(rows, "canary_mean_abs_difference")?.value).toBeCloseTo(absDifference, 12);
    expect(metric(rows, "canary_correlation")?.value).toBeCloseTo(sxy / Math.sqrt(sxx * syy), 12);
    expect(metric(rows, "canary_latency_delta_ms")?.value).toBeCloseTo(4 - 10, 12);
    expect(metric(rows, "canary_error_rate_delta")?.value).toBe(0);
    expect(metric(rows, "canary_agreement")).toBeUndefined();
    expect(metric(rows, "canary_correlation")?.details).toEqual({
      pairs: n,
      comparedWith: "v1",
      valued: n,
    });
  });
});
