import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { runMonitoring } from "../../functions/jobs/monitoring";
import { storeLogs } from "../../functions/queue/prediction-logs";
import demo from "../../scripts/demo/demo-credit-risk.json";
import type { PredictionEvent } from "../../shared/inference/events";
import {
  call,
  createModel,
  type ErrorJson,
  httpUpstream,
  json,
  query,
  uniqueName,
} from "./helpers";
import { events, type ResultRow, rowsFrom } from "./traffic-helpers";

/** Airlock's own health alerts have their own tests (alerts.test.ts); their dates are real ones. */
const ownHealthElsewhere = { health: false };

const W1 = Date.parse("2026-11-22T10:00:00.000Z");
const W2 = W1 + 900_000;

async function results(model: string): Promise<ResultRow[]> {
  const response = await call(
    `/admin/models/${model}/monitoring?from=${new Date(W1).toISOString()}&to=${new Date(W2 + 900_000).toISOString()}`,
  );
  expect(response.status).toBe(200);
  return (await json<{ items: ResultRow[] }>(response)).items;
}

const find = (rows: ResultRow[], start: number, metric: string, dimension: string) =>
  rows.find(
    (r) =>
      r.windowSeconds === 900 &&
      Date.parse(r.windowStart) === start &&
      r.metric === metric &&
      r.dimension === dimension &&
      r.role === "served",
  );

describe("monitoring job: drift and data quality from logged traffic", () => {
  it("flags the drifted feature in its window only, leaves stable ones alone, and is idempotent", {
    timeout: 60_000,
  }, async () => {
    const model = uniqueName("mon");
    await createModel({ ...demo.model, name: model, public: false });
    const baselineRows = rowsFrom(model, 11, 800);
    const created = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: { version: "v1", upstream: httpUpstream, baseline: { rows: baselineRows } },
    });
    expect(created.status).toBe(201);
    // Window 1: the same distributions. Window 2: income moved up by 1.5
    // standard deviations, everything else as before.
    const stable = rowsFrom(model, 12, 1200);
    const drifted = rowsFrom(model, 13, 1200, ["income:shift=1.5sd@0"]);
    const logged = [...events(model, stable, W1), ...events(model, drifted, W2)];
    // A request refused by the input schema, in window 2.
    logged.push({
      ...(logged[0] as PredictionEvent),
      role: "rejected",
      predictionId: crypto.randomUUID(),
      version: "",
      prediction: null,
      inputs: { age: 7 },
      status: "rejected",
      issues: [{ path: "inputs.age", message: "must be at least 18" }],
      timestamp: new Date(W2 + 60_000).toISOString(),
    });
    await storeLogs(env, logged, []);

    const now = new Date(W2 + 900_000 + 30_000);
    const first = await runMonitoring(env, now, ownHealthElsewhere);
    expect(
      first.computed
        .filter((c) => c.model === model)
        .map((c) => c.start)
        .sort(),
    ).toEqual([new Date(W1).toISOString(), new Date(W2).toISOString()]);
    const rows = await results(model);
    const income2 = find(rows, W2, "drift", "income");
    expect(income2?.status).toBe("alert");
    expect(income2?.details.method).toBe("ks");
    expect(income2?.value).toBeLessThan(0.05);
    expect(find(rows, W1, "drift", "income")?.status).toBe("ok");
    for (const feature of ["debt_to_income", "age", "utilization", "months_employed"]) {
      expect(find(rows, W2, "drift", feature)?.status, feature).toBe("ok");
      expect(find(rows, W1, "drift", feature)?.status, feature).toBe("ok");
    }
    expect(find(rows, W2, "psi", "income")?.status).toBe("alert");
    expect(find(rows, W2, "results", "")?.value).toBe(1200);
    // Operations: every result ok, latency 2 ms; the model's answers came from no fallback.
    expect(find(rows, W2, "error_rate", "")?.value).toBe(0);
    expect(find(rows, W2, "latency_p95", "")?.value).toBe(2);
    const fallback = rows.find(
      (r) => r.metric === "fallback_rate" && r.version === "" && Date.parse(r.windowStart) === W2,
    );
    expect(fallback?.value).toBe(0);
    expect(fallback?.details).toEqual({ fallbacks: 0, answers: 1200 });
    expect(find(rows, W2, "missing_rate", "income")?.value).toBe(0);
    const dataset = find(rows, W2, "dataset_drift", "");
    expect(dataset?.details.drifting).toBe(1);
    expect(dataset?.status).toBe("ok");
    const rejection = rows.find(
      (r) =>
        r.metric === "schema_rejection_rate" &&
        r.dimension === "age" &&
        Date.parse(r.windowStart) === W2 &&
        r.windowSeconds === 900,
    );
    expect(rejection?.version).toBe("");
    expect(rejection?.value).toBeCloseTo(1 / 1201, 9);

    // Running again over the same windows replaces, never adds.
    await runMonitoring(env, now, ownHealthElsewhere);
    const again = await results(model);
    expect(again.length).toBe(rows.length);
    expect(again.map((r) => [r.metric, r.dimension, r.windowStart, r.value])).toEqual(
      rows.map((r) => [r.metric, r.dimension, r.windowStart, r.value]),
    );
    const runs = await query<{ status: string; windows: number }>(
      sql`SELECT status, windows FROM monitoring_runs WHERE id IN (${first.runId}) `,
    );
    expect(runs[0]?.status).toBe("succeeded");
  });

  it("records a run that fails midway, with its error, and keeps the windows it had finished", async () => {
    const model = uniqueName("mon");
    await createModel({ ...demo.model, name: model, public: false });
    await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: { version: "v1", upstream: httpUpstream, baseline: { rows: rowsFrom(model, 31, 300) } },
    });
    const start = Date.parse("2026-11-24T14:00:00.000Z");
    await storeLogs(env, events(model, rowsFrom(model, 32, 200), start), []);
    await storeLogs(env, events(model, rowsFrom(model, 33, 200), start + 900_000), []);
    // Storing the later window's results fails (as a lost connection or a full disk would).
    const fn = `fail_${model.replaceAll("-", "_")}`;
    await query(
      sql.raw(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.model = '${model}' AND NEW.window_start = '${new Date(start + 900_000).toISOString()}'
          THEN RAISE EXCEPTION 'injected failure in window %', NEW.window_start; END IF;
          RETURN NEW;
        END $$`),
    );
    await query(
      sql.raw(
        `CREATE TRIGGER ${fn} BEFORE INSERT ON monitoring_results FOR EACH ROW EXECUTE FUNCTION ${fn}()`,
      ),
    );
    let failure: unknown;
    try {
      await runMonitoring(env, new Date(start + 1_800_000 + 1000), ownHealthElsewhere);
    } catch (error) {
      failure = error;
    } finally {
      await query(sql.raw(`DROP TRIGGER ${fn} ON monitoring_results`));
      await query(sql.raw(`DROP FUNCTION ${fn}()`));
    }
    expect(String((failure as Error).cause)).toContain("injected failure");
    const [run] = await query<{ status: string; error: string; finished_at: string | null }>(
      sql`SELECT status, error, finished_at FROM monitoring_runs ORDER BY id DESC LIMIT 1`,
    );
    expect(run?.status).toBe("failed");
    expect(run?.error).toContain("injected failure");
    expect(run?.finished_at).not.toBeNull();
    // The failed window has nothing half-written; the next run computes it.
    const stored = await query<{ window_start: Date; n: string }>(
      sql`SELECT window_start, count(*) AS n FROM monitoring_results WHERE model = ${model}
          GROUP BY window_start`,
    );
    expect(stored.map((r) => new Date(r.window_start).toISOString())).not.toContain(
      new Date(start + 900_000).toISOString(),
    );
    const retry = await runMonitoring(env, new Date(start + 1_800_000 + 1000), ownHealthElsewhere);
    expect(retry.computed.filter((c) => c.model === model)).toHaveLength(2);
  });

  it("compares a shadow with the version that answered, pair by pair on the prediction id", async () => {
    const model = uniqueName("mon");
    await createModel({ ...demo.model, name: model, public: false });
    const start = Date.parse("2026-11-24T16:00:00.000Z");
    // 200 requests answered by v1; the shadow v2 disagrees on every fourth label, scores
    // 0.1 higher, takes 5 ms more, and fails on 10 requests (no prediction).
    const answered = events(model, rowsFrom(model, 41, 200), start).map((e, i) => ({
      ...e,
      prediction: { label: "repaid", score: 0.2 + (i % 5) / 100 },
      latencyMs: 10,
    }));
    const shadow = answered.map((e, i) => ({
      ...e,
      role: "shadow" as const,
      version: "v2",
      prediction:
        i >= 190 ? null : { label: i % 4 === 0 ? "default" : "repaid", score: 0.3 + (i % 5) / 100 },
      status: i >= 190 ? ("timeout" as const) : ("ok" as const),
      errorCode: i >= 190 ? "UPSTREAM_TIMEOUT" : null,
      latencyMs: 15,
    }));
    await storeLogs(env, [...answered, ...shadow], []);
    await runMonitoring(env, new Date(start + 900_000 + 1000), ownHealthElsewhere);
    const items = (
      await json<{ items: ResultRow[] }>(
        await call(
          `/admin/models/${model}/monitoring?version=v2&role=shadow&from=${new Date(start).toISOString()}&to=${new Date(start + 900_000).toISOString()}&window=900`,
        ),
      )
    ).items;
    const metric = (name: string) => items.find((r) => r.metric === name);
    const agreeing = Array.from({ length: 190 }, (_, i) => i % 4 !== 0).filter(Boolean).length;
    expect(metric("shadow_agreement")?.value).toBeCloseTo(agreeing / 190, 12);
    expect(metric("shadow_agreement")?.dimension).toBe("v1");
    expect(metric("shadow_agreement")?.details).toMatchObject({ pairs: 200, labelled: 190 });
    expect(metric("shadow_score_difference")?.value).toBeCloseTo(0.1, 12);
    expect(metric("shadow_latency_delta_ms")?.value).toBeCloseTo(5, 12);
    expect(metric("shadow_error_rate_delta")?.value).toBeCloseTo(10 / 200, 12);
    expect(metric("error_rate")?.value).toBeCloseTo(10 / 200, 12);
    expect(metric("shadow_correlation")).toBeUndefined();
  });

  it("reads results with filters and refuses unknown metrics by name", async () => {
    const model = uniqueName("mon");
    await createModel({ ...demo.model, name: model, public: false });
    const bad = await call(`/admin/models/${model}/monitoring?metric=accuracyy`);
    expect(bad.status).toBe(400);
    expect((await json<ErrorJson>(bad)).error.details?.[0]?.path).toBe("metric");
    const range = await call(
      `/admin/models/${model}/monitoring?from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z`,
    );
    expect((await json<ErrorJson>(range)).error.details?.[0]?.path).toBe("from");
    const empty = await call(`/admin/models/${model}/monitoring`);
    expect(await json(empty)).toMatchObject({ model, items: [], truncated: false });
  });

  it("takes per-model drift overrides, checked against the model's features and audited", async () => {
    const model = uniqueName("mon");
    await createModel({ ...demo.model, name: model, public: false });
    const unknown = await call(`/admin/models/${model}/monitoring/settings`, {
      method: "PUT",
      body: { drift: { features: { salary: { numericMethod: "wasserstein" } } } },
    });
    expect(unknown.status).toBe(400);
    expect((await json<ErrorJson>(unknown)).error.details?.[0]?.path).toBe("drift.features.salary");
    const invalid = await call(`/admin/models/${model}/monitoring/settings`, {
      method: "PUT",
      body: { drift: { thresholds: { ks: 2 } } },
    });
    expect((await json<ErrorJson>(invalid)).error.details?.[0]?.path).toBe("drift.thresholds.ks");
    const settings = {
      drift: {
        numericMethod: "wasserstein",
        // Its own PSI bins: the window must be counted over its own edges.
        features: { income: { thresholds: { wasserstein: 0.5 }, psi: { bins: 20 } } },
      },
      // A distance wants 1,000 values each side by default; this model accepts fewer.
      minimums: { driftDistance: { current: 300, reference: 300 } },
    };
    const put = await call(`/admin/models/${model}/monitoring/settings`, {
      method: "PUT",
      body: settings,
    });
    expect(put.status).toBe(200);
    expect(await json(await call(`/admin/models/${model}/monitoring/settings`))).toEqual(settings);
    const [audit] = await query<{ action: string }>(
      sql`SELECT action FROM audit_log WHERE target = ${`models/${model}`} AND action = 'model.monitoring.update'`,
    );
    expect(audit?.action).toBe("model.monitoring.update");

    // The job uses them: Wasserstein for every numeric feature.
    await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: { version: "v1", upstream: httpUpstream, baseline: { rows: rowsFrom(model, 21, 300) } },
    });
    const start = Date.parse("2026-11-23T06:00:00.000Z");
    await storeLogs(
      env,
      events(model, rowsFrom(model, 22, 400, ["income:shift=0.3sd@0"]), start),
      [],
    );
    await runMonitoring(env, new Date(start + 900_000 + 1000), ownHealthElsewhere);
    const rows = (
      await json<{ items: ResultRow[] }>(
        await call(
          `/admin/models/${model}/monitoring?metric=drift&from=${new Date(start).toISOString()}&to=${new Date(start + 900_000).toISOString()}&window=900`,
        ),
      )
    ).items;
    const income = rows.find((r) => r.dimension === "income");
    expect(income?.details.method).toBe("wasserstein");
    expect(income?.details.threshold).toBe(0.5);
    expect(income?.status).toBe("ok");
    expect(rows.find((r) => r.dimension === "age")?.details.threshold).toBe(0.1);
    const psi = await json<{ items: ResultRow[] }>(
      await call(
        `/admin/models/${model}/monitoring?metric=psi&from=${new Date(start).toISOString()}&to=${new Date(start + 900_000).toISOString()}&window=900`,
      ),
    );
    expect(psi.items.find((r) => r.dimension === "income")?.value).not.toBeNull();
  });
});
