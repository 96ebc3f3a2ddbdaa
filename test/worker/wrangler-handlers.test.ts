/**
 * Every cron trigger and queue consumer that wrangler.toml declares has its
 * handler: a cron without a job, or a queue without a consumer, would only
 * fail in production.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { parse } from "smol-toml";
import { describe, expect, it } from "vitest";
import { jobs } from "../../functions/jobs";
import { handleQueue } from "../../functions/queue";
import wranglerToml from "../../wrangler.toml?raw";

const config = parse(wranglerToml) as {
  triggers?: { crons?: string[] };
  queues?: { consumers?: { queue: string }[]; producers?: { queue: string }[] };
};

describe("wrangler.toml and the Worker's handlers", () => {
  it("has a job for every cron trigger, and no job without one", () => {
    const crons = config.triggers?.crons ?? [];
    expect(crons.length).toBeGreaterThan(0);
    expect(Object.keys(jobs).sort()).toEqual([...crons].sort());
  });

  it("has a consumer for every queue it consumes, and every queue it sends to is consumed", async () => {
    const consumed = (config.queues?.consumers ?? []).map((c) => c.queue);
    expect(consumed.length).toBeGreaterThan(0);
    for (const queue of consumed) {
      const batch = createMessageBatch(queue, []);
      const ctx = createExecutionContext();
      await expect(handleQueue(batch, env, ctx), queue).resolves.toBeUndefined();
      await getQueueResult(batch, ctx);
    }
    for (const { queue } of config.queues?.producers ?? []) expect(consumed).toContain(queue);
    await expect(
      handleQueue(createMessageBatch("airlock-no-such-queue", []), env, createExecutionContext()),
    ).rejects.toThrow("No consumer for queue 'airlock-no-such-queue'");
  });
});
