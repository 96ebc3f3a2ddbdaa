import { type Hook, OpenAPIHono } from "@hono/zod-openapi";
import { validationError } from "../shared/errors";
import type { AppEnv } from "./app-env";

const targetNames = { json: "body", query: "query", param: "path", header: "header" } as const;

/** Turns a failed zod validation into the standard 400 naming each field. */
// biome-ignore lint/suspicious/noExplicitAny: the hook serves every route's input type
export const validationHook: Hook<any, any, any, any> = (result) => {
  if (!result.success) {
    const where = targetNames[result.target as keyof typeof targetNames] ?? "body";
    throw validationError(result.error.issues, where);
  }
};

/**
 * A router for one family of routes: each route it serves is described in
 * the OpenAPI document, and a request that fails validation gets the
 * standard 400 naming each field.
 */
export function apiRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
}
