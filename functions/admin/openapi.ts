import { z } from "@hono/zod-openapi";
import { ErrorBody } from "../../shared/errors";

const errorDescriptions: Record<number, string> = {
  400: "Invalid request: the message and `details` name the failing fields",
  401: "Missing or invalid bearer token",
  403: "The principal lacks the route's permission (named in the message and in `details`)",
  404: "No such resource",
  409: "Conflicts with an existing resource, or an Idempotency-Key still in progress",
  413: "Body larger than the configured limit",
  415: "Body is not application/json",
  422: "Idempotency-Key reused with a different request",
  503: "Database unavailable; retry later",
};

/** Error responses for a route's OpenAPI description. */
export function errorResponses(...statuses: number[]) {
  return Object.fromEntries(
    statuses.map((status) => [
      status,
      {
        description: errorDescriptions[status] ?? "Error",
        content: { "application/json": { schema: ErrorBody } },
      },
    ]),
  );
}

export const jsonContent = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

export const jsonBody = <T extends z.ZodType>(schema: T) => ({
  required: true,
  content: { "application/json": { schema } },
});

export const IdempotencyHeader = z.object({
  "idempotency-key": z
    .string()
    .optional()
    .openapi({
      param: { name: "idempotency-key", in: "header" },
      description:
        "Retries with the same key and body return the first response; another body is a 422.",
    }),
});

export const adminSecurity = [{ AdminToken: [] }];

/** `{id}` of a row with a numeric id (an alert, a delivery, a monitoring run). */
export const NumericIdParams = z.object({
  id: z.coerce
    .number()
    .int()
    .min(1)
    .max(Number.MAX_SAFE_INTEGER)
    .openapi({ param: { name: "id", in: "path" } }),
});
