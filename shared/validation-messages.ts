import type { z } from "@hono/zod-openapi";
import { formatPath } from "./errors";

/**
 * What a failed check says, in words for the people who read a 400: "is
 * required", "must be a string", "must be at most 64 characters", "must be
 * one of 'v2' or 'json'". The field path is not part of a message: a 400
 * puts each message after its path (`upstream.timeoutMs: must be a whole
 * number`). A message a schema spells out itself (a regex's or a refine's)
 * wins over these, as zod ranks its error maps; the app installs this one
 * for every parse (functions/app.ts), so the body, query and path of every
 * route speak alike, and so do the unions whose branches are reported.
 */
export const validationMessage: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case "invalid_type":
      return typeMessage(issue.expected, issue.input);
    case "too_small":
      return sizeMessage("small", issue.origin, Number(issue.minimum), issue);
    case "too_big":
      return sizeMessage("big", issue.origin, Number(issue.maximum), issue);
    case "invalid_format":
      return formatMessage(issue);
    case "not_multiple_of":
      return `must be a multiple of ${issue.divisor}`;
    case "unrecognized_keys":
      return unknownKeysMessage(issue.keys);
    case "invalid_key":
      return `is not a valid key: it ${innerMessages(issue.issues)}`;
    case "invalid_element":
      return `is not a valid entry: it ${innerMessages(issue.issues)}`;
    case "invalid_value": {
      const allowed =
        issue.values.length === 1
          ? shown(issue.values[0])
          : `one of ${list(issue.values.map(shown))}`;
      return issue.input === undefined ? `is required: ${allowed}` : `must be ${allowed}`;
    }
    case "invalid_union":
      return unionMessage(issue);
    default:
      return "is not valid";
  }
};

/** Type names as the object of "must be …". */
const typeNouns: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "a whole number",
  bigint: "a whole number",
  boolean: "a boolean (true or false)",
  array: "an array",
  tuple: "an array",
  object: "an object",
  record: "an object",
  map: "a map",
  set: "a set",
  date: "a date",
  file: "a file",
  null: "null",
  nan: "NaN",
  symbol: "a symbol",
  function: "a function",
};

function typeMessage(expected: string, input: unknown): string {
  if (expected === "never") return "is not allowed";
  if (expected === "undefined" || expected === "void") return "must be left out";
  if (input === undefined) return "is required";
  if (expected === "boolean") return "must be true or false";
  return `must be ${typeNouns[expected] ?? expected}`;
}

/** Units of a length or a count, by what is measured. */
const sizeUnits: Record<string, [one: string, many: string]> = {
  string: ["character", "characters"],
  array: ["item", "items"],
  set: ["item", "items"],
  map: ["entry", "entries"],
  file: ["byte", "bytes"],
};

function sizeMessage(
  side: "small" | "big",
  origin: string,
  limit: number,
  { inclusive, exact }: { inclusive?: boolean | undefined; exact?: boolean | undefined },
): string {
  const unit = sizeUnits[origin];
  if (unit) {
    const count = `${limit} ${limit === 1 ? unit[0] : unit[1]}`;
    const verb = origin === "string" ? "be" : "have";
    if (exact) return `must ${verb} exactly ${count}`;
    if (side === "small" && limit <= 1 && inclusive !== false) return "must not be empty";
    const bound =
      side === "small"
        ? inclusive === false
          ? "more than"
          : "at least"
        : inclusive === false
          ? "fewer than"
          : "at most";
    return `must ${verb} ${bound} ${count}`;
  }
  if (origin === "date") {
    const at = new Date(limit).toISOString();
    return side === "small" ? `must not be before ${at}` : `must not be after ${at}`;
  }
  if (exact) return `must be exactly ${limit}`;
  if (side === "small")
    return inclusive === false ? `must be greater than ${limit}` : `must be at least ${limit}`;
  return inclusive === false ? `must be less than ${limit}` : `must be at most ${limit}`;
}

/** String formats as the object of "must be …". */
const formatNouns: Record<string, string> = {
  email: "an email address",
  uuid: "a UUID",
  uuidv4: "a UUID (version 4)",
  uuidv6: "a UUID (version 6)",
  uuidv7: "a UUID (version 7)",
  guid: "a UUID",
  datetime: "a date and time in ISO 8601 form, such as 2026-11-25T12:00:00Z",
  date: "a date in ISO 8601 form, such as 2026-11-25",
  time: "a time in ISO 8601 form, such as 12:00:00",
  duration: "a duration in ISO 8601 form, such as PT15M",
  ipv4: "an IPv4 address",
  ipv6: "an IPv6 address",
  cidrv4: "an IPv4 range, such as 10.0.0.0/8",
  cidrv6: "an IPv6 range, such as fd00::/8",
  mac: "a MAC address",
  hostname: "a host name",
  base64: "base64 text",
  base64url: "base64url text",
  hex: "hexadecimal text",
  json_string: "a JSON string",
  jwt: "a JSON Web Token",
  e164: "a phone number in E.164 form, such as +14155550123",
  emoji: "an emoji",
  lowercase: "in lowercase",
  uppercase: "in uppercase",
  nanoid: "a nanoid",
  cuid: "a cuid",
  cuid2: "a cuid2",
  ulid: "a ULID",
  xid: "an XID",
  ksuid: "a KSUID",
};

/** Protocols a URL check is asked about, to name the ones its pattern allows. */
const knownProtocols = ["https", "http", "wss", "ws", "ftp"];

function formatMessage(issue: {
  format: string;
  pattern?: string | undefined;
  input?: unknown;
  inst?: unknown;
  [key: string]: unknown;
}): string {
  switch (issue.format) {
    case "starts_with":
      return `must start with ${shown(issue.prefix)}`;
    case "ends_with":
      return `must end with ${shown(issue.suffix)}`;
    case "includes":
      return `must contain ${shown(issue.includes)}`;
    case "regex":
      return `must match the pattern ${issue.pattern ?? "of this field"}`;
    case "url": {
      const protocol = (issue.inst as { _zod?: { def?: { protocol?: RegExp } } } | undefined)?._zod
        ?.def?.protocol;
      const allowed = protocol ? knownProtocols.filter((name) => protocol.test(name)) : [];
      return allowed.length > 0
        ? `must be a URL starting with ${list(allowed.map((name) => `${name}://`))}`
        : "must be a URL";
    }
    default:
      return `must be ${formatNouns[issue.format] ?? `in the ${issue.format} format`}`;
  }
}

/** Keys in a message: a client's own, so quoted, and a long one or a long list cut short. */
function unknownKeysMessage(keys: readonly string[]): string {
  const named = keys
    .slice(0, 5)
    .map((key) => shown(key.length > 64 ? `${key.slice(0, 64)}…` : key));
  if (keys.length > 5) named.push(`${keys.length - 5} more`);
  return keys.length === 1
    ? `${named[0]} is not a field of this object`
    : `${list(named, "and")} are not fields of this object`;
}

interface FinishedIssue {
  code?: string;
  path: readonly PropertyKey[];
  message: string;
  expected?: unknown;
  values?: readonly unknown[];
}

function innerMessages(issues: readonly FinishedIssue[]): string {
  return [...new Set(issues.map((inner) => inner.message))].join("; ") || "is not valid";
}

/**
 * A union's failure as one message. Each branch's issues already carry their
 * words; the validation 400 reports the branch a value was meant for on its
 * own (shared/errors.ts), so this message is what is left: the value has
 * none of the union's types, its discriminator none of its values, or it
 * fits none of its shapes.
 */
function unionMessage(issue: {
  errors: readonly (readonly FinishedIssue[])[];
  input?: unknown;
  discriminator?: string | undefined;
  options?: readonly unknown[];
  inclusive?: boolean;
}): string {
  if (issue.inclusive === false) return "matches more than one of the forms it may take";
  if (issue.discriminator !== undefined && issue.options) {
    const options = list(issue.options.map(shown), "or");
    const value = (issue.input as Record<string, unknown> | undefined)?.[issue.discriminator];
    return value === undefined ? `is required: one of ${options}` : `must be one of ${options}`;
  }
  const nouns: string[] = [];
  for (const branch of issue.errors) {
    const root = branch.find((inner) => inner.path.length === 0);
    if (root?.code === "invalid_type" && typeof root.expected === "string")
      nouns.push(typeNouns[root.expected] ?? root.expected);
    else if (root?.code === "invalid_value" && root.values) nouns.push(...root.values.map(shown));
    else {
      const reasons = issue.errors.map((inner) => {
        const first = inner[0];
        if (!first) return "is not valid";
        const path = formatPath(first.path);
        return path ? `${path}: ${first.message}` : first.message;
      });
      return `fits none of the forms it may take (${reasons.join("; or ")})`;
    }
  }
  const allowed = list([...new Set(nouns)], "or");
  return issue.input === undefined ? `is required: ${allowed}` : `must be ${allowed}`;
}

/** A value as a message shows it: strings quoted, the rest as JSON writes them. */
function shown(value: unknown): string {
  if (typeof value === "string") return `'${value}'`;
  if (value === undefined) return "left out";
  if (typeof value === "bigint") return value.toString();
  return JSON.stringify(value) ?? String(value);
}

/** `a, b or c` (or `and`). */
function list(items: readonly string[], last: "or" | "and" = "or"): string {
  if (items.length <= 1) return items[0] ?? "";
  return `${items.slice(0, -1).join(", ")} ${last} ${items[items.length - 1]}`;
}
