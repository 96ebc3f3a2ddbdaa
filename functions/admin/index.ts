import { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../app-env";
import { adminAuth } from "../middleware/admin-auth";
import { idempotency } from "../middleware/idempotency";
import { auditApi } from "./audit";
import { modelsApi } from "./models";
import { validationHook } from "./validation";
import { versionsApi } from "./versions";

/** Operator endpoints. Authentication runs before routing, so a 401 reveals nothing. */
export const adminApi = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

adminApi.use("*", adminAuth());
adminApi.use("*", idempotency());
adminApi.route("/models", modelsApi);
adminApi.route("/models", versionsApi);
adminApi.route("/audit", auditApi);
