/**
 * The people-and-permissions walk-through, run as written: the shell block
 * in docs/people-and-permissions.md, under npm start, with bash and curl.
 * Each call's status must be the one its comment promises, and the audit
 * trail must name the owner for the model change and the operator for the
 * kill switch.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { DevServer } from "../../scripts/lib/dev-server.ts";
import { projectRoot } from "../../scripts/lib/environment.ts";
import { adminTokenFile } from "../../scripts/lib/local-admin.ts";
import {
  promisedStatuses,
  runBash,
  startLocalAirlock,
  statusLines,
  walkThroughBlock,
} from "./walkthrough-helpers.ts";

const page = readFileSync(join(projectRoot, "docs", "people-and-permissions.md"), "utf8");

describe("the people-and-permissions walk-through", () => {
  const stateDir = mkdtempSync(join(tmpdir(), "airlock-walk-"));
  let server: DevServer | undefined;
  afterAll(async () => {
    await server?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it("gives each role what it allows, refuses the rest, and the trail names each person", async () => {
    const started = await startLocalAirlock(stateDir, { AIRLOCK_CRON: "0" });
    server = started.server;
    const { base, adminToken: admin } = started;
    expect(admin).toMatch(/^airlock_pat_/);

    const block = walkThroughBlock(page);
    const script = block
      .replaceAll("http://127.0.0.1:8787", base)
      .replaceAll(".airlock/admin-token", adminTokenFile(stateDir));
    const run = await runBash(script, projectRoot);
    expect(run.stderr).toBe("");
    expect(run.status, run.stdout).toBe(0);

    // Every `as …  # NNN` line prints "NNN METHOD PATH", in order.
    const promised = promisedStatuses(block, { M: "demo-credit-risk" });
    expect(promised.length).toBeGreaterThanOrEqual(10);
    expect(statusLines(run.stdout)).toEqual(promised);
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
