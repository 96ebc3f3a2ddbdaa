import { z } from "@hono/zod-openapi";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** Every machine-readable error code Airlock answers with, and its status. */
export const errorStatus = {
  VALIDATION_FAILED: 400,
  MALFORMED_JSON: 400,
  BODY_TOO_DEEP: 400,
  INVALID_CURSOR: 400,
  MODEL_FILE_INVALID: 400,
  UNKNOWN_CRON: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  APPROVAL_REQUIRED: 403,
  ROUTE_NOT_FOUND: 404,
  MODEL_NOT_FOUND: 404,
  VERSION_NOT_FOUND: 404,
  STATE_NOT_FOUND: 404,
  CARD_REVISION_NOT_FOUND: 404,
  KEY_NOT_FOUND: 404,
  ARTIFACT_NOT_FOUND: 404,
  PREDICTION_NOT_FOUND: 404,
  BASELINE_NOT_FOUND: 404,
  ALERT_NOT_FOUND: 404,
  DESTINATION_NOT_FOUND: 404,
  DELIVERY_NOT_FOUND: 404,
  RUN_NOT_FOUND: 404,
  ERASURE_NOT_FOUND: 404,
  PRINCIPAL_NOT_FOUND: 404,
  TOKEN_NOT_FOUND: 404,
  GRANT_NOT_FOUND: 404,
  APPROVAL_NOT_FOUND: 404,
  PLAN_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  MODEL_EXISTS: 409,
  VERSION_EXISTS: 409,
  IDEMPOTENCY_KEY_IN_USE: 409,
  KILL_SWITCH_NARROWER: 409,
  CHAMPION_REQUIRED: 409,
  DESTINATION_DELETED: 409,
  PRINCIPAL_EXISTS: 409,
  PRINCIPAL_DISABLED: 409,
  LAST_ADMIN: 409,
  APPROVAL_NOT_NEEDED: 409,
  APPROVAL_NOT_PENDING: 409,
  APPROVAL_ALREADY_DECIDED: 409,
  APPROVAL_CONSUMED: 409,
  APPROVAL_STALE: 409,
  APPROVAL_MISMATCH: 409,
  VERSION_RETIRED: 409,
  VERSION_IN_USE: 409,
  PLAN_CONFLICT: 409,
  PLAN_IN_CONTROL: 409,
  PLAN_STALE: 409,
  KILL_SWITCH_ENGAGED: 409,
  MODEL_CARD_INCOMPLETE: 409,
  STATE_VERSION_MISMATCH: 412,
  PAYLOAD_TOO_LARGE: 413,
  MODEL_FILE_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  IDEMPOTENCY_KEY_REUSED: 422,
  BASELINE_EMPTY: 422,
  RATE_LIMITED: 429,
  INTERNAL_ERROR: 500,
  JOB_FAILED: 500,
  UPSTREAM_FAILED: 502,
  DATABASE_UNAVAILABLE: 503,
  ROLLOUT_UNAVAILABLE: 503,
  AUDIT_STORE_UNAVAILABLE: 503,
  AUDIT_CHECKPOINT_REFUSED: 409,
  MODEL_DISABLED: 503,
  NO_SERVING_VERSION: 503,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorCode = keyof typeof errorStatus;
export const ErrorCode = z.enum(Object.keys(errorStatus) as [ErrorCode, ...ErrorCode[]]);

export interface ErrorDetail {
  path: string;
  message: string;
}

export const ErrorBody = z
  .object({
    error: z.object({
      code: ErrorCode,
      message: z.string(),
      requestId: z.string(),
      details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    }),
  })
  .openapi("Error");
export type ErrorBody = z.infer<typeof ErrorBody>;

export class ApiError extends HTTPException {
  readonly code: ErrorCode;
  readonly details: ErrorDetail[] | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { details?: ErrorDetail[]; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(errorStatus[code], { message, cause: options.cause });
    this.name = "ApiError";
    this.code = code;
    this.details = options.details;
    this.headers = options.headers;
  }
}

/** `a.b[2].c` from a zod issue path. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out;
}

interface IssueLike {
  path: readonly PropertyKey[];
  message: string;
  code?: string;
  errors?: readonly (readonly IssueLike[])[];
}

/**
 * A union's "Invalid input" as the issues of the branch the value was meant
 * for: the one branch whose type it has (one label or an array of them, say),
 * with its paths under the union's. Other issues stay as they are.
 */
function expandUnions(issues: readonly IssueLike[]): IssueLike[] {
  return issues.flatMap((issue) => {
    if (issue.code !== "invalid_union" || !issue.errors) return [issue];
    const typed = issue.errors.filter(
      (branch) => !branch.some((inner) => inner.code === "invalid_type" && inner.path.length === 0),
    );
    const [branch] = typed;
    if (typed.length !== 1 || !branch || branch.length === 0) return [issue];
    return expandUnions(
      branch.map((inner) => ({ ...inner, path: [...issue.path, ...inner.path] })),
    );
  });
}

export function validationError(
  raw: readonly IssueLike[],
  where: "body" | "query" | "path" | "header",
): ApiError {
  const issues = expandUnions(raw);
  const details = issues.map((issue) => ({
    path: formatPath(issue.path) || `(${where})`,
    message: issue.message,
  }));
  const summary = details
    .slice(0, 5)
    .map((d) => `${d.path}: ${d.message}`)
    .join("; ");
  const more = details.length > 5 ? ` (and ${details.length - 5} more)` : "";
  return new ApiError("VALIDATION_FAILED", `Invalid ${where}: ${summary}${more}`, { details });
}

/**
 * A failure in one line for logs and run records: the error and its cause,
 * without a failed query's statement text (and never its parameters).
 */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? ` <- ${error.cause.message}` : "";
  return `${error.name}${error.message.startsWith("Failed query") ? "" : `: ${error.message}`}${cause}`;
}
