import { describe, expect, it } from "vitest";
import { retryAfterSeconds } from "../../durable-objects/alert-destination";
import { alertLink, deliveryBackoffSeconds } from "../../functions/queue/alert-deliveries";

describe("alert delivery timing", () => {
  const now = Date.parse("2026-11-26T03:00:00Z");

  it("reads Retry-After as seconds or as an HTTP date, with a default and a cap", () => {
    expect(retryAfterSeconds("7", now)).toBe(7);
    expect(retryAfterSeconds(" 120 ", now)).toBe(120);
    expect(retryAfterSeconds("Thu, 26 Nov 2026 03:00:42 GMT", now)).toBe(42);
    expect(retryAfterSeconds("Thu, 26 Nov 2026 02:59:00 GMT", now)).toBe(0);
    expect(retryAfterSeconds(null, now)).toBe(30);
    expect(retryAfterSeconds("soon", now)).toBe(30);
    expect(retryAfterSeconds("999999999", now)).toBe(86_400);
  });

  it("backs off from 5 s, doubling, to 10 minutes", () => {
    expect([1, 2, 3, 4, 7, 8, 100].map(deliveryBackoffSeconds)).toEqual([
      5, 10, 20, 40, 320, 600, 600,
    ]);
  });
});

describe("alert links", () => {
  const alert = {
    id: 12,
    model: "fraud-detector",
    version: "v2",
    metric: "drift",
    window_seconds: 900,
    window_start: "2026-11-26T02:45:00Z",
  } as Parameters<typeof alertLink>[1];

  it("points at the model's results for the alert's window and metric", () => {
    const link = new URL(alertLink("https://airlock.example.com/", alert));
    expect(link.pathname).toBe("/admin/models/fraud-detector/monitoring");
    expect(Object.fromEntries(link.searchParams)).toEqual({
      from: "2026-11-26T02:45:00.000Z",
      to: "2026-11-26T03:00:00.000Z",
      window: "900",
      version: "v2",
      metric: "drift",
    });
  });

  it("points Airlock's own alerts at the alert, and is relative without a base", () => {
    expect(alertLink("", { ...alert, model: "", version: "", metric: "dead_letters" })).toBe(
      "/admin/alerts/12",
    );
  });
});
