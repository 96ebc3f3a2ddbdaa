/**
 * Cron jobs by schedule. Each job is a function of (env, time) that tests call
 * directly; the scheduled handler only dispatches.
 */
import { runHealthAlerts } from "../alerts/evaluate";
import { maintainLogPartitions } from "./log-partitions";
import { runMonitoring } from "./monitoring";

export const jobs: Record<string, (env: Env, now: Date) => Promise<unknown>> = {
  // Hourly, off the hour: partition upkeep, then Airlock's own health (which
  // notices a monitoring job that stopped running).
  "17 * * * *": async (env, now) => {
    const partitions = await maintainLogPartitions(env, now);
    const alerts = await runHealthAlerts(env, now);
    return { partitions, alerts };
  },
  // Drift and data quality, each 15-minute window once it has ended (and again
  // in the next run, for late rows); hourly and daily roll-ups.
  "*/15 * * * *": runMonitoring,
};

export async function handleScheduled(
  controller: ScheduledController,
  env: Env,
  _ctx?: ExecutionContext,
): Promise<void> {
  const job = jobs[controller.cron];
  if (!job) throw new Error(`No job for cron '${controller.cron}'`);
  await job(env, new Date(controller.scheduledTime));
}
