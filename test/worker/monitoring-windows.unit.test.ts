import { describe, expect, it } from "vitest";
import { windowsToCompute } from "../../functions/monitoring/windows";

const at = (iso: string) => new Date(iso);
const shown = (now: string) =>
  windowsToCompute(at(now)).map((w) => `${w.seconds}:${w.start.toISOString()}`);

describe("monitoring windows a run computes", () => {
  it("takes the 15-minute window just ended and the one before it", () => {
    expect(shown("2026-11-25T10:45:00.000Z")).toEqual([
      "900:2026-11-25T10:30:00.000Z",
      "900:2026-11-25T10:15:00.000Z",
    ]);
    // A late start still covers both, never the window still open.
    expect(shown("2026-11-25T10:46:30.000Z")).toEqual([
      "900:2026-11-25T10:30:00.000Z",
      "900:2026-11-25T10:15:00.000Z",
    ]);
  });

  it("adds an hour in the two runs after it ends, and a day likewise", () => {
    expect(shown("2026-11-25T11:00:00.000Z")).toContain("3600:2026-11-25T10:00:00.000Z");
    expect(shown("2026-11-25T11:15:00.000Z")).toContain("3600:2026-11-25T10:00:00.000Z");
    expect(shown("2026-11-25T11:30:00.000Z").some((w) => w.startsWith("3600:"))).toBe(false);
    expect(shown("2026-11-26T00:00:00.000Z")).toEqual([
      "900:2026-11-25T23:45:00.000Z",
      "900:2026-11-25T23:30:00.000Z",
      "3600:2026-11-25T23:00:00.000Z",
      "86400:2026-11-25T00:00:00.000Z",
    ]);
    expect(shown("2026-11-26T00:15:00.000Z")).toContain("86400:2026-11-25T00:00:00.000Z");
    expect(shown("2026-11-26T00:30:00.000Z").some((w) => w.startsWith("86400:"))).toBe(false);
  });

  it("covers every window of every length over a day of runs, each at least once", () => {
    const seen = new Map<string, number>();
    const start = Date.parse("2026-11-25T00:00:00.000Z");
    for (let t = start; t <= start + 86_400_000 + 900_000; t += 900_000) {
      for (const w of windowsToCompute(new Date(t))) {
        const key = `${w.seconds}:${w.start.toISOString()}`;
        seen.set(key, (seen.get(key) ?? 0) + 1);
      }
    }
    for (let s = start; s < start + 86_400_000; s += 900_000)
      expect(seen.get(`900:${new Date(s).toISOString()}`)).toBe(2);
    for (let s = start; s < start + 86_400_000; s += 3_600_000)
      expect(seen.get(`3600:${new Date(s).toISOString()}`)).toBe(2);
    expect(seen.get(`86400:${new Date(start).toISOString()}`)).toBe(2);
  });
});
