import type { Hook } from "@hono/zod-openapi";
import { validationError } from "../../shared/errors";

const targetNames = { json: "body", query: "query", param: "path", header: "header" } as const;

/** Turns a failed zod validation into the standard 400 naming each field. */
// biome-ignore lint/suspicious/noExplicitAny: the hook serves every route's input type
export const validationHook: Hook<any, any, any, any> = (result) => {
  if (!result.success) {
    const where = targetNames[result.target as keyof typeof targetNames] ?? "body";
    throw validationError(result.error.issues, where);
  }
};
