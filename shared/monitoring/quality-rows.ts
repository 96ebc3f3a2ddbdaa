/**
 * Data-quality rows of one window against the version's baseline: pure, from
 * the window's counts (window-counts.ts).
 *
 * - `missing_rate` (dimension: a feature): share of results without the
 *   feature, against the baseline's share (details.baseline).
 * - `out_of_range_rate` (a numeric feature): share of values outside the
 *   baseline's [min, max]; `unseen_category_rate` (a categorical feature):
 *   share of values in categories the baseline never saw.
 * - `schema_rejection_rate` (model level; dimension '' or a feature):
 *   rejected requests against all requests of the model, and per feature the
 *   share rejected because of it.
 *
 * Each rate warns, then alerts, as it rises above the baseline's own rate
 * (0 where the baseline has none) by QUALITY_WARN, QUALITY_ALERT.
 */
import type { DimensionSummary, NumericSummary } from "./baseline";
import { finiteRow, type MetricRow, type MetricStatus } from "./metric-row";
import type { CategoricalWindow, NumericWindow } from "./window-counts";

/** Data quality: how far above the baseline's rate a rate may rise before a warning, an alert. */
export const QUALITY_WARN = 0.02;
export const QUALITY_ALERT = 0.1;

function rateStatus(rate: number, baselineRate: number): MetricStatus {
  const excess = rate - baselineRate;
  if (excess > QUALITY_ALERT) return "alert";
  if (excess > QUALITY_WARN) return "warn";
  return "ok";
}

/** The quality rows of one field in a window of `rows` results. */
export function qualityRows(
  name: string,
  reference: DimensionSummary,
  current: NumericWindow | CategoricalWindow,
  rows: number,
): MetricRow[] {
  const out: MetricRow[] = [];
  const baselineRate = reference.missing / Math.max(1, reference.n + reference.missing);
  const missingRate = (rows - current.n) / Math.max(1, rows);
  out.push(
    finiteRow("missing_rate", name, missingRate, rateStatus(missingRate, baselineRate), {
      missing: rows - current.n,
      rows,
      baseline: baselineRate,
    }),
  );
  if (reference.kind === "numeric" && "buckets" in current) {
    const outside = outOfRange(reference, current);
    const rate = current.n === 0 ? Number.NaN : outside / current.n;
    out.push(
      finiteRow(
        "out_of_range_rate",
        name,
        rate,
        rateStatus(rate, 0),
        { outside, n: current.n, min: reference.min, max: reference.max },
        "no_values",
      ),
    );
  } else if (reference.kind === "categorical" && "counts" in current) {
    let unseen = 0;
    const names: string[] = [];
    for (const [category, count] of Object.entries(current.counts)) {
      if (!Object.hasOwn(reference.counts, category) && reference.other === 0) {
        unseen += count;
        if (names.length < 20) names.push(category);
      }
    }
    const rate = current.n === 0 ? Number.NaN : unseen / current.n;
    out.push(
      finiteRow(
        "unseen_category_rate",
        name,
        rate,
        rateStatus(rate, 0),
        { unseen, n: current.n, categories: names },
        "no_values",
      ),
    );
  }
  return out;
}

/** Values below the baseline's min or above its max, from the window's buckets. */
function outOfRange(reference: NumericSummary, window: NumericWindow): number {
  const t = window.thresholds;
  const minIndex = t.indexOf(reference.min);
  const maxIndex = t.indexOf(reference.max);
  if (minIndex < 0 || maxIndex < 0) return Number.NaN;
  let below = 0;
  for (let i = 0; i <= minIndex; i++) below += window.buckets[i] ?? 0;
  // Bucket maxIndex + 1 holds max <= x < next; the values equal to max are in range.
  let above = 0;
  for (let i = maxIndex + 1; i < window.buckets.length; i++) above += window.buckets[i] ?? 0;
  above -= window.equal[maxIndex + 1] ?? 0;
  return below + above;
}

/**
 * A model's `schema_rejection_rate` for one dimension ('' for all requests,
 * or a feature): `rejected` of its `requests`, rejected and accepted.
 */
export function schemaRejectionRow(
  dimension: string,
  rejected: number,
  requests: number,
): MetricRow {
  const rate = requests === 0 ? Number.NaN : rejected / requests;
  return finiteRow(
    "schema_rejection_rate",
    dimension,
    rate,
    rateStatus(rate, 0),
    { rejected, requests },
    "no_requests",
  );
}
