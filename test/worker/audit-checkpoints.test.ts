/**
 * Signed checkpoints of the audit chain, kept in a Durable Object of their
 * own: taken when the head moved, listed, checked with the published key,
 * never moved back or rewritten; and the trail held to them.
 */
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { checkpointStore, takeCheckpoint } from "../../functions/audit/checkpoints";
import { verifyTrail } from "../../functions/audit/verify";
import {
  type Checkpoint,
  importSigningKey,
  type PublicKey,
  signCheckpoint,
  verifyCheckpoint,
} from "../../shared/audit/checkpoint";
import {
  call,
  classificationModel,
  createModel,
  database,
  json,
  query,
  uniqueName,
} from "./helpers";

const head = async () =>
  (await query<{ seq: string; hash: string }>(sql`SELECT seq, hash FROM audit_chain_head`))[0];

describe("audit checkpoints", () => {
  it("sign the head when it moved, are listed, and check with the published key", async () => {
    await createModel(classificationModel(uniqueName("ckpt")));
    const { db, close } = database();
    let taken: Awaited<ReturnType<typeof takeCheckpoint>>;
    try {
      taken = await takeCheckpoint(db, env, new Date(), 1);
    } finally {
      await close();
    }
    expect(taken.kind).toBe("stored");
    const checkpoint = (taken as { checkpoint: Checkpoint }).checkpoint;
    const now = await head();
    expect(checkpoint.seq).toBeLessThanOrEqual(Number(now?.seq));

    const listed = await json<{ items: Checkpoint[] }>(await call("/admin/audit/checkpoints"));
    expect(listed.items[0]).toEqual(checkpoint);
    const key = await json<PublicKey & { algorithm: string }>(
      await call("/admin/audit/public-key"),
    );
    expect(key.algorithm).toBe("Ed25519");
    expect(await verifyCheckpoint(checkpoint, key)).toBe(true);
    expect(await verifyCheckpoint({ ...checkpoint, seq: checkpoint.seq + 1 }, key)).toBe(false);
    expect(await verifyCheckpoint({ ...checkpoint, hash: "0".repeat(64) }, key)).toBe(false);

    // The trail is held to it.
    const verified = await json<{ ok: boolean; checkpoint: { seq: number } | null }>(
      await call("/admin/audit/verify?limit=50000"),
    );
    expect(verified.ok).toBe(true);
    expect(verified.checkpoint?.seq).toBe(checkpoint.seq);
  });

  it("are never moved back or rewritten: the store refuses, and keeps the refusal", async () => {
    const store = checkpointStore(env);
    const key = await importSigningKey(env.AUDIT_SIGNING_KEY);
    if (!(await store.latest())) {
      const { db, close } = database();
      await takeCheckpoint(db, env, new Date(), 1).finally(close);
    }
    const at = (await store.latest()) as Checkpoint;
    expect(at).not.toBeNull();
    const back = await store.append(
      await signCheckpoint(key, { seq: Math.max(0, at.seq - 1), hash: "b".repeat(64) }, new Date()),
    );
    expect(back.kind).toBe("refused");
    const rewritten = await store.append(
      await signCheckpoint(key, { seq: at.seq, hash: "c".repeat(64) }, new Date()),
    );
    expect(rewritten).toMatchObject({ kind: "refused" });
    expect((rewritten as { reason: string }).reason).toContain("another hash");
    const conflicts = await store.conflicts();
    expect(conflicts.length).toBeGreaterThanOrEqual(2);
    expect(await store.latest()).toEqual(at);
  });

  it("hold the trail to the checkpoint: a cut tail and a rewritten row are named", async () => {
    const { db, close } = database();
    try {
      const now = await head();
      const seq = Number(now?.seq);
      const cut = await verifyTrail(db, {
        limit: 50_000,
        checkpoint: {
          seq: seq + 1000,
          hash: "d".repeat(64),
          at: "2026-12-07T00:00:00.000Z",
          keyId: "x",
          signature: "",
        },
      });
      expect(cut.broken).toMatchObject({ reason: "checkpoint" });
      expect(cut.broken?.message).toContain("rows were cut");
      const rewritten = await verifyTrail(db, {
        limit: 50_000,
        checkpoint: {
          seq: 1,
          hash: "e".repeat(64),
          at: "2026-12-07T00:00:00.000Z",
          keyId: "x",
          signature: "",
        },
      });
      expect(rewritten.broken).toMatchObject({ seq: 1, reason: "checkpoint" });
    } finally {
      await close();
    }
  });
});
