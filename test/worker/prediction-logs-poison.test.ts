import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import type { PredictionEvent, PredictionLogMessage } from "../../shared/inference/events";
import { encodeCursor } from "../../shared/pagination";
import { call, json, query, uniqueName } from "./helpers";
import { DLQ, deliver, LOGS } from "./log-helpers";

/**
 * One result that Postgres cannot store must cost no other result its row,
 * whichever client or model it belongs to, and must itself be kept (as a
 * dead letter that always fits) and counted.
 */

function event(model: string, overrides: Partial<PredictionEvent> = {}): PredictionEvent {
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
    timestamp: new Date().toISOString(),
    ...overrides,
  };
}

const message = (results: PredictionEvent[]): PredictionLogMessage => ({ schema: 1, results });

async function stored(ids: string[]): Promise<string[]> {
  const rows = await query<{ prediction_id: string }>(
    sql`SELECT prediction_id FROM predictions
        WHERE prediction_id IN (SELECT jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb))`,
  );
  return rows.map((r) => r.prediction_id).sort();
}

interface DeadLetterJson {
  id: string;
  messageId: string;
  error: string;
  body: PredictionLogMessage;
  bodyStoredAs: "json" | "text";
  discardedAt: string | null;
  discardedBy: string | null;
}

async function deadLetter(messageId: string): Promise<DeadLetterJson | undefined> {
  const [row] = await query<{ id: string }>(
    sql`SELECT id FROM dead_letters WHERE message_id = ${messageId}`,
  );
  if (!row) return undefined;
  const page = await json<{ items: DeadLetterJson[] }>(
    await call(`/admin/dead-letters?limit=200&cursor=${encodeCursor({ id: Number(row.id) + 1 })}`),
  );
  return page.items.find((item) => item.id === String(row.id));
}

describe("prediction logs: one result cannot cost the others", () => {
  it("stores every other result of a batch, of every model, and keeps the NUL and lone-surrogate results as text", async () => {
    const a = uniqueName("poison-a");
    const b = uniqueName("poison-b");
    const nul = event(a, { attributes: { seg: "a\u0000b" } });
    const surrogate = event(a, { inputs: { note: "x\ud800y" } });
    const mixedId = `mixed-${crypto.randomUUID()}`;
    const good = [event(a), event(a), event(b), event(b), event(b)];
    const result = await deliver(LOGS, [
      { body: message([good[0] as PredictionEvent, good[1] as PredictionEvent]) },
      // Coalesced results of several requests: one bad among good ones.
      {
        id: mixedId,
        body: message([good[2] as PredictionEvent, nul, surrogate, good[3] as PredictionEvent]),
      },
      { body: message([good[4] as PredictionEvent]) },
    ]);
    expect(result.ackAll).toBe(true);
    expect(result.retryMessages).toEqual([]);
    expect(await stored(good.map((e) => e.predictionId))).toEqual(
      good.map((e) => e.predictionId).sort(),
    );
    expect(await stored([nul.predictionId, surrogate.predictionId])).toEqual([]);

    const dead = await deadLetter(`${mixedId}#malformed`);
    expect(dead?.bodyStoredAs).toBe("text");
    expect(dead?.error).toBe(
      "2 of 4 results malformed, the rest stored: results[1].attributes.seg: contains a NUL character (U+0000), which cannot be stored",
    );
    // Kept whole: the text parses back to exactly what was sent.
    expect(dead?.body).toEqual(message([nul, surrogate]));
  });

  it("sets aside a result Postgres refuses for its content, and stores the rest of the batch", async () => {
    const model = uniqueName("refused");
    const events = Array.from({ length: 40 }, () => event(model));
    const doomed = events[17] as PredictionEvent;
    // Stands for any value the schema lets through that Postgres refuses.
    const fn = `refuse_${uniqueName("t").replaceAll("-", "_")}`;
    await query(
      sql.raw(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.prediction_id = '${doomed.predictionId}' THEN
            RAISE EXCEPTION 'unsupported Unicode escape sequence' USING ERRCODE = '22P05';
          END IF;
          RETURN NEW;
        END $$`),
    );
    await query(
      sql.raw(
        `CREATE TRIGGER ${fn} BEFORE INSERT ON predictions FOR EACH ROW EXECUTE FUNCTION ${fn}()`,
      ),
    );
    let result: Awaited<ReturnType<typeof deliver>>;
    try {
      result = await deliver(
        LOGS,
        Array.from({ length: 4 }, (_, i) => ({ body: message(events.slice(i * 10, i * 10 + 10)) })),
      );
    } finally {
      await query(sql.raw(`DROP TRIGGER ${fn} ON predictions`));
      await query(sql.raw(`DROP FUNCTION ${fn}()`));
    }
    expect(result.ackAll).toBe(true);
    const rest = events.filter((e) => e !== doomed).map((e) => e.predictionId);
    expect(await stored(events.map((e) => e.predictionId))).toEqual(rest.sort());
    const dead = await deadLetter(`result:${doomed.predictionId}:served:v1`);
    expect(dead?.error).toMatch(/^result refused by Postgres, the rest of its batch stored: /);
    expect(dead?.body).toEqual(message([doomed]));
    expect(dead?.bodyStoredAs).toBe("json");
  });

  it("stores a dead-letter-queue message holding a NUL, as text, at the first attempt", async () => {
    const id = `dlq-nul-${crypto.randomUUID()}`;
    const body = message([event(uniqueName("dlq"), { errorCode: "X\u0000" })]);
    const result = await deliver(DLQ, [{ id, body, attempts: 6 }]);
    expect(result.ackAll).toBe(true);
    expect(result.retryMessages).toEqual([]);
    const dead = await deadLetter(id);
    expect(dead?.bodyStoredAs).toBe("text");
    expect(dead?.body).toEqual(body);
  });

  it("skips such a dead letter on replay, saying why, and lets an operator discard it, audited", async () => {
    const id = `dlq-discard-${crypto.randomUUID()}`;
    await deliver(DLQ, [
      { id, body: message([event(uniqueName("discard"), { version: "v\u0000" })]), attempts: 6 },
    ]);
    const dead = await deadLetter(id);
    const replay = await call("/admin/dead-letters/replay", {
      method: "POST",
      body: { ids: [dead?.id] },
    });
    expect(await json(replay)).toEqual({
      replayed: [],
      results: 0,
      skipped: [
        {
          id: dead?.id,
          reason:
            "not a well-formed prediction-log message (results[0].version: contains a NUL character (U+0000), which cannot be stored); it can be discarded",
        },
      ],
    });
    const discard = await call("/admin/dead-letters/discard", {
      method: "POST",
      body: { ids: [dead?.id, "999999999999"], reason: "holds a NUL; cannot be stored" },
    });
    expect(discard.status).toBe(200);
    expect(await json(discard)).toEqual({
      discarded: [dead?.id],
      skipped: [{ id: "999999999999", reason: "no such dead letter" }],
    });
    const after = await deadLetter(id);
    expect(after?.discardedBy).toBe("prn_testadmin");
    // No longer pending (what the dead_letters health check counts): listed as discarded.
    const listed = async (status: string) =>
      (
        await json<{ items: DeadLetterJson[] }>(
          await call(
            `/admin/dead-letters?status=${status}&limit=200&cursor=${encodeCursor({ id: Number(dead?.id) + 1 })}`,
          ),
        )
      ).items.map((item) => item.id);
    expect(await listed("pending")).not.toContain(dead?.id);
    expect(await listed("discarded")).toContain(dead?.id);
    const again = await call("/admin/dead-letters/discard", {
      method: "POST",
      body: { ids: [dead?.id], reason: "again" },
    });
    expect(await json(again)).toEqual({
      discarded: [],
      skipped: [{ id: dead?.id, reason: "already discarded" }],
    });
    const audit = await json<{ items: { after: { discarded: string[]; reason: string } }[] }>(
      await call("/admin/audit?action=dead_letters.discard&limit=20"),
    );
    expect(audit.items.some((e) => e.after.discarded.includes(dead?.id as string))).toBe(true);
  });
});
