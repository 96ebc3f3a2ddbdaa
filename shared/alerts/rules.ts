/**
 * Alert rules over monitoring results: which metric, compared how, in which
 * window, at what severity. Defaults cover what Monitoring I and II compute;
 * a model overrides any field of any rule (`PUT
 * /admin/models/{model}/alert-rules`), or turns a rule off.
 *
 * A rule is one of:
 * - `threshold`: the metric's value above (or below) a number;
 * - `status`: the job's own verdict (`alert`) on the row, for metrics whose
 *   threshold depends on the method (drift: a p-value below 0.05 or a
 *   distance above 0.1) or on the baseline (missing values);
 * - `champion`: a challenger's metric (canary, shadow) worse than the
 *   champion's in the same window by more than a margin, with enough labels;
 * - `kpi`: a canary's KPI difference significantly in the bad direction.
 *
 * Evaluation (evaluate.ts) turns rules and results into observations;
 * lifecycle.ts turns observations into alerts.
 */
import { z } from "@hono/zod-openapi";
import { DEFAULT_WINDOW_SECONDS, DEFAULT_WINDOWS, type WindowLengths } from "../monitoring/windows";
import type { AlertSeverity } from "./types";

export const Severity = z.enum(["warning", "critical"]);

const common = {
  enabled: z.boolean(),
  severity: Severity,
  /**
   * Window length evaluated: the latest ended window of this length, one of
   * the monitoring windows (the base window and its roll-ups of 4 and 96).
   */
  windowSeconds: z.number().int().positive(),
  /**
   * Consecutive evaluations that must find the condition before the alert
   * fires (until then it is `pending` and nobody is told). Statistical tests
   * at the 5% level over many features flag something by chance in most
   * windows; a real shift persists.
   */
  forEvaluations: z.number().int().min(1).max(96).default(1),
};

const ThresholdRule = z
  .object({
    kind: z.literal("threshold"),
    ...common,
    metric: z.string(),
    comparison: z.enum(["above", "below"]),
    threshold: z.number().finite(),
    /** Roles the rule looks at; omitted: every role with the metric but `control`. */
    roles: z.array(z.string()).optional(),
  })
  .strict();

const StatusRule = z
  .object({
    kind: z.literal("status"),
    ...common,
    metric: z.string(),
    roles: z.array(z.string()).optional(),
  })
  .strict();

const ChampionRule = z
  .object({
    kind: z.literal("champion"),
    ...common,
    /** Quality metrics compared; higher is better unless listed in `lowerIsBetter`. */
    metrics: z.array(z.string()).min(1),
    lowerIsBetter: z.array(z.string()),
    /** How much worse than the champion before the rule fires. */
    margin: z.number().finite().min(0),
    /** Labelled predictions each side needs (details.n of the metric rows). */
    minLabelled: z.number().int().min(1),
  })
  .strict();

const KpiRule = z
  .object({
    kind: z.literal("kpi"),
    ...common,
    /** KPIs where a rise is bad (costs, losses, handling time); others should not fall. */
    lowerIsBetter: z.array(z.string()),
  })
  .strict();

export const AlertRule = z.discriminatedUnion("kind", [
  ThresholdRule,
  StatusRule,
  ChampionRule,
  KpiRule,
]);
export type AlertRule = z.infer<typeof AlertRule>;

/** Seconds in the evaluated windows at the default window length. */
const QUARTER = 900 as const;
const HOUR = 3600 as const;

/**
 * The default model rules, by name, as they are at the default window length
 * (15 minutes): with another length, windows scale with it (the base window
 * and the roll-up of four), see `resolveRules`.
 */
export const DEFAULT_MODEL_RULES = {
  drift: {
    kind: "status",
    enabled: true,
    severity: "warning",
    windowSeconds: QUARTER,
    forEvaluations: 2,
    metric: "drift",
  },
  dataset_drift: {
    kind: "status",
    enabled: true,
    severity: "critical",
    windowSeconds: QUARTER,
    forEvaluations: 1,
    metric: "dataset_drift",
  },
  psi: {
    kind: "threshold",
    enabled: true,
    severity: "warning",
    windowSeconds: QUARTER,
    forEvaluations: 2,
    metric: "psi",
    comparison: "above",
    threshold: 0.25,
  },
  schema_rejection_rate: {
    kind: "threshold",
    enabled: true,
    severity: "warning",
    windowSeconds: QUARTER,
    forEvaluations: 1,
    metric: "schema_rejection_rate",
    comparison: "above",
    threshold: 0.05,
  },
  missing_rate: {
    kind: "status",
    enabled: true,
    severity: "warning",
    windowSeconds: QUARTER,
    forEvaluations: 1,
    metric: "missing_rate",
  },
  error_rate: {
    kind: "threshold",
    enabled: true,
    severity: "critical",
    windowSeconds: QUARTER,
    forEvaluations: 1,
    metric: "error_rate",
    comparison: "above",
    threshold: 0.05,
    roles: ["served", "canary"],
  },
  fallback_rate: {
    kind: "threshold",
    enabled: true,
    severity: "critical",
    windowSeconds: QUARTER,
    forEvaluations: 1,
    metric: "fallback_rate",
    comparison: "above",
    threshold: 0.05,
  },
  latency_p99: {
    kind: "threshold",
    enabled: true,
    severity: "warning",
    windowSeconds: QUARTER,
    forEvaluations: 1,
    metric: "latency_p99",
    comparison: "above",
    threshold: 1000,
    roles: ["served", "canary"],
  },
  circuit_open: {
    kind: "threshold",
    enabled: true,
    severity: "warning",
    windowSeconds: QUARTER,
    forEvaluations: 1,
    metric: "circuit_open_rate",
    comparison: "above",
    threshold: 0,
  },
  shadow_agreement: {
    kind: "threshold",
    enabled: true,
    severity: "warning",
    windowSeconds: HOUR,
    forEvaluations: 1,
    metric: "shadow_agreement",
    comparison: "below",
    threshold: 0.9,
  },
  canary_agreement: {
    kind: "threshold",
    enabled: true,
    severity: "warning",
    windowSeconds: HOUR,
    forEvaluations: 1,
    metric: "canary_agreement",
    comparison: "below",
    threshold: 0.9,
  },
  quality_vs_champion: {
    kind: "champion",
    enabled: true,
    severity: "warning",
    windowSeconds: HOUR,
    forEvaluations: 1,
    metrics: ["roc_auc", "accuracy", "r2"],
    lowerIsBetter: ["log_loss", "mae", "rmse"],
    margin: 0.02,
    minLabelled: 200,
  },
  disparate_impact: {
    kind: "threshold",
    enabled: true,
    severity: "warning",
    windowSeconds: HOUR,
    forEvaluations: 1,
    metric: "disparate_impact_ratio",
    comparison: "below",
    threshold: 0.8,
  },
  kpi_drop: {
    kind: "kpi",
    enabled: true,
    severity: "warning",
    windowSeconds: HOUR,
    forEvaluations: 1,
    lowerIsBetter: [],
  },
} as const satisfies Record<string, AlertRule>;

export type ModelRuleName = keyof typeof DEFAULT_MODEL_RULES;
export const MODEL_RULE_NAMES = Object.keys(DEFAULT_MODEL_RULES) as ModelRuleName[];

/** Settings of the lifecycle, per model, at the default window length. */
export const DEFAULT_LIFECYCLE = {
  /** A firing alert resolves only once its condition has been clear this long (two windows). */
  cooldownMinutes: 30,
  /** A firing alert no evaluation has seen for this long resolves (no data; twelve windows). */
  staleMinutes: 180,
};

/** The lifecycle's defaults for a window length: they are counted in windows. */
export function lifecycleDefaults(lengths: WindowLengths = DEFAULT_WINDOWS): {
  cooldownMinutes: number;
  staleMinutes: number;
} {
  const scale = lengths.base / DEFAULT_WINDOW_SECONDS;
  return {
    cooldownMinutes: DEFAULT_LIFECYCLE.cooldownMinutes * scale,
    staleMinutes: DEFAULT_LIFECYCLE.staleMinutes * scale,
  };
}

/**
 * What `PUT /admin/models/{model}/alert-rules` takes: per rule, the fields to
 * change (the rule's kind cannot change); and the lifecycle settings.
 */
export const AlertRuleOverrides = z
  .object({
    rules: z
      .partialRecord(
        z.enum(MODEL_RULE_NAMES as [ModelRuleName, ...ModelRuleName[]]),
        z
          .object({
            enabled: z.boolean(),
            severity: Severity,
            windowSeconds: common.windowSeconds,
            threshold: z.number().finite(),
            comparison: z.enum(["above", "below"]),
            roles: z.array(z.enum(["served", "canary", "shadow", "control", "fallback", "all"])),
            metrics: z.array(z.string().min(1).max(64)).min(1),
            lowerIsBetter: z.array(z.string().min(1).max(64)),
            margin: z.number().finite().min(0),
            minLabelled: z.number().int().min(1),
            forEvaluations: z.number().int().min(1).max(96),
          })
          .partial()
          .strict(),
      )
      .optional(),
    cooldownMinutes: z.number().int().min(0).max(1440).optional(),
    staleMinutes: z.number().int().min(1).max(10_080).optional(),
  })
  .strict();
export type AlertRuleOverrides = z.infer<typeof AlertRuleOverrides>;

export interface ResolvedRules {
  rules: Record<ModelRuleName, AlertRule>;
  cooldownMinutes: number;
  staleMinutes: number;
}

/**
 * The defaults with a model's overrides applied; a field that does not fit the
 * rule's kind is refused, and so is a window that is not one of `lengths`.
 * The defaults' windows scale with the window length.
 */
export function resolveRules(
  overrides: AlertRuleOverrides | null | undefined,
  lengths: WindowLengths = DEFAULT_WINDOWS,
): ResolvedRules {
  const rules = {} as Record<ModelRuleName, AlertRule>;
  const scale = lengths.base / DEFAULT_WINDOW_SECONDS;
  for (const name of MODEL_RULE_NAMES) {
    const defaults = DEFAULT_MODEL_RULES[name];
    const override = overrides?.rules?.[name] ?? {};
    if (override.windowSeconds !== undefined && !lengths.all.includes(override.windowSeconds)) {
      throw new RuleError(
        `rules.${name}.windowSeconds`,
        `must be one of the monitoring windows: ${lengths.all.join(", ")} seconds`,
      );
    }
    const merged = {
      ...defaults,
      windowSeconds: defaults.windowSeconds * scale,
      ...override,
    };
    const parsed = AlertRule.safeParse(merged);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new RuleError(
        `rules.${name}${issue?.path.length ? `.${issue.path.join(".")}` : ""}`,
        issue?.message ?? "is not valid for this rule",
      );
    }
    rules[name] = parsed.data;
  }
  const lifecycle = lifecycleDefaults(lengths);
  return {
    rules,
    cooldownMinutes: overrides?.cooldownMinutes ?? lifecycle.cooldownMinutes,
    staleMinutes: overrides?.staleMinutes ?? lifecycle.staleMinutes,
  };
}

/** An override that does not fit its rule, with the path of the field. */
export class RuleError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
  }
}

export const severityRank = (severity: AlertSeverity) => (severity === "critical" ? 2 : 1);
