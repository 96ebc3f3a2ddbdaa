import { describe, expect, it } from "vitest";
import { call, json } from "./helpers";
import { modelWithVersions, putRollout, type RolloutJson, type RouteJson } from "./rollout-helpers";

/**
 * The rollout promise, end to end: once an admin change has returned 2xx,
 * every request that starts afterwards sees the new state. Requests flow
 * through the lease path while the kill switch flips; each response says
 * which state it used.
 */
describe("rollout promise", () => {
  it("no request that starts after a change's 2xx uses the old state", async () => {
    const model = await modelWithVersions(2, "promise");
    const initial = await json<RolloutJson>(
      await putRollout(model, {
        champion: "v1",
        canary: { version: "v2", percent: 50 },
        leaseMs: 250,
      }),
    );
    let acknowledged = initial.stateVersion;
    let engagedNow = false;
    let stop = false;
    const violations: string[] = [];
    let requests = 0;
    let afterAck = 0;

    async function client(id: number) {
      let n = 0;
      while (!stop) {
        // What this request must at least see, fixed at the moment it starts.
        const mustSee = acknowledged;
        const mustBeKilled = engagedNow;
        const response = await call(`/admin/models/${model}/rollout/route?key=c${id}-${n++}`);
        requests += 1;
        // Clients think between requests. (In tests the model's object shares
        // this isolate, and a loop with no pause would starve its timers.)
        await new Promise((resolve) => setTimeout(resolve, 3));
        if (response.status !== 200) {
          violations.push(`status ${response.status}`);
          continue;
        }
        const seen = Number(response.headers.get("x-airlock-state-version"));
        const body = await json<RouteJson>(response);
        if (seen < mustSee)
          violations.push(`started after state ${mustSee} was acknowledged but used ${seen}`);
        if (seen === mustSee) afterAck += 1;
        if (seen === mustSee && (body.decision === "killed") !== mustBeKilled) {
          violations.push(`state ${seen} answered ${body.decision}`);
        }
      }
    }

    const clients = Array.from({ length: 4 }, (_, i) => client(i));
    const acknowledgements: number[] = [];
    try {
      for (let flip = 0; flip < 6; flip++) {
        const engage = flip % 2 === 0;
        const started = Date.now();
        const response = engage
          ? await call(`/admin/models/${model}/kill-switch`, {
              method: "POST",
              body: { scope: "model", reason: `flip ${flip}` },
            })
          : await call(`/admin/models/${model}/kill-switch`, { method: "DELETE" });
        expect(response.status).toBe(200);
        const state = await json<RolloutJson>(response);
        acknowledgements.push(Date.now() - started);
        // From here on, every request that starts must see this state.
        acknowledged = state.stateVersion;
        engagedNow = engage;
        await new Promise((resolve) => setTimeout(resolve, 120));
      }
    } finally {
      stop = true;
      await Promise.allSettled(clients);
    }

    expect(violations).toEqual([]);
    expect(requests).toBeGreaterThan(50);
    expect(afterAck).toBeGreaterThan(6);
    // The acknowledgement waits out the old leases: at least T, and not much more.
    for (const ms of acknowledgements) expect(ms).toBeGreaterThanOrEqual(200);
    console.log(
      `rollout promise: ${requests} requests across 6 flips; acknowledgement times (ms): ${acknowledgements.join(", ")}`,
    );
  });
});
