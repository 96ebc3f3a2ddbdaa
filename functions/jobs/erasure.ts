/**
 * The erasure job (queue `airlock-erasures`, functions/queue/erasures.ts):
 * one bounded step per message, its progress stored with the request, so
 * a step cut off or delivered twice is simply done again (every step is a
 * delete, or an edit that finds nothing the second time).
 *
 * Steps, in order, for a pass:
 * 1. logs: each day partition of prediction_refs, predictions and
 *    rejected_requests (key: the key's rows up to the request; ids: those
 *    ids), at most ERASURE_CHUNK_ROWS rows a step; every erased id becomes
 *    a tombstone.
 * 2. feedback: labels, label events and KPI events of the tombstoned ids,
 *    and KPI events reported by the key.
 * 3. dead_letters: results of the subject taken out of every dead letter
 *    (the rest of a dead letter is other clients' and stays).
 * 4. baselines: a baseline built from a window of traffic that lost rows is
 *    built again from what is left (cleared when nothing is).
 * 5. verify: counts what is still there. A row stored meanwhile by a write
 *    that began before the request (and so before its tombstones) starts
 *    another pass, up to ERASURE_MAX_PASSES; then the erasure fails, saying
 *    how many rows remain.
 */
import { and, eq, sql } from "drizzle-orm";
import { type Database, openDatabase, type Queryable } from "../../shared/db/client";
import { auditLog, erasureRequests, models, modelVersions } from "../../shared/db/schema";
import { type Baseline, declaredKinds, predictionKinds } from "../../shared/monitoring/baseline";
import {
  type AffectedWindow,
  deadLetterBody,
  ERASURE_CHUNK_ROWS,
  ERASURE_DEAD_LETTER_CHUNK,
  ERASURE_LOG_TABLES,
  ERASURE_MAX_PASSES,
  type ErasureCounts,
  type ErasureProgress,
  type ErasureSubject,
  erasedRow,
  noErasureCounts,
  type ResultRef,
  resultRef,
  scrubBody,
} from "../../shared/privacy/erasure";
import { baselineFromTraffic } from "../monitoring/baseline-sql";

type ErasureRow = typeof erasureRequests.$inferSelect;

/** The subject of a stored request. */
export function subjectOf(row: ErasureRow): ErasureSubject {
  if (row.subject === "key")
    return {
      subject: "key",
      keyHmac: row.keyHmac as string,
      model: row.model,
      before: row.requestedAt.toISOString(),
    };
  return { subject: "predictions", predictionIds: row.predictionIds ?? [] };
}

/** A text[] of these strings, whatever they hold (passed as one jsonb parameter). */
function textArray(values: readonly string[]) {
  return sql`ARRAY(SELECT jsonb_array_elements_text(${JSON.stringify(values)}::jsonb))`;
}

/** The condition on a log row (alias `x`) that it belongs to the subject. */
function subjectRows(subject: ErasureSubject) {
  if (subject.subject === "predictions")
    return sql`x.prediction_id = ANY(${textArray(subject.predictionIds)})`;
  return sql`x.key_hmac = ${subject.keyHmac} AND x.created_at <= ${subject.before}::timestamptz
    ${subject.model === null ? sql`` : sql`AND x.model = ${subject.model}`}`;
}

interface StepState {
  progress: ErasureProgress;
  counts: ErasureCounts;
  affected: AffectedWindow[];
}

/**
 * Does one step of an erasure and stores where it got to. Returns whether
 * another step follows.
 */
export async function runErasureStep(env: Env, erasureId: number): Promise<boolean> {
  const handle = openDatabase(env);
  try {
    const db = handle.db;
    const [row] = await db.select().from(erasureRequests).where(eq(erasureRequests.id, erasureId));
    if (!row) throw new Error(`erasure ${erasureId} does not exist (yet)`);
    if (row.status === "succeeded" || row.status === "failed") return false;
    const stored = row.progress as { step: ErasureProgress; affected?: AffectedWindow[] };
    const state: StepState = {
      progress: stored.step,
      counts: { ...noErasureCounts(), ...row.counts },
      affected: stored.affected ?? [],
    };
    const subject = subjectOf(row);
    const next = await step(db, erasureId, subject, state);
    const done = next.phase === "done";
    const remaining = done ? 0 : null;
    await db.transaction(async (tx) => {
      await tx
        .update(erasureRequests)
        .set({
          status: done ? "succeeded" : "running",
          progress: { step: next, affected: state.affected },
          counts: state.counts,
          updatedAt: sql`now()`,
          ...(done ? { finishedAt: sql`now()` } : {}),
        })
        .where(eq(erasureRequests.id, erasureId));
      if (done) await auditOutcome(tx, row, "erasure.complete", state.counts, remaining);
    });
    return !done;
  } finally {
    await handle.close();
  }
}

/** An erasure with no step for this long has lost its message: the hourly upkeep sends it again. */
export const ERASURE_STALLED_MINUTES = 15;

/** Sends the message again for erasures that stalled (a lost send); returns their ids. */
export async function resumeErasures(env: Env, now: Date): Promise<number[]> {
  const handle = openDatabase(env);
  let ids: number[];
  try {
    const { rows } = await handle.db.execute<{ id: string }>(sql`
      SELECT id FROM erasure_requests WHERE status IN ('queued', 'running')
        AND updated_at < ${now.toISOString()}::timestamptz - make_interval(mins => ${ERASURE_STALLED_MINUTES})`);
    ids = rows.map((row) => Number(row.id));
  } finally {
    await handle.close();
  }
  for (const erasureId of ids) await env.ERASURES.send({ erasureId });
  return ids;
}

/** Marks an erasure failed with its reason (after its message kept failing, or rows kept coming). */
export async function failErasure(env: Env, erasureId: number, reason: string): Promise<void> {
  const handle = openDatabase(env);
  try {
    await handle.db.transaction(async (tx) => {
      const [row] = await tx
        .update(erasureRequests)
        .set({ status: "failed", error: reason, finishedAt: sql`now()`, updatedAt: sql`now()` })
        .where(eq(erasureRequests.id, erasureId))
        .returning();
      if (row) await auditOutcome(tx, row, "erasure.fail", row.counts, null, reason);
    });
  } finally {
    await handle.close();
  }
}

/** The end of an erasure in the trail: its counts, never the values (the key only as its HMAC). */
async function auditOutcome(
  tx: Queryable,
  row: ErasureRow,
  action: "erasure.complete" | "erasure.fail",
  counts: Record<string, number>,
  remaining: number | null,
  error?: string,
) {
  await tx
    .insert(auditLog)
    .values({
      eventId: `erasure:${row.id}:${action}`,
      source: "system",
      actor: row.requestedBy,
      action,
      targetType: "erasure",
      target: `erasure/${row.id}`,
      before: null,
      after: { counts, ...(remaining === null ? {} : { remaining }), ...(error ? { error } : {}) },
    })
    .onConflictDoNothing({ target: auditLog.eventId });
}

async function step(
  db: Database,
  erasureId: number,
  subject: ErasureSubject,
  state: StepState,
): Promise<ErasureProgress> {
  const { progress } = state;
  switch (progress.phase) {
    case "logs":
      return logsStep(db, erasureId, subject, state, progress);
    case "feedback":
      await feedbackStep(db, erasureId, subject, state);
      return { phase: "dead_letters", pass: progress.pass, afterId: 0 };
    case "dead_letters":
      return deadLettersStep(db, subject, state, progress);
    case "baselines":
      await baselinesStep(db, erasureId, state);
      return { phase: "verify", pass: progress.pass };
    case "verify": {
      const left = await remainingRows(db, erasureId, subject);
      if (left === 0) return { phase: "done", pass: progress.pass };
      if (progress.pass >= ERASURE_MAX_PASSES)
        throw new ErasureIncomplete(
          `${left} rows of the subject were still stored after ${progress.pass} passes`,
        );
      return { phase: "logs", pass: progress.pass + 1, table: "prediction_refs", after: null };
    }
    case "done":
      return progress;
  }
}

/** Rows still stored after every pass allowed: the erasure fails with this reason. */
export class ErasureIncomplete extends Error {}

/** The day partitions of a log table (and its DEFAULT one), in name order. */
async function partitionsOf(db: Queryable, table: string): Promise<string[]> {
  const { rows } = await db.execute<{ name: string }>(sql`
    SELECT c.relname AS name FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
    WHERE p.relname = ${table} ORDER BY c.relname`);
  return rows.map((r) => r.name);
}

async function logsStep(
  db: Database,
  erasureId: number,
  subject: ErasureSubject,
  state: StepState,
  progress: Extract<ErasureProgress, { phase: "logs" }>,
): Promise<ErasureProgress> {
  const tableIndex = ERASURE_LOG_TABLES.indexOf(progress.table);
  const advance = (): ErasureProgress => {
    const nextTable = ERASURE_LOG_TABLES[tableIndex + 1];
    return nextTable
      ? { phase: "logs", pass: progress.pass, table: nextTable, after: null }
      : { phase: "feedback", pass: progress.pass };
  };
  // Ids are found through each partition's primary key: the parent table at once.
  // A key is not indexed (docs/benchmarks.md, erasure): one partition a step.
  let target: string;
  if (subject.subject === "predictions") {
    target = progress.table;
  } else {
    const partitions = await partitionsOf(db, progress.table);
    const nextPartition = partitions.find(
      (name) => progress.after === null || name > progress.after,
    );
    if (nextPartition === undefined) return advance();
    target = nextPartition;
  }
  const relation = sql.raw(`"${target}"`);
  const withRole = progress.table !== "rejected_requests";
  const { rows } = await db.execute<{
    n: string;
    tombstones: string;
    windows: AffectedWindow[] | null;
  }>(sql`
    WITH d AS (
      ${
        // A ctid names a row within one table: only a partition is deleted by ctid. Ids
        // (at most MAX_ERASURE_PREDICTION_IDS, a few results each) are deleted at once.
        subject.subject === "predictions"
          ? sql`DELETE FROM ${relation} x WHERE ${subjectRows(subject)}`
          : sql`DELETE FROM ${relation} WHERE ctid = ANY(ARRAY(
        SELECT x.ctid FROM ${relation} x WHERE ${subjectRows(subject)} LIMIT ${ERASURE_CHUNK_ROWS}))`
      }
      RETURNING prediction_id, model, created_at,
        ${withRole ? sql.raw("version, role") : sql.raw("''::text AS version, 'rejected'::text AS role")}
    ), t AS (
      INSERT INTO erasure_tombstones (prediction_id, erasure_id)
      SELECT DISTINCT prediction_id, ${erasureId}::bigint FROM d
      ON CONFLICT (prediction_id) DO NOTHING
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM d) AS n, (SELECT count(*) FROM t) AS tombstones,
      (SELECT jsonb_agg(jsonb_build_object('model', model, 'version', version, 'role', role,
          'from', lo, 'to', hi))
        FROM (SELECT model, version, role, min(created_at) AS lo, max(created_at) AS hi
              FROM d GROUP BY 1, 2, 3) g) AS windows`);
  const result = rows[0];
  const n = Number(result?.n ?? 0);
  state.counts[progress.table] += n;
  state.counts.tombstones += Number(result?.tombstones ?? 0);
  if (progress.table === "predictions") mergeWindows(state.affected, result?.windows ?? []);
  if (subject.subject === "predictions") return advance();
  // A full chunk: this partition again.
  if (n >= ERASURE_CHUNK_ROWS) return progress;
  return { ...progress, after: target };
}

function mergeWindows(into: AffectedWindow[], found: AffectedWindow[]): void {
  for (const window of found) {
    const from = new Date(window.from).toISOString();
    const to = new Date(window.to).toISOString();
    const same = into.find(
      (w) => w.model === window.model && w.version === window.version && w.role === window.role,
    );
    if (!same) into.push({ ...window, from, to });
    else {
      if (from < same.from) same.from = from;
      if (to > same.to) same.to = to;
    }
  }
}

/** The subject's ids: its tombstones, and the ids asked for. */
function subjectIds(erasureId: number, subject: ErasureSubject) {
  const asked = subject.subject === "predictions" ? subject.predictionIds : [];
  return sql`(SELECT prediction_id FROM erasure_tombstones WHERE erasure_id = ${erasureId}
    UNION SELECT unnest(${textArray(asked)}))`;
}

/** The subject's KPI events (alias `x`): of its ids, and those its key reported up to the erasure. */
function subjectOutcomes(subject: ErasureSubject, ids: ReturnType<typeof subjectIds>) {
  if (subject.subject === "predictions") return sql`x.prediction_id IN ${ids}`;
  return sql`(x.prediction_id IN ${ids} OR (x.key_hmac = ${subject.keyHmac}
    AND x.at <= ${subject.before}::timestamptz
    ${subject.model === null ? sql`` : sql`AND x.model = ${subject.model}`}))`;
}

async function deleteInChunks(
  db: Queryable,
  table: string,
  condition: ReturnType<typeof sql>,
): Promise<number> {
  const relation = sql.raw(`"${table}"`);
  let total = 0;
  for (;;) {
    const result = await db.execute(sql`
      DELETE FROM ${relation} WHERE ctid = ANY(ARRAY(
        SELECT x.ctid FROM ${relation} x WHERE ${condition} LIMIT ${ERASURE_CHUNK_ROWS}))`);
    const n = result.rowCount ?? 0;
    total += n;
    if (n < ERASURE_CHUNK_ROWS) return total;
  }
}

async function feedbackStep(
  db: Database,
  erasureId: number,
  subject: ErasureSubject,
  state: StepState,
): Promise<void> {
  const ids = subjectIds(erasureId, subject);
  state.counts.feedback += await deleteInChunks(db, "feedback", sql`x.prediction_id IN ${ids}`);
  state.counts.feedback_events += await deleteInChunks(
    db,
    "feedback_events",
    sql`x.prediction_id IN ${ids}`,
  );
  state.counts.outcomes += await deleteInChunks(db, "outcomes", subjectOutcomes(subject, ids));
}

/** Whether a result in a message belongs to the subject (or to any erasure, through `erased`). */
function ofSubject(subject: ErasureSubject, ref: ResultRef): boolean {
  if (subject.subject === "predictions") return subject.predictionIds.includes(ref.predictionId);
  return (
    ref.keyHmac === subject.keyHmac &&
    (subject.model === null || ref.model === subject.model) &&
    ref.timestamp !== "" &&
    Date.parse(ref.timestamp) <= Date.parse(subject.before)
  );
}

async function deadLettersStep(
  db: Database,
  subject: ErasureSubject,
  state: StepState,
  progress: Extract<ErasureProgress, { phase: "dead_letters" }>,
): Promise<ErasureProgress> {
  const page = await scrubbedPage(db, subject, progress.afterId);
  if (page.length === 0) return { phase: "baselines", pass: progress.pass };
  for (const { id, asText, outcome } of page) {
    if (outcome.kind === "delete") {
      await db.execute(sql`DELETE FROM dead_letters WHERE id = ${id}`);
      state.counts.dead_letters_deleted += 1;
    } else if (outcome.kind === "edit") {
      const text = JSON.stringify(outcome.body);
      await db.execute(
        asText
          ? sql`UPDATE dead_letters SET body_text = ${text} WHERE id = ${id}`
          : sql`UPDATE dead_letters SET body = ${text}::jsonb WHERE id = ${id}`,
      );
      state.counts.dead_letters_edited += 1;
    }
  }
  const last = page[page.length - 1]?.id ?? progress.afterId;
  return { phase: "dead_letters", pass: progress.pass, afterId: last };
}

/**
 * A page of dead letters after `afterId`, each with what erasing the subject
 * does to it: keep it, edit its body (kept as it was kept: jsonb, or its
 * JSON text), or delete it. A body that cannot be read is deleted when its
 * text names the subject.
 */
async function scrubbedPage(db: Queryable, subject: ErasureSubject, afterId: number) {
  const { rows } = await db.execute<{ id: string; body: unknown; body_text: string | null }>(sql`
    SELECT id, body, body_text FROM dead_letters
    WHERE id > ${afterId} ORDER BY id LIMIT ${ERASURE_DEAD_LETTER_CHUNK}`);
  const bodies = rows.map(deadLetterBody);
  const tombstoned = await erasedAmong(
    db,
    bodies.flatMap((body) => refsIn(body.value)),
  );
  const erased = (ref: ResultRef) => ofSubject(subject, ref) || tombstoned.has(ref.predictionId);
  return rows.map((row, i) => {
    const body = bodies[i] ?? { value: null, readable: false };
    const outcome: ReturnType<typeof scrubBody> = body.readable
      ? scrubBody(body.value, erased)
      : { kind: row.body_text !== null && mentions(row.body_text, subject) ? "delete" : "keep" };
    return { id: Number(row.id), asText: row.body_text !== null, outcome };
  });
}

/** Whether unreadable text names the subject (its key's HMAC or one of its ids). */
function mentions(text: string, subject: ErasureSubject): boolean {
  if (subject.subject === "key") return text.includes(subject.keyHmac);
  return subject.predictionIds.some((id) => text.includes(id));
}

/** The results a message body names. */
export function refsIn(body: unknown): ResultRef[] {
  const results =
    typeof body === "object" && body !== null ? (body as { results?: unknown }).results : undefined;
  const list = Array.isArray(results) ? results : [body];
  return list.map(resultRef).filter((ref): ref is ResultRef => ref !== null);
}

/**
 * Which of these results are erased: a tombstoned id, or a key erased at
 * or after the result's time (for its model, or all).
 */
export async function erasedAmong(db: Queryable, refs: ResultRef[]): Promise<Set<string>> {
  if (refs.length === 0) return new Set();
  const rows = refs.map((ref) => ({
    prediction_id: ref.predictionId,
    key_hmac: ref.keyHmac,
    model: ref.model,
    created_at: Number.isNaN(Date.parse(ref.timestamp)) ? null : ref.timestamp,
  }));
  const { rows: found } = await db.execute<{ prediction_id: string }>(sql`
    SELECT DISTINCT x.prediction_id FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb)
      AS x(prediction_id text, key_hmac text, model text, created_at timestamptz)
    WHERE ${erasedRow("x")}`);
  return new Set(found.map((r) => r.prediction_id));
}

async function baselinesStep(db: Database, erasureId: number, state: StepState): Promise<void> {
  for (const window of state.affected) {
    const [found] = await db
      .select({ id: modelVersions.id, baseline: modelVersions.baseline, model: models })
      .from(modelVersions)
      .innerJoin(models, eq(models.id, modelVersions.modelId))
      .where(and(eq(models.name, window.model), eq(modelVersions.version, window.version)));
    const baseline = found?.baseline as Baseline | null | undefined;
    if (!found || !baseline || baseline.source.kind !== "traffic") continue;
    const source = baseline.source;
    if (source.role !== window.role || source.to <= window.from || source.from > window.to)
      continue;
    const rebuilt = await baselineFromTraffic(
      db,
      {
        model: window.model,
        version: window.version,
        role: source.role,
        from: new Date(source.from),
        to: new Date(source.to),
      },
      {
        features: declaredKinds(found.model.inputSchema),
        predictions: predictionKinds(found.model.task),
      },
      { createdAt: new Date().toISOString(), createdBy: `erasure/${erasureId}` },
    );
    const cleared = rebuilt.rows === 0;
    await db
      .update(modelVersions)
      .set({ baseline: cleared ? null : rebuilt, updatedAt: sql`now()` })
      .where(eq(modelVersions.id, found.id));
    if (cleared) state.counts.baselines_cleared += 1;
    else state.counts.baselines_rebuilt += 1;
  }
}

/** Rows of the subject still stored anywhere erasure looks. */
async function remainingRows(
  db: Queryable,
  erasureId: number,
  subject: ErasureSubject,
): Promise<number> {
  const ids = subjectIds(erasureId, subject);
  const logs = ERASURE_LOG_TABLES.map(
    (table) => sql`(SELECT count(*) FROM ${sql.raw(`"${table}"`)} x WHERE ${subjectRows(subject)})`,
  );
  const { rows } = await db.execute<{ n: string }>(sql`
    SELECT ${sql.join(logs, sql` + `)}
      + (SELECT count(*) FROM feedback x WHERE x.prediction_id IN ${ids})
      + (SELECT count(*) FROM feedback_events x WHERE x.prediction_id IN ${ids})
      + (SELECT count(*) FROM outcomes x WHERE ${subjectOutcomes(subject, ids)}) AS n`);
  let left = Number(rows[0]?.n ?? 0);
  // Dead letters: any that still holds a result of the subject, a page at a time.
  for (let after = 0; ; ) {
    const page = await scrubbedPage(db, subject, after);
    if (page.length === 0) break;
    after = page[page.length - 1]?.id ?? after;
    left += page.filter((letter) => letter.outcome.kind !== "keep").length;
  }
  return left;
}
