/**
 * Monitoring says what a model's data policy took away: a dropped or hashed
 * feature has its drift and data-quality rows without a value, with the
 * policy's reason (never a 100% missing rate), and a dropped segment
 * attribute has fairness `insufficient_data`, saying why; the rest of the
 * window is monitored as before.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { runMonitoring } from "../../functions/jobs/monitoring";
import { storeLogs } from "../../functions/queue/prediction-logs";
import demo from "../../scripts/demo/demo-credit-risk.json";
import {
  type DataPolicy,
  storableAttributes,
  storableInputs,
} from "../../shared/privacy/data-policy";
import { call, createModel, httpUpstream, json, uniqueName } from "./helpers";
import { events, type ResultRow, rowsFrom } from "./traffic-helpers";

const W = Date.parse("2026-11-23T10:00:00.000Z");

describe("monitoring under a data policy", () => {
  it("says which features and segments the policy took away, and monitors the rest", {
    timeout: 60_000,
  }, async () => {
    const model = uniqueName("mdp");
    await createModel({ ...demo.model, name: model, public: false });
    const created = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: { version: "v1", upstream: httpUpstream, baseline: { rows: rowsFrom(model, 11, 400) } },
    });
    expect(created.status).toBe(201);
    const policy: DataPolicy = {
      fields: { income: "drop", age: "hash" },
      attributes: { branch: "drop", segment: "hash" },
    };
    expect(
      (await call(`/admin/models/${model}/data-policy`, { method: "PUT", body: policy })).status,
    ).toBe(200);

    // What the Worker stores under that policy.
    const logged = await Promise.all(
      events(model, rowsFrom(model, 12, 600), W).map(async (event, i) => ({
        ...event,
        inputs: await storableInputs(policy, event.inputs, env.LOG_HMAC_KEY),
        attributes: await storableAttributes(
          policy,
          { branch: `b${i % 3}`, segment: `s${i % 2}`, region: i % 2 ? "north" : "south" },
          env.LOG_HMAC_KEY,
        ),
      })),
    );
    await storeLogs(env, logged, []);
    await runMonitoring(env, new Date(W + 900_000 + 30_000), { settleMs: 0, health: false });

    const response = await call(
      `/admin/models/${model}/monitoring?from=${new Date(W).toISOString()}&to=${new Date(W + 900_000).toISOString()}`,
    );
    expect(response.status).toBe(200);
    const rows = (await json<{ items: ResultRow[] }>(response)).items.filter(
      (r) => r.windowSeconds === 900 && r.role === "served",
    );
    const find = (metric: string, dimension: string) =>
      rows.find((r) => r.metric === metric && r.dimension === dimension);

    for (const metric of ["drift", "psi", "missing_rate", "out_of_range_rate"]) {
      expect(find(metric, "income"), metric).toMatchObject({
        value: null,
        status: "insufficient_data",
        reason: "dropped_by_data_policy",
        details: { dataPolicy: "drop" },
      });
      expect(find(metric, "age"), metric).toMatchObject({
        value: null,
        status: "insufficient_data",
        reason: "hashed_by_data_policy",
        details: { dataPolicy: "hash" },
      });
    }
    expect(String(find("drift", "income")?.details.message)).toContain(
      "dropped by the model's data policy",
    );
    // The features the policy keeps are monitored as before.
    expect(find("drift", "debt_to_income")).toMatchObject({ status: "ok", reason: null });
    expect(find("missing_rate", "debt_to_income")?.value).toBe(0);
    expect(find("dataset_drift", "")?.details.features).toBe(
      Object.keys(demo.model.inputSchema.properties).length - 2,
    );

    // Fairness: the dropped attribute says why it has none; the kept and
    // hashed ones are segmented (the hashed one by its hashes).
    for (const metric of [
      "demographic_parity_difference",
      "disparate_impact_ratio",
      "equal_opportunity_difference",
    ]) {
      expect(find(metric, "branch"), metric).toMatchObject({
        value: null,
        status: "insufficient_data",
        reason: "dropped_by_data_policy",
      });
      expect(find(metric, "region")?.reason, metric).not.toBe("dropped_by_data_policy");
    }
    expect(find("demographic_parity_difference", "segment")).toBeDefined();
    expect(rows.some((r) => r.dimension.startsWith("segment=hmac:"))).toBe(true);
    expect(rows.some((r) => r.dimension.startsWith("branch="))).toBe(false);
  });
});
