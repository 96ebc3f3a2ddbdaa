import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import type { ModelRollout } from "../../durable-objects/model-rollout";
import { runAlerts } from "../../functions/alerts/evaluate";
import { loadCatalogue } from "../../functions/rollout/catalogue";
import { call, database, type ErrorJson, json, query } from "./helpers";
import { modelWithVersions, putRollout, type RolloutJson, rolloutStub } from "./rollout-helpers";

interface PlanJson {
  id: string;
  model: string;
  challenger: string;
  champion: string;
  status: string;
  phase: string;
  phases: {
    id: string;
    state: string;
    startedAt: string | null;
    startStateVersion: number | null;
  }[];
  schedule: { daysUsed: number; daysLeft: number; cycleDays: number; overdue: boolean };
  settings: { fairnessAttributes: string[]; kpis: unknown[]; thresholds: Record<string, unknown> };
  latestEvaluation: unknown;
  createdAt: string;
  endedAt: string | null;
  endReason: string | null;
}

async function catalogueOf(model: string) {
  const { db, close } = database();
  try {
    return await loadCatalogue(db, model);
  } finally {
    await close();
  }
}

async function rollout(model: string): Promise<RolloutJson> {
  return json<RolloutJson>(await call(`/admin/models/${model}/rollout`));
}

async function servedBy(model: string, champion = "v1"): Promise<void> {
  expect((await putRollout(model, { champion, leaseMs: 250 })).status).toBe(200);
}

async function startPlan(model: string, body: Record<string, unknown> = {}): Promise<PlanJson> {
  const response = await call(`/admin/models/${model}/plans`, {
    method: "POST",
    body: { challenger: "v2", ...body },
  });
  expect(response.status, await response.clone().text()).toBe(201);
  return json<PlanJson>(response);
}

const planCall = (model: string, id: string, action: string, body: unknown = { reason: "test" }) =>
  call(`/admin/models/${model}/plans/${id}/${action}`, { method: "POST", body });

describe("rollout plans", () => {
  it("starts a plan with the challenger in shadow and lists it everywhere", async () => {
    const model = await modelWithVersions(3, "pl");
    await servedBy(model);
    const plan = await startPlan(model, { steps: [2, 10] });
    expect(plan).toMatchObject({
      challenger: "v2",
      champion: "v1",
      status: "active",
      phase: "shadow",
    });
    expect(plan.phases.map((p) => p.id)).toEqual([
      "shadow",
      "canary_2",
      "canary_10",
      "full",
      "guard",
    ]);
    expect(plan.phases[0]).toMatchObject({ state: "current" });
    expect(plan.schedule).toMatchObject({ cycleDays: 90, overdue: false });
    const now = await rollout(model);
    expect(now).toMatchObject({ champion: "v1", canary: null });
    expect(now.shadows).toEqual([{ version: "v2", sampleRate: 1 }]);
    expect(plan.phases[0]?.startStateVersion).toBe(now.stateVersion);

    const one = await json<PlanJson>(await call(`/admin/models/${model}/plans/${plan.id}`));
    expect(one.id).toBe(plan.id);
    const list = await json<{ items: PlanJson[] }>(await call(`/admin/models/${model}/plans`));
    expect(list.items.map((p) => p.id)).toEqual([plan.id]);
    const all = await json<{ items: PlanJson[] }>(await call("/admin/plans?status=active"));
    expect(all.items.find((p) => p.model === model)?.id).toBe(plan.id);
    const [row] = await query<{ status: string; phase: string }>(
      sql`SELECT status, phase FROM rollout_plans WHERE id = ${plan.id}`,
    );
    expect(row).toEqual({ status: "active", phase: "shadow" });
  });

  it("refuses a second plan, a plan without a champion, and the champion as challenger", async () => {
    const model = await modelWithVersions(3, "pl");
    const none = await call(`/admin/models/${model}/plans`, {
      method: "POST",
      body: { challenger: "v2" },
    });
    expect(none.status).toBe(409);
    expect((await json<ErrorJson>(none)).error.code).toBe("PLAN_CONFLICT");
    await servedBy(model);
    const self = await call(`/admin/models/${model}/plans`, {
      method: "POST",
      body: { challenger: "v1" },
    });
    expect(self.status).toBe(400);
    expect((await json<ErrorJson>(self)).error.message).toContain("challenger");
    const unknown = await call(`/admin/models/${model}/plans`, {
      method: "POST",
      body: { challenger: "v9" },
    });
    expect(unknown.status).toBe(400);
    await startPlan(model);
    const second = await call(`/admin/models/${model}/plans`, {
      method: "POST",
      body: { challenger: "v3" },
    });
    expect(second.status).toBe(409);
    expect((await json<ErrorJson>(second)).error.code).toBe("PLAN_CONFLICT");
  });

  it("keeps manual rollout changes off the plan's versions while it is open", async () => {
    const model = await modelWithVersions(3, "pl");
    await servedBy(model);
    const plan = await startPlan(model);
    const canary = await putRollout(model, {
      champion: "v1",
      canary: { version: "v2", percent: 50 },
    });
    expect(canary.status).toBe(409);
    const body = await json<ErrorJson>(canary);
    expect(body.error.code).toBe("PLAN_IN_CONTROL");
    expect(body.error.message).toContain(plan.id);
    // Another shadow leaves the plan's versions alone.
    const other = await putRollout(model, {
      champion: "v1",
      shadows: [
        { version: "v2", sampleRate: 1 },
        { version: "v3", sampleRate: 0.5 },
      ],
    });
    expect(other.status).toBe(200);
    // The kill switch is never held by a plan.
    const kill = await call(`/admin/models/${model}/kill-switch`, {
      method: "POST",
      body: { scope: "challengers", reason: "test" },
    });
    expect(kill.status).toBe(200);
  });

  it("pauses, resumes, advances and skips by hand, then aborts back to the champion", async () => {
    const model = await modelWithVersions(3, "pl");
    await servedBy(model);
    const plan = await startPlan(model);
    const paused = await json<PlanJson>(await planCall(model, plan.id, "pause"));
    expect(paused.status).toBe("paused");
    const frozen = await planCall(model, plan.id, "advance");
    expect(frozen.status).toBe(409);
    expect((await json<ErrorJson>(frozen)).error.code).toBe("PLAN_STALE");
    expect((await json<PlanJson>(await planCall(model, plan.id, "resume"))).status).toBe("active");

    const advanced = await json<PlanJson>(await planCall(model, plan.id, "advance"));
    expect(advanced.phase).toBe("canary_1");
    let now = await rollout(model);
    expect(now.canary).toEqual({ version: "v2", percent: 1 });
    expect(now.shadows).toEqual([]);

    const skipped = await json<PlanJson>(await planCall(model, plan.id, "skip"));
    expect(skipped.phase).toBe("canary_25");
    expect(skipped.phases.find((p) => p.id === "canary_5")).toMatchObject({ state: "done" });
    now = await rollout(model);
    expect(now.canary).toEqual({ version: "v2", percent: 25 });

    const aborted = await json<PlanJson>(
      await planCall(model, plan.id, "abort", { reason: "the business changed its mind" }),
    );
    expect(aborted).toMatchObject({
      status: "aborted",
      endReason: "the business changed its mind",
    });
    now = await rollout(model);
    expect(now).toMatchObject({ champion: "v1", canary: null, shadows: [] });
    const again = await planCall(model, plan.id, "resume");
    expect(again.status).toBe(409);
    // A new attempt is a new plan; the aborted one stays as it ended.
    const retry = await startPlan(model);
    expect(retry.id).not.toBe(plan.id);
    const kept = await json<PlanJson>(await call(`/admin/models/${model}/plans/${plan.id}`));
    expect(kept).toMatchObject({ status: "aborted", endReason: "the business changed its mind" });
    expect((await planCall(model, retry.id, "abort")).status).toBe(200);

    // Every step is in the trail once the object's outbox is written.
    await runInDurableObject(rolloutStub(model), (instance: ModelRollout) =>
      instance.flushOutbox(),
    );
    const trail = await query<{ action: string; target: string; actor: string }>(
      sql`SELECT action, target, actor FROM audit_log WHERE target = ${`models/${model}/plans/${plan.id}`}
        ORDER BY (after ->> 'stateVersion')::int`,
    );
    expect(trail.map((row) => row.action)).toEqual([
      "plan.start",
      "plan.pause",
      "plan.resume",
      "plan.advance",
      "plan.skip",
      "plan.abort",
    ]);
    const step = await query<{ after: { evaluationId: number | null; from: string; to: string } }>(
      sql`SELECT after FROM audit_log WHERE target = ${`models/${model}/plans/${plan.id}`} AND action = 'plan.skip'`,
    );
    expect(step[0]?.after).toMatchObject({ from: "canary_1", to: "canary_25", evaluationId: null });
    const [row] = await query<{ status: string; revision: number }>(
      sql`SELECT status, revision FROM rollout_plans WHERE id = ${plan.id}`,
    );
    expect(row).toEqual({ status: "aborted", revision: 6 });
  });

  it("refuses a stale step from the evaluation and completes after the last phase", async () => {
    const model = await modelWithVersions(2, "pl");
    await servedBy(model);
    const plan = await startPlan(model, { steps: [50] });
    const catalogue = await catalogueOf(model);
    const context = { actor: "system:test", requestId: null };
    const stale = await runInDurableObject(rolloutStub(model), (instance: ModelRollout) =>
      instance.stepPlan(
        model,
        { planId: plan.id, phase: "canary_50", evaluationId: 1 },
        catalogue,
        context,
      ),
    );
    expect(stale).toMatchObject({ ok: false, code: "PLAN_STALE" });
    const other = await runInDurableObject(rolloutStub(model), (instance: ModelRollout) =>
      instance.stepPlan(
        model,
        { planId: "pln_other", phase: "shadow", evaluationId: 1 },
        catalogue,
        context,
      ),
    );
    expect(other).toMatchObject({ ok: false, code: "PLAN_NOT_FOUND" });
    for (const phase of ["shadow", "canary_50", "full", "guard"]) {
      const step = await runInDurableObject(rolloutStub(model), (instance: ModelRollout) =>
        instance.stepPlan(
          model,
          { planId: plan.id, phase, evaluationId: null },
          catalogue,
          context,
        ),
      );
      expect(step.ok, JSON.stringify(step)).toBe(true);
    }
    const done = await json<PlanJson>(await call(`/admin/models/${model}/plans/${plan.id}`));
    expect(done).toMatchObject({ status: "completed", phase: "guard" });
    const now = await rollout(model);
    expect(now).toMatchObject({ champion: "v2", canary: null, shadows: [] });
  });

  it("evaluates a plan without evidence as waiting, and never moves it", async () => {
    const model = await modelWithVersions(2, "pl");
    await servedBy(model);
    const plan = await startPlan(model);
    const response = await call(`/admin/models/${model}/plans/${plan.id}/evaluate`, {
      method: "POST",
    });
    expect(response.status, await response.clone().text()).toBe(200);
    const { evaluation, plan: after } = await json<{
      evaluation: {
        id: number;
        verdict: string;
        outcome: string;
        outcomeReason: string;
        gates: { gate: string; verdict: string }[];
        sha256: string;
      };
      plan: PlanJson;
    }>(response);
    expect(evaluation).toMatchObject({ verdict: "insufficient_evidence", outcome: "waiting" });
    expect(evaluation.gates.map((g) => g.gate)).toEqual([
      "agreement",
      "error_rate",
      "latency_p99",
      "alerts",
      "phase_minimums",
    ]);
    // The alerts gate reads the monitoring job's coverage, which every test
    // file shares: it passes once another test has run the job lately, and
    // waits otherwise. Every other gate waits for results.
    expect(
      evaluation.gates.filter((g) => g.gate !== "alerts").map((g) => [g.gate, g.verdict]),
    ).toEqual(
      ["agreement", "error_rate", "latency_p99", "phase_minimums"].map((gate) => [
        gate,
        "insufficient_evidence",
      ]),
    );
    expect(evaluation.outcomeReason).toContain("waiting in shadow");
    expect(evaluation.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(after.phase).toBe("shadow");
    expect(after.latestEvaluation).toMatchObject({ id: evaluation.id });
    const list = await json<{ items: { id: number }[] }>(
      await call(`/admin/models/${model}/plans/${plan.id}/evaluations`),
    );
    expect(list.items.map((e) => e.id)).toEqual([evaluation.id]);
  });

  it("raises an alert while a phase is past its target date, resolved once the plan ends", async () => {
    const model = await modelWithVersions(2, "pl");
    await servedBy(model);
    // A shadow phase due within a minute of its start.
    const plan = await startPlan(model, { phases: { shadow: { targetDays: 0.0005 } } });
    const evaluateAt = async (at: Date) => {
      const { db, close } = database();
      try {
        await runAlerts(db, env, at, { models: true, health: false, modelsAt: [at] });
      } finally {
        await close();
      }
    };
    const alertsOf = () =>
      query<{ state: string; rule: string; summary: string; version: string; dimension: string }>(
        sql`SELECT state, rule, summary, version, dimension FROM alerts WHERE model = ${model} AND rule = 'plan_overdue'`,
      );
    await evaluateAt(new Date());
    expect(await alertsOf()).toEqual([]);
    const later = new Date(Date.parse(plan.createdAt) + 3_600_000);
    await evaluateAt(later);
    const [alert] = await alertsOf();
    expect(alert).toMatchObject({ state: "firing", version: "v2", dimension: plan.id });
    expect(alert?.summary).toContain(`plan ${plan.id} has kept v2 in shadow`);

    expect((await planCall(model, plan.id, "abort")).status).toBe(200);
    // Clear from then on; resolved once clear for the cooldown.
    await evaluateAt(new Date(later.getTime() + 60_000));
    await evaluateAt(new Date(later.getTime() + 2 * 3_600_000));
    expect((await alertsOf())[0]?.state).toBe("resolved");
  });

  it("wakes a plan when a long dwell ends: the object's alarm asks for its evaluation", async () => {
    const model = await modelWithVersions(2, "pl");
    await servedBy(model);
    // A dwell of one monitoring window (900 s here) earns a wake-up; shorter ones do not.
    const plan = await startPlan(model, {
      phases: { shadow: { minDwellSeconds: 900 }, canary: { minDwellSeconds: 60 } },
    });
    const stub = rolloutStub(model);
    const timers = () =>
      runInDurableObject(stub, (instance: ModelRollout) => instance.timers(model));
    const [timer] = await timers();
    expect(timer).toMatchObject({
      key: `plan:${plan.id}:shadow`,
      message: { model, planId: plan.id, phase: "shadow", reason: "dwell_met" },
    });
    expect(Date.parse(timer?.at ?? "")).toBe(Date.parse(plan.createdAt) + 900_000);
    // Paused: no wake-up; resumed: back.
    await planCall(model, plan.id, "pause");
    expect(await timers()).toEqual([]);
    await planCall(model, plan.id, "resume");
    expect((await timers()).map((t) => t.key)).toEqual([`plan:${plan.id}:shadow`]);

    // Due now: the alarm sends it, and the plan is evaluated by the queue's consumer.
    // (The alarm the resume's audit flush set may run first and fire it: either run does.)
    await runInDurableObject(stub, (_instance: ModelRollout, state) => {
      state.storage.sql.exec("UPDATE timers SET at = 0");
      return state.storage.setAlarm(Date.now());
    });
    await runDurableObjectAlarm(stub);
    expect(await timers()).toEqual([]);
    let evaluations: { outcome: string; phase: string }[] = [];
    for (let poll = 0; poll < 2000 && evaluations.length === 0; poll++) {
      evaluations = await query<{ outcome: string; phase: string }>(
        sql`SELECT outcome, phase FROM plan_evaluations WHERE plan_id = ${plan.id}`,
      );
      if (evaluations.length === 0) await new Promise((resolve) => setTimeout(resolve, 25));
    }
    expect(evaluations).toEqual([{ outcome: "waiting", phase: "shadow" }]);

    // Advanced into a phase with a short dwell: no wake-up.
    expect((await planCall(model, plan.id, "advance")).status).toBe(200);
    expect(await timers()).toEqual([]);
  });
});
