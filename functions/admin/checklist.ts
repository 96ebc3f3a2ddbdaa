import { z } from "@hono/zod-openapi";
import { and, eq, sql } from "drizzle-orm";
import type { Queryable } from "../../shared/db/client";
import { modelVersions } from "../../shared/db/schema";
import { ApiError, validationError } from "../../shared/errors";
import {
  buildChecklist,
  type ChecklistFacts,
  type ConsumedApproval,
  type PlanFacts,
  RMF_FUNCTIONS,
} from "../../shared/governance/checklist";
import { VersionLabel } from "../../shared/schemas/common";
import { apiRouter } from "../router";
import { findModel, modelParams } from "./models";
import { errorResponses, jsonContent } from "./openapi";
import { readinessOf } from "./readiness";
import { adminRoute } from "./route";

export const checklistApi = apiRouter();

const Evidence = z
  .object({
    kind: z.enum(["card_section", "setting", "approval", "audit", "evaluation", "monitoring"]),
    ref: z.string().openapi({
      description:
        "What to look up: a path (`versions/v2/modelCard.fairnessAnalysis`, `models/m/governance`), an approval or evaluation id, or an audit row's `seq`.",
    }),
    detail: z.string().optional(),
  })
  .openapi("ChecklistEvidence");

const ChecklistItem = z
  .object({
    id: z.string(),
    function: z.enum(RMF_FUNCTIONS),
    title: z.string(),
    state: z.enum(["met", "unmet", "not_applicable"]),
    evidence: z.array(Evidence),
    note: z.string().optional(),
  })
  .openapi("ChecklistItem");

const Checklist = z
  .object({
    model: z.string(),
    version: z.string(),
    governed: z.boolean(),
    riskTier: z.enum(["low", "medium", "high"]).nullable(),
    readyForAuthority: z.boolean().openapi({
      description:
        "Whether the version's definition of done is met: what a governed model's version needs to leave shadow.",
    }),
    functions: z.array(
      z.object({ function: z.enum(RMF_FUNCTIONS), items: z.array(ChecklistItem) }),
    ),
  })
  .openapi("Checklist");

/** The `seq` of the latest audit row of `action` on `target` (null: none in the chain). */
async function latestSeq(db: Queryable, target: string, action: string): Promise<number | null> {
  const { rows } = await db.execute<{ seq: string | null }>(sql`
    SELECT max(seq) AS seq FROM audit_log WHERE target = ${target} AND action = ${action}`);
  return rows[0]?.seq == null ? null : Number(rows[0].seq);
}

async function consumedApprovals(db: Queryable, model: string): Promise<ConsumedApproval[]> {
  const { rows } = await db.execute<{
    id: string;
    action: string;
    target: Record<string, string | number | null>;
    consumed_at: string;
    consumed_by: string | null;
    seq: string | null;
  }>(sql`
    SELECT a.id, a.action, a.target, a.consumed_at, a.consumed_by, l.seq
    FROM approvals a
    LEFT JOIN audit_log l
      ON l.target = 'models/' || a.model || '/approvals/' || a.id AND l.action = 'approval.consume'
    WHERE a.model = ${model} AND a.status = 'consumed'
    ORDER BY a.consumed_at, a.id`);
  return rows.map((row) => ({
    id: row.id,
    action: row.action,
    target: row.target,
    consumedAt: new Date(row.consumed_at).toISOString(),
    consumedBy: row.consumed_by,
    auditSeq: row.seq == null ? null : Number(row.seq),
  }));
}

/**
 * The latest rollout plan of the version as challenger: its state, its
 * latest evaluation (with the audit row of the step it made, if it made
 * one) and the approvals consumed for its steps.
 */
async function planFacts(db: Queryable, model: string, version: string): Promise<PlanFacts | null> {
  const { rows: plans } = await db.execute<{ id: string; status: string }>(sql`
    SELECT id, status FROM rollout_plans WHERE model = ${model} AND challenger = ${version}
    ORDER BY created_at DESC LIMIT 1`);
  const plan = plans[0];
  if (!plan) return null;
  const { rows: evaluations } = await db.execute<{
    id: string;
    verdict: string;
    at: string;
    seq: string | null;
  }>(sql`
    SELECT e.id::text AS id, e.verdict, e.at, l.seq
    FROM plan_evaluations e
    LEFT JOIN audit_log l ON e.state_version IS NOT NULL
      AND l.event_id = 'rollout:' || e.model || ':' || e.state_version
    WHERE e.plan_id = ${plan.id} ORDER BY e.id DESC LIMIT 1`);
  const latest = evaluations[0];
  const approvals = (await consumedApprovals(db, model)).filter(
    (approval) => approval.action.startsWith("plan.") && approval.target.plan === plan.id,
  );
  return {
    id: plan.id,
    state: plan.status,
    latestEvaluation: latest
      ? {
          id: latest.id,
          verdict: latest.verdict,
          at: new Date(latest.at).toISOString(),
          auditSeq: latest.seq == null ? null : Number(latest.seq),
        }
      : null,
    approvals,
  };
}

async function latestMonitoring(db: Queryable, model: string, version: string) {
  const { rows } = await db.execute<{
    window_start: string;
    window_seconds: number;
    results: number;
    alerting: number;
  }>(sql`
    SELECT window_start, window_seconds, count(*)::int AS results,
      (count(*) FILTER (WHERE status = 'alert'))::int AS alerting
    FROM monitoring_results WHERE model = ${model} AND version = ${version}
    GROUP BY window_start, window_seconds
    ORDER BY window_start DESC, window_seconds LIMIT 1`);
  const [row] = rows;
  return row
    ? {
        windowStart: new Date(row.window_start).toISOString(),
        windowSeconds: Number(row.window_seconds),
        results: Number(row.results),
        alerting: Number(row.alerting),
      }
    : null;
}

checklistApi.openapi(
  adminRoute({
    permission: "models.read",
    method: "get",
    path: "/{model}/checklist",
    tags: ["Governance"],
    summary: "The governance checklist of a version, by NIST AI RMF function, with its evidence",
    description:
      "Items grouped by function (Govern, Map, Measure, Manage), each met, unmet or not applicable, with the evidence it rests on: card sections at the card's revision, settings, approvals and the audit rows (`seq`) that record them, monitoring results. Without `version`, the champion's.",
    request: {
      params: modelParams,
      query: z.object({
        version: VersionLabel.optional().openapi({
          param: { name: "version", in: "query" },
          description: "The version (default: the champion).",
        }),
      }),
    },
    responses: {
      200: jsonContent(Checklist, "The checklist"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { model: name } = c.req.valid("param");
    const db = c.var.database();
    const model = await findModel(db, name);
    let version = c.req.valid("query").version;
    if (version === undefined) {
      const [champion] = await db
        .select({ version: modelVersions.version })
        .from(modelVersions)
        .where(and(eq(modelVersions.modelId, model.id), eq(modelVersions.status, "champion")));
      if (!champion)
        throw validationError(
          [{ path: ["version"], message: `is required: '${name}' has no champion` }],
          "query",
        );
      version = champion.version;
    }
    const readiness = await readinessOf(db, model, version);
    if (!readiness)
      throw new ApiError("VERSION_NOT_FOUND", `Model '${name}' has no version '${version}'`);
    const [head] = (
      await db.execute<{ seq: string; hash: string }>(
        sql`SELECT seq, hash FROM audit_chain_head WHERE id = 1`,
      )
    ).rows;
    const governance = model.governance;
    const facts: ChecklistFacts = {
      model: name,
      version,
      readiness: readiness.items,
      card: { revision: readiness.cardRevision, sha256: readiness.cardSha256 },
      governance: governance
        ? {
            tier: governance.tier,
            approvals: governance.approvals,
            updatedBy: governance.updatedBy,
            updatedAt: governance.updatedAt,
            auditSeq: await latestSeq(db, `models/${name}`, "model.governance.update"),
          }
        : null,
      dataPolicy: model.dataPolicy
        ? { auditSeq: await latestSeq(db, `models/${name}/data-policy`, "data_policy.update") }
        : null,
      baselineAuditSeq: await latestSeq(
        db,
        `models/${name}/versions/${version}`,
        "version.baseline.set",
      ),
      destinationIds: readiness.destinationIds,
      approvals: await consumedApprovals(db, name),
      monitoring: await latestMonitoring(db, name, version),
      auditHead: head ? { seq: Number(head.seq), hash: head.hash } : null,
      plan: await planFacts(db, name, version),
    };
    return c.json(buildChecklist(facts), 200);
  },
);
