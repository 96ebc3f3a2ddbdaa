import { z } from "@hono/zod-openapi";
import { ModelName, Timestamp } from "./common";

export const CreateKeyBody = z
  .object({
    name: z.string().trim().min(1).max(200).openapi({ example: "checkout-service" }),
    models: z.array(ModelName).min(1).max(100),
    expiresAt: Timestamp.optional().openapi({
      description: "When the key stops working; none if absent.",
    }),
  })
  .strict()
  .superRefine((body, ctx) => {
    const seen = new Set<string>();
    for (const [i, model] of body.models.entries()) {
      if (seen.has(model))
        ctx.addIssue({ code: "custom", path: ["models", i], message: `repeats '${model}'` });
      seen.add(model);
    }
  })
  .openapi("CreateApiKey");
export type CreateKeyBody = z.infer<typeof CreateKeyBody>;

export const ApiKey = z
  .object({
    id: z.string(),
    name: z.string(),
    prefix: z
      .string()
      .openapi({ description: "The key's first characters, to recognise it in logs and lists." }),
    models: z.array(z.string()),
    createdAt: Timestamp,
    createdBy: z.string(),
    expiresAt: Timestamp.nullable(),
    revokedAt: Timestamp.nullable(),
  })
  .openapi("ApiKey");
export type ApiKey = z.infer<typeof ApiKey>;

export const CreatedApiKey = ApiKey.extend({
  key: z
    .string()
    .openapi({ description: "The key itself: shown this once, stored only as a hash." }),
}).openapi("CreatedApiKey");
