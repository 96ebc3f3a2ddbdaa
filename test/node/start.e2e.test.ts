import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type DevServer, freePort, startDevServer } from "../../scripts/lib/dev-server.ts";
import { ensureAdminToken } from "../../scripts/lib/environment.ts";

describe("npm start", () => {
  const stateDir = mkdtempSync(join(tmpdir(), "airlock-start-"));
  const running: DevServer[] = [];
  afterAll(async () => {
    for (const started of running) await started.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it("serves the API on an embedded database whose data survives a restart", async () => {
    const { token } = ensureAdminToken();
    const port = await freePort();
    const env = {
      AIRLOCK_STATE_DIR: stateDir,
      PORT: String(port),
      AIRLOCK_DB_PORT: String(await freePort()),
    };
    const base = `http://127.0.0.1:${port}`;
    const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };

    const first = await startDevServer(env);
    running.push(first);
    expect(first.output()).toContain(`API:       ${base}`);
    expect(first.output()).toContain(`${base}/docs`);
    expect(first.output()).toMatch(
      /Database: +postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/postgres \(embedded\)/,
    );

    const model = await fetch(`${base}/admin/models`, {
      method: "POST",
      headers,
      body: JSON.stringify({
        name: "restart-check",
        task: "regression",
        owner: "ops",
        description: "survives restarts",
        inputSchema: { type: "object", properties: { x: { type: "number" } } },
      }),
    });
    expect(model.status).toBe(201);
    const version = await fetch(`${base}/admin/models/restart-check/versions`, {
      method: "POST",
      headers,
      body: JSON.stringify({
        version: "v1",
        upstream: {
          kind: "http",
          url: "http://127.0.0.1:9/predict",
          protocol: "json",
          timeoutMs: 100,
        },
      }),
    });
    expect(version.status).toBe(201);
    await first.stop();

    const second = await startDevServer(env);
    running.push(second);
    const read = await fetch(`${base}/admin/models/restart-check/versions/v1`, { headers });
    expect(read.status).toBe(200);
    expect(((await read.json()) as { version: string }).version).toBe("v1");
    const audit = await fetch(`${base}/admin/audit?target=models/restart-check`, { headers });
    const actions = ((await audit.json()) as { items: { action: string }[] }).items.map(
      (e) => e.action,
    );
    expect(actions).toEqual(["version.create", "model.create"]);
    const docs = await fetch(`${base}/openapi.json`);
    expect(docs.status).toBe(200);
    await second.stop();
  });
});
