/**
 * `airlock-plan-evaluations`: a rollout plan's wake-up. The model's rollout
 * object sends one when a phase's minimum dwell ends (a dwell of at least
 * one monitoring window: shorter ones are met by the evaluation after the
 * next monitoring run anyway), and the plan is evaluated here at once
 * (functions/plans/run.ts). The plan's state is the source of truth: a
 * message for a plan that has moved on or ended evaluates the phase it is
 * in, or nothing. One that keeps failing is let go after `MAX_ATTEMPTS`:
 * the scheduled evaluation after every monitoring run covers the plan.
 */
import { z } from "@hono/zod-openapi";
import { exponentialBackoffSeconds } from "../../shared/backoff";
import { openDatabase } from "../../shared/db/client";
import { describeError } from "../../shared/errors";
import { evaluateOpenPlans } from "../plans/run";

export const PLAN_EVALUATIONS_QUEUE = "airlock-plan-evaluations";

/** Deliveries of one message (wrangler.toml: max_retries 3). */
const MAX_ATTEMPTS = 4;

export const PlanWakeMessage = z
  .object({
    model: z.string().min(1),
    planId: z.string().min(1),
    phase: z.string().min(1),
    reason: z.literal("dwell_met"),
  })
  .strict();
export type PlanWakeMessage = z.infer<typeof PlanWakeMessage>;

export async function consumePlanEvaluations(
  batch: MessageBatch<unknown>,
  env: Env,
): Promise<void> {
  for (const message of batch.messages) {
    const parsed = PlanWakeMessage.safeParse(message.body);
    if (!parsed.success) {
      // Only the rollout objects send here; a message they did not write names nothing.
      console.error(
        JSON.stringify({
          level: "error",
          event: "plan_evaluations.malformed",
          messageId: message.id,
        }),
      );
      message.ack();
      continue;
    }
    const { planId, model } = parsed.data;
    const handle = openDatabase(env);
    try {
      const report = await evaluateOpenPlans(handle.db, env, new Date(), { planId });
      const failed = report.failed[0];
      if (failed) throw new Error(failed.error);
      message.ack();
    } catch (error) {
      console.error(
        JSON.stringify({
          level: "error",
          event: "plan_evaluations.failed",
          plan: planId,
          model,
          attempt: message.attempts,
          error: describeError(error),
        }),
      );
      if (message.attempts >= MAX_ATTEMPTS) message.ack();
      else message.retry({ delaySeconds: exponentialBackoffSeconds(message.attempts, 2, 300) });
    } finally {
      await handle.close();
    }
  }
}
