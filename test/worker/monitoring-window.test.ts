import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { categoricalWindows, numericWindows } from "../../functions/monitoring/window-sql";
import { storeLogs } from "../../functions/queue/prediction-logs";
import { openDatabase } from "../../shared/db/client";
import type { PredictionEvent } from "../../shared/inference/events";
import { cumulativeCounts } from "../../shared/monitoring/window-counts";
import { uniqueName } from "./helpers";

function event(model: string, inputs: Record<string, unknown>, at: number, role = "served") {
  return {
    role,
    predictionId: crypto.randomUUID(),
    requestId: crypto.randomUUID(),
    model,
    version: "v1",
    prediction: { value: (inputs.x as number) ?? 0 },
    inputs,
    attributes: {},
    keyHmac: null,
    latencyMs: 1,
    status: "ok",
    errorCode: null,
    stateVersion: 1,
    timestamp: new Date(at).toISOString(),
  } as PredictionEvent;
}

describe("monitoring: a window aggregated in Postgres", () => {
  it("counts values below and at each threshold exactly, ties included, and categories", async () => {
    const model = uniqueName("win");
    const start = Date.parse("2026-11-21T08:00:00Z");
    // Integers 0..9 with ties, some missing or not numbers, and a category.
    const xs = [3, 3, 7, 0, 9, 9, 9, 1.5, 4, 10, -2, 3, 6, 8, 8];
    const events = xs.map((x, i) =>
      event(model, { x, c: i % 3 === 0 ? "a" : i % 3 === 1 ? "b" : true }, start + i * 1000),
    );
    events.push(event(model, { c: "a" }, start + 20_000));
    events.push(event(model, { x: null, c: null }, start + 21_000));
    events.push(event(model, { x: 1 }, start + 22_000, "shadow"));
    events.push(event(model, { x: 1 }, start + 3_600_000));
    await storeLogs(env, events, []);
    const window = {
      model,
      version: "v1",
      role: "served",
      from: new Date(start),
      to: new Date(start + 60_000),
    };
    const handle = openDatabase(env);
    try {
      const thresholds = [0, 3, 4.5, 8, 9];
      const numeric = await numericWindows(handle.db, window, "inputs", { x: thresholds });
      const x = numeric.x;
      if (!x) throw new Error("no window for x");
      expect(x.n).toBe(xs.length);
      expect(x.missing).toBe(2);
      expect(x.min).toBe(-2);
      expect(x.max).toBe(10);
      expect(x.mean).toBeCloseTo(xs.reduce((a, b) => a + b, 0) / xs.length, 12);
      const { below, atOrBelow } = cumulativeCounts(x);
      expect(below).toEqual(thresholds.map((t) => xs.filter((v) => v < t).length));
      expect(atOrBelow).toEqual(thresholds.map((t) => xs.filter((v) => v <= t).length));
      expect(x.buckets.reduce((a, b) => a + b, 0)).toBe(xs.length);
      const categorical = await categoricalWindows(handle.db, window, "inputs", ["c"]);
      expect(categorical.c).toEqual({ n: 16, missing: 1, counts: { a: 6, b: 5, true: 5 } });
      const predictions = await numericWindows(handle.db, window, "prediction", { value: [5] });
      expect(
        cumulativeCounts(predictions.value as NonNullable<typeof predictions.value>).below,
      ).toEqual([xs.filter((v) => v < 5).length + 2]);
    } finally {
      await handle.close();
    }
  });
});
