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

/** The keys of a cursor and the type each holds. */
export type CursorKeys = Record<string, "string" | "number">;
export type CursorPosition<K extends CursorKeys> = {
  [P in keyof K]: K[P] extends "number" ? number : string;
};

export function decodeCursor<K extends CursorKeys>(cursor: string, keys: K): CursorPosition<K> {
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
  const out: Record<string, string | number> = {};
  for (const [key, type] of Object.entries(keys)) {
    const value = (parsed as Record<string, unknown>)[key];
    if (typeof value !== type || (type === "number" && !Number.isSafeInteger(value)))
      throw invalid();
    // A cursor is read back into a query: it follows the string rule too.
    if (typeof value === "string" && (value.length > 512 || unstorableText(value) !== null))
      throw invalid();
    out[key] = value as string | number;
  }
  return out as CursorPosition<K>;
}

/** Where a list resumes: the position in `cursor`, or undefined for the first page. */
export function resumeAfter<K extends CursorKeys>(
  cursor: string | undefined,
  keys: K,
): CursorPosition<K> | undefined {
  return cursor === undefined ? undefined : decodeCursor(cursor, keys);
}

/**
 * One page from rows fetched with `limit + 1`: the extra row only tells that
 * another page follows, and the cursor is the position of the last row shown.
 */
export function splitPage<Row>(
  rows: Row[],
  limit: number,
  position: (last: Row) => Record<string, string | number>,
): { rows: Row[]; nextCursor: string | null } {
  const shown = rows.slice(0, limit);
  const last = shown.at(-1);
  return {
    rows: shown,
    nextCursor: rows.length > limit && last !== undefined ? encodeCursor(position(last)) : null,
  };
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
