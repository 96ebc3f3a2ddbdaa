import { sql } from "drizzle-orm";
import { CHAIN_START, type ChainPoint } from "../../shared/audit/chain";
import type { Checkpoint, PublicKey } from "../../shared/audit/checkpoint";
import {
  EXPORT_FORMAT,
  type ExportCheckpoint,
  type ExportHeader,
  type ExportLine,
  type ExportPrior,
  type ExportRow,
} from "../../shared/audit/export";
import { openDatabase, type Queryable } from "../../shared/db/client";
import { describeError } from "../../shared/errors";

/** Rows read per query while exporting. */
const PAGE = 1000;

/** The row an export starts after: the start, or row `seq` as stored (null: no such row). */
export async function exportStart(db: Queryable, seq: number): Promise<ChainPoint | null> {
  if (seq === 0) return CHAIN_START;
  const [row] = (
    await db.execute<{ hash: string }>(sql`SELECT hash FROM audit_log WHERE seq = ${seq}`)
  ).rows;
  return row ? { seq, hash: row.hash } : null;
}

/**
 * The trail after `from` up to its head, as NDJSON (shared/audit/export.ts),
 * read in pages on a connection of its own while the response streams. Each
 * row's content is what its columns say now, in the canonical text that was
 * hashed when it was written: a row edited in place, in its columns or its
 * stored content, does not match its hash, offline as well. The
 * checkpoints are read before the head: each signs a head the export then
 * reaches, so one beyond the exported rows means rows were cut. A failure
 * while streaming ends the body early, without its `end` line, which the
 * offline verifier reports as a cut download.
 */
export function exportStream(
  env: Env,
  options: { from: ChainPoint; checkpoints: Checkpoint[]; publicKey: PublicKey | null },
): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  const handle = openDatabase(env);
  const line = (value: ExportLine) => encoder.encode(`${JSON.stringify(value)}\n`);
  let produce: AsyncGenerator<Uint8Array> | null = null;

  async function* lines(): AsyncGenerator<Uint8Array> {
    const db = handle.db;
    const [recorded] = (
      await db.execute<{ seq: string; hash: string }>(
        sql`SELECT seq, hash FROM audit_chain_head WHERE id = 1`,
      )
    ).rows;
    const head = recorded ? { seq: Number(recorded.seq), hash: recorded.hash } : options.from;
    const prior =
      options.from.seq === 0
        ? (
            await db.execute<{ content: string }>(
              sql`SELECT audit_content(a)::text AS content FROM audit_log a WHERE a.seq IS NULL ORDER BY a.id`,
            )
          ).rows
        : [];
    const header: ExportHeader = {
      type: "header",
      format: EXPORT_FORMAT,
      exportedAt: new Date().toISOString(),
      from: options.from,
      head,
      priorRows: prior.length,
      publicKey: options.publicKey,
    };
    yield line(header);
    for (const row of prior)
      yield line({ type: "prior", content: row.content } satisfies ExportPrior);
    let after = options.from.seq;
    let rows = 0;
    while (after < head.seq) {
      const page = (
        await db.execute<{ seq: string; prev_hash: string; hash: string; content: string }>(sql`
          SELECT a.seq, a.prev_hash, a.hash, audit_content(a)::text AS content FROM audit_log a
          WHERE a.seq > ${after} AND a.seq <= ${head.seq} ORDER BY a.seq LIMIT ${PAGE}`)
      ).rows;
      if (page.length === 0) break;
      const chunk = page.map((row) =>
        JSON.stringify({
          type: "row",
          seq: Number(row.seq),
          prevHash: row.prev_hash,
          hash: row.hash,
          content: row.content,
        } satisfies ExportRow),
      );
      yield encoder.encode(`${chunk.join("\n")}\n`);
      rows += page.length;
      after = Number(page.at(-1)?.seq);
    }
    const checkpoints = [...options.checkpoints].sort((a, b) => a.seq - b.seq);
    for (const checkpoint of checkpoints)
      yield line({ type: "checkpoint", ...checkpoint } satisfies ExportCheckpoint);
    yield line({
      type: "end",
      priorRows: prior.length,
      rows,
      checkpoints: checkpoints.length,
    });
  }

  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      produce ??= lines();
      try {
        const next = await produce.next();
        if (next.done) {
          controller.close();
          await handle.close();
        } else {
          controller.enqueue(next.value);
        }
      } catch (error) {
        console.error(
          JSON.stringify({
            level: "error",
            event: "audit.export_failed",
            error: describeError(error),
          }),
        );
        controller.error(error);
        await handle.close();
      }
    },
    async cancel() {
      await produce?.return(undefined);
      await handle.close();
    },
  });
}
