import { DEFAULT_JSON_BOUNDS, MODEL_FILE_JSON_BOUNDS } from "../../shared/json-body";
import { adminAuth } from "../middleware/admin-auth";
import { idempotency } from "../middleware/idempotency";
import { inputGuard } from "../middleware/input-guard";
import { apiRouter } from "../router";
import { alertsApi } from "./alerts";
import { approvalsApi } from "./approvals";
import { artifactsApi } from "./artifacts";
import { auditApi } from "./audit";
import { baselinesApi } from "./baselines";
import { checklistApi } from "./checklist";
import { dataPolicyApi } from "./data-policy";
import { deadLettersApi } from "./dead-letters";
import { erasureApi } from "./erasure";
import { governanceApi } from "./governance";
import { keysApi } from "./keys";
import { modelsApi } from "./models";
import { monitoringApi } from "./monitoring";
import { plansApi } from "./plans";
import { predictionsApi } from "./predictions";
import { principalsApi } from "./principals";
import { rolloutApi } from "./rollout";
import { versionsApi } from "./versions";

/** Operator endpoints. Authentication runs before routing, so a 401 reveals nothing. */
export const adminApi = apiRouter();

adminApi.use("*", adminAuth());
const versionsPath = /^\/admin\/models\/[^/]+\/versions\/?$/;
/** Registering a version may carry a builtin model file: a larger body, whose trees nest per level. */
export const isVersionUpload = (method: string, path: string) =>
  method === "POST" && versionsPath.test(path);
// Path, query and body against the string rule and the depth bound, before
// anything parses them again (validators, the idempotency fingerprint).
adminApi.use(
  "*",
  inputGuard({
    bounds: (path, method) =>
      isVersionUpload(method, path) ? MODEL_FILE_JSON_BOUNDS : DEFAULT_JSON_BOUNDS,
  }),
);
// The kill switch must work while Postgres is down, and engaging it twice is
// harmless, so its route keeps no idempotency record.
adminApi.use("*", idempotency({ skip: (c) => c.req.path.endsWith("/kill-switch") }));
adminApi.route("/models", modelsApi);
adminApi.route("/models", versionsApi);
adminApi.route("/models", rolloutApi);
adminApi.route("/models", baselinesApi);
adminApi.route("/models", dataPolicyApi);
adminApi.route("/models", checklistApi);
adminApi.route("/artifacts", artifactsApi);
adminApi.route("/audit", auditApi);
adminApi.route("/dead-letters", deadLettersApi);
adminApi.route("/predictions", predictionsApi);
adminApi.route("/keys", keysApi);
adminApi.route("/", monitoringApi);
adminApi.route("/", alertsApi);
adminApi.route("/", principalsApi);
adminApi.route("/", governanceApi);
adminApi.route("/", approvalsApi);
adminApi.route("/", erasureApi);
adminApi.route("/", plansApi);
