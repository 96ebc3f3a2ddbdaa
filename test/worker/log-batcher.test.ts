import { afterEach, describe, expect, it, vi } from "vitest";
import { logBatchWindowMs, logResults } from "../../functions/inference/log-batcher";
import {
  MAX_SEND_BATCH_BYTES,
  MAX_SEND_BATCH_MESSAGES,
  type PredictionEvent,
  type PredictionLogMessage,
  packSendBatches,
} from "../../shared/inference/events";

function event(n: number, inputs: unknown = { amount: n }): PredictionEvent {
  return {
    role: "served",
    predictionId: `p-${n}`,
    requestId: `r-${n}`,
    model: "m",
    version: "v1",
    prediction: { label: "yes", score: 0.5 },
    inputs,
    attributes: {},
    keyHmac: null,
    latencyMs: 1,
    status: "ok",
    errorCode: null,
    stateVersion: 1,
    timestamp: new Date(0).toISOString(),
  };
}

/** A queue that records each sendBatch call, optionally failing the first `failures` calls. */
function queue(failures = 0) {
  const calls: PredictionLogMessage[][] = [];
  let failed = 0;
  return {
    calls,
    sendBatch: async (messages: Iterable<MessageSendRequest<unknown>>) => {
      if (failed < failures) {
        failed++;
        throw new Error("Queue send failed: simulated outage");
      }
      calls.push([...messages].map((m) => m.body as PredictionLogMessage));
    },
  };
}

/** One request's view: the promises it handed to waitUntil. */
function request(id: string, windowMs = 20) {
  const pending: Promise<unknown>[] = [];
  return {
    pending,
    options: { windowMs, requestId: id, waitUntil: (p: Promise<unknown>) => pending.push(p) },
  };
}

const results = (calls: PredictionLogMessage[][]) =>
  calls.flatMap((batch) => batch.flatMap((m) => m.results.map((r) => r.predictionId)));

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("log batching per isolate", () => {
  it("sends the results of all requests in one window in one call, in order; only the first request waits", async () => {
    const q = queue();
    const a = request("a");
    const b = request("b");
    const c = request("c");
    logResults(q, [event(1), event(2)], a.options);
    logResults(q, [event(3)], b.options);
    logResults(q, [event(4)], c.options);
    expect(q.calls).toHaveLength(0);
    expect(a.pending).toHaveLength(1);
    expect(b.pending).toHaveLength(0);
    expect(c.pending).toHaveLength(0);
    await Promise.all(a.pending);
    expect(q.calls).toHaveLength(1);
    expect(q.calls[0]).toHaveLength(1);
    expect(results(q.calls)).toEqual(["p-1", "p-2", "p-3", "p-4"]);
  });

  it("opens a new window for results that arrive after a send", async () => {
    const q = queue();
    const a = request("a");
    logResults(q, [event(1)], a.options);
    await Promise.all(a.pending);
    const b = request("b");
    logResults(q, [event(2)], b.options);
    expect(b.pending).toHaveLength(1);
    await Promise.all(b.pending);
    expect(q.calls.map((batch) => results([batch]))).toEqual([["p-1"], ["p-2"]]);
  });

  it("keeps one buffer per queue", async () => {
    const q1 = queue();
    const q2 = queue();
    const a = request("a");
    const b = request("b");
    logResults(q1, [event(1)], a.options);
    logResults(q2, [event(2)], b.options);
    await Promise.all([...a.pending, ...b.pending]);
    expect(results(q1.calls)).toEqual(["p-1"]);
    expect(results(q2.calls)).toEqual(["p-2"]);
  });

  it("with a window of 0 sends each request's results on their own, at once", async () => {
    const q = queue();
    const a = request("a", 0);
    const b = request("b", 0);
    logResults(q, [event(1)], a.options);
    logResults(q, [event(2)], b.options);
    expect(a.pending).toHaveLength(1);
    expect(b.pending).toHaveLength(1);
    await Promise.all([...a.pending, ...b.pending]);
    expect(q.calls.map((batch) => results([batch]))).toEqual([["p-1"], ["p-2"]]);
  });

  it("sends a buffer as soon as it holds about one sendBatch's worth, within the platform's limits", async () => {
    // The window's timer is fake: it ends when the test says so, not when a busy machine gets to it.
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const q = queue();
    const blob = "x".repeat(30_000);
    const requests = Array.from({ length: 20 }, (_, i) => request(`r${i}`, 1500));
    requests.forEach((r, i) => {
      logResults(q, [event(i, { blob })], r.options);
    });
    // Before the window ends, the size alone has sent the full buffers.
    await vi.advanceTimersByTimeAsync(1499);
    const sentEarly = results(q.calls);
    expect(q.calls.length).toBeGreaterThanOrEqual(2);
    expect(sentEarly.length).toBeGreaterThanOrEqual(12);
    expect(sentEarly.length).toBeLessThan(20);
    // The rest goes when its owner's window ends: nothing lost, nothing doubled.
    await vi.advanceTimersByTimeAsync(1);
    vi.useRealTimers();
    await Promise.all(requests.flatMap((r) => r.pending));
    expect(results(q.calls)).toEqual(requests.map((_, i) => `p-${i}`));
    for (const batch of q.calls) {
      expect(batch.length).toBeLessThanOrEqual(MAX_SEND_BATCH_MESSAGES);
      const bytes = batch.reduce(
        (n, m) => n + new TextEncoder().encode(JSON.stringify(m)).length,
        0,
      );
      expect(bytes).toBeLessThanOrEqual(256 * 1024);
    }
  });

  it("retries a failed send once", async () => {
    const q = queue(1);
    const a = request("a", 5);
    logResults(q, [event(1), event(2)], a.options);
    await Promise.all(a.pending);
    expect(results(q.calls)).toEqual(["p-1", "p-2"]);
  });

  it("logs results it could not send after the retry, and goes on with the next window", async () => {
    const errors: string[] = [];
    vi.spyOn(console, "error").mockImplementation((line: string) => {
      errors.push(line);
    });
    const q = queue(2);
    const a = request("failing", 5);
    logResults(q, [event(1), event(2), event(3)], a.options);
    await Promise.all(a.pending);
    expect(q.calls).toHaveLength(0);
    const logged = errors.map((line) => JSON.parse(line));
    // With nowhere else to store them, the loss is counted with both causes.
    expect(logged).toEqual([
      expect.objectContaining({
        event: "prediction_logs.lost",
        requestId: "failing",
        results: 3,
        error: expect.stringMatching(
          /^queue send failed twice: Error: Queue send failed: simulated outage; then .*no store/,
        ),
      }),
    ]);
    const b = request("b", 5);
    logResults(q, [event(4)], b.options);
    await Promise.all(b.pending);
    expect(results(q.calls)).toEqual(["p-4"]);
  });

  it("hands what the queue refused twice to the caller's store, with the cause", async () => {
    const errors: string[] = [];
    vi.spyOn(console, "error").mockImplementation((line: string) => {
      errors.push(line);
    });
    const q = queue(2);
    const unsent: { messages: PredictionLogMessage[]; cause: string }[] = [];
    const a = request("refused", 5);
    logResults(q, [event(1), event(2)], {
      ...a.options,
      onUnsent: async (messages, cause) => {
        unsent.push({ messages, cause });
      },
    });
    await Promise.all(a.pending);
    expect(q.calls).toHaveLength(0);
    expect(
      unsent.flatMap((u) => u.messages.flatMap((m) => m.results.map((r) => r.predictionId))),
    ).toEqual(["p-1", "p-2"]);
    expect(unsent[0]?.cause).toMatch(/^queue send failed twice: .*simulated outage/);
    expect(errors.map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining({
        event: "prediction_logs.send_failed",
        results: 2,
        storedAs: "dead_letters",
      }),
    ]);
  });

  it("logs the loss, with the count and both causes, when the store fails too", async () => {
    const errors: string[] = [];
    vi.spyOn(console, "error").mockImplementation((line: string) => {
      errors.push(line);
    });
    const q = queue(2);
    const a = request("both-down", 5);
    logResults(q, [event(1)], {
      ...a.options,
      onUnsent: async () => {
        throw new Error("database unreachable");
      },
    });
    await Promise.all(a.pending);
    expect(errors.map((line) => JSON.parse(line))).toEqual([
      expect.objectContaining({
        event: "prediction_logs.lost",
        results: 1,
        error: expect.stringMatching(/simulated outage; then Error: database unreachable$/),
      }),
    ]);
  });

  it("never loses a window to one event that cannot be serialized", async () => {
    // JSON.stringify throws on it, as it does on a value nested past its
    // stack (which the body bound stops at the edge): the buffer has to
    // survive such an event on its own.
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const q = queue();
    const a = request("a");
    const b = request("b");
    const c = request("c");
    expect(() => logResults(q, [event(1)], a.options)).not.toThrow();
    expect(() => logResults(q, [event(2, { income: circular })], b.options)).not.toThrow();
    expect(() => logResults(q, [event(3)], c.options)).not.toThrow();
    await Promise.all(a.pending);
    expect(results(q.calls)).toEqual(["p-1", "p-2", "p-3"]);
    const sent = q.calls.flatMap((batch) => batch.flatMap((m) => m.results));
    // The result itself is kept, its inputs replaced by a marker.
    expect(sent[1]?.inputs).toMatchObject({ unserializable: true });
    expect(sent[0]?.inputs).toEqual({ amount: 1 });
  });

  it("reads the window from the environment, falling back to 50 ms on nonsense", () => {
    expect(logBatchWindowMs(undefined)).toBe(50);
    expect(logBatchWindowMs("")).toBe(50);
    expect(logBatchWindowMs("0")).toBe(0);
    expect(logBatchWindowMs("25")).toBe(25);
    expect(logBatchWindowMs("-1")).toBe(50);
    expect(logBatchWindowMs("soon")).toBe(50);
    expect(logBatchWindowMs("60000")).toBe(1000);
  });
});

describe("packSendBatches", () => {
  it("groups messages into sendBatch calls of at most 100 messages", () => {
    const events = Array.from({ length: 450 }, (_, i) => event(i));
    // One event per message: 450 messages.
    const batches = packSendBatches(events, 400);
    expect(batches.map((b) => b.length)).toEqual([100, 100, 100, 100, 50]);
    expect(batches.flat().flatMap((m) => m.results.map((r) => r.predictionId))).toEqual(
      events.map((e) => e.predictionId),
    );
  });

  it("groups messages into sendBatch calls of at most 240 KB", () => {
    const blob = "y".repeat(50_000);
    const events = Array.from({ length: 12 }, (_, i) => event(i, { blob }));
    const batches = packSendBatches(events);
    expect(batches.length).toBeGreaterThan(1);
    for (const batch of batches) {
      const bytes = batch.reduce(
        (n, m) => n + new TextEncoder().encode(JSON.stringify(m)).length,
        0,
      );
      expect(bytes).toBeLessThanOrEqual(MAX_SEND_BATCH_BYTES);
    }
    expect(batches.flat().flatMap((m) => m.results)).toHaveLength(12);
  });
});
