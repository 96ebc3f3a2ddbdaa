import { formatPath } from "./errors";
import { findUnstorable } from "./storable";

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

/** The path to the first place nested deeper than `maxDepth`, or null. Iterative. */
export function tooDeepAt(value: unknown, maxDepth: number): (string | number)[] | null {
  const stack: { value: unknown; depth: number; path: (string | number)[] }[] = [
    { value, depth: 1, path: [] },
  ];
  while (stack.length > 0) {
    const frame = stack.pop() as (typeof stack)[number];
    const current = frame.value;
    if (current === null || typeof current !== "object") continue;
    if (frame.depth > maxDepth) return frame.path;
    // Only containers go on the stack: scalars cannot nest.
    if (Array.isArray(current)) {
      for (let i = current.length - 1; i >= 0; i--) {
        const child: unknown = current[i];
        if (child !== null && typeof child === "object")
          stack.push({ value: child, depth: frame.depth + 1, path: [...frame.path, i] });
      }
    } else {
      for (const key in current) {
        const child: unknown = (current as Record<string, unknown>)[key];
        if (child !== null && typeof child === "object")
          stack.push({ value: child, depth: frame.depth + 1, path: [...frame.path, key] });
      }
    }
  }
  return null;
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
  const deep = tooDeepAt(value, bounds.maxDepth);
  if (deep) {
    return {
      ok: false,
      problem: { kind: "too_deep", path: shownPath(deep), maxDepth: bounds.maxDepth },
    };
  }
  if (text.includes("\\u")) {
    const place = findUnstorable(value);
    if (place) {
      return {
        ok: false,
        problem: { kind: "unstorable", path: shownPath(place.path), message: place.message },
      };
    }
  }
  return { ok: true, value };
}
