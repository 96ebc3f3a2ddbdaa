import { describe, expect, it } from "vitest";
import {
  DEFAULT_WINDOWS,
  enclosingWindows,
  WindowSettingError,
  windowLengths,
  windowsToBackfill,
  windowsToCatchUp,
} from "../../shared/monitoring/windows";

const at = (iso: string) => new Date(iso);
const key = (w: { seconds: number; start: Date }) => `${w.seconds}:${w.start.toISOString()}`;
/** A run at `now` whose previous run covered up to one base window before it. */
const shown = (now: string, lengths = DEFAULT_WINDOWS) => {
  const last = Math.floor(Date.parse(now) / (lengths.base * 1000)) * lengths.base * 1000;
  return windowsToCatchUp(at(now), new Date(last - lengths.base * 1000), lengths).windows.map(key);
};

describe("monitoring window lengths", () => {
  it("are 15 minutes, an hour and a day by default", () => {
    expect(windowLengths(undefined).all).toEqual([900, 3600, 86_400]);
    expect(windowLengths("").all).toEqual([900, 3600, 86_400]);
  });

  it("follow MONITORING_WINDOW_SECONDS, with roll-ups of 4 and 96 windows", () => {
    expect(windowLengths("60").all).toEqual([60, 240, 5760]);
    expect(windowLengths(" 300 ").all).toEqual([300, 1200, 28_800]);
  });

  it("refuse a setting that is not a whole divisor of a day from 10 to 3600 seconds", () => {
    expect(windowLengths("15").all).toEqual([15, 60, 1440]);
    for (const bad of ["9", "7", "4000", "61", "abc", "90.5", "-60"]) {
      expect(() => windowLengths(bad)).toThrow(WindowSettingError);
    }
    expect(() => windowLengths("61")).toThrow(/MONITORING_WINDOW_SECONDS is "61": it must be/);
  });
});

describe("monitoring windows a run computes", () => {
  it("takes the base window just ended and the one before it", () => {
    expect(shown("2026-11-25T10:45:00.000Z")).toEqual([
      "900:2026-11-25T10:15:00.000Z",
      "900:2026-11-25T10:30:00.000Z",
    ]);
    // A late start still covers both, never the window still open.
    expect(shown("2026-11-25T10:46:30.000Z")).toEqual([
      "900:2026-11-25T10:15:00.000Z",
      "900:2026-11-25T10:30:00.000Z",
    ]);
  });

  it("adds a roll-up in the two runs after it ends, after the windows it holds", () => {
    expect(shown("2026-11-25T11:00:00.000Z")).toContain("3600:2026-11-25T10:00:00.000Z");
    expect(shown("2026-11-25T11:15:00.000Z")).toContain("3600:2026-11-25T10:00:00.000Z");
    expect(shown("2026-11-25T11:30:00.000Z").some((w) => w.startsWith("3600:"))).toBe(false);
    expect(shown("2026-11-26T00:00:00.000Z")).toEqual([
      "900:2026-11-25T23:30:00.000Z",
      "900:2026-11-25T23:45:00.000Z",
      "3600:2026-11-25T23:00:00.000Z",
      "86400:2026-11-25T00:00:00.000Z",
    ]);
    expect(shown("2026-11-26T00:15:00.000Z")).toContain("86400:2026-11-25T00:00:00.000Z");
    expect(shown("2026-11-26T00:30:00.000Z").some((w) => w.startsWith("86400:"))).toBe(false);
  });

  it("covers every window of every length over a day of runs, each exactly twice", () => {
    const seen = new Map<string, number>();
    const start = Date.parse("2026-11-25T00:00:00.000Z");
    let covered: Date | null = null;
    for (let t = start; t <= start + 86_400_000 + 900_000; t += 900_000) {
      const run = windowsToCatchUp(new Date(t), covered, DEFAULT_WINDOWS);
      covered = run.coveredUntil;
      for (const w of run.windows) seen.set(key(w), (seen.get(key(w)) ?? 0) + 1);
    }
    for (let s = start; s < start + 86_400_000; s += 900_000)
      expect(seen.get(`900:${new Date(s).toISOString()}`)).toBe(2);
    for (let s = start; s < start + 86_400_000; s += 3_600_000)
      expect(seen.get(`3600:${new Date(s).toISOString()}`)).toBe(2);
    expect(seen.get(`86400:${new Date(start).toISOString()}`)).toBe(2);
  });

  it("catches up on windows that ended while no run came, within a bound", () => {
    // The last run covered up to 10:00; the next comes at 11:02.
    const run = windowsToCatchUp(
      at("2026-11-25T11:02:00Z"),
      at("2026-11-25T10:00:00Z"),
      DEFAULT_WINDOWS,
    );
    expect(run.windows.filter((w) => w.seconds === 900).map(key)).toEqual([
      "900:2026-11-25T09:45:00.000Z",
      "900:2026-11-25T10:00:00.000Z",
      "900:2026-11-25T10:15:00.000Z",
      "900:2026-11-25T10:30:00.000Z",
      "900:2026-11-25T10:45:00.000Z",
    ]);
    expect(run.windows.map(key)).toContain("3600:2026-11-25T10:00:00.000Z");
    expect(run.coveredUntil.toISOString()).toBe("2026-11-25T11:00:00.000Z");
    expect(run.missed).toBeNull();
    // A week without runs: one day of windows now, the rest named for a backfill.
    const late = windowsToCatchUp(
      at("2026-12-02T10:00:00Z"),
      at("2026-11-25T10:00:00Z"),
      DEFAULT_WINDOWS,
    );
    expect(late.windows.filter((w) => w.seconds === 900)).toHaveLength(96);
    expect(late.missed).toEqual({
      from: at("2026-11-25T09:45:00Z"),
      to: at("2026-12-01T10:00:00Z"),
      windows: 577,
    });
  });

  it("never moves the coverage back, and computes only ended windows", () => {
    const run = windowsToCatchUp(
      at("2026-11-25T10:05:00Z"),
      at("2026-11-25T11:00:00Z"),
      DEFAULT_WINDOWS,
    );
    expect(run.coveredUntil.toISOString()).toBe("2026-11-25T11:00:00.000Z");
    for (const w of run.windows)
      expect(w.end.getTime()).toBeLessThanOrEqual(Date.parse("2026-11-25T10:05:00Z"));
  });

  it("works the same with 60-second windows", () => {
    const short = windowLengths("60");
    expect(shown("2026-11-25T10:04:10.000Z", short)).toEqual([
      "60:2026-11-25T10:02:00.000Z",
      "60:2026-11-25T10:03:00.000Z",
      "240:2026-11-25T10:00:00.000Z",
    ]);
  });
});

describe("a backfill", () => {
  it("computes every window wholly inside the range that has ended", () => {
    const windows = windowsToBackfill(
      at("2026-11-25T10:00:00Z"),
      at("2026-11-25T12:00:00Z"),
      at("2026-11-25T11:20:00Z"),
      DEFAULT_WINDOWS,
    ).map(key);
    expect(windows.filter((w) => w.startsWith("900:"))).toHaveLength(5);
    expect(windows).toContain("3600:2026-11-25T10:00:00.000Z");
    expect(windows).not.toContain("3600:2026-11-25T11:00:00.000Z");
    expect(windows.some((w) => w.startsWith("86400:"))).toBe(false);
  });
});

describe("windows around a late label", () => {
  it("are the ended windows of every length that hold its base window", () => {
    const found = enclosingWindows(
      at("2026-11-25T10:15:00Z"),
      at("2026-11-25T12:00:00Z"),
      DEFAULT_WINDOWS,
    );
    expect(found.map(key)).toEqual([
      "900:2026-11-25T10:15:00.000Z",
      "3600:2026-11-25T10:00:00.000Z",
    ]);
  });
});
