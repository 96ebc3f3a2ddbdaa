import { describe, expect, it } from "vitest";
import { Verdicts } from "../../functions/inference/rate-limit";

describe("rate-limit verdicts kept per isolate", () => {
  it("knows nothing of a subject it has not asked about", () => {
    expect(new Verdicts().state("key:a", 0)).toBe("unknown");
  });

  it("lets a subject allowed less than a second ago go ahead of its check", () => {
    const verdicts = new Verdicts();
    verdicts.record("key:a", true, 10_000);
    expect(verdicts.state("key:a", 10_000)).toBe("allowed");
    expect(verdicts.state("key:a", 10_999)).toBe("allowed");
    expect(verdicts.state("key:a", 11_000)).toBe("unknown");
    expect(verdicts.state("key:b", 10_500)).toBe("unknown");
  });

  it("refuses a limited subject for a second without asking, then asks again", () => {
    const verdicts = new Verdicts();
    verdicts.record("key:a", true, 10_000);
    verdicts.record("key:a", false, 10_100);
    expect(verdicts.state("key:a", 10_100)).toBe("limited");
    expect(verdicts.state("key:a", 11_099)).toBe("limited");
    // After the hold the binding decides again, awaited (not "allowed").
    expect(verdicts.state("key:a", 11_100)).toBe("unknown");
    verdicts.record("key:a", true, 11_150);
    expect(verdicts.state("key:a", 11_150)).toBe("allowed");
  });

  it("forgets the subjects answered longest ago beyond its capacity", () => {
    const verdicts = new Verdicts(3);
    verdicts.record("key:a", true, 1);
    verdicts.record("key:b", true, 2);
    verdicts.record("key:c", true, 3);
    verdicts.record("key:a", true, 4); // a is now the newest
    verdicts.record("key:d", true, 5);
    expect(verdicts.size).toBe(3);
    expect(verdicts.state("key:b", 6)).toBe("unknown");
    expect(verdicts.state("key:a", 6)).toBe("allowed");
    expect(verdicts.state("key:c", 6)).toBe("allowed");
    expect(verdicts.state("key:d", 6)).toBe("allowed");
  });
});
