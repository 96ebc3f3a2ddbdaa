import { describe, expect, it } from "vitest";
import { CircuitBreaker } from "../../shared/inference/circuit-breaker";
import { checkUpstreamUrl, isPrivateAddress, parseAllowlist } from "../../shared/inference/egress";

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

describe("egress allowlist", () => {
  const none = parseAllowlist("");
  it("allows https to public hosts, and nothing else unless allowlisted", () => {
    expect(checkUpstreamUrl("https://models.example.com/v2/models/m/infer", none)).toEqual({
      ok: true,
    });
    expect(checkUpstreamUrl("http://models.example.com/predict", none).ok).toBe(false);
    expect(checkUpstreamUrl("https://10.1.2.3/predict", none).ok).toBe(false);
    expect(checkUpstreamUrl("https://[::1]/predict", none).ok).toBe(false);
    expect(checkUpstreamUrl("https://localhost/predict", none).ok).toBe(false);
    const local = parseAllowlist(" 127.0.0.1, Localhost ,");
    expect([...local]).toEqual(["127.0.0.1", "localhost"]);
    expect(checkUpstreamUrl("http://127.0.0.1:9000/predict", local)).toEqual({ ok: true });
    expect(checkUpstreamUrl("http://localhost:9000/predict", local)).toEqual({ ok: true });
    expect(checkUpstreamUrl("http://127.0.0.2:9000/predict", local).ok).toBe(false);
  });

  it("knows the private, loopback and link-local ranges", () => {
    for (const host of [
      "10.0.0.1",
      "127.0.0.1",
      "172.16.0.1",
      "172.31.255.255",
      "192.168.1.1",
      "169.254.169.254",
      "100.64.0.1",
      "0.0.0.0",
      "::1",
      "fd00::1",
      "fe80::1",
      "::ffff:10.0.0.1",
    ]) {
      expect(isPrivateAddress(host), host).toBe(true);
    }
    for (const host of [
      "8.8.8.8",
      "172.32.0.1",
      "192.169.0.1",
      "100.128.0.1",
      "2606:4700::1111",
      "models.example.com",
    ]) {
      expect(isPrivateAddress(host), host).toBe(false);
    }
  });
});
