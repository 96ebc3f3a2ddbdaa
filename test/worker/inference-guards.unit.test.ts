import { describe, expect, it } from "vitest";
import { CircuitBreaker } from "../../shared/inference/circuit-breaker";

describe("circuit breaker", () => {
  it("opens after the threshold of consecutive failures, fails fast, then lets one trial through", () => {
    const breaker = new CircuitBreaker({ failureThreshold: 3, openMs: 1000 });
    expect(breaker.failure(0)).toBeUndefined();
    breaker.success();
    expect(breaker.failure(1)).toBeUndefined();
    expect(breaker.failure(2)).toBeUndefined();
    expect(breaker.failure(3)).toEqual({ from: "closed", to: "open", failures: 3 });
    expect(breaker.allow(500)).toEqual({ allowed: false });
    expect(breaker.allow(1002)).toEqual({ allowed: false });
    const trial = breaker.allow(1003);
    expect(trial).toEqual({
      allowed: true,
      transition: { from: "open", to: "half-open", failures: 3 },
    });
    expect(breaker.allow(1004)).toEqual({ allowed: false });
    expect(breaker.success()).toEqual({ from: "half-open", to: "closed", failures: 0 });
    expect(breaker.allow(1005)).toEqual({ allowed: true });
  });

  it("reopens when the trial fails, for a fresh period", () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1, openMs: 100 });
    breaker.failure(0);
    expect(breaker.allow(100).allowed).toBe(true);
    expect(breaker.failure(150)).toEqual({ from: "half-open", to: "open", failures: 2 });
    expect(breaker.allow(200).allowed).toBe(false);
    expect(breaker.allow(250).allowed).toBe(true);
  });
});
