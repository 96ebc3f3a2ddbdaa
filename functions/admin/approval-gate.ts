import { and, eq, sql } from "drizzle-orm";
import type { Context } from "hono";
import type { RolloutChangeResult } from "../../durable-objects/model-rollout";
import { canonicalJson } from "../../shared/crypto";
import type { Transaction } from "../../shared/db/client";
import { approvals, auditLog } from "../../shared/db/schema";
import { ApiError } from "../../shared/errors";
import { versionsGainingAuthority } from "../../shared/governance/card";
import {
  approvalsNeeded,
  type NeededApproval,
  type RolloutState,
  rolloutFingerprint,
} from "../../shared/governance/policy";
import { roleWords } from "../../shared/notices/approval";
import { createNotice } from "../alerts/notices";
import type { AppEnv } from "../app-env";
import { ensureConfigured } from "../rollout/object";
import { approvalNotice } from "./approvals";
import { auditRow, queueNotices } from "./change";
import { findModel } from "./models";
import { refuseUnready } from "./readiness";

/** A change refused by the rollout object: it rolls the consumption back. */
class RefusedChange extends Error {
  constructor(readonly result: RolloutChangeResult) {
    super("the rollout object refused the change");
  }
}

/**
 * Applies a rollout change under the model's governance policy. A version
 * the change gives authority (a new champion, a canary from no share)
 * must meet its definition of done first (409 MODEL_CARD_INCOMPLETE). A change
 * that gives the model authority the policy governs needs `approvalId`: an
 * approved request for exactly that change, made while the rollout was as
 * it is now. The request is consumed once, in the same transaction as the
 * change is made (a change the rollout object refuses leaves it approved),
 * and the rollout object is told to apply the change only at the state the
 * request was checked against.
 */
export async function governedChange(
  c: Context<AppEnv>,
  model: string,
  approvalId: string | undefined,
  proposed: (current: RolloutState) => RolloutState,
  apply: (ifMatch: number | undefined) => Promise<RolloutChangeResult>,
): Promise<RolloutChangeResult> {
  const db = c.var.database();
  const row = await findModel(db, model);
  const policy = row.governance;
  if (!policy) return apply(undefined);
  const view = await ensureConfigured(c, model);
  const current: RolloutState = {
    rollout: view.snapshot.rollout,
    killSwitch: view.snapshot.killSwitch,
  };
  const next = proposed(current);
  const gaining = versionsGainingAuthority(current.rollout, next.rollout);
  await refuseUnready(db, row, gaining);
  const needed = approvalsNeeded(policy, current, next);
  // A version checked for authority gets it only at the state it was checked against.
  if (needed.length === 0)
    return apply(gaining.length > 0 ? view.snapshot.stateVersion : undefined);
  if (!approvalId || needed.length > 1) throw approvalRequired(model, needed);
  const [need] = needed as [NeededApproval];
  return withApproval(c, model, approvalId, need, rolloutFingerprint(current), () =>
    apply(view.snapshot.stateVersion),
  );
}

/**
 * Makes a change with the approval it needs: the approved request is
 * consumed in one transaction with the change's trail (a change the
 * rollout object refuses leaves it approved, and its refusal is returned),
 * and the notices go out once it commits.
 */
export async function withApproval(
  c: Context<AppEnv>,
  model: string,
  approvalId: string,
  need: NeededApproval,
  fingerprint: string,
  apply: () => Promise<RolloutChangeResult>,
): Promise<RolloutChangeResult> {
  const deliveries: number[] = [];
  try {
    const result = await c.var.database().transaction(async (tx) => {
      const consumed = await consumeApproval(c, tx, model, approvalId, need, fingerprint);
      const result = await apply();
      if (!result.ok) throw new RefusedChange(result);
      deliveries.push(
        ...(await recordConsumption(
          c,
          tx,
          consumed,
          need.reason,
          result.view.snapshot.stateVersion,
        )),
      );
      return result;
    });
    queueNotices(c, deliveries);
    return result;
  } catch (error) {
    if (error instanceof RefusedChange) return error.result;
    throw error;
  }
}

type ApprovalRow = typeof approvals.$inferSelect;

/**
 * Takes an approved request for exactly this change, made while the model
 * was as it is now (`fingerprint`: its rollout, or its policy), and marks it
 * consumed, in the caller's transaction: the change that follows commits
 * with its consumption or not at all. Refuses, saying why, a request that is
 * missing, used, pending, rejected, expired, for another change, or stale.
 */
export async function consumeApproval(
  c: Context<AppEnv>,
  tx: Transaction,
  model: string,
  approvalId: string,
  need: Pick<NeededApproval, "action" | "target" | "reason">,
  fingerprint: string,
): Promise<ApprovalRow> {
  const [row] = await tx
    .select()
    .from(approvals)
    .where(and(eq(approvals.id, approvalId), eq(approvals.model, model)))
    .for("update");
  if (!row)
    throw new ApiError("APPROVAL_NOT_FOUND", `Model '${model}' has no approval '${approvalId}'`);
  if (row.status === "consumed")
    throw new ApiError(
      "APPROVAL_CONSUMED",
      `Approval '${approvalId}' was used already (${row.consumedAt?.toISOString()}); ask again`,
    );
  const expired = row.expiresAt.getTime() <= Date.now();
  if (row.status !== "approved" || expired) {
    throw new ApiError(
      row.status === "pending" && !expired ? "APPROVAL_REQUIRED" : "APPROVAL_NOT_PENDING",
      row.status === "pending" && !expired
        ? `Approval '${approvalId}' is still pending: it needs ${roleWords(row.roles)}`
        : `Approval '${approvalId}' is ${expired && row.status !== "rejected" ? "expired" : row.status}; ask again`,
    );
  }
  if (row.action !== need.action || canonicalJson(row.target) !== canonicalJson(need.target)) {
    throw new ApiError(
      "APPROVAL_MISMATCH",
      `Approval '${approvalId}' is for ${row.action} ${canonicalJson(row.target)}, and this change ${need.reason} (${need.action} ${canonicalJson(need.target)})`,
    );
  }
  if (row.fingerprint !== fingerprint) {
    throw new ApiError(
      "APPROVAL_STALE",
      need.action === "policy.change"
        ? `The governance policy of '${model}' changed since approval '${approvalId}' was asked for; ask again for the change as it stands now`
        : need.action === "data_policy.change"
          ? `The data policy of '${model}' changed since approval '${approvalId}' was asked for; ask again for the change as it stands now`
          : need.action === "plan.advance" || need.action === "plan.override"
            ? `The plan's versions, gates or thresholds are not those approval '${approvalId}' was asked for; ask again for the plan as it stands now`
            : `The rollout of '${model}' changed since approval '${approvalId}' was asked for; ask again for the change as it stands now`,
    );
  }
  const [consumed] = await tx
    .update(approvals)
    .set({ status: "consumed", consumedAt: sql`now()`, consumedBy: c.var.principal.actor })
    .where(eq(approvals.id, approvalId))
    .returning();
  if (!consumed) throw new ApiError("APPROVAL_NOT_FOUND", `Approval '${approvalId}' is gone`);
  return consumed;
}

/**
 * The trail and the notice of a consumed approval, in the transaction of
 * the change it allowed; the notice's deliveries, to queue after the commit.
 */
export async function recordConsumption(
  c: Context<AppEnv>,
  tx: Transaction,
  consumed: ApprovalRow,
  change: string,
  stateVersion: number | null,
): Promise<number[]> {
  await tx.insert(auditLog).values(
    auditRow(c, {
      action: "approval.consume",
      targetType: "approval",
      target: `models/${consumed.model}/approvals/${consumed.id}`,
      before: { status: "approved" },
      after: { status: "consumed", stateVersion, change },
    }),
  );
  return createNotice(
    tx,
    approvalNotice("approval.applied", consumed, [], {
      decision: null,
      applied: { by: c.var.principal.actor, stateVersion },
    }),
  );
}

export function approvalRequired(model: string, needed: NeededApproval[]) {
  const what = needed.map((n) => `${n.reason}, which needs ${roleWords(n.roles)}`).join("; ");
  const message =
    needed.length > 1
      ? `This change of '${model}' needs ${needed.length} approvals (${what}): make one change per approved request`
      : `This change of '${model}' needs approval: it ${what}. Ask with POST /admin/models/${model}/approvals, then send the approved request's id as approvalId`;
  return new ApiError("APPROVAL_REQUIRED", message, {
    details: needed.map((n) => ({ path: n.action, message: `needs ${roleWords(n.roles)}` })),
  });
}
