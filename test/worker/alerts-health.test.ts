/**
 * Airlock's own health checks against the real database, at chosen times:
 * partitions that do not exist yet, a monitoring job that stopped
 * succeeding. (The dead-letter check runs end to end in alerts.test.ts.)
 */
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { healthObservations, MONITORING_LATE_MINUTES } from "../../functions/alerts/health";
import { MONITORING_JOB } from "../../functions/monitoring/windows";
import { openDatabase } from "../../shared/db/client";
import { query } from "./helpers";

async function observe(now: Date) {
  const handle = openDatabase(env);
  try {
    return await healthObservations(handle.db, env, now);
  } finally {
    await handle.close();
  }
}

describe("Airlock's own health", () => {
  it("sees the log tables' partitions in place today, and missing on a day nobody prepared", async () => {
    const today = await observe(new Date());
    const partitions = (obs: typeof today) =>
      obs.filter((o) => o.rule === "partitions").map((o) => [o.dimension, o.summary]);
    expect(partitions(today).map(([table]) => table)).toEqual([
      "predictions",
      "prediction_refs",
      "rejected_requests",
    ]);
    for (const o of today.filter((x) => x.rule === "partitions"))
      expect(o.summary).not.toContain("no partition");
    const future = await observe(new Date("2031-03-04T05:06:07Z"));
    for (const o of future.filter((x) => x.rule === "partitions")) {
      expect(o.violating).toBe(true);
      expect(o.summary).toContain("no partition for today or tomorrow");
      expect(o.model).toBe("");
    }
  });

  it("notices a monitoring job that has not succeeded for 45 minutes", async () => {
    await query(sql`
      INSERT INTO monitoring_runs (job, status, started_at, finished_at, duration_ms)
      VALUES (${MONITORING_JOB}, 'succeeded', now(), now(), 1)`);
    const late = (
      await observe(new Date(Date.now() + (MONITORING_LATE_MINUTES + 5) * 60_000))
    ).find((o) => o.rule === "monitoring_late");
    expect(late).toMatchObject({ violating: true, severity: "critical", threshold: 45 });
    expect(late?.value).toBeGreaterThan(MONITORING_LATE_MINUTES);
    const fine = (await observe(new Date())).find((o) => o.rule === "monitoring_late");
    expect(fine?.violating).toBe(false);
  });

  it("counts unreplayed dead letters against the configured threshold", async () => {
    const handle = openDatabase(env);
    const id = `health-${crypto.randomUUID()}`;
    await query(sql`
      INSERT INTO dead_letters (message_id, queue, body, error, attempts)
      VALUES (${id}, 'airlock-prediction-logs', '{}', 'test', 6)`);
    try {
      const [row] = await query<{ n: string }>(
        sql`SELECT count(*) AS n FROM dead_letters
              WHERE replayed_at IS NULL AND discarded_at IS NULL`,
      );
      const waiting = Number(row?.n ?? 0);
      const at = (threshold: number) =>
        healthObservations(
          handle.db,
          { ...env, ALERT_DEAD_LETTER_THRESHOLD: String(threshold) },
          new Date(),
        ).then((obs) => obs.find((o) => o.rule === "dead_letters"));
      // Other tests may add dead letters meanwhile: far above and far below are safe.
      expect((await at(waiting + 1000))?.violating).toBe(false);
      expect(waiting).toBeGreaterThanOrEqual(1);
      expect((await at(waiting - 1))?.violating).toBe(true);
      expect((await at(waiting + 1000))?.threshold).toBe(waiting + 1000);
    } finally {
      await query(sql`UPDATE dead_letters SET replayed_at = now() WHERE message_id = ${id}`);
      await handle.close();
    }
  });
});
