import { z } from "@hono/zod-openapi";
import { MODEL_NAME_PATTERN } from "../model-name";

/** Model names appear in URLs and routing keys: lowercase slugs only. */
export const ModelName = z
  .string()
  .regex(
    MODEL_NAME_PATTERN,
    "must be a lowercase slug: letters, digits and '-', 1 to 64 characters, not starting or ending with '-'",
  )
  .openapi({ example: "fraud-detector" });

export const VersionLabel = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
    "must be 1 to 64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit",
  )
  .openapi({ example: "v3" });

const reservedNames = new Set(["__proto__", "constructor", "prototype"]);

/** A feature or class name as it appears in inputs and outputs. */
export const FeatureName = z
  .string()
  .regex(
    /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/,
    "must start with a letter or '_' and hold up to 128 letters, digits, '_', '.' or '-'",
  )
  // Names that collide with JavaScript object internals would be dropped or
  // change an object's prototype when inputs are parsed.
  .refine((name) => !reservedNames.has(name), "is a reserved name");

export const ClassLabel = z.string().min(1).max(128);

/**
 * An ISO 8601 time with an offset. Year 0000 is refused: Postgres has no
 * year 0, and a time it cannot store is a client's error, not a 500.
 */
export const Timestamp = z.iso
  .datetime({ offset: true })
  .refine((value) => !value.startsWith("0000"), "must be in year 1 or later")
  .openapi({ example: "2026-11-25T12:00:00.000Z" });

export const PaginationQuery = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(200)
    .default(50)
    .openapi({ param: { name: "limit", in: "query" }, example: 50 }),
  cursor: z
    .string()
    .max(512)
    .optional()
    .openapi({
      param: { name: "cursor", in: "query" },
      description: "Opaque cursor from a previous page's `nextCursor`.",
    }),
});

export const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({
    items: z.array(item),
    nextCursor: z
      .string()
      .nullable()
      .openapi({ description: "Pass as `cursor` for the next page; null on the last page." }),
  });
