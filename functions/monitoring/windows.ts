/**
 * Which windows a monitoring run computes. Windows are aligned to the epoch
 * (UTC): 15 minutes, with hourly and daily roll-ups. A run at `now` computes,
 * at every length, the windows that ended within the last two base windows:
 * the 15-minute window just ended and the one before it (late rows, retries
 * and dead-letter replays are counted the second time), an hour in the two
 * runs after it ends, a day likewise.
 */

/** The monitoring job's name in monitoring_runs. */
export const MONITORING_JOB = "drift-quality";

/** The base window and the roll-ups, in seconds. */
export const WINDOW_SECONDS = [900, 3600, 86_400] as const;
const BASE_WINDOW_SECONDS = WINDOW_SECONDS[0];
export const MONITORED_ROLES = ["served", "canary", "shadow"] as const;

export interface MonitoringWindow {
  seconds: number;
  start: Date;
  end: Date;
}

/** The windows a run at `now` computes (see the module comment). */
export function windowsToCompute(now: Date): MonitoringWindow[] {
  const t = now.getTime();
  const horizon = t - 2 * BASE_WINDOW_SECONDS * 1000;
  const windows: MonitoringWindow[] = [];
  for (const seconds of WINDOW_SECONDS) {
    const length = seconds * 1000;
    const lastEnd = Math.floor(t / length) * length;
    for (const end of [lastEnd, lastEnd - length]) {
      if (end > horizon)
        windows.push({ seconds, start: new Date(end - length), end: new Date(end) });
    }
  }
  return windows;
}
