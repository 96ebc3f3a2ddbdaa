import { formatPath } from "./errors";
import { inspectJson } from "./storable";

/**
 * Bounds on a JSON request body, checked right after parsing and before
 * anything else walks it: a body's size is bounded by the body limit, its
 * depth here. V8's JSON.parse is iterative, so parsing a deep body is safe;
 * what is not safe is everything after it (JSON.stringify, recursive
 * validators, the log pipeline), so nothing deeper than the bound goes on.
 */
export interface JsonBounds {
  /** Deepest nesting of arrays and objects; the top-level value is depth 1. */
  maxDepth: number;
}

/** Most bodies: inputs of a few levels, V2 tensors, model cards. */
export const DEFAULT_JSON_BOUNDS: JsonBounds = { maxDepth: 32 };
/** A version's registration may carry a builtin model file (tree dumps nest per level). */
export const MODEL_FILE_JSON_BOUNDS: JsonBounds = { maxDepth: 256 };

export type JsonBodyProblem =
  | { kind: "malformed" }
  | { kind: "too_deep"; path: string; maxDepth: number }
  | { kind: "unstorable"; path: string; message: string };

export type JsonBodyResult = { ok: true; value: unknown } | { ok: false; problem: JsonBodyProblem };

/** Paths in messages stop after this many parts: a deep path says little more. */
const PATH_PARTS_SHOWN = 6;

function shownPath(path: (string | number)[]): string {
  if (path.length === 0) return "(body)";
  const shown = formatPath(path.slice(0, PATH_PARTS_SHOWN));
  return path.length > PATH_PARTS_SHOWN ? `${shown}…` : shown;
}

/**
 * Parses a JSON body within its bounds and the string rule. Strings only
 * need checking when the text holds a `\u` escape: raw text decoded from
 * UTF-8 holds no lone surrogate, and JSON allows no raw NUL.
 */
export function parseJsonBody(
  text: string,
  bounds: JsonBounds = DEFAULT_JSON_BOUNDS,
): JsonBodyResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, problem: { kind: "malformed" } };
  }
  const problem = inspectJson(value, {
    maxDepth: bounds.maxDepth,
    strings: text.includes("\\u"),
  });
  if (problem?.kind === "too_deep") {
    return {
      ok: false,
      problem: { kind: "too_deep", path: shownPath(problem.path), maxDepth: bounds.maxDepth },
    };
  }
  if (problem) {
    return {
      ok: false,
      problem: { kind: "unstorable", path: shownPath(problem.path), message: problem.message },
    };
  }
  return { ok: true, value };
}
