/**
 * Queue consumers of alert notices.
 *
 * `airlock-alert-deliveries`: each message names a row of `alert_deliveries`
 * (one notice for one destination: an alert's firing or resolution, an
 * approval's step, an audit checkpoint, or a destination's test notice). The consumer reads
 * the notice from Postgres and hands it to the destination's object
 * (durable-objects/alert-destination.ts), which sends it in line, at most
 * once per second, and never twice. A 429 is retried after its Retry-After;
 * a receiver that is down or failing, with backoff (5 s doubling to 10
 * minutes, 100 times: about 16 hours); a receiver that refuses for good (a
 * 4xx) ends the delivery as `failed`. Every attempt is recorded on the row.
 * A test notice is tried once: whoever asked for it wants to know whether the
 * destination works now, not to see it posted hours later, so anything but a
 * success ends it as `failed` with the receiver's status and error.
 *
 * `airlock-alert-deliveries-dlq`: what exhausted its retries is kept whole in
 * `dead_letters` (so Airlock's own `dead_letters` alert fires) and its
 * delivery marked failed.
 */
import { sql } from "drizzle-orm";
import type { AlertDestination, DeliveryRequest } from "../../durable-objects/alert-destination";
import type { TestNotice } from "../../shared/alerts/test-notice";
import type { AlertNotice } from "../../shared/alerts/types";
import { exponentialBackoffSeconds } from "../../shared/backoff";
import { type Database, openDatabase } from "../../shared/db/client";
import { describeError } from "../../shared/errors";
import {
  type ApprovalEvent,
  type ApprovalNotice,
  approvalLink,
  peopleOf,
} from "../../shared/notices/approval";
import {
  type CheckpointEvent,
  type CheckpointNotice,
  checkpointsLink,
} from "../../shared/notices/checkpoint";
import type { Notice } from "../../shared/notices/render";
import { TEST_NOTICE_TYPE } from "../../shared/notices/types";
import type { AlertDeliveryMessage } from "../alerts/evaluate";

export const ALERT_DELIVERIES_QUEUE = "airlock-alert-deliveries";
export const ALERT_DELIVERIES_DLQ = "airlock-alert-deliveries-dlq";

/** The columns of an alert that its notices carry (`to_jsonb` of the row). */
interface AlertColumns {
  id: number;
  severity: AlertNotice["severity"];
  rule: string;
  model: string;
  version: string;
  role: string;
  metric: string;
  dimension: string;
  value: number | null;
  threshold: number | null;
  comparison: "above" | "below";
  statistics: AlertNotice["statistics"] | null;
  window_seconds: number | null;
  window_start: string | null;
  first_seen_at: string;
  last_seen_at: string;
  resolved_at: string | null;
  count: number;
  summary: string;
}

interface DeliveryRow {
  id: number;
  status: string;
  type: string;
  /** Null for notices other than an alert's or a test. */
  transition: "firing" | "resolved" | "test" | null;
  /** Other notices: their key and what happened. */
  notice_key: string | null;
  payload: unknown;
  destination_id: string;
  destination_name: string;
  created_at: string;
  kind: "slack" | "webhook";
  url_box: string;
  secret_box: string | null;
  deleted: boolean;
  /** Null for a test notice alone. */
  alert: AlertColumns | null;
  [column: string]: unknown;
}

/** A delivery of an alert's firing or resolution. */
type AlertDeliveryRow = DeliveryRow & { transition: "firing" | "resolved"; alert: AlertColumns };

const isTest = (row: DeliveryRow) => row.type === TEST_NOTICE_TYPE;
const isAlert = (row: DeliveryRow): row is AlertDeliveryRow =>
  (row.type === "alert.firing" || row.type === "alert.resolved") && row.alert !== null;
const isApproval = (row: DeliveryRow) => row.type.startsWith("approval.") && row.payload !== null;
const isCheckpoint = (row: DeliveryRow) => row.type === "audit.checkpoint" && row.payload !== null;

const iso = (value: string | null) => (value === null ? null : new Date(value).toISOString());

/** Where an operator reads more about an alert: the model's monitoring results of its window. */
export function alertLink(base: string | undefined, alert: AlertColumns): string {
  const root = (base ?? "").replace(/\/+$/, "");
  if (alert.model === "") return `${root}/admin/alerts/${alert.id}`;
  const params = new URLSearchParams();
  if (alert.window_start && alert.window_seconds) {
    const start = Date.parse(alert.window_start);
    params.set("from", new Date(start).toISOString());
    params.set("to", new Date(start + alert.window_seconds * 1000).toISOString());
    params.set("window", String(alert.window_seconds));
  }
  if (alert.version) params.set("version", alert.version);
  if (alert.metric) params.set("metric", alert.metric);
  return `${root}/admin/models/${encodeURIComponent(alert.model)}/monitoring?${params}`;
}

export function noticeOf(row: AlertDeliveryRow, linkBase: string | undefined): AlertNotice {
  const a = row.alert;
  return {
    alertId: Number(a.id),
    state: row.transition,
    severity: a.severity,
    rule: a.rule,
    model: a.model,
    version: a.version,
    role: a.role,
    metric: a.metric,
    dimension: a.dimension,
    value: a.value,
    threshold: a.threshold,
    comparison: a.comparison,
    statistics: a.statistics ?? [],
    windowSeconds: a.window_seconds,
    windowStart: iso(a.window_start),
    firstSeenAt: iso(a.first_seen_at) as string,
    lastSeenAt: iso(a.last_seen_at) as string,
    resolvedAt: row.transition === "resolved" ? iso(a.resolved_at) : null,
    count: a.count,
    summary: a.summary,
    link: alertLink(linkBase, a),
  };
}

export function testNoticeOf(row: DeliveryRow): TestNotice {
  return {
    state: "test",
    deliveryId: Number(row.id),
    destinationId: row.destination_id,
    destinationName: row.destination_name,
    requestedAt: new Date(row.created_at).toISOString(),
  };
}

async function loadDeliveries(db: Database, ids: number[]): Promise<Map<number, DeliveryRow>> {
  const { rows } = await db.execute<DeliveryRow>(sql`
    SELECT d.id, d.status, d.type, d.transition, d.notice_key, d.payload,
      d.destination_id, d.created_at,
      t.name AS destination_name, t.kind, t.url_box, t.secret_box,
      t.deleted_at IS NOT NULL AS deleted,
      CASE WHEN a.id IS NULL THEN NULL ELSE to_jsonb(a) END AS alert
    FROM alert_deliveries d
    JOIN alert_destinations t ON t.id = d.destination_id
    LEFT JOIN alerts a ON a.id = d.alert_id
    WHERE d.id = ANY(${`{${ids.join(",")}}`}::bigint[])`);
  return new Map(rows.map((row) => [Number(row.id), row]));
}

/** Display names of the principals approval notices name, looked up as they are sent. */
async function namesOf(db: Database, rows: DeliveryRow[]): Promise<Map<string, string>> {
  const ids = [
    ...new Set(rows.filter(isApproval).flatMap((row) => peopleOf(row.payload as ApprovalEvent))),
  ];
  if (ids.length === 0) return new Map();
  const { rows: found } = await db.execute<{ id: string; display_name: string }>(sql`
    SELECT id, display_name FROM principals WHERE id = ANY(${`{${ids.join(",")}}`}::text[])`);
  return new Map(found.map((p) => [p.id, p.display_name]));
}

/** An approval notice as sent: its event, the names of its people, and its link. */
export function approvalNoticeOf(
  row: DeliveryRow,
  names: Map<string, string>,
  linkBase: string | undefined,
): ApprovalNotice {
  const event = row.payload as ApprovalEvent;
  const people: Record<string, string> = {};
  for (const id of peopleOf(event)) people[id] = names.get(id) ?? id;
  return { ...event, people, link: approvalLink(linkBase, event.approval.id) };
}

async function record(
  db: Database,
  id: number,
  fields: {
    status: string;
    httpStatus: number | null;
    error: string | null;
    sent: boolean;
    retryInSeconds?: number;
  },
): Promise<void> {
  const next =
    fields.retryInSeconds === undefined
      ? null
      : new Date(Date.now() + fields.retryInSeconds * 1000).toISOString();
  await db.execute(sql`
    UPDATE alert_deliveries SET status = ${fields.status}, attempts = attempts + 1,
      last_status = ${fields.httpStatus}, last_error = ${fields.error}, updated_at = now(),
      next_attempt_at = ${next}::timestamptz,
      sent_at = CASE WHEN ${fields.sent} THEN coalesce(sent_at, now()) ELSE sent_at END
    WHERE id = ${id}`);
}

/** Backoff of a failing receiver: 5 s doubling, at most 10 minutes. */
export const deliveryBackoffSeconds = (attempts: number) =>
  exponentialBackoffSeconds(attempts, 5, 600);

export async function consumeAlertDeliveries(
  batch: MessageBatch<unknown>,
  env: Env,
): Promise<void> {
  const handle = openDatabase(env);
  try {
    const db = handle.db;
    const messages = batch.messages.filter((message) => {
      const id = (message.body as AlertDeliveryMessage | null)?.deliveryId;
      if (Number.isSafeInteger(id)) return true;
      // Not ours to retry: a message without a delivery id can never be sent.
      console.error(
        JSON.stringify({ level: "error", event: "alerts.bad_message", id: message.id }),
      );
      message.ack();
      return false;
    });
    let rows: Map<number, DeliveryRow>;
    let names: Map<string, string>;
    try {
      rows = await loadDeliveries(
        db,
        messages.map((m) => (m.body as AlertDeliveryMessage).deliveryId),
      );
      names = await namesOf(db, [...rows.values()]);
    } catch (error) {
      for (const message of messages)
        message.retry({ delaySeconds: deliveryBackoffSeconds(message.attempts) });
      console.error(
        JSON.stringify({
          level: "error",
          event: "alerts.load_failed",
          error: describeError(error),
        }),
      );
      return;
    }
    // One destination's notices go in order; different destinations in parallel.
    const byDestination = new Map<string, { message: Message<unknown>; row: DeliveryRow }[]>();
    for (const message of messages) {
      const row = rows.get((message.body as AlertDeliveryMessage).deliveryId);
      if (row?.status !== "pending") {
        message.ack(); // sent, failed or dropped already; or gone
        continue;
      }
      if (row.deleted) {
        await record(db, row.id, {
          status: "dropped",
          httpStatus: null,
          error: "destination deleted",
          sent: false,
        }).catch(() => undefined);
        message.ack();
        continue;
      }
      const list = byDestination.get(row.destination_id) ?? [];
      list.push({ message, row });
      byDestination.set(row.destination_id, list);
    }
    await Promise.all(
      [...byDestination.entries()].map(async ([destinationId, items]) => {
        const stub = env.ALERT_DESTINATION.getByName(destinationId) as unknown as AlertDestination;
        for (const { message, row } of items) {
          await deliverOne(db, env, stub, message, row, names);
        }
      }),
    );
  } finally {
    await handle.close();
  }
}

async function deliverOne(
  db: Database,
  env: Env,
  stub: AlertDestination,
  message: Message<unknown>,
  row: DeliveryRow,
  names: Map<string, string>,
): Promise<void> {
  const test = isTest(row);
  let notice: Notice;
  let noticeKey: string;
  if (test) {
    notice = testNoticeOf(row);
    noticeKey = `test:${row.id}`;
  } else if (isAlert(row)) {
    notice = noticeOf(row, env.ALERT_LINK_BASE);
    noticeKey = `${row.alert.id}:${row.transition}`;
  } else if (isApproval(row) && row.notice_key) {
    notice = approvalNoticeOf(row, names, env.ALERT_LINK_BASE);
    noticeKey = row.notice_key;
  } else if (isCheckpoint(row) && row.notice_key) {
    notice = {
      ...(row.payload as CheckpointEvent),
      link: checkpointsLink(env.ALERT_LINK_BASE),
    } satisfies CheckpointNotice;
    noticeKey = row.notice_key;
  } else {
    // A type this version of Airlock cannot write: retrying cannot help.
    await record(db, row.id, {
      status: "failed",
      httpStatus: null,
      error: `notice type '${row.type}' cannot be sent`,
      sent: false,
    });
    message.ack();
    console.error(
      JSON.stringify({ level: "error", event: "alerts.unknown_notice", delivery: row.id }),
    );
    return;
  }
  const request: DeliveryRequest = {
    noticeKey,
    destinationId: row.destination_id,
    kind: row.kind,
    urlBox: row.url_box,
    secretBox: row.secret_box,
    notice,
  };
  try {
    const outcome = await stub.deliver(request);
    if (outcome.kind === "sent" || outcome.kind === "duplicate") {
      await record(db, row.id, {
        status: "sent",
        httpStatus: outcome.kind === "sent" ? outcome.status : null,
        error: null,
        sent: true,
      });
      message.ack();
    } else if (outcome.kind === "failed" || test) {
      // A test notice is tried once: a retry's outcome is its outcome.
      await record(db, row.id, {
        status: "failed",
        httpStatus: outcome.status,
        error: outcome.error,
        sent: false,
      });
      message.ack();
      // A failed test is its asker's news, not Airlock's trouble.
      if (test)
        console.warn(
          JSON.stringify({ level: "warn", event: "alerts.test_failed", delivery: row.id }),
        );
      else
        console.error(
          JSON.stringify({ level: "error", event: "alerts.delivery_refused", delivery: row.id }),
        );
    } else {
      const delaySeconds =
        outcome.delaySeconds > 0
          ? Math.min(outcome.delaySeconds, 43_200)
          : deliveryBackoffSeconds(message.attempts);
      await record(db, row.id, {
        status: "pending",
        httpStatus: outcome.status,
        error: outcome.error,
        sent: false,
        retryInSeconds: delaySeconds,
      });
      message.retry({ delaySeconds });
    }
  } catch (error) {
    // The object or Postgres failed: try again later; the notice key keeps it single.
    message.retry({ delaySeconds: deliveryBackoffSeconds(message.attempts) });
    console.error(
      JSON.stringify({
        level: "error",
        event: "alerts.delivery_error",
        delivery: row.id,
        error: describeError(error),
      }),
    );
  }
}

/** Notices that exhausted their retries: kept in dead_letters, their deliveries failed. */
export async function consumeAlertDeadLetters(
  batch: MessageBatch<unknown>,
  env: Env,
): Promise<void> {
  const handle = openDatabase(env);
  try {
    const rows = batch.messages.map((message) => ({
      message_id: message.id,
      queue: ALERT_DELIVERIES_QUEUE,
      body: message.body ?? null,
      error: `not delivered after ${message.attempts} attempts on ${ALERT_DELIVERIES_QUEUE}`,
      attempts: message.attempts,
    }));
    const ids = batch.messages
      .map((m) => (m.body as AlertDeliveryMessage | null)?.deliveryId)
      .filter((id): id is number => Number.isSafeInteger(id));
    await handle.db.transaction(async (tx) => {
      await tx.execute(sql`
        INSERT INTO dead_letters (message_id, queue, body, error, attempts)
        SELECT message_id, queue, body, error, attempts
        FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
          AS x(message_id text, queue text, body jsonb, error text, attempts integer)
        ON CONFLICT (message_id) DO NOTHING`);
      if (ids.length > 0)
        await tx.execute(sql`
          UPDATE alert_deliveries SET status = 'failed', updated_at = now(),
            last_error = coalesce(last_error, 'retries exhausted')
          WHERE id = ANY(${`{${ids.join(",")}}`}::bigint[]) AND status = 'pending'`);
    });
    batch.ackAll();
  } catch (error) {
    for (const message of batch.messages)
      message.retry({ delaySeconds: exponentialBackoffSeconds(message.attempts, 60, 6 * 60 * 60) });
    console.error(
      JSON.stringify({
        level: "error",
        event: "alerts.dead_letters_failed",
        error: describeError(error),
      }),
    );
  } finally {
    await handle.close();
  }
}
