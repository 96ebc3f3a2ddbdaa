import { describeStatistics, statisticName } from "./statistics";
import { type AlertNotice, type AlertStatistic, SYSTEM_MODEL } from "./types";

/**
 * A Slack Block Kit message for an incoming webhook: one alert firing or
 * resolved. Values that operators or callers control (model names,
 * dimensions, summaries) are escaped so that they cannot form links or
 * mentions, and every text is cut to Slack's limits, which reject the whole
 * message when exceeded.
 */

/** Slack's documented limits for what this message uses. */
export const HEADER_TEXT_MAX = 150;
export const SECTION_TEXT_MAX = 3000;
export const FIELD_TEXT_MAX = 2000;
export const FIELDS_MAX = 10;
export const CONTEXT_TEXT_MAX = 3000;
export const BLOCKS_MAX = 50;
/** Slack accepts far longer fallback text; notifications show only the start. */
export const FALLBACK_TEXT_MAX = 3000;
export const LINK_URL_MAX = 3000;

const ELLIPSIS = "…";

export interface SlackMessage {
  text: string;
  blocks: unknown[];
}

export function slackMessage(notice: AlertNotice): SlackMessage {
  const blocks = notice.state === "resolved" ? resolvedBlocks(notice) : firingBlocks(notice);
  const link = linkText(notice.link);
  const context = [`Alert #${notice.alertId}`, `rule ${escapeMrkdwn(notice.rule)}`];
  if (link) context.push(link);
  blocks.push({
    type: "context",
    elements: [{ type: "mrkdwn", text: truncateMrkdwn(context.join(" · "), CONTEXT_TEXT_MAX) }],
  });
  return { text: fallbackText(notice), blocks: blocks.slice(0, BLOCKS_MAX) };
}

function firingBlocks(notice: AlertNotice): unknown[] {
  const icon = notice.severity === "critical" ? ":rotating_light:" : ":warning:";
  const title = `${icon} [${notice.severity.toUpperCase()}] ${subject(notice)}`;
  const fields: string[] = [
    field("Model", modelName(notice)),
    field("Version / role", [notice.version, notice.role].filter(Boolean).join(" / ") || "—"),
    field("Metric", [notice.metric, notice.dimension].filter(Boolean).join(" · ") || "—"),
    field(valuesLabel(notice), valueText(notice)),
  ];
  if (notice.windowStart !== null || notice.windowSeconds !== null) {
    const length = notice.windowSeconds === null ? "" : ` (${duration(notice.windowSeconds)})`;
    fields.push(markupField("Window", `${timeText(notice.windowStart)}${length}`));
  }
  fields.push(
    markupField("First seen", timeText(notice.firstSeenAt)),
    markupField("Last seen", timeText(notice.lastSeenAt)),
    field("Evaluations", String(notice.count)),
  );
  return [
    header(title),
    section(escapeMrkdwn(notice.summary || "No summary.")),
    { type: "section", fields: fields.slice(0, FIELDS_MAX).map(mrkdwn) },
  ];
}

function resolvedBlocks(notice: AlertNotice): unknown[] {
  const title = `:white_check_mark: Resolved: ${subject(notice)}`;
  const lines = [
    `*Resolved* after firing for ${firedFor(notice)} (${countText(notice.count)}).`,
    `Last ${valuesLabel(notice).toLowerCase()}: ${valueText(notice)}.`,
  ];
  if (notice.summary) lines.push(escapeMrkdwn(notice.summary));
  const fields = [
    field("Model", modelName(notice)),
    field("Version / role", [notice.version, notice.role].filter(Boolean).join(" / ") || "—"),
    field("Metric", [notice.metric, notice.dimension].filter(Boolean).join(" · ") || "—"),
    markupField("Resolved at", timeText(notice.resolvedAt ?? notice.lastSeenAt)),
  ];
  return [
    header(title),
    section(lines.join("\n")),
    { type: "section", fields: fields.map(mrkdwn) },
  ];
}

function fallbackText(notice: AlertNotice): string {
  const text =
    notice.state === "resolved"
      ? `Resolved: ${subject(notice)} after ${firedFor(notice)}. Last ${valuesLabel(notice).toLowerCase()}: ${valueText(notice)}.`
      : `[${notice.severity.toUpperCase()}] ${subject(notice)}: ${notice.summary || valueText(notice)}`;
  return truncateMrkdwn(escapeMrkdwn(text), FALLBACK_TEXT_MAX);
}

/** `<model> — <rule>`, unescaped: the header is plain text and the fallback escapes it whole. */
function subject(notice: AlertNotice): string {
  return `${notice.model === SYSTEM_MODEL ? "Airlock" : notice.model} — ${notice.rule}`;
}

function modelName(notice: AlertNotice): string {
  return notice.model === SYSTEM_MODEL ? "Airlock (system)" : notice.model;
}

/**
 * The statistics a notice reports, each with its own threshold and the
 * direction it stands in (an alert recorded before statistics were kept:
 * its one value, breaking the rule while firing).
 */
function noticeStatistics(notice: AlertNotice): AlertStatistic[] {
  if (notice.statistics?.length) return notice.statistics;
  return [
    {
      metric: notice.metric,
      name: statisticName(notice.metric),
      value: notice.value,
      threshold: notice.threshold,
      comparison: notice.comparison,
      violating: notice.state === "firing",
    },
  ];
}

/** e.g. `KS p-value 0.0001 (below the threshold 0.05); PSI 0.41 (above the threshold 0.25)`; unescaped. */
function valueText(notice: AlertNotice): string {
  return describeStatistics(noticeStatistics(notice));
}

const valuesLabel = (notice: AlertNotice) =>
  noticeStatistics(notice).length > 1 ? "Values" : "Value";

function firedFor(notice: AlertNotice): string {
  const start = Date.parse(notice.firstSeenAt);
  const end = Date.parse(notice.resolvedAt ?? notice.lastSeenAt);
  if (Number.isNaN(start) || Number.isNaN(end)) return "an unknown time";
  return duration(Math.max(0, Math.round((end - start) / 1000)));
}

function countText(count: number): string {
  return count === 1 ? "1 evaluation" : `${count} evaluations`;
}

/** Seconds as the two largest units: `45s`, `5m`, `1h 30m`, `2d 3h`. */
export function duration(seconds: number): string {
  const units: [string, number][] = [
    ["d", 86_400],
    ["h", 3_600],
    ["m", 60],
    ["s", 1],
  ];
  const parts: string[] = [];
  let rest = Math.max(0, Math.round(seconds));
  for (const [name, size] of units) {
    if (parts.length === 2) break;
    const amount = Math.floor(rest / size);
    rest -= amount * size;
    if (amount > 0) parts.push(`${amount}${name}`);
    else if (parts.length > 0) break;
  }
  return parts.length > 0 ? parts.join(" ") : "0s";
}

/** A time in each reader's own time zone, falling back to the ISO text. */
export function timeText(iso: string | null): string {
  if (iso === null) return "—";
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return escapeMrkdwn(iso);
  const fallback = escapeMrkdwn(new Date(ms).toISOString());
  return `<!date^${Math.floor(ms / 1000)}^{date_short_pretty} {time_secs}|${fallback}>`;
}

/** The link as `<url|Open in Airlock>`, only for http(s) URLs within Slack's length. */
export function linkText(link: string): string | null {
  let url: URL;
  try {
    url = new URL(link);
  } catch {
    return null;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return null;
  // `|` would end the URL part of the link; `&`, `<` and `>` are escaped as everywhere.
  const href = escapeMrkdwn(url.href.replaceAll("|", "%7C"));
  if (href.length > LINK_URL_MAX) return null;
  return `<${href}|Open in Airlock>`;
}

/** A field `*Label*\nvalue` from a plain value, escaped. */
export function field(label: string, value: string): string {
  return markupField(label, escapeMrkdwn(value));
}

/** A field whose value is already mrkdwn (our own date tokens). */
export function markupField(label: string, markup: string): string {
  const prefix = `*${label}*\n`;
  return prefix + truncateMrkdwn(markup, FIELD_TEXT_MAX - prefix.length);
}

export function header(text: string) {
  return {
    type: "header",
    text: { type: "plain_text", text: truncatePlain(text, HEADER_TEXT_MAX), emoji: true },
  };
}

export function section(text: string) {
  return { type: "section", text: mrkdwn(truncateMrkdwn(text, SECTION_TEXT_MAX)) };
}

export function mrkdwn(text: string) {
  return { type: "mrkdwn", text };
}

/** Slack's three control characters, which would otherwise start links and mentions. */
export function escapeMrkdwn(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/** Cuts to at most `max` UTF-16 units (Slack counts characters, never more), ending in "…". */
export function truncatePlain(text: string, max: number): string {
  if (text.length <= max) return text;
  let cut = text.slice(0, max - ELLIPSIS.length);
  // Do not leave half of a surrogate pair.
  if (/[\uD800-\uDBFF]$/.test(cut)) cut = cut.slice(0, -1);
  return cut + ELLIPSIS;
}

/**
 * Like `truncatePlain` for escaped text, without leaving half an entity
 * (`&am…`) or half a `<...>` sequence that would break the markup.
 */
export function truncateMrkdwn(text: string, max: number): string {
  if (text.length <= max) return text;
  let cut = truncatePlain(text, max).slice(0, -ELLIPSIS.length);
  const amp = cut.lastIndexOf("&");
  if (amp >= 0 && !cut.includes(";", amp)) cut = cut.slice(0, amp);
  const open = cut.lastIndexOf("<");
  if (open >= 0 && !cut.includes(">", open)) cut = cut.slice(0, open);
  return cut + ELLIPSIS;
}
