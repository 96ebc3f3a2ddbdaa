/**
 * Checkpoint signatures: Ed25519 over the exact text of the checkpoint,
 * checked by anyone with the public key; a changed field, another key or a
 * key that does not match its id fails.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import {
  checkpointMessage,
  importSigningKey,
  signCheckpoint,
  verifyCheckpoint,
} from "../../shared/audit/checkpoint";

describe("checkpoint signatures", () => {
  it("verify as signed, and fail for any change", async () => {
    const key = await importSigningKey(env.AUDIT_SIGNING_KEY);
    expect(key.publicKey.keyId).toMatch(/^[0-9a-f]{16}$/);
    const checkpoint = await signCheckpoint(
      key,
      { seq: 42, hash: "a".repeat(64) },
      new Date("2026-12-07T10:00:00Z"),
    );
    expect(checkpointMessage(checkpoint)).toBe(
      `airlock-audit-checkpoint/v1\n42\n${"a".repeat(64)}\n2026-12-07T10:00:00.000Z\n${key.publicKey.keyId}`,
    );
    expect(await verifyCheckpoint(checkpoint, key.publicKey)).toBe(true);
    for (const changed of [
      { ...checkpoint, seq: 43 },
      { ...checkpoint, hash: "b".repeat(64) },
      { ...checkpoint, at: "2026-12-07T10:00:01.000Z" },
      {
        ...checkpoint,
        signature: checkpoint.signature.replace(/^./, (c) => (c === "A" ? "B" : "A")),
      },
    ])
      expect(await verifyCheckpoint(changed, key.publicKey)).toBe(false);
    // Another key's id, or a key that is not the id's.
    const other = {
      keyId: key.publicKey.keyId,
      jwk: {
        ...key.publicKey.jwk,
        x: key.publicKey.jwk.x.replace(/^./, (c) => (c === "A" ? "B" : "A")),
      },
    };
    expect(await verifyCheckpoint(checkpoint, other)).toBe(false);
  });

  it("refuse a signing key that is missing or not an Ed25519 private key", async () => {
    await expect(importSigningKey(undefined)).rejects.toThrow(/not set/);
    await expect(importSigningKey("bm90IGEga2V5")).rejects.toThrow(/PKCS#8/);
  });
});
