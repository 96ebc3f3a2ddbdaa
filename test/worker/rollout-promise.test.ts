import { describe, expect, it } from "vitest";
import { call, json } from "./helpers";
import { modelWithVersions, putRollout, type RolloutJson, type RouteJson } from "./rollout-helpers";

/** Flips of the kill switch (engage, release, ...). */
const FLIPS = 6;
/** Requests that must start after each flip's acknowledgement before the next flip. */
const AFTER_EACH_FLIP = 8;
/** A cap on the whole run, far above what it takes, so that a stuck client fails instead of hanging. */
const CAP_MS = 90_000;

/**
 * The rollout promise, end to end: once an admin change has returned 2xx,
 * every request that starts afterwards sees the new state. Requests flow
 * through the lease path while the kill switch flips; each response says
 * which state it used. The run moves on by counting requests, never by time:
 * each flip waits until enough requests have started after the previous
 * acknowledgement and come back.
 *
 * That an acknowledgement waits out the leases granted on the old state is
 * tested where it is decided (rollout-lease.unit.test.ts: no acknowledgement
 * before the latest grant plus its lease and the margin) and after a restart
 * in rollout.test.ts; here the clients are the evidence.
 */
describe("rollout promise", { timeout: 60_000 }, () => {
  it("no request that starts after a change's 2xx uses the old state", async () => {
    const model = await modelWithVersions(2, "promise");
    const initial = await json<RolloutJson>(
      await putRollout(model, {
        champion: "v1",
        canary: { version: "v2", percent: 50 },
        leaseMs: 250,
      }),
    );
    /** What a request starting now must at least see: the last acknowledged change. */
    let acknowledged = { flip: -1, stateVersion: initial.stateVersion, engaged: false };
    let stop = false;
    const violations: string[] = [];
    /** Per flip: requests that started after its acknowledgement and were answered. */
    const startedAfter = Array.from({ length: FLIPS }, () => 0);
    /** Requests under way while a change was being acknowledged: they may see either state. */
    let duringChanges = 0;
    let changing = false;
    let wake: () => void = () => {};

    async function client(id: number) {
      let n = 0;
      while (!stop) {
        // What this request must at least see, fixed at the moment it starts.
        const mustSee = acknowledged;
        const overlapsChange = changing;
        const response = await call(`/admin/models/${model}/rollout/route?key=c${id}-${n++}`);
        if (response.status !== 200) {
          violations.push(`status ${response.status}: ${await response.text()}`);
        } else {
          const seen = Number(response.headers.get("x-airlock-state-version"));
          const body = await json<RouteJson>(response);
          if (seen < mustSee.stateVersion)
            violations.push(
              `started after state ${mustSee.stateVersion} was acknowledged but used ${seen}`,
            );
          if (seen === mustSee.stateVersion && (body.decision === "killed") !== mustSee.engaged)
            violations.push(`state ${seen} answered ${body.decision}`);
          if (mustSee.flip >= 0) startedAfter[mustSee.flip] = (startedAfter[mustSee.flip] ?? 0) + 1;
          if (overlapsChange || changing) duringChanges += 1;
        }
        wake();
        // Clients think between requests. (In tests the model's object shares
        // this isolate, and a loop with no pause would starve its timers.)
        await new Promise((resolve) => setTimeout(resolve, 3));
      }
    }

    /** Resolves once `enough()` holds, checked after each answer. */
    async function until(enough: () => boolean, what: string, deadline: number) {
      while (!enough()) {
        if (violations.length > 0) return;
        if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
        let backstop: ReturnType<typeof setTimeout> | undefined;
        await new Promise<void>((resolve) => {
          wake = resolve;
          // Only so that the deadline is looked at when no answer comes at all.
          backstop = setTimeout(resolve, 1_000);
        });
        if (backstop !== undefined) clearTimeout(backstop);
      }
    }

    const deadline = Date.now() + CAP_MS;
    const clients = Array.from({ length: 4 }, (_, i) => client(i));
    try {
      for (let flip = 0; flip < FLIPS; flip++) {
        const engage = flip % 2 === 0;
        changing = true;
        const response = engage
          ? await call(`/admin/models/${model}/kill-switch`, {
              method: "POST",
              body: { scope: "model", reason: `flip ${flip}` },
            })
          : await call(`/admin/models/${model}/kill-switch`, { method: "DELETE" });
        expect(response.status).toBe(200);
        const state = await json<RolloutJson>(response);
        expect(state.stateVersion).toBeGreaterThan(acknowledged.stateVersion);
        expect(state.killSwitch.engaged).toBe(engage);
        // From here on, every request that starts must see this state.
        acknowledged = { flip, stateVersion: state.stateVersion, engaged: engage };
        changing = false;
        await until(
          () => (startedAfter[flip] ?? 0) >= AFTER_EACH_FLIP,
          `${AFTER_EACH_FLIP} requests after flip ${flip}`,
          deadline,
        );
      }
    } finally {
      stop = true;
      await Promise.allSettled(clients);
    }

    expect(violations).toEqual([]);
    for (const count of startedAfter) expect(count).toBeGreaterThanOrEqual(AFTER_EACH_FLIP);
    console.log(
      `rollout promise: ${FLIPS} flips; requests started after each acknowledgement: ${startedAfter.join(", ")}; ${duringChanges} overlapped a change`,
    );
  }, 120_000);
});
