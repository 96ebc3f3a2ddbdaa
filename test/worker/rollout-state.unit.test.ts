import { describe, expect, it } from "vitest";
import { LEASE_MARGIN_MS, MAX_LEASE_MS, MIN_LEASE_MS } from "../../shared/rollout/lease";
import { bucketOf } from "../../shared/rollout/routing";
import {
  championRemoval,
  decideRoute,
  effectiveRollout,
  engageKill,
  type KillSwitch,
  KillSwitchBody,
  namedVersions,
  nextRollout,
  RolloutBody,
  type RolloutConfig,
  type RolloutSnapshot,
  statusByVersion,
} from "../../shared/rollout/state";
import { mulberry32, tolerance } from "./random";

// ---- helpers ----------------------------------------------------------------

/** The issues of a body that must be rejected, as path + message. */
function issues(input: unknown) {
  const result = RolloutBody.safeParse(input);
  expect(result.success).toBe(false);
  return (result.error?.issues ?? []).map((issue) => ({
    path: issue.path,
    message: issue.message,
    code: issue.code,
  }));
}

const paths = (input: unknown) => issues(input).map((issue) => issue.path);

function parsed(input: unknown): RolloutBody {
  const result = RolloutBody.safeParse(input);
  if (!result.success) throw new Error(JSON.stringify(result.error.issues));
  return result.data;
}

const killSwitch = (scope: KillSwitch["scope"]): KillSwitch => ({
  scope,
  reason: "bad outputs",
  actor: "oncall@example.com",
  at: "2026-01-01T00:00:00.000Z",
});

const full: RolloutConfig = {
  champion: "v1",
  shadows: [
    { version: "v2", sampleRate: 1 },
    { version: "v3", sampleRate: 0.25 },
  ],
  canary: { version: "v4", percent: 10, salt: "salt-1" },
};

type Snap = Pick<RolloutSnapshot, "model" | "rollout" | "killSwitch">;
const snap = (rollout: RolloutConfig, kill: KillSwitch | null = null): Snap => ({
  model: "fraud",
  rollout,
  killSwitch: kill,
});

/** A random() that fails the test if it is called. */
const noRandom = () => {
  throw new Error("random() must not be called here");
};

/** A random() that hands out the given values in order, and counts its calls. */
function sequence(...values: number[]) {
  const random = () => {
    const value = values[random.calls++];
    if (value === undefined) throw new Error("random() called too often");
    return value;
  };
  random.calls = 0;
  return random;
}

// ---- RolloutBody ------------------------------------------------------------------

describe("RolloutBody", () => {
  it("fills in no shadows and no canary, and leaves the lease unset", () => {
    expect(parsed({ champion: "v1" })).toEqual({ champion: "v1", shadows: [], canary: null });
    expect(parsed({ champion: "v1" }).leaseMs).toBeUndefined();
  });

  it("accepts a full change", () => {
    const body = {
      champion: "v1",
      shadows: [
        { version: "v2", sampleRate: 1 },
        { version: "v3.1_rc-2", sampleRate: 0 },
      ],
      canary: { version: "v4", percent: 33.33 },
      leaseMs: 2_000,
    };
    expect(parsed(body)).toEqual(body);
    expect(parsed({ champion: "v1", canary: null }).canary).toBeNull();
  });

  it("rejects a canary that is the champion, at canary.version", () => {
    expect(issues({ champion: "v1", canary: { version: "v1", percent: 5 } })).toEqual([
      { path: ["canary", "version"], message: "is already the champion", code: "custom" },
    ]);
  });

  it("rejects a shadow that is the champion, the canary or another shadow, at its index", () => {
    expect(
      issues({
        champion: "v1",
        canary: { version: "v2", percent: 5 },
        shadows: [
          { version: "v3", sampleRate: 1 },
          { version: "v1", sampleRate: 1 },
          { version: "v2", sampleRate: 0.5 },
          { version: "v3", sampleRate: 0.1 },
        ],
      }),
    ).toEqual([
      { path: ["shadows", 1, "version"], message: "is already the champion", code: "custom" },
      { path: ["shadows", 2, "version"], message: "is already the canary", code: "custom" },
      { path: ["shadows", 3, "version"], message: "is already the shadow", code: "custom" },
    ]);
  });

  it("reports every duplicate at once", () => {
    expect(
      paths({
        champion: "v1",
        canary: { version: "v1", percent: 5 },
        shadows: [
          { version: "v1", sampleRate: 1 },
          { version: "v2", sampleRate: 1 },
          { version: "v2", sampleRate: 1 },
        ],
      }),
    ).toEqual([
      ["canary", "version"],
      ["shadows", 0, "version"],
      ["shadows", 2, "version"],
    ]);
  });

  it("treats distinct labels as distinct, even when alike", () => {
    expect(
      parsed({
        champion: "v1",
        canary: { version: "v1.0", percent: 5 },
        shadows: [
          { version: "v1-rc", sampleRate: 1 },
          { version: "v10", sampleRate: 1 },
        ],
      }).shadows,
    ).toHaveLength(2);
  });

  it("bounds the canary percentage to 0..100, fractions allowed", () => {
    for (const percent of [0, 0.01, 33.33, 100]) {
      expect(parsed({ champion: "v1", canary: { version: "v2", percent } }).canary?.percent).toBe(
        percent,
      );
    }
    for (const percent of [-0.01, 100.01, 1_000]) {
      expect(paths({ champion: "v1", canary: { version: "v2", percent } })).toEqual([
        ["canary", "percent"],
      ]);
    }
    expect(paths({ champion: "v1", canary: { version: "v2" } })).toEqual([["canary", "percent"]]);
  });

  it("bounds shadow sample rates to 0..1 and shadows to ten", () => {
    for (const sampleRate of [0, 0.5, 1]) {
      expect(parsed({ champion: "v1", shadows: [{ version: "v2", sampleRate }] }).shadows).toEqual([
        { version: "v2", sampleRate },
      ]);
    }
    for (const sampleRate of [-0.1, 1.01, 2]) {
      expect(paths({ champion: "v1", shadows: [{ version: "v2", sampleRate }] })).toEqual([
        ["shadows", 0, "sampleRate"],
      ]);
    }
    const shadows = (n: number) =>
      Array.from({ length: n }, (_, i) => ({ version: `s${i}`, sampleRate: 1 }));
    expect(parsed({ champion: "v1", shadows: shadows(10) }).shadows).toHaveLength(10);
    expect(paths({ champion: "v1", shadows: shadows(11) })).toEqual([["shadows"]]);
  });

  it("bounds the lease length to whole milliseconds in [MIN_LEASE_MS, MAX_LEASE_MS]", () => {
    expect(parsed({ champion: "v1", leaseMs: MIN_LEASE_MS }).leaseMs).toBe(MIN_LEASE_MS);
    expect(parsed({ champion: "v1", leaseMs: MAX_LEASE_MS }).leaseMs).toBe(MAX_LEASE_MS);
    expect(parsed({ champion: "v1", leaseMs: 1_000 }).leaseMs).toBe(1_000);
    for (const leaseMs of [MIN_LEASE_MS - 1, MAX_LEASE_MS + 1, 1_000.5, 0, -1]) {
      expect(paths({ champion: "v1", leaseMs })).toEqual([["leaseMs"]]);
    }
  });

  it("refuses a lease no longer than the drift margin, which no request could ever use", () => {
    // An isolate uses a lease until requestedAt + leaseMs - margin.
    expect(paths({ champion: "v1", leaseMs: LEASE_MARGIN_MS })).toEqual([["leaseMs"]]);
  });

  it("rejects unknown keys at every level", () => {
    expect(issues({ champion: "v1", weights: [1] })).toEqual([
      expect.objectContaining({ path: [], code: "unrecognized_keys" }),
    ]);
    expect(issues({ champion: "v1", canary: { version: "v2", percent: 5, salt: "mine" } })).toEqual(
      [expect.objectContaining({ path: ["canary"], code: "unrecognized_keys" })],
    );
    expect(
      issues({ champion: "v1", shadows: [{ version: "v2", sampleRate: 1, mirror: true }] }),
    ).toEqual([expect.objectContaining({ path: ["shadows", 0], code: "unrecognized_keys" })]);
  });

  it("requires a valid champion label", () => {
    expect(paths({})).toEqual([["champion"]]);
    expect(paths({ champion: null })).toEqual([["champion"]]);
    expect(paths({ champion: "" })).toEqual([["champion"]]);
    expect(paths({ champion: "-v1" })).toEqual([["champion"]]);
    expect(paths({ champion: "v 1" })).toEqual([["champion"]]);
    expect(paths({ champion: "a".repeat(65) })).toEqual([["champion"]]);
    expect(parsed({ champion: "a".repeat(64) }).champion).toHaveLength(64);
    expect(paths({ champion: "v1", canary: { version: "../v2", percent: 1 } })).toEqual([
      ["canary", "version"],
    ]);
  });
});

describe("KillSwitchBody", () => {
  it("takes a scope and a trimmed, non-empty reason, nothing else", () => {
    expect(KillSwitchBody.parse({ scope: "model", reason: "  garbage out  " })).toEqual({
      scope: "model",
      reason: "garbage out",
    });
    expect(KillSwitchBody.parse({ scope: "challengers", reason: "x" }).scope).toBe("challengers");
    expect(KillSwitchBody.safeParse({ scope: "model", reason: "   " }).success).toBe(false);
    expect(KillSwitchBody.safeParse({ scope: "canary", reason: "x" }).success).toBe(false);
    expect(KillSwitchBody.safeParse({ scope: "model", reason: "x".repeat(1_001) }).success).toBe(
      false,
    );
    expect(KillSwitchBody.safeParse({ scope: "model", reason: "x", actor: "me" }).success).toBe(
      false,
    );
  });
});

// ---- namedVersions, effectiveRollout ---------------------------------------------------

describe("namedVersions", () => {
  it("names the champion, canary, shadows and a version fallback, once each", () => {
    expect(namedVersions(full, { kind: "version", version: "v0" })).toEqual([
      "v1",
      "v4",
      "v2",
      "v3",
      "v0",
    ]);
    expect(namedVersions(full, { kind: "version", version: "v2" })).toEqual([
      "v1",
      "v4",
      "v2",
      "v3",
    ]);
  });

  it("ignores fallbacks that name no version", () => {
    expect(namedVersions(full, { kind: "none" })).toEqual(["v1", "v4", "v2", "v3"]);
    expect(
      namedVersions(full, { kind: "static", output: { label: "legit", score: 0.01 } } as never),
    ).toEqual(["v1", "v4", "v2", "v3"]);
    expect(namedVersions(full, undefined)).toEqual(["v1", "v4", "v2", "v3"]);
  });

  it("is empty without a champion or anything else", () => {
    expect(namedVersions({ champion: null, shadows: [], canary: null }, undefined)).toEqual([]);
    expect(
      namedVersions(
        { champion: null, shadows: [], canary: null },
        { kind: "version", version: "v9" },
      ),
    ).toEqual(["v9"]);
  });
});

describe("effectiveRollout", () => {
  it("is the rollout itself without a kill switch", () => {
    expect(effectiveRollout({ rollout: full, killSwitch: null })).toBe(full);
  });

  it("keeps only the champion when challengers are killed, leaving the rollout as it was", () => {
    const before = structuredClone(full);
    expect(effectiveRollout({ rollout: full, killSwitch: killSwitch("challengers") })).toEqual({
      champion: "v1",
      shadows: [],
      canary: null,
    });
    expect(full).toEqual(before);
  });

  it("is killed when the model is killed", () => {
    expect(effectiveRollout({ rollout: full, killSwitch: killSwitch("model") })).toBe("killed");
  });
});

// ---- decideRoute -----------------------------------------------------------------

describe("decideRoute", () => {
  it("refuses everything when the model is killed, drawing nothing", () => {
    expect(decideRoute(snap(full, killSwitch("model")), "user-1", noRandom)).toEqual({
      kind: "killed",
    });
    expect(decideRoute(snap(full, killSwitch("model")), undefined, noRandom)).toEqual({
      kind: "killed",
    });
  });

  it("has nothing to serve without a champion, even with a canary", () => {
    expect(decideRoute(snap({ ...full, champion: null }), "user-1", sequence(0, 0, 0, 0))).toEqual({
      kind: "no-champion",
    });
  });

  it("serves the champion alone, with no bucket, when challengers are killed", () => {
    expect(decideRoute(snap(full, killSwitch("challengers")), "user-1", noRandom)).toEqual({
      kind: "serve",
      version: "v1",
      role: "champion",
      bucket: null,
      shadows: [],
    });
  });

  it("serves the champion with no bucket when there is no canary", () => {
    const rollout = { ...full, canary: null };
    expect(decideRoute(snap(rollout), "user-1", sequence(0.1))).toEqual({
      kind: "serve",
      version: "v1",
      role: "champion",
      bucket: null,
      shadows: ["v2", "v3"],
    });
  });

  it("routes a key by its bucket under the canary's salt, the same every time", () => {
    const rollout: RolloutConfig = {
      champion: "v1",
      shadows: [],
      canary: { version: "v4", percent: 30, salt: "salt-9" },
    };
    let onCanary = 0;
    const n = 5_000;
    for (let i = 0; i < n; i++) {
      const key = `user-${i}`;
      const bucket = bucketOf("fraud", "salt-9", key);
      const decision = decideRoute(snap(rollout), key, noRandom);
      expect(decision).toEqual({
        kind: "serve",
        version: bucket < 3_000 ? "v4" : "v1",
        role: bucket < 3_000 ? "canary" : "champion",
        bucket,
        shadows: [],
      });
      expect(decideRoute(snap(rollout), key, noRandom)).toEqual(decision);
      if (decision.kind === "serve" && decision.role === "canary") onCanary++;
    }
    expect(Math.abs(onCanary - n * 0.3)).toBeLessThan(tolerance(n, 0.3));
  });

  it("hashes the snapshot's model into the bucket", () => {
    const rollout = full;
    const a = decideRoute({ ...snap(rollout), model: "fraud" }, "user-7", sequence(0.9));
    const b = decideRoute({ ...snap(rollout), model: "churn" }, "user-7", sequence(0.9));
    expect(a).toMatchObject({ bucket: bucketOf("fraud", "salt-1", "user-7") });
    expect(b).toMatchObject({ bucket: bucketOf("churn", "salt-1", "user-7") });
  });

  it("keeps a key on the canary while the percentage rises", () => {
    const at = (percent: number): RolloutConfig => ({
      champion: "v1",
      shadows: [],
      canary: { version: "v4", percent, salt: "salt-r" },
    });
    for (let i = 0; i < 3_000; i++) {
      const key = `acct-${i}`;
      let wasCanary = false;
      for (const percent of [1, 5, 20, 50, 100]) {
        const decision = decideRoute(snap(at(percent)), key, noRandom);
        const isCanary = decision.kind === "serve" && decision.role === "canary";
        if (wasCanary) expect(isCanary).toBe(true);
        wasCanary = isCanary;
      }
      expect(wasCanary).toBe(true); // at 100% everyone is on the canary
    }
  });

  it("draws one bucket for a request without a key", () => {
    const rollout: RolloutConfig = {
      champion: "v1",
      shadows: [],
      canary: { version: "v4", percent: 10, salt: "s" },
    };
    const low = sequence(0);
    expect(decideRoute(snap(rollout), undefined, low)).toEqual({
      kind: "serve",
      version: "v4",
      role: "canary",
      bucket: 0,
      shadows: [],
    });
    expect(low.calls).toBe(1);
    expect(decideRoute(snap(rollout), undefined, sequence(0.0999))).toMatchObject({
      role: "canary",
      bucket: 999,
    });
    expect(decideRoute(snap(rollout), undefined, sequence(0.1))).toMatchObject({
      role: "champion",
      version: "v1",
      bucket: 1_000,
    });
    expect(decideRoute(snap(rollout), undefined, sequence(0.999999))).toMatchObject({
      role: "champion",
      bucket: 9_999,
    });
    const all: RolloutConfig = { ...rollout, canary: { version: "v4", percent: 100, salt: "s" } };
    expect(decideRoute(snap(all), undefined, sequence(0.999999))).toMatchObject({
      role: "canary",
      bucket: 9_999,
    });
    const none: RolloutConfig = { ...rollout, canary: { version: "v4", percent: 0, salt: "s" } };
    expect(decideRoute(snap(none), undefined, sequence(0))).toMatchObject({
      role: "champion",
      bucket: 0,
    });
  });

  it("samples a shadow when the draw is below its rate", () => {
    const rollout: RolloutConfig = {
      champion: "v1",
      shadows: [{ version: "v2", sampleRate: 0.25 }],
      canary: null,
    };
    const shadowsFor = (draw: number) => {
      const decision = decideRoute(snap(rollout), "user-1", sequence(draw));
      return decision.kind === "serve" ? decision.shadows : undefined;
    };
    expect(shadowsFor(0)).toEqual(["v2"]);
    expect(shadowsFor(0.2499)).toEqual(["v2"]);
    expect(shadowsFor(0.25)).toEqual([]);
    expect(shadowsFor(0.9)).toEqual([]);
  });

  it("always copies to a shadow at rate 1 and never at rate 0, without drawing", () => {
    const rollout: RolloutConfig = {
      champion: "v1",
      shadows: [
        { version: "always", sampleRate: 1 },
        { version: "never", sampleRate: 0 },
      ],
      canary: null,
    };
    for (const draw of [0, 0.5, 0.999999]) {
      const random = sequence(draw, draw);
      expect(decideRoute(snap(rollout), "k", random)).toMatchObject({ shadows: ["always"] });
      expect(random.calls).toBeLessThanOrEqual(1); // rate 1 needs no draw
    }
    const onlyAlways: RolloutConfig = {
      ...rollout,
      shadows: [{ version: "always", sampleRate: 1 }],
    };
    expect(decideRoute(snap(onlyAlways), "k", noRandom)).toMatchObject({ shadows: ["always"] });
  });

  it("samples each shadow at its own rate, independently of the canary draw", () => {
    const rollout: RolloutConfig = {
      champion: "v1",
      shadows: [
        { version: "v2", sampleRate: 0.5 },
        { version: "v3", sampleRate: 0.1 },
      ],
      canary: { version: "v4", percent: 50, salt: "s" },
    };
    const random = mulberry32(99);
    const n = 40_000;
    let v2 = 0;
    let v3 = 0;
    let canary = 0;
    let canaryAndV2 = 0;
    for (let i = 0; i < n; i++) {
      const decision = decideRoute(snap(rollout), undefined, random);
      if (decision.kind !== "serve") throw new Error("expected a served request");
      const c = decision.role === "canary";
      const s2 = decision.shadows.includes("v2");
      if (s2) v2++;
      if (decision.shadows.includes("v3")) v3++;
      if (c) canary++;
      if (c && s2) canaryAndV2++;
    }
    expect(Math.abs(v2 - n * 0.5)).toBeLessThan(tolerance(n, 0.5));
    expect(Math.abs(v3 - n * 0.1)).toBeLessThan(tolerance(n, 0.1));
    expect(Math.abs(canary - n * 0.5)).toBeLessThan(tolerance(n, 0.5));
    expect(Math.abs(canaryAndV2 - n * 0.25)).toBeLessThan(tolerance(n, 0.25));
  });

  it("samples shadows per request even for a keyed request", () => {
    const decisions = [0.1, 0.9].map((draw) => decideRoute(snap(full), "user-1", sequence(draw)));
    expect(decisions[0]).toMatchObject({ shadows: ["v2", "v3"] });
    expect(decisions[1]).toMatchObject({ shadows: ["v2"] });
    // The key's serving version does not depend on the draw.
    expect(decisions[0]).toMatchObject({ bucket: bucketOf("fraud", "salt-1", "user-1") });
    expect(decisions[1]).toMatchObject({ bucket: bucketOf("fraud", "salt-1", "user-1") });
  });
});

// ---- nextRollout --------------------------------------------------------------------

describe("nextRollout", () => {
  /** Draws fresh-1, fresh-2, ... and counts the draws. */
  const salts = () => {
    const draw = () => `fresh-${++draw.calls}`;
    draw.calls = 0;
    return draw;
  };
  const empty: RolloutConfig = { champion: null, shadows: [], canary: null };

  it("takes champion and shadows from the change, with no canary and no salt drawn", () => {
    const newSalt = salts();
    const shadows = [{ version: "v2", sampleRate: 0.5 }];
    expect(nextRollout(full, parsed({ champion: "v9", shadows }), newSalt)).toEqual({
      champion: "v9",
      shadows,
      canary: null,
    });
    expect(newSalt.calls).toBe(0);
  });

  it("draws a salt for a new canary", () => {
    const newSalt = salts();
    const next = nextRollout(
      empty,
      parsed({ champion: "v1", canary: { version: "v2", percent: 5 } }),
      newSalt,
    );
    expect(next.canary).toEqual({ version: "v2", percent: 5, salt: "fresh-1" });
    expect(newSalt.calls).toBe(1);
  });

  it("keeps the salt while the canary version stays, whatever the percentage", () => {
    const newSalt = salts();
    let rollout = full; // canary v4 at 10% with salt-1
    for (const percent of [20, 50, 0, 100, 0.5]) {
      rollout = nextRollout(
        rollout,
        parsed({ champion: "v1", canary: { version: "v4", percent } }),
        newSalt,
      );
      expect(rollout.canary).toEqual({ version: "v4", percent, salt: "salt-1" });
    }
    // Even when the champion and shadows change around it.
    rollout = nextRollout(
      rollout,
      parsed({
        champion: "v7",
        shadows: [{ version: "v8", sampleRate: 1 }],
        canary: { version: "v4", percent: 5 },
      }),
      newSalt,
    );
    expect(rollout.canary?.salt).toBe("salt-1");
    expect(newSalt.calls).toBe(0);
  });

  it("draws a new salt when the canary version changes", () => {
    const newSalt = salts();
    const next = nextRollout(
      full,
      parsed({ champion: "v1", canary: { version: "v5", percent: 10 } }),
      newSalt,
    );
    expect(next.canary).toEqual({ version: "v5", percent: 10, salt: "fresh-1" });
    expect(newSalt.calls).toBe(1);
  });

  it("draws a new salt for a canary removed and then added again", () => {
    const newSalt = salts();
    const removed = nextRollout(full, parsed({ champion: "v1" }), newSalt);
    expect(removed.canary).toBeNull();
    const back = nextRollout(
      removed,
      parsed({ champion: "v1", canary: { version: "v4", percent: 10 } }),
      newSalt,
    );
    expect(back.canary).toEqual({ version: "v4", percent: 10, salt: "fresh-1" });
    expect(back.canary?.salt).not.toBe(full.canary?.salt);
    expect(newSalt.calls).toBe(1);
  });

  it("draws a new salt when the champion is promoted and a new canary starts", () => {
    const newSalt = salts();
    const promoted = nextRollout(
      full,
      parsed({ champion: "v4", canary: { version: "v1", percent: 10 } }),
      newSalt,
    );
    expect(promoted).toEqual({
      champion: "v4",
      shadows: [],
      canary: { version: "v1", percent: 10, salt: "fresh-1" },
    });
  });

  it("leaves the current rollout untouched", () => {
    const before = structuredClone(full);
    nextRollout(full, parsed({ champion: "v2", canary: { version: "v4", percent: 99 } }), salts());
    expect(full).toEqual(before);
  });

  it("keeps keys on the canary when only the percentage is raised", () => {
    const start = nextRollout(
      empty,
      parsed({ champion: "v1", canary: { version: "v2", percent: 5 } }),
      () => "first-salt",
    );
    const raised = nextRollout(
      start,
      parsed({ champion: "v1", canary: { version: "v2", percent: 25 } }),
      () => "must-not-be-used",
    );
    let kept = 0;
    for (let i = 0; i < 5_000; i++) {
      const key = `user-${i}`;
      const before = decideRoute(snap(start), key, noRandom);
      if (before.kind === "serve" && before.role === "canary") {
        kept++;
        expect(decideRoute(snap(raised), key, noRandom)).toMatchObject({ role: "canary" });
      }
    }
    expect(kept).toBeGreaterThan(150);
  });
});

// ---- engageKill -------------------------------------------------------------------

describe("championRemoval", () => {
  const served: RolloutConfig = { champion: "v1", shadows: [], canary: null };
  const empty: RolloutConfig = {
    champion: null,
    shadows: [{ version: "v2", sampleRate: 1 }],
    canary: null,
  };

  it("objects only to taking away the champion the rollout has", () => {
    expect(championRemoval("m", served, empty, "Reverting to state 1")).toMatch(
      /^Reverting to state 1 would leave model 'm' without a champion: 'v1' serves it now, .*503 NO_SERVING_VERSION.*"force": true/,
    );
    expect(championRemoval("m", served, { ...served, champion: "v2" }, "x")).toBeUndefined();
    expect(championRemoval("m", empty, empty, "x")).toBeUndefined();
    expect(championRemoval("m", empty, served, "x")).toBeUndefined();
  });
});

describe("engageKill", () => {
  const at = "2026-02-02T10:00:00.000Z";

  it("engages either scope when none is engaged", () => {
    for (const scope of ["challengers", "model"] as const) {
      expect(engageKill(null, scope, "bad canary", "alice", at)).toEqual({
        kind: "changed",
        killSwitch: { scope, reason: "bad canary", actor: "alice", at },
      });
    }
  });

  it("changes nothing when the same scope is engaged again, whatever the reason", () => {
    expect(engageKill(killSwitch("challengers"), "challengers", "other", "bob", at)).toEqual({
      kind: "unchanged",
    });
    expect(engageKill(killSwitch("model"), "model", "other", "bob", at)).toEqual({
      kind: "unchanged",
    });
  });

  it("widens challengers to the whole model, with the new reason and actor", () => {
    expect(engageKill(killSwitch("challengers"), "model", "champion too", "bob", at)).toEqual({
      kind: "changed",
      killSwitch: { scope: "model", reason: "champion too", actor: "bob", at },
    });
  });

  it("refuses to narrow the whole model to challengers", () => {
    expect(engageKill(killSwitch("model"), "challengers", "better now", "bob", at)).toEqual({
      kind: "narrower",
    });
  });
});

// ---- statusByVersion --------------------------------------------------------------

describe("statusByVersion", () => {
  it("marks each role, and retires versions once live but no longer in the rollout", () => {
    expect(statusByVersion(full, ["v0", "v1", "v2", "v3", "v4", "old"])).toEqual({
      v0: "retired",
      old: "retired",
      v1: "champion",
      v2: "shadow",
      v3: "shadow",
      v4: "canary",
    });
  });

  it("names rollout versions even if not yet recorded as live, and nothing never live", () => {
    expect(statusByVersion(full, [])).toEqual({
      v1: "champion",
      v2: "shadow",
      v3: "shadow",
      v4: "canary",
    });
  });

  it("retires everything when the rollout is empty", () => {
    expect(
      statusByVersion({ champion: null, shadows: [], canary: null }, new Set(["v1", "v2"])),
    ).toEqual({ v1: "retired", v2: "retired" });
  });

  it("accepts any iterable of ever-live versions", () => {
    function* everLive() {
      yield "v1";
      yield "gone";
    }
    expect(statusByVersion({ champion: "v1", shadows: [], canary: null }, everLive())).toEqual({
      v1: "champion",
      gone: "retired",
    });
  });
});
