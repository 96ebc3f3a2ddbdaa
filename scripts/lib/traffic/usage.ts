// Command-line mistakes: each message starts with the flag it is about.

export class UsageError extends Error {}

/**
 * Seconds from `30s`, `1.5m`, `500ms`, `2h` or a bare number of seconds; `flag` names the
 * option in the error.
 */
export function parseDuration(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) {
    throw new UsageError(
      `${flag}: '${text}' is not a duration (examples: 30s, 1.5m, 500ms, 2h, or seconds)`,
    );
  }
  const value = Number(match[1]);
  const unit = match[2] ?? "s";
  const factor = unit === "ms" ? 0.001 : unit === "s" ? 1 : unit === "m" ? 60 : 3600;
  return value * factor;
}
