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
 * permission, the model is the route's `{model}` path parameter, or that
 * of the resource the route finds by id (`modelOf`), looked up here too.
 */
export function adminRoute<
  P extends string,
  R extends Omit<RouteConfig, "path" | "security"> & {
    path: P;
    permission: Permission;
    /**
     * For a route that finds its resource by id: the model it belongs to
     * (null: no one model; undefined: no such resource, which the handler
     * answers with its 404).
     */
    modelOf?: ModelOf;
    /** A list that shows each caller the models it may see (it filters by `modelsWith`). */
    model?: "resource";
  },
>(config: R) {
  const { permission, modelOf, model: declared, middleware, responses, ...rest } = config;
  const model: PermissionModel =
    PERMISSIONS[permission].scope === "global"
      ? "none"
      : modelOf || declared
        ? "resource"
        : /\{model\}/.test(config.path)
          ? "path"
          : "none";
  const requirement: RoutePermission = { permission, model };
  return createRoute({
    ...rest,
    responses: { ...responses, ...errorResponses(403) },
    security: adminSecurity,
    [PERMISSION_EXTENSION]: requirement,
    middleware: [permissionCheck(requirement, modelOf), ...[middleware ?? []].flat()],
  } as unknown as R);
}

/** Finds the model of a route's resource from the raw request, before anything validates it. */
export type ModelOf = (c: Context<AppEnv>) => Promise<string | null | undefined>;

/**
 * Where a model-scoped permission's model comes from: the `{model}` path
 * parameter; the resource the route finds by id (`modelOf`), or, for a list,
 * the models it shows (the caller must hold the permission on some model,
 * and sees only those); or nowhere, when the route reaches every model's
 * data and needs the permission everywhere (a global role).
 */
export type PermissionModel = "path" | "resource" | "none";

/** What the OpenAPI document says about each admin operation. */
export interface RoutePermission {
  permission: Permission;
  model: PermissionModel;
}

function permissionCheck(
  { permission, model }: RoutePermission,
  modelOf: ModelOf | undefined,
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (model === "path") requirePermission(c, permission, c.req.param("model"));
    else if (model === "resource" && modelOf) {
      // On some model first: a caller with no such permission anywhere learns nothing more.
      requirePermission(c, permission);
      const owner = await modelOf(c);
      if (owner !== undefined) requirePermission(c, permission, owner);
    } else if (model === "resource") requirePermission(c, permission);
    else requirePermission(c, permission, null);
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
      ? " (the bootstrap token only manages principals and engages kill switches)"
      : "";
  return new ApiError(
    "FORBIDDEN",
    `This needs the permission '${permission}'${where}, which comes with the roles ${holders}${bootstrap}`,
    {
      details: [{ path: "permission", message: permission }],
    },
  );
}
