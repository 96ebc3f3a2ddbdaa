import { describe, expect, it } from "vitest";
import { evaluateRules, fingerprintOf, type ResultRow } from "../../shared/alerts/evaluate";
import { type OpenAlert, planAlerts } from "../../shared/alerts/lifecycle";
import { DEFAULT_MODEL_RULES, RuleError, resolveRules } from "../../shared/alerts/rules";
import { windowLengths } from "../../shared/monitoring/windows";

const START = "2026-11-20T10:00:00.000Z";

function row(fields: Partial<ResultRow> & Pick<ResultRow, "metric">): ResultRow {
  return {
    model: "m",
    version: "v1",
    role: "served",
    windowSeconds: 900,
    windowStart: START,
    dimension: "",
    value: 0,
    status: "ok",
    details: {},
    ...fields,
  };
}

const only = (rules: ReturnType<typeof resolveRules>, name: string) => ({
  ...rules,
  rules: Object.fromEntries(
    Object.entries(rules.rules).map(([k, r]) => [k, { ...r, enabled: k === name }]),
  ) as typeof rules.rules,
});

describe("alert rules", () => {
  it("applies a model's overrides and refuses fields that do not fit the rule", () => {
    const rules = resolveRules({
      rules: { psi: { threshold: 0.4, severity: "critical" }, drift: { enabled: false } },
      cooldownMinutes: 5,
    });
    expect(rules.rules.psi).toMatchObject({ threshold: 0.4, severity: "critical", metric: "psi" });
    expect(rules.rules.drift.enabled).toBe(false);
    expect(rules.rules.error_rate).toEqual(DEFAULT_MODEL_RULES.error_rate);
    expect(rules.cooldownMinutes).toBe(5);
    expect(() => resolveRules({ rules: { drift: { threshold: 0.2 } } })).toThrow(RuleError);
    try {
      resolveRules({ rules: { drift: { threshold: 0.2 } } });
    } catch (error) {
      expect((error as RuleError).path).toMatch(/^rules\.drift/);
    }
  });

  it("counts windows, cooldowns and staleness in monitoring windows of the configured length", () => {
    const short = windowLengths("60");
    const rules = resolveRules({}, short);
    expect(rules.rules.drift.windowSeconds).toBe(60);
    expect(rules.rules.quality_vs_champion.windowSeconds).toBe(240);
    expect(rules.cooldownMinutes).toBe(2);
    expect(rules.staleMinutes).toBe(12);
    // A window of another length is refused, naming the windows there are.
    expect(() => resolveRules({ rules: { drift: { windowSeconds: 900 } } }, short)).toThrow(
      "rules.drift.windowSeconds: must be one of the monitoring windows: 60, 240, 5760 seconds",
    );
    expect(
      resolveRules({ rules: { drift: { windowSeconds: 240 } } }, short).rules.drift.windowSeconds,
    ).toBe(240);
    // The defaults are as they were at 15 minutes.
    const standard = resolveRules({});
    expect(standard.rules.drift.windowSeconds).toBe(900);
    expect(standard.rules.kpi_drop.windowSeconds).toBe(3600);
    expect([standard.cooldownMinutes, standard.staleMinutes]).toEqual([30, 180]);
  });

  it("compares thresholds in both directions, per role, and ignores rows without a value", () => {
    const rules = resolveRules({});
    const observations = evaluateRules(only(rules, "error_rate"), [
      row({ metric: "error_rate", value: 0.06 }),
      row({ metric: "error_rate", value: 0.05, version: "v2", role: "canary" }),
      row({ metric: "error_rate", value: 0.5, version: "v3", role: "shadow" }),
      row({ metric: "error_rate", value: null, version: "v4" }),
      row({ metric: "error_rate", value: 0.9, windowSeconds: 3600 }),
    ]);
    expect(observations.map((o) => [o.version, o.violating])).toEqual([
      ["v1", true],
      ["v2", false],
    ]);
    expect(observations[0]).toMatchObject({
      severity: "critical",
      threshold: 0.05,
      comparison: "above",
      fingerprint: fingerprintOf("error_rate", "m", "v1", "served", ""),
    });
    expect(observations[0]?.summary).toBe(
      "error_rate of m v1 (served): error rate 0.06 (above the threshold 0.05)",
    );
    expect(observations[1]?.summary).toBe(
      "error_rate of m v2 (canary) is within bounds: error rate 0.05 (not above the threshold 0.05)",
    );
    const agreement = evaluateRules(only(rules, "shadow_agreement"), [
      row({
        metric: "shadow_agreement",
        role: "shadow",
        version: "v2",
        dimension: "v1",
        value: 0.85,
        windowSeconds: 3600,
      }),
    ]);
    expect(agreement[0]).toMatchObject({ violating: true, comparison: "below", dimension: "v1" });
  });

  it("follows the job's verdict for drift, with the method's direction", () => {
    const observations = evaluateRules(only(resolveRules({}), "drift"), [
      row({
        metric: "drift",
        dimension: "income",
        value: 0.0001,
        status: "alert",
        details: { method: "ks", threshold: 0.05 },
      }),
      row({
        metric: "drift",
        dimension: "age",
        value: 0.04,
        status: "ok",
        details: { method: "wasserstein", threshold: 0.1 },
      }),
      row({ metric: "drift", dimension: "region", value: null, status: "unknown" }),
    ]);
    expect(observations.map((o) => [o.dimension, o.violating, o.comparison])).toEqual([
      ["income", true, "below"],
      ["age", false, "above"],
    ]);
    expect(observations[0]?.summary).toBe(
      "drift of m v1 (served), income: KS p-value 0.0001 (below the threshold 0.05)",
    );
    expect(observations[1]?.summary).toBe(
      "drift of m v1 (served), age is within bounds: normalised Wasserstein distance 0.04 (not above the threshold 0.1)",
    );
  });

  it("makes one drift alert of a feature's drift test and its PSI", () => {
    const rules = resolveRules({});
    const rows = [
      row({
        metric: "drift",
        dimension: "income",
        value: 0.2,
        status: "ok",
        details: { method: "ks", threshold: 0.05 },
      }),
      row({ metric: "psi", dimension: "income", value: 0.31, status: "alert" }),
      row({
        metric: "drift",
        dimension: "age",
        value: 0.5,
        status: "ok",
        details: { method: "ks", threshold: 0.05 },
      }),
      row({ metric: "psi", dimension: "age", value: 0.01, status: "ok" }),
    ];
    const observations = evaluateRules(rules, rows).filter((o) => o.rule === "drift");
    expect(observations.map((o) => [o.dimension, o.violating, o.metric])).toEqual([
      ["income", true, "psi"],
      ["age", false, "drift"],
    ]);
    expect(evaluateRules(rules, rows).some((o) => o.rule === "psi")).toBe(false);
    // Each statistic with its own value, threshold and direction; the alert
    // leads with the one that broke its rule, all four fields from it.
    const [income, age] = observations;
    expect(income).toMatchObject({
      metric: "psi",
      value: 0.31,
      threshold: 0.25,
      comparison: "above",
    });
    expect(income?.statistics).toEqual([
      {
        metric: "drift",
        name: "KS p-value",
        value: 0.2,
        threshold: 0.05,
        comparison: "below",
        violating: false,
      },
      {
        metric: "psi",
        name: "PSI",
        value: 0.31,
        threshold: 0.25,
        comparison: "above",
        violating: true,
      },
    ]);
    expect(income?.summary).toBe(
      "psi of m v1 (served), income: KS p-value 0.2 (not below the threshold 0.05); PSI 0.31 (above the threshold 0.25)",
    );
    expect(age).toMatchObject({
      metric: "drift",
      value: 0.5,
      threshold: 0.05,
      comparison: "below",
    });
    expect(age?.summary).toBe(
      "drift of m v1 (served), age is within bounds: KS p-value 0.5 (not below the threshold 0.05); PSI 0.01 (not above the threshold 0.25)",
    );
  });

  it("never pairs one statistic's value with another's threshold or direction", () => {
    // The KS test breaks its rule and PSI does not: the alert is the KS p-value's, below 0.05.
    const observations = evaluateRules(resolveRules({}), [
      row({ metric: "psi", dimension: "income", value: 0.12, status: "warn" }),
      row({
        metric: "drift",
        dimension: "income",
        value: 3.597e-72,
        status: "alert",
        details: { method: "ks", threshold: 0.05 },
      }),
    ]).filter((o) => o.rule === "drift");
    expect(observations).toHaveLength(1);
    expect(observations[0]).toMatchObject({
      metric: "drift",
      value: 3.597e-72,
      threshold: 0.05,
      comparison: "below",
      violating: true,
    });
    expect(observations[0]?.summary).toBe(
      "drift of m v1 (served), income: KS p-value 3.597e-72 (below the threshold 0.05); PSI 0.12 (not above the threshold 0.25)",
    );
  });

  it("compares a challenger with the champion on the same requests, with enough labels", () => {
    const rules = only(resolveRules({}), "quality_vs_champion");
    const auc = (role: string, version: string, value: number, n = 500) =>
      row({ metric: "roc_auc", role, version, value, windowSeconds: 3600, details: { n } });
    const observations = evaluateRules(rules, [
      auc("served", "v1", 0.8),
      auc("control", "v1", 0.82),
      auc("canary", "v2", 0.79),
      auc("shadow", "v3", 0.785),
      auc("shadow", "v4", 0.9, 50),
      row({
        metric: "log_loss",
        role: "control",
        version: "v1",
        value: 0.4,
        windowSeconds: 3600,
        details: { n: 500 },
      }),
      row({
        metric: "log_loss",
        role: "canary",
        version: "v2",
        value: 0.41,
        windowSeconds: 3600,
        details: { n: 500 },
      }),
    ]);
    const by = Object.fromEntries(observations.map((o) => [`${o.version}:${o.metric}`, o]));
    // The canary against the control (0.82): 0.79 < 0.80.
    expect(by["v2:roc_auc"]).toMatchObject({ violating: true, dimension: "roc_auc" });
    expect(by["v2:roc_auc"]?.threshold).toBeCloseTo(0.8, 12);
    // The shadow against the served champion (0.80): 0.785 >= 0.78.
    expect(by["v3:roc_auc"]?.violating).toBe(false);
    expect(by["v4:roc_auc"]).toBeUndefined();
    // Lower is better for log loss: 0.41 <= 0.42.
    expect(by["v2:log_loss"]).toMatchObject({ violating: false, comparison: "above" });
  });

  it("flags a KPI only when it moves significantly the wrong way", () => {
    const rules = resolveRules({ rules: { kpi_drop: { lowerIsBetter: ["credit_loss"] } } });
    const kpi = (dimension: string, value: number, significant: boolean) =>
      row({
        metric: "kpi_difference",
        role: "canary",
        version: "v2",
        dimension,
        value,
        windowSeconds: 3600,
        details: { significant, lower: value - 1, upper: value + 1 },
      });
    const observations = evaluateRules(only(rules, "kpi_drop"), [
      kpi("revenue", -5, true),
      kpi("conversion", -0.01, false),
      kpi("credit_loss", 300, true),
      kpi("handling", 3, true),
    ]);
    expect(observations.map((o) => [o.dimension, o.violating])).toEqual([
      ["revenue", true],
      ["conversion", false],
      ["credit_loss", true],
      ["handling", false],
    ]);
  });
});

describe("alert lifecycle", () => {
  const observation = (violating: boolean, fingerprint = "f1") => ({
    fingerprint,
    rule: "psi",
    severity: "warning" as const,
    model: "m",
    version: "v1",
    role: "served",
    metric: "psi",
    dimension: "income",
    value: violating ? 0.4 : 0.1,
    threshold: 0.25,
    comparison: "above" as const,
    statistics: [],
    windowSeconds: 900,
    windowStart: START,
    violating,
    summary: "",
    forEvaluations: 1,
  });
  const settings = () => ({ cooldownMinutes: 30, staleMinutes: 180 });
  const at = (minutes: number) => new Date(Date.parse(START) + minutes * 60_000);
  const alert = (fields: Partial<OpenAlert> = {}): OpenAlert => ({
    id: 7,
    fingerprint: "f1",
    model: "m",
    state: "firing",
    count: 1,
    lastSeenAt: at(0).toISOString(),
    clearSince: null,
    // Last found in the window before the observations' own.
    windowSeconds: 900,
    windowStart: at(-15).toISOString(),
    ...fields,
  });

  it("counts windows, not evaluations: the same window seen twice counts once", () => {
    const twice = { ...observation(true), forEvaluations: 2 };
    const sameWindow = { windowStart: START, windowSeconds: 900 };
    // A pending alert found again in its own window (a second run over it) is not confirmed.
    const pending = alert({ state: "pending", count: 1, ...sameWindow });
    expect(planAlerts([pending], [twice], at(16), settings)).toEqual([
      { kind: "repeat", id: 7, observation: twice },
    ]);
    // In the next window it is.
    expect(planAlerts([alert({ state: "pending", count: 1 })], [twice], at(16), settings)).toEqual([
      { kind: "promote", id: 7, observation: twice },
    ]);
    // A firing alert seen again in the same window takes the latest values without counting.
    expect(planAlerts([alert(sameWindow)], [observation(true)], at(16), settings)).toEqual([
      { kind: "repeat", id: 7, observation: observation(true) },
    ]);
    // The same start at another length is another window.
    expect(
      planAlerts(
        [alert({ windowStart: START, windowSeconds: 3600 })],
        [observation(true)],
        at(16),
        settings,
      )[0]?.kind,
    ).toBe("fold");
  });

  it("opens once, folds repeats, and ignores clear conditions without an alert", () => {
    expect(planAlerts([], [observation(true)], at(0), settings)).toEqual([
      { kind: "open", state: "firing", observation: observation(true) },
    ]);
    expect(planAlerts([alert()], [observation(true)], at(15), settings)).toEqual([
      { kind: "fold", id: 7, observation: observation(true) },
    ]);
    expect(planAlerts([], [observation(false)], at(0), settings)).toEqual([]);
    // Two observations of one fingerprint: violating wins.
    expect(planAlerts([], [observation(false), observation(true)], at(0), settings)).toHaveLength(
      1,
    );
  });

  it("resolves only after the condition stayed clear for the cooldown", () => {
    expect(planAlerts([alert()], [observation(false)], at(15), settings)).toEqual([
      { kind: "clearing", id: 7, observation: observation(false) },
    ]);
    const clearing = alert({ clearSince: at(15).toISOString() });
    expect(planAlerts([clearing], [observation(false)], at(30), settings)).toEqual([]);
    expect(planAlerts([clearing], [observation(false)], at(45), settings)).toEqual([
      { kind: "resolve", id: 7, reason: "recovered", observation: observation(false) },
    ]);
    // Flapping inside the cooldown folds into the same alert.
    expect(planAlerts([clearing], [observation(true)], at(30), settings)[0]?.kind).toBe("fold");
    // No cooldown: the first clear observation resolves.
    expect(
      planAlerts([alert()], [observation(false)], at(15), () => ({
        cooldownMinutes: 0,
        staleMinutes: 180,
      }))[0]?.kind,
    ).toBe("resolve");
  });

  it("resolves an alert nothing has observed for too long", () => {
    expect(planAlerts([alert()], [], at(179), settings)).toEqual([]);
    expect(planAlerts([alert()], [observation(true, "other")], at(180), settings)).toEqual([
      { kind: "open", state: "firing", observation: observation(true, "other") },
      { kind: "resolve", id: 7, reason: "no_data", observation: null },
    ]);
  });

  it("keeps an alert pending until its condition persisted for the rule's evaluations", () => {
    const twice = { ...observation(true), forEvaluations: 2 };
    expect(planAlerts([], [twice], at(0), settings)).toEqual([
      { kind: "open", state: "pending", observation: twice },
    ]);
    const pending = alert({ state: "pending", count: 1 });
    expect(planAlerts([pending], [twice], at(15), settings)).toEqual([
      { kind: "promote", id: 7, observation: twice },
    ]);
    const thrice = { ...twice, forEvaluations: 3 };
    expect(planAlerts([pending], [thrice], at(15), settings)[0]?.kind).toBe("fold");
    // Cleared, or not seen at the next evaluation: discarded, nobody told.
    expect(planAlerts([pending], [{ ...twice, violating: false }], at(15), settings)).toEqual([
      { kind: "discard", id: 7, observation: { ...twice, violating: false } },
    ]);
    expect(planAlerts([pending], [], at(15), settings)).toEqual([
      { kind: "discard", id: 7, observation: null },
    ]);
  });
});
