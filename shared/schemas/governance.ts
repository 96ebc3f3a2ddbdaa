import { z } from "@hono/zod-openapi";
import {
  APPROVER_ROLES,
  GOVERNED_ACTION_NAMES,
  GOVERNED_ACTIONS,
  RISK_TIERS,
} from "../governance/policy";
import { Timestamp } from "./common";

const Approvers = z
  .array(z.enum(APPROVER_ROLES))
  .max(4)
  .openapi({ description: "One approval from a distinct person holding each role listed." });

const approvalShape = Object.fromEntries(
  GOVERNED_ACTION_NAMES.map((action) => [
    action,
    Approvers.optional().openapi({ description: GOVERNED_ACTIONS[action] }),
  ]),
) as Record<(typeof GOVERNED_ACTION_NAMES)[number], z.ZodOptional<typeof Approvers>>;

/** A policy: a tier, and any changes to its defaults. */
export const PolicyBody = z
  .object({
    tier: z.enum(RISK_TIERS),
    freeCanaryPercent: z.number().min(0).max(100).optional().openapi({
      description: "A canary at or below this share needs no approval (tier default otherwise).",
    }),
    freeShadowSampleRate: z.number().min(0).max(1).optional().openapi({
      description: "A shadow at or below this sample rate needs no approval.",
    }),
    approvals: z.object(approvalShape).strict().optional().openapi({
      description: "Per action, the roles whose approval it needs, replacing the tier's default.",
    }),
  })
  .strict()
  .openapi("GovernancePolicy");

/** PUT body: the policy, and the approved request a loosening change needs. */
export const SetGovernanceBody = PolicyBody.extend({
  approvalId: z.string().min(1).max(64).optional().openapi({
    description:
      "An approved `policy.change` request for exactly this policy: needed when the change loosens a policy whose `policy.change` names roles.",
  }),
})
  .strict()
  .openapi("SetGovernance");

export const Governance = z
  .object({
    model: z.string(),
    governed: z.boolean().openapi({
      description: "False until a policy is set: no change of this model needs an approval yet.",
    }),
    tier: z.enum(RISK_TIERS).nullable(),
    freeCanaryPercent: z.number().nullable(),
    freeShadowSampleRate: z.number().nullable(),
    approvals: z.record(z.string(), Approvers).nullable(),
    updatedAt: Timestamp.nullable(),
    updatedBy: z.string().nullable(),
  })
  .openapi("Governance");
