import { z } from "@hono/zod-openapi";
import { Timestamp } from "./common";

export const AuditEntry = z
  .object({
    id: z.string().openapi({ description: "Position in the trail; larger is newer." }),
    eventId: z.string(),
    source: z.enum(["api", "rollout"]),
    actor: z.string(),
    action: z.string().openapi({ example: "model.create" }),
    targetType: z.string().openapi({ example: "model" }),
    target: z.string().openapi({ example: "models/fraud-detector" }),
    before: z.unknown().nullable(),
    after: z.unknown().nullable(),
    at: Timestamp,
    requestId: z.string().nullable(),
  })
  .openapi("AuditEntry");
export type AuditEntry = z.infer<typeof AuditEntry>;
