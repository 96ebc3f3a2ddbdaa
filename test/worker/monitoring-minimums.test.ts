/**
 * Minimum counts: a window with too little data gets `insufficient_data`,
 * with the counts it had and needed, and no alert; per-model overrides.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { runMonitoring } from "../../functions/jobs/monitoring";
import { storeLogs } from "../../functions/queue/prediction-logs";
import demo from "../../scripts/demo/demo-credit-risk.json";
import type { MetricRow } from "../../shared/monitoring/metric-row";
import { applyMinimums, DEFAULT_MINIMUMS, resolveMinimums } from "../../shared/monitoring/minimums";
import { call, createModel, httpUpstream, json, uniqueName } from "./helpers";
import { events, type ResultRow, rowsFrom } from "./traffic-helpers";

const row = (fields: Partial<MetricRow> & Pick<MetricRow, "metric">): MetricRow => ({
  dimension: "",
  value: 0.5,
  reason: null,
  status: "ok",
  details: {},
  ...fields,
});

describe("minimum counts, as a pure pass over result rows", () => {
  const defaults = resolveMinimums(null);

  it("holds each statistic to the count it rests on", () => {
    const ks = applyMinimums(
      row({ metric: "drift", status: "alert", details: { method: "ks", n: 99, referenceN: 500 } }),
      defaults,
    );
    expect(ks).toMatchObject({
      status: "insufficient_data",
      reason: "insufficient_data",
      value: 0.5,
      details: {
        counts: { current: 99, reference: 500 },
        needed: { current: 100, reference: 100 },
      },
    });
    // Enough for a p-value test, too few for a distance, whose noise shrinks as 1/sqrt(n).
    const enough = { n: 600, referenceN: 5000 };
    expect(
      applyMinimums(row({ metric: "drift", details: { method: "ks", ...enough } }), defaults)
        .status,
    ).toBe("ok");
    expect(
      applyMinimums(
        row({ metric: "drift", details: { method: "wasserstein", ...enough } }),
        defaults,
      ).status,
    ).toBe("insufficient_data");
    expect(
      applyMinimums(
        row({ metric: "psi", status: "alert", details: { n: 1, referenceN: 800 } }),
        defaults,
      ).status,
    ).toBe("insufficient_data");
    expect(
      applyMinimums(
        row({ metric: "error_rate", status: "alert", details: { results: 3 } }),
        defaults,
      ).status,
    ).toBe("insufficient_data");
    expect(
      applyMinimums(row({ metric: "shadow_agreement", details: { pairs: 99 } }), defaults).status,
    ).toBe("insufficient_data");
    expect(applyMinimums(row({ metric: "accuracy", details: { n: 100 } }), defaults).status).toBe(
      "ok",
    );
    expect(
      applyMinimums(row({ metric: "roc_auc", details: { positives: 9, negatives: 500 } }), defaults)
        .details.needed,
    ).toEqual({ positives: 10, negatives: 10 });
    expect(
      applyMinimums(
        row({ metric: "kpi_difference", details: { canary: { n: 29 }, champion: { n: 400 } } }),
        defaults,
      ).status,
    ).toBe("insufficient_data");
    // Counts nobody holds a verdict to are left alone.
    expect(applyMinimums(row({ metric: "results", value: 1 }), defaults).status).toBe("ok");
  });

  it("says insufficient_data where a statistic had no data, and unknown where it is undefined", () => {
    expect(
      applyMinimums(
        row({
          metric: "selection_rate",
          value: null,
          reason: "group_too_small",
          status: "unknown",
          details: { n: 4 },
        }),
        defaults,
      ),
    ).toMatchObject({
      status: "insufficient_data",
      reason: "group_too_small",
      details: { needed: { group: 30 } },
    });
    expect(
      applyMinimums(
        row({ metric: "dataset_drift", value: null, reason: "no_features", status: "unknown" }),
        defaults,
      ).status,
    ).toBe("insufficient_data");
    expect(
      applyMinimums(
        row({
          metric: "psi",
          value: null,
          reason: "constant_reference",
          status: "unknown",
          details: { n: 5000, referenceN: 5000 },
        }),
        defaults,
      ).status,
    ).toBe("unknown");
  });

  it("takes a model's overrides over the defaults", () => {
    const mine = resolveMinimums({ driftDistance: { current: 300 } });
    expect(mine.driftDistance).toEqual({
      current: 300,
      reference: DEFAULT_MINIMUMS.driftDistance.reference,
    });
    expect(mine.psi).toEqual(DEFAULT_MINIMUMS.psi);
  });
});

describe("a window with too little data", () => {
  it("gets insufficient_data with its counts, and opens no alert", {
    timeout: 60_000,
  }, async () => {
    const model = uniqueName("few");
    await createModel({ ...demo.model, name: model, public: false });
    const created = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: { version: "v1", upstream: httpUpstream, baseline: { rows: rowsFrom(model, 8, 800) } },
    });
    expect(created.status).toBe(201);
    // One prediction, far from the baseline: PSI of about 8, a KS p-value of 0.
    const start = Date.parse("2026-10-13T07:00:00.000Z");
    await storeLogs(
      env,
      events(model, rowsFrom(model, 9, 1, ["income:shift=6sd@0", "age:shift=6sd@0"]), start),
      [],
    );
    const report = await runMonitoring(env, new Date(start + 900_000 + 20_000), { health: false });
    expect(report.alerts.insufficient).toBeGreaterThan(0);
    const response = await call(
      `/admin/models/${model}/monitoring?from=${new Date(start).toISOString()}&to=${new Date(start + 900_000).toISOString()}&window=900&version=v1`,
    );
    const rows = (await json<{ items: ResultRow[] }>(response)).items;
    const income = rows.filter((r) => r.dimension === "income");
    for (const metric of ["drift", "psi", "missing_rate"]) {
      expect(income.find((r) => r.metric === metric)?.status, metric).toBe("insufficient_data");
    }
    expect(income.find((r) => r.metric === "drift")?.details).toMatchObject({
      counts: { current: 1, reference: 800 },
      needed: { current: 100, reference: 100 },
    });
    expect(rows.find((r) => r.metric === "dataset_drift")?.status).toBe("insufficient_data");
    expect(rows.find((r) => r.metric === "error_rate")?.status).toBe("insufficient_data");
    const alerts = await call(`/admin/alerts?model=${model}`);
    expect((await json<{ items: unknown[] }>(alerts)).items).toEqual([]);
  });
});
