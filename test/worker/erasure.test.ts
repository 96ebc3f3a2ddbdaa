/**
 * Erasure by bucketing key and by prediction ids: every row of the subject
 * gone (results, references, rejected requests, labels, KPI events, its
 * part of dead letters, the baseline that summarised it), everyone else's
 * kept, and the subject staying gone after a queue redelivery, a
 * dead-letter replay and a late label.
 */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import worker from "../../functions/index";
import { resumeErasures, runErasureStep } from "../../functions/jobs/erasure";
import { keyHmac, type PredictionLogMessage } from "../../shared/inference/events";
import {
  adminHeaders,
  call,
  classificationModel,
  createModel,
  type ErrorJson,
  json,
  query,
  recordingQueue,
  uniqueName,
} from "./helpers";
import { DLQ, deliver, deliverLogs } from "./log-helpers";
import { modelWithShadow } from "./rollout-helpers";

interface ErasureJson {
  id: number;
  subject: string;
  keyHmac: string | null;
  status: string;
  progress: { phase: string; pass: number };
  counts: Record<string, number>;
  error: string | null;
}

/** Calls the Worker with some bindings replaced; returns once its work after the response is done. */
async function fetchWith(path: string, init: RequestInit, overrides: Partial<Env>) {
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`http://airlock.test${path}`, init),
    { ...env, ...overrides } as Env,
    ctx,
  );
  const text = await response.text();
  await waitOnExecutionContext(ctx);
  return { status: response.status, text };
}

async function predict(model: string, body: unknown): Promise<PredictionLogMessage[]> {
  const { messages, queue } = recordingQueue();
  const sent = await fetchWith(
    `/v1/models/${model}/predict`,
    { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) },
    { PREDICTION_LOGS: queue as unknown as Queue },
  );
  expect([200, 400]).toContain(sent.status);
  return messages;
}

/** Follows an erasure until its consumer has ended it: each poll is a read of its row. */
async function ended(id: number): Promise<ErasureJson> {
  for (let poll = 0; poll < 2000; poll++) {
    const erasure = await json<ErasureJson>(await call(`/admin/erasure/${id}`));
    if (erasure.status === "succeeded" || erasure.status === "failed") return erasure;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`erasure ${id} did not end`);
}

const inList = (ids: string[]) =>
  sql`ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb))`;

/** Rows of these prediction ids in every table erasure covers. */
async function rowsOf(ids: string[]) {
  const [counts] = await query<Record<string, string>>(sql`
    SELECT
      (SELECT count(*) FROM predictions WHERE prediction_id = ANY(${inList(ids)})) AS predictions,
      (SELECT count(*) FROM prediction_refs WHERE prediction_id = ANY(${inList(ids)})) AS refs,
      (SELECT count(*) FROM rejected_requests WHERE prediction_id = ANY(${inList(ids)})) AS rejected,
      (SELECT count(*) FROM feedback WHERE prediction_id = ANY(${inList(ids)})) AS feedback,
      (SELECT count(*) FROM feedback_events WHERE prediction_id = ANY(${inList(ids)})) AS events,
      (SELECT count(*) FROM outcomes WHERE prediction_id = ANY(${inList(ids)})) AS outcomes,
      (SELECT count(*) FROM dead_letters WHERE EXISTS (SELECT 1 FROM unnest(${inList(ids)}) id
        WHERE coalesce(body::text, body_text) LIKE '%' || id || '%')) AS dead_letters`);
  return Object.fromEntries(Object.entries(counts ?? {}).map(([k, v]) => [k, Number(v)]));
}

async function newReportingKey(model: string): Promise<string> {
  const response = await call("/admin/keys", {
    method: "POST",
    body: { name: `reporter-${model}`, models: [model] },
  });
  expect(response.status).toBe(201);
  return (await json<{ key: string }>(response)).key;
}

/** No row of the subject anywhere. */
const NONE = Object.fromEntries(
  ["predictions", "refs", "rejected", "feedback", "events", "outcomes", "dead_letters"].map((t) => [
    t,
    0,
  ]),
);

const report = (path: string, body: unknown, key: string) =>
  call(path, { method: "POST", body, token: key });

describe("erasure", () => {
  it("erases a key's records everywhere and keeps them erased through a redelivery, a replay and a late label", async () => {
    const model = await modelWithShadow("er");
    const reporter = await newReportingKey(model);
    const subject = `customer-${crypto.randomUUID()}`;
    const other = `customer-${crypto.randomUUID()}`;
    const from = new Date(Date.now() - 1000).toISOString();

    // The subject: two answered requests (served and shadow each) and a refused one.
    const subjectMessages = [
      ...(await predict(model, { inputs: { amount: 10, country: "FR" }, key: subject })),
      ...(await predict(model, { inputs: { amount: 20, country: "DE" }, key: subject })),
      ...(await predict(model, { inputs: { amount: 30, country: "XX" }, key: subject })),
    ];
    const otherMessages = await predict(model, {
      inputs: { amount: 40, country: "FR" },
      key: other,
    });
    const subjectResults = subjectMessages.flatMap((m) => m.results);
    const otherResults = otherMessages.flatMap((m) => m.results);
    expect(subjectResults.map((r) => r.role).sort()).toEqual([
      "rejected",
      "served",
      "served",
      "shadow",
      "shadow",
    ]);
    const subjectIds = [...new Set(subjectResults.map((r) => r.predictionId))];
    const otherIds = [...new Set(otherResults.map((r) => r.predictionId))];
    const [p1, p2] = subjectResults.filter((r) => r.role === "served").map((r) => r.predictionId);
    const [p3] = otherIds;
    expect(
      (await deliverLogs([...subjectMessages, ...otherMessages].map((body) => ({ body }))))
        .retryMessages,
    ).toEqual([]);

    // Labels and KPI events, by prediction and by key.
    expect(
      (
        await report(
          "/v1/feedback",
          [
            { predictionId: p1, model, label: "fraud" },
            { predictionId: p3, model, label: "legit" },
          ],
          reporter,
        )
      ).status,
    ).toBe(202);
    expect(
      (
        await report(
          "/v1/outcomes",
          [
            { model, key: subject, kpi: "revenue", value: 1 },
            { model, predictionId: p2, kpi: "revenue", value: 2 },
            { model, key: other, kpi: "revenue", value: 3 },
          ],
          reporter,
        )
      ).status,
    ).toBe(202);

    // Dead letters: one holding the subject's and the other client's
    // served results, one holding only the subject's.
    const served = (id: string | undefined) =>
      [...subjectResults, ...otherResults].find(
        (r) => r.predictionId === id && r.role === "served",
      );
    const mixedId = `erasure-mixed-${crypto.randomUUID()}`;
    const onlyId = `erasure-only-${crypto.randomUUID()}`;
    await deliver(DLQ, [
      { id: mixedId, body: { schema: 1, results: [served(p1), served(p3)] }, attempts: 6 },
      { id: onlyId, body: { schema: 1, results: [served(p2)] }, attempts: 6 },
    ]);

    // A baseline drawn from the window of traffic that holds the subject's answers.
    const to = new Date(Date.now() + 1000).toISOString();
    const baseline = await call(`/admin/models/${model}/versions/v1/baseline`, {
      method: "POST",
      body: { from, to },
    });
    expect(baseline.status, await baseline.clone().text()).toBe(200);
    expect((await json<{ rows: number }>(baseline)).rows).toBe(3);

    expect(await rowsOf(subjectIds)).toEqual({
      predictions: 4,
      refs: 4,
      rejected: 1,
      feedback: 1,
      events: 1,
      outcomes: 1,
      dead_letters: 2,
    });

    // Asked for wrongly: each problem named.
    const both = await call("/admin/erasure", {
      method: "POST",
      body: { key: subject, predictionIds: [p1], reason: "x" },
    });
    expect(both.status).toBe(400);
    expect((await json<ErrorJson>(both)).error.details?.[0]?.path).toBe("predictionIds");
    const neither = await call("/admin/erasure", { method: "POST", body: { reason: "x" } });
    expect((await json<ErrorJson>(neither)).error.details?.[0]?.path).toBe("key");

    const asked = await call("/admin/erasure", {
      method: "POST",
      body: { key: subject, model, reason: "DSR-0142" },
    });
    expect(asked.status, await asked.clone().text()).toBe(201);
    const created = await json<ErasureJson>(asked);
    const hashed = await keyHmac(env.LOG_HMAC_KEY, subject);
    expect(created).toMatchObject({ subject: "key", keyHmac: hashed, status: "queued" });
    const done = await ended(created.id);
    expect(done.status, done.error ?? "").toBe("succeeded");
    expect(done.progress).toEqual({ phase: "done", pass: 1 });
    expect(done.counts).toEqual({
      predictions: 4,
      prediction_refs: 4,
      rejected_requests: 1,
      feedback: 1,
      feedback_events: 1,
      outcomes: 2,
      dead_letters_deleted: 1,
      dead_letters_edited: 1,
      baselines_rebuilt: 1,
      baselines_cleared: 0,
      tombstones: 3,
    });
    expect(await rowsOf(subjectIds)).toEqual(NONE);
    const [byKey] = await query<{ n: string }>(sql`
      SELECT (SELECT count(*) FROM outcomes WHERE key_hmac = ${hashed})
        + (SELECT count(*) FROM prediction_refs WHERE key_hmac = ${hashed}) AS n`);
    expect(Number(byKey?.n)).toBe(0);

    // Everyone else's records are untouched: the other client's part of the
    // shared dead letter stays, the baseline is drawn again from what is left.
    expect(await rowsOf(otherIds)).toMatchObject({
      predictions: 2,
      refs: 2,
      feedback: 1,
      dead_letters: 1,
    });
    const [mixed] = await query<{ body: PredictionLogMessage }>(
      sql`SELECT body FROM dead_letters WHERE message_id = ${mixedId}`,
    );
    expect(mixed?.body.results.map((r) => r.predictionId)).toEqual([p3]);
    const [otherOutcomes] = await query<{ n: string }>(
      sql`SELECT count(*) AS n FROM outcomes WHERE key_hmac = ${await keyHmac(env.LOG_HMAC_KEY, other)}`,
    );
    expect(Number(otherOutcomes?.n)).toBe(1);
    const rebuilt = await json<{ rows: number; createdBy: string }>(
      await call(`/admin/models/${model}/versions/v1/baseline`),
    );
    expect(rebuilt).toMatchObject({ rows: 1, createdBy: `erasure/${created.id}` });

    // A redelivery of the original messages stores none of the subject.
    const redelivered = await deliverLogs(subjectMessages.map((body) => ({ body })));
    expect(redelivered.ackAll).toBe(true);
    // A dead letter that still held the subject (written by a store that
    // raced the erasure), replayed: its results go back on the queue, and
    // the consumer stores none of them.
    const racedId = `erasure-raced-${crypto.randomUUID()}`;
    await query(sql`INSERT INTO dead_letters (message_id, queue, body, error, attempts)
      VALUES (${racedId}, 'airlock-prediction-logs',
        ${JSON.stringify({ schema: 1, results: subjectResults })}::jsonb, 'raced', 6)`);
    const [raced] = await query<{ id: string }>(
      sql`SELECT id FROM dead_letters WHERE message_id = ${racedId}`,
    );
    const replayQueue = recordingQueue();
    const replay = await fetchWith(
      "/admin/dead-letters/replay",
      {
        method: "POST",
        headers: adminHeaders({ "content-type": "application/json" }),
        body: JSON.stringify({ ids: [raced?.id] }),
      },
      { PREDICTION_LOGS: replayQueue.queue as unknown as Queue },
    );
    expect(replay.status, replay.text).toBe(200);
    expect(replayQueue.messages.flatMap((m) => m.results)).toHaveLength(subjectResults.length);
    await deliverLogs(replayQueue.messages.map((body) => ({ body })));
    // And a dead letter arriving now is stored without the subject's results.
    const lateLetter = `erasure-late-${crypto.randomUUID()}`;
    await deliver(DLQ, [
      { id: lateLetter, body: { schema: 1, results: [served(p1), served(p3)] }, attempts: 6 },
    ]);
    const [late] = await query<{ body: PredictionLogMessage }>(
      sql`SELECT body FROM dead_letters WHERE message_id = ${lateLetter}`,
    );
    expect(late?.body.results.map((r) => r.predictionId)).toEqual([p3]);
    // A late label and a late KPI event for the subject are not stored, and say so.
    const label = await report(
      "/v1/feedback",
      { predictionId: p1, model, label: "legit" },
      reporter,
    );
    expect(await json(label)).toEqual({ accepted: 1, erased: 1 });
    const kpi = await report(
      "/v1/outcomes",
      { model, key: subject, kpi: "revenue", value: 5, at: from },
      reporter,
    );
    expect(await json(kpi)).toEqual({ accepted: 1, stored: 0, erased: 1 });
    const [{ n: leftover } = { n: "" }] = await query<{ n: string }>(
      sql`SELECT count(*) AS n FROM dead_letters WHERE message_id = ${racedId}`,
    );
    // Replayed dead letters are marked, not removed: the raced one's body is
    // the subject's, which the replay did not bring back.
    expect(Number(leftover)).toBe(1);
    await query(sql`DELETE FROM dead_letters WHERE message_id = ${racedId}`);
    expect(await rowsOf(subjectIds)).toEqual(NONE);
    // What the subject does after the erasure is a new record: stored.
    const after = await report(
      "/v1/outcomes",
      { model, key: subject, kpi: "revenue", value: 6 },
      reporter,
    );
    expect(await json(after)).toEqual({ accepted: 1, stored: 1, erased: 0 });

    // The trail holds the request and its counts, the key only as its HMAC.
    const trail = await json<{ items: { action: string; after: Record<string, unknown> }[] }>(
      await call(`/admin/audit?target=erasure/${created.id}&limit=10`),
    );
    expect(trail.items.map((item) => item.action).sort()).toEqual([
      "erasure.complete",
      "erasure.request",
    ]);
    expect(JSON.stringify(trail)).not.toContain(subject);
    expect(trail.items.find((i) => i.action === "erasure.request")?.after).toMatchObject({
      keyHmac: hashed,
      reason: "DSR-0142",
    });
    expect(trail.items.find((i) => i.action === "erasure.complete")?.after).toMatchObject({
      counts: done.counts,
    });

    // Asked again: only the record made since is left to erase.
    const again = await ended(
      (
        await json<ErasureJson>(
          await call("/admin/erasure", {
            method: "POST",
            body: { key: subject, model, reason: "DSR-0142, again" },
          }),
        )
      ).id,
    );
    expect(again.status).toBe("succeeded");
    expect(again.counts).toMatchObject({ predictions: 0, prediction_refs: 0, outcomes: 1 });
  });

  it("erases prediction ids in bounded steps, and finds rows stored meanwhile in another pass", async () => {
    const model = uniqueName("erid");
    await createModel(classificationModel(model, { public: true }));
    const hashed = await keyHmac(env.LOG_HMAC_KEY, `bulk-${crypto.randomUUID()}`);
    // More rows of one key than a step deletes: 6,000 answers (and their references).
    await query(sql`
      WITH ids AS (SELECT gen_random_uuid()::text AS id, now() - (i || ' seconds')::interval AS at
                   FROM generate_series(1, 6000) i)
      , p AS (INSERT INTO predictions (prediction_id, role, version, created_at, request_id, model,
          inputs, prediction, attributes, key_hmac, latency_ms, status, state_version)
        SELECT id, 'served', 'v1', at, id, ${model}, '{"amount": 1}', '{"label": "legit"}', '{}',
          ${hashed}, 1, 'ok', 1 FROM ids)
      INSERT INTO prediction_refs (prediction_id, role, version, created_at, model, prediction,
          attributes, key_hmac, state_version)
      SELECT id, 'served', 'v1', at, ${model}, '{"label": "legit"}', '{}', ${hashed}, 1 FROM ids`);
    const [one] = await query<{ prediction_id: string }>(
      sql`SELECT prediction_id FROM predictions WHERE model = ${model} LIMIT 1`,
    );
    const erasures = recordingQueue();
    const asked = await fetchWith(
      "/admin/erasure",
      {
        method: "POST",
        headers: adminHeaders({ "content-type": "application/json" }),
        body: JSON.stringify({ predictionIds: [one?.prediction_id], model, reason: "x" }),
      },
      {},
    );
    expect(asked.status).toBe(400);
    expect(JSON.parse(asked.text).error.details[0].path).toBe("model");

    // By id, driving the steps by hand: the queue records the first message only.
    const byId = await fetchWith(
      "/admin/erasure",
      {
        method: "POST",
        headers: adminHeaders({ "content-type": "application/json" }),
        body: JSON.stringify({ predictionIds: [one?.prediction_id], reason: "one id" }),
      },
      { ERASURES: erasures.queue as unknown as Queue },
    );
    expect(byId.status, byId.text).toBe(201);
    const { id } = JSON.parse(byId.text) as ErasureJson;
    expect(erasures.messages).toEqual([{ erasureId: id }]);
    const phases: string[] = [];
    let raced = false;
    for (let steps = 0; steps < 50; steps++) {
      const more = await runErasureStep(env, id);
      const [row] = await query<{ progress: { step: { phase: string; pass: number } } }>(
        sql`SELECT progress FROM erasure_requests WHERE id = ${id}`,
      );
      phases.push(`${row?.progress.step.phase}/${row?.progress.step.pass}`);
      // Between the baselines and the check, a write that began before the
      // erasure lands a row of the id: the check finds it, another pass erases it.
      if (row?.progress.step.phase === "verify" && !raced) {
        raced = true;
        await query(sql`INSERT INTO prediction_refs (prediction_id, role, version, created_at,
            model, prediction, attributes, key_hmac, state_version)
          VALUES (${one?.prediction_id}, 'shadow', 'v2', now(), ${model}, null, '{}', null, 1)`);
      }
      if (!more) break;
    }
    expect(phases.at(-1)).toBe("done/2");
    expect(phases).toContain("logs/2");
    const single = await json<ErasureJson>(await call(`/admin/erasure/${id}`));
    expect(single.counts).toMatchObject({ predictions: 1, prediction_refs: 2, tombstones: 1 });

    // By key: more rows than one step takes, each partition in steps.
    const [{ id: keyErasureId } = { id: 0 }] = await query<{ id: number }>(sql`
      INSERT INTO erasure_requests (subject, key_hmac, model, reason, status, progress, counts,
        requested_by)
      VALUES ('key', ${hashed}, ${model}, 'bulk', 'queued',
        '{"step": {"phase": "logs", "pass": 1, "table": "prediction_refs", "after": null}, "affected": []}',
        '{}', 'prn_testadmin')
      RETURNING id`);
    while (await runErasureStep(env, Number(keyErasureId))) {}
    const bulk = await json<ErasureJson>(await call(`/admin/erasure/${keyErasureId}`));
    expect(bulk.status).toBe("succeeded");
    // More than one step deletes (ERASURE_CHUNK_ROWS, 5,000): each table took two.
    expect(bulk.counts).toMatchObject({ predictions: 5999, prediction_refs: 5999 });
    const [left] = await query<{ n: string }>(
      sql`SELECT count(*) AS n FROM predictions WHERE model = ${model}`,
    );
    expect(Number(left?.n)).toBe(0);

    const missing = await call("/admin/erasure/999999999");
    expect(missing.status).toBe(404);
    expect((await json<ErrorJson>(missing)).error.code).toBe("ERASURE_NOT_FOUND");
  });

  it("sends again an erasure whose next step was lost, from the hourly upkeep", async () => {
    const [stalled] = await query<{ id: string }>(sql`
      INSERT INTO erasure_requests (subject, prediction_ids, reason, status, progress, counts,
        requested_by, updated_at)
      VALUES ('predictions', '[]', 'lost', 'running',
        '{"step": {"phase": "feedback", "pass": 1}, "affected": []}', '{}', 'prn_testadmin',
        now() - interval '16 minutes')
      RETURNING id`);
    const [fresh] = await query<{ id: string }>(sql`
      INSERT INTO erasure_requests (subject, prediction_ids, reason, status, progress, counts,
        requested_by)
      VALUES ('predictions', '[]', 'busy', 'running',
        '{"step": {"phase": "feedback", "pass": 1}, "affected": []}', '{}', 'prn_testadmin')
      RETURNING id`);
    const sent = recordingQueue();
    const resumed = await resumeErasures(
      { ...env, ERASURES: sent.queue as unknown as Queue } as Env,
      new Date(),
    );
    expect(resumed).toContain(Number(stalled?.id));
    expect(resumed).not.toContain(Number(fresh?.id));
    expect(sent.messages).toContainEqual({ erasureId: Number(stalled?.id) });
    // The message finishes it.
    while (await runErasureStep(env, Number(stalled?.id))) {}
    const done = await json<ErasureJson>(await call(`/admin/erasure/${stalled?.id}`));
    expect(done.status).toBe("succeeded");
    while (await runErasureStep(env, Number(fresh?.id))) {}
  });

  it("erases ids without touching rows that share their place in another partition", async () => {
    const model = uniqueName("erctid");
    // Two days no other test writes: each id is its partition's first row, so both rows have
    // the same ctid, which names a row only within its own table.
    await query(
      sql`SELECT airlock_ensure_day_partitions('prediction_refs', '2027-06-01'::date, 2)`,
    );
    const [a, b] = [crypto.randomUUID(), crypto.randomUUID()];
    await query(sql`INSERT INTO prediction_refs (prediction_id, role, version, created_at, model,
        prediction, attributes, key_hmac, state_version)
      VALUES (${a}, 'served', 'v1', '2027-06-01T12:00:00Z', ${model}, null, '{}', null, 1),
             (${b}, 'served', 'v1', '2027-06-02T12:00:00Z', ${model}, null, '{}', null, 1)`);
    const places = await query<{ ctid: string }>(
      sql`SELECT ctid::text AS ctid FROM prediction_refs WHERE model = ${model}`,
    );
    expect(places.map((p) => p.ctid)).toEqual(["(0,1)", "(0,1)"]);
    const erasures = recordingQueue();
    const asked = await fetchWith(
      "/admin/erasure",
      {
        method: "POST",
        headers: adminHeaders({ "content-type": "application/json" }),
        body: JSON.stringify({ predictionIds: [a], reason: "one of two" }),
      },
      { ERASURES: erasures.queue as unknown as Queue },
    );
    expect(asked.status, asked.text).toBe(201);
    const { id } = JSON.parse(asked.text) as ErasureJson;
    while (await runErasureStep(env, id)) {}
    const left = await query<{ prediction_id: string }>(
      sql`SELECT prediction_id FROM prediction_refs WHERE model = ${model}`,
    );
    expect(left.map((r) => r.prediction_id)).toEqual([b]);
  });
});
