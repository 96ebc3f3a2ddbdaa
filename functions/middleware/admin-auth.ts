import type { MiddlewareHandler } from "hono";
import { secretsEqual } from "../../shared/crypto";
import { ApiError } from "../../shared/errors";
import type { AppEnv } from "../app-env";
import { bearerToken } from "./bearer";

export interface AdminAuthOptions {
  /** Shortest bootstrap token accepted; a shorter configured one locks the API. */
  minTokenLength?: number;
}

/**
 * Bearer-token authentication for operators. Every failure gives the same
 * 401, before routing, so nothing about what exists leaks.
 */
export function adminAuth({
  minTokenLength = 32,
}: AdminAuthOptions = {}): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const provided = bearerToken(c.req.header("authorization"));
    const expected = c.env.ADMIN_TOKEN ?? "";
    if (expected.length < minTokenLength) {
      console.error(
        "ADMIN_TOKEN is missing or shorter than %d characters: the admin API is locked",
        minTokenLength,
      );
    }
    const ok =
      provided !== undefined &&
      expected.length >= minTokenLength &&
      (await secretsEqual(provided, expected));
    if (!ok) {
      throw new ApiError("UNAUTHORIZED", "A valid admin bearer token is required", {
        headers: { "www-authenticate": 'Bearer realm="airlock-admin"' },
      });
    }
    c.set("principal", { id: "bootstrap", actor: "admin:bootstrap", roles: ["admin"] });
    await next();
  };
}
