/**
 * The auditor's walk-through, run as written (docs/audit.md) under npm
 * start; then the trail tampered with directly in its database, as someone
 * holding it could: a row edited, one deleted, two reordered, and the tail
 * cut together with the database's own record of its head and checkpoints.
 * Each is named by the verify route and by the offline verifier of an
 * export; the cut tail, only against the checkpoint kept outside.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { neonConfig, Pool } from "@neondatabase/serverless";
import { afterAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import type { DevServer } from "../../scripts/lib/dev-server.ts";
import { projectRoot } from "../../scripts/lib/environment.ts";
import { adminTokenFile } from "../../scripts/lib/local-admin.ts";
import { runBash, startLocalAirlock, walkThroughBlock } from "./walkthrough-helpers.ts";

const page = readFileSync(join(projectRoot, "docs", "audit.md"), "utf8");

interface Broken {
  seq: number;
  reason: string;
  message: string;
}

describe("the auditor's walk-through, and a trail tampered with in its database", () => {
  const stateDir = mkdtempSync(join(tmpdir(), "airlock-audit-"));
  let server: DevServer | undefined;
  let pool: Pool | undefined;
  afterAll(async () => {
    await pool?.end();
    await server?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it("verifies an export offline, and names every tampering", async () => {
    const started = await startLocalAirlock(stateDir, { AIRLOCK_CRON: "0" });
    server = started.server;
    const { base, adminToken } = started;
    const api = (path: string, init: RequestInit = {}) =>
      fetch(`${base}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${adminToken}` },
      });

    // The walk-through, as written.
    const script = walkThroughBlock(page)
      .replaceAll("http://127.0.0.1:8787", base)
      .replaceAll(".airlock/admin-token", adminTokenFile(stateDir));
    const run = await runBash(script, projectRoot);
    expect(run.stderr).toBe("");
    expect(run.status, run.stdout).toBe(0);
    expect(run.stdout).toContain("The trail verifies.");
    expect(run.stdout).toMatch(/BROKEN at row 2 \(hash\)/);
    expect(run.stdout.trim().split("\n").at(-1)).toBe("exit 1");

    // The database, as npm start serves it.
    const database = JSON.parse(readFileSync(join(stateDir, "database.json"), "utf8")) as {
      databaseUrl: string;
      wsProxy: string;
    };
    neonConfig.webSocketConstructor = WebSocket;
    neonConfig.wsProxy = (host, port) => `${database.wsProxy}/v1?address=${host}:${port}`;
    neonConfig.useSecureWebSocket = false;
    neonConfig.pipelineTLS = false;
    neonConfig.pipelineConnect = false;
    pool = new Pool({ connectionString: database.databaseUrl, max: 1 });
    const db = pool;
    /** SQL with the trail's own triggers off, as a database superuser could. */
    const tamper = async (statements: [string, unknown[]?][]) => {
      const client = await db.connect();
      try {
        await client.query("BEGIN");
        await client.query("ALTER TABLE audit_log DISABLE TRIGGER USER");
        await client.query("ALTER TABLE audit_checkpoints DISABLE TRIGGER USER");
        for (const [text, values] of statements) await client.query(text, values ?? []);
        await client.query("ALTER TABLE audit_log ENABLE TRIGGER USER");
        await client.query("ALTER TABLE audit_checkpoints ENABLE TRIGGER USER");
        await client.query("COMMIT");
      } catch (error) {
        await client.query("ROLLBACK");
        throw error;
      } finally {
        client.release();
      }
    };
    const rowAt = async (seq: number) =>
      (
        await db.query<{ row: Record<string, unknown> }>(
          "SELECT row_to_json(a) AS row FROM audit_log a WHERE seq = $1",
          [seq],
        )
      ).rows[0]?.row;

    // A checkpoint kept elsewhere, and the public key.
    const kept = await api("/admin/audit/checkpoints", { method: "POST" });
    expect([200, 201]).toContain(kept.status);
    const checkpointFile = join(stateDir, "kept-checkpoint.json");
    writeFileSync(checkpointFile, await kept.text());
    const keyFile = join(stateDir, "kept-public-key.json");
    writeFileSync(keyFile, await (await api("/admin/audit/public-key")).text());
    const head = (
      JSON.parse(readFileSync(checkpointFile, "utf8")) as { checkpoint: { seq: number } }
    ).checkpoint.seq;
    expect(head).toBeGreaterThan(8);

    const verifyRoute = async () => {
      const response = await api("/admin/audit/verify");
      expect(response.status).toBe(200);
      return (await response.json()) as { ok: boolean; broken: Broken | null };
    };
    let exports = 0;
    /** An export now, verified offline against what was kept. */
    const verifyOffline = async (extra = "") => {
      const file = join(stateDir, `export-${++exports}.ndjson`);
      const response = await api("/admin/audit/export");
      expect(response.status).toBe(200);
      writeFileSync(file, await response.text());
      const result = await runBash(
        `npm run --silent audit:verify -- '${file}' --checkpoint '${checkpointFile}' --public-key '${keyFile}' --json ${extra}`,
        projectRoot,
      );
      const report = JSON.parse(result.stdout) as { ok: boolean; broken: Broken | null };
      expect(result.status).toBe(report.ok ? 0 : 1);
      return report;
    };
    expect((await verifyRoute()).ok).toBe(true);
    expect((await verifyOffline()).ok).toBe(true);

    // 1. A row edited in place: who did it.
    const third = await rowAt(3);
    await tamper([["UPDATE audit_log SET actor = 'prn_someoneelse' WHERE seq = 3"]]);
    expect((await verifyRoute()).broken).toMatchObject({ seq: 3, reason: "columns" });
    expect((await verifyOffline()).broken).toMatchObject({ seq: 3, reason: "hash" });
    await tamper([["UPDATE audit_log SET actor = $1 WHERE seq = 3", [third?.actor]]]);
    expect((await verifyRoute()).ok).toBe(true);

    // 2. A row deleted.
    const fourth = await rowAt(4);
    const restore: [string, unknown[]] = [
      "INSERT INTO audit_log OVERRIDING SYSTEM VALUE SELECT * FROM json_populate_record(NULL::audit_log, $1::json)",
      [JSON.stringify(fourth)],
    ];
    await tamper([["DELETE FROM audit_log WHERE seq = 4"]]);
    expect((await verifyRoute()).broken).toMatchObject({ seq: 4, reason: "gap" });
    expect((await verifyOffline()).broken).toMatchObject({ seq: 4, reason: "gap" });
    await tamper([restore]);
    expect((await verifyRoute()).ok).toBe(true);

    // 3. Two rows reordered.
    const swap: [string, unknown[]?][] = [
      ["UPDATE audit_log SET seq = -5 WHERE seq = 5"],
      ["UPDATE audit_log SET seq = 5 WHERE seq = 6"],
      ["UPDATE audit_log SET seq = 6 WHERE seq = -5"],
    ];
    await tamper(swap);
    const reordered = (await verifyRoute()).broken;
    expect(reordered?.seq).toBe(5);
    expect(["prev_hash", "content_seq", "columns"]).toContain(reordered?.reason);
    const reorderedOffline = (await verifyOffline()).broken;
    expect(reorderedOffline?.seq).toBe(5);
    expect(["prev_hash", "content_seq", "hash"]).toContain(reorderedOffline?.reason);
    await tamper(swap);
    expect((await verifyRoute()).ok).toBe(true);
    expect((await verifyOffline()).ok).toBe(true);

    // 4. The tail cut, with the database's own record of its head and checkpoints.
    const cutTo = head - 3;
    await tamper([
      ["DELETE FROM audit_log WHERE seq > $1", [cutTo]],
      [
        "UPDATE audit_chain_head SET seq = $1, hash = (SELECT hash FROM audit_log WHERE seq = $1)",
        [cutTo],
      ],
      ["DELETE FROM audit_checkpoints WHERE seq > $1", [cutTo]],
    ]);
    const cut = (await verifyRoute()).broken;
    expect(cut).toMatchObject({ seq: cutTo + 1, reason: "checkpoint" });
    expect(cut?.message).toContain("rows were cut");
    const cutOffline = (await verifyOffline()).broken;
    expect(cutOffline).toMatchObject({ reason: "checkpoint" });
    expect(cutOffline?.message).toContain("rows were cut");
    // The store outside refuses to sign the shorter trail.
    const refused = await api("/admin/audit/checkpoints", { method: "POST" });
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe(
      "AUDIT_CHECKPOINT_REFUSED",
    );
  }, 300_000);
});
