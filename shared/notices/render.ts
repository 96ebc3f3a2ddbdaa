import { webhookBody } from "../alerts/signing";
import { type SlackMessage, slackMessage } from "../alerts/slack";
import { type TestNotice, testSlackMessage, testWebhookBody } from "../alerts/test-notice";
import type { AlertNotice } from "../alerts/types";
import { type ApprovalNotice, approvalSlackMessage, approvalWebhookBody } from "./approval";
import { type CheckpointNotice, checkpointSlackMessage, checkpointWebhookBody } from "./checkpoint";

/** Any notice a destination is sent: an alert's, a test, an approval's or an audit checkpoint. */
export type Notice = AlertNotice | TestNotice | ApprovalNotice | CheckpointNotice;

const isApproval = (notice: Notice): notice is ApprovalNotice =>
  "type" in notice && notice.type.startsWith("approval.");
const isCheckpoint = (notice: Notice): notice is CheckpointNotice =>
  "type" in notice && notice.type === "audit.checkpoint";

/** The Slack Block Kit message of a notice. */
export function noticeSlackMessage(notice: Notice): SlackMessage {
  if (isApproval(notice)) return approvalSlackMessage(notice);
  if (isCheckpoint(notice)) return checkpointSlackMessage(notice);
  return notice.state === "test" ? testSlackMessage(notice) : slackMessage(notice);
}

/** The JSON body of a notice for a signed webhook: `type` first, then what it says. */
export function noticeWebhookBody(notice: Notice): string {
  if (isApproval(notice)) return approvalWebhookBody(notice);
  if (isCheckpoint(notice)) return checkpointWebhookBody(notice);
  return notice.state === "test" ? testWebhookBody(notice) : webhookBody(notice);
}
