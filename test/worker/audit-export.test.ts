/**
 * The trail exported as NDJSON verifies offline with the shared verifier;
 * checkpoints are recorded in Postgres too and sent as `audit.checkpoint`
 * notices, only to destinations that list the type.
 */
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { takeCheckpoint } from "../../functions/audit/checkpoints";
import { verifyWebhook } from "../../shared/alerts/signing";
import type { Checkpoint, PublicKey } from "../../shared/audit/checkpoint";
import { type ExportLine, verifyExport } from "../../shared/audit/export";
import { takesType } from "../../shared/notices/types";
import {
  call,
  classificationModel,
  createModel,
  database,
  type ErrorJson,
  json,
  query,
  uniqueName,
} from "./helpers";

const receiverBase = String((env as unknown as Record<string, unknown>).TEST_ALERT_RECEIVER ?? "");
const SECRET = "audit-export-test-signing-secret-0123";

async function exportLines(query = ""): Promise<{ response: Response; lines: string[] }> {
  const response = await call(`/admin/audit/export${query}`);
  const text = await response.text();
  return { response, lines: text.split("\n").filter((line) => line.length > 0) };
}

async function received(
  path: string,
): Promise<{ headers: Record<string, string>; body: string }[]> {
  const response = await fetch(`${receiverBase}/__requests?path=${encodeURIComponent(path)}`);
  expect(response.status).toBe(200);
  return (await response.json()) as { headers: Record<string, string>; body: string }[];
}

async function receivedAtLeast(path: string, count: number) {
  for (let attempt = 0; attempt < 300; attempt++) {
    const got = await received(path);
    if (got.length >= count) return got;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return received(path);
}

async function takeOne() {
  const { db, close } = database();
  try {
    return await takeCheckpoint(db, env, new Date(), 1);
  } finally {
    await close();
  }
}

describe("audit export", () => {
  it("streams the whole trail with its checkpoints, and it verifies offline", async () => {
    await createModel(classificationModel(uniqueName("exp")));
    await takeOne();
    const key = await json<PublicKey>(await call("/admin/audit/public-key"));
    const { response, lines } = await exportLines();
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("application/x-ndjson");
    const parsed = lines.map((line) => JSON.parse(line) as ExportLine);
    const header = parsed[0];
    expect(header).toMatchObject({ type: "header", format: "airlock-audit-export/v1" });
    if (header?.type !== "header") throw new Error("no header");
    expect(header.from.seq).toBe(0);
    expect(header.publicKey?.keyId).toBe(key.keyId);
    const rows = parsed.filter((line) => line.type === "row");
    expect(rows.length).toBe(header.head.seq);
    expect(rows.map((row) => row.seq)).toEqual(rows.map((_, i) => i + 1));
    const checkpoints = parsed.filter((line) => line.type === "checkpoint");
    expect(checkpoints.length).toBeGreaterThan(0);
    expect(parsed.at(-1)).toEqual({
      type: "end",
      priorRows: header.priorRows,
      rows: rows.length,
      checkpoints: checkpoints.length,
    });

    const latest = checkpoints.at(-1) as Checkpoint;
    const verified = await verifyExport(lines, { publicKey: key, checkpoint: latest });
    expect(verified.broken).toBeNull();
    expect(verified.ok).toBe(true);
    expect(verified.rows).toBe(rows.length);

    // A row changed in the copy is named.
    const target = rows[Math.floor(rows.length / 2)] as { seq: number; content: string };
    const tampered = lines.map((line) => {
      const value = JSON.parse(line) as ExportLine;
      if (value.type !== "row" || value.seq !== target.seq) return line;
      return JSON.stringify({ ...value, content: value.content.replace('"actor":', '"actor": ') });
    });
    const broken = await verifyExport(tampered, { publicKey: key, checkpoint: latest });
    expect(broken.ok).toBe(false);
    expect(broken.broken).toMatchObject({ seq: target.seq, reason: "hash" });

    // Exporting is in the trail, with the person who did it.
    const trail = await json<{ items: { action: string; actor: string }[] }>(
      await call("/admin/audit?action=audit.export&limit=1"),
    );
    expect(trail.items[0]).toMatchObject({ action: "audit.export", actor: "prn_testadmin" });
  });

  it("starts after a row on request, and refuses a row the trail does not have", async () => {
    const { lines } = await exportLines("?from=1");
    const header = JSON.parse(lines[0] ?? "{}") as ExportLine;
    expect(header).toMatchObject({ type: "header", from: { seq: 1 }, priorRows: 0 });
    const firstRow = lines
      .map((line) => JSON.parse(line) as ExportLine)
      .find((l) => l.type === "row");
    expect(firstRow).toMatchObject({ seq: 2 });
    expect((await verifyExport(lines, {})).broken).toBeNull();

    const missing = await call("/admin/audit/export?from=999999999");
    expect(missing.status).toBe(400);
    expect((await json<ErrorJson>(missing)).error.details?.[0]?.path).toBe("from");
  });
});

describe("audit checkpoints as notices and in the database's record", () => {
  it("go to destinations that list audit.checkpoint, never to those without a type filter", () => {
    expect(takesType(null, "audit.checkpoint")).toBe(false);
    expect(takesType(["audit.*"], "audit.checkpoint")).toBe(true);
    expect(takesType(["audit.checkpoint"], "audit.checkpoint")).toBe(true);
    expect(takesType(["approval.*"], "audit.checkpoint")).toBe(false);
    expect(takesType(null, "approval.requested")).toBe(true);
  });

  it("are recorded in Postgres and sent, signed, to the destinations that ask", async () => {
    const name = uniqueName("ckn");
    const keeperPath = `/hooks/checkpoints-${name}`;
    const everythingPath = `/hooks/everything-${name}`;
    await createModel(classificationModel(name));
    const created = await Promise.all([
      call("/admin/alert-destinations", {
        method: "POST",
        body: {
          name: `keeper ${name}`,
          kind: "webhook",
          url: receiverBase + keeperPath,
          secret: SECRET,
          types: ["audit.checkpoint"],
          // A model filter does not hold back notices about the whole trail.
          models: [name],
        },
      }),
      call("/admin/alert-destinations", {
        method: "POST",
        body: {
          name: `everything ${name}`,
          kind: "slack",
          url: receiverBase + everythingPath,
          // Every type, Airlock's own notices too; one model, so other tests' notices stay away.
          models: [name],
          includeSystem: true,
        },
      }),
    ]);
    for (const response of created)
      expect(response.status, await response.clone().text()).toBe(201);
    const [keeper, everything] = await Promise.all(
      created.map((response) => json<{ id: string }>(response)),
    );
    // The destinations' creation moved the head: this checkpoint is new to them.
    const outcome = await takeOne();
    expect(["stored", "unchanged"]).toContain(outcome.kind);
    const checkpoint = (outcome as { checkpoint: Checkpoint }).checkpoint;

    const [recorded] = await query<{ hash: string; at: string; signature: string }>(
      sql`SELECT hash, at, signature FROM audit_checkpoints WHERE seq = ${checkpoint.seq}`,
    );
    expect(recorded).toEqual({
      hash: checkpoint.hash,
      at: checkpoint.at,
      signature: checkpoint.signature,
    });

    const deliveries = await query<{ destination_id: string; notice_key: string }>(sql`
      SELECT destination_id, notice_key FROM alert_deliveries
      WHERE type = 'audit.checkpoint' AND destination_id IN (${keeper?.id}, ${everything?.id})`);
    expect(deliveries.map((d) => d.destination_id)).toEqual(deliveries.map(() => keeper?.id));
    expect(deliveries.map((d) => d.notice_key)).toContain(`audit.checkpoint:${checkpoint.seq}`);

    const [first] = await receivedAtLeast(keeperPath, 1);
    expect(first).toBeDefined();
    const body = JSON.parse(first?.body ?? "{}") as { type: string; checkpoint: Checkpoint };
    expect(body.type).toBe("audit.checkpoint");
    const verdict = await verifyWebhook(
      SECRET,
      first?.body ?? "",
      {
        timestamp: first?.headers["x-airlock-timestamp"],
        signature: first?.headers["x-airlock-signature"],
      },
      Date.now() / 1000,
    );
    expect(verdict).toEqual({ ok: true });
    // What the receiver kept is a checkpoint the offline verifier holds an export to.
    const key = await json<PublicKey>(await call("/admin/audit/public-key"));
    const { lines } = await exportLines();
    const verified = await verifyExport(lines, { publicKey: key, checkpoint: body.checkpoint });
    expect(verified.broken).toBeNull();
    expect(verified.trusted?.seq).toBe(body.checkpoint.seq);

    // The verify route holds the trail to the database's record as well.
    const check = await json<{ ok: boolean; recordedCheckpoint: { seq: number } | null }>(
      await call("/admin/audit/verify?limit=50000"),
    );
    expect(check.ok).toBe(true);
    expect(check.recordedCheckpoint?.seq).toBeGreaterThanOrEqual(checkpoint.seq);
  });
});
