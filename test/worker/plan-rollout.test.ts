/**
 * Rollout plans end to end, through the API: a governed model's challenger
 * taken from shadow through every canary step to full and guard on traffic
 * written by the log consumer, labels and outcomes in their tables and the
 * monitoring job's coverage, with the approvals its policy asks for; a
 * worse challenger held, a sparse one waiting, and one with an incomplete
 * card refused. Thresholds, minimum requests and labels are the defaults;
 * only time is shortened (no minimum dwell, short targets, short windows).
 * The traffic is generated deterministically.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { v7 } from "uuid";
import { beforeAll, describe, expect, it } from "vitest";
import type { ModelRollout } from "../../durable-objects/model-rollout";
import { runMonitoring } from "../../functions/jobs/monitoring";
import { canonicalJson, sha256Hex } from "../../shared/crypto";
import type { PredictionEvent } from "../../shared/inference/events";
import {
  call,
  classificationModel,
  completeModelCard,
  createModel,
  createVersion,
  type ErrorJson,
  fillAirlockItems,
  json,
  principalWithToken,
  query,
  thinCardMissing,
  thinModelCard,
  uniqueName,
} from "./helpers";
import { deliverLogs } from "./log-helpers";
import { mulberry32 } from "./random";
import { putRollout, type RolloutJson, rolloutStub } from "./rollout-helpers";

interface PhaseJson {
  id: string;
  state: string;
  startedAt: string | null;
  startStateVersion: number | null;
}

interface PlanJson {
  id: string;
  createdBy: string;
  status: string;
  phase: string;
  phases: PhaseJson[];
}

interface GateJson {
  gate: string;
  verdict: string;
  reason: string;
  needed?: { samples?: Record<string, number> };
}

interface EvaluationJson {
  id: number;
  phase: string;
  verdict: string;
  outcome: string;
  outcomeReason: string;
  stateVersion: number | null;
  gates: GateJson[];
}

interface ApprovalJson {
  id: string;
  action: string;
  status: string;
  target: Record<string, unknown>;
  requestedBy: string;
  evidence: Record<string, unknown> | null;
  evidenceSha256: string | null;
}

/** Every phase without a minimum dwell and due within hours: only time is shortened. */
const SHORT_PHASES = {
  shadow: { minDwellSeconds: 0, targetDays: 0.25 },
  canary: { minDwellSeconds: 0, targetDays: 0.25 },
  full: { minDwellSeconds: 0, targetDays: 0.25 },
  guard: { minDwellSeconds: 0, targetDays: 0.25 },
};

/** Multiples of 80 requests: whole cycles of `answers` in each region. */
const SHADOW_REQUESTS = 1040;
const CANARY_REQUESTS = 560;
const SERVED_PHASE_REQUESTS = 1040;

const rolloutOf = async (model: string) =>
  json<RolloutJson>(await call(`/admin/models/${model}/rollout`));

const planOf = async (model: string, id: string) =>
  json<PlanJson>(await call(`/admin/models/${model}/plans/${id}`));

async function evaluate(
  model: string,
  id: string,
): Promise<{ evaluation: EvaluationJson; plan: PlanJson }> {
  const response = await call(`/admin/models/${model}/plans/${id}/evaluate`, { method: "POST" });
  expect(response.status, await response.clone().text()).toBe(200);
  return json(response);
}

/**
 * The monitoring job as the cron runs it, with short windows: its coverage
 * reaches now, so the `alerts` gate reads the current alerts. Alert rules
 * are left out: no rule is the subject here.
 */
async function monitor(): Promise<void> {
  await runMonitoring({ ...env, MONITORING_WINDOW_SECONDS: "10" }, new Date(), {
    catchUp: true,
    alerts: false,
    health: false,
  });
}

/**
 * A request of the generated traffic: the truth, the region, the champion's
 * and the challenger's label. Over every 40 requests of a region, 30% are
 * fraud; the champion is wrong on 4 (two missed frauds, two false flags);
 * the good challenger differs from it on 2, righting one of its misses and
 * missing another fraud: 95% agreement, the same accuracy, recall and
 * flag rate in each region.
 */
interface Answers {
  region: string;
  truth: string;
  champion: string;
  challenger: string;
}

const other = (label: string) => (label === "fraud" ? "legit" : "fraud");

function answers(i: number, disagreeOn: (k: number) => boolean = (k) => k === 0 || k === 1) {
  const region = i % 2 === 0 ? "north" : "south";
  const k = Math.floor(i / 2) % 40;
  const truth = k % 20 < 6 ? "fraud" : "legit";
  const champion = k % 20 === 0 || k % 20 === 10 ? other(truth) : truth;
  const challenger = disagreeOn(k) ? other(champion) : champion;
  return { region, truth, champion, challenger } satisfies Answers;
}

/** Where traffic of the current phase goes: its state version, and times inside its span so far. */
interface PhaseSpan {
  phase: string;
  stateVersion: number;
  time: (i: number, n: number) => number;
}

async function currentSpan(model: string, id: string): Promise<PhaseSpan> {
  const plan = await planOf(model, id);
  const current = plan.phases.find((p) => p.state === "current");
  if (!current?.startedAt || current.startStateVersion === null)
    throw new Error(`plan ${id} has no current phase: ${JSON.stringify(plan.phases)}`);
  const from = Date.parse(current.startedAt);
  const to = Date.now();
  expect(to).toBeGreaterThanOrEqual(from);
  return {
    phase: current.id,
    stateVersion: current.startStateVersion,
    time: (i, n) => from + Math.floor(((to - from) * i) / n),
  };
}

interface Traffic {
  events: PredictionEvent[];
  labels: { predictionId: string; label: string }[];
  outcomes: { predictionId: string; kpi: string; value: number }[];
}

function result(
  model: string,
  role: PredictionEvent["role"],
  version: string,
  id: string,
  label: string,
  region: string,
  span: PhaseSpan,
  time: number,
  latencyMs: number,
): PredictionEvent {
  return {
    role,
    predictionId: id,
    requestId: id,
    model,
    version,
    prediction: { label },
    inputs: { amount: 10, country: "DE" },
    attributes: { region },
    keyHmac: null,
    latencyMs,
    status: "ok",
    errorCode: null,
    stateVersion: span.stateVersion,
    timestamp: new Date(time).toISOString(),
  };
}

/**
 * The traffic a phase sees: in shadow, v2 `shadow` beside v1 `served`; in a
 * canary phase, v2 `canary` with v1's `control` result for the same request
 * and as many other requests served by v1, each with a revenue outcome; in
 * full and guard, v2 `served` beside v1 `shadow`. Served and canary results
 * are labelled.
 */
function phaseTraffic(
  model: string,
  span: PhaseSpan,
  n: number,
  disagreeOn?: (k: number) => boolean,
): Traffic {
  const out: Traffic = { events: [], labels: [], outcomes: [] };
  const random = mulberry32(n + span.stateVersion);
  const latency = () => 8 + Math.round(random() * 40) / 10;
  const revenue = () => Math.round((100 + (random() - 0.5) * 20) * 100) / 100;
  const kind = span.phase.startsWith("canary_") ? "canary" : span.phase;
  for (let i = 0; i < n; i++) {
    const a = answers(i, disagreeOn);
    const time = span.time(i, n);
    const id = v7({ msecs: time });
    const at = (role: PredictionEvent["role"], version: string, label: string, key = id) =>
      result(model, role, version, key, label, a.region, span, time, latency());
    if (kind === "shadow") {
      out.events.push(at("shadow", "v2", a.challenger), at("served", "v1", a.champion));
      out.labels.push({ predictionId: id, label: a.truth });
    } else if (kind === "canary") {
      const servedId = v7({ msecs: time });
      out.events.push(
        at("canary", "v2", a.challenger),
        at("control", "v1", a.champion),
        at("served", "v1", a.champion, servedId),
      );
      out.labels.push(
        { predictionId: id, label: a.truth },
        { predictionId: servedId, label: a.truth },
      );
      out.outcomes.push(
        { predictionId: id, kpi: "revenue", value: revenue() },
        { predictionId: servedId, kpi: "revenue", value: revenue() },
      );
    } else {
      out.events.push(at("served", "v2", a.challenger), at("shadow", "v1", a.champion));
      out.labels.push({ predictionId: id, label: a.truth });
    }
  }
  return out;
}

/** Stores results through the log consumer, labels and outcomes in their tables. */
async function write(model: string, traffic: Traffic): Promise<void> {
  const messages = [];
  for (let i = 0; i < traffic.events.length; i += 50)
    messages.push({ body: { schema: 1, results: traffic.events.slice(i, i + 50) } });
  for (let i = 0; i < messages.length; i += 100) {
    const delivered = await deliverLogs(messages.slice(i, i + 100));
    expect(delivered.retryMessages).toEqual([]);
  }
  if (traffic.labels.length > 0)
    await query(sql`
      INSERT INTO feedback (prediction_id, model, label, observed_at, api_key_id)
      SELECT x.prediction_id, ${model}, x.label, now(), 'test-reporter'
      FROM jsonb_to_recordset(${JSON.stringify(
        traffic.labels.map((l) => ({ prediction_id: l.predictionId, label: l.label })),
      )}::jsonb) AS x(prediction_id text, label jsonb)`);
  if (traffic.outcomes.length > 0)
    await query(sql`
      INSERT INTO outcomes (api_key_id, model, prediction_id, kpi, value, at)
      SELECT 'test-reporter', ${model}, x.prediction_id, x.kpi, x.value, now()
      FROM jsonb_to_recordset(${JSON.stringify(
        traffic.outcomes.map((o) => ({
          prediction_id: o.predictionId,
          kpi: o.kpi,
          value: o.value,
        })),
      )}::jsonb) AS x(prediction_id text, kpi text, value float8)`);
}

/** The current phase's traffic written, the monitoring job run, and the plan evaluated. */
async function phaseRound(
  model: string,
  id: string,
  n: number,
  disagreeOn?: (k: number) => boolean,
) {
  const span = await currentSpan(model, id);
  await write(model, phaseTraffic(model, span, n, disagreeOn));
  await monitor();
  return { span, ...(await evaluate(model, id)) };
}

interface ChecklistItem {
  id: string;
  state: string;
  note?: string;
  evidence: { kind: string; ref: string; detail?: string }[];
}

/** The checklist's item for the online evidence of a rollout plan, for `version`. */
async function onlineEvidence(model: string, version: string) {
  const response = await call(`/admin/models/${model}/checklist?version=${version}`);
  expect(response.status).toBe(200);
  const checklist = await json<{ functions: { items: ChecklistItem[] }[] }>(response);
  return checklist.functions.flatMap((f) => f.items).find((item) => item.id === "online_evidence");
}

const gate = (evaluation: EvaluationJson, name: string) =>
  evaluation.gates.find((g) => g.gate === name);

let riskOfficer: { id: string; token: string };

beforeAll(async () => {
  riskOfficer = await principalWithToken([{ role: "risk_officer" }]);
});

/**
 * A medium-risk model whose v1 is champion and whose v2 has `card`, with
 * what Airlock fills in for both, and the model's owner.
 */
async function governedModel(prefix: string, card: Record<string, unknown>) {
  const model = uniqueName(prefix);
  await createModel(classificationModel(model));
  await createVersion(model, "v1", { modelCard: completeModelCard() });
  await createVersion(model, "v2", { modelCard: card });
  expect((await putRollout(model, { champion: "v1" })).status).toBe(200);
  await fillAirlockItems(model, ["v1", "v2"]);
  const set = await call(`/admin/models/${model}/governance`, {
    method: "PUT",
    token: riskOfficer.token,
    body: { tier: "medium" },
  });
  expect(set.status, await set.clone().text()).toBe(200);
  const owner = await principalWithToken([{ role: "owner", model }]);
  return { model, owner };
}

const approve = (token: string, id: string) =>
  call(`/admin/approvals/${id}/approve`, { method: "POST", token, body: {} });

const approvalOf = async (id: string) => json<ApprovalJson>(await call(`/admin/approvals/${id}`));

/**
 * Starts a plan with v2 shadowing every request: above a medium policy's
 * free shadow rate, so the tests' admin asks for `shadow.add` and the
 * owner approves it.
 */
async function startGovernedPlan(
  model: string,
  owner: { token: string },
  settings: Record<string, unknown> = {},
): Promise<PlanJson> {
  const body = { challenger: "v2", phases: SHORT_PHASES, ...settings };
  const refused = await call(`/admin/models/${model}/plans`, { method: "POST", body });
  expect(refused.status).toBe(403);
  expect((await json<ErrorJson>(refused)).error.code).toBe("APPROVAL_REQUIRED");
  const asked = await call(`/admin/models/${model}/approvals`, {
    method: "POST",
    body: {
      action: "shadow.add",
      target: { version: "v2", sampleRate: 1 },
      reason: "the plan's shadow phase sees every request",
    },
  });
  expect(asked.status, await asked.clone().text()).toBe(201);
  const { id: approvalId } = await json<{ id: string }>(asked);
  expect((await approve(owner.token, approvalId)).status).toBe(200);
  const started = await call(`/admin/models/${model}/plans`, {
    method: "POST",
    body: { ...body, approvalId },
  });
  expect(started.status, await started.clone().text()).toBe(201);
  expect((await approvalOf(approvalId)).status).toBe("consumed");
  return json<PlanJson>(started);
}

/** An ungoverned model served by v1, with a plan for v2 just started. */
async function ungovernedPlan(prefix: string): Promise<{ model: string; plan: PlanJson }> {
  const model = uniqueName(prefix);
  await createModel(classificationModel(model));
  await createVersion(model, "v1");
  await createVersion(model, "v2");
  expect((await putRollout(model, { champion: "v1" })).status).toBe(200);
  const started = await call(`/admin/models/${model}/plans`, {
    method: "POST",
    body: { challenger: "v2", phases: SHORT_PHASES },
  });
  expect(started.status, await started.clone().text()).toBe(201);
  return { model, plan: await json<PlanJson>(started) };
}

describe("a rollout plan end to end", () => {
  it("takes a better challenger from shadow through every step to champion, with approvals", async () => {
    const { model, owner } = await governedModel("pr-good", completeModelCard());
    const plan = await startGovernedPlan(model, owner, {
      fairnessAttributes: ["region"],
      kpis: [{ name: "revenue", higherIsBetter: true }],
    });
    expect(plan.phases.map((p) => p.id)).toEqual([
      "shadow",
      "canary_1",
      "canary_5",
      "canary_25",
      "canary_50",
      "full",
      "guard",
    ]);
    expect(await rolloutOf(model)).toMatchObject({
      champion: "v1",
      canary: null,
      shadows: [{ version: "v2", sampleRate: 1 }],
    });

    // Within the free canary share (5%) a step needs nobody; above it, and
    // the champion's place, the owner and a risk officer.
    const steps: { from: string; n: number; approval: boolean; after: Partial<RolloutJson> }[] = [
      {
        from: "shadow",
        n: SHADOW_REQUESTS,
        approval: false,
        after: { champion: "v1", canary: { version: "v2", percent: 1 }, shadows: [] },
      },
      {
        from: "canary_1",
        n: CANARY_REQUESTS,
        approval: false,
        after: { champion: "v1", canary: { version: "v2", percent: 5 }, shadows: [] },
      },
      {
        from: "canary_5",
        n: CANARY_REQUESTS,
        approval: true,
        after: { champion: "v1", canary: { version: "v2", percent: 25 }, shadows: [] },
      },
      {
        from: "canary_25",
        n: CANARY_REQUESTS,
        approval: true,
        after: { champion: "v1", canary: { version: "v2", percent: 50 }, shadows: [] },
      },
      {
        from: "canary_50",
        n: CANARY_REQUESTS,
        approval: true,
        after: { champion: "v2", canary: null, shadows: [{ version: "v1", sampleRate: 1 }] },
      },
      {
        from: "full",
        n: SERVED_PHASE_REQUESTS,
        approval: false,
        after: { champion: "v2", canary: null, shadows: [{ version: "v1", sampleRate: 1 }] },
      },
    ];
    const approvalIds: string[] = [];
    for (const [index, step] of steps.entries()) {
      const to = plan.phases[index + 1]?.id as string;
      const round = await phaseRound(model, plan.id, step.n);
      expect(round.span.phase).toBe(step.from);
      let { evaluation } = round;
      expect(evaluation.phase).toBe(step.from);
      expect(evaluation.verdict, evaluation.outcomeReason).toBe("advance");
      const expectedGates = step.from.startsWith("canary_")
        ? ["agreement", "error_rate", "latency_p99", "alerts", "quality", "fairness", "kpi"]
        : step.from === "shadow"
          ? ["agreement", "error_rate", "latency_p99", "alerts"]
          : ["error_rate", "latency_p99", "alerts", "quality", "fairness"];
      expect(evaluation.gates.map((g) => [g.gate, g.verdict])).toEqual([
        ...expectedGates.map((g) => [g, "pass"]),
        ["phase_minimums", "pass"],
      ]);
      if (step.approval) {
        expect(evaluation.outcome, evaluation.outcomeReason).toBe("approval_required");
        const [asked] = await query<{ id: string }>(sql`
          SELECT id FROM approvals WHERE model = ${model} AND action = 'plan.advance'
            AND status = 'pending' AND target->>'phase' = ${to}`);
        if (!asked) throw new Error(`no approval was asked for ${to}`);
        expect(evaluation.outcomeReason).toContain(asked.id);
        const request = await approvalOf(asked.id);
        expect(request).toMatchObject({ target: { plan: plan.id, phase: to } });
        expect(request.evidence).toMatchObject({
          binding: { plan: plan.id, phase: to },
          evaluation: { id: evaluation.id, verdict: "advance" },
        });
        expect(request.evidenceSha256).toBe(await sha256Hex(canonicalJson(request.evidence)));
        // The evaluation asked on behalf of the plan's creator; the owner and a risk officer decide.
        expect(request.requestedBy).toBe(plan.createdBy);
        expect([owner.id, riskOfficer.id]).not.toContain(request.requestedBy);
        const [requested] = await query<{ actor: string; after: { evaluationId: number } }>(sql`
          SELECT actor, after FROM audit_log
          WHERE action = 'approval.request' AND target = ${`models/${model}/approvals/${asked.id}`}`);
        expect(requested).toMatchObject({
          actor: "system:plan-evaluator",
          after: { evaluationId: evaluation.id },
        });
        expect((await approve(owner.token, asked.id)).status).toBe(200);
        // Half approved: a newer evaluation points at the same request and asks no other.
        const meanwhile = (await evaluate(model, plan.id)).evaluation;
        expect(meanwhile.outcome).toBe("approval_required");
        expect(meanwhile.outcomeReason).toContain(`${asked.id} (pending)`);
        const requests = await query<{ id: string }>(sql`
          SELECT id FROM approvals WHERE model = ${model} AND action = 'plan.advance'
            AND target->>'phase' = ${to}`);
        expect(requests).toEqual([{ id: asked.id }]);
        expect((await approve(riskOfficer.token, asked.id)).status).toBe(200);
        expect((await approvalOf(asked.id)).status).toBe("approved");
        // Still in the phase: the approval waits for the next evaluation.
        expect((await planOf(model, plan.id)).phase).toBe(step.from);
        evaluation = (await evaluate(model, plan.id)).evaluation;
        expect(evaluation.outcomeReason).toContain(asked.id);
        expect((await approvalOf(asked.id)).status).toBe("consumed");
        approvalIds.push(asked.id);
      }
      expect(evaluation.outcome, evaluation.outcomeReason).toBe("advanced");
      const now = await rolloutOf(model);
      expect(now).toMatchObject(step.after);
      expect(evaluation.stateVersion).toBe(now.stateVersion);
      const after = await planOf(model, plan.id);
      expect(after).toMatchObject({ status: "active", phase: to });
      expect(after.phases.find((p) => p.id === to)?.startStateVersion).toBe(now.stateVersion);
    }

    // The guard phase passes: the plan completes, v2 alone is champion.
    const guard = await phaseRound(model, plan.id, SERVED_PHASE_REQUESTS);
    expect(guard.span.phase).toBe("guard");
    expect(guard.evaluation).toMatchObject({ verdict: "advance", outcome: "completed" });
    expect(guard.plan).toMatchObject({ status: "completed", phase: "guard" });
    const final = await rolloutOf(model);
    expect(final).toMatchObject({ champion: "v2", canary: null, shadows: [] });
    expect(guard.evaluation.stateVersion).toBe(final.stateVersion);
    expect(approvalIds).toHaveLength(3);

    await runInDurableObject(rolloutStub(model), (instance: ModelRollout) =>
      instance.flushOutbox(),
    );
    const trail = await query<{ action: string; seq: string }>(
      sql`SELECT action, seq::text AS seq FROM audit_log WHERE target = ${`models/${model}/plans/${plan.id}`}
        ORDER BY (after ->> 'stateVersion')::int`,
    );
    expect(trail.map((row) => row.action)).toEqual([
      "plan.start",
      ...Array.from({ length: 6 }, () => "plan.advance"),
      "plan.complete",
    ]);

    // The checklist's online evidence is the last evaluation and the audit row of its step.
    const online = await onlineEvidence(model, "v2");
    expect(online?.state).toBe("met");
    const [step] = await query<{ seq: string; action: string }>(sql`
      SELECT seq::text AS seq, action FROM audit_log
      WHERE event_id = ${`rollout:${model}:${final.stateVersion}`}`);
    expect(step?.action).toBe("plan.complete");
    expect(online?.evidence.slice(0, 2)).toEqual([
      expect.objectContaining({ kind: "evaluation", ref: String(guard.evaluation.id) }),
      expect.objectContaining({ kind: "audit", ref: step?.seq }),
    ]);
    const consumes = await query<{ seq: string; target: string }>(sql`
      SELECT seq::text AS seq, target FROM audit_log
      WHERE action = 'approval.consume' AND target LIKE ${`models/${model}/approvals/%`}
      ORDER BY seq`);
    const approvalEvidence = online?.evidence.filter((e) => e.kind === "approval") ?? [];
    expect(approvalEvidence.map((e) => e.ref)).toEqual(approvalIds);
    const planConsumes = consumes.filter((row) =>
      approvalIds.some((id) => row.target.endsWith(`/${id}`)),
    );
    expect(planConsumes).toHaveLength(3);
    for (const row of planConsumes)
      expect(online?.evidence).toContainEqual(
        expect.objectContaining({ kind: "audit", ref: row.seq, detail: "approval.consume" }),
      );
  }, 180_000);

  it("holds a challenger that disagrees with the champion, saying so in words", async () => {
    const { model, plan } = await ungovernedPlan("pr-worse");
    const before = await rolloutOf(model);
    // 30% of the pairs disagree.
    const { evaluation } = await phaseRound(model, plan.id, 240, (k) => k % 10 < 3);
    expect(evaluation).toMatchObject({ phase: "shadow", verdict: "hold", outcome: "held" });
    const agreement = gate(evaluation, "agreement");
    expect(agreement?.verdict).toBe("fail");
    expect(evaluation.outcomeReason).toContain("held in shadow");
    expect(evaluation.outcomeReason).toContain("agrees with the champion on");
    expect(evaluation.outcomeReason).toContain("below 90%");
    expect(await planOf(model, plan.id)).toMatchObject({ status: "active", phase: "shadow" });
    const after = await rolloutOf(model);
    expect(after).toMatchObject({
      stateVersion: before.stateVersion,
      champion: "v1",
      canary: null,
      shadows: [{ version: "v2", sampleRate: 1 }],
    });
    // The version's checklist shows the held evaluation as its online evidence, unmet.
    const online = (await onlineEvidence(model, "v2")) as ChecklistItem;
    expect(online).toMatchObject({
      state: "unmet",
      note: `the latest evaluation of plan ${plan.id} is hold`,
    });
    expect(online.evidence[0]).toMatchObject({ kind: "evaluation", ref: String(evaluation.id) });
  }, 60_000);

  it("keeps a sparse challenger waiting, with how many more pairs it needs", async () => {
    const { model, plan } = await ungovernedPlan("pr-sparse");
    const { evaluation } = await phaseRound(model, plan.id, 36);
    expect(evaluation).toMatchObject({
      phase: "shadow",
      verdict: "insufficient_evidence",
      outcome: "waiting",
    });
    const agreement = gate(evaluation, "agreement");
    expect(agreement).toMatchObject({
      verdict: "insufficient_evidence",
      needed: { samples: { pairs: 200 - 36 } },
    });
    expect(evaluation.outcomeReason).toContain("waiting in shadow");
    expect(evaluation.outcomeReason).toContain(`${200 - 36} more pairs`);
    expect(await planOf(model, plan.id)).toMatchObject({ status: "active", phase: "shadow" });
  }, 60_000);

  it("refuses to take a challenger out of shadow until its card is complete, listing what is missing", async () => {
    const { model, owner } = await governedModel("pr-card", thinModelCard);
    const plan = await startGovernedPlan(model, owner);
    const { evaluation } = await phaseRound(model, plan.id, SHADOW_REQUESTS);
    // The gates passed; the definition of done did not.
    expect(evaluation.verdict, evaluation.outcomeReason).toBe("advance");
    expect(evaluation.outcome).toBe("refused");
    expect(evaluation.outcomeReason).toContain("cannot leave shadow");
    expect(evaluation.outcomeReason).toContain("versions/v2/modelCard.humanOversight.rollbackPlan");
    expect(await planOf(model, plan.id)).toMatchObject({ status: "active", phase: "shadow" });
    expect((await rolloutOf(model)).canary).toBeNull();

    const advance = await call(`/admin/models/${model}/plans/${plan.id}/advance`, {
      method: "POST",
      body: { reason: "the shadow looked fine" },
    });
    expect(advance.status).toBe(409);
    const { error } = await json<ErrorJson>(advance);
    expect(error.code).toBe("MODEL_CARD_INCOMPLETE");
    const paths = error.details?.map((d) => d.path) ?? [];
    // Everything but the intended use, which the card has; Airlock's items are filled.
    expect(paths).toEqual(thinCardMissing("v2"));
    expect(error.message).toContain("11 items are missing");
    expect(evaluation.outcomeReason).toContain("11 items are missing");
    for (const detail of error.details ?? [])
      expect(evaluation.outcomeReason).toContain(`${detail.path}: ${detail.message}`);

    // Once the card is complete, the next evaluation takes the step on the same evidence.
    const patched = await call(`/admin/models/${model}/versions/v2`, {
      method: "PATCH",
      body: { modelCard: completeModelCard() },
    });
    expect(patched.status, await patched.clone().text()).toBe(200);
    const again = await evaluate(model, plan.id);
    expect(again.evaluation).toMatchObject({ phase: "shadow", outcome: "advanced" });
    expect(again.plan.phase).toBe("canary_1");
    expect((await rolloutOf(model)).canary).toEqual({ version: "v2", percent: 1 });
  }, 60_000);
});
