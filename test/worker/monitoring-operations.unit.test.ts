import { describe, expect, it } from "vitest";
import { fallbackRow, operationsRows } from "../../shared/monitoring/operations-rows";

describe("operations metrics of a window", () => {
  it("gives results, the error rate with its level, and the latency percentiles", () => {
    const rows = operationsRows({
      model: "m",
      version: "v1",
      role: "served",
      results: 400,
      errors: 8,
      circuitOpen: 2,
      p50: 12.5,
      p95: 40,
      p99: 95.5,
    });
    const by = Object.fromEntries(rows.map((r) => [r.metric, r]));
    expect(by.results?.value).toBe(400);
    expect(by.error_rate?.value).toBe(0.02);
    expect(by.error_rate?.status).toBe("warn");
    expect(by.circuit_open_rate).toMatchObject({ value: 0.005, status: "alert" });
    expect(by.latency_p50?.value).toBe(12.5);
    expect(by.latency_p99?.value).toBe(95.5);
    expect(
      operationsRows({
        model: "m",
        version: "v1",
        role: "served",
        results: 100,
        errors: 6,
        circuitOpen: 0,
        p50: 1,
        p95: 1,
        p99: 1,
      }).find((r) => r.metric === "error_rate")?.status,
    ).toBe("alert");
    expect(
      operationsRows({
        model: "m",
        version: "v1",
        role: "served",
        results: 100,
        errors: 0,
        circuitOpen: 0,
        p50: 1,
        p95: 1,
        p99: 1,
      }).find((r) => r.metric === "circuit_open_rate"),
    ).toMatchObject({ value: 0, status: "ok" });
  });

  it("says why a rate or a percentile has no value", () => {
    const rows = operationsRows({
      model: "m",
      version: "v1",
      role: "served",
      results: 0,
      errors: 0,
      circuitOpen: 0,
      p50: null,
      p95: null,
      p99: null,
    });
    const rate = rows.find((r) => r.metric === "error_rate");
    expect(rate?.value).toBeNull();
    expect(rate?.reason).toBe("no_results");
    expect(rows.find((r) => r.metric === "latency_p95")?.reason).toBe("no_values");
  });

  it("rates fallbacks among all answers of a model", () => {
    expect(fallbackRow(200, 3)).toMatchObject({ value: 0.015, status: "warn" });
    expect(fallbackRow(200, 0)).toMatchObject({ value: 0, status: "ok" });
    expect(fallbackRow(0, 0)).toMatchObject({ value: null, reason: "no_requests" });
  });
});
