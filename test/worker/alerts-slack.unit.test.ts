/**
 * The Slack message for an alert: its blocks and wording, escaping of the
 * values that callers control, and Slack's limits on oversized input.
 */
import { describe, expect, it } from "vitest";
import {
  BLOCKS_MAX,
  CONTEXT_TEXT_MAX,
  FALLBACK_TEXT_MAX,
  FIELD_TEXT_MAX,
  FIELDS_MAX,
  HEADER_TEXT_MAX,
  SECTION_TEXT_MAX,
  slackMessage,
  truncateMrkdwn,
} from "../../shared/alerts/slack";
import { formatNumber } from "../../shared/alerts/statistics";
import type { AlertNotice } from "../../shared/alerts/types";

interface TextObject {
  type: string;
  text: string;
}
interface Block {
  type: string;
  text?: TextObject;
  fields?: TextObject[];
  elements?: TextObject[];
}

const firing: AlertNotice = {
  alertId: 42,
  state: "firing",
  severity: "critical",
  rule: "drift",
  model: "fraud",
  version: "v3",
  role: "canary",
  metric: "drift",
  dimension: "income",
  value: 0.000123456,
  threshold: 0.05,
  comparison: "below",
  statistics: [
    {
      metric: "drift",
      name: "KS p-value",
      value: 0.000123456,
      threshold: 0.05,
      comparison: "below",
      violating: true,
    },
    {
      metric: "psi",
      name: "PSI",
      value: 0.41,
      threshold: 0.25,
      comparison: "above",
      violating: true,
    },
  ],
  windowSeconds: 3600,
  windowStart: "2026-11-26T01:00:00.000Z",
  firstSeenAt: "2026-11-26T01:05:00.000Z",
  lastSeenAt: "2026-11-26T02:05:00.000Z",
  resolvedAt: null,
  count: 3,
  summary: "income drifted (KS p = 0.0001235 < 0.05)",
  link: "https://airlock.example.com/admin/models/fraud/monitoring?window=2026-11-26T01:00:00Z&role=canary",
};

const resolved: AlertNotice = {
  ...firing,
  state: "resolved",
  value: 0.31,
  statistics: [
    {
      metric: "drift",
      name: "KS p-value",
      value: 0.31,
      threshold: 0.05,
      comparison: "below",
      violating: false,
    },
    {
      metric: "psi",
      name: "PSI",
      value: 0.0029,
      threshold: 0.25,
      comparison: "above",
      violating: false,
    },
  ],
  resolvedAt: "2026-11-26T03:35:00.000Z",
  count: 5,
};

function blocksOf(notice: AlertNotice): Block[] {
  return slackMessage(notice).blocks as Block[];
}

/** Every text object in the message (header, sections, fields, context). */
function texts(blocks: Block[]): TextObject[] {
  return blocks.flatMap((block) => [
    ...(block.text ? [block.text] : []),
    ...(block.fields ?? []),
    ...(block.elements ?? []),
  ]);
}

function mrkdwnTexts(notice: AlertNotice): string[] {
  const message = slackMessage(notice);
  return [
    message.text,
    ...texts(message.blocks as Block[])
      .filter((t) => t.type === "mrkdwn")
      .map((t) => t.text),
  ];
}

/** Checks every limit this message is subject to. */
function expectWithinLimits(notice: AlertNotice) {
  const message = slackMessage(notice);
  const blocks = message.blocks as Block[];
  expect(blocks.length).toBeLessThanOrEqual(BLOCKS_MAX);
  expect(message.text.length).toBeLessThanOrEqual(FALLBACK_TEXT_MAX);
  for (const block of blocks) {
    if (block.type === "header")
      expect(block.text?.text.length).toBeLessThanOrEqual(HEADER_TEXT_MAX);
    if (block.type === "section" && block.text) {
      expect(block.text.text.length).toBeLessThanOrEqual(SECTION_TEXT_MAX);
    }
    if (block.fields) {
      expect(block.fields.length).toBeLessThanOrEqual(FIELDS_MAX);
      for (const f of block.fields) expect(f.text.length).toBeLessThanOrEqual(FIELD_TEXT_MAX);
    }
    for (const element of block.elements ?? []) {
      expect(element.text.length).toBeLessThanOrEqual(CONTEXT_TEXT_MAX);
    }
  }
  return message;
}

describe("slackMessage, firing", () => {
  it("has a header, the summary, the fields and a context with the link", () => {
    const blocks = blocksOf(firing);
    expect(blocks.map((b) => b.type)).toEqual(["header", "section", "section", "context"]);
    expect(blocks[0]?.text).toEqual({
      type: "plain_text",
      text: ":rotating_light: [CRITICAL] fraud — drift",
      emoji: true,
    });
    expect(blocks[1]?.text?.text).toBe("income drifted (KS p = 0.0001235 &lt; 0.05)");
    const fields = (blocks[2]?.fields ?? []).map((f) => f.text);
    expect(fields).toEqual([
      "*Model*\nfraud",
      "*Version / role*\nv3 / canary",
      "*Metric*\ndrift · income",
      "*Values*\nKS p-value 0.0001235 (below the threshold 0.05); PSI 0.41 (above the threshold 0.25)",
      "*Window*\n<!date^1795654800^{date_short_pretty} {time_secs}|2026-11-26T01:00:00.000Z> (1h)",
      "*First seen*\n<!date^1795655100^{date_short_pretty} {time_secs}|2026-11-26T01:05:00.000Z>",
      "*Last seen*\n<!date^1795658700^{date_short_pretty} {time_secs}|2026-11-26T02:05:00.000Z>",
      "*Evaluations*\n3",
    ]);
    expect(blocks[3]?.elements?.[0]?.text).toBe(
      "Alert #42 · rule drift · <https://airlock.example.com/admin/models/fraud/monitoring?window=2026-11-26T01:00:00Z&amp;role=canary|Open in Airlock>",
    );
  });

  it("marks warnings with :warning: and names the severity in the fallback text", () => {
    const message = slackMessage({ ...firing, severity: "warning" });
    const header = (message.blocks as Block[])[0]?.text?.text;
    expect(header).toBe(":warning: [WARNING] fraud — drift");
    expect(message.text).toBe(
      "[WARNING] fraud — drift: income drifted (KS p = 0.0001235 &lt; 0.05)",
    );
  });

  it("names Airlock for its own health alerts and leaves out an absent window", () => {
    const system: AlertNotice = {
      ...firing,
      rule: "dead_letters",
      model: "",
      version: "",
      role: "",
      metric: "dead_letters",
      dimension: "",
      value: 12,
      threshold: 0,
      comparison: "above",
      statistics: [],
      windowSeconds: null,
      windowStart: null,
    };
    const blocks = blocksOf(system);
    expect(blocks[0]?.text?.text).toBe(":rotating_light: [CRITICAL] Airlock — dead_letters");
    const fields = (blocks[2]?.fields ?? []).map((f) => f.text);
    expect(fields).toContain("*Model*\nAirlock (system)");
    expect(fields).toContain("*Version / role*\n—");
    // An alert recorded before statistics were kept: its one value, named by its metric.
    expect(fields).toContain("*Value*\ndead letters 12 (above the threshold 0)");
    expect(fields.some((f) => f.startsWith("*Window*"))).toBe(false);
  });

  it("shows no link for a URL that is not http(s) or too long", () => {
    for (const link of [
      "javascript:alert(1)",
      "not a url",
      `https://a.example/${"x".repeat(3000)}`,
    ]) {
      const context = blocksOf({ ...firing, link }).at(-1)?.elements?.[0]?.text ?? "";
      expect(context).toBe("Alert #42 · rule drift");
    }
  });

  it("keeps a | in the link from ending the URL", () => {
    const context = blocksOf({ ...firing, link: "https://a.example/x?q=a|b" }).at(-1)?.elements?.[0]
      ?.text;
    expect(context).toContain("<https://a.example/x?q=a%7Cb|Open in Airlock>");
  });
});

describe("slackMessage, resolved", () => {
  it("says resolved, how long it fired and the last values, in the direction they stand", () => {
    const message = slackMessage(resolved);
    const blocks = message.blocks as Block[];
    expect(blocks.map((b) => b.type)).toEqual(["header", "section", "section", "context"]);
    expect(blocks[0]?.text?.text).toBe(":white_check_mark: Resolved: fraud — drift");
    const body = blocks[1]?.text?.text ?? "";
    expect(body).toContain("*Resolved* after firing for 2h 30m (5 evaluations).");
    expect(body).toContain(
      "Last values: KS p-value 0.31 (not below the threshold 0.05); PSI 0.0029 (not above the threshold 0.25).",
    );
    expect(message.text).toBe(
      "Resolved: fraud — drift after 2h 30m. Last values: KS p-value 0.31 (not below the threshold 0.05); PSI 0.0029 (not above the threshold 0.25).",
    );
    // An alert recorded before statistics were kept: its last value is not said to break the rule.
    expect(slackMessage({ ...resolved, statistics: [] }).text).toBe(
      "Resolved: fraud — drift after 2h 30m. Last value: drift statistic 0.31 (not below the threshold 0.05).",
    );
    expect(blocks[2]?.fields?.map((f) => f.text)).toContain(
      "*Resolved at*\n<!date^1795664100^{date_short_pretty} {time_secs}|2026-11-26T03:35:00.000Z>",
    );
  });

  it("falls back to the last seen time when the resolution time is missing", () => {
    const body = blocksOf({ ...resolved, resolvedAt: null, count: 1 })[1]?.text?.text;
    expect(body).toContain("after firing for 1h (1 evaluation)");
  });
});

describe("slackMessage, escaping", () => {
  const hostile: AlertNotice = {
    ...firing,
    model: "<!channel> <https://evil.example|click>",
    version: "<@U123>",
    role: "a&b",
    rule: "<!here>",
    dimension: "<https://evil.example|income>",
    summary: "drift <!everyone> & <https://evil.example|details>",
  };

  it("escapes &, < and > in every mrkdwn text so that no link or mention is formed", () => {
    for (const text of mrkdwnTexts(hostile)) {
      // Our own date tokens are the only markup allowed to start with "<!".
      expect(text).not.toMatch(/<(?!!date\^\d+\^)[!@#]/);
      expect(text).not.toContain("<https://evil");
      expect(text).not.toMatch(/&(?!amp;|lt;|gt;)/);
    }
    const blocks = blocksOf(hostile);
    expect(blocks[1]?.text?.text).toBe(
      "drift &lt;!everyone&gt; &amp; &lt;https://evil.example|details&gt;",
    );
    expect(blocks[2]?.fields?.[0]?.text).toBe(
      "*Model*\n&lt;!channel&gt; &lt;https://evil.example|click&gt;",
    );
    expect(blocks[2]?.fields?.[1]?.text).toBe("*Version / role*\n&lt;@U123&gt; / a&amp;b");
  });

  it("leaves the header as plain text, which Slack never turns into links or mentions", () => {
    expect(blocksOf(hostile)[0]?.text).toMatchObject({ type: "plain_text" });
  });

  it("does not let a value that looks like a date token through unescaped", () => {
    const fields = blocksOf({ ...firing, model: "<!date^1^{date}|x> <!channel>" })[2]?.fields;
    expect(fields?.[0]?.text).toBe("*Model*\n&lt;!date^1^{date}|x&gt; &lt;!channel&gt;");
  });
});

describe("slackMessage, limits", () => {
  const huge: AlertNotice = {
    ...firing,
    model: "m".repeat(5000),
    version: "v".repeat(3000),
    role: "r".repeat(3000),
    rule: "rule_".repeat(1000),
    metric: "x".repeat(2500),
    dimension: "<".repeat(2000),
    summary: `${"&".repeat(4000)} ${"s".repeat(4000)}`,
  };

  it("keeps every text within Slack's limits on oversized input", () => {
    const message = expectWithinLimits(huge);
    const blocks = message.blocks as Block[];
    expect(blocks[0]?.text?.text).toHaveLength(HEADER_TEXT_MAX);
    expect(blocks[0]?.text?.text.endsWith("…")).toBe(true);
    expect(blocks[1]?.text?.text.endsWith("…")).toBe(true);
    expect(message.text.endsWith("…")).toBe(true);
    expectWithinLimits({ ...huge, state: "resolved", resolvedAt: firing.lastSeenAt });
  });

  it("cuts escaped text between entities, never inside one", () => {
    const summary = blocksOf(huge)[1]?.text?.text ?? "";
    expect(summary).toMatch(/^(&amp;)+…$/);
    const metric = blocksOf(huge)[2]?.fields?.[2]?.text ?? "";
    expect(metric.length).toBeLessThanOrEqual(FIELD_TEXT_MAX);
    expect(metric).toMatch(/…$/);
    expect(truncateMrkdwn("ab&lt;cd", 5)).toBe("ab…");
    expect(truncateMrkdwn("ab<!date^1^{t}|x>", 10)).toBe("ab…");
  });

  it("does not split a surrogate pair", () => {
    const header = blocksOf({ ...firing, model: "🚀".repeat(200) })[0]?.text?.text ?? "";
    expect(header.length).toBeLessThanOrEqual(HEADER_TEXT_MAX);
    expect(header).toMatch(/🚀…$/u);
    expect(header.at(-2)).not.toMatch(/[\uD800-\uDBFF]/);
  });

  it("keeps the context within its limit however long the rule", () => {
    const context = blocksOf(huge).at(-1)?.elements?.[0]?.text ?? "";
    expect(context.length).toBeLessThanOrEqual(CONTEXT_TEXT_MAX);
  });

  it("keeps the block and field counts within Slack's limits", () => {
    expect(blocksOf(firing).length).toBeLessThanOrEqual(BLOCKS_MAX);
    expect(blocksOf(firing)[2]?.fields?.length).toBe(8);
    expect(FIELDS_MAX).toBe(10);
  });
});

describe("formatNumber", () => {
  it.each([
    [0.000123456, "0.0001235"],
    [12.3456, "12.35"],
    [0.05, "0.05"],
    [1234.5678, "1235"],
    [123456, "123456"],
    [-0.5, "-0.5"],
    [0, "0"],
    [1e-9, "1e-9"],
    [null, "—"],
  ] as const)("formats %s as %s", (value, text) => {
    expect(formatNumber(value)).toBe(text);
  });
});
