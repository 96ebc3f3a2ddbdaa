import { z } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import type { Context } from "hono";
import { ApiError } from "../../shared/errors";
import { Timestamp } from "../../shared/schemas/common";
import type { AppEnv } from "../app-env";
import { RolloutAtStateSchema, rolloutAtState } from "./rollout";

const AuditRef = z.object({
  seq: z.number().int().nullable(),
  action: z.string(),
  actor: z.string(),
  at: Timestamp,
});

export const ProvenanceSchema = z
  .object({
    stateVersion: z.number().int(),
    servedBy: z.object({ version: z.string(), role: z.string() }),
    rollout: RolloutAtStateSchema.nullable().openapi({
      description:
        "The rollout and kill switch in force at that state, who set them and the change's audit row; null if the model's rollout object no longer holds that state.",
    }),
    approvals: z
      .array(
        z.object({
          id: z.string(),
          action: z.string(),
          target: z.record(z.string(), z.unknown()),
          change: z.string().nullable(),
          reason: z.string(),
          requestedBy: z.string(),
          requestedAt: Timestamp,
          decisions: z.array(
            z.object({
              by: z.string(),
              role: z.string().nullable(),
              decision: z.enum(["approve", "reject"]),
              comment: z.string().nullable(),
              at: Timestamp,
            }),
          ),
          appliedBy: z.string().nullable(),
          appliedAt: Timestamp.nullable(),
          appliedStateVersion: z.number().int(),
          audit: z.array(AuditRef).openapi({
            description:
              "The request's rows in the audit trail, in order: asked, decided, applied.",
          }),
        }),
      )
      .openapi({
        description:
          "For each governed part of the rollout in force (champion, canary, shadows, a released kill switch), the latest approved change at or before that state that set it.",
      }),
    version: z
      .object({
        version: z.string(),
        upstreamSha256: z.string().openapi({
          description: "What serves: SHA-256 of the upstream definition (a builtin's artefact).",
        }),
        cardRevision: z.number().int().nullable().openapi({
          description:
            "The model card revision in force when the prediction was made (`GET …/versions/{version}/card?revision=n`).",
        }),
        modelCardSha256: z.string().nullable().openapi({
          description: "That revision's SHA-256 (over the card's text as stored).",
        }),
      })
      .nullable(),
  })
  .openapi("PredictionProvenance");

export type Provenance = z.infer<typeof ProvenanceSchema>;

interface ConsumedApproval extends Record<string, unknown> {
  id: string;
  action: string;
  target: Record<string, string | number | null>;
  change: string | null;
  reason: string;
  requested_by: string;
  requested_at: string;
  consumed_by: string | null;
  consumed_at: string | null;
  applied_state: string | null;
  decisions: {
    by: string;
    role: string | null;
    decision: "approve" | "reject";
    comment: string | null;
    at: string;
  }[];
  audit: { seq: number | null; action: string; actor: string; at: string }[];
}

const iso = (value: string | null) => (value === null ? null : new Date(value).toISOString());

/**
 * What stood behind a result: the version that served it and in which
 * role, the rollout in force at its state (from the model's rollout
 * object, which keeps every state), the approvals behind that rollout with
 * their people and times, the version's identity hashes, and the audit rows
 * of each, to check against the chain.
 */
export async function provenanceOf(
  c: Context<AppEnv>,
  model: string,
  served: { version: string; role: string; stateVersion: number; createdAt: string },
): Promise<Provenance> {
  const db = c.var.database();
  let rollout: Provenance["rollout"] = null;
  try {
    rollout = await rolloutAtState(c, model, served.stateVersion);
  } catch (error) {
    if (!(error instanceof ApiError && error.code === "STATE_NOT_FOUND")) throw error;
  }
  const { rows: consumed } = await db.execute<ConsumedApproval>(sql`
    SELECT ap.id, ap.action, ap.target, ap.change, ap.reason, ap.requested_by, ap.requested_at,
      ap.consumed_by, ap.consumed_at,
      (SELECT (a.after->>'stateVersion')::bigint FROM audit_log a
        WHERE a.target = 'models/' || ap.model || '/approvals/' || ap.id
          AND a.action = 'approval.consume' LIMIT 1) AS applied_state,
      coalesce((SELECT jsonb_agg(jsonb_build_object('by', d.principal_id, 'role', d.role,
          'decision', d.decision, 'comment', d.comment, 'at', d.at) ORDER BY d.at)
        FROM approval_decisions d WHERE d.approval_id = ap.id), '[]'::jsonb) AS decisions,
      coalesce((SELECT jsonb_agg(jsonb_build_object('seq', a.seq, 'action', a.action,
          'actor', a.actor, 'at', a.at) ORDER BY a.seq)
        FROM audit_log a WHERE a.target = 'models/' || ap.model || '/approvals/' || ap.id),
        '[]'::jsonb) AS audit
    FROM approvals ap
    WHERE ap.model = ${model} AND ap.status = 'consumed'
    ORDER BY ap.consumed_at DESC`);
  const applied = consumed.filter(
    (row) => row.applied_state !== null && Number(row.applied_state) <= served.stateVersion,
  );
  const behind = rollout ? approvalsBehind(rollout, applied) : [];
  // The card revision set last before the prediction was made was the one in force.
  const [version] = (
    await db.execute<{
      upstream_sha256: string;
      revision: number | null;
      sha256: string | null;
    }>(sql`
      SELECT v.upstream_sha256, r.revision, r.sha256 FROM model_versions v
      JOIN models m ON m.id = v.model_id
      LEFT JOIN LATERAL (
        SELECT revision, sha256 FROM model_card_revisions
        WHERE version_id = v.id AND created_at <= ${served.createdAt}::timestamptz
        ORDER BY revision DESC LIMIT 1) r ON true
      WHERE m.name = ${model} AND v.version = ${served.version}`)
  ).rows;
  return {
    stateVersion: served.stateVersion,
    servedBy: { version: served.version, role: served.role },
    rollout,
    approvals: behind.map((row) => ({
      id: row.id,
      action: row.action,
      target: row.target,
      change: row.change,
      reason: row.reason,
      requestedBy: row.requested_by,
      requestedAt: iso(row.requested_at) as string,
      decisions: row.decisions.map((d) => ({ ...d, at: iso(d.at) as string })),
      appliedBy: row.consumed_by,
      appliedAt: iso(row.consumed_at),
      appliedStateVersion: Number(row.applied_state),
      audit: row.audit.map((a) => ({ ...a, at: iso(a.at) as string })),
    })),
    version: version
      ? {
          version: served.version,
          upstreamSha256: version.upstream_sha256,
          cardRevision: version.revision === null ? null : Number(version.revision),
          modelCardSha256: version.sha256,
        }
      : null,
  };
}

/**
 * The latest approval applied at or before the state (`applied`, newest
 * first) that set each governed part of its rollout: the champion, the
 * canary at its share or above, each shadow at its rate or above, and the
 * release of a kill switch that stands released.
 */
function approvalsBehind(
  state: z.infer<typeof RolloutAtStateSchema>,
  applied: ConsumedApproval[],
): ConsumedApproval[] {
  const found = new Map<string, ConsumedApproval>();
  const take = (part: string, test: (row: ConsumedApproval) => boolean) => {
    const row = applied.find(test);
    if (row) found.set(part, row);
  };
  if (state.champion)
    take("champion", (r) => r.action === "champion.change" && r.target.to === state.champion);
  const canary = state.canary;
  if (canary)
    take(
      "canary",
      (r) =>
        r.action === "canary.raise" &&
        r.target.version === canary.version &&
        Number(r.target.percent) >= canary.percent,
    );
  for (const shadow of state.shadows)
    take(
      `shadow:${shadow.version}`,
      (r) =>
        r.action === "shadow.add" &&
        r.target.version === shadow.version &&
        Number(r.target.sampleRate) >= shadow.sampleRate,
    );
  const released = state.killSwitchChangedAt;
  if (!state.killSwitch.engaged && released !== null)
    take(
      "killswitch",
      (r) => r.action === "killswitch.release" && Number(r.applied_state) === released,
    );
  return [...new Set(found.values())];
}
