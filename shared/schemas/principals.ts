import { z } from "@hono/zod-openapi";
import { GLOBAL_ROLES, PERMISSION_NAMES } from "../auth/permissions";
import { ModelName, Timestamp } from "./common";

/** Longest life of a personal access token: a year. */
export const MAX_TOKEN_DAYS = 366;

export const Grant = z
  .discriminatedUnion("role", [
    z.object({ role: z.enum(GLOBAL_ROLES) }).strict(),
    z.object({ role: z.literal("owner"), model: ModelName }).strict(),
  ])
  .openapi("Grant", {
    description:
      'A global role (`{"role": "operator"}`) or ownership of one model (`{"role": "owner", "model": "fraud-detector"}`).',
  });
export type GrantBody = z.infer<typeof Grant>;

const Email = z
  .email()
  .max(254)
  .transform((email) => email.trim().toLowerCase())
  .openapi({ example: "dana@example.com" });

export const CreatePrincipalBody = z
  .object({
    kind: z.enum(["person", "service"]),
    displayName: z.string().trim().min(1).max(200).openapi({ example: "Dana Reyes" }),
    email: Email.optional().openapi({
      description:
        "A person's sign-in email: required for a person, never for a service account. Single sign-on finds the person by it.",
    }),
    accessCommonName: z.string().trim().min(1).max(200).optional().openapi({
      description:
        "A service account's Cloudflare Access service token (its Client ID, the JWT's `common_name`), if it signs in through Access.",
    }),
    grants: z.array(Grant).max(100).optional(),
  })
  .strict()
  .superRefine((body, ctx) => {
    if (body.kind === "person" && body.email === undefined)
      ctx.addIssue({ code: "custom", path: ["email"], message: "is required for a person" });
    if (body.kind === "service" && body.email !== undefined)
      ctx.addIssue({
        code: "custom",
        path: ["email"],
        message: "is for people; a service account signs in with a token or accessCommonName",
      });
    if (body.kind === "person" && body.accessCommonName !== undefined)
      ctx.addIssue({
        code: "custom",
        path: ["accessCommonName"],
        message: "is for service accounts; a person signs in with their email",
      });
  })
  .openapi("CreatePrincipal");
export type CreatePrincipalBody = z.infer<typeof CreatePrincipalBody>;

export const Principal = z
  .object({
    id: z.string().openapi({ example: "prn_k3v9q2m7x4c8t1b5" }),
    kind: z.enum(["person", "service"]),
    displayName: z.string(),
    email: z.string().nullable(),
    accessCommonName: z.string().nullable(),
    grants: z.array(Grant),
    createdAt: Timestamp,
    createdBy: z.string(),
    disabledAt: Timestamp.nullable(),
    disabledBy: z.string().nullable(),
    erasedAt: Timestamp.nullable().openapi({
      description:
        "When the person's details were erased (POST …/erase): the name reads `Erased principal`, the email and the tokens' names are gone, the id stays.",
    }),
  })
  .openapi("Principal");

export const DisablePrincipalBody = z
  .object({ reason: z.string().trim().min(1).max(500).optional() })
  .strict()
  .openapi("DisablePrincipal");

export const CreateTokenBody = z
  .object({
    name: z.string().trim().min(1).max(200).openapi({ example: "laptop" }),
    expiresAt: Timestamp.optional().openapi({
      description: `When the token stops working: in the future, at most ${MAX_TOKEN_DAYS} days ahead. Give this or expiresInDays.`,
    }),
    expiresInDays: z
      .number()
      .int()
      .min(1)
      .max(MAX_TOKEN_DAYS)
      .optional()
      .openapi({ description: "The token's life in days, instead of expiresAt." }),
  })
  .strict()
  .superRefine((body, ctx) => {
    if ((body.expiresAt === undefined) === (body.expiresInDays === undefined))
      ctx.addIssue({
        code: "custom",
        path: ["expiresAt"],
        message: "give either expiresAt or expiresInDays (every token expires)",
      });
  })
  .openapi("CreateToken");

export const Token = z
  .object({
    id: z.string().openapi({ example: "tok_m2c8x4k9q3v7t1b5" }),
    principalId: z.string(),
    name: z.string(),
    prefix: z.string().openapi({ description: "The token's first characters, to recognise it." }),
    createdAt: Timestamp,
    createdBy: z.string(),
    expiresAt: Timestamp,
    lastUsedAt: Timestamp.nullable().openapi({
      description: "Last authenticated use, to the minute.",
    }),
    revokedAt: Timestamp.nullable(),
    revokedBy: z.string().nullable(),
  })
  .openapi("Token");

export const CreatedToken = Token.extend({
  token: z.string().openapi({
    description: "The token: in this response only. Send it as `Authorization: Bearer <token>`.",
  }),
}).openapi("CreatedToken");

export const Me = z
  .object({
    principal: Principal,
    actor: z.string(),
    auth: z.object({
      method: z.enum(["token", "sso", "bootstrap"]),
      tokenId: z.string().nullable(),
    }),
    permissions: z.array(z.enum(PERMISSION_NAMES)).openapi({
      description: "What the caller holds on every model (through global roles).",
    }),
    ownedModels: z.array(z.string()),
  })
  .openapi("Me");

export const BootstrapSetting = z
  .object({
    enabled: z.boolean(),
    configured: z
      .boolean()
      .openapi({ description: "Whether ADMIN_TOKEN is set, at least 32 characters long." }),
  })
  .openapi("BootstrapSetting");
