import {
  type PredictionEvent,
  type PredictionLogMessage,
  packSizedSendBatches,
  type SizedEvent,
  sizeEvent,
} from "../../shared/inference/events";

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
  /**
   * Where messages go that the queue refused twice: the caller stores them
   * (as dead letters), so they are counted, alerted on and replayable. If it
   * throws too, their loss is logged with the count and both causes.
   */
  onUnsent?: (messages: PredictionLogMessage[], cause: string) => Promise<void>;
}

interface Buffer {
  events: SizedEvent[];
  /** Serialized size, to send before one sendBatch would be too big. */
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

/**
 * Adds results to this isolate's buffer for the queue; see the module's
 * comment. Never throws: each event is measured on its own before it joins
 * the buffer, so one request's event cannot cost another's.
 */
export function logResults(
  queue: LogQueue,
  events: PredictionEvent[],
  options: LogBatchOptions,
): void {
  const sized: SizedEvent[] = [];
  for (const event of events) {
    const fitted = sizeEvent(event);
    if ("event" in fitted) sized.push(fitted);
    else logLoss("prediction_logs.dropped", options.requestId, 1, fitted.dropped);
  }
  if (sized.length === 0) return;
  if (options.windowMs <= 0) {
    options.waitUntil(send(queue, sized, options));
    return;
  }
  let buffer = buffers.get(queue);
  if (!buffer) {
    const opened: Buffer = { events: [], bytes: 0, sent: false };
    buffer = opened;
    buffers.set(queue, opened);
    options.waitUntil(
      new Promise((resolve) => setTimeout(resolve, options.windowMs)).then(() =>
        flush(queue, opened, options),
      ),
    );
  }
  for (const item of sized) {
    buffer.events.push(item);
    buffer.bytes += item.bytes;
  }
  if (buffer.bytes >= FLUSH_AT_BYTES) options.waitUntil(flush(queue, buffer, options));
}

async function flush(queue: LogQueue, buffer: Buffer, options: LogBatchOptions): Promise<void> {
  if (buffer.sent) return;
  buffer.sent = true;
  if (buffers.get(queue) === buffer) buffers.delete(queue);
  await send(queue, buffer.events, options);
}

/** Sends packed batches; a batch the queue refuses twice goes to onUnsent. Never throws. */
async function send(queue: LogQueue, events: SizedEvent[], options: LogBatchOptions) {
  let batches: PredictionLogMessage[][];
  try {
    batches = packSizedSendBatches(events);
  } catch (error) {
    logLoss("prediction_logs.lost", options.requestId, events.length, String(error));
    return;
  }
  for (const batch of batches) {
    const messages = batch.map((body) => ({ body, contentType: "json" as const }));
    try {
      await queue.sendBatch(messages);
      continue;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, RETRY_AFTER_MS));
    }
    let cause: string;
    try {
      await queue.sendBatch(messages);
      continue;
    } catch (error) {
      cause = `queue send failed twice: ${String(error)}`;
    }
    const results = batch.reduce((n, message) => n + message.results.length, 0);
    try {
      if (!options.onUnsent) throw new Error("no store for unsent results");
      await options.onUnsent(batch, cause);
      console.error(
        JSON.stringify({
          level: "error",
          event: "prediction_logs.send_failed",
          requestId: options.requestId,
          results,
          storedAs: "dead_letters",
          error: cause,
        }),
      );
    } catch (error) {
      logLoss(
        "prediction_logs.lost",
        options.requestId,
        results,
        `${cause}; then ${String(error)}`,
      );
    }
  }
}

/** Results that are gone for good: counted in a log line with the cause. */
function logLoss(event: string, requestId: string, results: number, cause: string) {
  console.error(JSON.stringify({ level: "error", event, requestId, results, error: cause }));
}
