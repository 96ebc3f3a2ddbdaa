import { DurableObject } from "cloudflare:workers";
import { and, eq, sql } from "drizzle-orm";
import { isContentError, openDatabase } from "../shared/db/client";
import { auditLog, models, modelVersions } from "../shared/db/schema";
import { describeError } from "../shared/errors";
import { mirrorPlans } from "../shared/plans/mirror";
import {
  completedRollout,
  currentPhase,
  isOpen,
  manualChangeConflict,
  type PlanState,
  phaseRollout,
  withdrawnRollout,
} from "../shared/plans/state";
import { DEFAULT_LEASE_MS, GrantLedger, type LeaseGrant } from "../shared/rollout/lease";
import {
  championRemoval,
  engageKill,
  type KillSwitch,
  type KillSwitchBody,
  type ModelProfile,
  namedVersions,
  nextRollout,
  type RolloutBody,
  type RolloutConfig,
  type RolloutSnapshot,
  statusByVersion,
  type VersionRef,
} from "../shared/rollout/state";
import { inspectJson, replaceUnstorable, storableJsonText } from "../shared/storable";

/**
 * 2: outbox rows count their failed flushes and keep the last error.
 * 3: rollout plans, each change marked until it is mirrored to Postgres.
 * 4: timers: timed work as rows, with one alarm set to the earliest.
 */
const SCHEMA_VERSION = 4;
/** Outbox flush retry: doubling from 1 s, capped, for as long as it takes. */
const FLUSH_RETRY_MIN_MS = 1_000;
const FLUSH_RETRY_MAX_MS = 5 * 60_000;
/** A timer whose message could not be sent is tried again this much later. */
const TIMER_RETRY_MS = 5_000;

/** Everything the object keeps between changes. */
interface StoredState {
  model: string | null;
  stateVersion: number;
  leaseMs: number;
  rollout: RolloutConfig;
  killSwitch: KillSwitch | null;
  profile: ModelProfile | null;
  /** Every registered version's upstream reference, as last read from Postgres. */
  catalogue: Record<string, VersionRef>;
  /** Versions that have ever been live, so that leaving the rollout shows as `retired`. */
  everLive: string[];
  /** The longest lease ever granted: bounds what a restart must wait out. */
  longestLeaseMs: number;
  updatedAt: string | null;
  /** The model's latest rollout plan (open or ended); absent in states stored before plans. */
  plan?: PlanState | null;
}

export interface ChangeContext {
  actor: string;
  /** How the actor signed in (a token and its id, single sign-on, bootstrap), for the audit row. */
  auth?: { method: "token" | "sso" | "bootstrap"; tokenId?: string | undefined } | undefined;
  requestId: string | null;
  /** Apply only if the state is still at this version (If-Match). */
  ifMatch?: number | undefined;
  /** Revert even to a state without a champion (see `championRemoval`). */
  force?: boolean | undefined;
}

/** A JSON value: what history entries hold, typed so that it crosses RPC. */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

const toJson = (value: object): Json => JSON.parse(JSON.stringify(value)) as Json;

export interface HistoryEntry {
  stateVersion: number;
  at: string;
  actor: string;
  action: string;
  requestId: string | null;
  before: Json;
  after: Json;
}

export interface RolloutView {
  snapshot: RolloutSnapshot;
  history: HistoryEntry[];
  pendingAuditEvents: number;
  /** When the oldest audit event still waiting for Postgres happened; null when none waits. */
  oldestPendingAuditAt: string | null;
  /** Failed flushes of the oldest waiting event, and the last error; 0 and null when none failed. */
  auditFlushAttempts: number;
  lastAuditFlushError: string | null;
  /** The model's latest rollout plan, open or ended; null before the first. */
  plan: PlanState | null;
}

export type RolloutChangeResult =
  | { ok: true; changed: boolean; view: RolloutView; acknowledgedAfterMs: number }
  | {
      ok: false;
      code:
        | "STATE_VERSION_MISMATCH"
        | "VERSION_NOT_FOUND"
        | "KILL_SWITCH_NARROWER"
        | "CHAMPION_REQUIRED"
        | "STATE_NOT_FOUND"
        | "NOT_CONFIGURED"
        | "PLAN_IN_CONTROL"
        | "PLAN_CONFLICT"
        | "PLAN_NOT_FOUND"
        | "PLAN_STALE"
        | "KILL_SWITCH_ENGAGED";
      message: string;
      stateVersion: number;
    };

/** The state one change made (`stateAt`). */
export interface RolloutAtState {
  stateVersion: number;
  at: string;
  actor: string;
  action: string;
  requestId: string | null;
  rollout: RolloutConfig;
  killSwitch: KillSwitch | null;
  /** The state whose change last engaged or released the kill switch (null: never). */
  killSwitchChangedAt: number | null;
}

/** The registry data pushed from Postgres with a change. */
export interface Catalogue {
  profile: ModelProfile;
  versions: Record<string, VersionRef>;
}

/**
 * One model's rollout state and kill switch, with strong consistency: every
 * change goes through this object, and isolates read it through leases (see
 * shared/rollout/lease.ts). Changes are acknowledged only once no lease on
 * the old state can still be in use. Each change is also written to an
 * outbox that the alarm flushes to the Postgres audit log, so the kill switch
 * works, and is audited later, while Postgres is down.
 */
export class ModelRollout extends DurableObject<Env> {
  readonly #sql: SqlStorage;
  #state: StoredState;
  readonly #ledger: GrantLedger;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    this.#ensureSchema();
    this.#state = this.#load();
    this.#ledger = new GrantLedger(Date.now(), this.#state.longestLeaseMs);
  }

  // ---- reads --------------------------------------------------------------

  /**
   * A lease on the current state. Granted synchronously from memory, which
   * mirrors storage: there is no awaited I/O between reading and granting.
   */
  lease(model: string): LeaseGrant<RolloutSnapshot> {
    this.#claim(model);
    const now = Date.now();
    this.#ledger.grant(now, this.#state.leaseMs);
    const snapshot = this.#snapshot();
    return { state: snapshot, stateVersion: snapshot.stateVersion, leaseMs: snapshot.leaseMs };
  }

  read(model: string, historyLimit = 50): RolloutView {
    this.#claim(model);
    return this.#view(historyLimit);
  }

  // ---- changes ------------------------------------------------------------

  /** Replaces the registry data (after an admin change in Postgres). */
  async configure(
    model: string,
    catalogue: Catalogue,
    context: ChangeContext,
  ): Promise<RolloutChangeResult> {
    this.#claim(model);
    const before = { profile: this.#state.profile };
    if (JSON.stringify(this.#state.profile) === JSON.stringify(catalogue.profile)) {
      this.#state.catalogue = catalogue.versions;
      this.#save();
      return { ok: true, changed: false, view: this.#view(), acknowledgedAfterMs: 0 };
    }
    return this.#commit("registry.sync", context, { audit: true, before }, (state) => {
      state.profile = catalogue.profile;
      state.catalogue = catalogue.versions;
      return { profile: catalogue.profile };
    });
  }

  async setRollout(
    model: string,
    body: RolloutBody,
    catalogue: Catalogue,
    context: ChangeContext,
  ): Promise<RolloutChangeResult> {
    this.#claim(model);
    const stale = this.#checkIfMatch(context);
    if (stale) return stale;
    const rollout = nextRollout(this.#state.rollout, body, () => crypto.randomUUID());
    const missing = this.#missingVersion(model, rollout, catalogue);
    if (missing) return missing;
    const held = this.#heldByPlan(this.#state.rollout, rollout);
    if (held) return held;
    const leaseMs = body.leaseMs ?? this.#state.leaseMs;
    const unchanged =
      JSON.stringify(rollout) === JSON.stringify(this.#state.rollout) &&
      leaseMs === this.#state.leaseMs &&
      JSON.stringify(catalogue.profile) === JSON.stringify(this.#state.profile);
    // Repeating a PUT is not a change: no new state, nothing to wait for.
    if (unchanged) return { ok: true, changed: false, view: this.#view(), acknowledgedAfterMs: 0 };
    const before = { rollout: this.#state.rollout, leaseMs: this.#state.leaseMs };
    return this.#commit("rollout.update", context, { audit: true, before }, (state) => {
      state.profile = catalogue.profile;
      state.catalogue = catalogue.versions;
      state.rollout = rollout;
      state.leaseMs = leaseMs;
      return { rollout, leaseMs };
    });
  }

  /** Restores the rollout (champion, shadows, canary with its salt) as it was after an earlier change. */
  async revert(
    model: string,
    target: number,
    catalogue: Catalogue,
    context: ChangeContext,
  ): Promise<RolloutChangeResult> {
    this.#claim(model);
    const stale = this.#checkIfMatch(context);
    if (stale) return stale;
    const rollout = this.#rolloutAfter(target);
    if (!rollout) {
      return {
        ok: false,
        code: "STATE_NOT_FOUND",
        message: `No rollout state ${target} in this model's history`,
        stateVersion: this.#state.stateVersion,
      };
    }
    const missing = this.#missingVersion(model, rollout, catalogue);
    if (missing) return missing;
    const held = this.#heldByPlan(this.#state.rollout, rollout);
    if (held) return held;
    const removal = championRemoval(
      model,
      this.#state.rollout,
      rollout,
      `Reverting to state ${target}`,
    );
    if (removal !== undefined && !context.force) {
      return {
        ok: false,
        code: "CHAMPION_REQUIRED",
        message: removal,
        stateVersion: this.#state.stateVersion,
      };
    }
    const before = { rollout: this.#state.rollout };
    return this.#commit("rollout.revert", context, { audit: true, before }, (state) => {
      state.profile = catalogue.profile;
      state.catalogue = catalogue.versions;
      state.rollout = rollout;
      // The history and the audit trail show that the champion was taken away on purpose.
      return { rollout, revertedTo: target, ...(removal === undefined ? {} : { forced: true }) };
    });
  }

  async engageKillSwitch(
    model: string,
    body: KillSwitchBody,
    context: ChangeContext,
  ): Promise<RolloutChangeResult> {
    this.#claim(model);
    const stale = this.#checkIfMatch(context);
    if (stale) return stale;
    const outcome = engageKill(
      this.#state.killSwitch,
      body.scope,
      body.reason,
      context.actor,
      new Date().toISOString(),
    );
    if (outcome.kind === "narrower") {
      return {
        ok: false,
        code: "KILL_SWITCH_NARROWER",
        message:
          "The kill switch is engaged for the whole model; release it before engaging a narrower scope",
        stateVersion: this.#state.stateVersion,
      };
    }
    if (outcome.kind === "unchanged")
      return { ok: true, changed: false, view: this.#view(), acknowledgedAfterMs: 0 };
    const before = { killSwitch: this.#state.killSwitch };
    return this.#commit("kill_switch.engage", context, { audit: true, before }, (state) => {
      state.killSwitch = outcome.killSwitch;
      return { killSwitch: outcome.killSwitch };
    });
  }

  /**
   * The state made by the change that made `stateVersion`: the rollout and
   * the kill switch in force from then until the next change, and who made
   * it, when and how. Null if no change made it (salts included: callers
   * outside the object drop them).
   */
  stateAt(model: string, stateVersion: number): RolloutAtState | null {
    this.#claim(model);
    const row = this.#sql
      .exec<{
        state_version: number;
        at: string;
        actor: string;
        action: string;
        request_id: string | null;
        rollout: string;
      }>(
        "SELECT state_version, at, actor, action, request_id, rollout FROM history WHERE state_version = ?",
        stateVersion,
      )
      .toArray()[0];
    if (!row) return null;
    // Only the kill switch's own changes move it: the last one up to here says where it stood.
    const kill = this.#sql
      .exec<{ state_version: number; after: string }>(
        "SELECT state_version, after FROM history WHERE state_version <= ? AND action IN ('kill_switch.engage', 'kill_switch.release') ORDER BY state_version DESC LIMIT 1",
        stateVersion,
      )
      .toArray()[0];
    const killSwitch = kill
      ? ((JSON.parse(kill.after) as { killSwitch?: KillSwitch | null }).killSwitch ?? null)
      : null;
    return {
      stateVersion: row.state_version,
      at: row.at,
      actor: row.actor,
      action: row.action,
      requestId: row.request_id,
      rollout: JSON.parse(row.rollout) as RolloutConfig,
      killSwitch,
      killSwitchChangedAt: kill?.state_version ?? null,
    };
  }

  /** The rollout as it was right after the change that made `stateVersion`; null if none did. */
  rolloutAt(model: string, stateVersion: number): RolloutConfig | null {
    this.#claim(model);
    return this.#rolloutAfter(stateVersion) ?? null;
  }

  async releaseKillSwitch(model: string, context: ChangeContext): Promise<RolloutChangeResult> {
    this.#claim(model);
    const stale = this.#checkIfMatch(context);
    if (stale) return stale;
    if (!this.#state.killSwitch)
      return { ok: true, changed: false, view: this.#view(), acknowledgedAfterMs: 0 };
    const before = { killSwitch: this.#state.killSwitch };
    return this.#commit("kill_switch.release", context, { audit: true, before }, (state) => {
      state.killSwitch = null;
      return { killSwitch: null, rollout: state.rollout };
    });
  }

  // ---- rollout plans ----------------------------------------------------------

  /** The model's latest plan, open or ended; null before the first. */
  plan(model: string): PlanState | null {
    this.#claim(model);
    return this.#state.plan ?? null;
  }

  /**
   * Starts a plan: the challenger becomes a shadow of the champion, its
   * first phase. Refused while another plan is open, while the rollout has
   * a canary (a plan needs the canary to itself) or the kill switch is
   * engaged, and when the champion is not the one the plan was made for.
   */
  async startPlan(
    model: string,
    plan: PlanState,
    catalogue: Catalogue,
    context: ChangeContext,
  ): Promise<RolloutChangeResult> {
    this.#claim(model);
    const stale = this.#checkIfMatch(context);
    if (stale) return stale;
    const open = this.#state.plan;
    const rollout = this.#state.rollout;
    const refuse = (code: "PLAN_CONFLICT" | "KILL_SWITCH_ENGAGED", message: string) =>
      this.#refusal(code, message);
    if (open && isOpen(open.status))
      return refuse(
        "PLAN_CONFLICT",
        `Plan ${open.id} is ${open.status} for ${open.challenger}: abort it before starting another`,
      );
    if (rollout.champion !== plan.champion)
      return refuse(
        "PLAN_CONFLICT",
        `The champion of '${model}' is ${rollout.champion ?? "not set"}, not ${plan.champion}: a plan starts from the champion serving now`,
      );
    if (rollout.canary)
      return refuse(
        "PLAN_CONFLICT",
        `'${model}' has a canary (${rollout.canary.version} at ${rollout.canary.percent}%): a plan needs the canary to itself; remove it first`,
      );
    if (this.#state.killSwitch)
      return refuse(
        "KILL_SWITCH_ENGAGED",
        `The kill switch of '${model}' is engaged (${this.#state.killSwitch.scope}): release it before starting a plan`,
      );
    const first = plan.phases[0];
    if (!first) throw new RangeError("a plan has at least one phase");
    const next = phaseRollout(plan, first, rollout);
    const missing = this.#missingVersion(model, next, catalogue);
    if (missing) return missing;
    return this.#commit(
      "plan.start",
      context,
      { audit: true, before: { rollout }, plan: plan.id },
      (state) => {
        const started: PlanState = {
          ...plan,
          status: "active",
          phaseIndex: 0,
          phaseStarts: [
            { phase: first.id, at: state.updatedAt as string, stateVersion: state.stateVersion },
          ],
          revision: 1,
          createdAt: state.updatedAt as string,
        };
        state.plan = started;
        state.profile = catalogue.profile;
        state.catalogue = catalogue.versions;
        state.rollout = next;
        return { plan: planEvent(started), rollout: next };
      },
    );
  }

  /**
   * Moves a plan on from `phase`: to the next phase, over it (`skip`), or to
   * its end after the last. Refused, and changes nothing, when the request
   * is stale (another plan, a phase the plan has left, a plan not active) or
   * the kill switch is engaged. The step carries the evaluation behind it.
   */
  async stepPlan(
    model: string,
    request: {
      planId: string;
      phase: string;
      evaluationId: number | null;
      skip?: boolean | undefined;
      reason?: string | undefined;
    },
    catalogue: Catalogue,
    context: ChangeContext,
  ): Promise<RolloutChangeResult> {
    this.#claim(model);
    const plan = this.#state.plan;
    if (!plan || plan.id !== request.planId)
      return this.#refusal("PLAN_NOT_FOUND", `Model '${model}' has no plan '${request.planId}'`);
    if (plan.status !== "active")
      return this.#refusal(
        "PLAN_STALE",
        `Plan ${plan.id} is ${plan.status}: it does not advance${plan.status === "paused" ? " until it is resumed" : ""}`,
      );
    const from = currentPhase(plan);
    if (from.id !== request.phase)
      return this.#refusal(
        "PLAN_STALE",
        `Plan ${plan.id} is in phase ${from.id}, not ${request.phase}: the request is stale`,
      );
    if (this.#state.killSwitch)
      return this.#refusal(
        "KILL_SWITCH_ENGAGED",
        `The kill switch of '${model}' is engaged (${this.#state.killSwitch.scope}): the plan does not advance until it is released`,
      );
    const toIndex = plan.phaseIndex + (request.skip ? 2 : 1);
    const to = plan.phases[toIndex];
    const rollout = to
      ? phaseRollout(plan, to, this.#state.rollout)
      : completedRollout(plan, this.#state.rollout);
    if (rollout.canary && rollout.canary.salt === "") rollout.canary.salt = crypto.randomUUID();
    const missing = this.#missingVersion(model, rollout, catalogue);
    if (missing) return missing;
    const action = !to ? "plan.complete" : request.skip ? "plan.skip" : "plan.advance";
    return this.#commit(
      action,
      context,
      { audit: true, before: { rollout: this.#state.rollout, phase: from.id }, plan: plan.id },
      (state) => {
        const at = state.updatedAt as string;
        const stepped: PlanState = {
          ...plan,
          revision: plan.revision + 1,
          lastEvaluationId: request.evaluationId,
          ...(to
            ? {
                phaseIndex: toIndex,
                // A skipped phase begins and ends with the step: starts stay one per phase.
                phaseStarts: [
                  ...plan.phaseStarts,
                  ...plan.phases
                    .slice(plan.phaseIndex + 1, toIndex + 1)
                    .map((phase) => ({ phase: phase.id, at, stateVersion: state.stateVersion })),
                ],
              }
            : {
                status: "completed" as const,
                endedAt: at,
                endReason: request.reason ?? `${plan.challenger} passed every phase`,
              }),
        };
        state.plan = stepped;
        state.profile = catalogue.profile;
        state.catalogue = catalogue.versions;
        state.rollout = rollout;
        return {
          plan: planEvent(stepped),
          from: from.id,
          to: to?.id ?? "completed",
          evaluationId: request.evaluationId,
          ...(request.skip ? { skipped: plan.phases[plan.phaseIndex + 1]?.id ?? null } : {}),
          ...(request.reason ? { reason: request.reason } : {}),
          rollout,
        };
      },
    );
  }

  /**
   * Pauses (a freeze: nothing advances), resumes, or aborts a plan. Aborting
   * gives the champion back to the previous champion and takes the
   * challenger's share and shadow away; the plan stays as it ended, with its
   * reason.
   */
  async changePlan(
    model: string,
    planId: string,
    change: "pause" | "resume" | "abort",
    reason: string,
    catalogue: Catalogue,
    context: ChangeContext,
  ): Promise<RolloutChangeResult> {
    this.#claim(model);
    const plan = this.#state.plan;
    if (!plan || plan.id !== planId)
      return this.#refusal("PLAN_NOT_FOUND", `Model '${model}' has no plan '${planId}'`);
    const wanted = { pause: "active", resume: "paused", abort: null }[change];
    if (!isOpen(plan.status) || (wanted !== null && plan.status !== wanted))
      return this.#refusal(
        "PLAN_STALE",
        `Plan ${plan.id} is ${plan.status}: it cannot be ${change === "pause" ? "paused" : change === "resume" ? "resumed" : "aborted"}`,
      );
    const rollout =
      change === "abort" ? withdrawnRollout(plan, this.#state.rollout) : this.#state.rollout;
    const missing = this.#missingVersion(model, rollout, catalogue);
    if (missing) return missing;
    return this.#commit(
      `plan.${change}`,
      context,
      { audit: true, before: { rollout: this.#state.rollout, status: plan.status }, plan: plan.id },
      (state) => {
        const at = state.updatedAt as string;
        const changed: PlanState = {
          ...plan,
          revision: plan.revision + 1,
          status: change === "pause" ? "paused" : change === "resume" ? "active" : "aborted",
          ...(change === "abort" ? { endedAt: at, endReason: reason } : {}),
        };
        state.plan = changed;
        state.profile = catalogue.profile;
        state.catalogue = catalogue.versions;
        state.rollout = rollout;
        return { plan: planEvent(changed), reason, rollout };
      },
    );
  }

  // ---- outbox -------------------------------------------------------------

  /**
   * The one alarm: flushes the outbox to Postgres (on failure, again with
   * backoff, for as long as it takes) and fires the timers that are due;
   * then it is set again for the earliest of the two.
   */
  override async alarm(): Promise<void> {
    let retryAt: number | null = null;
    try {
      await this.#fireTimers(Date.now());
    } catch (error) {
      retryAt = Date.now() + TIMER_RETRY_MS;
      console.error(
        JSON.stringify({
          level: "warn",
          event: "rollout.timer_failed",
          model: this.#state.model,
          retryInMs: TIMER_RETRY_MS,
          error: describeError(error),
        }),
      );
    }
    try {
      await this.flushOutbox();
      this.#setMeta("flush_failures", "0");
    } catch (error) {
      const failures = Number(this.#getMeta("flush_failures") ?? "0") + 1;
      this.#setMeta("flush_failures", String(failures));
      const delay = Math.min(
        FLUSH_RETRY_MAX_MS,
        FLUSH_RETRY_MIN_MS * 2 ** Math.min(failures - 1, 20),
      );
      const message = describeError(error);
      this.#sql.exec(
        "UPDATE outbox SET attempts = attempts + 1, last_error = ?",
        replaceUnstorable(message).slice(0, 1000),
      );
      console.error(
        JSON.stringify({
          level: "warn",
          event: "rollout.outbox.flush_failed",
          model: this.#state.model,
          failures,
          retryInMs: delay,
          error: message,
        }),
      );
      retryAt = Math.min(retryAt ?? Infinity, Date.now() + delay);
    }
    const next = this.#sql.exec<{ at: number | null }>("SELECT min(at) AS at FROM timers").one().at;
    const at = Math.min(retryAt ?? Infinity, next ?? Infinity);
    if (Number.isFinite(at)) await this.ctx.storage.setAlarm(at);
  }

  /** The timers waiting, earliest first (what the alarm will fire). */
  timers(model: string): { key: string; at: string; message: Json }[] {
    this.#claim(model);
    return this.#sql
      .exec<{ key: string; at: number; message: string }>(
        "SELECT key, at, message FROM timers ORDER BY at, key",
      )
      .toArray()
      .map((row) => ({
        key: row.key,
        at: new Date(row.at).toISOString(),
        message: JSON.parse(row.message) as Json,
      }));
  }

  /**
   * Sends each due timer's message. A timer is taken before its send (an
   * alarm run that overlaps never sends it twice) and put back should the
   * send fail, for the next alarm.
   */
  async #fireTimers(now: number): Promise<void> {
    const due = this.#sql
      .exec<{ key: string; at: number; message: string }>(
        "SELECT key, at, message FROM timers WHERE at <= ? ORDER BY at, key",
        now,
      )
      .toArray();
    for (const timer of due) {
      const taken = this.#sql.exec(
        "DELETE FROM timers WHERE key = ? AND message = ?",
        timer.key,
        timer.message,
      ).rowsWritten;
      if (taken === 0) continue;
      try {
        await this.env.PLAN_EVALUATIONS.send(JSON.parse(timer.message));
      } catch (error) {
        this.#sql.exec(
          "INSERT INTO timers (key, at, message) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING",
          timer.key,
          timer.at,
          timer.message,
        );
        throw error;
      }
    }
  }

  /**
   * A plan's wake-up: when the current phase's minimum dwell ends, an
   * evaluation is asked for (functions/queue/plan-evaluations.ts). Only for
   * a dwell of at least one monitoring window: a shorter one is met by the
   * evaluation after the next monitoring run anyway. Replaced with every
   * change of the plan; none while it is paused or ended.
   */
  #setPlanTimer(plan: PlanState): void {
    this.#sql.exec("DELETE FROM timers WHERE key LIKE 'plan:%'");
    if (plan.status !== "active") return;
    const phase = currentPhase(plan);
    const start = plan.phaseStarts[plan.phaseIndex];
    const windowMs = Number(this.env.MONITORING_WINDOW_SECONDS || "900") * 1000;
    const dwellMs = phase.timing.minDwellSeconds * 1000;
    if (!start || dwellMs < windowMs) return;
    const at = Date.parse(start.at) + dwellMs;
    this.#sql.exec(
      "INSERT INTO timers (key, at, message) VALUES (?, ?, ?)",
      `plan:${plan.id}:${phase.id}`,
      at,
      JSON.stringify({ model: plan.model, planId: plan.id, phase: phase.id, reason: "dwell_met" }),
    );
  }

  /**
   * Writes pending audit events (idempotently: event ids are unique) and the
   * versions' lifecycle statuses to Postgres, then drops what was written.
   * No event can hold up the others: one holding a string Postgres cannot
   * store is written with that content as escaped text, and should
   * Postgres still refuse the batch for its content, each event is written
   * on its own, in order, the refused one in its escaped form.
   */
  async flushOutbox(): Promise<{ flushed: number }> {
    const pending = this.#sql
      .exec<{ seq: number; event: string }>("SELECT seq, event FROM outbox ORDER BY seq")
      .toArray();
    const model = this.#state.model;
    const statusesDirty = this.#getMeta("statuses_dirty") === "1";
    const dirtyPlans = this.#sql
      .exec<{ id: string; state: string }>("SELECT id, state FROM plans WHERE dirty = 1")
      .toArray();
    if ((pending.length === 0 && !statusesDirty && dirtyPlans.length === 0) || !model)
      return { flushed: 0 };
    const rows = pending.map((row) =>
      storableAuditRow(JSON.parse(row.event) as OutboxEvent, false),
    );
    const { db, close } = openDatabase(this.env);
    try {
      try {
        if (rows.length > 0)
          await db.insert(auditLog).values(rows).onConflictDoNothing({ target: auditLog.eventId });
      } catch (error) {
        if (!isContentError(error)) throw error;
        for (const row of rows) {
          try {
            await db.insert(auditLog).values(row).onConflictDoNothing({ target: auditLog.eventId });
          } catch (refused) {
            if (!isContentError(refused)) throw refused;
            await db
              .insert(auditLog)
              .values(storableAuditRow(row, true))
              .onConflictDoNothing({ target: auditLog.eventId });
          }
        }
      }
      await db.transaction(async (tx) => {
        const statuses = statusByVersion(this.#state.rollout, this.#state.everLive);
        for (const [version, status] of Object.entries(statuses)) {
          await tx
            .update(modelVersions)
            .set({ status, updatedAt: sql`now()` })
            .where(
              and(
                eq(modelVersions.version, version),
                eq(
                  modelVersions.modelId,
                  sql`(select ${models.id} from ${models} where ${models.name} = ${model})`,
                ),
              ),
            );
        }
      });
      await mirrorPlans(
        db,
        dirtyPlans.map((row) => JSON.parse(row.state) as PlanState),
      );
    } finally {
      await close();
    }
    // Only what was written is clean: a plan changed meanwhile stays dirty.
    for (const row of dirtyPlans)
      this.#sql.exec("UPDATE plans SET dirty = 0 WHERE id = ? AND state = ?", row.id, row.state);
    const last = pending.at(-1)?.seq;
    if (last !== undefined) this.#sql.exec("DELETE FROM outbox WHERE seq <= ?", last);
    this.#setMeta("statuses_dirty", "0");
    return { flushed: pending.length };
  }

  // ---- internals ------------------------------------------------------------

  /**
   * Commits a change, then waits until every lease granted on the old state
   * has run out before returning: the 2xx of the admin call follows this.
   */
  async #commit(
    action: string,
    context: ChangeContext,
    options: { audit: boolean; before: object; plan?: string },
    apply: (state: StoredState) => object,
  ): Promise<RolloutChangeResult> {
    const next: StoredState = structuredClone(this.#state);
    // The new state's version and time, for `apply` to record (a plan's phase starts).
    next.stateVersion += 1;
    next.updatedAt = new Date().toISOString();
    const after = apply(next);
    const planChanged = JSON.stringify(next.plan) !== JSON.stringify(this.#state.plan);
    next.longestLeaseMs = Math.max(next.longestLeaseMs, next.leaseMs);
    next.everLive = [...new Set([...next.everLive, ...namedVersions(next.rollout, undefined)])];
    const entry: HistoryEntry = {
      stateVersion: next.stateVersion,
      at: next.updatedAt,
      actor: context.actor,
      action,
      requestId: context.requestId,
      before: toJson(options.before),
      after: toJson(after),
    };
    this.ctx.storage.transactionSync(() => {
      this.#writeState(next);
      this.#sql.exec(
        "INSERT INTO history (state_version, at, actor, action, request_id, before, after, rollout) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        entry.stateVersion,
        entry.at,
        entry.actor,
        entry.action,
        entry.requestId,
        JSON.stringify(entry.before ?? null),
        JSON.stringify(entry.after ?? null),
        JSON.stringify(next.rollout),
      );
      if (options.audit) {
        this.#sql.exec(
          "INSERT INTO outbox (event) VALUES (?)",
          JSON.stringify({
            eventId: `rollout:${next.model}:${next.stateVersion}`,
            source: "rollout",
            actor: context.actor,
            authMethod: context.auth?.method ?? null,
            authTokenId: context.auth?.tokenId ?? null,
            action,
            targetType: options.plan === undefined ? "rollout" : "plan",
            target:
              options.plan === undefined
                ? `models/${next.model}/rollout`
                : `models/${next.model}/plans/${options.plan}`,
            before: { ...options.before, stateVersion: next.stateVersion - 1 },
            after: { ...after, stateVersion: next.stateVersion },
            at: next.updatedAt,
            requestId: context.requestId,
          }),
        );
        this.#setMeta("statuses_dirty", "1");
      }
      if (planChanged && next.plan) {
        this.#sql.exec(
          "INSERT INTO plans (id, state, dirty) VALUES (?, ?, 1) ON CONFLICT (id) DO UPDATE SET state = excluded.state, dirty = 1",
          next.plan.id,
          JSON.stringify(next.plan),
        );
        this.#setPlanTimer(next.plan);
      }
    });
    this.#state = next;
    if (options.audit || planChanged) await this.ctx.storage.setAlarm(Date.now());
    const waitMs = Math.max(0, this.#ledger.acknowledgeAt() - Date.now());
    if (waitMs > 0) await scheduler.wait(waitMs);
    return { ok: true, changed: true, view: this.#view(), acknowledgedAfterMs: waitMs };
  }

  /** A failure naming the first version the rollout needs that the registry does not have. */
  #missingVersion(
    model: string,
    rollout: RolloutConfig,
    catalogue: Catalogue,
  ): RolloutChangeResult | undefined {
    const version = namedVersions(rollout, undefined).find((name) => !catalogue.versions[name]);
    if (version === undefined) return undefined;
    return {
      ok: false,
      code: "VERSION_NOT_FOUND",
      message: `Model '${model}' has no version '${version}'`,
      stateVersion: this.#state.stateVersion,
    };
  }

  #refusal(
    code: Extract<RolloutChangeResult, { ok: false }>["code"],
    message: string,
  ): RolloutChangeResult {
    return { ok: false, code, message, stateVersion: this.#state.stateVersion };
  }

  /** A manual change that would take an open plan's versions out of its hands. */
  #heldByPlan(before: RolloutConfig, after: RolloutConfig): RolloutChangeResult | undefined {
    const plan = this.#state.plan;
    const conflict = plan ? manualChangeConflict(plan, before, after) : null;
    return conflict === null ? undefined : this.#refusal("PLAN_IN_CONTROL", conflict);
  }

  #checkIfMatch(context: ChangeContext): RolloutChangeResult | undefined {
    if (context.ifMatch === undefined || context.ifMatch === this.#state.stateVersion)
      return undefined;
    return {
      ok: false,
      code: "STATE_VERSION_MISMATCH",
      message: `The rollout is at state ${this.#state.stateVersion}, not ${context.ifMatch}`,
      stateVersion: this.#state.stateVersion,
    };
  }

  /**
   * An object serves one model. Its name is kept in memory on first use and
   * stored with the first change, so reads for unknown names leave nothing behind.
   */
  #claim(model: string): void {
    if (this.#state.model === model) return;
    if (this.#state.model !== null)
      throw new Error(`rollout object for '${this.#state.model}' called for '${model}'`);
    this.#state.model = model;
  }

  #snapshot(): RolloutSnapshot {
    const s = this.#state;
    const versions: Record<string, VersionRef> = {};
    for (const name of namedVersions(s.rollout, s.profile?.fallback)) {
      const ref = s.catalogue[name];
      if (ref) versions[name] = ref;
    }
    return {
      model: s.model ?? "",
      stateVersion: s.stateVersion,
      leaseMs: s.leaseMs,
      rollout: s.rollout,
      killSwitch: s.killSwitch,
      profile: s.profile,
      versions,
    };
  }

  #view(historyLimit = 50): RolloutView {
    const history = this.#sql
      .exec<{
        state_version: number;
        at: string;
        actor: string;
        action: string;
        request_id: string | null;
        before: string;
        after: string;
      }>(
        "SELECT state_version, at, actor, action, request_id, before, after FROM history ORDER BY state_version DESC LIMIT ?",
        historyLimit,
      )
      .toArray()
      .map((row) => ({
        stateVersion: row.state_version,
        at: row.at,
        actor: row.actor,
        action: row.action,
        requestId: row.request_id,
        before: JSON.parse(row.before) as Json,
        after: JSON.parse(row.after) as Json,
      }));
    const pending = this.#sql
      .exec<{ n: number; oldest: string | null }>(
        "SELECT count(*) AS n, (SELECT json_extract(event, '$.at') FROM outbox ORDER BY seq LIMIT 1) AS oldest FROM outbox",
      )
      .one();
    const head = this.#sql
      .exec<{ attempts: number; last_error: string | null }>(
        "SELECT attempts, last_error FROM outbox ORDER BY seq LIMIT 1",
      )
      .toArray()[0];
    return {
      snapshot: this.#snapshot(),
      history,
      pendingAuditEvents: pending.n,
      oldestPendingAuditAt: pending.oldest,
      auditFlushAttempts: head?.attempts ?? 0,
      lastAuditFlushError: head?.last_error ?? null,
      plan: this.#state.plan ?? null,
    };
  }

  #rolloutAfter(stateVersion: number): RolloutConfig | undefined {
    const row = this.#sql
      .exec<{ rollout: string }>(
        "SELECT rollout FROM history WHERE state_version = ?",
        stateVersion,
      )
      .toArray()[0];
    return row ? (JSON.parse(row.rollout) as RolloutConfig) : undefined;
  }

  #ensureSchema(): void {
    this.#sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    const version = Number(this.#getMeta("schema_version") ?? "0");
    if (version >= SCHEMA_VERSION) return;
    this.ctx.storage.transactionSync(() => {
      this.#sql.exec(`CREATE TABLE IF NOT EXISTS history (
        state_version INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
        request_id TEXT, before TEXT NOT NULL, after TEXT NOT NULL, rollout TEXT NOT NULL)`);
      this.#sql.exec(
        "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, event TEXT NOT NULL)",
      );
      if (version < 2) {
        this.#sql.exec("ALTER TABLE outbox ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0");
        this.#sql.exec("ALTER TABLE outbox ADD COLUMN last_error TEXT");
      }
      // Every plan the object has run; `dirty` until its latest state is in Postgres.
      this.#sql.exec(
        "CREATE TABLE IF NOT EXISTS plans (id TEXT PRIMARY KEY, state TEXT NOT NULL, dirty INTEGER NOT NULL)",
      );
      // Timed work (a plan's wake-up), due at `at` (ms since the epoch).
      this.#sql.exec(
        "CREATE TABLE IF NOT EXISTS timers (key TEXT PRIMARY KEY, at INTEGER NOT NULL, message TEXT NOT NULL)",
      );
      this.#setMeta("schema_version", String(SCHEMA_VERSION));
    });
  }

  #load(): StoredState {
    const stored = this.#getMeta("state");
    if (stored) return JSON.parse(stored) as StoredState;
    return {
      model: null,
      stateVersion: 0,
      leaseMs: DEFAULT_LEASE_MS,
      rollout: { champion: null, shadows: [], canary: null },
      killSwitch: null,
      profile: null,
      catalogue: {},
      everLive: [],
      longestLeaseMs: DEFAULT_LEASE_MS,
      updatedAt: null,
    };
  }

  #save(): void {
    this.#writeState(this.#state);
  }

  #writeState(state: StoredState): void {
    this.#setMeta("state", JSON.stringify(state));
  }

  #getMeta(key: string): string | undefined {
    return this.#sql
      .exec<{ value: string }>("SELECT value FROM meta WHERE key = ?", key)
      .toArray()[0]?.value;
  }

  #setMeta(key: string, value: string): void {
    this.#sql.exec(
      "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
      key,
      value,
    );
  }
}

/** An audit event as the outbox keeps it (JSON text): `at` is an ISO time. */
type OutboxEvent = Omit<typeof auditLog.$inferInsert, "at"> & { at: string };
type AuditRow = typeof auditLog.$inferInsert;

const AUDIT_TEXT_FIELDS = [
  "eventId",
  "source",
  "actor",
  "authTokenId",
  "action",
  "targetType",
  "target",
  "requestId",
] as const;

/**
 * An audit row Postgres can store. Text fields lose what they cannot hold
 * (to U+FFFD); `before` and `after` that hold such a string are kept whole
 * as their escaped JSON text, `{"unstorable": true, "json": "…"}`, so that
 * nothing of the change is lost. `always` forces that form (a row refused
 * for its content for another reason).
 */
function storableAuditRow(event: OutboxEvent | AuditRow, always: boolean): AuditRow {
  const row: AuditRow = { ...event, at: new Date(event.at as string | Date) } as AuditRow;
  const record = row as Record<string, unknown>;
  for (const field of AUDIT_TEXT_FIELDS) {
    const value = record[field];
    if (typeof value === "string") record[field] = replaceUnstorable(value);
  }
  for (const field of ["before", "after"] as const) {
    const value = row[field];
    if (value !== undefined && (always || inspectJson(value) !== null)) {
      row[field] = { unstorable: true, json: storableJsonText(value) };
    }
  }
  return row;
}

/** A plan as its change events record it: what it is and where it stands, without its settings. */
function planEvent(plan: PlanState) {
  return {
    id: plan.id,
    challenger: plan.challenger,
    champion: plan.champion,
    status: plan.status,
    phase: currentPhase(plan).id,
    revision: plan.revision,
    ...(plan.endReason ? { endReason: plan.endReason } : {}),
  };
}
