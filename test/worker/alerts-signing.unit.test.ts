/**
 * Generic webhook signatures against an HMAC computed independently, and the
 * receiver's checks: missing headers, altered bodies, wrong secrets, stale
 * or future timestamps.
 */
import { describe, expect, it } from "vitest";
import {
  SIGNATURE_HEADER,
  signWebhook,
  TIMESTAMP_HEADER,
  verifyWebhook,
  webhookBody,
} from "../../shared/alerts/signing";
import type { AlertNotice } from "../../shared/alerts/types";

// Computed once with node:crypto, createHmac("sha256", VECTOR_SECRET)
// .update(`${VECTOR_TIMESTAMP}.${VECTOR_BODY}`).digest("hex"), and hard-coded.
const VECTOR_SECRET = "whsec_test_secret";
const VECTOR_TIMESTAMP = 1764122400;
const VECTOR_BODY = '{"type":"alert.firing","alert":{"alertId":1}}';
const VECTOR_HEX = "29ef50a411962213153e167e41da063cb07033475180e36ee2d571ab1783d5fd";

const notice: AlertNotice = {
  alertId: 42,
  state: "firing",
  severity: "critical",
  rule: "drift",
  model: "fraud",
  version: "v3",
  role: "champion",
  metric: "drift_ks",
  dimension: "income",
  value: 0.0001,
  threshold: 0.05,
  comparison: "below",
  statistics: [
    {
      metric: "drift",
      name: "KS p-value",
      value: 0.0001,
      threshold: 0.05,
      comparison: "below",
      violating: true,
    },
  ],
  windowSeconds: 3600,
  windowStart: "2026-11-26T01:00:00.000Z",
  firstSeenAt: "2026-11-26T01:05:00.000Z",
  lastSeenAt: "2026-11-26T02:05:00.000Z",
  resolvedAt: null,
  count: 2,
  summary: "income drifted (KS p = 0.0001 < 0.05)",
  link: "https://airlock.example.com/admin/models/fraud/monitoring",
};

describe("signWebhook", () => {
  it("matches an HMAC-SHA256 computed independently", async () => {
    const signed = await signWebhook(VECTOR_SECRET, VECTOR_BODY, VECTOR_TIMESTAMP);
    expect(signed).toEqual({ timestamp: "1764122400", signature: `v1=${VECTOR_HEX}` });
  });

  it("signs whole seconds", async () => {
    const signed = await signWebhook(VECTOR_SECRET, VECTOR_BODY, VECTOR_TIMESTAMP + 0.9);
    expect(signed.timestamp).toBe("1764122400");
    expect(signed.signature).toBe(`v1=${VECTOR_HEX}`);
  });

  it("changes with the secret, the body and the timestamp", async () => {
    const base = (await signWebhook(VECTOR_SECRET, VECTOR_BODY, VECTOR_TIMESTAMP)).signature;
    const variants = await Promise.all([
      signWebhook(`${VECTOR_SECRET}x`, VECTOR_BODY, VECTOR_TIMESTAMP),
      signWebhook(VECTOR_SECRET, `${VECTOR_BODY} `, VECTOR_TIMESTAMP),
      signWebhook(VECTOR_SECRET, VECTOR_BODY, VECTOR_TIMESTAMP + 1),
    ]);
    for (const variant of variants) expect(variant.signature).not.toBe(base);
  });

  it("refuses an empty secret", async () => {
    await expect(signWebhook("", VECTOR_BODY, VECTOR_TIMESTAMP)).rejects.toThrow(/secret is empty/);
  });

  it("names its headers", () => {
    expect(SIGNATURE_HEADER).toBe("x-airlock-signature");
    expect(TIMESTAMP_HEADER).toBe("x-airlock-timestamp");
  });
});

describe("verifyWebhook", () => {
  const now = VECTOR_TIMESTAMP + 10;
  const headers = { timestamp: String(VECTOR_TIMESTAMP), signature: `v1=${VECTOR_HEX}` };

  it("accepts the independently computed signature", async () => {
    expect(await verifyWebhook(VECTOR_SECRET, VECTOR_BODY, headers, now)).toEqual({ ok: true });
  });

  it("accepts upper-case hex", async () => {
    const upper = { ...headers, signature: `v1=${VECTOR_HEX.toUpperCase()}` };
    expect(await verifyWebhook(VECTOR_SECRET, VECTOR_BODY, upper, now)).toEqual({ ok: true });
  });

  it("reports missing headers", async () => {
    for (const partial of [
      { timestamp: null, signature: headers.signature },
      { timestamp: headers.timestamp, signature: undefined },
      { timestamp: "", signature: "" },
    ]) {
      expect(await verifyWebhook(VECTOR_SECRET, VECTOR_BODY, partial, now)).toEqual({
        ok: false,
        reason: "missing",
      });
    }
  });

  it("rejects an altered body, a wrong secret or a moved timestamp", async () => {
    const mismatch = { ok: false, reason: "mismatch" };
    expect(await verifyWebhook(VECTOR_SECRET, `${VECTOR_BODY} `, headers, now)).toEqual(mismatch);
    expect(await verifyWebhook("another", VECTOR_BODY, headers, now)).toEqual(mismatch);
    const moved = { ...headers, timestamp: String(VECTOR_TIMESTAMP + 1) };
    expect(await verifyWebhook(VECTOR_SECRET, VECTOR_BODY, moved, now)).toEqual(mismatch);
  });

  it("rejects malformed signatures and other versions", async () => {
    for (const signature of [
      VECTOR_HEX,
      `v0=${VECTOR_HEX}`,
      `v1=${VECTOR_HEX.slice(0, -2)}`,
      `v1=${VECTOR_HEX}00`,
      `v1=${"z".repeat(64)}`,
    ]) {
      const result = await verifyWebhook(
        VECTOR_SECRET,
        VECTOR_BODY,
        { ...headers, signature },
        now,
      );
      expect(result).toEqual({ ok: false, reason: "mismatch" });
    }
  });

  it("rejects a genuine signature outside the tolerance, in either direction", async () => {
    const stale = { ok: false, reason: "stale" };
    expect(
      await verifyWebhook(VECTOR_SECRET, VECTOR_BODY, headers, VECTOR_TIMESTAMP + 300),
    ).toEqual({ ok: true });
    expect(
      await verifyWebhook(VECTOR_SECRET, VECTOR_BODY, headers, VECTOR_TIMESTAMP + 301),
    ).toEqual(stale);
    expect(
      await verifyWebhook(VECTOR_SECRET, VECTOR_BODY, headers, VECTOR_TIMESTAMP - 301),
    ).toEqual(stale);
    expect(await verifyWebhook(VECTOR_SECRET, VECTOR_BODY, headers, now, 5)).toEqual(stale);
  });

  it("round-trips what signWebhook produces", async () => {
    const body = webhookBody(notice);
    const signed = await signWebhook("s3cret", body, 1_800_000_000);
    expect(await verifyWebhook("s3cret", body, signed, 1_800_000_100)).toEqual({ ok: true });
    expect(await verifyWebhook("s3cret", body, signed, 1_800_000_400)).toEqual({
      ok: false,
      reason: "stale",
    });
  });
});

describe("webhookBody", () => {
  it("is { type, alert } with the notice's fields only", () => {
    const withExtra = { ...notice, destinationSecret: "must not leak" } as AlertNotice;
    const body = JSON.parse(webhookBody(withExtra));
    expect(body).toEqual({ type: "alert.firing", alert: notice });
    expect(webhookBody(withExtra)).not.toContain("must not leak");
  });

  it("names resolution alert.resolved", () => {
    const resolved: AlertNotice = {
      ...notice,
      state: "resolved",
      resolvedAt: "2026-11-26T03:00:00.000Z",
    };
    expect(JSON.parse(webhookBody(resolved)).type).toBe("alert.resolved");
  });

  it("is the same text whatever the notice's key order, so redeliveries differ only by timestamp", async () => {
    const reordered = Object.fromEntries(
      Object.entries(notice).reverse(),
    ) as unknown as AlertNotice;
    expect(webhookBody(reordered)).toBe(webhookBody(notice));
    const first = await signWebhook("s", webhookBody(notice), 1000);
    const again = await signWebhook("s", webhookBody(reordered), 1000);
    expect(again).toEqual(first);
  });
});
