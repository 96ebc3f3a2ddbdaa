/**
 * A plan's phases and their defaults, the settings a plan is created with
 * (and the words of their errors), and where a plan stands against its
 * target dates.
 */
import { describe, expect, it } from "vitest";
import {
  DEFAULT_CYCLE_DAYS,
  DEFAULT_PHASE_TIMINGS,
  PlanSettings,
  type PlanTimeline,
  planPhases,
  schedule,
} from "../../shared/plans/phases";
import { validationMessage } from "../../shared/validation-messages";

function errors(input: unknown): string[] {
  const result = PlanSettings.safeParse(input, { error: validationMessage });
  expect(result.success).toBe(false);
  return (result.error?.issues ?? []).map((issue) => `${issue.path.join(".")}: ${issue.message}`);
}

describe("planPhases", () => {
  it("goes from shadow through 1, 5, 25 and 50% to full and guard by default", () => {
    const phases = planPhases();
    expect(phases.map((p) => p.id)).toEqual([
      "shadow",
      "canary_1",
      "canary_5",
      "canary_25",
      "canary_50",
      "full",
      "guard",
    ]);
    expect(phases[2]?.percent).toBe(5);
    expect(phases[0]?.timing).toEqual(DEFAULT_PHASE_TIMINGS.shadow);
    // Shadow results are not served: no labels are asked of it, and no gate needs them.
    expect(phases[0]?.timing.minLabels).toBeNull();
    expect(phases[0]?.gates).not.toContain("quality");
    expect(phases[1]?.gates).toContain("kpi");
    expect(DEFAULT_CYCLE_DAYS).toBe(90);
  });

  it("takes a plan's steps and timings over the defaults", () => {
    const settings = PlanSettings.parse({
      steps: [10, 50],
      phases: { canary: { minLabels: 50, targetDays: 0.5 } },
    });
    const phases = planPhases(settings);
    expect(phases.map((p) => p.id)).toEqual(["shadow", "canary_10", "canary_50", "full", "guard"]);
    expect(phases[1]?.timing).toEqual({
      ...DEFAULT_PHASE_TIMINGS.canary,
      minLabels: 50,
      targetDays: 0.5,
    });
    expect(phases[3]?.timing).toEqual(DEFAULT_PHASE_TIMINGS.full);
  });
});

describe("PlanSettings", () => {
  it("accepts nothing at all: every default", () => {
    expect(PlanSettings.parse({})).toEqual({});
  });

  it("names the step that does not rise, and a step outside (0, 100)", () => {
    expect(errors({ steps: [5, 5, 25] })).toEqual([
      "steps.1: must be above the step before it (5)",
    ]);
    expect(errors({ steps: [0, 100] })).toEqual([
      "steps.0: must be greater than 0",
      "steps.1: must be less than 100",
    ]);
    expect(errors({ steps: [] })).toEqual(["steps: must not be empty"]);
  });

  it("names a timing field that is wrong, and refuses labels for shadow", () => {
    expect(errors({ phases: { canary: { minDwellSeconds: -1 } } })).toEqual([
      "phases.canary.minDwellSeconds: must be at least 0",
    ]);
    expect(errors({ phases: { shadow: { minLabels: 10 } } })).toEqual([
      "phases.shadow: 'minLabels' is not a field of this object",
    ]);
    expect(errors({ phases: { blue: {} } })).toEqual([
      "phases: 'blue' is not a field of this object",
    ]);
    expect(errors({ phases: { guard: { targetDays: 0 } } })).toEqual([
      "phases.guard.targetDays: must be greater than 0",
    ]);
  });

  it("needs a cycle at least as long as the phases' target days added up", () => {
    // The defaults add up to 7 + 4 × 7 + 7 + 14 = 56 days.
    expect(PlanSettings.safeParse({ cycleDays: 56 }).success).toBe(true);
    expect(errors({ cycleDays: 55 })).toEqual([
      "cycleDays: must be at least the phases' target days added up (56)",
    ]);
  });

  it("names a threshold that is wrong or unknown", () => {
    expect(errors({ thresholds: { minAgreement: 1.5 } })).toEqual([
      "thresholds.minAgreement: must be at most 1",
    ]);
    expect(errors({ thresholds: { minAgreeement: 0.9 } })).toEqual([
      "thresholds: 'minAgreeement' is not a field of this object",
    ]);
  });
});

describe("schedule", () => {
  const DAY = 86_400_000;
  const start = Date.parse("2027-01-01T00:00:00.000Z");
  const at = (days: number) => new Date(start + days * DAY).toISOString();
  const plan = (phaseStarts: string[], cycleDays = 90): PlanTimeline => ({
    phases: planPhases(),
    cycleDays,
    phaseStarts,
  });

  it("gives each phase its target date, chained from the current phase's", () => {
    // Shadow began on day 0 and took 5 days; canary_1 began on day 5, its target day 12.
    const s = schedule(plan([at(0), at(5)]), new Date(start + 6 * DAY));
    expect(s.phases.map((p) => [p.id, p.state, p.targetAt])).toEqual([
      ["shadow", "done", at(7)],
      ["canary_1", "current", at(12)],
      ["canary_5", "upcoming", at(19)],
      ["canary_25", "upcoming", at(26)],
      ["canary_50", "upcoming", at(33)],
      ["full", "upcoming", at(40)],
      ["guard", "upcoming", at(54)],
    ]);
    expect(s.current).toEqual({ id: "canary_1", targetAt: at(12), overdue: false });
    expect(s.daysUsed).toBe(6);
    expect(s.daysLeft).toBe(84);
    expect(s.cycleTargetAt).toBe(at(90));
    expect(s.projectedEndAt).toBe(at(54));
    expect(s.beyondCycle).toBe(false);
  });

  it("is not overdue exactly at the target, and is overdue after it", () => {
    expect(schedule(plan([at(0), at(5)]), new Date(start + 12 * DAY)).current.overdue).toBe(false);
    const late = schedule(plan([at(0), at(5)]), new Date(start + 13 * DAY));
    expect(late.current.overdue).toBe(true);
    // What follows an overdue phase is planned from now.
    expect(late.phases[2]?.targetAt).toBe(at(20));
  });

  it("says when the plan will overrun its cycle, and counts days past it", () => {
    const s = schedule(plan([at(0)], 30), new Date(start + 31 * DAY));
    expect(s.current.overdue).toBe(true);
    expect(s.daysLeft).toBe(-1);
    expect(s.beyondCycle).toBe(true);
    // Shadow overdue on day 31: the six phases after it take 49 days from now.
    expect(s.projectedEndAt).toBe(at(80));
  });

  it("refuses a plan that has not begun or has begun more phases than it has", () => {
    expect(() => schedule(plan([]), new Date(start))).toThrow(RangeError);
    expect(() => schedule(plan(Array(8).fill(at(0))), new Date(start))).toThrow(RangeError);
  });
});
