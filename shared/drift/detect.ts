/**
 * Per-feature and dataset drift decisions: which statistic to use, its
 * threshold, and per-model overrides of both.
 *
 * Default method choice (Evidently's defaults, which most teams know):
 * - numeric features with more than 5 distinct reference values: the KS test
 *   (drift when p < 0.05) when the reference has at most 1,000 rows, else the
 *   normalised Wasserstein distance (drift when >= 0.1);
 * - categorical features, and numeric ones with at most 5 distinct values
 *   (compared as categories): the chi-square test of homogeneity (drift when
 *   p < 0.05) when the reference has at most 1,000 rows, else the
 *   Jensen-Shannon distance (drift when >= 0.1).
 * Tests are sensitive to tiny shifts once the samples are large, which is why
 * a large reference switches to distances. Both tests are two-sample tests,
 * so a small reference bounds their sensitivity however large the window.
 * PSI is always reported beside the decision (warn at 0.1, alert at 0.25).
 * The dataset drifts when at least half of the features that could be
 * evaluated drift.
 */
import { z } from "@hono/zod-openapi";
import {
  type BinnedWindow,
  ksTestFromBins,
  psiFromBins,
  wassersteinNormedFromBins,
} from "./binned";
import { type CategoryCounts, chiSquare, jensenShannon, psiCategorical } from "./categorical";
import { ksTest } from "./ks";
import { psi, wassersteinNormed } from "./numeric";

export type FeatureKind = "numeric" | "categorical";
export const numericMethods = ["ks", "wasserstein"] as const;
export const categoricalMethods = ["chi_square", "jensen_shannon"] as const;
export type NumericMethod = (typeof numericMethods)[number];
export type CategoricalMethod = (typeof categoricalMethods)[number];
export type DriftMethod = NumericMethod | CategoricalMethod;

/** Numeric features with at most this many distinct reference values are compared as categories. */
export const LOW_CARDINALITY = 5;

/**
 * Why a result has no value, or an unusual one. Machine-readable; each says
 * what the caller should make of it:
 * - `empty_reference`: the reference has no values (or only non-finite ones):
 *   nothing to compare against. value null, drift false.
 * - `empty_current`: the current window has no values. value null, drift
 *   false; the window says nothing about drift (a data-quality check should
 *   notice the missing traffic).
 * - `constant_reference`: PSI only (in `psi.reason`): the reference is a single
 *   value, so its quantiles leave no bin and PSI is undefined. The drift
 *   decision itself still stands.
 * - `single_category`: chi-square over a single category has 0 degrees of
 *   freedom, so no test: value (p) null, statistic 0, drift false. Both sides
 *   hold the same one category, so nothing drifted.
 *
 * A category new in the current window is no reason of its own: chi-square
 * tests it as any other cell (see `chiSquare`), and the data-quality metric
 * `unseen_category_rate` reports its share.
 */
export type DriftReason =
  | "empty_reference"
  | "empty_current"
  | "constant_reference"
  | "single_category";

export type PsiLevel = "ok" | "warn" | "alert";

export interface FeatureDrift {
  /** How the feature was compared: a numeric feature of low cardinality is "categorical". */
  kind: FeatureKind;
  method: DriftMethod;
  /** The p-value (ks, chi_square) or distance (wasserstein, jensen_shannon); null when it cannot be computed. */
  value: number | null;
  /** KS D or Pearson's chi-square; the distance itself for distances. */
  statistic: number | null;
  /** p-values below it, or distances at or above it, are drift. */
  threshold: number;
  drift: boolean;
  psi: { value: number | null; level: PsiLevel | null; reason?: DriftReason };
  /** Wasserstein from a binned window: the exact distance is at most value + maxError. */
  maxError?: number;
  reason?: DriftReason;
}

// ---------------------------------------------------------------------------
// Settings and overrides
// ---------------------------------------------------------------------------

export interface DriftSettings {
  /** "auto": KS up to `testMaxReferenceRows` reference rows, Wasserstein above. */
  numericMethod: NumericMethod | "auto";
  /** "auto": chi-square up to `testMaxReferenceRows` reference rows, Jensen-Shannon above. */
  categoricalMethod: CategoricalMethod | "auto";
  /** Reference rows up to which "auto" picks a test rather than a distance. */
  testMaxReferenceRows: number;
  thresholds: Record<DriftMethod, number>;
  psi: { bins: number; warn: number; alert: number };
  /** Share of evaluated features that must drift for the dataset to drift. */
  datasetDriftShare: number;
}

export const defaultDriftSettings: Readonly<DriftSettings> = Object.freeze({
  numericMethod: "auto",
  categoricalMethod: "auto",
  testMaxReferenceRows: 1000,
  thresholds: Object.freeze({ ks: 0.05, chi_square: 0.05, wasserstein: 0.1, jensen_shannon: 0.1 }),
  psi: Object.freeze({ bins: 10, warn: 0.1, alert: 0.25 }),
  datasetDriftShare: 0.5,
});

const PValueThreshold = z.number().gt(0).lt(1);

const settingsShape = {
  numericMethod: z
    .enum(["auto", ...numericMethods])
    .optional()
    .openapi({
      description:
        'Numeric features: "ks", "wasserstein", or "auto" (KS up to testMaxReferenceRows reference rows, Wasserstein above).',
    }),
  categoricalMethod: z
    .enum(["auto", ...categoricalMethods])
    .optional()
    .openapi({
      description:
        'Categorical features: "chi_square", "jensen_shannon", or "auto" (chi-square up to testMaxReferenceRows reference rows, Jensen-Shannon above).',
    }),
  testMaxReferenceRows: z.number().int().min(1).optional().openapi({
    description: "Reference rows up to which auto picks a statistical test (default 1000).",
  }),
  thresholds: z
    .object({
      ks: PValueThreshold.optional().openapi({
        description: "Drift when the KS p-value is below (default 0.05).",
      }),
      chi_square: PValueThreshold.optional().openapi({
        description: "Drift when the chi-square p-value is below (default 0.05).",
      }),
      wasserstein: z.number().positive().optional().openapi({
        description:
          "Drift when the Wasserstein distance, in reference standard deviations, is at least (default 0.1).",
      }),
      jensen_shannon: z.number().gt(0).max(1).optional().openapi({
        description: "Drift when the Jensen-Shannon distance is at least (default 0.1).",
      }),
    })
    .strict()
    .optional(),
  psi: z
    .object({
      bins: z
        .number()
        .int()
        .min(2)
        .max(100)
        .optional()
        .openapi({ description: "Quantile bins (default 10)." }),
      warn: z
        .number()
        .positive()
        .optional()
        .openapi({ description: "PSI warning level (default 0.1)." }),
      alert: z
        .number()
        .positive()
        .optional()
        .openapi({ description: "PSI alert level (default 0.25)." }),
    })
    .strict()
    .optional()
    .refine(
      (psi) => !psi || psi.warn === undefined || psi.alert === undefined || psi.warn <= psi.alert,
      {
        message: "warn must not exceed alert",
      },
    ),
};

/** Overrides for one feature. */
export const FeatureDriftOverrides = z
  .object(settingsShape)
  .strict()
  .openapi("FeatureDriftOverrides");
export type FeatureDriftOverrides = z.infer<typeof FeatureDriftOverrides>;

/** A model's overrides of the drift defaults, and per feature (by name) on top of them. */
export const DriftOverrides = z
  .object({
    ...settingsShape,
    datasetDriftShare: z.number().gt(0).max(1).optional().openapi({
      description: "Share of features that must drift for the dataset to drift (default 0.5).",
    }),
    features: z.record(z.string(), FeatureDriftOverrides).optional(),
  })
  .strict()
  .openapi("DriftOverrides");
export type DriftOverrides = z.infer<typeof DriftOverrides>;

function applyOverrides(settings: DriftSettings, overrides: FeatureDriftOverrides | undefined) {
  if (!overrides) return settings;
  return {
    ...settings,
    numericMethod: overrides.numericMethod ?? settings.numericMethod,
    categoricalMethod: overrides.categoricalMethod ?? settings.categoricalMethod,
    testMaxReferenceRows: overrides.testMaxReferenceRows ?? settings.testMaxReferenceRows,
    thresholds: { ...settings.thresholds, ...withoutUndefined(overrides.thresholds) },
    psi: { ...settings.psi, ...withoutUndefined(overrides.psi) },
  };
}

function withoutUndefined<T extends object>(value: T | undefined): Partial<T> {
  if (!value) return {};
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The defaults, then the model's overrides, then the feature's own. */
export function resolveDriftSettings(overrides?: DriftOverrides, feature?: string): DriftSettings {
  let settings = applyOverrides(structuredClone(defaultDriftSettings) as DriftSettings, overrides);
  if (overrides?.datasetDriftShare !== undefined) {
    settings = { ...settings, datasetDriftShare: overrides.datasetDriftShare };
  }
  const own = feature === undefined ? undefined : overrides?.features?.[feature];
  return applyOverrides(settings, own);
}

/** The method for a feature compared as `kind` with `referenceRows` reference rows. */
export function chooseMethod(
  kind: FeatureKind,
  referenceRows: number,
  settings: DriftSettings = resolveDriftSettings(),
): DriftMethod {
  const small = referenceRows <= settings.testMaxReferenceRows;
  if (kind === "numeric") {
    if (settings.numericMethod !== "auto") return settings.numericMethod;
    return small ? "ks" : "wasserstein";
  }
  if (settings.categoricalMethod !== "auto") return settings.categoricalMethod;
  return small ? "chi_square" : "jensen_shannon";
}

export function psiLevel(
  value: number,
  settings: DriftSettings = resolveDriftSettings(),
): PsiLevel | null {
  if (Number.isNaN(value)) return null;
  if (value >= settings.psi.alert) return "alert";
  if (value >= settings.psi.warn) return "warn";
  return "ok";
}

// ---------------------------------------------------------------------------
// Per feature
// ---------------------------------------------------------------------------

/**
 * A numeric feature's reference: its values, or a baseline's summary of them
 * (`sample` sorted or not; `n` the rows it summarises, which decides the
 * method; `distinct` the distinct values among all of them, when known).
 */
export type NumericReference =
  | readonly number[]
  | { readonly sample: readonly number[]; readonly n: number; readonly distinct?: number };

/**
 * The current window of a numeric feature: its values, or aggregates over
 * `driftGrid(sample, settings.psi.bins)`, with the bins this feature resolves
 * to (`resolveDriftSettings(overrides, feature)`): a grid without the PSI
 * edges is refused with a RangeError.
 */
export type NumericCurrent = readonly number[] | BinnedWindow;

const isBinned = (current: NumericCurrent): current is BinnedWindow => !Array.isArray(current);

/** Counts of the values as categories (their JSON text), each `weight` times. */
function countValues(values: readonly number[], weight = 1): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const value of values) {
    const key = String(value);
    counts[key] = (counts[key] ?? 0) + weight;
  }
  return counts;
}

/** Category key for the current values of a binned window that match no reference value. */
const OTHER_VALUES = "other";

/**
 * Drift of one feature, by the method `chooseMethod` picks (see the module
 * comment) under the model's `overrides` and the feature's own entry in them.
 * Never throws for empty or degenerate data: see `DriftReason`. Non-finite
 * numbers in a numeric sample are ignored (they are missing values).
 */
export function detectDrift(
  kind: "numeric",
  reference: NumericReference,
  current: NumericCurrent,
  overrides?: DriftOverrides,
  feature?: string,
): FeatureDrift;
export function detectDrift(
  kind: "categorical",
  reference: CategoryCounts,
  current: CategoryCounts,
  overrides?: DriftOverrides,
  feature?: string,
): FeatureDrift;
export function detectDrift(
  kind: FeatureKind,
  reference: NumericReference | CategoryCounts,
  current: NumericCurrent | CategoryCounts,
  overrides?: DriftOverrides,
  feature?: string,
): FeatureDrift {
  const settings = resolveDriftSettings(overrides, feature);
  if (kind === "categorical") {
    return categoricalDrift(reference as CategoryCounts, current as CategoryCounts, settings);
  }
  return numericDrift(reference as NumericReference, current as NumericCurrent, settings);
}

function numericDrift(
  reference: NumericReference,
  current: NumericCurrent,
  settings: DriftSettings,
): FeatureDrift {
  const summary = Array.isArray(reference)
    ? { sample: reference as readonly number[], n: undefined, distinct: undefined }
    : (reference as Exclude<NumericReference, readonly number[]>);
  const sample = summary.sample.filter(Number.isFinite);
  const rows = summary.n ?? sample.length;
  const distinct = summary.distinct ?? new Set(sample).size;

  if (distinct <= LOW_CARDINALITY) {
    // Chi-square weighs the reference by its size: a summary's sample stands
    // for its n rows (its proportions, n's total).
    const referenceCounts = countValues(
      sample,
      sample.length > 0 && rows > sample.length ? rows / sample.length : 1,
    );
    let currentCounts: Record<string, number>;
    if (isBinned(current)) {
      // Values equal to a reference value are counted at its edge; the rest
      // are new values, one category for all. Jensen-Shannon and the
      // chi-square statistic are the same either way (each new value's
      // column adds in proportion to its count), but chi-square then has one
      // degree of freedom instead of one per distinct new value, so its
      // p-value differs from the one on raw values when several new values
      // appear. PSI counts them as one bin.
      currentCounts = {};
      let matched = 0;
      let total = 0;
      for (const count of current.counts) total += count;
      for (const value of new Set(sample)) {
        const edge = current.edges.indexOf(value);
        const count = edge < 0 ? 0 : (current.atEdge[edge] as number);
        currentCounts[String(value)] = count;
        matched += count;
      }
      if (total > matched) currentCounts[OTHER_VALUES] = total - matched;
    } else {
      currentCounts = countValues(current.filter(Number.isFinite));
    }
    return categoricalDrift(referenceCounts, currentCounts, settings, rows);
  }

  const method = chooseMethod("numeric", rows, settings) as NumericMethod;
  const threshold = settings.thresholds[method];
  const base = { kind: "numeric" as const, method, threshold };
  const currentValues = isBinned(current) ? null : current.filter(Number.isFinite);
  const currentSize =
    currentValues?.length ?? (current as BinnedWindow).counts.reduce((a, b) => a + b, 0);
  if (sample.length === 0) return unevaluated(base, "empty_reference");
  if (currentSize === 0) return unevaluated(base, "empty_current");

  const psiValue =
    currentValues !== null
      ? psi(sample, currentValues, settings.psi.bins)
      : psiFromBins(sample, current as BinnedWindow, settings.psi.bins);
  const psiResult = psiReport(psiValue, settings, "constant_reference");

  if (method === "ks") {
    const result =
      currentValues !== null
        ? ksTest(sample, currentValues)
        : ksTestFromBins(sample, current as BinnedWindow);
    return {
      ...base,
      value: result.pValue,
      statistic: result.statistic,
      drift: result.pValue < threshold,
      psi: psiResult,
    };
  }
  if (currentValues !== null) {
    const distance = wassersteinNormed(sample, currentValues);
    return {
      ...base,
      value: distance,
      statistic: distance,
      drift: distance >= threshold,
      psi: psiResult,
    };
  }
  const estimate = wassersteinNormedFromBins(sample, current as BinnedWindow);
  return {
    ...base,
    value: estimate.value,
    statistic: estimate.value,
    drift: estimate.value >= threshold,
    psi: psiResult,
    maxError: estimate.maxError,
  };
}

function categoricalDrift(
  reference: CategoryCounts,
  current: CategoryCounts,
  settings: DriftSettings,
  referenceRows?: number,
): FeatureDrift {
  const total = (counts: CategoryCounts) => Object.values(counts).reduce((a, b) => a + b, 0);
  const referenceTotal = total(reference);
  const method = chooseMethod(
    "categorical",
    referenceRows ?? referenceTotal,
    settings,
  ) as CategoricalMethod;
  const threshold = settings.thresholds[method];
  const base = { kind: "categorical" as const, method, threshold };
  if (referenceTotal === 0) return unevaluated(base, "empty_reference");
  if (total(current) === 0) return unevaluated(base, "empty_current");
  const psiResult = psiReport(psiCategorical(reference, current), settings, "constant_reference");

  if (method === "jensen_shannon") {
    const distance = jensenShannon(reference, current);
    return {
      ...base,
      value: distance,
      statistic: distance,
      drift: distance >= threshold,
      psi: psiResult,
    };
  }
  const result = chiSquare(reference, current);
  if (result.degreesOfFreedom === 0) {
    return {
      ...base,
      value: null,
      statistic: result.statistic,
      drift: false,
      psi: psiResult,
      reason: "single_category",
    };
  }
  return {
    ...base,
    value: result.pValue,
    statistic: result.statistic,
    drift: result.pValue < threshold,
    psi: psiResult,
  };
}

function unevaluated(
  base: Pick<FeatureDrift, "kind" | "method" | "threshold">,
  reason: DriftReason,
): FeatureDrift {
  return {
    ...base,
    value: null,
    statistic: null,
    drift: false,
    psi: { value: null, level: null, reason },
    reason,
  };
}

function psiReport(
  value: number,
  settings: DriftSettings,
  reasonIfNaN: DriftReason,
): FeatureDrift["psi"] {
  if (Number.isNaN(value)) return { value: null, level: null, reason: reasonIfNaN };
  return { value, level: psiLevel(value, settings) };
}

// ---------------------------------------------------------------------------
// Dataset
// ---------------------------------------------------------------------------

export interface DatasetDrift {
  /** Features that could be evaluated: all but those with an empty reference or window. */
  evaluated: number;
  drifted: number;
  /** drifted / evaluated; 0 when nothing could be evaluated. */
  share: number;
  drift: boolean;
}

/** The dataset drifts when at least `datasetDriftShare` (half) of the evaluated features drift. */
export function detectDatasetDrift(
  features: Readonly<Record<string, FeatureDrift>> | readonly FeatureDrift[],
  overrides?: DriftOverrides,
): DatasetDrift {
  const share = resolveDriftSettings(overrides).datasetDriftShare;
  const results = Array.isArray(features) ? features : Object.values(features);
  const evaluated = results.filter(
    (result: FeatureDrift) =>
      result.reason !== "empty_reference" && result.reason !== "empty_current",
  );
  const drifted = evaluated.filter((result: FeatureDrift) => result.drift).length;
  const driftShare = evaluated.length === 0 ? 0 : drifted / evaluated.length;
  return {
    evaluated: evaluated.length,
    drifted,
    share: driftShare,
    drift: evaluated.length > 0 && driftShare >= share,
  };
}
