/**
 * A destination's test notice, end to end: the admin route, a delivery row,
 * the ALERT_DELIVERIES queue and its consumer, the destination's object,
 * and the local alert receiver (test/global-setup.ts) standing in for Slack
 * and for a webhook consumer.
 */
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { verifyWebhook } from "../../shared/alerts/signing";
import {
  call,
  classificationModel,
  createModel,
  type ErrorJson,
  json,
  query,
  uniqueName,
} from "./helpers";

const receiverBase = String((env as unknown as Record<string, unknown>).TEST_ALERT_RECEIVER ?? "");

interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
  status: number | null;
}

interface DeliveryJson {
  id: number;
  alertId: number | null;
  destinationId: string;
  transition: string;
  status: string;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  sentAt: string | null;
}

async function received(path: string): Promise<Received[]> {
  const response = await fetch(`${receiverBase}/__requests?path=${encodeURIComponent(path)}`);
  expect(response.status).toBe(200);
  return (await response.json()) as Received[];
}

async function setChannel(path: string, mode: Record<string, unknown>): Promise<void> {
  const response = await fetch(`${receiverBase}/__control${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(mode),
  });
  expect(response.status).toBe(200);
}

/**
 * A destination that takes only a model of its own, which never alerts:
 * other tests' alerts (running alongside) neither reach it nor see it.
 */
async function createDestination(body: Record<string, unknown>) {
  const model = uniqueName("quiet");
  expect((await createModel(classificationModel(model))).status).toBe(201);
  const response = await call("/admin/alert-destinations", {
    method: "POST",
    body: { ...body, models: [model], includeSystem: false },
  });
  expect(response.status).toBe(201);
  return json<{ id: string; name: string }>(response);
}

const sendTest = (id: string, query = "") =>
  call(`/admin/alert-destinations/${id}/test${query}`, { method: "POST" });

/** No alert is made, and the destination has no delivery but its tests. */
async function expectNoAlert(destinationId: string) {
  const rows = await query<{ transition: string; alert_id: string | null }>(
    sql`SELECT transition, alert_id FROM alert_deliveries WHERE destination_id = ${destinationId}`,
  );
  expect(rows.length).toBeGreaterThan(0);
  for (const row of rows) expect(row).toEqual({ transition: "test", alert_id: null });
}

describe("test notices", () => {
  it("reach a Slack destination marked as a test, report sent, and are audited", {
    timeout: 60_000,
  }, async () => {
    const path = `/hooks/test-slack-${uniqueName("t")}`;
    const destination = await createDestination({
      name: "risk <!channel> room",
      kind: "slack",
      url: `${receiverBase}${path}`,
    });
    const response = await sendTest(destination.id);
    expect(response.status).toBe(201);
    const delivery = await json<DeliveryJson>(response);
    expect(response.headers.get("location")).toBe(`/admin/alert-deliveries/${delivery.id}`);
    expect(delivery).toMatchObject({
      alertId: null,
      destinationId: destination.id,
      transition: "test",
      status: "sent",
      attempts: 1,
      lastStatus: 200,
      lastError: null,
    });
    expect(delivery.sentAt).not.toBeNull();

    const requests = await received(path);
    expect(requests.map((r) => r.status)).toEqual([200]);
    const message = JSON.parse(requests[0]?.body ?? "{}") as { text: string; blocks: unknown[] };
    expect(message.text).toMatch(/^Test notice from Airlock: /);
    expect(JSON.stringify(message.blocks)).toContain("Test notice from Airlock");
    // The destination's name is the operator's: escaped, it mentions nobody.
    expect(requests[0]?.body).not.toContain("<!channel>");
    expect(message.text).toContain("&lt;!channel&gt;");

    const followed = await call(`/admin/alert-deliveries/${delivery.id}`);
    expect(followed.status).toBe(200);
    expect(await json(followed)).toEqual(delivery);
    await expectNoAlert(destination.id);

    const audit = await query<{ action: string; actor: string; after: { deliveryId: number } }>(
      sql`SELECT action, actor, after FROM audit_log
          WHERE target = ${`alert-destinations/${destination.id}`} ORDER BY id`,
    );
    expect(audit.map((a) => a.action)).toEqual([
      "alert_destination.create",
      "alert_destination.test",
    ]);
    expect(audit[1]).toMatchObject({
      actor: "prn_testadmin",
      after: { deliveryId: delivery.id },
    });
  });

  it("reach a webhook signed as alerts are, typed alert.test and without an alert", {
    timeout: 60_000,
  }, async () => {
    const path = `/hooks/test-webhook-${uniqueName("t")}`;
    const secret = `whsec-${"t".repeat(40)}`;
    const destination = await createDestination({
      name: "retraining",
      kind: "webhook",
      url: `${receiverBase}${path}`,
      secret,
    });
    const response = await sendTest(destination.id);
    expect(response.status).toBe(201);
    const delivery = await json<DeliveryJson>(response);
    expect(delivery).toMatchObject({ status: "sent", lastStatus: 200, transition: "test" });

    const [request] = await received(path);
    expect(request).toBeDefined();
    const signature = {
      timestamp: request?.headers["x-airlock-timestamp"] ?? "",
      signature: request?.headers["x-airlock-signature"] ?? "",
    };
    const now = Math.floor(Date.now() / 1000);
    expect(await verifyWebhook(secret, request?.body ?? "", signature, now)).toEqual({ ok: true });
    expect(
      (await verifyWebhook("another-secret-another-secret-xx", request?.body ?? "", signature, now))
        .ok,
    ).toBe(false);
    const body = JSON.parse(request?.body ?? "{}") as Record<string, unknown>;
    expect(body).toMatchObject({
      type: "alert.test",
      test: true,
      deliveryId: delivery.id,
      destination: { id: destination.id, name: "retraining" },
    });
    expect(body).not.toHaveProperty("alert");
    expect(String(body.message)).toMatch(/^Test notice from Airlock: /);
    await expectNoAlert(destination.id);
  });

  it("report a receiver's 500 as failed, with its status and error, and do not retry it", {
    timeout: 60_000,
  }, async () => {
    const path = `/hooks/test-broken-${uniqueName("t")}`;
    const destination = await createDestination({
      name: "broken",
      kind: "webhook",
      url: `${receiverBase}${path}`,
      secret: "b".repeat(32),
    });
    await setChannel(path, { mode: "error" });
    const response = await sendTest(destination.id);
    expect(response.status).toBe(201);
    const delivery = await json<DeliveryJson>(response);
    expect(delivery).toMatchObject({
      status: "failed",
      attempts: 1,
      lastStatus: 500,
      sentAt: null,
    });
    expect(delivery.lastError).toMatch(/receiver error 500: internal_error/);
    await setChannel(path, { mode: "ok" });
    // Tried once: nothing comes later, and the delivery stays failed.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect((await received(path)).map((r) => r.status)).toEqual([500]);
    expect(await json(await call(`/admin/alert-deliveries/${delivery.id}`))).toEqual(delivery);
  });

  it("answer at once with wait=0, with the delivery to follow", { timeout: 60_000 }, async () => {
    const path = `/hooks/test-later-${uniqueName("t")}`;
    const destination = await createDestination({
      name: "later",
      kind: "slack",
      url: `${receiverBase}${path}`,
    });
    const response = await sendTest(destination.id, "?wait=0");
    expect(response.status).toBe(201);
    const delivery = await json<DeliveryJson>(response);
    expect(delivery).toMatchObject({ status: "pending", attempts: 0, transition: "test" });
    const location = response.headers.get("location") ?? "";
    let followed = delivery;
    for (let i = 0; i < 100 && followed.status === "pending"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      followed = await json<DeliveryJson>(await call(location));
    }
    expect(followed).toMatchObject({ id: delivery.id, status: "sent", lastStatus: 200 });
    expect(await received(path)).toHaveLength(1);
  });

  it("refuse a deleted destination and an unknown one, and sends nothing", async () => {
    const path = `/hooks/test-deleted-${uniqueName("t")}`;
    const destination = await createDestination({
      name: "gone",
      kind: "slack",
      url: `${receiverBase}${path}`,
    });
    expect(
      (await call(`/admin/alert-destinations/${destination.id}`, { method: "DELETE" })).status,
    ).toBe(200);
    const deleted = await sendTest(destination.id);
    expect(deleted.status).toBe(409);
    expect((await json<ErrorJson>(deleted)).error.code).toBe("DESTINATION_DELETED");
    const unknown = await sendTest("dst_nope");
    expect(unknown.status).toBe(404);
    expect((await json<ErrorJson>(unknown)).error.code).toBe("DESTINATION_NOT_FOUND");
    const tooLong = await sendTest(destination.id, "?wait=31");
    expect(tooLong.status).toBe(400);
    expect(await received(path)).toEqual([]);
    const noDelivery = await call("/admin/alert-deliveries/999999999");
    expect(noDelivery.status).toBe(404);
    expect((await json<ErrorJson>(noDelivery)).error.code).toBe("DELIVERY_NOT_FOUND");
  });
});
