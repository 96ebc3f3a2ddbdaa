/**
 * Fast guardrails: what isolates count for each version they call, and how
 * the model's rollout object judges a challenger by it, without Postgres.
 *
 * - An isolate counts each result in a `CounterSet` (requests, errors,
 *   timeouts, and latency in fixed buckets), per version and role, and
 *   hands the counts over with its next lease renewal (`take`).
 * - The object adds each report to a `SlidingWindow` per version and role:
 *   one-second slices over the last `windowMs`, so old results fall out on
 *   their own and a report costs a few additions.
 * - `judgeGuardrail` compares the challenger's window (canary or shadow)
 *   with the champion's. It judges only with a minimum sample on both sides,
 *   and a breach is a failure rate (errors and timeouts) both high in itself
 *   and well above the champion's, or a p99 latency both several times the
 *   champion's and far above it. Both conditions are stricter than the alert
 *   rules' (an error rate above 5%, a p99 above 1,000 ms): an alert asks a
 *   person to look, a breach takes authority away at once, so it needs the
 *   stronger evidence. A champion that fails as much as the challenger is no
 *   breach: the upstream, not the challenger, is at fault.
 * Every judgement carries its numbers, sample sizes, thresholds and a reason
 * in words.
 */

/** Upper bounds of the latency buckets, in milliseconds; one more bucket holds the rest. */
export const LATENCY_BUCKETS_MS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000] as const;

export type Outcome = "ok" | "error" | "timeout";

export interface Counts {
  requests: number;
  errors: number;
  timeouts: number;
  /** Results per latency bucket: `LATENCY_BUCKETS_MS.length + 1` entries. */
  latency: number[];
}

export const emptyCounts = (): Counts => ({
  requests: 0,
  errors: 0,
  timeouts: 0,
  latency: new Array(LATENCY_BUCKETS_MS.length + 1).fill(0),
});

/** The bucket a latency falls in (the first whose bound it does not exceed). */
export function bucketOf(latencyMs: number): number {
  for (let i = 0; i < LATENCY_BUCKETS_MS.length; i++)
    if (latencyMs <= (LATENCY_BUCKETS_MS[i] as number)) return i;
  return LATENCY_BUCKETS_MS.length;
}

export function addCounts(into: Counts, from: Counts): Counts {
  into.requests += from.requests;
  into.errors += from.errors;
  into.timeouts += from.timeouts;
  for (let i = 0; i < into.latency.length; i++)
    into.latency[i] = (into.latency[i] ?? 0) + (from.latency[i] ?? 0);
  return into;
}

/** One version's counts since an isolate's last report. */
export interface CounterReport {
  version: string;
  role: string;
  counts: Counts;
}

/** What an isolate counts between lease renewals. Recording is a few increments. */
export class CounterSet {
  #byKey = new Map<string, CounterReport>();

  record(version: string, role: string, outcome: Outcome, latencyMs: number): void {
    const key = `${version}\u0000${role}`;
    let report = this.#byKey.get(key);
    if (!report) {
      report = { version, role, counts: emptyCounts() };
      this.#byKey.set(key, report);
    }
    const counts = report.counts;
    counts.requests += 1;
    if (outcome === "error") counts.errors += 1;
    else if (outcome === "timeout") counts.timeouts += 1;
    const bucket = bucketOf(latencyMs);
    counts.latency[bucket] = (counts.latency[bucket] ?? 0) + 1;
  }

  /** The counts since the last `take`, and a fresh start. */
  take(): CounterReport[] {
    const reports = [...this.#byKey.values()];
    this.#byKey = new Map();
    return reports;
  }
}

/** Counts over the last `windowMs`, in slices of `sliceMs`. */
export class SlidingWindow {
  readonly #slices = new Map<number, Counts>();

  constructor(
    readonly windowMs = 30_000,
    readonly sliceMs = 1_000,
  ) {
    if (!(sliceMs > 0) || windowMs < sliceMs)
      throw new RangeError("a window holds at least one slice");
  }

  add(at: number, counts: Counts): void {
    const slice = Math.floor(at / this.sliceMs);
    addCounts(this.#slices.get(slice) ?? this.#fresh(slice), counts);
    this.#prune(at);
  }

  /** The counts of the slices within the window ending at `now`. */
  totals(now: number): Counts {
    this.#prune(now);
    const total = emptyCounts();
    for (const counts of this.#slices.values()) addCounts(total, counts);
    return total;
  }

  #fresh(slice: number): Counts {
    const counts = emptyCounts();
    this.#slices.set(slice, counts);
    return counts;
  }

  #prune(now: number): void {
    const oldest = Math.floor((now - this.windowMs) / this.sliceMs);
    for (const slice of this.#slices.keys()) if (slice <= oldest) this.#slices.delete(slice);
  }
}

/**
 * The p99 latency from bucket counts: the upper bound of the bucket that
 * holds the 99th percentile (null without results; the last bucket, which
 * has no bound, reads as its lower bound).
 */
export function p99FromBuckets(counts: Counts): number | null {
  if (counts.requests === 0) return null;
  const rank = Math.ceil(0.99 * counts.requests);
  let seen = 0;
  for (let i = 0; i < counts.latency.length; i++) {
    seen += counts.latency[i] ?? 0;
    if (seen >= rank)
      return (LATENCY_BUCKETS_MS[i] ?? LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 1]) as number;
  }
  return LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 1] as number;
}

export const DEFAULT_GUARDRAIL_THRESHOLDS = {
  /** The fewest results on each side before anything is judged. */
  minRequests: 20,
  /** A breach needs the challenger's failure rate (errors and timeouts) at least this… */
  minFailureRate: 0.2,
  /** …and at least this much above the champion's. */
  minFailureRateIncrease: 0.1,
  /** A latency breach needs the challenger's p99 at least this multiple of the champion's… */
  p99LatencyRatio: 3,
  /** …and at least this many milliseconds above it. */
  p99LatencyMarginMs: 500,
};
export type GuardrailThresholds = typeof DEFAULT_GUARDRAIL_THRESHOLDS;

export interface GuardrailJudgement {
  verdict: "breach" | "ok" | "insufficient_evidence";
  reason: string;
  evidence: {
    champion: { requests: number; failureRate: number | null; p99LatencyMs: number | null };
    challenger: { requests: number; failureRate: number | null; p99LatencyMs: number | null };
    thresholds: GuardrailThresholds;
  };
}

const pct = (value: number) => `${Number((value * 100).toPrecision(3))}%`;

/** The challenger's window against the champion's. */
export function judgeGuardrail(
  champion: Counts,
  challenger: Counts,
  t: GuardrailThresholds = DEFAULT_GUARDRAIL_THRESHOLDS,
): GuardrailJudgement {
  const side = (counts: Counts) => ({
    requests: counts.requests,
    failureRate: counts.requests > 0 ? (counts.errors + counts.timeouts) / counts.requests : null,
    p99LatencyMs: p99FromBuckets(counts),
  });
  const evidence = { champion: side(champion), challenger: side(challenger), thresholds: t };
  const few = [
    ...(challenger.requests < t.minRequests
      ? [`${t.minRequests - challenger.requests} more challenger results`]
      : []),
    ...(champion.requests < t.minRequests
      ? [`${t.minRequests - champion.requests} more champion results`]
      : []),
  ];
  if (few.length > 0)
    return { verdict: "insufficient_evidence", reason: `needs ${few.join(" and ")}`, evidence };
  const c = evidence.champion;
  const ch = evidence.challenger;
  const failures = ch.failureRate as number;
  const baseline = c.failureRate as number;
  if (failures >= t.minFailureRate && failures - baseline >= t.minFailureRateIncrease)
    return {
      verdict: "breach",
      reason: `the challenger failed ${pct(failures)} of ${ch.requests} requests against the champion's ${pct(baseline)} of ${c.requests} (a breach from ${pct(t.minFailureRate)}, and ${pct(t.minFailureRateIncrease)} above the champion)`,
      evidence,
    };
  const p99 = ch.p99LatencyMs as number;
  const championP99 = c.p99LatencyMs as number;
  if (p99 >= championP99 * t.p99LatencyRatio && p99 - championP99 >= t.p99LatencyMarginMs)
    return {
      verdict: "breach",
      reason: `the challenger's p99 latency is ${p99} ms against the champion's ${championP99} ms (a breach from ${t.p99LatencyRatio} times and ${t.p99LatencyMarginMs} ms above)`,
      evidence,
    };
  return {
    verdict: "ok",
    reason: `the challenger failed ${pct(failures)} of ${ch.requests} requests (champion ${pct(baseline)}), p99 ${p99} ms (champion ${championP99} ms)`,
    evidence,
  };
}
