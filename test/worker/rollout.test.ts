import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import type { ModelRollout } from "../../durable-objects/model-rollout";
import worker from "../../functions/index";
import { currentRollout } from "../../functions/rollout/leases";
import { decideRoute } from "../../shared/rollout/state";
import {
  adminToken,
  call,
  database,
  deadDatabaseProxy,
  type ErrorJson,
  executionContext,
  json,
} from "./helpers";
import {
  modelWithVersions,
  putRollout,
  type RolloutJson,
  rolloutStub,
  route,
} from "./rollout-helpers";

const keys = Array.from({ length: 400 }, (_, i) => `customer-${i}`);

/**
 * The keys the canary takes now, decided on the state the object leases to
 * every isolate (the salt stays inside it). Every admin request authenticates
 * against Postgres, so only every 20th key also goes through the route
 * endpoint, which must agree with the decision and its state version.
 */
async function canaryKeys(model: string): Promise<Set<string>> {
  const { state } = (await currentRollout(env, model)).grant;
  const onCanary = new Set<string>();
  for (const [i, key] of keys.entries()) {
    const decision = decideRoute(state, key);
    const role = decision.kind === "serve" ? decision.role : null;
    if (role === "canary") onCanary.add(key);
    if (i % 20 === 0) {
      const { body } = await route(model, key);
      expect(body.stateVersion).toBe(state.stateVersion);
      expect(body.role).toBe(role);
    }
  }
  return onCanary;
}

// Each admin request authenticates against Postgres: these make hundreds.
describe("rollout: admin routes", { timeout: 60_000 }, () => {
  it("sets champion, shadows and canary, and reads them back with an ETag and history", async () => {
    const model = await modelWithVersions();
    const response = await putRollout(model, {
      champion: "v1",
      shadows: [{ version: "v2", sampleRate: 1 }],
      canary: { version: "v3", percent: 5 },
      leaseMs: 250,
    });
    expect(response.status).toBe(200);
    const state = await json<RolloutJson>(response);
    expect(state).toMatchObject({
      model,
      champion: "v1",
      shadows: [{ version: "v2", sampleRate: 1 }],
      canary: { version: "v3", percent: 5 },
      leaseMs: 250,
      killSwitch: { engaged: false },
    });
    expect(state.acknowledgedAfterMs).toBeGreaterThanOrEqual(0);
    expect(response.headers.get("etag")).toBe(`"${state.stateVersion}"`);
    expect(JSON.stringify(state)).not.toContain("salt");

    const repeated = await putRollout(model, {
      champion: "v1",
      shadows: [{ version: "v2", sampleRate: 1 }],
      canary: { version: "v3", percent: 5 },
      leaseMs: 250,
    });
    expect((await json<RolloutJson>(repeated)).stateVersion).toBe(state.stateVersion);

    const read = await call(`/admin/models/${model}/rollout`);
    expect(read.status).toBe(200);
    const again = await json<RolloutJson>(read);
    expect(again.stateVersion).toBe(state.stateVersion);
    expect(again.history[0]).toMatchObject({
      stateVersion: state.stateVersion,
      action: "rollout.update",
      actor: "prn_testadmin",
    });
  });

  it("keeps the canary's salt while its version stays: raising the share keeps every canary key on the canary", async () => {
    const model = await modelWithVersions();
    expect(
      (
        await putRollout(model, {
          champion: "v1",
          canary: { version: "v2", percent: 10 },
          leaseMs: 250,
        })
      ).status,
    ).toBe(200);
    const at10 = await canaryKeys(model);
    expect(at10.size).toBeGreaterThan(15);
    expect(at10.size).toBeLessThan(70);
    expect(
      (
        await putRollout(model, {
          champion: "v1",
          canary: { version: "v2", percent: 30 },
          leaseMs: 250,
        })
      ).status,
    ).toBe(200);
    const at30 = await canaryKeys(model);
    for (const key of at10) expect(at30.has(key)).toBe(true);
    expect(at30.size).toBeGreaterThan(at10.size);
    // A new canary version is a fresh draw.
    expect(
      (
        await putRollout(model, {
          champion: "v1",
          canary: { version: "v3", percent: 30 },
          leaseMs: 250,
        })
      ).status,
    ).toBe(200);
    const other = await canaryKeys(model);
    const overlap = [...other].filter((key) => at30.has(key)).length;
    expect(overlap).toBeLessThan(Math.min(other.size, at30.size));
  });

  it("refuses unknown versions naming the field, stale If-Match with 412, and unknown models with 404", async () => {
    const model = await modelWithVersions(2);
    const missing = await putRollout(model, {
      champion: "v1",
      canary: { version: "v9", percent: 5 },
    });
    expect(missing.status).toBe(400);
    expect((await json<ErrorJson>(missing)).error.details?.[0]?.path).toBe("canary.version");

    const duplicate = await putRollout(model, {
      champion: "v1",
      shadows: [{ version: "v1", sampleRate: 1 }],
    });
    expect(duplicate.status).toBe(400);

    const first = await json<RolloutJson>(
      await putRollout(model, { champion: "v1", leaseMs: 250 }),
    );
    const stale = await putRollout(
      model,
      { champion: "v2", leaseMs: 250 },
      { "if-match": `"${first.stateVersion - 1}"` },
    );
    expect(stale.status).toBe(412);
    expect((await json<ErrorJson>(stale)).error.code).toBe("STATE_VERSION_MISMATCH");
    expect(stale.headers.get("etag")).toBe(`"${first.stateVersion}"`);
    const fresh = await putRollout(
      model,
      { champion: "v2", leaseMs: 250 },
      { "if-match": `"${first.stateVersion}"` },
    );
    expect(fresh.status).toBe(200);

    expect((await putRollout("no-such-model", { champion: "v1" })).status).toBe(404);
    expect((await call("/admin/models/no-such-model/rollout")).status).toBe(404);
    expect(
      (
        await call("/admin/models/no-such-model/kill-switch", {
          method: "POST",
          body: { scope: "model", reason: "x" },
        })
      ).status,
    ).toBe(404);
  });

  it("needs the admin token on every rollout route", async () => {
    const model = await modelWithVersions(1);
    for (const [method, path, body] of [
      ["GET", `/admin/models/${model}/rollout`, undefined],
      ["PUT", `/admin/models/${model}/rollout`, { champion: "v1" }],
      ["POST", `/admin/models/${model}/kill-switch`, { scope: "model", reason: "x" }],
      ["DELETE", `/admin/models/${model}/kill-switch`, undefined],
      ["POST", `/admin/models/${model}/rollout/revert`, { stateVersion: 1 }],
      ["GET", `/admin/models/${model}/rollout/route`, undefined],
    ] as const) {
      const response = await call(path, { method, body, token: null });
      expect(response.status, `${method} ${path}`).toBe(401);
    }
    const state = await json<RolloutJson>(await call(`/admin/models/${model}/rollout`));
    expect(state.killSwitch.engaged).toBe(false);
    expect(state.champion).toBeNull();
  });

  it("reverts to the rollout of an earlier state, salt included", async () => {
    const model = await modelWithVersions();
    const first = await json<RolloutJson>(
      await putRollout(model, {
        champion: "v1",
        canary: { version: "v2", percent: 20 },
        leaseMs: 250,
      }),
    );
    const before = await canaryKeys(model);
    await putRollout(model, { champion: "v3", leaseMs: 250 });
    expect((await route(model, "customer-1")).body.version).toBe("v3");
    const reverted = await call(`/admin/models/${model}/rollout/revert`, {
      method: "POST",
      body: { stateVersion: first.stateVersion },
    });
    expect(reverted.status).toBe(200);
    const state = await json<RolloutJson>(reverted);
    expect(state).toMatchObject({ champion: "v1", canary: { version: "v2", percent: 20 } });
    expect(state.history[0]?.action).toBe("rollout.revert");
    expect(await canaryKeys(model)).toEqual(before);
    const unknown = await call(`/admin/models/${model}/rollout/revert`, {
      method: "POST",
      body: { stateVersion: 999 },
    });
    expect(unknown.status).toBe(404);
    expect((await json<ErrorJson>(unknown)).error.code).toBe("STATE_NOT_FOUND");
  });
});

describe("rollout: reverting to a state without a champion", { timeout: 60_000 }, () => {
  it("refuses with 409 CHAMPION_REQUIRED while traffic has a champion, and reverts only when forced", async () => {
    const model = await modelWithVersions(1);
    // Setting the object up is state 1: the rollout before any champion.
    const setUp = await json<RolloutJson>(await call(`/admin/models/${model}/rollout`));
    expect(setUp.champion).toBeNull();
    const served = await json<RolloutJson>(
      await putRollout(model, { champion: "v1", leaseMs: 250 }),
    );

    const refused = await call(`/admin/models/${model}/rollout/revert`, {
      method: "POST",
      body: { stateVersion: setUp.stateVersion },
    });
    expect(refused.status).toBe(409);
    expect(refused.headers.get("etag")).toBe(`"${served.stateVersion}"`);
    const error = await json<ErrorJson>(refused);
    expect(error.error.code).toBe("CHAMPION_REQUIRED");
    expect(error.error.message).toBe(
      `Reverting to state ${setUp.stateVersion} would leave model '${model}' without a champion: 'v1' serves it now, and every inference request would then be refused with 503 NO_SERVING_VERSION. To do it anyway, send the request again with "force": true; to stop the model on purpose, engage the kill switch instead (it keeps the rollout, and the static fallback answers if the model has one).`,
    );
    // Nothing changed: requests still go to the champion.
    const after = await route(model, "customer-1");
    expect(after.body).toMatchObject({ decision: "serve", version: "v1" });
    expect(after.body.stateVersion).toBe(served.stateVersion);

    const forced = await call(`/admin/models/${model}/rollout/revert`, {
      method: "POST",
      body: { stateVersion: setUp.stateVersion, force: true },
    });
    expect(forced.status).toBe(200);
    const state = await json<RolloutJson>(forced);
    expect(state.champion).toBeNull();
    expect(state.history[0]).toMatchObject({
      action: "rollout.revert",
      after: { revertedTo: setUp.stateVersion, forced: true },
    });
    expect((await route(model, "customer-1")).body.decision).toBe("no-champion");

    // Without a champion to lose, a revert needs no force.
    const again = await call(`/admin/models/${model}/rollout/revert`, {
      method: "POST",
      body: { stateVersion: setUp.stateVersion },
    });
    expect(again.status).toBe(200);
    expect((await json<RolloutJson>(again)).history[0]?.after).not.toHaveProperty("forced");
  });
});

describe("rollout: kill switch", { timeout: 60_000 }, () => {
  it("suspends challengers, stops the model, widens but never narrows, and restores the rollout on release", async () => {
    const model = await modelWithVersions();
    await putRollout(model, {
      champion: "v1",
      shadows: [{ version: "v3", sampleRate: 1 }],
      canary: { version: "v2", percent: 50 },
      leaseMs: 250,
    });
    const canaryBefore = await canaryKeys(model);
    expect(canaryBefore.size).toBeGreaterThan(0);

    const challengers = await call(`/admin/models/${model}/kill-switch`, {
      method: "POST",
      body: { scope: "challengers", reason: "canary errors" },
    });
    expect(challengers.status).toBe(200);
    expect((await json<RolloutJson>(challengers)).killSwitch).toMatchObject({
      engaged: true,
      scope: "challengers",
      reason: "canary errors",
      actor: "prn_testadmin",
    });
    for (const key of [...canaryBefore].slice(0, 20)) {
      const { body } = await route(model, key);
      expect(body).toMatchObject({
        decision: "serve",
        version: "v1",
        role: "champion",
        shadows: [],
      });
    }

    const whole = await call(`/admin/models/${model}/kill-switch`, {
      method: "POST",
      body: { scope: "model", reason: "bad data" },
    });
    expect(whole.status).toBe(200);
    expect((await route(model, "customer-1")).body.decision).toBe("killed");

    const narrower = await call(`/admin/models/${model}/kill-switch`, {
      method: "POST",
      body: { scope: "challengers", reason: "x" },
    });
    expect(narrower.status).toBe(409);
    expect((await json<ErrorJson>(narrower)).error.code).toBe("KILL_SWITCH_NARROWER");
    const same = await call(`/admin/models/${model}/kill-switch`, {
      method: "POST",
      body: { scope: "model", reason: "again" },
    });
    expect(same.status).toBe(200);
    expect((await json<RolloutJson>(same)).killSwitch.reason).toBe("bad data");

    // A rollout change while engaged is stored and takes effect on release.
    const during = await putRollout(model, {
      champion: "v1",
      shadows: [{ version: "v3", sampleRate: 1 }],
      canary: { version: "v2", percent: 60 },
      leaseMs: 250,
    });
    expect(during.status).toBe(200);
    expect((await route(model, "customer-1")).body.decision).toBe("killed");

    const released = await call(`/admin/models/${model}/kill-switch`, { method: "DELETE" });
    expect(released.status).toBe(200);
    expect((await json<RolloutJson>(released)).killSwitch).toEqual({ engaged: false });
    const canaryAfter = await canaryKeys(model);
    for (const key of canaryBefore) expect(canaryAfter.has(key)).toBe(true);
    expect((await route(model, "customer-1")).body.shadows).toEqual(["v3"]);
  });

  it("engages while Postgres is down, and its audit row appears once Postgres is back", async () => {
    const model = await modelWithVersions(1);
    await putRollout(model, { champion: "v1", leaseMs: 250 });
    const stub = rolloutStub(model);
    // The set-up's audit event flushed first (its alarm may already be running on its own).
    for (let attempt = 0; attempt < 200; attempt++) {
      await runDurableObjectAlarm(stub);
      const pending = await runInDurableObject(
        stub,
        (instance: ModelRollout) => instance.read(model).pendingAuditEvents,
      );
      if (pending === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // Postgres unreachable, for the Worker and for the model's object.
    const down = { ...env, DATABASE_WS_PROXY: deadDatabaseProxy };
    await runInDurableObject(stub, (instance: ModelRollout) => {
      (instance as unknown as { env: Env }).env = down;
    });
    const engage = (token: string) =>
      worker.fetch(
        new Request(`http://airlock.test/admin/models/${model}/kill-switch`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${token}`,
            "content-type": "application/json",
            "idempotency-key": "k1",
          },
          body: JSON.stringify({ scope: "model", reason: "database incident drill" }),
        }),
        down,
        executionContext(),
      );
    // A personal token is looked up in Postgres: it cannot act while Postgres is down.
    const personal = await engage(adminToken());
    expect(personal.status).toBe(503);
    expect((await json<ErrorJson>(personal)).error.code).toBe("DATABASE_UNAVAILABLE");
    // The bootstrap token is break-glass: it engages the kill switch all the same.
    const response = await engage(env.ADMIN_TOKEN);
    expect(response.status).toBe(200);
    expect((await json<RolloutJson>(response)).pendingAuditEvents).toBe(1);
    expect((await route(model, "x")).body.decision).toBe("killed");

    // The flush fails and is rescheduled with backoff; nothing is lost.
    await runDurableObjectAlarm(stub);
    const stillPending = await runInDurableObject(
      stub,
      (instance: ModelRollout) => instance.read(model).pendingAuditEvents,
    );
    expect(stillPending).toBe(1);
    expect(
      await runInDurableObject(stub, (_instance, state) => state.storage.getAlarm()),
    ).not.toBeNull();

    await runInDurableObject(stub, (instance: ModelRollout) => {
      (instance as unknown as { env: Env }).env = env;
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    const audit = await json<{
      items: {
        action: string;
        source: string;
        eventId: string;
        after: { killSwitch: { reason: string } };
      }[];
    }>(await call(`/admin/audit?target=models/${model}/rollout`));
    expect(audit.items.map((e) => e.action)).toEqual(["kill_switch.engage", "rollout.update"]);
    expect(audit.items[0]).toMatchObject({
      source: "rollout",
      actor: "admin:bootstrap",
      auth: { method: "bootstrap", tokenId: null },
      after: { killSwitch: { reason: "database incident drill" } },
    });

    // A second flush of the same events (a retry after a lost reply) adds nothing.
    await runInDurableObject(stub, async (instance: ModelRollout) => instance.flushOutbox());
    const { db, close } = database();
    try {
      const rows = await db.execute(
        sql`select count(*)::int as n from audit_log where target = ${`models/${model}/rollout`}`,
      );
      expect((rows.rows[0] as { n: number }).n).toBe(2);
    } finally {
      await close();
    }
  });
});

describe("rollout: registry mirror and pushes", { timeout: 60_000 }, () => {
  it("mirrors lifecycle statuses into the registry once the outbox is flushed", async () => {
    const model = await modelWithVersions(4);
    await putRollout(model, {
      champion: "v1",
      shadows: [{ version: "v2", sampleRate: 0.5 }],
      canary: { version: "v3", percent: 5 },
      leaseMs: 250,
    });
    await runDurableObjectAlarm(rolloutStub(model));
    const statuses = async () =>
      Object.fromEntries(
        (
          await json<{ items: { version: string; status: string }[] }>(
            await call(`/admin/models/${model}/versions`),
          )
        ).items.map((v) => [v.version, v.status]),
      );
    expect(await statuses()).toEqual({
      v1: "champion",
      v2: "shadow",
      v3: "canary",
      v4: "registered",
    });
    await putRollout(model, { champion: "v3", leaseMs: 250 });
    await runDurableObjectAlarm(rolloutStub(model));
    expect(await statuses()).toEqual({
      v1: "retired",
      v2: "retired",
      v3: "champion",
      v4: "registered",
    });
  });

  it("pushes a model change to the rollout object before answering", async () => {
    const model = await modelWithVersions(2);
    await putRollout(model, { champion: "v1", leaseMs: 250 });
    const before = (await route(model)).body.stateVersion;
    const patched = await call(`/admin/models/${model}`, {
      method: "PATCH",
      body: { public: true, fallback: { kind: "version", version: "v2" } },
    });
    expect(patched.status).toBe(200);
    const pushedVersion = Number(patched.headers.get("x-airlock-state-version"));
    expect(pushedVersion).toBeGreaterThan(before);
    const snapshot = await runInDurableObject(
      rolloutStub(model),
      (instance: ModelRollout) => instance.lease(model).state,
    );
    expect(snapshot.profile).toMatchObject({
      public: true,
      fallback: { kind: "version", version: "v2" },
    });
    expect(Object.keys(snapshot.versions).sort()).toEqual(["v1", "v2"]);
    expect((await route(model)).body.stateVersion).toBe(pushedVersion);
  });

  it("after a restart, acknowledges no change before its start time plus the longest lease", async () => {
    const model = await modelWithVersions(2);
    await putRollout(model, { champion: "v1", leaseMs: 400 });
    const stub = rolloutStub(model);
    await evictDurableObject(stub);
    const started = Date.now();
    const response = await putRollout(model, { champion: "v2", leaseMs: 400 });
    expect(response.status).toBe(200);
    const state = await json<RolloutJson>(response);
    // The new instance has no record of grants made before the restart.
    expect(state.acknowledgedAfterMs).toBeGreaterThanOrEqual(350);
    expect(Date.now() - started).toBeGreaterThanOrEqual(400);
  });

  it("fails closed with 503 when the rollout object cannot be reached", async () => {
    const model = await modelWithVersions(1);
    const broken = {
      ...env,
      MODEL_ROLLOUT: {
        getByName: () => {
          throw new Error("object unreachable");
        },
      },
    } as unknown as Env;
    const response = await worker.fetch(
      new Request(`http://airlock.test/admin/models/${model}/kill-switch`, {
        method: "POST",
        headers: { authorization: `Bearer ${adminToken()}`, "content-type": "application/json" },
        body: JSON.stringify({ scope: "model", reason: "x" }),
      }),
      broken,
      executionContext(),
    );
    expect(response.status).toBe(503);
    expect((await json<ErrorJson>(response)).error.code).toBe("ROLLOUT_UNAVAILABLE");
  });
});
