import { describe, expect, it } from "vitest";
import { encodeCursor } from "../../shared/pagination";
import {
  call,
  classificationModel,
  createModel,
  type ErrorJson,
  json,
  uniqueName,
} from "./helpers";
import { modelWithVersions, putRollout, type RolloutJson } from "./rollout-helpers";

/**
 * Inputs that once reached Postgres, or a route table, as they came and
 * answered 500 (or a misleading 404): each is a 4xx with a code now.
 */
describe("bad input is a client's error, never a 500", () => {
  it("refuses a cursor that decodes to a string Postgres cannot store", async () => {
    const response = await call(`/admin/models?cursor=${encodeCursor({ name: "a\u0000b" })}`);
    expect(response.status).toBe(400);
    expect((await json<ErrorJson>(response)).error.code).toBe("INVALID_CURSOR");
  });

  it("refuses a key cursor whose time no database can hold", async () => {
    for (const created of [8.64e15, -8.64e15, 253_402_300_800_000]) {
      const response = await call(`/admin/keys?cursor=${encodeCursor({ created, id: "k" })}`);
      expect(response.status).toBe(400);
      expect((await json<ErrorJson>(response)).error.code).toBe("INVALID_CURSOR");
    }
    const fine = await call(`/admin/keys?cursor=${encodeCursor({ created: Date.now(), id: "k" })}`);
    expect(fine.status).toBe(200);
  });

  it("refuses times in year 0000, naming the field", async () => {
    const model = uniqueName("year0");
    await createModel(classificationModel(model));
    const alerts = await call("/admin/alerts?from=0000-06-01T00:00:00Z");
    expect(alerts.status).toBe(400);
    expect((await json<ErrorJson>(alerts)).error.details?.[0]?.path).toBe("from");
    const monitoring = await call(
      `/admin/models/${model}/monitoring?from=0000-01-01T00:00:00Z&to=2026-01-01T00:00:00Z`,
    );
    expect(monitoring.status).toBe(400);
    expect((await json<ErrorJson>(monitoring)).error.details).toContainEqual({
      path: "from",
      message: "must be in year 1 or later",
    });
  });

  it("answers a wrong method with 405 and the methods the route has", async () => {
    const model = uniqueName("method");
    await createModel(classificationModel(model));
    const patch = await call(`/admin/models/${model}/rollout/revert`, {
      method: "PATCH",
      body: {},
    });
    expect(patch.status).toBe(405);
    expect(patch.headers.get("allow")).toBe("POST");
    expect((await json<ErrorJson>(patch)).error.code).toBe("METHOD_NOT_ALLOWED");
    const put = await call(`/admin/models/${model}`, { method: "PUT", body: {} });
    expect(put.status).toBe(405);
    expect(put.headers.get("allow")).toBe("GET, HEAD, PATCH");
    const predict = await call(`/v1/models/${model}/predict`, { token: null });
    expect(predict.status).toBe(405);
    expect(predict.headers.get("allow")).toBe("POST");
    // A path no route has is still 404.
    const none = await call(`/admin/models/${model}/nothing-here`);
    expect(none.status).toBe(404);
  });

  it("replays a rollout revert retried with its Idempotency-Key instead of reverting twice", async () => {
    const model = await modelWithVersions(2, "revert-idem");
    const first = await json<RolloutJson>(
      await putRollout(model, { champion: "v1", leaseMs: 250 }),
    );
    await putRollout(model, { champion: "v2", leaseMs: 250 });
    const key = `revert-${crypto.randomUUID()}`;
    const revert = () =>
      call(`/admin/models/${model}/rollout/revert`, {
        method: "POST",
        headers: { "idempotency-key": key },
        body: { stateVersion: first.stateVersion },
      });
    const once = await revert();
    expect(once.status).toBe(200);
    const reverted = await json<RolloutJson>(once);
    expect(reverted.champion).toBe("v1");
    const again = await revert();
    expect(again.status).toBe(200);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect((await json<RolloutJson>(again)).stateVersion).toBe(reverted.stateVersion);
    const now = await json<RolloutJson>(await call(`/admin/models/${model}/rollout`));
    expect(now.stateVersion).toBe(reverted.stateVersion);
    expect(now.history.filter((h) => h.action === "rollout.revert")).toHaveLength(1);
  });
});
