import {
  CONTEXT_TEXT_MAX,
  escapeMrkdwn,
  field,
  header,
  linkText,
  mrkdwn,
  type SlackMessage,
  section,
  timeText,
  truncateMrkdwn,
} from "../alerts/slack";
import type { Checkpoint } from "../audit/checkpoint";

/**
 * A signed checkpoint of the audit trail, sent to the destinations that ask
 * for `audit.checkpoint` (no destination gets it unasked): a copy of it kept
 * in a Slack channel or by a webhook's receiver is a checkpoint kept
 * elsewhere, which an export of the trail can be verified against without
 * trusting Airlock (`npm run audit:verify -- FILE --checkpoint FILE`).
 */
export interface CheckpointEvent {
  type: "audit.checkpoint";
  /** The checkpoint as signed and stored outside Postgres. */
  checkpoint: Checkpoint;
  /** Rows since the checkpoint before it (its `seq` when it is the first). */
  rows: number;
}

/** The notice as sent: the event, and where to read the checkpoints. */
export interface CheckpointNotice extends CheckpointEvent {
  link: string;
}

/** Where the checkpoints are listed: the admin API's checkpoint list. */
export function checkpointsLink(base: string | undefined): string {
  return `${(base ?? "").replace(/\/+$/, "")}/admin/audit/checkpoints`;
}

export function checkpointSummary(notice: CheckpointEvent): string {
  const { checkpoint, rows } = notice;
  return `The audit trail reached row ${checkpoint.seq} (${rows} new rows); its head is signed. Keep this checkpoint: an export of the trail verified against it shows any rewrite up to row ${checkpoint.seq}.`;
}

/** Slack Block Kit: the summary, and the checkpoint's JSON to keep, whole. */
export function checkpointSlackMessage(notice: CheckpointNotice): SlackMessage {
  const { checkpoint } = notice;
  const kept = JSON.stringify({
    seq: checkpoint.seq,
    hash: checkpoint.hash,
    at: checkpoint.at,
    keyId: checkpoint.keyId,
    signature: checkpoint.signature,
  });
  const context = [`Key ${escapeMrkdwn(checkpoint.keyId)}`, timeText(checkpoint.at)];
  const link = linkText(notice.link);
  if (link) context.push(link);
  return {
    text: escapeMrkdwn(checkpointSummary(notice)),
    blocks: [
      header(`:lock: Audit checkpoint: row ${checkpoint.seq}`),
      section(escapeMrkdwn(checkpointSummary(notice))),
      {
        type: "section",
        fields: [field("Row", String(checkpoint.seq)), field("Hash", checkpoint.hash)].map(mrkdwn),
      },
      // Code spans are not escaped by Slack: the JSON holds only hex, base64url and a timestamp.
      section(`\`\`\`${kept}\`\`\``),
      {
        type: "context",
        elements: [{ type: "mrkdwn", text: truncateMrkdwn(context.join(" · "), CONTEXT_TEXT_MAX) }],
      },
    ],
  };
}

/**
 * The JSON body of a checkpoint notice for a signed webhook: the receiver
 * keeps it as it is, and `npm run audit:verify --checkpoint` reads its
 * `checkpoint` field.
 */
export function checkpointWebhookBody(notice: CheckpointNotice): string {
  const { checkpoint } = notice;
  return JSON.stringify({
    type: notice.type,
    at: checkpoint.at,
    summary: checkpointSummary(notice),
    rows: notice.rows,
    checkpoint: {
      seq: checkpoint.seq,
      hash: checkpoint.hash,
      at: checkpoint.at,
      keyId: checkpoint.keyId,
      signature: checkpoint.signature,
    },
    link: notice.link,
  });
}
