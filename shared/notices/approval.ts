import {
  CONTEXT_TEXT_MAX,
  escapeMrkdwn,
  FALLBACK_TEXT_MAX,
  FIELDS_MAX,
  field,
  header,
  linkText,
  markupField,
  mrkdwn,
  type SlackMessage,
  section,
  timeText,
  truncateMrkdwn,
} from "../alerts/slack";

/**
 * Notices of approvals: a request asked for, a decision on it, and the
 * approved change applied. What happened is frozen when it happens (the
 * `ApprovalEvent`, stored with each delivery); who did it is kept as
 * principal ids, and their names are looked up when the notice is sent, so
 * that a person's details live with the principal alone.
 */
export type ApprovalNoticeType = "approval.requested" | "approval.decided" | "approval.applied";

export interface ApprovalEvent {
  type: ApprovalNoticeType;
  /** When it happened (ISO 8601). */
  at: string;
  approval: {
    id: string;
    model: string;
    action: string;
    target: Record<string, string | number | null>;
    /** What the change does, in words ("sends 25% of traffic to the canary v2"). */
    change: string;
    reason: string;
    roles: string[];
    rolesStillNeeded: string[];
    /** After this event: pending | approved | rejected | consumed. */
    status: string;
    requestedBy: string;
    requestedAt: string;
    expiresAt: string;
  };
  /** approval.decided: who decided, for which role, and what they said. */
  decision: {
    by: string;
    decision: "approve" | "reject";
    role: string | null;
    comment: string | null;
  } | null;
  /** approval.applied: who made the change, and the rollout's state version after it (null: a policy change). */
  applied: { by: string; stateVersion: number | null } | null;
}

/** The notice as sent: the event, the names of the people in it, and where to read more. */
export interface ApprovalNotice extends ApprovalEvent {
  /** Principal id → display name (an id with no principal keeps the id). */
  people: Record<string, string>;
  link: string;
}

/** The principal ids an event names, to look up their display names at send time. */
export function peopleOf(event: ApprovalEvent): string[] {
  const ids = [event.approval.requestedBy];
  if (event.decision) ids.push(event.decision.by);
  if (event.applied) ids.push(event.applied.by);
  return [...new Set(ids)];
}

/** Where a person reads the request: the approval's page on the admin API. */
export function approvalLink(base: string | undefined, id: string): string {
  return `${(base ?? "").replace(/\/+$/, "")}/admin/approvals/${encodeURIComponent(id)}`;
}

const ROLE_WORDS: Record<string, string> = {
  owner: "the model's owner",
  risk_officer: "a risk officer",
  review_board: "a review-board member",
  admin: "an admin",
};

export const roleWords = (roles: readonly string[]) =>
  roles.length === 0 ? "nobody" : roles.map((r) => ROLE_WORDS[r] ?? r).join(" and ");

const ROLE_NAMES: Record<string, string> = {
  owner: "owner",
  risk_officer: "risk officer",
  review_board: "review board",
  admin: "admin",
};

const nameOf = (notice: ApprovalNotice, id: string) => notice.people[id] ?? id;

/** One sentence for people, e.g. "Olga (owner) approved: … still needs a risk officer." */
export function approvalSummary(notice: ApprovalNotice): string {
  const { approval } = notice;
  const change = `${approval.model}: ${approval.change}`;
  switch (notice.type) {
    case "approval.requested":
      return `${nameOf(notice, approval.requestedBy)} asks for approval of a change of ${change}. It needs ${roleWords(approval.rolesStillNeeded)}.`;
    case "approval.decided": {
      const d = notice.decision;
      const who = d ? nameOf(notice, d.by) : "someone";
      if (d?.decision === "reject")
        return `${who} rejected the change of ${change}${d.comment ? `: "${d.comment}"` : "."}`;
      const role = d?.role ? ` as ${ROLE_NAMES[d.role] ?? d.role}` : "";
      return approval.status === "approved"
        ? `${who} approved${role}; the change of ${change} is approved and may be applied once.`
        : `${who} approved${role} the change of ${change}. It still needs ${roleWords(approval.rolesStillNeeded)}.`;
    }
    case "approval.applied":
      return `${notice.applied ? nameOf(notice, notice.applied.by) : "Someone"} applied the approved change of ${change}.`;
  }
}

function title(notice: ApprovalNotice): string {
  const { model } = notice.approval;
  switch (notice.type) {
    case "approval.requested":
      return `:ballot_box_with_check: Approval requested: ${model} — ${notice.approval.action}`;
    case "approval.decided":
      if (notice.decision?.decision === "reject")
        return `:no_entry: Rejected: ${model} — ${notice.approval.action}`;
      return notice.approval.status === "approved"
        ? `:white_check_mark: Approved: ${model} — ${notice.approval.action}`
        : `:heavy_check_mark: Approval given (more needed): ${model} — ${notice.approval.action}`;
    case "approval.applied":
      return `:rocket: Applied: ${model} — ${notice.approval.action}`;
  }
}

/** A Slack Block Kit message for an approval notice; every value escaped and cut to Slack's limits. */
export function approvalSlackMessage(notice: ApprovalNotice): SlackMessage {
  const { approval } = notice;
  const fields: string[] = [
    field("Model", approval.model),
    field("Change", approval.change),
    field("Requested by", nameOf(notice, approval.requestedBy)),
    field("Status", approval.status),
  ];
  if (notice.decision) {
    const d = notice.decision;
    fields.push(
      field(
        d.decision === "approve" ? "Approved by" : "Rejected by",
        `${nameOf(notice, d.by)}${d.role ? ` (${ROLE_NAMES[d.role] ?? d.role})` : ""}`,
      ),
    );
    if (d.comment) fields.push(field("Comment", d.comment));
  }
  if (approval.status === "pending") {
    fields.push(field("Still needs", roleWords(approval.rolesStillNeeded)));
    fields.push(markupField("Expires", timeText(approval.expiresAt)));
  }
  if (notice.applied) {
    fields.push(field("Applied by", nameOf(notice, notice.applied.by)));
    if (notice.applied.stateVersion !== null)
      fields.push(field("State version", String(notice.applied.stateVersion)));
  }
  const context = [`Approval ${escapeMrkdwn(approval.id)}`, timeText(notice.at)];
  const link = linkText(notice.link);
  if (link) context.push(link);
  return {
    text: truncateMrkdwn(escapeMrkdwn(approvalSummary(notice)), FALLBACK_TEXT_MAX),
    blocks: [
      header(title(notice)),
      section(
        `${escapeMrkdwn(approvalSummary(notice))}\n*Reason given:* ${escapeMrkdwn(approval.reason)}`,
      ),
      { type: "section", fields: fields.slice(0, FIELDS_MAX).map(mrkdwn) },
      {
        type: "context",
        elements: [{ type: "mrkdwn", text: truncateMrkdwn(context.join(" · "), CONTEXT_TEXT_MAX) }],
      },
    ],
  };
}

/**
 * The JSON body of an approval notice for a signed webhook. Like an alert's,
 * it depends on the notice only (so a retry sends the same bytes), with the
 * fields listed one by one in a fixed order.
 */
export function approvalWebhookBody(notice: ApprovalNotice): string {
  const a = notice.approval;
  const person = (id: string) => ({ id, name: nameOf(notice, id) });
  return JSON.stringify({
    type: notice.type,
    at: notice.at,
    approval: {
      id: a.id,
      model: a.model,
      action: a.action,
      target: a.target,
      change: a.change,
      reason: a.reason,
      roles: a.roles,
      rolesStillNeeded: a.rolesStillNeeded,
      status: a.status,
      requestedBy: person(a.requestedBy),
      requestedAt: a.requestedAt,
      expiresAt: a.expiresAt,
    },
    decision: notice.decision
      ? {
          by: person(notice.decision.by),
          decision: notice.decision.decision,
          role: notice.decision.role,
          comment: notice.decision.comment,
        }
      : null,
    applied: notice.applied
      ? { by: person(notice.applied.by), stateVersion: notice.applied.stateVersion }
      : null,
    summary: approvalSummary(notice),
    link: notice.link,
  });
}
