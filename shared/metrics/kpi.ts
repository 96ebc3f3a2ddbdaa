/**
 * Business KPIs per version and the difference between a canary's and the
 * champion's populations. A KPI whose values are all 0 or 1 (conversion,
 * churn) is a proportion: its difference gets Newcombe's interval. Any other
 * KPI (revenue, handling time) is compared by Welch's interval for a
 * difference of means.
 */
import { DEFAULT_CONFIDENCE, type Interval, newcombeInterval, welchInterval } from "./intervals";
import { assertCount } from "./result";

/** One population's values of one KPI, as a database aggregates them. */
export interface KpiSummary {
  n: number;
  sum: number;
  /** Unbiased sample variance (divisor n − 1); null when n < 2. */
  variance: number | null;
  /** True when every value is 0 or 1. */
  binary: boolean;
}

export interface KpiDifference {
  method: "newcombe" | "welch";
  /** Canary minus champion: the difference of means (of proportions for a 0/1 KPI). */
  interval: Interval;
  confidence: number;
  /** True when the interval excludes 0; null without an interval. */
  significant: boolean | null;
}

/** The difference canary − champion of one KPI, with its interval. */
export function kpiDifference(
  canary: KpiSummary,
  champion: KpiSummary,
  confidence = DEFAULT_CONFIDENCE,
): KpiDifference {
  assertCount("canary.n", canary.n);
  assertCount("champion.n", champion.n);
  let method: KpiDifference["method"];
  let interval: Interval;
  if (canary.binary && champion.binary) {
    method = "newcombe";
    const successes = (s: KpiSummary) => {
      const x = Math.round(s.sum);
      assertCount("successes", x);
      return x;
    };
    interval = newcombeInterval(
      { successes: successes(canary), n: canary.n },
      { successes: successes(champion), n: champion.n },
      confidence,
    );
  } else {
    method = "welch";
    const summary = (s: KpiSummary) => ({
      n: s.n,
      mean: s.n === 0 ? 0 : s.sum / s.n,
      variance: s.variance ?? 0,
    });
    interval = welchInterval(summary(canary), summary(champion), confidence);
  }
  const significant = interval.lower === null ? null : interval.lower > 0 || interval.upper < 0;
  return { method, interval, confidence, significant };
}
