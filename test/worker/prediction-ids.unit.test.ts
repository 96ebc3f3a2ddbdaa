import { describe, expect, it } from "vitest";
import { newPredictionId } from "../../shared/inference/events";

const v7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const millisOf = (id: string) => Number.parseInt(id.replace(/-/g, "").slice(0, 12), 16);

describe("newPredictionId", () => {
  it("draws distinct UUIDv7s within one millisecond, each carrying that millisecond", () => {
    const now = Date.parse("2026-11-25T23:59:59.999Z");
    const ids = Array.from({ length: 20_000 }, () => newPredictionId(now));
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) {
      expect(id).toMatch(v7);
      expect(millisOf(id)).toBe(now);
    }
  });

  it("orders ids of different milliseconds by time, whatever their random bits", () => {
    const times = [0, 1, 1_000, 1_764_115_200_000, 1_764_115_200_001, 2 ** 48 - 1];
    const ids = times.map((t) => newPredictionId(t));
    expect(ids.map(millisOf)).toEqual(times);
    expect([...ids].sort()).toEqual(ids);
  });
});
