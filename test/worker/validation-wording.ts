/**
 * zod's own wording ("Invalid input: expected string, received undefined",
 * "Too small: expected array to have >=1 items", "Unrecognized key: …"),
 * which no response may carry: every failure is worded for people
 * (shared/validation-messages.ts). Checked on a message with the client's
 * own quoted text ('…') left out, so that a key named "expected" is no
 * finding.
 */
export const zodDefaultWording: readonly RegExp[] = [
  /\bInvalid\b/,
  /\bexpected\b/i,
  /\breceived\b/i,
  /\bToo (?:small|big)\b/i,
  /\bUnrecognized keys?\b/i,
  /\bnonoptional\b/i,
  /\boption matched\b/i,
  /[<>]=/,
];

/** The prefixes of a 400's message that say where the failing fields are. */
const wherePrefix = /^Invalid (?:body|query|path|header|inputs|inference request|baseline rows): /;

/** zod's wording in a text, if any: the pattern it matches. */
export function defaultWordingIn(text: string): RegExp | undefined {
  const own = text.replace(/'[^']*'/g, "''");
  return zodDefaultWording.find((pattern) => pattern.test(own));
}

interface ErrorWords {
  message?: string | undefined;
  details?: { path?: string | undefined; message?: string | undefined }[] | undefined;
}

/** Where an error's message or details carry zod's wording, or null. */
export function zodWordingIn(error: ErrorWords): string | null {
  const details = error.details ?? [];
  for (const detail of details) {
    const found = defaultWordingIn(detail.message ?? "");
    if (found) return `detail ${detail.path}: '${detail.message}' has zod's wording (${found})`;
  }
  let message = (error.message ?? "").replace(wherePrefix, "");
  for (const detail of details) message = message.replaceAll(`${detail.path}: `, "");
  const found = defaultWordingIn(message);
  return found ? `message '${error.message}' has zod's wording (${found})` : null;
}

/**
 * What is wrong with a validation 400's words, or null: a detail without a
 * path or a message, a message that does not name its first detail's
 * field, or zod's default wording anywhere.
 */
export function wordingProblem(error: ErrorWords): string | null {
  const details = error.details ?? [];
  if (details.some((detail) => !detail.path || !detail.message)) {
    return "a detail without a path or message";
  }
  const first = details[0];
  if (first && !error.message?.includes(first.path ?? "")) {
    return `message '${error.message}' does not name ${first.path}`;
  }
  return zodWordingIn(error);
}
