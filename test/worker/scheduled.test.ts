import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../../functions/app";
import { handleScheduled, jobs, UnknownCronError } from "../../functions/jobs";
import { BASE, deadDatabaseProxy, type ErrorJson, json } from "./helpers";

const controller = (cron: string) =>
  ({
    cron,
    scheduledTime: Date.parse("2026-12-01T10:17:00Z"),
    noRetry() {},
  }) as ScheduledController;

/** The app as `npm start` runs it: with the local trigger route on. */
const local = (path: string, method = "POST") =>
  app.fetch(new Request(`${BASE}${path}`, { method }), { ...env, LOCAL_TRIGGERS: "1" });

describe("cron triggers", () => {
  it("refuses an empty or unknown cron with a message naming the crons there are", async () => {
    for (const cron of ["", "* * * * *"]) {
      const run = handleScheduled(controller(cron), env);
      await expect(run).rejects.toBeInstanceOf(UnknownCronError);
      await expect(run).rejects.toThrow(/"17 \* \* \* \*", "\*\/15 \* \* \* \*"/);
    }
  });

  it("answers a bare /__scheduled with a 400 that says how to name a cron", async () => {
    const response = await local("/__scheduled");
    expect(response.status).toBe(400);
    const body = await json<ErrorJson>(response);
    expect(body.error.code).toBe("UNKNOWN_CRON");
    expect(body.error.message).toMatch(/^No cron was named; the crons are "17 \* \* \* \*"/);
    expect(body.error.message).toContain("POST /admin/monitoring/runs");
    const unknown = await json<ErrorJson>(await local("/__scheduled?cron=*+*+*+*+*"));
    expect(unknown.error.message).toMatch(/^No job for cron "\* \* \* \* \*"/);
  });

  it("refuses a scheduled time that is not milliseconds since the epoch", async () => {
    const response = await local(`/__scheduled?cron=${encodeURIComponent("17 * * * *")}&time=soon`);
    expect(response.status).toBe(400);
    expect((await json<ErrorJson>(response)).error.message).toMatch(/^time: /);
  });

  it("answers 500 JOB_FAILED with the reason when the job fails", async () => {
    // Postgres is down: the hourly job cannot run. (A job that succeeds is
    // fired by npm start's scheduler in its end-to-end test, on its own
    // database: jobs here would touch the alerts other tests watch.)
    const time = Date.parse("2026-12-01T10:17:00Z");
    const response = await app.fetch(
      new Request(`${BASE}/__scheduled?cron=${encodeURIComponent("17 * * * *")}&time=${time}`, {
        method: "POST",
      }),
      { ...env, LOCAL_TRIGGERS: "1", DATABASE_WS_PROXY: deadDatabaseProxy },
    );
    expect(response.status).toBe(500);
    const body = await json<ErrorJson>(response);
    expect(body.error.code).toBe("JOB_FAILED");
    expect(body.error.message).toMatch(/^The job of cron "17 \* \* \* \*" failed: /);
  });

  it("has no such route outside local runs", async () => {
    const response = await app.fetch(
      new Request(`${BASE}/__scheduled?cron=x`, { method: "POST" }),
      env,
    );
    expect(response.status).toBe(404);
    expect((await json<ErrorJson>(response)).error.code).toBe("ROUTE_NOT_FOUND");
    expect(Object.keys(jobs).length).toBeGreaterThan(0);
  });
});
