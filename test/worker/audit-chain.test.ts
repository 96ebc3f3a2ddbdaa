/**
 * The audit trail's hash chain under concurrency: fifty changes at once from
 * several writers (admin routes in their transactions, the rollout objects'
 * outboxes) end as a gapless chain that verifies, with every rollout
 * change, registry syncs included, in it once.
 */
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { CHAIN_START, verifyChain } from "../../shared/audit/chain";
import { call, httpUpstream, json, query } from "./helpers";
import { modelWithVersions, putRollout, type RolloutJson } from "./rollout-helpers";

interface Verification {
  ok: boolean;
  complete: boolean;
  checked: number;
  head: { seq: number; hash: string };
  next: { seq: number; hash: string } | null;
  broken: { seq: number; reason: string; message: string } | null;
  recordedHead: { seq: number; hash: string } | null;
}

/** Verifies the whole trail through the route, resuming where each call stops. */
async function verifyAll(limit = 500): Promise<Verification & { total: number }> {
  let total = 0;
  let from = "";
  for (;;) {
    const response = await call(`/admin/audit/verify?limit=${limit}${from}`);
    expect(response.status).toBe(200);
    const result = await json<Verification>(response);
    total += result.checked;
    if (!result.ok || result.complete || !result.next) return { ...result, total };
    from = `&from=${result.next.seq}&fromHash=${result.next.hash}`;
  }
}

describe("the audit chain", () => {
  it("stays gapless and verifies with fifty changes at once from several writers", async () => {
    const models = await Promise.all([1, 2, 3, 4, 5].map(() => modelWithVersions(3, "chain")));
    const changes = Array.from({ length: 50 }, (_, i) => {
      const model = models[i % models.length] as string;
      switch (i % 3) {
        case 0: // an admin route's own transaction, and a registry sync through the object
          return call(`/admin/models/${model}`, {
            method: "PATCH",
            body: {
              description: `change ${i}`,
              fallback: { kind: "static", output: { label: i % 2 ? "fraud" : "legit" } },
            },
          });
        case 1: // the rollout object's outbox
          return putRollout(model, {
            champion: `v${(i % 3) + 1}`,
            shadows: [{ version: "v3", sampleRate: (i % 10) / 10 + 0.05 }],
          });
        default: // a new version, which the object's catalogue takes
          return call(`/admin/models/${model}/versions`, {
            method: "POST",
            body: { version: `c${i}`, upstream: httpUpstream },
          });
      }
    });
    const statuses = (await Promise.all(changes)).map((r) => r.status);
    expect(
      statuses.every((s) => s === 200 || s === 201),
      JSON.stringify(statuses),
    ).toBe(true);

    // The outboxes flush on their own; wait for that event on each model.
    for (const model of models) {
      for (let attempt = 0; attempt < 200; attempt++) {
        const rollout = await json<RolloutJson>(await call(`/admin/models/${model}/rollout`));
        if (rollout.pendingAuditEvents === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }

    const verified = await verifyAll();
    expect(verified.broken).toBeNull();
    expect(verified.ok).toBe(true);
    expect(verified.complete).toBe(true);

    // Gapless from 1, each rollout change once, in the order of its state versions.
    const rows = await query<{ seq: string; content: string; prev_hash: string; hash: string }>(
      sql`SELECT seq, content, prev_hash, hash FROM audit_log WHERE seq IS NOT NULL ORDER BY seq`,
    );
    expect(Number(rows[0]?.seq)).toBe(1);
    const check = await verifyChain(
      rows.map((r) => ({
        seq: Number(r.seq),
        content: r.content,
        prevHash: r.prev_hash,
        hash: r.hash,
      })),
      CHAIN_START,
    );
    expect(check.ok).toBe(true);
    for (const model of models) {
      const events = await query<{ event_id: string; action: string }>(
        sql`SELECT event_id, action FROM audit_log WHERE target = ${`models/${model}/rollout`} ORDER BY seq`,
      );
      const versions = events.map((e) => Number(e.event_id.split(":").at(-1)));
      expect(new Set(versions).size).toBe(versions.length);
      expect(versions).toEqual([...versions].sort((a, b) => a - b));
      expect(events.map((e) => e.action)).toContain("registry.sync");
    }
  });

  it("verifies while rows are being appended: new rows after the head it read are no break", async () => {
    const model = await modelWithVersions(1, "chainv");
    const writes = Array.from({ length: 20 }, (_, i) =>
      call(`/admin/models/${model}`, { method: "PATCH", body: { description: `w${i}` } }),
    );
    const checks = Array.from({ length: 5 }, () => call("/admin/audit/verify?limit=50000"));
    const results = await Promise.all([...writes, ...checks]);
    for (const response of results.slice(writes.length)) {
      const verified = await json<Verification>(response);
      expect(verified.broken).toBeNull();
    }
  });

  it("drops a redelivered event without taking a sequence number", async () => {
    const eventId = `test:redelivered:${crypto.randomUUID()}`;
    const insert = sql`INSERT INTO audit_log (event_id, source, actor, action, target_type, target)
      VALUES (${eventId}, 'rollout', 'prn_test', 'test.redelivery', 'test', 'test/redelivery')
      ON CONFLICT (event_id) DO NOTHING RETURNING seq`;
    const first = await query<{ seq: string }>(insert);
    expect(first).toHaveLength(1);
    expect(await query(insert)).toEqual([]);
    const next = await query<{ seq: string }>(sql`INSERT INTO audit_log
      (event_id, source, actor, action, target_type, target)
      VALUES (${`${eventId}:next`}, 'rollout', 'prn_test', 'test.redelivery', 'test', 'test/redelivery')
      RETURNING seq`);
    // Other tests append meanwhile; none of them took a number for the duplicate either.
    expect(Number(next[0]?.seq)).toBeGreaterThan(Number(first[0]?.seq));
    const verified = await verifyAll();
    expect(verified.broken).toBeNull();
  });

  it("shows each entry's place in the chain, newest first", async () => {
    const page = await json<{ items: { seq: number | null; hash: string | null }[] }>(
      await call("/admin/audit?limit=20"),
    );
    const seqs = page.items.map((e) => e.seq ?? 0);
    expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
    expect(page.items[0]?.hash).toMatch(/^[0-9a-f]{64}$/);
  });
});
