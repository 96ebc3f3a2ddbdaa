/**
 * The chain check on rows alone, as an auditor runs it offline: a missing
 * row, a row that does not follow, an edited content and two rows swapped
 * are each named at the first row they break.
 */
import { describe, expect, it } from "vitest";
import { CHAIN_START, type ChainRow, chainHash, verifyChain } from "../../shared/audit/chain";

async function chain(count: number): Promise<ChainRow[]> {
  const rows: ChainRow[] = [];
  let prev = CHAIN_START.hash;
  for (let seq = 1; seq <= count; seq++) {
    const content = JSON.stringify({ seq, action: `a.${seq}`, after: { n: seq } });
    const hash = await chainHash(prev, content);
    rows.push({ seq, content, prevHash: prev, hash });
    prev = hash;
  }
  return rows;
}

describe("verifyChain", () => {
  it("passes an intact chain and reports its head", async () => {
    const rows = await chain(5);
    expect(await verifyChain(rows, CHAIN_START)).toEqual({
      ok: true,
      checked: 5,
      head: { seq: 5, hash: rows[4]?.hash },
    });
    // Resuming from a known point checks the rest only.
    const from = { seq: 2, hash: rows[1]?.hash as string };
    expect(await verifyChain(rows.slice(2), from)).toMatchObject({ ok: true, checked: 3 });
  });

  it("names a deleted row, an edited one, a swapped pair and a wrong start", async () => {
    const rows = await chain(6);
    const deleted = rows.filter((r) => r.seq !== 3);
    expect(await verifyChain(deleted, CHAIN_START)).toMatchObject({
      ok: false,
      checked: 2,
      broken: { seq: 3, reason: "gap" },
    });

    const edited = rows.map((r) =>
      r.seq === 4 ? { ...r, content: r.content.replace('"n":4', '"n":40') } : r,
    );
    expect(await verifyChain(edited, CHAIN_START)).toMatchObject({
      broken: { seq: 4, reason: "hash" },
    });

    // Rows 2 and 3 swapped, with their sequence numbers made to look in order.
    const [r2, r3] = [rows[1] as ChainRow, rows[2] as ChainRow];
    const swapped = [rows[0], { ...r3, seq: 2 }, { ...r2, seq: 3 }, ...rows.slice(3)] as ChainRow[];
    expect(await verifyChain(swapped, CHAIN_START)).toMatchObject({
      broken: { seq: 2, reason: "prev_hash" },
    });
    // Swapped with their links rewritten too: the content still names its own place.
    const relinked = [rows[0], { ...r3, seq: 2, prevHash: r2.prevHash }] as ChainRow[];
    expect(await verifyChain(relinked, CHAIN_START)).toMatchObject({
      broken: { seq: 2, reason: "content_seq" },
    });

    expect(await verifyChain(rows, { seq: 0, hash: "f".repeat(64) })).toMatchObject({
      broken: { seq: 1, reason: "prev_hash" },
    });
  });
});
