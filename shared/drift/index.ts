/**
 * Drift statistics: how far a feature's current values have moved from its
 * reference. Pure functions, no bindings: the same code runs in the Worker,
 * in Node and in tests.
 *
 * - Numeric, on values: `ksTest` (SciPy's `ks_2samp`), `wassersteinNormed`
 *   (SciPy's `wasserstein_distance` over the reference's standard deviation),
 *   `psi` and `jensenShannonNumeric` over reference quantile bins.
 * - Categorical, on counts: `chiSquare` (the test of homogeneity, SciPy's
 *   `chi2_contingency` without continuity correction), `jensenShannon`
 *   (SciPy's `jensenshannon`), `psiCategorical`.
 * - Numeric, on aggregates of large windows (binned.ts): `driftGrid` fixes
 *   the bins from the reference, the database counts the window over them,
 *   and `ksTestFromBins`/`ksTestFromCounts`, `wassersteinNormedFromBins`,
 *   `psiFromBins`, `jensenShannonFromBins` give the same results (Wasserstein
 *   within a returned bound).
 * - Decisions (detect.ts): `chooseMethod`, `detectDrift`, `detectDatasetDrift`,
 *   and the `DriftOverrides` schema for per-model settings.
 *
 * Each function documents what it returns for empty or degenerate input
 * (NaN, Infinity); `detectDrift` turns those into a `reason`.
 */
export {
  type BinnedEstimate,
  type BinnedWindow,
  binWindow,
  driftGrid,
  GRID_EVEN_STEPS,
  jensenShannonFromBins,
  ksCountsFromBins,
  ksTestFromBins,
  psiFromBins,
  wassersteinNormedFromBins,
} from "./binned";
export {
  type CategoryCounts,
  type ChiSquareResult,
  chiSquare,
  chiSquareSf,
  jensenShannon,
  PSI_MIN_PROPORTION,
  psiCategorical,
} from "./categorical";
export {
  type CategoricalMethod,
  categoricalMethods,
  chooseMethod,
  type DatasetDrift,
  type DriftMethod,
  DriftOverrides,
  type DriftReason,
  type DriftSettings,
  defaultDriftSettings,
  detectDatasetDrift,
  detectDrift,
  type FeatureDrift,
  FeatureDriftOverrides,
  type FeatureKind,
  LOW_CARDINALITY,
  type NumericCurrent,
  type NumericMethod,
  type NumericReference,
  numericMethods,
  type PsiLevel,
  psiLevel,
  resolveDriftSettings,
} from "./detect";
export { KS_EXACT_MAX_N, type KsCounts, type KsResult, ksTest, ksTestFromCounts } from "./ks";
export {
  jensenShannonNumeric,
  MIN_WASSERSTEIN_SCALE,
  populationStd,
  psi,
  psiEdges,
  quantileSorted,
  wassersteinDistance,
  wassersteinNormed,
} from "./numeric";
