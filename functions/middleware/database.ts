import type { MiddlewareHandler } from "hono";
import { type DatabaseHandle, openDatabase } from "../../shared/db/client";
import type { AppEnv } from "../app-env";

/**
 * Gives handlers `c.var.database()`, opening a pool only for requests that
 * use it and closing it once the response is sent.
 */
export function database(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    let handle: DatabaseHandle | undefined;
    c.set("database", () => {
      handle ??= openDatabase(c.env);
      return handle.db;
    });
    try {
      await next();
    } finally {
      if (handle) {
        const closing = handle.close();
        try {
          c.executionCtx.waitUntil(closing);
        } catch {
          await closing; // no execution context (e.g. app.request in a unit test)
        }
      }
    }
  };
}
