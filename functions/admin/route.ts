import { createRoute, type RouteConfig } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import {
  holds,
  holdsEverywhere,
  PERMISSIONS,
  type Permission,
  ROLE_PERMISSIONS,
} from "../../shared/auth/permissions";
import { ApiError } from "../../shared/errors";
import type { AppEnv } from "../app-env";
import { adminSecurity, errorResponses } from "./openapi";

/** The OpenAPI extension that carries each admin operation's permission. */
export const PERMISSION_EXTENSION = "x-airlock-permission";

/**
 * An admin route: `createRoute` with the permission it requires. The
 * permission is written into the OpenAPI document (`x-airlock-permission`)
 * and checked as the route's first middleware, before its validators, so a
 * refused caller learns nothing from validation. For a model-scoped
 * permission, the model is the route's `{model}` path parameter; a route
 * whose model is found later (an alert, a prediction) checks that the
 * caller holds the permission on some model here, and on the model itself
 * with `requirePermission` once it knows it.
 */
export function adminRoute<
  P extends string,
  R extends Omit<RouteConfig, "path" | "security"> & {
    path: P;
    permission: Permission;
    model?: "resource";
  },
>(config: R) {
  const { permission, model: declared, middleware, responses, ...rest } = config;
  const model: PermissionModel =
    PERMISSIONS[permission].scope === "global"
      ? "none"
      : (declared ?? (/\{model\}/.test(config.path) ? "path" : "none"));
  const requirement: RoutePermission = { permission, model };
  return createRoute({
    ...rest,
    responses: { ...responses, ...errorResponses(403) },
    security: adminSecurity,
    [PERMISSION_EXTENSION]: requirement,
    middleware: [permissionCheck(requirement), ...[middleware ?? []].flat()],
  } as unknown as R);
}

/**
 * Where a model-scoped permission's model comes from: the `{model}` path
 * parameter; the resource, once the handler has loaded it (the route checks
 * that the caller holds the permission on some model); or nowhere, when the
 * route reaches every model's data and needs the permission everywhere (a
 * global role).
 */
export type PermissionModel = "path" | "resource" | "none";

/** What the OpenAPI document says about each admin operation. */
export interface RoutePermission {
  permission: Permission;
  model: PermissionModel;
}

function permissionCheck({ permission, model }: RoutePermission): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const principal = c.var.principal;
    if (model === "path") requirePermission(c, permission, c.req.param("model"));
    else if (model === "resource") requirePermission(c, permission);
    else if (!holdsEverywhere(principal, permission))
      throw forbidden(c, permission, undefined, false);
    await next();
  };
}

/**
 * Refuses with 403 FORBIDDEN, naming the permission, unless the caller holds
 * it: on `model`; on every model when `model` is null (a resource of no one
 * model, such as an alert about Airlock itself); on some model when absent.
 */
export function requirePermission(
  c: Context<AppEnv>,
  permission: Permission,
  model?: string | null,
) {
  const principal = c.var.principal;
  if (model === null) {
    if (!holdsEverywhere(principal, permission)) throw forbidden(c, permission, undefined, false);
    return;
  }
  if (!holds(principal, permission, model)) throw forbidden(c, permission, model);
}

function forbidden(
  c: Context<AppEnv>,
  permission: Permission,
  model: string | undefined,
  ownerSuffices = true,
) {
  const principal = c.var.principal;
  const roles = Object.entries(ROLE_PERMISSIONS)
    .filter(([role, permissions]) => role !== "owner" && permissions.includes(permission))
    .map(([role]) => role);
  const byOwner = ownerSuffices && ROLE_PERMISSIONS.owner.includes(permission);
  const where = model ? ` on model '${model}'` : "";
  const holders = `${roles.join(", ")}${byOwner ? ", or the model's owner" : ""}`;
  const bootstrap =
    principal.kind === "bootstrap"
      ? " (the bootstrap token only creates principals, grants roles, issues their tokens and engages kill switches)"
      : "";
  return new ApiError(
    "FORBIDDEN",
    `This needs the permission '${permission}'${where}, which comes with the roles ${holders}${bootstrap}`,
    {
      details: [{ path: "permission", message: permission }],
    },
  );
}
