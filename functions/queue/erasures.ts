/**
 * `airlock-erasures`: erasures asked for through `POST /admin/erasure`, one
 * bounded step per message (functions/jobs/erasure.ts). The request's row
 * is the source of truth; a message only names it, so a redelivered message
 * repeats a step that finds nothing more to do. Each step sends the message
 * for the next before it is acked: a lost send leaves the erasure `running`,
 * and the hourly upkeep sends it again.
 */
import { z } from "@hono/zod-openapi";
import { exponentialBackoffSeconds } from "../../shared/backoff";
import { describeError } from "../../shared/errors";
import { ErasureIncomplete, failErasure, runErasureStep } from "../jobs/erasure";

export const ERASURES_QUEUE = "airlock-erasures";

/** Deliveries of one message before its erasure is marked failed (wrangler.toml: max_retries 9). */
const MAX_ATTEMPTS = 10;

export const ErasureMessage = z.object({ erasureId: z.number().int().positive() }).strict();

export async function consumeErasures(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  for (const message of batch.messages) {
    const parsed = ErasureMessage.safeParse(message.body);
    if (!parsed.success) {
      // Only Airlock sends here; a message it cannot read names no erasure to fail.
      console.error(
        JSON.stringify({ level: "error", event: "erasures.malformed", messageId: message.id }),
      );
      message.ack();
      continue;
    }
    const { erasureId } = parsed.data;
    try {
      const more = await runErasureStep(env, erasureId);
      if (more) await env.ERASURES.send({ erasureId });
      message.ack();
    } catch (error) {
      console.error(
        JSON.stringify({
          level: "error",
          event: "erasures.step_failed",
          erasureId,
          attempt: message.attempts,
          error: describeError(error),
        }),
      );
      if (error instanceof ErasureIncomplete || message.attempts >= MAX_ATTEMPTS) {
        await failErasure(env, erasureId, describeError(error)).catch(() => undefined);
        message.ack();
      } else {
        message.retry({ delaySeconds: exponentialBackoffSeconds(message.attempts, 2, 300) });
      }
    }
  }
}
