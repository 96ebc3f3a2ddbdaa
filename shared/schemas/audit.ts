import { z } from "@hono/zod-openapi";
import { Timestamp } from "./common";

export const AuditEntry = z
  .object({
    id: z
      .string()
      .openapi({ description: "The row's storage id; `seq` is its place in the trail." }),
    eventId: z.string(),
    source: z.enum(["api", "rollout", "system"]).openapi({
      description:
        "api: an admin route; rollout: a model's rollout object; system: the chain itself (its genesis row) and Airlock's jobs.",
    }),
    actor: z.string().openapi({
      description:
        "Who made the change: a principal's id (`prn_…`, see GET /admin/principals/{id}), `admin:bootstrap`, or one of Airlock's own jobs. Rows from before principals existed say `admin:bootstrap`.",
    }),
    auth: z
      .object({
        method: z.enum(["token", "sso", "bootstrap"]),
        tokenId: z.string().nullable().openapi({ description: "The personal access token used." }),
      })
      .nullable()
      .openapi({
        description: "How the actor signed in; null for Airlock's own jobs and older rows.",
      }),
    action: z.string().openapi({ example: "model.create" }),
    targetType: z.string().openapi({ example: "model" }),
    target: z.string().openapi({ example: "models/fraud-detector" }),
    before: z.unknown().nullable(),
    after: z.unknown().nullable(),
    at: Timestamp,
    requestId: z.string().nullable(),
    seq: z.number().int().nullable().openapi({
      description:
        "Its place in the hash chain, gapless from 1 (the genesis row); null for rows written before the chain, which the genesis row commits to.",
    }),
    hash: z.string().nullable().openapi({
      description:
        "SHA-256 over the previous row's hash and this row's content (GET /admin/audit/verify).",
    }),
  })
  .openapi("AuditEntry");
export type AuditEntry = z.infer<typeof AuditEntry>;
