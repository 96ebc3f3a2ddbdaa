/**
 * Egress end to end: what registration refuses, what a call refuses for a
 * version registered before a rule, redirects, answer sizes, and what a
 * failing call tells a client (a code) against what it tells operators (the
 * cause, in the logs). The test upstream and alert receiver are local
 * (test/global-setup.ts), on an allowlisted 127.0.0.1.
 */
import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { AlertDestination } from "../../durable-objects/alert-destination";
import { runAlerts } from "../../functions/alerts/evaluate";
import worker from "../../functions/index";
import { handleQueue } from "../../functions/queue";
import type { AlertNotice } from "../../shared/alerts/types";
import { canonicalJson, sha256Hex } from "../../shared/crypto";
import { encryptSecret, parseEncryptionKey } from "../../shared/crypto-box";
import { openDatabase } from "../../shared/db/client";
import {
  call,
  classificationModel,
  createModel,
  type ErrorJson,
  json,
  query,
  recordingQueue,
  uniqueName,
} from "./helpers";
import { putRollout } from "./rollout-helpers";

const bindings = env as unknown as Record<string, string>;
const upstreamBase = bindings.TEST_UPSTREAM ?? "";
const receiverBase = bindings.TEST_ALERT_RECEIVER ?? "";
const peerHost = new URL(upstreamBase).host;

afterEach(() => {
  vi.restoreAllMocks();
});

function register(model: string, upstream: Record<string, unknown>, version = "v1") {
  return call(`/admin/models/${model}/versions`, {
    method: "POST",
    body: { version, upstream },
  });
}

/** A public model (so its 502s are what anyone can read) serving `upstream` as v1. */
async function servingModel(upstream: Record<string, unknown>): Promise<string> {
  const model = uniqueName("egress");
  expect((await createModel(classificationModel(model, { public: true }))).status).toBe(201);
  const created = await register(model, { protocol: "json", timeoutMs: 2000, ...upstream });
  expect(created.status, await created.clone().text()).toBe(201);
  expect((await putRollout(model, { champion: "v1", leaseMs: 250 })).status).toBe(200);
  return model;
}

/** One unauthenticated prediction, with the results it logs and the Worker's JSON log lines. */
async function predict(model: string) {
  const { messages, queue } = recordingQueue();
  const lines: Record<string, unknown>[] = [];
  const log = console.log;
  const spy = vi.spyOn(console, "log").mockImplementation((...args: unknown[]) => {
    try {
      lines.push(JSON.parse(String(args[0])) as Record<string, unknown>);
    } catch {
      log(...args);
    }
  });
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`http://airlock.test/v1/models/${model}/predict`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ inputs: { amount: 1, country: "DE" } }),
    }),
    { ...env, PREDICTION_LOGS: queue } as unknown as Env,
    ctx,
  );
  const text = await response.text();
  await waitOnExecutionContext(ctx);
  spy.mockRestore();
  return {
    status: response.status,
    text,
    error: (text.startsWith("{") ? JSON.parse(text) : {}) as ErrorJson,
    results: messages.flatMap((m) => m.results),
    failures: lines.filter((line) => line.event === "upstream.failed"),
  };
}

/** What the test upstream received on this path (kept for other readers). */
async function peerRequests(path: string) {
  const response = await fetch(`${upstreamBase}/__requests?path=${encodeURIComponent(path)}`);
  return (await response.json()) as { path: string; headers: Record<string, string> }[];
}

describe("egress: registering an upstream", () => {
  it.each([
    ["http to a host not on the allowlist", "http://198.51.100.7:8080/predict", /http is allowed/],
    ["IPv6 loopback", "https://[::1]:9000/predict", /loopback address \(::1\)/],
    ["IPv4-mapped loopback", "https://[::ffff:127.0.0.1]/predict", /IPv4-mapped/],
    ["NAT64 of a private address", "https://[64:ff9b::10.0.0.1]/predict", /NAT64/],
    ["link-local IPv6 past fe80", "https://[fe9a::1]/predict", /link-local/],
    ["site-local IPv6", "https://[fec0::1]/predict", /site-local/],
    // 127.0.0.1 is on the tests' allowlist; 127.0.0.2 is not.
    ["a short IPv4 loopback", "https://127.2/predict", /loopback/],
    ["a decimal IPv4 loopback", "https://2130706434/predict", /loopback/],
    ["a hex IPv4 loopback", "https://0x7f.0.0.2/predict", /loopback/],
    ["cloud metadata by address", "https://169.254.169.254/latest/meta-data", /link-local/],
    ["cloud metadata by name", "https://metadata.google.internal/v1", /cloud metadata/],
    ["a localhost name with a trailing dot", "https://app.localhost./predict", /loopback name/],
    ["benchmarking addresses", "https://198.18.0.1/predict", /benchmarking/],
    ["multicast", "https://224.0.0.1/predict", /multicast/],
    ["the broadcast address", "https://255.255.255.255/predict", /broadcast/],
    ["reserved addresses", "https://240.0.0.1/predict", /reserved/],
  ])("refuses %s, naming upstream.url and the rule", async (_label, url, reason) => {
    const model = uniqueName("egress");
    await createModel(classificationModel(model));
    const response = await register(model, { kind: "http", url, protocol: "json", timeoutMs: 500 });
    expect(response.status, url).toBe(400);
    const error = await json<ErrorJson>(response);
    expect(error.error.code).toBe("VALIDATION_FAILED");
    const detail = error.error.details?.find((d) => d.path === "upstream.url");
    expect(detail?.message).toMatch(reason);
  });

  it("accepts a public IPv6 literal over https, as it does a public name", async () => {
    const model = uniqueName("egress");
    await createModel(classificationModel(model));
    for (const [version, url] of [
      ["v6", "https://[2606:4700:4700::1111]/v2/models/fraud/infer"],
      ["v6-long", "https://[2606:4700:4700:0:0:0:0:1111]:8443/predict"],
    ] as const) {
      const response = await register(
        model,
        { kind: "http", url, protocol: "v2", timeoutMs: 500 },
        version,
      );
      expect(response.status, url).toBe(201);
    }
  });

  it.each([
    "ADMIN_TOKEN",
    "ALERT_ENCRYPTION_KEY",
    "DATABASE_URL",
    "LOG_HMAC_KEY",
    "FRAUD_MODEL_TOKEN",
  ])("refuses the credential %s: only UPSTREAM_ secrets can be named", async (credential) => {
    const model = uniqueName("egress");
    await createModel(classificationModel(model));
    const response = await register(model, {
      kind: "http",
      url: "https://models.example.com/predict",
      protocol: "json",
      timeoutMs: 500,
      credential,
    });
    expect(response.status).toBe(400);
    const detail = (await json<ErrorJson>(response)).error.details?.find(
      (d) => d.path === "upstream.credential",
    );
    expect(detail?.message).toContain("UPSTREAM_");
  });
});

describe("egress: calling an upstream", () => {
  it.each([307, 302])(
    "does not follow a %d redirect: the call fails, with where it pointed",
    async (status) => {
      const landing = `/landing/${crypto.randomUUID()}`;
      const to = encodeURIComponent(`${upstreamBase}${landing}`);
      const model = await servingModel({
        kind: "http",
        url: `${upstreamBase}/redirect?status=${status}&to=${to}`,
      });
      const { status: answered, error, results, failures } = await predict(model);
      expect(answered).toBe(502);
      expect(error.error.details).toEqual([{ path: "upstream", message: "UPSTREAM_REDIRECT" }]);
      expect(await peerRequests(landing)).toHaveLength(0);
      // The admin view: the stored result's error code; the logs: the cause.
      expect(results.map((r) => [r.role, r.status, r.errorCode])).toEqual([
        ["served", "error", "UPSTREAM_REDIRECT"],
      ]);
      expect(failures).toEqual([
        expect.objectContaining({
          model,
          version: "v1",
          code: "UPSTREAM_REDIRECT",
          status,
          cause: `redirect (status ${status} to ${peerHost}) not followed`,
        }),
      ]);
    },
  );

  it("never sends a secret outside UPSTREAM_, even for a version stored before the rule", async () => {
    const path = `/landing/${crypto.randomUUID()}`;
    const model = uniqueName("egress");
    expect((await createModel(classificationModel(model, { public: true }))).status).toBe(201);
    // As a version registered before the rule was stored it.
    const upstream = {
      kind: "http",
      url: `${upstreamBase}${path}`,
      protocol: "json",
      timeoutMs: 2000,
      credential: "ADMIN_TOKEN",
    };
    await query(sql`
      INSERT INTO model_versions (model_id, version, upstream, upstream_sha256, model_card, created_by)
      SELECT id, 'v1', ${JSON.stringify(upstream)}::jsonb, ${await sha256Hex(canonicalJson(upstream))},
        '{}'::jsonb, 'test' FROM models WHERE name = ${model}`);
    expect((await putRollout(model, { champion: "v1", leaseMs: 250 })).status).toBe(200);

    const { status, text, error, results, failures } = await predict(model);
    expect(status).toBe(502);
    expect(error.error.details).toEqual([{ path: "upstream", message: "UPSTREAM_FORBIDDEN" }]);
    expect(text).not.toContain("ADMIN_TOKEN");
    expect(await peerRequests(path)).toHaveLength(0);
    expect(results[0]?.errorCode).toBe("UPSTREAM_FORBIDDEN");
    expect(failures[0]?.cause).toMatch(/credential 'ADMIN_TOKEN' does not name an UPSTREAM_/);
  });

  it("refuses an answer over 4 MiB without reading it whole, and takes one under it", async () => {
    const big = await servingModel({ kind: "http", url: `${upstreamBase}/huge?bytes=6000000` });
    const refused = await predict(big);
    expect(refused.status).toBe(502);
    expect(refused.error.error.details).toEqual([
      { path: "upstream", message: "UPSTREAM_BAD_RESPONSE" },
    ]);
    expect(refused.failures[0]?.cause).toBe(
      "status 200, body over 4194304 bytes (not read further)",
    );

    const fits = await servingModel({ kind: "http", url: `${upstreamBase}/huge?bytes=1000000` });
    const served = await predict(fits);
    expect(served.status).toBe(200);
    expect(JSON.parse(served.text)).toMatchObject({ outputs: { label: "legit" } });
  });

  it("tells an unauthenticated client a failure's code, and only operators its cause", async () => {
    const model = await servingModel({
      kind: "http",
      url: `${upstreamBase}/json/score`,
      credential: "UPSTREAM_NOT_CONFIGURED_TOKEN",
    });
    const { status, text, error, failures } = await predict(model);
    expect(status).toBe(502);
    expect(error.error.code).toBe("UPSTREAM_FAILED");
    expect(error.error.message).toBe(
      "Version 'v1' failed (UPSTREAM_ERROR); the cause is logged under this request id",
    );
    expect(text).not.toContain("UPSTREAM_NOT_CONFIGURED_TOKEN");
    expect(failures[0]).toMatchObject({
      code: "UPSTREAM_ERROR",
      cause: "secret 'UPSTREAM_NOT_CONFIGURED_TOKEN' is not configured",
      requestId: error.error.requestId,
    });
  });
});

describe("egress: alert destinations", () => {
  const createDestination = (url: string) =>
    call("/admin/alert-destinations", {
      method: "POST",
      // An unknown model: even a URL wrongly accepted creates nothing.
      body: { name: "hook", kind: "slack", url, models: ["egress-no-such-model"] },
    });

  it.each([
    ["user:password@", "https://user:pw@hooks.example.com/x", /credentials/],
    ["IPv6 loopback", "https://[::1]/hooks/x", /loopback/],
    ["IPv4-mapped loopback", "https://[::ffff:7f00:1]/hooks/x", /IPv4-mapped/],
    ["link-local IPv6 past fe80", "https://[fe9a::1]/hooks/x", /link-local/],
    ["cloud metadata by name", "https://metadata.google.internal/x", /cloud metadata/],
    ["a localhost name with a trailing dot", "https://app.localhost./hooks/x", /loopback name/],
    [
      "user:password@ on an allowed host",
      `${receiverBase.replace("//", "//u:p@")}/hooks/x`,
      /credentials/,
    ],
  ])("refuses %s, naming url", async (_label, url, reason) => {
    const response = await createDestination(url);
    expect(response.status, url).toBe(400);
    const detail = (await json<ErrorJson>(response)).error.details?.find((d) => d.path === "url");
    expect(detail?.message).toMatch(reason);
  });

  it("accepts a public IPv6 literal over https, like an upstream", async () => {
    // For one quiet model only, and deleted: no other test's alert goes there.
    const model = uniqueName("egress");
    expect((await createModel(classificationModel(model))).status).toBe(201);
    const created = await call("/admin/alert-destinations", {
      method: "POST",
      body: {
        name: "v6",
        kind: "slack",
        url: "https://[2606:4700:4700::1111]/hooks/x",
        models: [model],
        includeSystem: false,
      },
    });
    expect(created.status).toBe(201);
    const { id } = await json<{ id: string }>(created);
    expect((await call(`/admin/alert-destinations/${id}`, { method: "DELETE" })).status).toBe(200);
  });

  /** A destination's object, sent one notice for a URL (as the delivery consumer would). */
  async function send(url: string) {
    const destinationId = `dst_${crypto.randomUUID().replace(/-/g, "").slice(0, 20)}`;
    const key = await parseEncryptionKey(env.ALERT_ENCRYPTION_KEY);
    const stub = env.ALERT_DESTINATION.getByName(destinationId) as unknown as AlertDestination;
    return stub.deliver({
      noticeKey: `1:firing:${destinationId}`,
      destinationId,
      kind: "slack",
      urlBox: await encryptSecret(key, url, `${destinationId}:url`),
      secretBox: null,
      notice,
    });
  }

  it("does not follow a receiver's redirect, and records why the delivery failed", async () => {
    const id = crypto.randomUUID();
    const landing = `/hooks/landing-${id}`;
    const channel = `/hooks/moved-${id}`;
    await setChannel(channel, { mode: "redirect", location: `${receiverBase}${landing}` });
    const outcome = await send(`${receiverBase}${channel}`);
    expect(outcome).toEqual({
      kind: "failed",
      status: 307,
      error: `redirect (status 307 to ${new URL(receiverBase).host}) not followed`,
    });
    expect(await received(channel)).toHaveLength(1);
    expect(await received(landing)).toHaveLength(0);
  });

  it("shows a redirected delivery's cause in the alert's deliveries", {
    timeout: 60_000,
  }, async () => {
    const model = uniqueName("egress");
    expect((await createModel(classificationModel(model))).status).toBe(201);
    const channel = `/hooks/moved-${model}`;
    await setChannel(channel, {
      mode: "redirect",
      location: `${receiverBase}/hooks/x`,
      status: 308,
    });
    const created = await call("/admin/alert-destinations", {
      method: "POST",
      body: {
        name: "moved",
        kind: "slack",
        url: `${receiverBase}${channel}`,
        models: [model],
        includeSystem: false,
      },
    });
    expect(created.status).toBe(201);
    const destination = await json<{ id: string }>(created);
    const notices = await breakRule(model, Date.parse("2026-10-24T10:00:00.000Z"));
    const [row] = await query<{ id: string; alert_id: string }>(
      sql`SELECT id, alert_id FROM alert_deliveries WHERE destination_id = ${destination.id}`,
    );
    const mine = notices.filter((n) => n.deliveryId === Number(row?.id));
    expect(mine).toHaveLength(1);
    const batch = createMessageBatch(
      "airlock-alert-deliveries",
      mine.map((body) => ({ id: crypto.randomUUID(), timestamp: new Date(), attempts: 1, body })),
    );
    const ctx = createExecutionContext();
    await handleQueue(batch, env, ctx);
    await getQueueResult(batch, ctx);
    const alert = await json<{ deliveries: Record<string, unknown>[] }>(
      await call(`/admin/alerts/${row?.alert_id}`),
    );
    expect(alert.deliveries.filter((d) => d.destinationId === destination.id)).toEqual([
      expect.objectContaining({
        destinationId: destination.id,
        status: "failed",
        lastStatus: 308,
        lastError: `redirect (status 308 to ${new URL(receiverBase).host}) not followed`,
      }),
    ]);
  });

  it("reads only a bounded part of a receiver's answer", async () => {
    const channel = `/hooks/flood-${crypto.randomUUID()}`;
    await setChannel(channel, { mode: "flood", bytes: 32 * 1024 * 1024 });
    expect(await send(`${receiverBase}${channel}`)).toEqual({ kind: "sent", status: 200 });
    await vi.waitFor(async () => {
      const [request] = await received(channel);
      expect(request?.responseCut).toBe(true);
    });
  });
});

const notice: AlertNotice = {
  alertId: 1,
  state: "firing",
  severity: "warning",
  rule: "drift",
  model: "egress-test",
  version: "v1",
  role: "served",
  metric: "psi",
  dimension: "amount",
  value: 0.4,
  threshold: 0.25,
  comparison: "above",
  statistics: [],
  windowSeconds: 900,
  windowStart: "2026-10-24T10:00:00.000Z",
  summary: "amount drifted",
  firstSeenAt: "2026-10-24T10:15:00.000Z",
  lastSeenAt: "2026-10-24T10:15:00.000Z",
  resolvedAt: null,
  count: 1,
  link: "/admin/models/egress-test/monitoring",
};

async function setChannel(path: string, mode: Record<string, unknown>): Promise<void> {
  const response = await fetch(`${receiverBase}/__control${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(mode),
  });
  expect(response.status, await response.clone().text()).toBe(200);
}

async function received(path: string) {
  const response = await fetch(`${receiverBase}/__requests?path=${encodeURIComponent(path)}`);
  return (await response.json()) as { status: number | null; responseCut?: boolean }[];
}

/** An error rate far past its threshold in one window, evaluated once: the notices queued. */
async function breakRule(model: string, windowStart: number) {
  await query(sql`
    INSERT INTO monitoring_results (model, version, role, window_seconds, window_start, metric,
      dimension, value, status, details, run_id)
    VALUES (${model}, 'v1', 'served', 900, ${new Date(windowStart).toISOString()}, 'error_rate',
      '', 0.4, 'alert', '{}', 0)`);
  const sent: { deliveryId: number }[] = [];
  const queue = {
    send: async (body: { deliveryId: number }) => {
      sent.push(body);
    },
    sendBatch: async (batch: { body: { deliveryId: number } }[]) => {
      for (const item of batch) sent.push(item.body);
    },
  } as unknown as Queue;
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
