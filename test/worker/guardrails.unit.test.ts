import { describe, expect, it } from "vitest";
import {
  bucketOf,
  CounterSet,
  type Counts,
  emptyCounts,
  judgeGuardrail,
  LATENCY_BUCKETS_MS,
  p99FromBuckets,
  SlidingWindow,
} from "../../shared/rollout/guardrails";

/** Counts of `requests` results, `failures` of them errors, every one at `latencyMs`. */
function counts(requests: number, failures: number, latencyMs = 20, timeouts = 0): Counts {
  const set = new CounterSet();
  for (let i = 0; i < requests; i++) {
    const outcome = i < failures ? "error" : i < failures + timeouts ? "timeout" : "ok";
    set.record("v", "served", outcome, latencyMs);
  }
  return set.take()[0]?.counts ?? emptyCounts();
}

describe("guardrail counters", () => {
  it("put a latency in the first bucket whose bound it does not exceed", () => {
    expect(bucketOf(0)).toBe(0);
    expect(bucketOf(5)).toBe(0);
    expect(bucketOf(5.01)).toBe(1);
    expect(bucketOf(10_000)).toBe(LATENCY_BUCKETS_MS.length - 1);
    expect(bucketOf(10_001)).toBe(LATENCY_BUCKETS_MS.length);
  });

  it("count per version and role until taken, then start again", () => {
    const set = new CounterSet();
    set.record("v1", "served", "ok", 3);
    set.record("v1", "served", "error", 40);
    set.record("v2", "canary", "timeout", 20_000);
    set.record("v2", "shadow", "ok", 7);
    const reports = set.take();
    expect(reports.map((r) => [r.version, r.role, r.counts.requests])).toEqual([
      ["v1", "served", 2],
      ["v2", "canary", 1],
      ["v2", "shadow", 1],
    ]);
    expect(reports[0]?.counts).toMatchObject({ errors: 1, timeouts: 0 });
    expect(reports[0]?.counts.latency[0]).toBe(1);
    expect(reports[0]?.counts.latency[bucketOf(40)]).toBe(1);
    expect(reports[1]?.counts).toMatchObject({ errors: 0, timeouts: 1 });
    expect(reports[1]?.counts.latency.at(-1)).toBe(1);
    expect(set.take()).toEqual([]);
  });

  it("read a p99 from the buckets, as the bound of the bucket that holds it", () => {
    expect(p99FromBuckets(emptyCounts())).toBeNull();
    const mostlyFast = counts(99, 0, 8);
    expect(p99FromBuckets(mostlyFast)).toBe(10);
    const withSlowTail = counts(100, 0, 8);
    withSlowTail.latency[bucketOf(8)] = 98;
    withSlowTail.latency[bucketOf(800)] = 2;
    expect(p99FromBuckets(withSlowTail)).toBe(1000);
  });
});

describe("a sliding window", () => {
  it("keeps the slices of the last window and lets older ones fall out", () => {
    const window = new SlidingWindow(10_000, 1_000);
    window.add(0, counts(5, 1));
    window.add(4_500, counts(5, 0));
    window.add(4_900, counts(2, 2));
    expect(window.totals(5_000)).toMatchObject({ requests: 12, errors: 3 });
    // At 10 s the first slice (0-1 s) has left the window.
    expect(window.totals(10_000)).toMatchObject({ requests: 7, errors: 2 });
    expect(window.totals(15_000)).toMatchObject({ requests: 0, errors: 0 });
  });

  it("refuses a window shorter than its slice", () => {
    expect(() => new SlidingWindow(500, 1_000)).toThrow(RangeError);
  });
});

describe("judging a challenger", () => {
  it("waits for the minimum sample on both sides", () => {
    const few = judgeGuardrail(counts(100, 0), counts(12, 12));
    expect(few).toMatchObject({
      verdict: "insufficient_evidence",
      reason: "needs 8 more challenger results",
    });
    const noChampion = judgeGuardrail(counts(5, 0), counts(50, 50));
    expect(noChampion.verdict).toBe("insufficient_evidence");
    expect(noChampion.reason).toContain("15 more champion results");
  });

  it("finds a breach when the challenger fails far more than the champion", () => {
    const judged = judgeGuardrail(counts(200, 2), counts(40, 20));
    expect(judged.verdict).toBe("breach");
    expect(judged.reason).toContain("failed 50% of 40 requests against the champion's 1% of 200");
    expect(judged.evidence.challenger).toMatchObject({ requests: 40, failureRate: 0.5 });
    // Timeouts are failures too.
    expect(judgeGuardrail(counts(200, 0), counts(40, 0, 20, 12)).verdict).toBe("breach");
  });

  it("is stricter than the alert rules: a failure rate an alert would flag is no breach", () => {
    // 10% fails the error-rate alert (above 5%) but not the guardrail (from 20%).
    expect(judgeGuardrail(counts(200, 0), counts(100, 10)).verdict).toBe("ok");
    // A champion that fails as much is the upstream's fault, not the challenger's.
    expect(judgeGuardrail(counts(200, 90), counts(100, 50)).verdict).toBe("ok");
  });

  it("finds a breach when the challenger's p99 is several times the champion's and far above it", () => {
    const slow = judgeGuardrail(counts(100, 0, 40), counts(100, 0, 2_000));
    expect(slow.verdict).toBe("breach");
    expect(slow.reason).toContain("p99 latency is 2500 ms against the champion's 50 ms");
    // Three times a fast champion, but not 500 ms above it: no breach.
    expect(judgeGuardrail(counts(100, 0, 4), counts(100, 0, 20)).verdict).toBe("ok");
  });
});
