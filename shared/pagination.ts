import { ApiError } from "./errors";
import { unstorableText } from "./storable";

/**
 * Cursors are opaque to clients: base64url JSON of the last row's sort key.
 * Keyset pagination keeps pages stable while rows are added.
 */
export function encodeCursor(position: Record<string, string | number>): string {
  const bytes = new TextEncoder().encode(JSON.stringify(position));
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function decodeCursor<K extends string>(
  cursor: string,
  keys: Record<K, "string" | "number">,
): Record<K, string | number> {
  const invalid = () =>
    new ApiError("INVALID_CURSOR", "Query parameter 'cursor' is not a cursor from this list");
  let parsed: unknown;
  try {
    const binary = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
    parsed = JSON.parse(
      new TextDecoder().decode(Uint8Array.from(binary, (ch) => ch.charCodeAt(0))),
    );
  } catch {
    throw invalid();
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw invalid();
  const out = {} as Record<K, string | number>;
  for (const [key, type] of Object.entries(keys) as [K, "string" | "number"][]) {
    const value = (parsed as Record<string, unknown>)[key];
    if (typeof value !== type || (type === "number" && !Number.isSafeInteger(value)))
      throw invalid();
    // A cursor is read back into a query: it follows the string rule too.
    if (typeof value === "string" && (value.length > 512 || unstorableText(value) !== null))
      throw invalid();
    out[key] = value as string | number;
  }
  return out;
}

/** Earliest and latest times a cursor may carry: what both JavaScript and Postgres can hold. */
const MIN_CURSOR_TIME = Date.UTC(1, 0, 1);
const MAX_CURSOR_TIME = Date.UTC(9999, 11, 31);

/** A time (milliseconds) read from a cursor, or INVALID_CURSOR. */
export function cursorTime(value: number): Date {
  if (!(value >= MIN_CURSOR_TIME && value <= MAX_CURSOR_TIME)) {
    throw new ApiError("INVALID_CURSOR", "Query parameter 'cursor' is not a cursor from this list");
  }
  return new Date(value);
}
