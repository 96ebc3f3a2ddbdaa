import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import worker from "../../functions/index";
import { RESULTS_PER_STATEMENT, storeLogs } from "../../functions/queue/prediction-logs";
import type { PredictionEvent, PredictionLogMessage } from "../../shared/inference/events";
import {
  adminToken,
  call,
  classificationModel,
  createModel,
  deadDatabaseProxy,
  query,
  recordingQueue,
  uniqueName,
} from "./helpers";
import { DLQ, deliver, LOGS } from "./log-helpers";
import { putRollout } from "./rollout-helpers";

function event(overrides: Partial<PredictionEvent> = {}): PredictionEvent {
  return {
    role: "served",
    predictionId: crypto.randomUUID(),
    requestId: crypto.randomUUID(),
    model: "logs-model",
    version: "v1",
    prediction: { label: "fraud", score: 0.9 },
    inputs: { amount: 250, country: "DE" },
    attributes: { region: "eu" },
    keyHmac: "ab".repeat(32),
    latencyMs: 12.5,
    status: "ok",
    errorCode: null,
    stateVersion: 3,
    timestamp: new Date().toISOString(),
    ...overrides,
  };
}

const message = (results: PredictionEvent[]): PredictionLogMessage => ({ schema: 1, results });

/** How many times each (prediction id, role, version) is stored. */
async function storedCounts(ids: string[]): Promise<Map<string, number>> {
  const rows = await query<{ prediction_id: string; role: string; version: string; n: string }>(
    sql`SELECT prediction_id, role, version, count(*) AS n FROM predictions
        WHERE prediction_id IN (SELECT jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb))
        GROUP BY 1, 2, 3`,
  );
  return new Map(rows.map((r) => [`${r.prediction_id}/${r.role}/${r.version}`, Number(r.n)]));
}

const identity = (e: PredictionEvent) => `${e.predictionId}/${e.role}/${e.version}`;

describe("prediction logs: the consumer", () => {
  it("stores every result of a batch, in predictions, prediction_refs and rejected_requests", async () => {
    const served = event();
    const shadow = event({ predictionId: served.predictionId, role: "shadow", version: "v2" });
    const fallback = event({ role: "fallback", version: "", prediction: { label: "legit" } });
    const failed = event({ status: "timeout", errorCode: "UPSTREAM_TIMEOUT", prediction: null });
    const rejected = event({
      role: "rejected",
      version: "",
      status: "rejected",
      errorCode: "VALIDATION_FAILED",
      prediction: null,
      inputs: { amount: -1 },
      issues: [{ path: "inputs.amount", message: "must be at least 0" }],
    });
    const result = await deliver(LOGS, [
      { body: message([served, shadow]) },
      { body: message([fallback, failed, rejected]) },
    ]);
    expect(result.ackAll).toBe(true);
    expect(result.retryMessages).toEqual([]);
    const ids = [served, fallback, failed].map((e) => e.predictionId);
    const counts = await storedCounts(ids);
    expect([...counts.keys()].sort()).toEqual(
      [served, shadow, fallback, failed].map(identity).sort(),
    );
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    const [row] = await query<Record<string, unknown>>(
      sql`SELECT * FROM predictions WHERE prediction_id = ${served.predictionId} AND role = 'served'`,
    );
    expect(row).toMatchObject({
      request_id: served.requestId,
      model: "logs-model",
      version: "v1",
      inputs: served.inputs,
      prediction: served.prediction,
      attributes: served.attributes,
      key_hmac: served.keyHmac,
      latency_ms: 12.5,
      status: "ok",
      error_code: null,
    });
    expect(new Date(row?.created_at as string).toISOString()).toBe(served.timestamp);
    const refs = await query<{ n: string }>(
      sql`SELECT count(*) AS n FROM prediction_refs
          WHERE prediction_id IN (SELECT jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb))`,
    );
    expect(Number(refs[0]?.n)).toBe(4);
    const [refused] = await query<Record<string, unknown>>(
      sql`SELECT * FROM rejected_requests WHERE prediction_id = ${rejected.predictionId}`,
    );
    expect(refused).toMatchObject({
      model: "logs-model",
      inputs: { amount: -1 },
      issues: rejected.issues,
    });
  });

  it("changes nothing when the same batch is delivered again", async () => {
    const events = Array.from({ length: 30 }, () => event());
    const bodies = [
      { id: "dup-a", body: message(events.slice(0, 15)) },
      { id: "dup-b", body: message(events.slice(15)) },
    ];
    await deliver(LOGS, bodies);
    const again = await deliver(
      LOGS,
      bodies.map((b) => ({ ...b, attempts: 2 })),
    );
    expect(again.ackAll).toBe(true);
    const counts = await storedCounts(events.map((e) => e.predictionId));
    expect(counts.size).toBe(30);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
  });

  it("sets a poison message aside as a dead letter without holding up its batch", async () => {
    const good = [event(), event()];
    const poisonId = `poison-${crypto.randomUUID()}`;
    const result = await deliver(LOGS, [
      { body: message([good[0] as PredictionEvent]) },
      { id: poisonId, body: { schema: 1, results: [{ role: "served", predictionId: 42 }] } },
      { body: message([good[1] as PredictionEvent]) },
    ]);
    expect(result.ackAll).toBe(true);
    expect((await storedCounts(good.map((e) => e.predictionId))).size).toBe(2);
    const [dead] = await query<Record<string, unknown>>(
      sql`SELECT * FROM dead_letters WHERE message_id = ${poisonId}`,
    );
    expect(dead).toMatchObject({
      queue: LOGS,
      body: { schema: 1, results: [{ role: "served", predictionId: 42 }] },
      attempts: 1,
      replayed_at: null,
    });
    expect(dead?.error).toMatch(/^malformed message: results\[0\]\./);
  });

  it("retries with growing delays while Postgres is down, then stores everything exactly once", async () => {
    const down = { DATABASE_WS_PROXY: deadDatabaseProxy };
    const batches = Array.from({ length: 5 }, () =>
      Array.from({ length: 4 }, (_, i) => ({
        id: `stream-${crypto.randomUUID()}`,
        body: message(Array.from({ length: i + 1 }, () => event())),
      })),
    );
    const produced = batches.flatMap((b) => b.flatMap((m) => m.body.results));
    // Batches 0 and 4 land; 1 to 3 meet a database that is down, twice.
    await deliver(LOGS, batches[0] ?? []);
    const pending = batches.slice(1, 4).flat();
    let delays: number[] = [];
    for (const attempts of [1, 2]) {
      const result = await deliver(
        LOGS,
        pending.map((m) => ({ ...m, attempts })),
        down,
      );
      expect(result.ackAll).toBe(false);
      expect(result.retryMessages.map((r) => r.msgId).sort()).toEqual(
        pending.map((m) => m.id).sort(),
      );
      delays = [...delays, result.retryMessages[0]?.delaySeconds ?? 0];
    }
    expect(delays[1]).toBeGreaterThan(delays[0] ?? 0);
    await deliver(LOGS, batches[4] ?? []);
    // Redelivered once Postgres is back.
    await deliver(
      LOGS,
      pending.map((m) => ({ ...m, attempts: 3 })),
    );
    const counts = await storedCounts(produced.map((e) => e.predictionId));
    expect(counts.size).toBe(produced.length);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
  });

  it("stores each result once when a delivery stopped after storing half of its batch", async () => {
    const events = Array.from({ length: 40 }, () => event());
    // What an earlier delivery managed to store before it died.
    await storeLogs(env, events.slice(0, 20), []);
    await deliver(LOGS, [
      { body: message(events.slice(0, 25)) },
      { body: message(events.slice(25)) },
    ]);
    const counts = await storedCounts(events.map((e) => e.predictionId));
    expect(counts.size).toBe(40);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
  });

  it("stores a batch of full messages in several statements; one failing midway is retried and stores the rest once", async () => {
    // Coalesced messages: 100 results each, 2,500 in the batch, more than one
    // statement takes (RESULTS_PER_STATEMENT).
    const events = Array.from({ length: 2500 }, () => event());
    expect(events.length).toBeGreaterThan(2 * RESULTS_PER_STATEMENT);
    const bodies = Array.from({ length: 25 }, (_, i) => ({
      body: message(events.slice(i * 100, (i + 1) * 100)),
    }));
    // A trigger fails the statement holding one result of the third chunk.
    const doomed = events[2 * RESULTS_PER_STATEMENT + 10]?.predictionId as string;
    const fn = `fail_${uniqueName("t").replaceAll("-", "_")}`;
    await query(
      sql.raw(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.prediction_id = '${doomed}' THEN RAISE EXCEPTION 'injected failure'; END IF;
          RETURN NEW;
        END $$`),
    );
    await query(
      sql.raw(
        `CREATE TRIGGER ${fn} BEFORE INSERT ON prediction_refs FOR EACH ROW EXECUTE FUNCTION ${fn}()`,
      ),
    );
    let first: Awaited<ReturnType<typeof deliver>>;
    try {
      first = await deliver(LOGS, bodies);
    } finally {
      await query(sql.raw(`DROP TRIGGER ${fn} ON prediction_refs`));
      await query(sql.raw(`DROP FUNCTION ${fn}()`));
    }
    expect(first.ackAll).toBe(false);
    expect(first.retryMessages).toHaveLength(25);
    // The statements before the failing one were stored; the failing one not at all.
    const partial = await storedCounts(events.map((e) => e.predictionId));
    expect(partial.size).toBe(2 * RESULTS_PER_STATEMENT);
    const again = await deliver(
      LOGS,
      bodies.map((b) => ({ ...b, attempts: 2 })),
    );
    expect(again.ackAll).toBe(true);
    const counts = await storedCounts(events.map((e) => e.predictionId));
    expect(counts.size).toBe(2500);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    const [refs] = await query<{ n: string }>(
      sql`SELECT count(*) AS n FROM prediction_refs
          WHERE prediction_id IN (SELECT jsonb_array_elements_text(${JSON.stringify(events.map((e) => e.predictionId))}::jsonb))`,
    );
    expect(Number(refs?.n)).toBe(2500);
  });

  it("keeps a row whose day has no partition in DEFAULT, until maintenance moves it", async () => {
    const far = new Date(Date.now() + 40 * 86_400_000);
    const late = event({ timestamp: far.toISOString() });
    await deliver(LOGS, [{ body: message([late]) }]);
    const where = async () =>
      (
        await query<{ part: string }>(
          sql`SELECT tableoid::regclass::text AS part FROM predictions WHERE prediction_id = ${late.predictionId}`,
        )
      ).map((r) => r.part);
    expect(await where()).toEqual(["predictions_default"]);
    const day = far.toISOString().slice(0, 10);
    const [moved] = await query<{ moved: string }>(
      sql`SELECT airlock_ensure_day_partitions('predictions', ${day}::date, 1) AS moved`,
    );
    expect(Number(moved?.moved)).toBeGreaterThanOrEqual(1);
    expect(await where()).toEqual([`predictions_p${day.replaceAll("-", "")}`]);
  });

  it("fails loudly for a queue it does not consume", async () => {
    await expect(deliver("some-other-queue", [{ body: message([event()]) }])).rejects.toThrow(
      /No consumer for queue 'some-other-queue'/,
    );
  });
});

describe("prediction logs: the dead-letter queue", () => {
  it("stores messages whole, once, and retries with long backoff while Postgres is down", async () => {
    const body = message([event(), event()]);
    const id = `dlq-${crypto.randomUUID()}`;
    const failed = await deliver(DLQ, [{ id, body, attempts: 3 }], {
      DATABASE_WS_PROXY: deadDatabaseProxy,
    });
    expect(failed.retryMessages).toEqual([{ msgId: id, delaySeconds: 240 }]);
    for (const attempts of [4, 5]) {
      expect((await deliver(DLQ, [{ id, body, attempts }])).ackAll).toBe(true);
    }
    const rows = await query<Record<string, unknown>>(
      sql`SELECT * FROM dead_letters WHERE message_id = ${id}`,
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ queue: LOGS, body, attempts: 4 });
    expect(rows[0]?.error).toMatch(/not stored after 4 deliveries/);
  });
});

describe("prediction logs: from a request to rows", () => {
  it("stores what a prediction request put on the queue", async () => {
    const model = uniqueName("logs");
    const { messages, queue } = recordingQueue();
    await createModel(
      classificationModel(model, {
        public: true,
        fallback: { kind: "static", output: { label: "legit" } },
      }),
    );
    await putRollout(model, { leaseMs: 250 });
    const ctx = createExecutionContext();
    // No champion yet is 503; a killed model with a static fallback answers it.
    await call(`/admin/models/${model}/kill-switch`, {
      method: "POST",
      body: { scope: "model", reason: "logs test" },
    });
    const response = await worker.fetch(
      new Request(`http://airlock.test/v1/models/${model}/predict`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          inputs: [
            { amount: 1, country: "DE" },
            { amount: -5, country: "DE" },
          ],
        }),
      }),
      { ...env, PREDICTION_LOGS: queue } as unknown as Env,
      ctx,
    );
    await waitOnExecutionContext(ctx);
    expect(response.status).toBe(400);
    const okContext = createExecutionContext();
    const ok = await worker.fetch(
      new Request(`http://airlock.test/v1/models/${model}/predict`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          inputs: [
            { amount: 1, country: "DE" },
            { amount: 5, country: "FR" },
          ],
        }),
      }),
      { ...env, PREDICTION_LOGS: queue } as unknown as Env,
      okContext,
    );
    expect(ok.status).toBe(200);
    // Its results are on the queue once its work after the response is done.
    await waitOnExecutionContext(okContext);
    await deliver(
      LOGS,
      messages.map((body) => ({ body })),
    );
    const ids = (ok.headers.get("x-airlock-prediction-id") ?? "").split(",");
    const rows = await query<{ prediction_id: string; role: string; version: string }>(
      sql`SELECT prediction_id, role, version FROM predictions WHERE model = ${model} ORDER BY prediction_id`,
    );
    expect(rows.map((r) => r.prediction_id).sort()).toEqual([...ids].sort());
    expect(rows.every((r) => r.role === "fallback" && r.version === "")).toBe(true);
    const refused = await query<{ issues: unknown }>(
      sql`SELECT issues FROM rejected_requests WHERE model = ${model}`,
    );
    expect(refused).toEqual([
      { issues: [{ path: "inputs[1].amount", message: "must be at least 0" }] },
    ]);
  });
});

describe("prediction logs: replaying dead letters", () => {
  async function admin(path: string, body?: unknown, queue?: unknown) {
    const ctx = createExecutionContext();
    const response = await worker.fetch(
      new Request(`http://airlock.test${path}`, {
        method: body === undefined ? "GET" : "POST",
        headers: {
          authorization: `Bearer ${adminToken()}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
      { ...env, ...(queue ? { PREDICTION_LOGS: queue } : {}) } as unknown as Env,
      ctx,
    );
    await waitOnExecutionContext(ctx);
    return response;
  }
  const idOf = async (messageId: string) =>
    String(
      (
        await query<{ id: string }>(
          sql`SELECT id FROM dead_letters WHERE message_id = ${messageId}`,
        )
      )[0]?.id,
    );

  it("puts well-formed dead letters back on the queue once, skips poison, and audits it", async () => {
    const lost = [event(), event(), event()];
    const lostId = `dlq-${crypto.randomUUID()}`;
    await deliver(DLQ, [{ id: lostId, body: message(lost), attempts: 6 }]);
    const poisonId = `poison-${crypto.randomUUID()}`;
    await deliver(LOGS, [{ id: poisonId, body: "not a message" }]);
    const ids = [await idOf(lostId), await idOf(poisonId)];

    const { messages, queue } = recordingQueue();
    const response = await admin("/admin/dead-letters/replay", { ids }, queue);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      replayed: [ids[0]],
      results: 3,
      skipped: [
        {
          id: ids[1],
          reason: expect.stringMatching(
            /^not a well-formed prediction-log message \(body: .+\); it can be discarded$/,
          ),
        },
      ],
    });
    expect(messages).toEqual([message(lost)]);
    // The replayed message is stored like any other.
    await deliver(
      LOGS,
      messages.map((body) => ({ body })),
    );
    const counts = await storedCounts(lost.map((e) => e.predictionId));
    expect(counts.size).toBe(3);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);

    // Replayed once: a second call finds nothing pending for it.
    const again = await admin(
      "/admin/dead-letters/replay",
      { ids: [ids[0]] },
      recordingQueue().queue,
    );
    expect(await again.json()).toEqual({ replayed: [], results: 0, skipped: [] });
    const listed = await admin("/admin/dead-letters?replayed=true&limit=100");
    const items = ((await listed.json()) as { items: { id: string; replayedBy: string }[] }).items;
    expect(items.find((i) => i.id === ids[0])?.replayedBy).toBe("prn_testadmin");
    const audit = await admin("/admin/audit?action=dead_letters.replay&limit=5");
    const entries = ((await audit.json()) as { items: { after: { replayed: string[] } }[] }).items;
    expect(entries.some((e) => e.after.replayed.includes(ids[0] as string))).toBe(true);
  });
});

describe("prediction logs: partition upkeep", () => {
  it("creates days ahead, moves rows out of DEFAULT, drops days past retention, runs on its cron", async () => {
    const { maintainLogPartitions } = await import("../../functions/jobs/log-partitions");
    const now = new Date();
    const day = (offset: number) =>
      new Date(now.getTime() + offset * 86_400_000).toISOString().slice(0, 10).replaceAll("-", "");
    const partitions = async () =>
      (
        await query<{ name: string }>(
          sql`SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'predictions'::regclass`,
        )
      ).map((r) => r.name);
    // A stray row far ahead, and an expired day's partition.
    const stray = event({ timestamp: new Date(now.getTime() + 60 * 86_400_000).toISOString() });
    await storeLogs(env, [stray], []);
    const old = `predictions_p${day(-120)}`;
    await query(
      sql.raw(`SELECT airlock_ensure_day_partitions('predictions', current_date - 120, 1)`),
    );
    expect(await partitions()).toContain(old);

    const report = await maintainLogPartitions(env, now);
    const after = await partitions();
    for (const offset of [0, 1, 7]) expect(after).toContain(`predictions_p${day(offset)}`);
    expect(after).toContain(`predictions_p${day(60)}`);
    expect(after).not.toContain(old);
    expect(report.dropped).toContain(old);
    expect(report.moved.predictions).toBeGreaterThanOrEqual(1);
    const [where] = await query<{ part: string }>(
      sql`SELECT tableoid::regclass::text AS part FROM predictions WHERE prediction_id = ${stray.predictionId}`,
    );
    expect(where?.part).toBe(`predictions_p${day(60)}`);
    // The same job through the scheduled handler; an unknown cron is an error.
    const ctx = createExecutionContext();
    await worker.scheduled(
      { cron: "17 * * * *", scheduledTime: now.getTime(), noRetry() {} } as ScheduledController,
      env,
      ctx,
    );
    await expect(
      worker.scheduled(
        { cron: "* * * * *", scheduledTime: now.getTime(), noRetry() {} } as ScheduledController,
        env,
        ctx,
      ),
    ).rejects.toThrow(/No job for cron/);
  });
});
