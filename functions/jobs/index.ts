/**
 * Cron jobs by schedule. Each job is a function of (env, time) that tests call
 * directly; the scheduled handler only dispatches. Locally (`LOCAL_TRIGGERS`
 * = "1", set by `npm start`), `POST /__scheduled?cron=<expr>` runs a job now
 * and answers with its result: npm start's scheduler fires the crons through
 * it, and a person can too.
 */
import { Hono } from "hono";
import { ApiError } from "../../shared/errors";
import { runHealthAlerts } from "../alerts/evaluate";
import type { AppEnv } from "../app-env";
import { checkpointInBackground } from "../audit/checkpoints";
import { evaluatePlans } from "../plans/run";
import { resumeErasures } from "./erasure";
import { maintainLogPartitions } from "./log-partitions";
import { runMonitoring } from "./monitoring";

export const jobs: Record<string, (env: Env, now: Date) => Promise<unknown>> = {
  // Hourly, off the hour: partition upkeep, erasures whose next step was
  // lost, then Airlock's own health (which notices a monitoring job that
  // stopped running), then an audit checkpoint.
  "17 * * * *": async (env, now) => {
    const partitions = await maintainLogPartitions(env, now);
    const erasuresResumed = await resumeErasures(env, now);
    const alerts = await runHealthAlerts(env, now);
    // At least hourly, a signed checkpoint of the audit chain, kept outside Postgres.
    const checkpoint = await checkpointInBackground(env, 1);
    return { partitions, erasuresResumed, alerts, checkpoint };
  },
  // Drift and data quality, each monitoring window once it has ended (and
  // again in the next run, for late rows); roll-ups of four and 96 windows.
  // Each run catches up from the coverage of the runs before it.
  // Then every open rollout plan's gates, on the results just computed.
  "*/15 * * * *": async (env, now) => {
    const monitoring = await runMonitoring(env, now, { catchUp: true, kind: "scheduled" });
    const plans = await evaluatePlans(env, now);
    return { ...monitoring, plans };
  },
};

/** Why a cron has no job, in words: the crons there are, and how to name one. */
export function unknownCronMessage(cron: string): string {
  const known = Object.keys(jobs)
    .map((c) => `"${c}"`)
    .join(", ");
  const named = cron === "" ? "No cron was named" : `No job for cron "${cron}"`;
  return `${named}; the crons are ${known} (wrangler.toml [triggers]), e.g. ?cron=${encodeURIComponent(Object.keys(jobs)[0] ?? "")}. To compute monitoring now, POST /admin/monitoring/runs`;
}

export async function handleScheduled(
  controller: ScheduledController,
  env: Env,
  _ctx?: ExecutionContext,
): Promise<void> {
  const job = jobs[controller.cron];
  if (!job) {
    // Only a wrangler.toml cron without a job (a test checks there is none)
    // or a hand-made local trigger gets here: say so plainly, and fail the
    // invocation so the platform records it.
    const message = unknownCronMessage(controller.cron);
    console.error(
      JSON.stringify({ level: "error", event: "scheduled.unknown_cron", cron: controller.cron }),
    );
    throw new UnknownCronError(message);
  }
  await job(env, new Date(controller.scheduledTime));
}

export class UnknownCronError extends Error {
  override name = "UnknownCronError";
}

/** `POST /__scheduled`: local runs only; elsewhere the path does not exist. */
export const localTriggers = new Hono<AppEnv>();

localTriggers.on(["GET", "POST"], "/", async (c) => {
  if (c.env.LOCAL_TRIGGERS !== "1")
    throw new ApiError("ROUTE_NOT_FOUND", `No route for ${c.req.method} ${c.req.path}`);
  const cron = c.req.query("cron") ?? "";
  const job = jobs[cron];
  if (!job) throw new ApiError("UNKNOWN_CRON", unknownCronMessage(cron));
  const time = c.req.query("time");
  let scheduledTime = new Date();
  if (time !== undefined) {
    const ms = /^\d{1,15}$/.test(time) ? Number(time) : Number.NaN;
    scheduledTime = new Date(ms);
    if (Number.isNaN(scheduledTime.getTime()))
      throw new ApiError(
        "VALIDATION_FAILED",
        "time: must be the scheduled time in milliseconds since the epoch",
      );
  }
  try {
    const result = await job(c.env, scheduledTime);
    return c.json({ cron, scheduledTime: scheduledTime.toISOString(), result }, 200);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new ApiError("JOB_FAILED", `The job of cron "${cron}" failed: ${message}`, {
      cause: error,
    });
  }
});
