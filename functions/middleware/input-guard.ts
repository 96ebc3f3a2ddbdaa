import type { MiddlewareHandler } from "hono";
import { ApiError } from "../../shared/errors";
import {
  DEFAULT_JSON_BOUNDS,
  type JsonBodyProblem,
  type JsonBounds,
  parseJsonBody,
} from "../../shared/json-body";
import { unstorableText } from "../../shared/storable";
import type { AppEnv } from "../app-env";

/** The 400 for a body outside its bounds or the string rule, naming the field. */
export function jsonBodyError(problem: JsonBodyProblem): ApiError {
  switch (problem.kind) {
    case "malformed":
      return new ApiError("MALFORMED_JSON", "Request body is not valid JSON");
    case "too_deep":
      return new ApiError(
        "BODY_TOO_DEEP",
        `Invalid body: ${problem.path}: nests arrays or objects more than ${problem.maxDepth} levels deep`,
        {
          details: [
            {
              path: problem.path,
              message: `nests arrays or objects more than ${problem.maxDepth} levels deep`,
            },
          ],
        },
      );
    case "unstorable":
      return new ApiError(
        "VALIDATION_FAILED",
        `Invalid body: ${problem.path}: ${problem.message}`,
        {
          details: [{ path: problem.path, message: problem.message }],
        },
      );
  }
}

/**
 * Hands a body already parsed under the bounds to whatever reads it next
 * (the route's validator calls `c.req.json()`), so it is parsed once.
 */
export function keepParsedBody(request: { json(): Promise<unknown> }, value: unknown): void {
  (request as { json: () => Promise<unknown> }).json = () => Promise.resolve(value);
}

/** Reads and checks a JSON body (see parseJsonBody); throws the 400 it earns. */
export async function readBoundedJson(
  request: { text(): Promise<string> },
  bounds: JsonBounds = DEFAULT_JSON_BOUNDS,
): Promise<unknown> {
  let text: string;
  try {
    text = await request.text();
  } catch {
    throw new ApiError("MALFORMED_JSON", "Request body could not be read");
  }
  const parsed = parseJsonBody(text, bounds);
  if (!parsed.ok) throw jsonBodyError(parsed.problem);
  return parsed.value;
}

/**
 * The string rule for a request's path and query: a `%00` decodes to a NUL,
 * which no name, id or filter may hold. (A percent-encoded lone surrogate is
 * not valid UTF-8 and stays undecoded.) Cheap when there is none: one test of
 * the raw URL.
 */
export function checkUrl(url: string): void {
  if (!/%00/.test(url)) return;
  const parsed = new URL(url);
  for (const [name, value] of parsed.searchParams) {
    const message = unstorableText(name) ?? unstorableText(value);
    if (message) {
      throw new ApiError("VALIDATION_FAILED", `Invalid query: ${name}: ${message}`, {
        details: [{ path: name, message }],
      });
    }
  }
  const segments = parsed.pathname.split("/");
  segments.forEach((segment, index) => {
    let decoded = segment;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      // not decodable: stays as it is, and holds no NUL
    }
    const message = unstorableText(decoded);
    if (message) {
      const where = `segment ${index} of the path`;
      throw new ApiError("VALIDATION_FAILED", `Invalid path: ${where}: ${message}`, {
        details: [{ path: where, message }],
      });
    }
  });
}

export interface InputGuardOptions {
  /** Bounds for a request's JSON body; by default DEFAULT_JSON_BOUNDS. */
  bounds?: (path: string, method: string) => JsonBounds;
}

/**
 * Every admin request's path, query and JSON body against the string rule,
 * and its body against the depth bound, before any handler or validator
 * reads it. Runs after authentication, so an anonymous caller learns
 * nothing but 401. The body text stays cached on the request for the
 * validators that parse it next.
 */
export function inputGuard({
  bounds = () => DEFAULT_JSON_BOUNDS,
}: InputGuardOptions = {}): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    checkUrl(c.req.url);
    const method = c.req.method;
    if (method !== "GET" && method !== "HEAD" && isJson(c.req.header("content-type"))) {
      // An empty body is the route's validator's to refuse (or to accept).
      if ((await c.req.text()).trim() !== "") {
        keepParsedBody(c.req, await readBoundedJson(c.req, bounds(c.req.path, method)));
      }
    }
    await next();
  };
}

function isJson(contentType: string | undefined): boolean {
  return /^application\/([\w.-]+\+)?json\b/i.test(contentType?.trim() ?? "");
}
