/**
 * A model's data policy may shorten how long its rows are kept: the hourly
 * upkeep job deletes that model's older rows, in bounded chunks, from every
 * table whose own retention is longer, and takes its old results out of dead
 * letters, leaving younger rows and other models' rows alone.
 */
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { maintainLogPartitions } from "../../functions/jobs/log-partitions";
import { storeLogs } from "../../functions/queue/prediction-logs";
import type { PredictionEvent } from "../../shared/inference/events";
import {
  call,
  classificationModel,
  createModel,
  type ErrorJson,
  json,
  query,
  uniqueName,
} from "./helpers";

const DAY = 86_400_000;

function result(model: string, ageDays: number, overrides: Partial<PredictionEvent> = {}) {
  return {
    role: "served",
    predictionId: crypto.randomUUID(),
    requestId: crypto.randomUUID(),
    model,
    version: "v1",
    prediction: { label: "fraud", score: 0.9 },
    inputs: { amount: 250, country: "DE" },
    attributes: { region: "eu" },
    keyHmac: null,
    latencyMs: 3,
    status: "ok",
    errorCode: null,
    stateVersion: 1,
    timestamp: new Date(Date.now() - ageDays * DAY).toISOString(),
    ...overrides,
  } satisfies PredictionEvent;
}

/** A served and a refused result, a label, a label event and a KPI event, `ageDays` old. */
async function seed(model: string, ageDays: number) {
  const served = result(model, ageDays);
  const refused = result(model, ageDays, {
    role: "rejected",
    version: "",
    prediction: null,
    status: "rejected",
    issues: [{ path: "inputs.amount", message: "is required" }],
  });
  await storeLogs(env, [served, refused], []);
  const at = new Date(Date.now() - ageDays * DAY).toISOString();
  await query(sql`INSERT INTO feedback (prediction_id, model, label, observed_at, api_key_id, updated_at)
    VALUES (${served.predictionId}, ${model}, '"fraud"', ${at}, 'key_test', ${at})`);
  await query(sql`INSERT INTO feedback_events (prediction_id, model, label, observed_at, api_key_id, received_at)
    VALUES (${served.predictionId}, ${model}, '"fraud"', ${at}, 'key_test', ${at})`);
  await query(sql`INSERT INTO outcomes (api_key_id, model, prediction_id, kpi, value, at, received_at)
    VALUES ('key_test', ${model}, ${served.predictionId}, 'revenue', 1, ${at}, ${at})`);
  return served.predictionId;
}

/** How many rows of `model` each table holds. */
async function counts(model: string) {
  const [row] = await query<Record<string, string>>(sql`SELECT
    (SELECT count(*) FROM predictions WHERE model = ${model}) AS predictions,
    (SELECT count(*) FROM rejected_requests WHERE model = ${model}) AS rejected_requests,
    (SELECT count(*) FROM prediction_refs WHERE model = ${model}) AS prediction_refs,
    (SELECT count(*) FROM feedback WHERE model = ${model}) AS feedback,
    (SELECT count(*) FROM feedback_events WHERE model = ${model}) AS feedback_events,
    (SELECT count(*) FROM outcomes WHERE model = ${model}) AS outcomes`);
  return Object.fromEntries(Object.entries(row ?? {}).map(([k, v]) => [k, Number(v)]));
}

async function deadLetter(id: string, results: unknown[]) {
  await query(sql`INSERT INTO dead_letters (message_id, queue, body, error, attempts)
    VALUES (${id}, 'airlock-prediction-logs', ${JSON.stringify({ schema: 1, results })}::jsonb, 'test', 1)`);
}

async function deadLetterModels(id: string): Promise<string[] | null> {
  const [row] = await query<{ body: { results: { model: string }[] } | null }>(
    sql`SELECT body FROM dead_letters WHERE message_id = ${id}`,
  );
  return row ? (row.body?.results.map((r) => r.model) ?? []) : null;
}

describe("data policy: retention per model", () => {
  it("refuses a retention longer than Airlock keeps anything, naming retentionDays", async () => {
    const model = uniqueName("dpr");
    await createModel(classificationModel(model));
    for (const retentionDays of [401, 0, 2.5]) {
      const response = await call(`/admin/models/${model}/data-policy`, {
        method: "PUT",
        body: { retentionDays },
      });
      expect(response.status).toBe(400);
      const body = await json<ErrorJson>(response);
      expect(body.error.details?.[0]?.path).toBe("retentionDays");
      expect(body.error.message).toMatch(/^.*retentionDays: must be/);
    }
    const tooLong = await call(`/admin/models/${model}/data-policy`, {
      method: "PUT",
      body: { retentionDays: 401 },
    });
    expect((await json<ErrorJson>(tooLong)).error.message).toContain(
      "retentionDays: must be at most 400 days",
    );
    const set = await call(`/admin/models/${model}/data-policy`, {
      method: "PUT",
      body: { retentionDays: 30 },
    });
    expect(set.status, await set.clone().text()).toBe(200);
    expect(await json(set)).toMatchObject({
      retentionDays: 30,
      retention: { predictions: 30, prediction_refs: 30, outcomes: 30, dead_letters: 14 },
    });
    const trail = await json<{ items: { action: string; after: { retentionDays: number } }[] }>(
      await call(`/admin/audit?target=models/${model}/data-policy&limit=1`),
    );
    expect(trail.items[0]).toMatchObject({
      action: "data_policy.update",
      after: { retentionDays: 30 },
    });
  });

  it("deletes the model's rows past its retention in chunks, and only those", async () => {
    const kept = uniqueName("dpr");
    const other = uniqueName("dpr");
    await createModel(classificationModel(kept));
    await createModel(classificationModel(other));
    const set = await call(`/admin/models/${kept}/data-policy`, {
      method: "PUT",
      body: { retentionDays: 5 },
    });
    expect(set.status, await set.clone().text()).toBe(200);

    await seed(kept, 8);
    await seed(kept, 7);
    const young = await seed(kept, 2);
    await seed(other, 8);
    // Dead letters: the model's old result beside another model's, one of only
    // its old results, and one of its young result.
    const mixed = `dpr-mixed-${crypto.randomUUID()}`;
    const onlyOld = `dpr-old-${crypto.randomUUID()}`;
    const onlyYoung = `dpr-young-${crypto.randomUUID()}`;
    await deadLetter(mixed, [result(kept, 8), result(other, 8)]);
    await deadLetter(onlyOld, [result(kept, 8), result(kept, 6)]);
    await deadLetter(onlyYoung, [result(kept, 2)]);
    const all = { predictions: 3, rejected_requests: 3, prediction_refs: 3 };
    expect(await counts(kept)).toEqual({ ...all, feedback: 3, feedback_events: 3, outcomes: 3 });

    // One row per statement, one statement per table: the run stops and says so.
    const first = await maintainLogPartitions(env, new Date(), { chunkRows: 1, chunksPerRun: 1 });
    expect(first.modelRetention[kept]).toMatchObject({
      retentionDays: 5,
      complete: false,
      deleted: { predictions: 1, rejected_requests: 1, prediction_refs: 1, feedback: 1 },
    });
    expect((await counts(kept)).predictions).toBe(2);
    expect(first.modelRetention[other]).toBeUndefined();

    // The next run takes the rest.
    const second = await maintainLogPartitions(env, new Date());
    expect(second.modelRetention[kept]).toMatchObject({
      retentionDays: 5,
      complete: true,
      deleted: {
        predictions: 1,
        rejected_requests: 1,
        prediction_refs: 1,
        feedback: 1,
        feedback_events: 1,
        outcomes: 1,
      },
    });
    const one = { predictions: 1, rejected_requests: 1, prediction_refs: 1 };
    expect(await counts(kept)).toEqual({ ...one, feedback: 1, feedback_events: 1, outcomes: 1 });
    const [left] = await query<{ prediction_id: string }>(
      sql`SELECT prediction_id FROM predictions WHERE model = ${kept}`,
    );
    expect(left?.prediction_id).toBe(young);
    // Another model's rows are held to the tables' own retention only.
    expect(await counts(other)).toEqual({ ...one, feedback: 1, feedback_events: 1, outcomes: 1 });
    // Dead letters lose the model's old results, nothing else.
    expect(await deadLetterModels(mixed)).toEqual([other]);
    expect(await deadLetterModels(onlyOld)).toBeNull();
    expect(await deadLetterModels(onlyYoung)).toEqual([kept]);
    expect(
      (first.modelRetention[kept]?.deleted.dead_letters ?? 0) +
        (second.modelRetention[kept]?.deleted.dead_letters ?? 0),
    ).toBe(3);

    // Nothing more to do: a third run deletes nothing.
    const third = await maintainLogPartitions(env, new Date());
    expect(Object.values(third.modelRetention[kept]?.deleted ?? {})).toEqual([0, 0, 0, 0, 0, 0, 0]);
  });
});
