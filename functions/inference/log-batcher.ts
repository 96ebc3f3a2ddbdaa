import { type PredictionEvent, packSendBatches } from "../../shared/inference/events";

/**
 * Coalesces the prediction results of this isolate's requests into few, full
 * queue messages.
 *
 * Every result used to be one sendBatch call of its own request. Now the
 * first request to log after a flush opens a buffer and owns it: it waits
 * (inside its waitUntil, so the isolate stays up) for the window, then sends
 * everything the buffer collected, from its own and later requests, packed
 * into messages of up to 120 KB and sendBatch calls of up to 100 messages and
 * 240 KB. Later requests only append: they share no promise with the owner, so
 * no request waits on another's I/O. A buffer that reaches the size of one
 * sendBatch is sent at once by the request that filled it.
 *
 * What this buys: one queue operation for many results instead of one per
 * request (Queues bill and rate-limit per message and operation), a request
 * path that does no queue I/O of its own, and messages full enough that the
 * consumer writes hundreds of rows per statement. What it costs: results
 * reach the queue up to one window later (LOG_BATCH_WINDOW_MS, 50 ms by
 * default; 0 sends every request's results on their own), and an isolate
 * that crashes outright (not one that is merely evicted: waitUntil keeps it
 * until the send) loses the window's results, as it would lose sends in
 * flight.
 */

export interface LogQueue {
  sendBatch(messages: Iterable<MessageSendRequest<unknown>>): Promise<unknown>;
}

export interface LogBatchOptions {
  windowMs: number;
  requestId: string;
  waitUntil: (promise: Promise<unknown>) => void;
}

interface Buffer {
  events: PredictionEvent[];
  /** Estimated serialized size, to send before one sendBatch would be too big. */
  bytes: number;
  sent: boolean;
}

/** Default window when LOG_BATCH_WINDOW_MS is not set. */
export const DEFAULT_LOG_BATCH_WINDOW_MS = 50;
/** Send a buffer as soon as it holds about one sendBatch's worth. */
const FLUSH_AT_BYTES = 200 * 1024;
/** One retry after this pause, for a send that failed (a transient queue error). */
const RETRY_AFTER_MS = 200;

const buffers = new WeakMap<LogQueue, Buffer>();

/** The window configured for an environment; invalid values fall back to the default. */
export function logBatchWindowMs(configured: string | undefined): number {
  if (configured === undefined || configured.trim() === "") return DEFAULT_LOG_BATCH_WINDOW_MS;
  const value = Number(configured);
  return Number.isFinite(value) && value >= 0 ? Math.min(value, 1000) : DEFAULT_LOG_BATCH_WINDOW_MS;
}

/** Adds results to this isolate's buffer for the queue; see the module's comment. */
export function logResults(
  queue: LogQueue,
  events: PredictionEvent[],
  options: LogBatchOptions,
): void {
  if (events.length === 0) return;
  if (options.windowMs <= 0) {
    options.waitUntil(send(queue, events, options.requestId));
    return;
  }
  let buffer = buffers.get(queue);
  if (!buffer) {
    const opened: Buffer = { events: [], bytes: 0, sent: false };
    buffer = opened;
    buffers.set(queue, opened);
    options.waitUntil(
      new Promise((resolve) => setTimeout(resolve, options.windowMs)).then(() =>
        flush(queue, opened, options.requestId),
      ),
    );
  }
  for (const event of events) {
    buffer.events.push(event);
    buffer.bytes += estimateBytes(event);
  }
  if (buffer.bytes >= FLUSH_AT_BYTES) options.waitUntil(flush(queue, buffer, options.requestId));
}

async function flush(queue: LogQueue, buffer: Buffer, requestId: string): Promise<void> {
  if (buffer.sent) return;
  buffer.sent = true;
  if (buffers.get(queue) === buffer) buffers.delete(queue);
  await send(queue, buffer.events, requestId);
}

async function send(queue: LogQueue, events: PredictionEvent[], requestId: string) {
  for (const batch of packSendBatches(events)) {
    const messages = batch.map((body) => ({ body, contentType: "json" as const }));
    try {
      await queue.sendBatch(messages);
    } catch {
      await new Promise((resolve) => setTimeout(resolve, RETRY_AFTER_MS));
      try {
        await queue.sendBatch(messages);
      } catch (error) {
        console.error(
          JSON.stringify({
            level: "error",
            event: "prediction_logs.send_failed",
            requestId,
            results: batch.reduce((n, message) => n + message.results.length, 0),
            error: String(error),
          }),
        );
      }
    }
  }
}

/** Rough UTF-16 length of the event's JSON: cheap, and close enough to decide when to send. */
function estimateBytes(event: PredictionEvent): number {
  return JSON.stringify(event).length + 1;
}
