/**
 * The monitoring job's name and the roles it monitors. Window lengths and
 * which windows a run computes are pure arithmetic in
 * shared/monitoring/windows.ts.
 */
export type { MonitoringWindow } from "../../shared/monitoring/windows";

/** The monitoring job's name in monitoring_runs. */
export const MONITORING_JOB = "drift-quality";

export const MONITORED_ROLES = ["served", "canary", "shadow"] as const;
