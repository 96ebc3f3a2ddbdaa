/**
 * Acknowledging alerts: every acknowledgement is kept with who made it and
 * when, the note is `note` going in and coming out, and `state=open` finds
 * every alert not yet resolved.
 */
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import {
  call,
  database,
  type ErrorJson,
  errorChain,
  json,
  query,
  rejection,
  uniqueName,
} from "./helpers";

interface Acknowledgement {
  acknowledgedAt: string;
  acknowledgedBy: string;
  note: string | null;
}

interface AlertJson {
  id: number;
  state: string;
  acknowledgedAt: string | null;
  acknowledgedBy: string | null;
  acknowledgements: Acknowledgement[];
  [field: string]: unknown;
}

/** An alert row as the lifecycle would leave it, for a model no other test uses. */
async function insertAlert(model: string, state: "pending" | "firing" | "resolved") {
  const [row] = await query<{ id: string }>(sql`
    INSERT INTO alerts (fingerprint, rule, severity, state, model, version, role, metric,
      dimension, value, threshold, comparison, summary, first_seen_at, last_seen_at,
      resolved_at, resolution)
    VALUES (${`${model}:${state}`}, 'error_rate', 'critical', ${state}, ${model}, 'v1', 'served',
      'error_rate', '', 0.4, 0.05, 'above', 'error rate 40%', now(), now(),
      ${state === "resolved" ? sql`now()` : sql`NULL`},
      ${state === "resolved" ? "recovered" : null})
    RETURNING id`);
  return Number(row?.id);
}

const acknowledge = (id: number, body: Record<string, unknown>, headers = {}) =>
  call(`/admin/alerts/${id}/acknowledge`, { method: "POST", body, headers });

describe("acknowledging alerts", () => {
  it("keeps every acknowledgement with its person, time and note, oldest first", async () => {
    const model = uniqueName("ack");
    const id = await insertAlert(model, "firing");

    const first = await acknowledge(id, { note: "looking into it" });
    expect(first.status).toBe(200);
    const once = await json<AlertJson>(first);
    expect(once.acknowledgements).toEqual([
      {
        acknowledgedAt: expect.any(String),
        acknowledgedBy: "prn_testadmin",
        note: "looking into it",
      },
    ]);
    expect(once).not.toHaveProperty("acknowledgement");

    const second = await acknowledge(id, { note: "retraining scheduled" });
    expect(second.status).toBe(200);
    const twice = await json<AlertJson>(second);
    expect(twice.acknowledgements.map((a) => a.note)).toEqual([
      "looking into it",
      "retraining scheduled",
    ]);
    // The first is kept as it was, and the top-level fields are the latest's.
    expect(twice.acknowledgements[0]).toEqual(once.acknowledgements[0]);
    const latest = twice.acknowledgements[1] as Acknowledgement;
    expect(Date.parse(latest.acknowledgedAt)).toBeGreaterThanOrEqual(
      Date.parse(once.acknowledgements[0]?.acknowledgedAt ?? ""),
    );
    expect(twice).toMatchObject({
      acknowledgedAt: latest.acknowledgedAt,
      acknowledgedBy: "prn_testadmin",
    });

    // A note is optional; the list grows again.
    expect((await acknowledge(id, {})).status).toBe(200);

    const detail = await json<AlertJson>(await call(`/admin/alerts/${id}`));
    expect(detail.acknowledgements.map((a) => a.note)).toEqual([
      "looking into it",
      "retraining scheduled",
      null,
    ]);
    const listed = await json<{ items: AlertJson[] }>(await call(`/admin/alerts?model=${model}`));
    expect(listed.items).toHaveLength(1);
    expect(listed.items[0]?.acknowledgements).toEqual(detail.acknowledgements);

    // Audited as before: one alert.acknowledge each, the previous one in `before`.
    const trail = await query<{ action: string; actor: string; before: unknown; after: unknown }>(
      sql`SELECT action, actor, before, after FROM audit_log
          WHERE target = ${`alerts/${id}`} ORDER BY id`,
    );
    expect(trail.map((t) => t.action)).toEqual([
      "alert.acknowledge",
      "alert.acknowledge",
      "alert.acknowledge",
    ]);
    expect(trail.map((t) => t.actor)).toEqual(Array(3).fill("prn_testadmin"));
    expect(trail[0]?.before).toEqual({ acknowledgedAt: null, acknowledgedBy: null });
    expect(trail[1]?.before).toEqual({
      acknowledgedAt: once.acknowledgements[0]?.acknowledgedAt,
      acknowledgedBy: "prn_testadmin",
    });
    expect(trail[1]?.after).toEqual(latest);
  });

  it("replays an acknowledgement retried with its Idempotency-Key instead of adding it twice", async () => {
    const id = await insertAlert(uniqueName("ack-retry"), "firing");
    const key = `ack-${crypto.randomUUID()}`;
    const first = await acknowledge(id, { note: "on it" }, { "idempotency-key": key });
    const retried = await acknowledge(id, { note: "on it" }, { "idempotency-key": key });
    expect(retried.status).toBe(200);
    expect(retried.headers.get("idempotent-replayed")).toBe("true");
    expect(await json(retried)).toEqual(await json(first));
    const detail = await json<AlertJson>(await call(`/admin/alerts/${id}`));
    expect(detail.acknowledgements).toHaveLength(1);
  });

  it("never lets an acknowledgement be changed or removed, even in SQL", async () => {
    const id = await insertAlert(uniqueName("ack-sql"), "firing");
    expect((await acknowledge(id, { note: "first" })).status).toBe(200);
    for (const statement of [
      sql`UPDATE alert_acknowledgements SET note = 'rewritten' WHERE alert_id = ${id}`,
      sql`DELETE FROM alert_acknowledgements WHERE alert_id = ${id}`,
    ]) {
      const db = database();
      try {
        expect(errorChain(await rejection(db.db.execute(statement)))).toMatch(/append-only/);
      } finally {
        await db.close();
      }
    }
    const detail = await json<AlertJson>(await call(`/admin/alerts/${id}`));
    expect(detail.acknowledgements.map((a) => a.note)).toEqual(["first"]);
  });

  it("answers 404 for an unknown alert, and refuses fields other than note", async () => {
    const missing = await acknowledge(999_999_999, { note: "x" });
    expect(missing.status).toBe(404);
    expect((await json<ErrorJson>(missing)).error.code).toBe("ALERT_NOT_FOUND");
    const id = await insertAlert(uniqueName("ack-field"), "firing");
    const renamed = await acknowledge(id, { acknowledgement: "x" });
    expect(renamed.status).toBe(400);
    expect((await json<ErrorJson>(renamed)).error.code).toBe("VALIDATION_FAILED");
  });
});

describe("listing alerts by state", () => {
  it("lists pending and firing alerts, and no resolved one, for state=open", async () => {
    const model = uniqueName("open");
    const pending = await insertAlert(model, "pending");
    const firing = await insertAlert(model, "firing");
    const resolved = await insertAlert(model, "resolved");
    const open = await call(`/admin/alerts?model=${model}&state=open`);
    expect(open.status).toBe(200);
    const ids = (await json<{ items: AlertJson[] }>(open)).items.map((a) => a.id);
    expect(ids).toEqual([firing, pending]);
    const done = await json<{ items: AlertJson[] }>(
      await call(`/admin/alerts?model=${model}&state=resolved`),
    );
    expect(done.items.map((a) => a.id)).toEqual([resolved]);
    const unknown = await call(`/admin/alerts?model=${model}&state=acknowledged`);
    expect(unknown.status).toBe(400);
  });
});
