import { webhookBody } from "../alerts/signing";
import { type SlackMessage, slackMessage } from "../alerts/slack";
import { type TestNotice, testSlackMessage, testWebhookBody } from "../alerts/test-notice";
import type { AlertNotice } from "../alerts/types";
import { type ApprovalNotice, approvalSlackMessage, approvalWebhookBody } from "./approval";

/** Any notice a destination is sent: an alert's, a test, or an approval's. */
export type Notice = AlertNotice | TestNotice | ApprovalNotice;

const isApproval = (notice: Notice): notice is ApprovalNotice =>
  "type" in notice && notice.type.startsWith("approval.");

/** The Slack Block Kit message of a notice. */
export function noticeSlackMessage(notice: Notice): SlackMessage {
  if (isApproval(notice)) return approvalSlackMessage(notice);
  return notice.state === "test" ? testSlackMessage(notice) : slackMessage(notice);
}

/** The JSON body of a notice for a signed webhook: `type` first, then what it says. */
export function noticeWebhookBody(notice: Notice): string {
  if (isApproval(notice)) return approvalWebhookBody(notice);
  return notice.state === "test" ? testWebhookBody(notice) : webhookBody(notice);
}
