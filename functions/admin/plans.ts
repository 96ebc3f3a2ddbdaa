/**
 * Rollout plans: a challenger taken from shadow through canary steps to
 * full and a guard phase, on evidence. Started, paused, resumed, aborted and
 * (with the policy's approvals) advanced or skipped by hand here; advanced
 * on its gates by the plan evaluation (functions/plans/run.ts). The model's
 * rollout object owns each plan's state and applies its steps; Postgres
 * mirrors it for reading (functions/plans/resource.ts).
 */
import { z } from "@hono/zod-openapi";
import { and, desc, eq, inArray, lt } from "drizzle-orm";
import type { Context } from "hono";
import type { RolloutChangeResult } from "../../durable-objects/model-rollout";
import { modelsWith } from "../../shared/auth/permissions";
import { newId } from "../../shared/auth/tokens";
import { models, modelVersions, planEvaluations, rolloutPlans } from "../../shared/db/schema";
import { ApiError, validationError } from "../../shared/errors";
import { resolveThresholds } from "../../shared/plans/gates";
import { mirrorPlans } from "../../shared/plans/mirror";
import {
  DEFAULT_CYCLE_DAYS,
  planPhases,
  planSettingsFields,
  refinePlanSettings,
} from "../../shared/plans/phases";
import { currentPhase, isOpen, type PlanState, phaseRollout } from "../../shared/plans/state";
import { ModelName, VersionLabel } from "../../shared/schemas/common";
import type { AppEnv } from "../app-env";
import { planFingerprint, planOverrideNeeds } from "../plans/governance";
import { evaluationResource, Plan, PlanEvaluation, planResource } from "../plans/resource";
import { evaluateOpenPlans } from "../plans/run";
import { loadCatalogue, refuseRetired } from "../rollout/catalogue";
import { rolloutObject } from "../rollout/leases";
import { callObject, ensureConfigured } from "../rollout/object";
import { apiRouter } from "../router";
import { approvalRequired, governedChange, withApproval } from "./approval-gate";
import { changeContext } from "./change";
import { findModel } from "./models";
import { errorResponses, IdempotencyHeader, jsonBody, jsonContent } from "./openapi";
import { assertReadyForAuthority } from "./readiness";
import { adminRoute } from "./route";

export const plansApi = apiRouter();

const PlanId = z
  .string()
  .min(1)
  .max(64)
  .openapi({ param: { name: "id", in: "path" }, example: "pln_k3v9q2m7x4c8t1b5" });
const ModelParam = ModelName.openapi({ param: { name: "model", in: "path" } });
const PlanParams = z.object({ model: ModelParam, id: PlanId });

const Reason = z.string().trim().min(1).max(1000);
const ApprovalId = z.string().min(1).max(64);

const CreatePlanBody = z
  .object({
    challenger: VersionLabel.openapi({
      description: "The version the plan takes from shadow to champion.",
    }),
    ...planSettingsFields,
    approvalId: ApprovalId.optional().openapi({
      description:
        "An approved `shadow.add` request, where the model's governance policy needs one for the shadow phase's sample rate.",
    }),
  })
  .strict()
  .superRefine(refinePlanSettings)
  .openapi("CreatePlan", {
    example: {
      challenger: "v2",
      kpis: [{ name: "repaid", higherIsBetter: true }],
      fairnessAttributes: ["region"],
    },
  });

const ChangeBody = z
  .object({ reason: Reason.openapi({ description: "Why, in words; audited." }) })
  .strict()
  .openapi("PlanChange");

const OverrideBody = z
  .object({
    reason: Reason.openapi({ description: "Why the gates are overridden, in words; audited." }),
    approvalId: ApprovalId.optional().openapi({
      description:
        "An approved `plan.override` request for this plan, phase and action, where the governance policy names roles for it.",
    }),
  })
  .strict()
  .openapi("PlanOverride");

type Db = ReturnType<AppEnv["Variables"]["database"]>;

/** The request attributes the version's model card analyses for fairness: the plan's default. */
async function cardFairnessAttributes(db: Db, model: string, version: string): Promise<string[]> {
  const [row] = await db
    .select({ card: modelVersions.modelCard })
    .from(modelVersions)
    .innerJoin(models, eq(models.id, modelVersions.modelId))
    .where(and(eq(models.name, model), eq(modelVersions.version, version)));
  return [...(row?.card.fairnessAnalysis?.attributes ?? [])];
}

/** The latest evaluation of each plan, by plan id: one query however many plans. */
async function latestEvaluations(db: Db, ids: string[]) {
  const out = new Map<string, typeof planEvaluations.$inferSelect>();
  if (ids.length === 0) return out;
  const rows = await db
    .selectDistinctOn([planEvaluations.planId])
    .from(planEvaluations)
    .where(inArray(planEvaluations.planId, ids))
    .orderBy(planEvaluations.planId, desc(planEvaluations.id));
  for (const row of rows) out.set(row.planId, row);
  return out;
}

/**
 * The plan as it stands: from the model's rollout object for its latest
 * plan (the owner of its state), from Postgres for earlier ones. 404 when
 * the model has no such plan.
 */
async function findPlan(c: Context<AppEnv>, model: string, id: string): Promise<PlanState> {
  const live = await callObject(model, () => rolloutObject(c.env, model).plan());
  if (live?.id === id) return live;
  const [row] = await c.var
    .database()
    .select({ state: rolloutPlans.state })
    .from(rolloutPlans)
    .where(and(eq(rolloutPlans.id, id), eq(rolloutPlans.model, model)));
  if (!row) throw new ApiError("PLAN_NOT_FOUND", `Model '${model}' has no plan '${id}'`);
  return row.state;
}

/** Writes the plan's new state to Postgres now; should that fail, the rollout object's outbox does. */
async function mirrored(c: Context<AppEnv>, plan: PlanState | null): Promise<void> {
  if (!plan) return;
  try {
    await mirrorPlans(c.var.database(), [plan]);
  } catch (error) {
    console.error(
      JSON.stringify({
        level: "warn",
        event: "plans.mirror_deferred",
        plan: plan.id,
        error: String(error),
      }),
    );
  }
}

/** A refusal of the rollout object as the API answers it. */
function refused(result: Extract<RolloutChangeResult, { ok: false }>): never {
  if (result.code === "NOT_CONFIGURED") throw new ApiError("MODEL_NOT_FOUND", result.message);
  throw new ApiError(result.code, result.message);
}

/** The plan a change left, mirrored to Postgres, as the API shows it. */
async function changed(c: Context<AppEnv>, result: RolloutChangeResult) {
  if (!result.ok) refused(result);
  const plan = result.view.plan;
  if (!plan) throw new ApiError("INTERNAL_ERROR", "The rollout object returned no plan");
  await mirrored(c, plan);
  const latest = await latestEvaluations(c.var.database(), [plan.id]);
  c.header("x-airlock-state-version", String(result.view.snapshot.stateVersion));
  return planResource(plan, latest.get(plan.id) ?? null);
}

plansApi.openapi(
  adminRoute({
    permission: "rollout.write",
    method: "post",
    path: "/models/{model}/plans",
    tags: ["Plans"],
    summary: "Start a rollout plan: the challenger enters shadow",
    description:
      "The challenger runs as a shadow of the champion, then moves through the canary steps to full and guard as its gates pass (docs/rollouts.md). Every setting left out takes its default. Refused (409 PLAN_CONFLICT) while another plan is open or the model has a canary. Audited as plan.start.",
    request: {
      params: z.object({ model: ModelParam }),
      headers: IdempotencyHeader,
      body: jsonBody(CreatePlanBody),
    },
    responses: {
      201: jsonContent(Plan, "The plan, in its shadow phase"),
      ...errorResponses(400, 401, 404, 409, 413, 415, 422, 503),
    },
  }),
  async (c) => {
    const { model } = c.req.valid("param");
    const { challenger, approvalId, ...settings } = c.req.valid("json");
    const db = c.var.database();
    await findModel(db, model);
    const catalogue = await loadCatalogue(db, model);
    if (!catalogue.versions[challenger])
      throw validationError(
        [{ path: ["challenger"], message: `Model '${model}' has no version '${challenger}'` }],
        "body",
      );
    await refuseRetired(db, model, [challenger], new Map([[challenger, "challenger"]]));
    const view = await ensureConfigured(c, model);
    const champion = view.snapshot.rollout.champion;
    if (champion === null)
      throw new ApiError(
        "PLAN_CONFLICT",
        `Model '${model}' has no champion: a plan takes a challenger to the place of the champion serving now. Set one first (PUT /admin/models/${model}/rollout)`,
      );
    if (champion === challenger)
      throw validationError(
        [{ path: ["challenger"], message: `${challenger} is already the champion` }],
        "body",
      );
    const plan: PlanState = {
      id: newId("pln_"),
      model,
      challenger,
      champion,
      phases: planPhases(settings),
      thresholds: resolveThresholds(settings.thresholds),
      cycleDays: settings.cycleDays ?? DEFAULT_CYCLE_DAYS,
      shadowSampleRate: settings.shadowSampleRate ?? 1,
      guardSampleRate: settings.guardSampleRate ?? 1,
      fairnessAttributes:
        settings.fairnessAttributes ?? (await cardFairnessAttributes(db, model, challenger)),
      kpis: settings.kpis ?? [],
      status: "active",
      phaseIndex: 0,
      phaseStarts: [],
      revision: 0,
      createdBy: c.var.principal.actor,
      createdAt: new Date().toISOString(),
      endedAt: null,
      endReason: null,
      lastEvaluationId: null,
    };
    const first = plan.phases[0];
    if (!first) throw new ApiError("INTERNAL_ERROR", "A plan has at least one phase");
    const result = await governedChange(
      c,
      model,
      approvalId,
      (current) => ({
        rollout: phaseRollout(plan, first, current.rollout),
        killSwitch: current.killSwitch,
      }),
      (at) =>
        callObject(model, () =>
          rolloutObject(c.env, model).startPlan(plan, catalogue, {
            ...changeContext(c),
            ...(at === undefined ? {} : { ifMatch: at }),
          }),
        ),
    );
    return c.json(await changed(c, result), 201);
  },
);

plansApi.openapi(
  adminRoute({
    permission: "models.read",
    method: "get",
    path: "/models/{model}/plans",
    tags: ["Plans"],
    summary: "A model's rollout plans, newest first",
    request: { params: z.object({ model: ModelParam }) },
    responses: {
      200: jsonContent(z.object({ items: z.array(Plan) }), "The plans (at most 100)"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { model } = c.req.valid("param");
    const db = c.var.database();
    await findModel(db, model);
    const rows = await db
      .select({ state: rolloutPlans.state })
      .from(rolloutPlans)
      .where(eq(rolloutPlans.model, model))
      .orderBy(desc(rolloutPlans.createdAt))
      .limit(100);
    // The latest plan as its rollout object has it, should the mirror lag.
    const live = await callObject(model, () => rolloutObject(c.env, model).plan());
    const states = rows.map((row) => (live && row.state.id === live.id ? live : row.state));
    if (live && !states.some((plan) => plan.id === live.id)) states.unshift(live);
    const latest = await latestEvaluations(
      db,
      states.map((plan) => plan.id),
    );
    return c.json(
      { items: states.map((plan) => planResource(plan, latest.get(plan.id) ?? null)) },
      200,
    );
  },
);

plansApi.openapi(
  adminRoute({
    permission: "models.read",
    method: "get",
    path: "/models/{model}/plans/{id}",
    tags: ["Plans"],
    summary: "A plan: its phase, schedule and each gate's latest verdict",
    request: { params: PlanParams },
    responses: {
      200: jsonContent(Plan, "The plan"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { model, id } = c.req.valid("param");
    await findModel(c.var.database(), model);
    const plan = await findPlan(c, model, id);
    const latest = await latestEvaluations(c.var.database(), [id]);
    return c.json(planResource(plan, latest.get(id) ?? null), 200);
  },
);

plansApi.openapi(
  adminRoute({
    permission: "models.read",
    method: "get",
    path: "/models/{model}/plans/{id}/evaluations",
    tags: ["Plans"],
    summary: "A plan's evaluations, newest first, each with its evidence",
    request: {
      params: PlanParams,
      query: z.object({
        limit: z.coerce
          .number()
          .int()
          .min(1)
          .max(500)
          .default(50)
          .openapi({ param: { name: "limit", in: "query" } }),
        before: z.coerce
          .number()
          .int()
          .min(1)
          .optional()
          .openapi({
            param: { name: "before", in: "query" },
            description: "Only evaluations with a smaller id (the next page).",
          }),
      }),
    },
    responses: {
      200: jsonContent(
        z.object({ items: z.array(PlanEvaluation), next: z.number().int().nullable() }),
        "The evaluations; `next` is the `before` of the next page (null at the end)",
      ),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { model, id } = c.req.valid("param");
    const { limit, before } = c.req.valid("query");
    const db = c.var.database();
    await findModel(db, model);
    await findPlan(c, model, id);
    const rows = await db
      .select()
      .from(planEvaluations)
      .where(
        and(
          eq(planEvaluations.planId, id),
          before === undefined ? undefined : lt(planEvaluations.id, before),
        ),
      )
      .orderBy(desc(planEvaluations.id))
      .limit(limit + 1);
    const page = rows.slice(0, limit);
    return c.json(
      {
        items: page.map(evaluationResource),
        next: rows.length > limit ? (page.at(-1)?.id ?? null) : null,
      },
      200,
    );
  },
);

for (const change of ["pause", "resume", "abort"] as const) {
  const words = {
    pause:
      "A freeze: the plan does not advance (by its gates or by hand) until it is resumed; its evaluations go on. Audited as plan.pause.",
    resume: "The plan advances on its gates again. Audited as plan.resume.",
    abort:
      "The previous champion serves everything again and the challenger loses its canary share and its shadow. The plan stays as it ended, with the reason; a new attempt is a new plan. Audited as plan.abort.",
  }[change];
  plansApi.openapi(
    adminRoute({
      permission: "rollout.write",
      method: "post",
      path: `/models/{model}/plans/{id}/${change}`,
      tags: ["Plans"],
      summary: `${change[0]?.toUpperCase()}${change.slice(1)} a plan`,
      description: words,
      request: { params: PlanParams, headers: IdempotencyHeader, body: jsonBody(ChangeBody) },
      responses: {
        200: jsonContent(Plan, "The plan"),
        ...errorResponses(400, 401, 404, 409, 413, 415, 422, 503),
      },
    }),
    async (c) => {
      const { model, id } = c.req.valid("param");
      const { reason } = c.req.valid("json");
      const catalogue = await loadCatalogue(c.var.database(), model);
      await ensureConfigured(c, model);
      const result = await callObject(model, () =>
        rolloutObject(c.env, model).changePlan(id, change, reason, catalogue, changeContext(c)),
      );
      return c.json(await changed(c, result), 200);
    },
  );
}

for (const action of ["advance", "skip"] as const) {
  plansApi.openapi(
    adminRoute({
      permission: "rollout.write",
      method: "post",
      path: `/models/{model}/plans/{id}/${action}`,
      tags: ["Plans"],
      summary:
        action === "advance"
          ? "Advance a plan to its next phase by hand, whatever its gates say"
          : "Skip the phase after the current one, by hand",
      description:
        "Overrides the gates: needs the approvals the governance policy's `plan.override` names (an approved request for this plan, its current phase and this action, sent as `approvalId`). Refused while the plan is paused or the kill switch is engaged. Audited with the reason.",
      request: { params: PlanParams, headers: IdempotencyHeader, body: jsonBody(OverrideBody) },
      responses: {
        200: jsonContent(Plan, "The plan in its new phase"),
        ...errorResponses(400, 401, 404, 409, 413, 415, 422, 503),
      },
    }),
    async (c) => {
      const { model, id } = c.req.valid("param");
      const { reason, approvalId } = c.req.valid("json");
      const db = c.var.database();
      const policy = (await findModel(db, model)).governance ?? null;
      const catalogue = await loadCatalogue(db, model);
      await ensureConfigured(c, model);
      const plan = await findPlan(c, model, id);
      if (!isOpen(plan.status))
        throw new ApiError("PLAN_STALE", `Plan ${id} is ${plan.status}: it does not advance`);
      const phase = currentPhase(plan).id;
      // Leaving shadow by hand needs the definition of done, like any authority.
      if (currentPhase(plan).kind === "shadow")
        await assertReadyForAuthority(db, model, plan.challenger);
      const step = () =>
        callObject(model, () =>
          rolloutObject(c.env, model).stepPlan(
            { planId: id, phase, evaluationId: null, skip: action === "skip", reason },
            catalogue,
            changeContext(c),
          ),
        );
      const need = planOverrideNeeds(policy, plan, action);
      if (!need) return c.json(await changed(c, await step()), 200);
      if (!approvalId) throw approvalRequired(model, [need]);
      const fingerprint = await planFingerprint(plan, phase);
      const result = await withApproval(c, model, approvalId, need, fingerprint, step);
      return c.json(await changed(c, result), 200);
    },
  );
}

plansApi.openapi(
  adminRoute({
    permission: "models.read",
    model: "resource",
    method: "get",
    path: "/plans",
    tags: ["Plans"],
    summary: "Every model's latest plan, its phase and schedule",
    description:
      "For the people who run the program: one row per model with a plan (its latest), with days used and left and whether the current phase is overdue. `?status=` keeps only plans in that status.",
    request: {
      query: z.object({
        status: z
          .enum(["active", "paused", "completed", "aborted", "rolled_back"])
          .optional()
          .openapi({ param: { name: "status", in: "query" } }),
      }),
    },
    responses: {
      200: jsonContent(z.object({ items: z.array(Plan) }), "The plans, by model"),
      ...errorResponses(400, 401, 503),
    },
  }),
  async (c) => {
    const { status } = c.req.valid("query");
    const visible = modelsWith(c.var.principal, "models.read");
    if (visible !== "all" && visible.length === 0) return c.json({ items: [] }, 200);
    const db = c.var.database();
    const rows = await db
      .selectDistinctOn([rolloutPlans.model], { state: rolloutPlans.state })
      .from(rolloutPlans)
      .where(visible === "all" ? undefined : inArray(rolloutPlans.model, visible))
      .orderBy(rolloutPlans.model, desc(rolloutPlans.createdAt));
    const plans = rows
      .map((row) => row.state)
      .filter((plan) => status === undefined || plan.status === status);
    const latest = await latestEvaluations(
      db,
      plans.map((plan) => plan.id),
    );
    return c.json(
      { items: plans.map((plan) => planResource(plan, latest.get(plan.id) ?? null)) },
      200,
    );
  },
);

plansApi.openapi(
  adminRoute({
    permission: "rollout.write",
    method: "post",
    path: "/models/{model}/plans/{id}/evaluate",
    tags: ["Plans"],
    summary: "Evaluate a plan's gates now, and take the step they allow",
    description:
      "What the scheduled evaluation does after every monitoring run, for this plan now: its current phase judged on its evidence, the evaluation stored, and the step taken when every gate passed and what the step needs is there (a complete definition of done to leave shadow; an approved `plan.advance` request past the free bounds, asked for when missing).",
    request: { params: PlanParams, headers: IdempotencyHeader },
    responses: {
      200: jsonContent(
        z.object({ evaluation: PlanEvaluation, plan: Plan }),
        "The evaluation and the plan after it",
      ),
      ...errorResponses(400, 401, 404, 409, 503),
    },
  }),
  async (c) => {
    const { model, id } = c.req.valid("param");
    const db = c.var.database();
    await findModel(db, model);
    await ensureConfigured(c, model);
    const plan = await findPlan(c, model, id);
    if (!isOpen(plan.status))
      throw new ApiError("PLAN_STALE", `Plan ${id} is ${plan.status}: it is no longer evaluated`);
    const report = await evaluateOpenPlans(db, c.env, new Date(), { planId: id });
    const failed = report.failed[0];
    if (failed)
      throw new ApiError("JOB_FAILED", `Plan ${id} could not be evaluated: ${failed.error}`);
    const done = report.evaluated[0];
    if (!done) throw new ApiError("PLAN_STALE", `Plan ${id} is no longer open`);
    const [row] = await db
      .select()
      .from(planEvaluations)
      .where(eq(planEvaluations.id, done.evaluationId));
    if (!row) throw new ApiError("INTERNAL_ERROR", "The evaluation was not stored");
    const after = await findPlan(c, model, id);
    return c.json({ evaluation: evaluationResource(row), plan: planResource(after, row) }, 200);
  },
);
