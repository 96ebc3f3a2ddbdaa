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

export interface UnstorablePlace {
  /** Where, as `a.b[2].c` (a key's own problem names the key). */
  path: (string | number)[];
  message: string;
}

/**
 * The first string (value or key) in a JSON-like value that cannot be
 * stored. Iterative, so depth costs no stack; callers bound depth first.
 */
export function findUnstorable(value: unknown): UnstorablePlace | null {
  const stack: { value: unknown; path: (string | number)[] }[] = [{ value, path: [] }];
  while (stack.length > 0) {
    const frame = stack.pop() as { value: unknown; path: (string | number)[] };
    const current = frame.value;
    if (typeof current === "string") {
      const message = unstorableText(current);
      if (message) return { path: frame.path, message };
    } else if (Array.isArray(current)) {
      for (let i = current.length - 1; i >= 0; i--) {
        const child: unknown = current[i];
        if (typeof child === "string" || (child !== null && typeof child === "object"))
          stack.push({ value: child, path: [...frame.path, i] });
      }
    } else if (current !== null && typeof current === "object") {
      const keys = Object.keys(current);
      for (let i = keys.length - 1; i >= 0; i--) {
        const key = keys[i] as string;
        const message = unstorableText(key);
        if (message) return { path: [...frame.path, key], message: `its name ${message}` };
        const child: unknown = (current as Record<string, unknown>)[key];
        if (typeof child === "string" || (child !== null && typeof child === "object"))
          stack.push({ value: child, path: [...frame.path, key] });
      }
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
  return value
    .replaceAll("\u0000", "\uFFFD")
    .replace(new RegExp(loneSurrogate.source, "g"), "\uFFFD");
}
