import {
  CONTEXT_TEXT_MAX,
  escapeMrkdwn,
  FALLBACK_TEXT_MAX,
  HEADER_TEXT_MAX,
  SECTION_TEXT_MAX,
  type SlackMessage,
  truncateMrkdwn,
  truncatePlain,
} from "./slack";

/**
 * A destination's test notice (POST /admin/alert-destinations/{id}/test):
 * sent like an alert's, through the queue and the destination's object, and
 * signed the same way, but about no alert. It says so first thing, and a
 * webhook's body carries no `alert` object at all, so that a receiver that
 * acts on alerts cannot mistake it for one.
 */
export interface TestNotice {
  /** Tells it from an alert's notice (`firing` or `resolved`). */
  state: "test";
  deliveryId: number;
  destinationId: string;
  destinationName: string;
  /** When the test was asked for (ISO 8601): the same in every retry of the send. */
  requestedAt: string;
}

/** How every test notice begins, in Slack and in a webhook's `message`. */
export const TEST_NOTICE_TITLE = "Test notice from Airlock";

function sentence(notice: TestNotice): string {
  return `${TEST_NOTICE_TITLE}: the alert destination "${notice.destinationName}" receives notices. No alert is firing; nothing needs doing.`;
}

export function testSlackMessage(notice: TestNotice): SlackMessage {
  const requested = Date.parse(notice.requestedAt);
  const when = Number.isNaN(requested)
    ? escapeMrkdwn(notice.requestedAt)
    : `<!date^${Math.floor(requested / 1000)}^{date_short_pretty} {time_secs}|${escapeMrkdwn(new Date(requested).toISOString())}>`;
  return {
    text: truncateMrkdwn(escapeMrkdwn(sentence(notice)), FALLBACK_TEXT_MAX),
    blocks: [
      {
        type: "header",
        text: { type: "plain_text", text: truncatePlain(TEST_NOTICE_TITLE, HEADER_TEXT_MAX) },
      },
      {
        type: "section",
        text: {
          type: "mrkdwn",
          text: truncateMrkdwn(
            `This message checks the alert destination *${escapeMrkdwn(notice.destinationName)}* (\`${escapeMrkdwn(notice.destinationId)}\`). No alert is firing; nothing needs doing.`,
            SECTION_TEXT_MAX,
          ),
        },
      },
      {
        type: "context",
        elements: [
          {
            type: "mrkdwn",
            text: truncateMrkdwn(
              `Test delivery #${notice.deliveryId} · requested ${when}`,
              CONTEXT_TEXT_MAX,
            ),
          },
        ],
      },
    ],
  };
}

/**
 * The JSON body of a test notice for a signed webhook: `type` `alert.test`
 * and `test: true`, with no `alert` object. Like an alert's body it depends
 * on the notice only, so a retry sends the same bytes.
 */
export function testWebhookBody(notice: TestNotice): string {
  return JSON.stringify({
    type: "alert.test",
    test: true,
    deliveryId: notice.deliveryId,
    destination: { id: notice.destinationId, name: notice.destinationName },
    requestedAt: notice.requestedAt,
    message: sentence(notice),
  });
}
