import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  check,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from "drizzle-orm/pg-core";
import type { AlertRuleOverrides } from "../alerts/rules";
import type { AlertStatistic } from "../alerts/types";
import type { GovernancePolicy } from "../governance/policy";
import { PLAN_STATUSES, type PlanState } from "../plans/state";
import type { DataPolicy } from "../privacy/data-policy";
import { VERSION_STATUSES } from "../rollout/status";
import type { Fallback, InputSchema } from "../schemas/model";
import type { MonitoringSettings } from "../schemas/monitoring";
import type { ModelCard, StoredUpstream } from "../schemas/version";

const createdAt = () => timestamp("created_at", { withTimezone: true }).notNull().defaultNow();

/** A governance policy as stored: the policy, and who set it when. */
export type StoredGovernance = GovernancePolicy & { updatedAt: string; updatedBy: string };

export const models = pgTable(
  "models",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    name: text("name").notNull(),
    task: text("task", { enum: ["classification", "regression"] }).notNull(),
    owner: text("owner").notNull(),
    description: text("description").notNull(),
    inputSchema: jsonb("input_schema").$type<InputSchema>().notNull(),
    classes: jsonb("classes").$type<string[]>(),
    positiveClass: text("positive_class"),
    public: boolean("public").notNull().default(false),
    fallback: jsonb("fallback").$type<Fallback>().notNull(),
    // Monitoring settings (drift method and threshold overrides); null: defaults.
    monitoring: jsonb("monitoring").$type<MonitoringSettings>(),
    /** Per-model alert rule overrides (shared/alerts/rules.ts); null: the defaults. */
    alertRules: jsonb("alert_rules").$type<AlertRuleOverrides>(),
    /**
     * The governance policy (shared/governance/policy.ts): the model's risk
     * tier, the one place it is kept, and whose approvals each change needs.
     * Null until a risk officer sets it.
     */
    governance: jsonb("governance").$type<StoredGovernance>(),
    /** What of each request may be stored (shared/privacy/data-policy.ts); null: everything. */
    dataPolicy: jsonb("data_policy").$type<DataPolicy>(),
    createdAt: createdAt(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("models_name_key").on(t.name),
    check("models_task_check", sql`${t.task} in ('classification', 'regression')`),
    check("models_classes_check", sql`(${t.task} = 'classification') = (${t.classes} is not null)`),
  ],
);

export const modelVersions = pgTable(
  "model_versions",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    modelId: bigint("model_id", { mode: "number" })
      .notNull()
      .references(() => models.id, { onDelete: "restrict" }),
    version: text("version").notNull(),
    upstream: jsonb("upstream").$type<StoredUpstream>().notNull(),
    // SHA-256 of the canonical upstream definition as stored (a builtin
    // model's file by its artefact hash): the identity of what serves.
    upstreamSha256: text("upstream_sha256").notNull(),
    modelCard: jsonb("model_card").$type<ModelCard>().notNull(),
    status: text("status", { enum: VERSION_STATUSES }).notNull().default("registered"),
    baseline: jsonb("baseline"),
    /**
     * Retired for good (POST …/versions/{version}/retire): it may never be
     * named in a rollout again. Unset for versions that merely left the
     * rollout (status `retired` alone), which may come back.
     */
    /** The model card's current revision (model_card_revisions keeps every one) and its hash. */
    cardRevision: integer("card_revision").notNull().default(1),
    cardSha256: text("card_sha256"),
    retiredAt: timestamp("retired_at", { withTimezone: true }),
    retiredBy: text("retired_by"),
    retiredReason: text("retired_reason"),
    createdAt: createdAt(),
    createdBy: text("created_by").notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("model_versions_model_version_key").on(t.modelId, t.version),
    check("model_versions_retired_check", sql`(${t.retiredAt} IS NULL) = (${t.retiredBy} IS NULL)`),
    check(
      "model_versions_status_check",
      sql`${t.status} in ('registered', 'shadow', 'canary', 'champion', 'retired')`,
    ),
  ],
);

/**
 * Builtin model files, stored once by content hash: `sha256` is the SHA-256
 * of `body`, the file's canonical JSON (keys sorted). Rows never change, so
 * any cache keyed by the hash is always right.
 */
export const modelArtifacts = pgTable(
  "model_artifacts",
  {
    sha256: text("sha256").primaryKey(),
    format: text("format").notNull(),
    bytes: integer("bytes").notNull(),
    body: text("body").notNull(),
    createdAt: createdAt(),
    createdBy: text("created_by").notNull(),
  },
  (t) => [
    check("model_artifacts_sha256_check", sql`${t.sha256} ~ '^[0-9a-f]{64}$'`),
    check("model_artifacts_bytes_check", sql`${t.bytes} = octet_length(${t.body})`),
    check(
      "model_artifacts_hash_check",
      sql`${t.sha256} = encode(sha256(convert_to(${t.body}, 'UTF8')), 'hex')`,
    ),
  ],
);

/**
 * The head of the audit chain: one row, the last sequence number and hash.
 * Every insert into audit_log takes it under FOR UPDATE (the trigger), so
 * appends from every writer serialize and the sequence has no gaps.
 */
export const auditChainHead = pgTable(
  "audit_chain_head",
  {
    id: integer("id").primaryKey(),
    seq: bigint("seq", { mode: "number" }).notNull(),
    hash: text("hash").notNull(),
  },
  (t) => [check("audit_chain_head_one_row", sql`${t.id} = 1`)],
);

/**
 * Every revision of every version's model card, as it was set: an edit
 * adds one and never changes another, so the card in force at any time is
 * known. Append-only.
 */
export const modelCardRevisions = pgTable(
  "model_card_revisions",
  {
    versionId: bigint("version_id", { mode: "number" })
      .notNull()
      .references(() => modelVersions.id, { onDelete: "restrict" }),
    revision: integer("revision").notNull(),
    modelCard: jsonb("model_card").$type<ModelCard>().notNull(),
    /** SHA-256 of the card as canonical JSON. */
    sha256: text("sha256").notNull(),
    createdAt: createdAt(),
    createdBy: text("created_by").notNull(),
  },
  (t) => [primaryKey({ columns: [t.versionId, t.revision] })],
);

/**
 * The database's own record of the checkpoints it was given (the store that
 * counts is outside Postgres, durable-objects/audit-checkpoints.ts): what
 * the export and the verify route show next to the store's, and what a
 * rewrite would have to change too. Append-only, like the trail.
 */
export const auditCheckpoints = pgTable("audit_checkpoints", {
  seq: bigint("seq", { mode: "number" }).primaryKey(),
  hash: text("hash").notNull(),
  /** As signed (ISO 8601, to the millisecond): the signature covers this text. */
  at: text("at").notNull(),
  keyId: text("key_id").notNull(),
  signature: text("signature").notNull(),
  recordedAt: timestamp("recorded_at", { withTimezone: true }).notNull().defaultNow(),
});

/**
 * Append-only trail of every change. Rows come from two writers: admin API
 * handlers (in the same transaction as the change) and, later, the per-model
 * rollout objects flushing their outboxes. `event_id` is unique so that a
 * flush retried after a failure inserts nothing twice.
 */
export const auditLog = pgTable(
  "audit_log",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    eventId: text("event_id").notNull(),
    /** api (admin routes), rollout (the rollout objects' outboxes), system (the chain itself, jobs) */
    source: text("source", { enum: ["api", "rollout", "system"] }).notNull(),
    actor: text("actor").notNull(),
    action: text("action").notNull(),
    targetType: text("target_type").notNull(),
    target: text("target").notNull(),
    before: jsonb("before"),
    after: jsonb("after"),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
    requestId: text("request_id"),
    /**
     * How the actor authenticated: a personal token (`auth_token_id` names
     * it), single sign-on, or the bootstrap token. Empty for rows written
     * before principals existed, and for Airlock's own jobs.
     */
    authMethod: text("auth_method", { enum: ["token", "sso", "bootstrap"] }),
    authTokenId: text("auth_token_id"),
    /**
     * The hash chain (migration 0021, trigger `audit_log_chain`): a gapless
     * sequence from a counter taken under a lock by every insert, the row's
     * content as the canonical text that was hashed, the previous row's
     * hash, and SHA-256 over `prev_hash || "\n" || content`. Set by the
     * database itself; null only for rows written before the chain, which
     * its genesis row commits to.
     */
    seq: bigint("seq", { mode: "number" }),
    content: text("content"),
    prevHash: text("prev_hash"),
    hash: text("hash"),
  },
  (t) => [
    uniqueIndex("audit_log_event_id_key").on(t.eventId),
    uniqueIndex("audit_log_seq_key").on(t.seq),
    index("audit_log_actor_idx").on(t.actor, t.id),
    index("audit_log_target_idx").on(t.target, t.id),
    index("audit_log_at_idx").on(t.at),
  ],
);

/**
 * Responses remembered for `Idempotency-Key` retries, per principal. A row is
 * reserved before the handler runs (`response_status` null) so that two
 * concurrent retries cannot both apply the change.
 */
export const idempotencyKeys = pgTable(
  "idempotency_keys",
  {
    principal: text("principal").notNull(),
    key: text("key").notNull(),
    fingerprint: text("fingerprint").notNull(),
    responseStatus: integer("response_status"),
    responseBody: jsonb("response_body"),
    lockedUntil: timestamp("locked_until", { withTimezone: true }).notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.principal, t.key] }),
    index("idempotency_keys_created_at_idx").on(t.createdAt),
  ],
);

/**
 * Client API keys. Only a SHA-256 of each key is stored (keys are 256-bit
 * random, so a fast hash is enough); the plaintext is shown once, at creation.
 * `models` lists the model names the key may call.
 */
export const apiKeys = pgTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    prefix: text("prefix").notNull(),
    keyHash: text("key_hash").notNull(),
    models: jsonb("models").$type<string[]>().notNull(),
    createdAt: createdAt(),
    createdBy: text("created_by").notNull(),
    expiresAt: timestamp("expires_at", { withTimezone: true }),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
    revokedBy: text("revoked_by"),
  },
  (t) => [
    uniqueIndex("api_keys_key_hash_key").on(t.keyHash),
    index("api_keys_created_at_idx").on(t.createdAt),
  ],
);

// ---- People and service accounts ---------------------------------------------------------------
//
// Who acts on the admin API. Names and emails live here only: audit rows
// name a principal by its id, so a person's details can be erased without
// touching the trail. Principals are disabled, never deleted.

export const principals = pgTable(
  "principals",
  {
    id: text("id").primaryKey(),
    kind: text("kind", { enum: ["person", "service"] }).notNull(),
    displayName: text("display_name").notNull(),
    /** A person's sign-in email (lower case): how single sign-on finds them. */
    email: text("email"),
    /** A service account's Cloudflare Access service token (its `common_name`). */
    accessCommonName: text("access_common_name"),
    createdAt: createdAt(),
    createdBy: text("created_by").notNull(),
    disabledAt: timestamp("disabled_at", { withTimezone: true }),
    disabledBy: text("disabled_by"),
    /** Their name, email and tokens' names were erased (the id stays, as the trail names it). */
    erasedAt: timestamp("erased_at", { withTimezone: true }),
    erasedBy: text("erased_by"),
  },
  (t) => [
    uniqueIndex("principals_email_key").on(t.email),
    uniqueIndex("principals_access_common_name_key").on(t.accessCommonName),
    check(
      "principals_kind_identity",
      sql`(${t.kind} = 'person' AND ${t.accessCommonName} IS NULL) OR (${t.kind} = 'service' AND ${t.email} IS NULL)`,
    ),
  ],
);

/** Roles held: global ones (model empty) and ownership of one model. */
export const principalGrants = pgTable(
  "principal_grants",
  {
    principalId: text("principal_id")
      .notNull()
      .references(() => principals.id),
    role: text("role", {
      enum: ["viewer", "operator", "risk_officer", "review_board", "admin", "owner"],
    }).notNull(),
    /** The owned model for `owner`; empty for global roles. */
    model: text("model").notNull().default(""),
    grantedAt: timestamp("granted_at", { withTimezone: true }).notNull().defaultNow(),
    grantedBy: text("granted_by").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.principalId, t.role, t.model] }),
    check("principal_grants_owner_model", sql`(${t.role} = 'owner') = (${t.model} <> '')`),
  ],
);

/** Personal access tokens: shown once, stored as SHA-256, always expiring. */
export const principalTokens = pgTable(
  "principal_tokens",
  {
    id: text("id").primaryKey(),
    principalId: text("principal_id")
      .notNull()
      .references(() => principals.id),
    name: text("name").notNull(),
    /** The first characters of the token, to recognise it in a list. */
    prefix: text("prefix").notNull(),
    tokenHash: text("token_hash").notNull(),
    createdAt: createdAt(),
    createdBy: text("created_by").notNull(),
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
    lastUsedAt: timestamp("last_used_at", { withTimezone: true }),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
    revokedBy: text("revoked_by"),
  },
  (t) => [
    uniqueIndex("principal_tokens_token_hash_key").on(t.tokenHash),
    index("principal_tokens_principal_idx").on(t.principalId, t.createdAt),
  ],
);

/**
 * Settings of the access control itself, one row per name. Today only
 * `bootstrap_disabled`: when set, the bootstrap token opens nothing.
 */
export const accessSettings = pgTable("access_settings", {
  name: text("name").primaryKey(),
  value: jsonb("value").notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  updatedBy: text("updated_by").notNull(),
});

// ---- Approvals --------------------------------------------------------------------------------
//
// A change that gives a model authority, asked for by one person and
// decided by others (shared/governance/policy.ts says whose). An approved
// request is consumed once, by the change it names, while the rollout is
// still what the request saw (its fingerprint).

export const approvals = pgTable(
  "approvals",
  {
    id: text("id").primaryKey(),
    model: text("model")
      .notNull()
      .references(() => models.name),
    action: text("action").notNull(),
    /** The exact target: versions, percent, sample rate, scope. */
    target: jsonb("target").$type<Record<string, string | number | null>>().notNull(),
    reason: text("reason").notNull(),
    /** What the change does, in words, as the policy found it (null for requests made before). */
    change: text("change"),
    /** The roles whose approval it needs, one distinct person each, as the policy said when asked. */
    roles: jsonb("roles").$type<string[]>().notNull(),
    /** The rollout as the request saw it (policy.ts rolloutFingerprint). */
    fingerprint: text("fingerprint").notNull(),
    /**
     * For a rollout plan's step: the evidence the approvers were shown,
     * frozen when the request was made (the phase's latest evaluation), and
     * its SHA-256. Null for other requests.
     */
    evidence: jsonb("evidence").$type<Record<string, unknown>>(),
    evidenceSha256: text("evidence_sha256"),
    status: text("status", { enum: ["pending", "approved", "rejected", "consumed"] }).notNull(),
    requestedBy: text("requested_by").notNull(),
    requestedAt: timestamp("requested_at", { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
    decidedAt: timestamp("decided_at", { withTimezone: true }),
    consumedAt: timestamp("consumed_at", { withTimezone: true }),
    consumedBy: text("consumed_by"),
  },
  (t) => [
    index("approvals_model_idx").on(t.model, t.requestedAt),
    index("approvals_status_idx").on(t.status, t.requestedAt),
  ],
);

/** Each person's decision on a request: once per person, counted for one role. */
export const approvalDecisions = pgTable(
  "approval_decisions",
  {
    approvalId: text("approval_id")
      .notNull()
      .references(() => approvals.id),
    principalId: text("principal_id")
      .notNull()
      .references(() => principals.id),
    /** The role this decision counts for (null for a rejection). */
    role: text("role"),
    decision: text("decision", { enum: ["approve", "reject"] }).notNull(),
    comment: text("comment"),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.approvalId, t.principalId] })],
);

// ---- Rollout plans ----------------------------------------------------------------------------
//
// A plan takes a challenger from shadow through canary steps to full and a
// guard phase, on evidence (shared/plans). The model's rollout object owns
// the plan's state and applies its steps; `rollout_plans` mirrors it for
// reading and listing (written after every step, and by the object's outbox
// should that write fail), only ever forward (`revision`). Each evaluation
// of a phase's gates is kept with its evidence in `plan_evaluations`.

export const rolloutPlans = pgTable(
  "rollout_plans",
  {
    id: text("id").primaryKey(),
    model: text("model")
      .notNull()
      .references(() => models.name),
    challenger: text("challenger").notNull(),
    champion: text("champion").notNull(),
    status: text("status", { enum: PLAN_STATUSES }).notNull(),
    phase: text("phase").notNull(),
    /** The whole plan as its rollout object keeps it (shared/plans/state.ts PlanState). */
    state: jsonb("state").$type<PlanState>().notNull(),
    revision: integer("revision").notNull(),
    createdBy: text("created_by").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull(),
    endedAt: timestamp("ended_at", { withTimezone: true }),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index("rollout_plans_model_created_at_idx").on(t.model, t.createdAt),
    index("rollout_plans_status_idx").on(t.status),
    check(
      "rollout_plans_status_check",
      sql`${t.status} in ('active', 'paused', 'completed', 'aborted', 'rolled_back')`,
    ),
  ],
);

export const planEvaluations = pgTable(
  "plan_evaluations",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    planId: text("plan_id")
      .notNull()
      .references(() => rolloutPlans.id),
    model: text("model").notNull(),
    phase: text("phase").notNull(),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
    /** advance | hold | insufficient_evidence: what the gates say. */
    verdict: text("verdict").notNull(),
    /** The failing or waiting gates' reasons, in words. */
    reasons: jsonb("reasons").$type<string[]>().notNull(),
    /** Every gate's verdict with its numbers, samples, thresholds and span. */
    gates: jsonb("gates").$type<Record<string, unknown>[]>().notNull(),
    /** The rest of the evaluation: gates left out and why, what is still needed, the span. */
    details: jsonb("details").$type<Record<string, unknown>>().notNull(),
    /** SHA-256 of the evaluation's canonical JSON: what an approval was shown. */
    sha256: text("sha256").notNull(),
    /** What followed: advanced, completed, held, waiting, paused, approval_required, refused. */
    outcome: text("outcome").notNull(),
    /** The outcome in words. */
    outcomeReason: text("outcome_reason").notNull(),
    /** The rollout state the step made, when it made one. */
    stateVersion: bigint("state_version", { mode: "number" }),
    evaluatedBy: text("evaluated_by").notNull(),
  },
  (t) => [
    index("plan_evaluations_plan_at_idx").on(t.planId, t.at),
    check(
      "plan_evaluations_verdict_check",
      sql`${t.verdict} in ('advance', 'hold', 'insufficient_evidence')`,
    ),
  ],
);

// ---- Prediction logs ---------------------------------------------------------------------------
//
// The tables below are partitioned by day on their timestamp (declared in
// migrations/0004, which drizzle-kit cannot express): a result's key holds
// its own event time, partitions are created a week ahead by the maintenance
// job, a DEFAULT partition catches anything else, and retention drops whole
// partitions.

/**
 * Where a result came from. `control` is the champion's answer to a request
 * the canary answered, computed in shadow and never returned, so that the
 * canary is compared with the champion request by request. `rejected`
 * requests live in `rejected_requests`.
 */
export const resultRoles = ["served", "canary", "shadow", "fallback", "control"] as const;

/**
 * One row per result. Identity: (prediction id, role, version), with the
 * event's time as the partition column; a static fallback has the empty
 * version. Inserts are ON CONFLICT DO NOTHING: delivery is at least once.
 */
export const predictions = pgTable(
  "predictions",
  {
    predictionId: text("prediction_id").notNull(),
    role: text("role", { enum: resultRoles }).notNull(),
    version: text("version").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull(),
    requestId: text("request_id").notNull(),
    model: text("model").notNull(),
    inputs: jsonb("inputs").notNull(),
    prediction: jsonb("prediction"),
    attributes: jsonb("attributes").$type<Record<string, string>>().notNull(),
    keyHmac: text("key_hmac"),
    latencyMs: doublePrecision("latency_ms").notNull(),
    status: text("status", { enum: ["ok", "error", "timeout"] }).notNull(),
    errorCode: text("error_code"),
    stateVersion: bigint("state_version", { mode: "number" }).notNull(),
    storedAt: timestamp("stored_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.predictionId, t.role, t.version, t.createdAt] }),
    index("predictions_model_version_created_at_idx").on(t.model, t.version, t.createdAt),
  ],
);

/**
 * What joins to labels and outcomes need, kept far longer than `predictions`
 * (credit and churn labels arrive months later): no inputs.
 */
export const predictionRefs = pgTable(
  "prediction_refs",
  {
    predictionId: text("prediction_id").notNull(),
    role: text("role", { enum: resultRoles }).notNull(),
    version: text("version").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull(),
    model: text("model").notNull(),
    prediction: jsonb("prediction"),
    attributes: jsonb("attributes").$type<Record<string, string>>().notNull(),
    keyHmac: text("key_hmac"),
    /** The rollout state it was served under (null: stored before it was kept here). */
    stateVersion: bigint("state_version", { mode: "number" }),
  },
  (t) => [
    primaryKey({ columns: [t.predictionId, t.role, t.version, t.createdAt] }),
    index("prediction_refs_model_created_at_idx").on(t.model, t.createdAt),
  ],
);

/** Requests refused by a model's input schema, with the failing fields: data-quality monitoring. */
export const rejectedRequests = pgTable(
  "rejected_requests",
  {
    predictionId: text("prediction_id").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull(),
    requestId: text("request_id").notNull(),
    model: text("model").notNull(),
    inputs: jsonb("inputs"),
    issues: jsonb("issues").$type<{ path: string; message: string }[]>().notNull(),
    attributes: jsonb("attributes").$type<Record<string, string>>().notNull(),
    keyHmac: text("key_hmac"),
    stateVersion: bigint("state_version", { mode: "number" }).notNull(),
    storedAt: timestamp("stored_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.predictionId, t.createdAt] }),
    index("rejected_requests_model_created_at_idx").on(t.model, t.createdAt),
  ],
);

/**
 * Queue messages and results that could not be stored: malformed messages
 * and results from the log consumer, results Postgres refused on their own,
 * results the queue refused, and everything the dead-letter queue receives.
 * Kept whole, with the error, until replayed (`POST /admin/dead-letters/replay`)
 * or discarded by an operator; 14 days. A body that jsonb cannot hold (a NUL,
 * a lone surrogate) is kept as its JSON text in `body_text`, escaped so that
 * it always fits: the dead-letter path never fails on content.
 */
export const deadLetters = pgTable(
  "dead_letters",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    messageId: text("message_id").notNull(),
    queue: text("queue").notNull(),
    body: jsonb("body"),
    bodyText: text("body_text"),
    error: text("error").notNull(),
    attempts: integer("attempts").notNull(),
    receivedAt: timestamp("received_at", { withTimezone: true }).notNull().defaultNow(),
    replayedAt: timestamp("replayed_at", { withTimezone: true }),
    replayedBy: text("replayed_by"),
    discardedAt: timestamp("discarded_at", { withTimezone: true }),
    discardedBy: text("discarded_by"),
    discardReason: text("discard_reason"),
  },
  (t) => [
    uniqueIndex("dead_letters_message_id_key").on(t.messageId),
    index("dead_letters_received_at_idx").on(t.receivedAt),
  ],
);

/**
 * Ground truth, one current label per prediction and model (a later label
 * replaces an earlier one; `revision` counts them). Every label received is
 * also kept in `feedback_events`, so a replacement never erases what was said
 * before. A label names its model, one the reporting key covers; the
 * monitoring job joins it only to a prediction of that model, so a key for
 * another model can neither relabel a prediction nor replace its label.
 * Labels may arrive before the prediction's log row: no foreign key.
 */
export const feedback = pgTable(
  "feedback",
  {
    predictionId: text("prediction_id").notNull(),
    model: text("model").notNull(),
    label: jsonb("label").$type<string | number>().notNull(),
    observedAt: timestamp("observed_at", { withTimezone: true }).notNull(),
    apiKeyId: text("api_key_id").notNull(),
    revision: integer("revision").notNull().default(1),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ name: "feedback_pk", columns: [t.predictionId, t.model] }),
    index("feedback_updated_at_idx").on(t.updatedAt),
    // A model's retention deletes its old rows without reading other models'.
    index("feedback_model_updated_at_idx").on(t.model, t.updatedAt),
  ],
);

export const feedbackEvents = pgTable(
  "feedback_events",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    predictionId: text("prediction_id").notNull(),
    model: text("model").notNull(),
    label: jsonb("label").$type<string | number>().notNull(),
    observedAt: timestamp("observed_at", { withTimezone: true }).notNull(),
    apiKeyId: text("api_key_id").notNull(),
    receivedAt: timestamp("received_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index("feedback_events_prediction_id_idx").on(t.predictionId),
    index("feedback_events_received_at_idx").on(t.receivedAt),
    index("feedback_events_model_received_at_idx").on(t.model, t.receivedAt),
  ],
);

/**
 * Business KPI events (revenue, conversion, churn, handling time) tied to a
 * prediction or to a bucketing key (stored as its HMAC, like the logs), for a
 * model the reporting key covers: they count only for that model's answers.
 * A client may name each event (`client_id`) so that a retry stores it once.
 */
export const outcomes = pgTable(
  "outcomes",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    clientId: text("client_id"),
    apiKeyId: text("api_key_id").notNull(),
    model: text("model").notNull(),
    predictionId: text("prediction_id"),
    keyHmac: text("key_hmac"),
    kpi: text("kpi").notNull(),
    value: doublePrecision("value").notNull(),
    at: timestamp("at", { withTimezone: true }).notNull(),
    receivedAt: timestamp("received_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("outcomes_client_id_key")
      .on(t.apiKeyId, t.clientId)
      .where(sql`${t.clientId} is not null`),
    index("outcomes_prediction_id_idx").on(t.predictionId),
    index("outcomes_key_hmac_at_idx").on(t.keyHmac, t.at),
    index("outcomes_kpi_at_idx").on(t.kpi, t.at),
    index("outcomes_model_received_at_idx").on(t.model, t.receivedAt),
    check("outcomes_subject_check", sql`${t.predictionId} is not null or ${t.keyHmac} is not null`),
  ],
);

// ---- Erasure ----------------------------------------------------------------------------------
//
// A data subject's records erased on request (functions/jobs/erasure.ts):
// every result, reference, rejected request, label, KPI event and dead
// letter tied to a bucketing key or to prediction ids. What was erased stays
// erased: the ids are kept as tombstones, and a key's HMAC with the time of
// the request, which the log consumer, dead letters and the feedback routes
// consult before they store anything.

export const erasureRequests = pgTable(
  "erasure_requests",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    /** `key`: a bucketing key (kept as its HMAC alone); `predictions`: prediction ids. */
    subject: text("subject", { enum: ["key", "predictions"] }).notNull(),
    keyHmac: text("key_hmac"),
    /** Only this model's records; null for every model. */
    model: text("model"),
    /** The prediction ids asked for (subject `predictions`). */
    predictionIds: jsonb("prediction_ids").$type<string[]>(),
    reason: text("reason").notNull(),
    status: text("status", { enum: ["queued", "running", "succeeded", "failed"] }).notNull(),
    /** Where the job is: shared/privacy/erasure.ts ErasureProgress. */
    progress: jsonb("progress").notNull(),
    /** Rows erased, by table. */
    counts: jsonb("counts").$type<Record<string, number>>().notNull(),
    error: text("error"),
    requestedBy: text("requested_by").notNull(),
    requestedAt: timestamp("requested_at", { withTimezone: true }).notNull().defaultNow(),
    /** The last step's time: an erasure left running with no step for long is sent again. */
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
    finishedAt: timestamp("finished_at", { withTimezone: true }),
  },
  (t) => [
    index("erasure_requests_status_idx").on(t.status, t.updatedAt),
    check(
      "erasure_requests_subject_check",
      sql`CASE ${t.subject} WHEN 'key' THEN ${t.keyHmac} IS NOT NULL WHEN 'predictions' THEN ${t.predictionIds} IS NOT NULL ELSE false END`,
    ),
    check(
      "erasure_requests_status_check",
      sql`${t.status} in ('queued', 'running', 'succeeded', 'failed')`,
    ),
  ],
);

/** Every erased prediction id, for good: nothing stores a row of it again. */
export const erasureTombstones = pgTable("erasure_tombstones", {
  predictionId: text("prediction_id").primaryKey(),
  erasureId: bigint("erasure_id", { mode: "number" })
    .notNull()
    .references(() => erasureRequests.id),
  erasedAt: timestamp("erased_at", { withTimezone: true }).notNull().defaultNow(),
});

/**
 * Erased bucketing keys: no record of the key made at or before `before`
 * (its event time) is stored again; records made later are new ones.
 */
export const erasedKeys = pgTable(
  "erased_keys",
  {
    keyHmac: text("key_hmac").notNull(),
    erasureId: bigint("erasure_id", { mode: "number" })
      .notNull()
      .references(() => erasureRequests.id),
    /** Null: every model. */
    model: text("model"),
    before: timestamp("before", { withTimezone: true }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.keyHmac, t.erasureId] })],
);

/**
 * What the monitoring jobs computed: one row per (model, version, role,
 * window length, window start, metric, dimension). The dimension is a feature
 * name for per-feature metrics, `prediction.<field>` for prediction drift,
 * and empty for model-level ones; later metrics use it for a segment group, a
 * counterpart version or a KPI. A job that runs twice over a window replaces
 * its rows, so results are idempotent. `value` is null when the statistic is
 * not finite or cannot be computed, and `reason` says why.
 */
export const monitoringResults = pgTable(
  "monitoring_results",
  {
    model: text("model").notNull(),
    version: text("version").notNull(),
    role: text("role").notNull(),
    windowSeconds: integer("window_seconds").notNull(),
    windowStart: timestamp("window_start", { withTimezone: true }).notNull(),
    metric: text("metric").notNull(),
    dimension: text("dimension").notNull(),
    value: doublePrecision("value"),
    reason: text("reason"),
    /** ok | warn | alert | unknown: the metric's verdict against its thresholds. */
    status: text("status").notNull(),
    details: jsonb("details").$type<Record<string, unknown>>().notNull(),
    runId: bigint("run_id", { mode: "number" }).notNull(),
    computedAt: timestamp("computed_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({
      name: "monitoring_results_pk",
      columns: [t.model, t.version, t.role, t.windowSeconds, t.windowStart, t.metric, t.dimension],
    }),
    index("monitoring_results_model_window_idx").on(t.model, t.windowStart),
    check(
      "monitoring_results_status_check",
      sql`${t.status} in ('ok', 'warn', 'alert', 'unknown', 'insufficient_data')`,
    ),
  ],
);

/** Each run of a monitoring job: when, how long, what it did, and how it failed. */
export const monitoringRuns = pgTable(
  "monitoring_runs",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    job: text("job").notNull(),
    startedAt: timestamp("started_at", { withTimezone: true }).notNull().defaultNow(),
    finishedAt: timestamp("finished_at", { withTimezone: true }),
    durationMs: integer("duration_ms"),
    /** queued (asked for through the API, not started) | running | succeeded | failed */
    status: text("status").notNull(),
    windows: integer("windows").notNull().default(0),
    results: integer("results").notNull().default(0),
    error: text("error"),
    details: jsonb("details").$type<Record<string, unknown>>().notNull().default({}),
  },
  (t) => [
    index("monitoring_runs_job_started_at_idx").on(t.job, t.startedAt),
    check(
      "monitoring_runs_status_check",
      sql`${t.status} in ('queued', 'running', 'succeeded', 'failed')`,
    ),
  ],
);

/**
 * Prediction windows whose label- or outcome-dependent metrics must be
 * computed again because labels (`kind` 'labels') or outcomes ('outcomes')
 * arrived for them after they were computed. Marked by the monitoring job
 * from what arrived since its cursor, removed once the window is redone.
 */
export const monitoringPending = pgTable(
  "monitoring_pending",
  {
    kind: text("kind").notNull(),
    windowStart: timestamp("window_start", { withTimezone: true }).notNull(),
    markedAt: timestamp("marked_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ name: "monitoring_pending_pk", columns: [t.kind, t.windowStart] }),
    check("monitoring_pending_kind_check", sql`${t.kind} in ('labels', 'outcomes')`),
  ],
);

/** How far the monitoring job has read an append-mostly table (labels, outcomes). */
export const monitoringCursors = pgTable("monitoring_cursors", {
  name: text("name").primaryKey(),
  position: timestamp("position", { withTimezone: true }).notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});

/**
 * Alerts: one row per condition from the moment it is found until it
 * resolves (shared/alerts/lifecycle.ts). At most one alert per fingerprint
 * (rule, model, version, role, dimension) is open (pending or firing);
 * repeats fold into it (`count`, `last_seen_at`). `model` is empty for
 * Airlock's own health.
 */
export const alerts = pgTable(
  "alerts",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    fingerprint: text("fingerprint").notNull(),
    rule: text("rule").notNull(),
    severity: text("severity", { enum: ["warning", "critical"] }).notNull(),
    /** pending (found, not yet for `forEvaluations` evaluations) | firing | resolved */
    state: text("state", { enum: ["pending", "firing", "resolved"] }).notNull(),
    model: text("model").notNull(),
    version: text("version").notNull(),
    role: text("role").notNull(),
    metric: text("metric").notNull(),
    dimension: text("dimension").notNull(),
    value: doublePrecision("value"),
    threshold: doublePrecision("threshold"),
    comparison: text("comparison", { enum: ["above", "below"] }).notNull(),
    windowSeconds: integer("window_seconds"),
    windowStart: timestamp("window_start", { withTimezone: true }),
    summary: text("summary").notNull(),
    /**
     * Every statistic the rule compared at the last evaluation, each with its
     * value, threshold and direction (shared/alerts/types.ts AlertStatistic);
     * value, threshold and comparison above are the leading one's.
     */
    statistics: jsonb("statistics").$type<AlertStatistic[]>().notNull().default([]),
    count: integer("count").notNull().default(1),
    firstSeenAt: timestamp("first_seen_at", { withTimezone: true }).notNull(),
    lastSeenAt: timestamp("last_seen_at", { withTimezone: true }).notNull(),
    clearSince: timestamp("clear_since", { withTimezone: true }),
    resolvedAt: timestamp("resolved_at", { withTimezone: true }),
    /** recovered | no_data | unconfirmed (a pending alert whose condition did not persist) */
    resolution: text("resolution", { enum: ["recovered", "no_data", "unconfirmed"] }),
  },
  (t) => [
    uniqueIndex("alerts_open_fingerprint_key")
      .on(t.fingerprint)
      .where(sql`${t.state} in ('pending', 'firing')`),
    index("alerts_model_first_seen_at_idx").on(t.model, t.firstSeenAt),
    index("alerts_state_last_seen_at_idx").on(t.state, t.lastSeenAt),
    check("alerts_severity_check", sql`${t.severity} in ('warning', 'critical')`),
    check("alerts_state_check", sql`${t.state} in ('pending', 'firing', 'resolved')`),
    check("alerts_resolved_check", sql`(${t.state} = 'resolved') = (${t.resolvedAt} is not null)`),
  ],
);

/**
 * Who said they are on an alert, when, and what they noted: one row per
 * acknowledgement, never changed or removed (a trigger refuses UPDATE,
 * DELETE and TRUNCATE), so a second acknowledgement adds to the first
 * instead of overwriting it.
 */
export const alertAcknowledgements = pgTable(
  "alert_acknowledgements",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    alertId: bigint("alert_id", { mode: "number" })
      .notNull()
      .references(() => alerts.id),
    acknowledgedBy: text("acknowledged_by").notNull(),
    acknowledgedAt: timestamp("acknowledged_at", { withTimezone: true }).notNull().defaultNow(),
    note: text("note"),
  },
  (t) => [index("alert_acknowledgements_alert_id_idx").on(t.alertId, t.id)],
);

/**
 * Where alerts go: a Slack incoming webhook or a generic signed webhook.
 * The URL and the signing secret are stored encrypted (AES-GCM under the
 * ALERT_ENCRYPTION_KEY secret, bound to the row's id) and never returned;
 * `url_hint` is what the API shows. Routing: the models it takes (null: all),
 * the lowest severity, and whether Airlock's own health alerts go there.
 */
export const alertDestinations = pgTable(
  "alert_destinations",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    kind: text("kind", { enum: ["slack", "webhook"] }).notNull(),
    urlBox: text("url_box").notNull(),
    urlHint: text("url_hint").notNull(),
    secretBox: text("secret_box"),
    models: jsonb("models").$type<string[] | null>(),
    minSeverity: text("min_severity", { enum: ["warning", "critical"] })
      .notNull()
      .default("warning"),
    includeSystem: boolean("include_system").notNull().default(true),
    /**
     * The notice types it takes: exact types (`approval.requested`) or a
     * family (`approval.*`); null: every type. A test notice is addressed to
     * the destination itself and ignores it.
     */
    types: jsonb("types").$type<string[] | null>(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    createdBy: text("created_by").notNull(),
    deletedAt: timestamp("deleted_at", { withTimezone: true }),
    deletedBy: text("deleted_by"),
  },
  (t) => [
    check("alert_destinations_kind_check", sql`${t.kind} in ('slack', 'webhook')`),
    check(
      "alert_destinations_secret_check",
      sql`(${t.kind} = 'webhook') = (${t.secretBox} is not null)`,
    ),
  ],
);

/**
 * One notice for one destination: what the delivery queue carries by id, and
 * its outcome. A notice has a type (shared/notices/types.ts): an alert's
 * firing or resolution (`alert.firing`, `alert.resolved`, with `alert_id`
 * and `transition`), a destination's test (`alert.test`, POST
 * /admin/alert-destinations/{id}/test), or an event of the model's
 * governance (`approval.*`, …), whose content is frozen in `payload` when it
 * happens and which is kept single by `notice_key`. Created in the same
 * transaction as what it announces, so a notice is never lost; unique, so
 * it is never created twice.
 */
export const alertDeliveries = pgTable(
  "alert_deliveries",
  {
    id: bigint("id", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    /** The notice type, e.g. `alert.firing`, `approval.requested`. */
    type: text("type").notNull(),
    /** The model the notice is about; '' for Airlock's own health; null for a test notice. */
    model: text("model"),
    /** Set for alert notices alone. */
    alertId: bigint("alert_id", { mode: "number" }).references(() => alerts.id),
    destinationId: text("destination_id")
      .notNull()
      .references(() => alertDestinations.id),
    /** An alert notice's transition (firing | resolved) or `test`; null for other types. */
    transition: text("transition", { enum: ["firing", "resolved", "test"] }),
    /** What makes any other notice one: e.g. `approval.decided:apr_…:2`. */
    noticeKey: text("notice_key"),
    /** Any other notice's content, as it was when it happened. */
    payload: jsonb("payload"),
    /** pending (queued or retrying) | sent | failed (gave up) | dropped (destination deleted) */
    status: text("status", { enum: ["pending", "sent", "failed", "dropped"] })
      .notNull()
      .default("pending"),
    attempts: integer("attempts").notNull().default(0),
    lastStatus: integer("last_status"),
    lastError: text("last_error"),
    /** When the queue brings a pending notice back (a 429's Retry-After, or backoff). */
    nextAttemptAt: timestamp("next_attempt_at", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
    sentAt: timestamp("sent_at", { withTimezone: true }),
  },
  (t) => [
    uniqueIndex("alert_deliveries_notice_key").on(t.alertId, t.destinationId, t.transition),
    uniqueIndex("alert_deliveries_other_notice_key")
      .on(t.noticeKey, t.destinationId)
      .where(sql`${t.noticeKey} IS NOT NULL`),
    index("alert_deliveries_status_updated_at_idx").on(t.status, t.updatedAt),
    check("alert_deliveries_type_check", sql`${t.type} ~ '^[a-z][a-z_]*[.][a-z][a-z_]*$'`),
    check(
      "alert_deliveries_transition_check",
      sql`${t.transition} IS NULL OR ${t.type} = 'alert.' || ${t.transition}`,
    ),
    check(
      "alert_deliveries_kind_check",
      sql`CASE WHEN ${t.type} IN ('alert.firing', 'alert.resolved') THEN ${t.alertId} IS NOT NULL AND ${t.transition} IS NOT NULL WHEN ${t.type} = 'alert.test' THEN ${t.alertId} IS NULL AND ${t.transition} IS NOT NULL ELSE ${t.alertId} IS NULL AND ${t.transition} IS NULL AND ${t.noticeKey} IS NOT NULL AND ${t.payload} IS NOT NULL END`,
    ),
    check(
      "alert_deliveries_status_check",
      sql`${t.status} in ('pending', 'sent', 'failed', 'dropped')`,
    ),
  ],
);
