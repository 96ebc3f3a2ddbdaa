/**
 * A destination's test notice as Slack and a webhook receive it: marked as a
 * test first thing, the operator's destination name escaped, and a webhook
 * body without an alert in it, the same bytes on every retry.
 */
import { describe, expect, it } from "vitest";
import {
  type TestNotice,
  testSlackMessage,
  testWebhookBody,
} from "../../shared/alerts/test-notice";

const notice: TestNotice = {
  state: "test",
  deliveryId: 7,
  destinationId: "dst_abc",
  destinationName: "risk <!here> & <https://evil.example|click>",
  requestedAt: "2026-12-07T06:00:00.000Z",
};

describe("test notices", () => {
  it("open a Slack message with 'Test notice from Airlock' and escape the destination's name", () => {
    const message = testSlackMessage(notice);
    expect(message.text.startsWith("Test notice from Airlock: ")).toBe(true);
    expect(message.blocks[0]).toEqual({
      type: "header",
      text: { type: "plain_text", text: "Test notice from Airlock" },
    });
    const text = JSON.stringify(message);
    expect(text).not.toContain("<!here>");
    expect(text).not.toContain("<https://evil.example");
    expect(text).toContain("&lt;!here&gt; &amp; &lt;https://evil.example|click&gt;");
    expect(text).toContain("Test delivery #7");
    expect(text).toContain("<!date^1796623200^");
  });

  it("give a webhook type alert.test, no alert object, and the same bytes each time", () => {
    const body = testWebhookBody(notice);
    expect(testWebhookBody({ ...notice })).toBe(body);
    const parsed = JSON.parse(body) as Record<string, unknown>;
    expect(parsed).toEqual({
      type: "alert.test",
      test: true,
      deliveryId: 7,
      destination: { id: "dst_abc", name: notice.destinationName },
      requestedAt: "2026-12-07T06:00:00.000Z",
      message: expect.stringMatching(/^Test notice from Airlock: /),
    });
    expect(parsed).not.toHaveProperty("alert");
  });
});
