import { and, eq } from "drizzle-orm";
import type { Context } from "hono";
import type { Transaction } from "../../shared/db/client";
import { auditLog, idempotencyKeys } from "../../shared/db/schema";
import { enqueueNotices } from "../alerts/evaluate";
import { createNotice, type NoticeDraft } from "../alerts/notices";
import type { AppEnv } from "../app-env";
import {
  CHECKPOINT_EVERY_ROWS,
  checkpointInBackground,
  crossesCheckpoint,
} from "../audit/checkpoints";

export interface AuditRecord {
  action: string;
  targetType: string;
  target: string;
  before: unknown;
  after: unknown;
}

export interface AuditedResponse<T> {
  status: 200 | 201;
  body: T;
  audit: AuditRecord[];
  /** What an idempotent replay returns, when it must differ (e.g. without a secret shown once). */
  replayBody?: unknown;
  /** Notices of the change, created with it and queued once it commits. */
  notices?: NoticeDraft[];
}

/**
 * Runs an admin change in one transaction with its audit rows, its notices
 * and, when the request carries an Idempotency-Key, the response a retry
 * will replay. The change, its trail, its notices and its replay commit
 * together or not at all; the notices are queued after the commit (a lost
 * queue send is sent again by the next alert run).
 */
export async function runChange<T>(
  c: Context<AppEnv>,
  change: (tx: Transaction) => Promise<AuditedResponse<T>>,
): Promise<{ status: 200 | 201; body: T }> {
  const db = c.var.database();
  const reservation = c.var.idempotency;
  const deliveries: number[] = [];
  let checkpointDue = false;
  const result = await db.transaction(async (tx) => {
    const outcome = await change(tx);
    if (outcome.audit.length > 0) {
      const written = await tx
        .insert(auditLog)
        .values(outcome.audit.map((entry) => auditRow(c, entry)))
        .returning({ seq: auditLog.seq });
      checkpointDue = crossesCheckpoint(written.map((row) => row.seq));
    }
    for (const notice of outcome.notices ?? [])
      deliveries.push(...(await createNotice(tx, notice)));
    if (reservation) {
      await tx
        .update(idempotencyKeys)
        .set({ responseStatus: outcome.status, responseBody: outcome.replayBody ?? outcome.body })
        .where(
          and(
            eq(idempotencyKeys.principal, reservation.principal),
            eq(idempotencyKeys.key, reservation.key),
          ),
        );
    }
    return outcome;
  });
  if (reservation) reservation.stored = true;
  queueNotices(c, deliveries);
  if (checkpointDue) c.executionCtx.waitUntil(checkpointInBackground(c.env, CHECKPOINT_EVERY_ROWS));
  return { status: result.status, body: result.body };
}

/** Queues committed notices' deliveries without holding up the response. */
export function queueNotices(c: Context<AppEnv>, deliveries: number[]): void {
  if (deliveries.length > 0)
    c.executionCtx.waitUntil(enqueueNotices(c.env.ALERT_DELIVERIES, deliveries));
}

/** The audit row of one entry: who did it (the principal and how it signed in), and when. */
export function auditRow(c: Context<AppEnv>, entry: AuditRecord) {
  const { principal } = c.var;
  return {
    eventId: crypto.randomUUID(),
    source: "api" as const,
    actor: principal.actor,
    authMethod: principal.auth.method,
    authTokenId: principal.auth.method === "token" ? principal.auth.tokenId : null,
    action: entry.action,
    targetType: entry.targetType,
    target: entry.target,
    before: entry.before ?? null,
    after: entry.after ?? null,
    requestId: c.var.requestId,
  };
}

/**
 * Records a read of governed data (prediction inputs, labels, outcomes,
 * dead letters) in the audit trail before the data is returned: a read that
 * cannot be recorded is not served.
 */
export async function auditRead(c: Context<AppEnv>, entry: Omit<AuditRecord, "before">) {
  await c.var
    .database()
    .insert(auditLog)
    .values(auditRow(c, { ...entry, before: null }));
}

/** Who makes a change the rollout object records: its history and its audit rows name them. */
export function changeContext(c: Context<AppEnv>) {
  const { principal } = c.var;
  return {
    actor: principal.actor,
    auth: {
      method: principal.auth.method,
      tokenId: principal.auth.method === "token" ? principal.auth.tokenId : undefined,
    },
    requestId: c.var.requestId,
  };
}
