import { z } from "@hono/zod-openapi";

/**
 * The one rule for strings that reach storage. Postgres cannot hold a NUL
 * (U+0000) in `text` or `jsonb`, and refuses a `\u0000` escape in jsonb; an
 * unpaired UTF-16 surrogate is not Unicode at all (jsonb refuses its escape,
 * and UTF-8 cannot encode it). Such a string is refused where it enters
 * (a 400 naming the field), and anything that is stored anyway, from a queue
 * message or an outbox, is kept in an escaped form that always fits.
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: finding NUL is the point
const suspicious = /[\u0000\uD800-\uDFFF]/;
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export const NUL_MESSAGE = "contains a NUL character (U+0000), which cannot be stored";
export const SURROGATE_MESSAGE =
  "contains an unpaired UTF-16 surrogate (U+D800 to U+DFFF), which is not valid Unicode";

/** Why a string cannot be stored, in words for people; null when it can. */
export function unstorableText(value: string): string | null {
  if (!suspicious.test(value)) return null;
  if (value.includes("\u0000")) return NUL_MESSAGE;
  if (loneSurrogate.test(value)) return SURROGATE_MESSAGE;
  return null;
}

/** The string rule as a zod piece: `storable(z.string().max(256))`. */
export function storable<T extends z.ZodString>(schema: T): T {
  return schema.superRefine((value, ctx) => {
    const reason = unstorableText(value);
    if (reason) ctx.addIssue({ code: "custom", message: reason });
  }) as unknown as T;
}

/** A string that can be stored, of at most `max` characters. */
export const StorableString = (max: number) => storable(z.string().max(max));

/** What is wrong with a JSON value, and where (`a.b[2].c`; a key's own problem names the key). */
export type JsonProblem =
  | { kind: "too_deep"; path: (string | number)[] }
  | { kind: "unstorable"; path: (string | number)[]; message: string };

export interface JsonInspection {
  /** Deepest nesting of arrays and objects allowed; the value itself is depth 1. */
  maxDepth?: number;
  /** Check every string and key against the string rule (default true). */
  strings?: boolean;
}

/**
 * The first place in a JSON-like value that is nested too deep or holds a
 * string (value or key) that cannot be stored, in one iterative walk: depth
 * costs no stack, and nothing below the depth bound is visited.
 */
export function inspectJson(
  value: unknown,
  { maxDepth = Number.POSITIVE_INFINITY, strings = true }: JsonInspection = {},
): JsonProblem | null {
  const walked = (child: unknown) =>
    (strings && typeof child === "string") || (child !== null && typeof child === "object");
  const stack: { value: unknown; depth: number; path: (string | number)[] }[] = [
    { value, depth: 1, path: [] },
  ];
  while (stack.length > 0) {
    const { value: current, depth, path } = stack.pop() as (typeof stack)[number];
    if (typeof current === "string") {
      const message = unstorableText(current);
      if (message) return { kind: "unstorable", path, message };
      continue;
    }
    if (current === null || typeof current !== "object") continue;
    if (depth > maxDepth) return { kind: "too_deep", path };
    if (Array.isArray(current)) {
      for (let i = current.length - 1; i >= 0; i--) {
        const child: unknown = current[i];
        if (walked(child)) stack.push({ value: child, depth: depth + 1, path: [...path, i] });
      }
      continue;
    }
    const keys = Object.keys(current);
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i] as string;
      const message = strings ? unstorableText(key) : null;
      if (message)
        return { kind: "unstorable", path: [...path, key], message: `its name ${message}` };
      const child: unknown = (current as Record<string, unknown>)[key];
      if (walked(child)) stack.push({ value: child, depth: depth + 1, path: [...path, key] });
    }
  }
  return null;
}

/**
 * JSON text that Postgres always accepts as `text`: JSON.stringify escapes
 * NUL and lone surrogates as `\u` sequences of ASCII. A value that cannot be
 * serialized at all (nested past the stack) is described instead.
 */
export function storableJsonText(value: unknown): string {
  try {
    return JSON.stringify(value) ?? "null";
  } catch (error) {
    return JSON.stringify({ unserializable: String(error) });
  }
}

/** Replaces what cannot be stored in a string with U+FFFD, for messages and log fields. */
export function replaceUnstorable(value: string): string {
  if (!suspicious.test(value)) return value;
  return value.replaceAll("\u0000", "\uFFFD").replace(loneSurrogates, "\uFFFD");
}

const loneSurrogates = new RegExp(loneSurrogate.source, "g");
