import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import worker from "../../functions/index";

export const LOGS = "airlock-prediction-logs";
export const DLQ = "airlock-prediction-logs-dlq";

let sequence = 0;

/** Delivers `bodies` as one batch to the Worker's queue handler. */
export async function deliver(
  queue: string,
  bodies: { id?: string; body: unknown; attempts?: number }[],
  overrides: Partial<Env> = {},
) {
  const batch = createMessageBatch(
    queue,
    bodies.map((b) => ({
      id: b.id ?? `msg-${++sequence}-${crypto.randomUUID()}`,
      timestamp: new Date(),
      attempts: b.attempts ?? 1,
      body: b.body,
    })),
  );
  // The test batch records which messages were retried, not the delays asked for.
  const delays = new Map<string, number | undefined>();
  for (const m of batch.messages) {
    const retry = m.retry.bind(m);
    Object.defineProperty(m, "retry", {
      value: (options?: QueueRetryOptions) => {
        delays.set(m.id, options?.delaySeconds);
        retry(options);
      },
    });
  }
  const ctx = createExecutionContext();
  await worker.queue(batch, { ...env, ...overrides } as Env, ctx);
  const result = await getQueueResult(batch, ctx);
  return {
    ...result,
    retryMessages: result.retryMessages.map((r) => ({ ...r, delaySeconds: delays.get(r.msgId) })),
  };
}

/** Delivers bodies to the prediction-log consumer. */
export const deliverLogs = (bodies: { id?: string; body: unknown; attempts?: number }[]) =>
  deliver(LOGS, bodies);
