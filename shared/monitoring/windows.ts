/**
 * Monitoring windows: their lengths, and which of them a run computes.
 *
 * The base window is `MONITORING_WINDOW_SECONDS` long (900 s by default), with
 * roll-ups of four and of 96 base windows (an hour and a day at the default).
 * Windows of every length are aligned to the epoch (UTC). Production keeps
 * the default; demos and a first try use short windows (60 s: roll-ups of 4
 * and 96 minutes) to see results, alerts and resolutions in minutes, and
 * end-to-end tests shorter ones still (down to 10 s; rows that reach Postgres
 * after their window was first computed are counted by the next run).
 * Everything that is counted in windows follows the setting: the rules'
 * default windows, the alert cooldown and staleness, the late-label marking.
 *
 * Which windows a run computes: every window, at every length, that ended
 * after the coverage of the previous run less one base window (so a window is
 * computed once when it ends and again in the next run, for late rows,
 * retries and dead-letter replays), and no further back than a bound; a run
 * that finds windows missed beyond the bound says so, and a backfill computes
 * them. A window is computed only once it has ended.
 */

/** The base window, in seconds, when `MONITORING_WINDOW_SECONDS` is not set. */
export const DEFAULT_WINDOW_SECONDS = 900;

/** Roll-ups, in base windows. */
export const ROLLUP_FACTORS = [1, 4, 96] as const;

/** At most this many base windows are computed by one run that catches up. */
export const MAX_CATCH_UP_WINDOWS = 96;

/** At most this many base windows in one backfill. */
export const MAX_BACKFILL_WINDOWS = 2976;

export interface WindowLengths {
  /** The base window, in seconds. */
  base: number;
  /** The base window and its roll-ups, in seconds, shortest first. */
  all: readonly [number, number, number];
}

export interface MonitoringWindow {
  seconds: number;
  start: Date;
  end: Date;
}

/** A `MONITORING_WINDOW_SECONDS` that cannot be used; the message says what can. */
export class WindowSettingError extends Error {
  override name = "WindowSettingError";
}

/**
 * The window lengths for a `MONITORING_WINDOW_SECONDS` setting: a whole number
 * of seconds from 10 to 3600 that divides a day, so that windows of every
 * length line up with days. Empty means the default.
 */
export function windowLengths(setting: string | undefined): WindowLengths {
  const text = setting?.trim() ?? "";
  const base = text === "" ? DEFAULT_WINDOW_SECONDS : Number(text);
  if (!Number.isInteger(base) || base < 10 || base > 3600 || 86_400 % base !== 0) {
    throw new WindowSettingError(
      `MONITORING_WINDOW_SECONDS is ${JSON.stringify(setting)}: it must be a whole number of seconds from 10 to 3600 that divides a day (for example 60, 300 or 900)`,
    );
  }
  return { base, all: [base, 4 * base, 96 * base] };
}

export const DEFAULT_WINDOWS = windowLengths(undefined);

/** The window of `seconds` that contains the instant `at`. */
export function windowAt(at: number, seconds: number): MonitoringWindow {
  const length = seconds * 1000;
  const start = Math.floor(at / length) * length;
  return { seconds, start: new Date(start), end: new Date(start + length) };
}

/** End of the latest base window that has ended by `now`. */
export function lastBaseEnd(now: Date, lengths: WindowLengths): Date {
  const length = lengths.base * 1000;
  return new Date(Math.floor(now.getTime() / length) * length);
}

/**
 * The windows, at every length, whose end lies in (`after`, `upTo`], oldest
 * end first (shorter first at the same end), so roll-ups come after the base
 * windows they contain.
 */
export function windowsEndingIn(
  after: Date,
  upTo: Date,
  lengths: WindowLengths,
): MonitoringWindow[] {
  const windows: MonitoringWindow[] = [];
  for (const seconds of lengths.all) {
    const length = seconds * 1000;
    let end = Math.floor(upTo.getTime() / length) * length;
    while (end > after.getTime()) {
      windows.push({ seconds, start: new Date(end - length), end: new Date(end) });
      end -= length;
    }
  }
  return windows.sort((a, b) => a.end.getTime() - b.end.getTime() || a.seconds - b.seconds);
}

export interface CatchUp {
  /** Windows to compute, oldest end first. */
  windows: MonitoringWindow[];
  /** Coverage after the run: the end of the latest base window computed. */
  coveredUntil: Date;
  /** Base windows missed beyond the bound (a backfill computes them), or null. */
  missed: { from: Date; to: Date; windows: number } | null;
}

/**
 * What a run at `now` computes, given the end of the latest base window the
 * previous runs covered (null on the first run): the windows that ended since
 * one base window before that coverage, at least the two latest base windows,
 * and at most `MAX_CATCH_UP_WINDOWS` base windows back.
 */
export function windowsToCatchUp(
  now: Date,
  coveredUntil: Date | null,
  lengths: WindowLengths,
  maxWindows = MAX_CATCH_UP_WINDOWS,
): CatchUp {
  const base = lengths.base * 1000;
  const last = lastBaseEnd(now, lengths).getTime();
  const wanted = Math.min(
    last - 2 * base,
    coveredUntil === null ? last - 2 * base : coveredUntil.getTime() - base,
  );
  const bound = last - maxWindows * base;
  const after = Math.max(wanted, bound);
  const missed =
    wanted < bound
      ? {
          from: new Date(wanted),
          to: new Date(bound),
          windows: Math.round((bound - wanted) / base),
        }
      : null;
  return {
    windows: windowsEndingIn(new Date(after), new Date(last), lengths),
    coveredUntil: new Date(Math.max(last, coveredUntil?.getTime() ?? last)),
    missed,
  };
}

/**
 * The windows a backfill over [from, to) computes: every window, at every
 * length, that lies wholly inside the range and has ended by `now`.
 */
export function windowsToBackfill(
  from: Date,
  to: Date,
  now: Date,
  lengths: WindowLengths,
): MonitoringWindow[] {
  const upTo = new Date(Math.min(to.getTime(), now.getTime()));
  return windowsEndingIn(from, upTo, lengths).filter((w) => w.start.getTime() >= from.getTime());
}

/** The latest ended window of each length at `now`. */
export function latestWindows(now: Date, lengths: WindowLengths): MonitoringWindow[] {
  return lengths.all.map((seconds) => {
    const end = Math.floor(now.getTime() / (seconds * 1000)) * seconds * 1000;
    return { seconds, start: new Date(end - seconds * 1000), end: new Date(end) };
  });
}

/** The ended windows at every length that contain the base window starting at `start`. */
export function enclosingWindows(
  start: Date,
  now: Date,
  lengths: WindowLengths,
): MonitoringWindow[] {
  return lengths.all
    .map((seconds) => windowAt(start.getTime(), seconds))
    .filter((w) => w.end.getTime() <= now.getTime());
}

/** `seconds` as people say it: "15 minutes", "1 hour", "60 seconds". */
export function describeSeconds(seconds: number): string {
  const unit = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  if (seconds % 86_400 === 0) return unit(seconds / 86_400, "day");
  if (seconds % 3600 === 0) return unit(seconds / 3600, "hour");
  if (seconds % 60 === 0) return unit(seconds / 60, "minute");
  return unit(seconds, "second");
}
