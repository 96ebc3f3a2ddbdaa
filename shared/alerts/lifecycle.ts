/**
 * The alert lifecycle as a pure plan: given the open (firing) alerts and one
 * evaluation's observations, what changes.
 *
 * - A violating observation with no open alert opens one: `firing` at once
 *   when its rule's `forEvaluations` is 1, else `pending` (nobody is told)
 *   until that many consecutive evaluations found it; then it is promoted
 *   to `firing`. Becoming `firing` is the only moment a firing notice is sent.
 *   Evaluations are counted by window: two runs over the same window (a run
 *   asked for on demand after the cron, a late-label redo) count once.
 * - A violating observation of an open alert folds into it: count + 1 (in a
 *   window it had not seen), last seen, the latest values; any clearing
 *   stops. Seen again in the same window, it is a repeat: the latest values,
 *   without counting.
 * - A pending alert whose condition clears (or that nothing observes any
 *   more) is discarded: resolved as `unconfirmed`, without a notice.
 * - A clear observation of an open alert starts its clearing; once it has
 *   been clear for the cooldown it resolves (the resolution notice). A
 *   condition that flaps inside the cooldown stays one firing alert.
 * - An open alert that nothing has observed for `staleMinutes` resolves as
 *   `no_data` (its version stopped getting traffic, or the rule was turned off).
 */
import type { Observation } from "./evaluate";

export interface OpenAlert {
  id: number;
  fingerprint: string;
  model: string;
  state: "pending" | "firing";
  /** Distinct windows in which evaluations found the condition so far. */
  count: number;
  lastSeenAt: string;
  /** The window of the last evaluation that found it (null for health checks, which have none). */
  windowSeconds: number | null;
  windowStart: string | null;
  /** When its condition was first seen clear since it last violated; null while violating. */
  clearSince: string | null;
}

export interface LifecycleSettings {
  cooldownMinutes: number;
  staleMinutes: number;
}

export type AlertAction =
  | { kind: "open"; state: "pending" | "firing"; observation: Observation }
  | { kind: "fold"; id: number; observation: Observation }
  | { kind: "repeat"; id: number; observation: Observation }
  | { kind: "promote"; id: number; observation: Observation }
  | { kind: "discard"; id: number; observation: Observation | null }
  | { kind: "clearing"; id: number; observation: Observation }
  | {
      kind: "resolve";
      id: number;
      reason: "recovered" | "no_data";
      observation: Observation | null;
    };

/** The changes one evaluation at `now` makes; `settings` per model ('' for Airlock's own health). */
export function planAlerts(
  open: readonly OpenAlert[],
  observations: readonly Observation[],
  now: Date,
  settings: (model: string) => LifecycleSettings,
): AlertAction[] {
  // One observation per fingerprint: a violating one wins over a clear one.
  const byFingerprint = new Map<string, Observation>();
  for (const observation of observations) {
    const seen = byFingerprint.get(observation.fingerprint);
    if (!seen || (!seen.violating && observation.violating))
      byFingerprint.set(observation.fingerprint, observation);
  }
  const openByFingerprint = new Map(open.map((alert) => [alert.fingerprint, alert]));
  const actions: AlertAction[] = [];
  const t = now.getTime();
  for (const observation of byFingerprint.values()) {
    const alert = openByFingerprint.get(observation.fingerprint);
    if (observation.violating) {
      const sameWindow =
        alert !== undefined &&
        alert.windowStart !== null &&
        observation.windowStart !== null &&
        Date.parse(alert.windowStart) === Date.parse(observation.windowStart) &&
        alert.windowSeconds === observation.windowSeconds;
      if (!alert) {
        const state = observation.forEvaluations <= 1 ? "firing" : "pending";
        actions.push({ kind: "open", state, observation });
      } else if (sameWindow) {
        actions.push({ kind: "repeat", id: alert.id, observation });
      } else if (alert.state === "pending" && alert.count + 1 >= observation.forEvaluations) {
        actions.push({ kind: "promote", id: alert.id, observation });
      } else {
        actions.push({ kind: "fold", id: alert.id, observation });
      }
      continue;
    }
    if (!alert) continue;
    if (alert.state === "pending") {
      actions.push({ kind: "discard", id: alert.id, observation });
      continue;
    }
    const cooldownMs = settings(alert.model).cooldownMinutes * 60_000;
    const clearSince = alert.clearSince === null ? t : Date.parse(alert.clearSince);
    if (t - clearSince >= cooldownMs) {
      actions.push({ kind: "resolve", id: alert.id, reason: "recovered", observation });
    } else if (alert.clearSince === null) {
      actions.push({ kind: "clearing", id: alert.id, observation });
    }
  }
  for (const alert of open) {
    if (byFingerprint.has(alert.fingerprint)) continue;
    const staleMs = settings(alert.model).staleMinutes * 60_000;
    if (alert.state === "pending") {
      // Not seen again at the next evaluation: not consecutive, so not confirmed.
      if (t - Date.parse(alert.lastSeenAt) > 0)
        actions.push({ kind: "discard", id: alert.id, observation: null });
    } else if (t - Date.parse(alert.lastSeenAt) >= staleMs) {
      actions.push({ kind: "resolve", id: alert.id, reason: "no_data", observation: null });
    }
  }
  return actions;
}
