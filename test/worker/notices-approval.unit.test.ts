/**
 * Approval notices as they are sent: the Slack message (its wording, the
 * escaping of what people typed, Slack's limits) and the signed webhook's
 * body, which depends on the notice alone.
 */
import { describe, expect, it } from "vitest";
import {
  CONTEXT_TEXT_MAX,
  FALLBACK_TEXT_MAX,
  FIELD_TEXT_MAX,
  HEADER_TEXT_MAX,
  SECTION_TEXT_MAX,
} from "../../shared/alerts/slack";
import {
  type ApprovalNotice,
  approvalSlackMessage,
  approvalSummary,
  approvalWebhookBody,
  peopleOf,
} from "../../shared/notices/approval";
import { noticeSlackMessage, noticeWebhookBody } from "../../shared/notices/render";

interface Block {
  type: string;
  text?: { text: string };
  fields?: { text: string }[];
  elements?: { text: string }[];
}

const requested: ApprovalNotice = {
  type: "approval.requested",
  at: "2026-12-07T10:00:00.000Z",
  approval: {
    id: "apr_abc",
    model: "credit",
    action: "canary.raise",
    target: { version: "v2", percent: 25 },
    change: "sends 25% of traffic to the canary v2",
    reason: "a week in shadow",
    roles: ["owner", "risk_officer"],
    rolesStillNeeded: ["owner", "risk_officer"],
    status: "pending",
    requestedBy: "prn_op",
    requestedAt: "2026-12-07T10:00:00.000Z",
    expiresAt: "2026-12-14T10:00:00.000Z",
  },
  decision: null,
  applied: null,
  people: { prn_op: "Omar Ops", prn_risk: "Rita Risk" },
  link: "https://airlock.example/admin/approvals/apr_abc",
};

const decided: ApprovalNotice = {
  ...requested,
  type: "approval.decided",
  approval: { ...requested.approval, rolesStillNeeded: ["owner"] },
  decision: { by: "prn_risk", decision: "approve", role: "risk_officer", comment: "holds" },
};

describe("approval notices", () => {
  it("say who did what and what is still needed, in plain words", () => {
    expect(approvalSummary(requested)).toBe(
      "Omar Ops asks for approval of a change of credit: sends 25% of traffic to the canary v2. It needs the model's owner and a risk officer.",
    );
    expect(approvalSummary(decided)).toBe(
      "Rita Risk approved as risk officer the change of credit: sends 25% of traffic to the canary v2. It still needs the model's owner.",
    );
    const rejected: ApprovalNotice = {
      ...decided,
      approval: { ...decided.approval, status: "rejected", rolesStillNeeded: [] },
      decision: { by: "prn_risk", decision: "reject", role: null, comment: "too early" },
    };
    expect(approvalSummary(rejected)).toBe(
      'Rita Risk rejected the change of credit: sends 25% of traffic to the canary v2: "too early"',
    );
    // A principal whose name is unknown keeps its id.
    expect(approvalSummary({ ...requested, people: {} })).toMatch(/^prn_op asks/);
    expect(peopleOf(decided)).toEqual(["prn_op", "prn_risk"]);
  });

  it("escape what people typed, so it can neither link nor mention", () => {
    const hostile: ApprovalNotice = {
      ...decided,
      approval: { ...decided.approval, reason: "<!channel> see <https://evil.example|here> & now" },
      decision: {
        ...(decided.decision as NonNullable<ApprovalNotice["decision"]>),
        comment: "<@U123>",
      },
      people: { ...decided.people, prn_risk: "<!here> Rita" },
    };
    const text = JSON.stringify(approvalSlackMessage(hostile));
    expect(text).not.toContain("<!channel>");
    expect(text).not.toContain("<!here>");
    expect(text).not.toContain("<@U123>");
    expect(text).not.toContain("<https://evil");
    expect(text).toContain("&lt;!channel&gt; see &lt;https://evil.example|here&gt; &amp; now");
    // Our own link is the only one.
    expect(text).toContain("<https://airlock.example/admin/approvals/apr_abc|Open in Airlock>");
  });

  it("stay within Slack's limits whatever was typed", () => {
    const long = "x".repeat(20_000);
    const big: ApprovalNotice = {
      ...decided,
      approval: { ...decided.approval, reason: long, change: long, model: long },
      decision: { ...(decided.decision as NonNullable<ApprovalNotice["decision"]>), comment: long },
    };
    const message = approvalSlackMessage(big);
    expect(message.text.length).toBeLessThanOrEqual(FALLBACK_TEXT_MAX);
    const blocks = message.blocks as Block[];
    expect(blocks[0]?.text?.text.length).toBeLessThanOrEqual(HEADER_TEXT_MAX);
    expect(blocks[1]?.text?.text.length).toBeLessThanOrEqual(SECTION_TEXT_MAX);
    for (const field of blocks[2]?.fields ?? [])
      expect(field.text.length).toBeLessThanOrEqual(FIELD_TEXT_MAX);
    expect(blocks[3]?.elements?.[0]?.text.length).toBeLessThanOrEqual(CONTEXT_TEXT_MAX);
  });

  it("send webhooks a body of the notice alone, with people as id and name", () => {
    const body = JSON.parse(approvalWebhookBody(decided));
    expect(Object.keys(body)).toEqual([
      "type",
      "at",
      "approval",
      "decision",
      "applied",
      "summary",
      "link",
    ]);
    expect(body.approval.requestedBy).toEqual({ id: "prn_op", name: "Omar Ops" });
    expect(body.decision).toEqual({
      by: { id: "prn_risk", name: "Rita Risk" },
      decision: "approve",
      role: "risk_officer",
      comment: "holds",
    });
    expect(approvalWebhookBody({ ...decided, extra: "x" } as ApprovalNotice)).toBe(
      approvalWebhookBody(decided),
    );
    // The dispatcher picks the approval renderers by type.
    expect(noticeWebhookBody(decided)).toBe(approvalWebhookBody(decided));
    expect(noticeSlackMessage(decided)).toEqual(approvalSlackMessage(decided));
  });
});
