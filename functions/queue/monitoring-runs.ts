/**
 * `airlock-monitoring-runs`: monitoring runs asked for through
 * `POST /admin/monitoring/runs`, computed here because a run may outlast a
 * request. The run's row (created `queued` with what was asked) is the
 * source of truth; a message only names it, so a redelivered message for a
 * run that has ended does nothing, and one for a run cut off while running
 * computes it again (results replace a window's rows, so twice is harmless).
 *
 * A run now catches up like the cron. A backfill computes the ended windows
 * of its range a chunk at a time: each message computes up to
 * `BACKFILL_CHUNK_WINDOWS` windows and sends the next chunk's message before
 * it is acked. A message that keeps failing marks its run failed with the
 * reason, after `MAX_ATTEMPTS`.
 */
import { z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { exponentialBackoffSeconds } from "../../shared/backoff";
import { openDatabase } from "../../shared/db/client";
import { monitoringRuns } from "../../shared/db/schema";
import { describeError } from "../../shared/errors";
import { windowLengths, windowsToBackfill } from "../../shared/monitoring/windows";
import { markRunFailed, runBackfillChunk, runMonitoring } from "../jobs/monitoring";

export const MONITORING_RUNS_QUEUE = "airlock-monitoring-runs";

/** Windows (of every length) one backfill message computes. */
export const BACKFILL_CHUNK_WINDOWS = 128;

/** Deliveries of one message before its run is marked failed (wrangler.toml: max_retries 3). */
const MAX_ATTEMPTS = 4;

export const MonitoringRunMessage = z
  .object({
    runId: z.number().int().positive(),
    /** A backfill's next chunk: windows ending after this. */
    after: z.iso.datetime().optional(),
  })
  .strict();
export type MonitoringRunMessage = z.infer<typeof MonitoringRunMessage>;

/** What a run was asked to do, as the API stored it in the run's details. */
export const RequestedRun = z.object({
  kind: z.enum(["requested", "backfill"]),
  requestedAt: z.iso.datetime(),
  windowSeconds: z.number().int(),
  from: z.iso.datetime().optional(),
  to: z.iso.datetime().optional(),
});

export async function consumeMonitoringRuns(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const message of batch.messages) {
    const parsed = MonitoringRunMessage.safeParse(message.body);
    if (!parsed.success) {
      // Only Airlock sends here; a message it cannot read names no run to fail.
      console.error(
        JSON.stringify({
          level: "error",
          event: "monitoring_runs.malformed",
          messageId: message.id,
          error: parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
        }),
      );
      message.ack();
      continue;
    }
    try {
      await processRun(env, parsed.data);
      message.ack();
    } catch (error) {
      console.error(
        JSON.stringify({
          level: "error",
          event: "monitoring_runs.failed",
          runId: parsed.data.runId,
          attempt: message.attempts,
          error: describeError(error),
        }),
      );
      if (message.attempts >= MAX_ATTEMPTS) {
        await markRunFailed(env, parsed.data.runId, error).catch(() => undefined);
        message.ack();
      } else {
        message.retry({ delaySeconds: exponentialBackoffSeconds(message.attempts, 2, 60) });
      }
    }
  }
}

async function processRun(env: Env, message: MonitoringRunMessage): Promise<void> {
  const handle = openDatabase(env);
  let run: { status: string; details: Record<string, unknown> } | undefined;
  try {
    [run] = await handle.db
      .select({ status: monitoringRuns.status, details: monitoringRuns.details })
      .from(monitoringRuns)
      .where(eq(monitoringRuns.id, message.runId));
  } finally {
    await handle.close();
  }
  // Not there yet: the request's transaction may still be committing.
  if (!run) throw new Error(`monitoring run ${message.runId} does not exist (yet)`);
  if (run.status === "succeeded" || run.status === "failed") return;
  const asked = RequestedRun.parse(run.details);
  if (asked.kind === "requested") {
    await runMonitoring(env, new Date(), {
      catchUp: true,
      kind: "requested",
      runId: message.runId,
    });
    return;
  }
  // A backfill: the windows of the range that had ended when it was asked
  // for, at the window length of that moment, so every chunk sees one list.
  const lengths = windowLengths(String(asked.windowSeconds));
  const windows = windowsToBackfill(
    new Date(asked.from ?? asked.requestedAt),
    new Date(asked.to ?? asked.requestedAt),
    new Date(asked.requestedAt),
    lengths,
  );
  const progress = await runBackfillChunk(
    env,
    message.runId,
    windows,
    message.after ? new Date(message.after) : null,
    BACKFILL_CHUNK_WINDOWS,
  );
  if (progress.next)
    await env.MONITORING_RUNS.send({ runId: message.runId, after: progress.next.toISOString() });
}
