/**
 * The governance walk-through, run as written: the shell block in
 * docs/governance.md, under npm start, with the local alert receiver, bash
 * and curl. Each call's status must be the one its comment promises (the
 * first canary refused for the data policy it lacks); the
 * receiver must hold one Slack message per step, and the request's trail
 * must name the operator, the owner and the risk officer.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { startAlertReceiver } from "../../scripts/lib/alert-receiver.ts";
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

const page = readFileSync(join(projectRoot, "docs", "governance.md"), "utf8");

interface Received {
  path: string;
  body: string;
}

describe("the governance walk-through", () => {
  const stateDir = mkdtempSync(join(tmpdir(), "airlock-gov-"));
  let server: DevServer | undefined;
  let receiver: { url: string; close(): Promise<void> } | undefined;
  afterAll(async () => {
    await server?.stop();
    await receiver?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it("refuses the canary until the definition of done is met and approvals are given, applies it, and tells the channel at each step", async () => {
    receiver = await startAlertReceiver(0);
    const started = await startLocalAirlock(stateDir, { AIRLOCK_CRON: "0" });
    server = started.server;
    const { base, adminToken: admin } = started;
    expect(admin).toMatch(/^airlock_pat_/);

    const block = walkThroughBlock(page);
    const script = block
      .replaceAll("http://127.0.0.1:8787", base)
      .replaceAll("http://127.0.0.1:8790", receiver.url)
      .replaceAll(".airlock/admin-token", adminTokenFile(stateDir));
    const run = await runBash(script, projectRoot);
    expect(run.stderr).toBe("");
    expect(run.status, run.stdout).toBe(0);
    const out = run.stdout.split("\n");

    // Every `as …  # NNN` line prints "NNN METHOD PATH", in order.
    const approval = /\/admin\/approvals\/(apr_[a-z0-9]+)\//.exec(run.stdout)?.[1] ?? "";
    expect(approval).toMatch(/^apr_/);
    const promised = promisedStatuses(block, { M: "demo-credit-risk", APPROVAL: approval });
    expect(promised).toHaveLength(9);
    expect(statusLines(run.stdout)).toEqual(promised);

    // The channel: one Slack message per step, in order, naming each person.
    const received = (await (
      await fetch(`${receiver.url}/__requests?path=/hooks/credit-risk`)
    ).json()) as Received[];
    const headers = received.map(
      (r) =>
        (JSON.parse(r.body) as { blocks: { text?: { text: string } }[] }).blocks[0]?.text?.text,
    );
    expect(headers).toEqual([
      ":ballot_box_with_check: Approval requested: demo-credit-risk — canary.raise",
      ":heavy_check_mark: Approval given (more needed): demo-credit-risk — canary.raise",
      ":white_check_mark: Approved: demo-credit-risk — canary.raise",
      ":rocket: Applied: demo-credit-risk — canary.raise",
    ]);
    const lines = out.filter((line) => / (asks for|approved|applied) /.test(line));
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(
      /^Omar Ops asks for approval .* 25% of traffic to the canary v2-xgboost/,
    );
    expect(lines[1]).toMatch(/^Olga Owner approved as owner .* It still needs a risk officer\.$/);
    expect(lines[2]).toMatch(/^Rita Risk approved as risk officer; .* is approved/);
    expect(lines[3]).toMatch(/^Omar Ops applied the approved change/);
    expect(received[0]?.body).toContain(`${base}/admin/approvals/${approval}|Open in Airlock`);

    // The trail: each step under its person.
    const people = (await (
      await fetch(`${base}/admin/principals?limit=50`, {
        headers: { authorization: `Bearer ${admin}` },
      })
    ).json()) as { items: { id: string; email: string }[] };
    const idOf = (email: string) => people.items.find((p) => p.email === email)?.id;
    const trail = out
      .filter((line) => line.startsWith('"actor":"prn_'))
      .map((line) => [
        /"actor":"(prn_[a-z0-9]+)"/.exec(line)?.[1],
        /"action":"([a-z_.]+)"/.exec(line)?.[1],
      ]);
    expect(trail).toEqual([
      [idOf("omar@example.com"), "approval.consume"],
      [idOf("rita@example.com"), "approval.approve"],
      [idOf("olga@example.com"), "approval.approve"],
      [idOf("omar@example.com"), "approval.request"],
    ]);
    expect(idOf("omar@example.com")).toMatch(/^prn_/);
  }, 240_000);
});
