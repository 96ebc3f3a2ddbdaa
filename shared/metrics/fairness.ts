/**
 * Fairness across the groups of one segment attribute (for example region or
 * age band), from per-group counts a database aggregates with GROUP BY.
 *
 * For each group g with n_g labelled predictions:
 * - selection rate = predicted positive / n;
 * - true-positive rate = true positive / actual positive (null without
 *   actual positives).
 * Across the groups large enough to judge (n >= minGroupSize):
 * - demographic parity difference = max − min selection rate;
 * - disparate impact ratio = min / max selection rate, and `fourFifths`
 *   (the US EEOC four-fifths rule): ratio >= 0.8;
 * - equal opportunity difference = max − min true-positive rate over the
 *   groups that have actual positives.
 * Groups below the minimum size are listed as `{ group, n, tooSmall: true }`
 * with no numbers and take no part in the differences: a rate over a handful
 * of predictions is noise.
 */
import { assertCount, type Metric, metric, missing } from "./result";

export const DEFAULT_MIN_GROUP_SIZE = 30;
/** The four-fifths rule's threshold for the disparate impact ratio. */
export const FOUR_FIFTHS = 0.8;

export interface GroupCounts {
  group: string;
  /** Predictions in the group (with labels, when true-positive rates are wanted). */
  n: number;
  predictedPositive: number;
  actualPositive: number;
  truePositive: number;
}

export type GroupFairness =
  | { group: string; n: number; tooSmall: true }
  | {
      group: string;
      n: number;
      tooSmall: false;
      selectionRate: number;
      /** Null when the group has no actual positives. */
      truePositiveRate: number | null;
    };

export interface FairnessReport {
  groups: GroupFairness[];
  minGroupSize: number;
  /** Null with `too_few_groups` when fewer than two groups are large enough. */
  demographicParityDifference: Metric;
  /** Null with `too_few_groups`, or `no_selections` when no eligible group selects anyone. */
  disparateImpactRatio: Metric;
  /** ratio >= 0.8; null when the ratio is null. */
  fourFifths: boolean | null;
  /** Null with `too_few_groups` when fewer than two eligible groups have actual positives. */
  equalOpportunityDifference: Metric;
}

function validate(counts: GroupCounts): void {
  for (const key of ["n", "predictedPositive", "actualPositive", "truePositive"] as const) {
    assertCount(`${counts.group}.${key}`, counts[key]);
  }
  if (
    counts.predictedPositive > counts.n ||
    counts.actualPositive > counts.n ||
    counts.truePositive > Math.min(counts.predictedPositive, counts.actualPositive)
  ) {
    throw new RangeError(`${counts.group}: counts are inconsistent`);
  }
}

/** Fairness of one attribute's groups; groups in the order given, each named once. */
export function fairnessReport(
  groups: readonly GroupCounts[],
  options: { minGroupSize?: number } = {},
): FairnessReport {
  const minGroupSize = options.minGroupSize ?? DEFAULT_MIN_GROUP_SIZE;
  if (!(Number.isInteger(minGroupSize) && minGroupSize >= 1)) {
    throw new RangeError(`minGroupSize must be an integer >= 1, got ${minGroupSize}`);
  }
  const seen = new Set<string>();
  const report: GroupFairness[] = [];
  const selectionRates: number[] = [];
  const truePositiveRates: number[] = [];
  for (const counts of groups) {
    validate(counts);
    if (seen.has(counts.group)) throw new RangeError(`group ${counts.group} appears twice`);
    seen.add(counts.group);
    if (counts.n < minGroupSize) {
      report.push({ group: counts.group, n: counts.n, tooSmall: true });
      continue;
    }
    const selectionRate = counts.predictedPositive / counts.n;
    const truePositiveRate =
      counts.actualPositive > 0 ? counts.truePositive / counts.actualPositive : null;
    selectionRates.push(selectionRate);
    if (truePositiveRate !== null) truePositiveRates.push(truePositiveRate);
    report.push({
      group: counts.group,
      n: counts.n,
      tooSmall: false,
      selectionRate,
      truePositiveRate,
    });
  }
  const spread = (rates: number[]): Metric =>
    rates.length < 2 ? missing("too_few_groups") : metric(Math.max(...rates) - Math.min(...rates));

  let disparateImpactRatio: Metric;
  if (selectionRates.length < 2) disparateImpactRatio = missing("too_few_groups");
  else {
    const highest = Math.max(...selectionRates);
    disparateImpactRatio =
      highest === 0 ? missing("no_selections") : metric(Math.min(...selectionRates) / highest);
  }
  return {
    groups: report,
    minGroupSize,
    demographicParityDifference: spread(selectionRates),
    disparateImpactRatio,
    fourFifths:
      disparateImpactRatio.value === null ? null : disparateImpactRatio.value >= FOUR_FIFTHS,
    equalOpportunityDifference: spread(truePositiveRates),
  };
}
