/**
 * The people-and-permissions walk-through, run as written: the shell block
 * in docs/people-and-permissions.md, under npm start, with bash and curl.
 * Each call's status must be the one its comment promises, and the audit
 * trail must name the owner for the model change and the operator for the
 * kill switch.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type DevServer, freePort, startDevServer } from "../../scripts/lib/dev-server.ts";
import { ensureAdminToken, projectRoot } from "../../scripts/lib/environment.ts";
import { adminTokenFile, readAdminToken } from "../../scripts/lib/local-admin.ts";

const page = readFileSync(join(projectRoot, "docs", "people-and-permissions.md"), "utf8");

/** The shell block that follows the walk-through marker. */
function walkThrough(): string {
  const marker = page.indexOf("<!-- walk-through:");
  const start = page.indexOf("```sh\n", marker);
  const end = page.indexOf("\n```", start + 6);
  if (marker < 0 || start < 0 || end < 0) throw new Error("no walk-through block in the page");
  return page.slice(start + 6, end);
}

describe("the people-and-permissions walk-through", () => {
  const stateDir = mkdtempSync(join(tmpdir(), "airlock-walk-"));
  let server: DevServer | undefined;
  afterAll(async () => {
    await server?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it("gives each role what it allows, refuses the rest, and the trail names each person", async () => {
    const devVars = join(stateDir, "dev.vars");
    ensureAdminToken(devVars);
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    server = await startDevServer({
      AIRLOCK_STATE_DIR: stateDir,
      AIRLOCK_DEV_VARS: devVars,
      PORT: String(port),
      AIRLOCK_DB_PORT: String(await freePort()),
      AIRLOCK_CRON: "0",
    });
    const admin = readAdminToken(adminTokenFile(stateDir)) ?? "";
    expect(admin).toMatch(/^airlock_pat_/);

    const block = walkThrough();
    const script = block
      .replaceAll("http://127.0.0.1:8787", base)
      .replaceAll(".airlock/admin-token", adminTokenFile(stateDir));
    const run = spawnSync("bash", ["-euo", "pipefail", "-c", script], {
      cwd: projectRoot,
      encoding: "utf8",
      timeout: 120_000,
    });
    expect(run.stderr).toBe("");
    expect(run.status, run.stdout).toBe(0);

    // Every `as …  # NNN` line prints "NNN METHOD PATH", in order.
    const promised = block
      .split("\n")
      .filter((line) => line.startsWith("as "))
      .map((line) => {
        const [, , method, path] = line.split(/\s+/);
        const status = /#\s*(\d{3})\s*$/.exec(line)?.[1];
        return `${status} ${method} ${path?.replaceAll('"', "").replace("$M", "demo-credit-risk")}`;
      });
    expect(promised.length).toBeGreaterThanOrEqual(10);
    const printed = run.stdout.split("\n").filter((line) => /^\d{3} [A-Z]+ \//.test(line));
    expect(printed).toEqual(promised);
    // The trail's last lines name people by id, with their tokens.
    expect(run.stdout).toMatch(/"actor":"prn_[a-z0-9]+","auth":\{"method":"token"/);

    // Who is who: the four people, by email.
    const headers = { authorization: `Bearer ${admin}` };
    const people = (await (
      await fetch(`${base}/admin/principals?limit=50`, { headers })
    ).json()) as {
      items: { id: string; email: string }[];
    };
    const idOf = (email: string) => people.items.find((p) => p.email === email)?.id;
    const owner = idOf("olga@example.com");
    const operator = idOf("omar@example.com");
    expect(owner).toMatch(/^prn_/);
    expect(operator).toMatch(/^prn_/);

    // The rollout object writes its audit rows once its outbox flushes: wait for that event.
    type Entry = { actor: string; action: string; auth: { method: string } | null };
    let trail: Entry[] = [];
    for (let attempt = 0; attempt < 100; attempt++) {
      const response = await fetch(`${base}/admin/audit?target=models/demo-credit-risk&limit=20`, {
        headers,
      });
      trail = ((await response.json()) as { items: Entry[] }).items;
      if (trail.some((e) => e.action === "kill_switch.release")) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const by = (action: string) => trail.find((e) => e.action === action);
    expect(by("model.update")).toMatchObject({ actor: owner, auth: { method: "token" } });
    expect(by("kill_switch.engage")).toMatchObject({ actor: operator, auth: { method: "token" } });
    expect(by("kill_switch.release")).toMatchObject({ actor: operator, auth: { method: "token" } });
  }, 240_000);
});
