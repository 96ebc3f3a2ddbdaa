/**
 * Alerts end to end: monitoring results → rules → lifecycle → notices on the
 * delivery queue → the destination's object → a local HTTP receiver standing
 * in for Slack and for a webhook consumer (test/global-setup.ts). Queue
 * messages are recorded and handed to the Worker's consumer as the platform
 * would, so each step can be checked.
 */
import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { runAlerts } from "../../functions/alerts/evaluate";
import worker from "../../functions/index";
import { runMonitoring } from "../../functions/jobs/monitoring";
import { handleQueue } from "../../functions/queue";
import { storeLogs } from "../../functions/queue/prediction-logs";
import demo from "../../scripts/demo/demo-credit-risk.json";
import { verifyWebhook } from "../../shared/alerts/signing";
import { openDatabase } from "../../shared/db/client";
import {
  adminToken,
  call,
  classificationModel,
  createModel,
  type ErrorJson,
  httpUpstream,
  json,
  query,
  uniqueName,
} from "./helpers";
import { events, rowsFrom } from "./traffic-helpers";

const receiverBase = String((env as unknown as Record<string, unknown>).TEST_ALERT_RECEIVER ?? "");

interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
  status: number | null;
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

/** A queue that keeps what is sent, to hand to the consumer by hand. */
function alertQueue() {
  const sent: { deliveryId: number }[] = [];
  return {
    sent,
    queue: {
      send: async (body: { deliveryId: number }) => {
        sent.push(body);
      },
      sendBatch: async (batch: { body: { deliveryId: number } }[]) => {
        for (const item of batch) sent.push(item.body);
      },
    } as unknown as Queue,
  };
}

/** Hands messages to the Worker's alert consumer, as the platform would. */
async function deliver(bodies: { deliveryId: number }[], attempts = 1) {
  const batch = createMessageBatch(
    "airlock-alert-deliveries",
    bodies.map((body, i) => ({
      id: `al-${i}-${crypto.randomUUID()}`,
      timestamp: new Date(),
      attempts,
      body,
    })),
  );
  const ctx = createExecutionContext();
  await handleQueue(batch, env, ctx);
  return getQueueResult(batch, ctx);
}

/**
 * A model result far past a rule's threshold in one window, and one alert
 * evaluation after it: returns the notices put on the (recorded) queue.
 */
async function breakRule(model: string, metric: string, value: number, windowStart: number) {
  await query(sql`
    INSERT INTO monitoring_results (model, version, role, window_seconds, window_start, metric,
      dimension, value, status, details, run_id)
    VALUES (${model}, 'v1', 'served', 900, ${new Date(windowStart).toISOString()}, ${metric},
      '', ${value}, 'alert', '{}', 0)`);
  const { sent, queue } = alertQueue();
  const handle = openDatabase(env);
  try {
    await runAlerts(
      handle.db,
      { ...env, ALERT_DELIVERIES: queue } as Env,
      new Date(windowStart + 900_000 + 30_000),
      { health: false },
    );
  } finally {
    await handle.close();
  }
  return sent;
}

async function createDestination(body: Record<string, unknown>) {
  const response = await call("/admin/alert-destinations", { method: "POST", body });
  expect(response.status).toBe(201);
  return json<{ id: string; urlHint: string }>(response);
}

async function deliveriesOf(destinationId: string) {
  return query<{
    id: string;
    status: string;
    transition: string;
    attempts: number;
    last_status: number | null;
    last_error: string | null;
    retry_in: number | null;
  }>(
    sql`SELECT id, status, transition, attempts, last_status, last_error,
          round(extract(epoch FROM next_attempt_at - updated_at))::int AS retry_in
        FROM alert_deliveries
        WHERE destination_id = ${destinationId} ORDER BY id`,
  );
}

const mine = (sent: { deliveryId: number }[], rows: { id: string }[]) => {
  const ids = new Set(rows.map((r) => Number(r.id)));
  return sent.filter((m) => ids.has(m.deliveryId));
};

describe("alert destinations", () => {
  it("keep URLs and secrets encrypted and masked, check their input, and are audited", async () => {
    const model = uniqueName("dst");
    expect((await createModel(classificationModel(model))).status).toBe(201);
    const url = `${receiverBase}/hooks/secret-path-${model}`;
    const secret = "s".repeat(40);
    const created = await createDestination({
      name: "risk webhook",
      kind: "webhook",
      url,
      secret,
      models: [model],
    });
    expect(created.urlHint).not.toContain("secret-path");
    const listed = await call("/admin/alert-destinations");
    const text = await listed.text();
    expect(text).toContain(created.id);
    expect(text).not.toContain("secret-path");
    expect(text).not.toContain(secret);
    const [stored] = await query<{ url_box: string; secret_box: string }>(
      sql`SELECT url_box, secret_box FROM alert_destinations WHERE id = ${created.id}`,
    );
    expect(stored?.url_box).not.toContain("secret-path");
    expect(stored?.secret_box).not.toContain(secret);
    const audit = await query<{ after: unknown }>(
      sql`SELECT after FROM audit_log WHERE target = ${`alert-destinations/${created.id}`}`,
    );
    expect(audit).toHaveLength(1);
    expect(JSON.stringify(audit)).not.toContain("secret-path");

    for (const [body, path] of [
      [{ name: "x", kind: "webhook", url }, "secret"],
      [{ name: "x", kind: "slack", url, secret }, "secret"],
      [{ name: "x", kind: "slack", url: "ftp://example.com/x" }, "url"],
      [{ name: "x", kind: "slack", url: "http://hooks.example.com/x" }, "url"],
      [{ name: "x", kind: "slack", url: "https://10.1.2.3/hooks/x" }, "url"],
      [{ name: "x", kind: "slack", url, models: ["no-such-model"] }, "models[0]"],
    ] as const) {
      const refused = await call("/admin/alert-destinations", { method: "POST", body });
      expect(refused.status, JSON.stringify(body)).toBe(400);
      const error = await json<ErrorJson>(refused);
      expect(error.error.code).toBe("VALIDATION_FAILED");
      expect(error.error.details?.map((d) => d.path)).toContain(path);
    }

    const deleted = await call(`/admin/alert-destinations/${created.id}`, { method: "DELETE" });
    expect(deleted.status).toBe(200);
    expect((await json<{ deletedAt: string | null }>(deleted)).deletedAt).not.toBeNull();
    const missing = await call("/admin/alert-destinations/dst_nope", { method: "DELETE" });
    expect(missing.status).toBe(404);
    expect((await json<ErrorJson>(missing)).error.code).toBe("DESTINATION_NOT_FOUND");
  });
});

describe("alerts from monitoring", () => {
  it("raise one Slack message and one signed webhook for a drifting stream, and one resolution each", {
    timeout: 120_000,
  }, async () => {
    const model = uniqueName("alert");
    await createModel({ ...demo.model, name: model, public: false });
    const created = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: { version: "v1", upstream: httpUpstream, baseline: { rows: rowsFrom(model, 51, 800) } },
    });
    expect(created.status).toBe(201);
    const rules = await call(`/admin/models/${model}/alert-rules`, {
      method: "PUT",
      body: { cooldownMinutes: 15, rules: { latency_p99: { threshold: 5000 } } },
    });
    expect(rules.status).toBe(200);
    const badRules = await call(`/admin/models/${model}/alert-rules`, {
      method: "PUT",
      body: { rules: { drift: { threshold: 0.3 } } },
    });
    expect(badRules.status).toBe(400);
    expect((await json<ErrorJson>(badRules)).error.details?.[0]?.path).toMatch(/^rules\.drift/);

    const slackPath = `/hooks/slack-${model}`;
    const hookPath = `/hooks/webhook-${model}`;
    const secret = `whsec-${"k".repeat(40)}`;
    const slack = await createDestination({
      name: "risk channel",
      kind: "slack",
      url: `${receiverBase}${slackPath}`,
      models: [model],
      includeSystem: false,
    });
    const hook = await createDestination({
      name: "retraining",
      kind: "webhook",
      url: `${receiverBase}${hookPath}`,
      secret,
      models: [model],
      includeSystem: false,
    });

    // Windows 1 and 2: income shifted by 1.5 sd. Windows 3 and 4: as the baseline.
    const start = Date.parse("2026-10-20T08:00:00.000Z");
    const windows = [0, 1, 2, 3].map((i) => start + i * 900_000);
    const logged = windows.flatMap((w, i) =>
      events(model, rowsFrom(model, 60 + i, 600, i < 2 ? ["income:shift=1.5sd@0"] : []), w),
    );
    await storeLogs(env, logged, []);

    const { sent, queue } = alertQueue();
    const run = async (i: number) => {
      const before = sent.length;
      await runMonitoring(
        { ...env, ALERT_DELIVERIES: queue } as Env,
        new Date((windows[i] as number) + 900_000 + 30_000),
        { health: false },
      );
      const rows = [...(await deliveriesOf(slack.id)), ...(await deliveriesOf(hook.id))];
      const fresh = mine(sent.slice(before), rows);
      if (fresh.length > 0) {
        const result = await deliver(fresh);
        expect(result.retryMessages).toEqual([]);
      }
      return fresh.length;
    };

    // Drift tests run at the 5% level on every feature: the drift rule asks
    // for two windows in a row. Window 1 makes the alert pending, window 2 fires it.
    expect(await run(0)).toBe(0);
    const pending = await json<{ items: { state: string; dimension: string }[] }>(
      await call(`/admin/alerts?model=${model}&state=pending`),
    );
    expect(pending.items.map((a) => a.dimension)).toContain("income");
    expect(await run(1)).toBe(2);
    let slackMessages = (await received(slackPath)).filter((r) => r.status === 200);
    expect(slackMessages).toHaveLength(1);
    const firing = JSON.parse(slackMessages[0]?.body ?? "{}") as {
      text: string;
      blocks: unknown[];
    };
    expect(firing.text).toContain(model);
    expect(JSON.stringify(firing.blocks)).toContain("income");
    let hooks = await received(hookPath);
    expect(hooks).toHaveLength(1);
    const first = hooks[0] as Received;
    const verified = await verifyWebhook(
      secret,
      first.body,
      {
        timestamp: first.headers["x-airlock-timestamp"] ?? "",
        signature: first.headers["x-airlock-signature"] ?? "",
      },
      Math.floor(Date.now() / 1000),
    );
    expect(verified).toEqual({ ok: true });
    const body = JSON.parse(first.body) as { type: string; alert: Record<string, unknown> };
    expect(body.type).toBe("alert.firing");
    expect(body.alert).toMatchObject({ model, version: "v1", rule: "drift", dimension: "income" });
    expect(
      (
        await verifyWebhook(
          "wrong-secret-wrong-secret-wrong!!",
          first.body,
          {
            timestamp: first.headers["x-airlock-timestamp"] ?? "",
            signature: first.headers["x-airlock-signature"] ?? "",
          },
          Math.floor(Date.now() / 1000),
        )
      ).ok,
    ).toBe(false);

    // Clear once: the cooldown has not passed, nothing sent.
    expect(await run(2)).toBe(0);
    // Clear for 15 minutes: resolved, one message each.
    expect(await run(3)).toBe(2);
    slackMessages = (await received(slackPath)).filter((r) => r.status === 200);
    expect(slackMessages).toHaveLength(2);
    expect(JSON.stringify(JSON.parse(slackMessages[1]?.body ?? "{}"))).toContain("Resolved");
    hooks = await received(hookPath);
    expect(hooks.map((h) => (JSON.parse(h.body) as { type: string }).type)).toEqual([
      "alert.firing",
      "alert.resolved",
    ]);

    const listed = await call(`/admin/alerts?model=${model}&state=resolved&rule=drift`);
    const alerts = (await json<{ items: Record<string, unknown>[] }>(listed)).items.filter(
      (a) => a.resolution !== "unconfirmed",
    );
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({
      state: "resolved",
      resolution: "recovered",
      rule: "drift",
      dimension: "income",
      count: 2,
    });

    // A redelivered message posts nothing: the consumer skips what is sent,
    // and the destination's object remembers it even when the row says pending.
    const rows = await deliveriesOf(slack.id);
    expect(rows.map((r) => [r.transition, r.status])).toEqual([
      ["firing", "sent"],
      ["resolved", "sent"],
    ]);
    await deliver([{ deliveryId: Number(rows[0]?.id) }]);
    await query(sql`UPDATE alert_deliveries SET status = 'pending' WHERE id = ${rows[0]?.id}`);
    await deliver([{ deliveryId: Number(rows[0]?.id) }]);
    expect((await received(slackPath)).filter((r) => r.status === 200)).toHaveLength(2);
    expect((await deliveriesOf(slack.id))[0]?.status).toBe("sent");

    // Acknowledging is recorded and audited.
    const id = alerts[0]?.id as number;
    const ack = await call(`/admin/alerts/${id}/acknowledge`, {
      method: "POST",
      body: { note: "retraining scheduled" },
    });
    expect(ack.status).toBe(200);
    expect(await json(ack)).toMatchObject({
      acknowledgements: [{ acknowledgedBy: "prn_testadmin", note: "retraining scheduled" }],
    });
    const trail = await query<{ action: string }>(
      sql`SELECT action FROM audit_log WHERE target = ${`alerts/${id}`}`,
    );
    expect(trail.map((t) => t.action)).toEqual(["alert.acknowledge"]);
    const detail = await json<{ deliveries: unknown[] }>(await call(`/admin/alerts/${id}`));
    expect(detail.deliveries).toHaveLength(4);
  });

  it("says true things with short windows: each statistic, its value, threshold and direction", {
    timeout: 60_000,
  }, async () => {
    const model = uniqueName("say");
    await createModel({ ...demo.model, name: model, public: false });
    // 800 baseline rows: a KS test (p-value) for numbers, chi-square for categories.
    const created = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: { version: "v1", upstream: httpUpstream, baseline: { rows: rowsFrom(model, 81, 800) } },
    });
    expect(created.status).toBe(201);
    const slackPath = `/hooks/slack-${model}`;
    const hookPath = `/hooks/webhook-${model}`;
    const secret = `whsec-${"t".repeat(40)}`;
    const slack = await createDestination({
      name: "short windows",
      kind: "slack",
      url: `${receiverBase}${slackPath}`,
      models: [model],
      includeSystem: false,
    });
    const hook = await createDestination({
      name: "short windows hook",
      kind: "webhook",
      url: `${receiverBase}${hookPath}`,
      secret,
      models: [model],
      includeSystem: false,
    });
    // One-minute windows: two with income shifted by 2 sd, then three as the baseline.
    const minute = 60_000;
    const start = Date.parse("2026-10-21T09:00:00.000Z");
    const windows = [0, 1, 2, 3, 4].map((i) => start + i * minute);
    const logged = windows.flatMap((w, i) =>
      events(model, rowsFrom(model, 90 + i, 300, i < 2 ? ["income:shift=2sd@0"] : []), w).map(
        (e, j) => ({ ...e, timestamp: new Date(w + Math.floor((j * 59_000) / 300)).toISOString() }),
      ),
    );
    await storeLogs(env, logged, []);
    const shortEnv = { ...env, MONITORING_WINDOW_SECONDS: "60" } as Env;
    const { sent, queue } = alertQueue();
    for (const w of windows) {
      const before = sent.length;
      await runMonitoring(
        { ...shortEnv, ALERT_DELIVERIES: queue } as Env,
        new Date(w + minute + 5000),
        {
          health: false,
        },
      );
      const rows = [...(await deliveriesOf(slack.id)), ...(await deliveriesOf(hook.id))];
      const fresh = mine(sent.slice(before), rows);
      if (fresh.length > 0) expect((await deliver(fresh)).retryMessages).toEqual([]);
    }

    // Exactly one alert fired and resolved: one Slack message and one webhook each way.
    const messages = (await received(slackPath)).map(
      (r) => (JSON.parse(r.body) as { text: string }).text,
    );
    expect(messages).toHaveLength(2);
    const number = "[0-9.e+-]+";
    expect(messages[0]).toMatch(
      new RegExp(
        `^\\[WARNING\\] ${model} — drift: drift of ${model} v1 \\(served\\), income: KS p-value ${number} \\(below the threshold 0\\.05\\); PSI ${number} \\(above the threshold 0\\.25\\)$`,
      ),
    );
    expect(messages[1]).toMatch(
      new RegExp(
        `^Resolved: ${model} — drift after 4m\\. Last values: KS p-value ${number} \\(not below the threshold 0\\.05\\); PSI ${number} \\(not above the threshold 0\\.25\\)\\.$`,
      ),
    );
    const bodies = (await received(hookPath)).map(
      (r) =>
        JSON.parse(r.body) as {
          type: string;
          alert: {
            metric: string;
            value: number;
            threshold: number;
            comparison: string;
            windowSeconds: number;
            statistics: {
              metric: string;
              name: string;
              value: number;
              threshold: number;
              comparison: string;
              violating: boolean;
            }[];
          };
        },
    );
    expect(bodies.map((b) => b.type)).toEqual(["alert.firing", "alert.resolved"]);
    const [firing, resolved] = bodies;
    // The alert's own metric, value, threshold and direction are one statistic's: the KS test's.
    const ks = firing?.alert.statistics[0];
    expect(ks).toMatchObject({
      metric: "drift",
      name: "KS p-value",
      threshold: 0.05,
      comparison: "below",
      violating: true,
    });
    expect(firing?.alert).toMatchObject({
      metric: "drift",
      value: ks?.value,
      threshold: 0.05,
      comparison: "below",
      windowSeconds: 60,
    });
    expect(ks?.value).toBeLessThan(0.05);
    const psi = firing?.alert.statistics[1];
    expect(psi).toMatchObject({
      metric: "psi",
      name: "PSI",
      threshold: 0.25,
      comparison: "above",
      violating: true,
    });
    expect(psi?.value).toBeGreaterThan(0.25);
    // At resolution, every value is back within its bounds, and says so.
    for (const statistic of resolved?.alert.statistics ?? []) {
      expect(statistic.violating).toBe(false);
      if (statistic.comparison === "below")
        expect(statistic.value).toBeGreaterThanOrEqual(statistic.threshold);
      else expect(statistic.value).toBeLessThanOrEqual(statistic.threshold);
    }
    expect(resolved?.alert.statistics.map((x) => x.metric)).toEqual(["drift", "psi"]);
  });

  it("waits out a 429's Retry-After without losing the notice, and reaches a receiver once it is back up", {
    timeout: 60_000,
  }, async () => {
    const model = uniqueName("dl");
    expect((await createModel(classificationModel(model))).status).toBe(201);
    const slackPath = `/hooks/slack-${model}`;
    const hookPath = `/hooks/webhook-${model}`;
    const slack = await createDestination({
      name: "s",
      kind: "slack",
      url: `${receiverBase}${slackPath}`,
      models: [model],
      includeSystem: false,
    });
    const hook = await createDestination({
      name: "w",
      kind: "webhook",
      url: `${receiverBase}${hookPath}`,
      secret: "x".repeat(32),
      models: [model],
      includeSystem: false,
    });
    // An error rate far above its threshold in the latest window.
    const sent = await breakRule(model, "error_rate", 0.4, Date.parse("2026-10-22T10:00:00.000Z"));
    const [toSlack] = mine(sent, await deliveriesOf(slack.id));
    const [toHook] = mine(sent, await deliveriesOf(hook.id));
    expect(toSlack && toHook).toBeTruthy();

    await setChannel(slackPath, { mode: "rate_limit", retryAfter: 2, times: 1 });
    const limited = await deliver([toSlack as { deliveryId: number }]);
    expect(limited.retryMessages).toHaveLength(1);
    expect((await deliveriesOf(slack.id))[0]).toMatchObject({
      status: "pending",
      attempts: 1,
      last_status: 429,
      retry_in: 2,
    });
    // The queue brings it back: the object waits out what is left of Retry-After, then sends.
    const retried = await deliver([toSlack as { deliveryId: number }], 2);
    expect(retried.retryMessages).toEqual([]);
    const slackRequests = await received(slackPath);
    expect(slackRequests.map((r) => r.status)).toEqual([429, 200]);
    expect((await deliveriesOf(slack.id))[0]).toMatchObject({ status: "sent", attempts: 2 });

    await setChannel(hookPath, { mode: "down" });
    const down = await deliver([toHook as { deliveryId: number }]);
    expect(down.retryMessages).toHaveLength(1);
    expect((await deliveriesOf(hook.id))[0]).toMatchObject({ retry_in: 5, status: "pending" });
    expect((await deliveriesOf(hook.id))[0]?.last_error).toMatch(/unreachable/);
    const later = await deliver([toHook as { deliveryId: number }], 2);
    expect(later.retryMessages).toHaveLength(1);
    expect((await deliveriesOf(hook.id))[0]?.retry_in).toBe(10);
    await setChannel(hookPath, { mode: "ok" });
    const back = await deliver([toHook as { deliveryId: number }], 3);
    expect(back.retryMessages).toEqual([]);
    const hookRequests = await received(hookPath);
    expect(hookRequests.map((r) => r.status)).toEqual([null, null, 200]);
    expect(JSON.parse(hookRequests[2]?.body ?? "{}")).toMatchObject({
      type: "alert.firing",
      alert: { model, rule: "error_rate", value: 0.4 },
    });
    expect((await deliveriesOf(hook.id))[0]).toMatchObject({ status: "sent", attempts: 3 });
  });

  it("alerts about Airlock itself when dead letters pile up, and resolves once they are replayed", {
    timeout: 60_000,
  }, async () => {
    // Airlock's own alerts, and (so that no other test's alerts come here) one quiet model's.
    const quiet = uniqueName("quiet");
    expect((await createModel(classificationModel(quiet))).status).toBe(201);
    const hookPath = `/hooks/system-${quiet}`;
    const hook = await createDestination({
      name: "on-call",
      kind: "webhook",
      url: `${receiverBase}${hookPath}`,
      secret: "y".repeat(32),
      models: [quiet],
      minSeverity: "critical",
    });
    const { sent, queue } = alertQueue();
    const waiting = async () =>
      Number(
        (
          await query<{ n: string }>(
            sql`SELECT count(*) AS n FROM dead_letters
              WHERE replayed_at IS NULL AND discarded_at IS NULL`,
          )
        )[0]?.n,
      );
    const health = async (minutes: number, threshold: number) => {
      const before = sent.length;
      const handle = openDatabase(env);
      try {
        await runAlerts(
          handle.db,
          {
            ...env,
            ALERT_DELIVERIES: queue,
            ALERT_DEAD_LETTER_THRESHOLD: String(threshold),
          } as Env,
          new Date(Date.now() + minutes * 60_000),
          { models: false },
        );
      } finally {
        await handle.close();
      }
      const fresh = mine(sent.slice(before), await deliveriesOf(hook.id));
      if (fresh.length > 0) await deliver(fresh);
    };
    const deadLetterNotices = async () =>
      (await received(hookPath))
        .map((r) => JSON.parse(r.body) as { type: string; alert: { rule: string; value: number } })
        .filter((b) => b.alert.rule === "dead_letters");

    // Whatever other tests left: tolerated, and any open alert about it resolves.
    const baseline = await waiting();
    await health(0, baseline);
    await health(31, baseline);
    const already = (await deadLetterNotices()).length;

    // Two messages the log pipeline could not store reach the dead-letter queue.
    const ids = [0, 1].map((i) => `dlq-${i}-${crypto.randomUUID()}`);
    const batch = createMessageBatch(
      "airlock-prediction-logs-dlq",
      ids.map((id, i) => ({
        id,
        timestamp: new Date(),
        attempts: 6,
        body: { schema: 1, results: [], note: `lost ${i}` },
      })),
    );
    const ctx = createExecutionContext();
    await handleQueue(batch, env, ctx);
    await getQueueResult(batch, ctx);

    await health(32, baseline);
    let notices = (await deadLetterNotices()).slice(already);
    expect(notices.map((n) => n.type)).toEqual(["alert.firing"]);
    expect(notices[0]?.alert.value).toBeGreaterThanOrEqual(baseline + 2);
    const open = await json<{ items: { id: number; rule: string; state: string }[] }>(
      await call("/admin/alerts?model=&state=firing&rule=dead_letters"),
    );
    expect(open.items).toHaveLength(1);

    // Replayed: the condition clears, and after the cooldown the alert resolves once.
    await query(
      sql`UPDATE dead_letters SET replayed_at = now() WHERE message_id IN (${ids[0]}, ${ids[1]})`,
    );
    await health(33, await waiting());
    await health(64, await waiting());
    await health(65, await waiting());
    notices = (await deadLetterNotices()).slice(already);
    expect(notices.map((n) => n.type)).toEqual(["alert.firing", "alert.resolved"]);
  });

  it("keeps a notice that exhausted its retries in dead_letters, and a replay sends it", {
    timeout: 60_000,
  }, async () => {
    const model = uniqueName("dlq");
    expect((await createModel(classificationModel(model))).status).toBe(201);
    const hookPath = `/hooks/late-${model}`;
    const hook = await createDestination({
      name: "w",
      kind: "webhook",
      url: `${receiverBase}${hookPath}`,
      secret: "z".repeat(32),
      models: [model],
      includeSystem: false,
    });
    const sent = await breakRule(
      model,
      "fallback_rate",
      0.3,
      Date.parse("2026-10-23T10:00:00.000Z"),
    );
    const [notice] = mine(sent, await deliveriesOf(hook.id));
    expect(notice).toBeDefined();
    // The platform gives up on it: the dead-letter consumer keeps it and fails the delivery.
    const messageId = `gave-up-${crypto.randomUUID()}`;
    const batch = createMessageBatch("airlock-alert-deliveries-dlq", [
      { id: messageId, timestamp: new Date(), attempts: 101, body: notice },
    ]);
    const ctx = createExecutionContext();
    await handleQueue(batch, env, ctx);
    await getQueueResult(batch, ctx);
    expect((await deliveriesOf(hook.id))[0]?.status).toBe("failed");
    const [letter] = await query<{ id: string; queue: string }>(
      sql`SELECT id, queue FROM dead_letters WHERE message_id = ${messageId}`,
    );
    expect(letter?.queue).toBe("airlock-alert-deliveries");

    const replayQueue = alertQueue();
    const replayCtx = createExecutionContext();
    const response = await worker.fetch(
      new Request("http://airlock.test/admin/dead-letters/replay", {
        method: "POST",
        headers: {
          authorization: `Bearer ${adminToken()}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({ ids: [letter?.id] }),
      }),
      { ...env, ALERT_DELIVERIES: replayQueue.queue } as unknown as Env,
      replayCtx,
    );
    await waitOnExecutionContext(replayCtx);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ replayed: [letter?.id], skipped: [] });
    expect(replayQueue.sent).toEqual([notice]);
    expect((await deliveriesOf(hook.id))[0]?.status).toBe("pending");
    await deliver(replayQueue.sent);
    expect((await deliveriesOf(hook.id))[0]?.status).toBe("sent");
    const bodies = (await received(hookPath)).map(
      (r) => JSON.parse(r.body) as { alert: { rule: string } },
    );
    expect(bodies.map((b) => b.alert.rule)).toEqual(["fallback_rate"]);
  });
});
