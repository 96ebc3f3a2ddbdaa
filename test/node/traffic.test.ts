import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Validator } from "@cfworker/json-schema";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseOptions } from "../../scripts/lib/traffic/args.ts";
import { type Clock, realClock, SimulatedClock } from "../../scripts/lib/traffic/clock.ts";
import { checkDrift, type Drift, parseDrift, planPhases } from "../../scripts/lib/traffic/drift.ts";
import { compileExpression } from "../../scripts/lib/traffic/expression.ts";
import {
  type InputSchema,
  InputSchemaFormat,
  type ModelInfo,
  type ProfileFile,
  parseProfile,
} from "../../scripts/lib/traffic/format.ts";
import {
  createGenerator,
  type GeneratedRequest,
  type GeneratorOptions,
} from "../../scripts/lib/traffic/generate.ts";
import { profileFor, resolveProfile } from "../../scripts/lib/traffic/profile.ts";
import {
  bernoulli,
  beta,
  exponential,
  gamma,
  lognormal,
  mulberry32,
  normal,
  poisson,
  type Random,
  uniform,
  uniformInt,
  weightedIndex,
} from "../../scripts/lib/traffic/random.ts";
import { breaksSchema } from "../../scripts/lib/traffic/summary.ts";
import { UsageError } from "../../scripts/lib/traffic/usage.ts";
import { main } from "../../scripts/traffic.ts";

const root = join(import.meta.dirname, "..", "..");
const demoModel = JSON.parse(
  readFileSync(join(root, "scripts", "demo", "demo-credit-risk.json"), "utf8"),
).model as Record<string, unknown>;
const demoInfo: ModelInfo = {
  name: "demo-credit-risk",
  inputSchema: InputSchemaFormat.parse(demoModel.inputSchema),
  task: "classification",
  classes: demoModel.classes as string[],
  positiveClass: demoModel.positiveClass as string,
};
const demoValidator = new Validator(demoModel.inputSchema as object);

const demo = resolveProfile(demoInfo, profileFor("demo-credit-risk", undefined).profile);

function generator(overrides: Partial<GeneratorOptions> = {}, profile = demo) {
  return createGenerator(profile, {
    seed: 42,
    rate: 100,
    total: null,
    batchRate: 0,
    batchMax: 10,
    labelRate: 0.8,
    labelDelay: { min: 30, max: 30 },
    drifts: [],
    ...overrides,
  });
}

/** Rows of requests from..to (exclusive). */
function rowsOf(gen: ReturnType<typeof generator>, from: number, to: number) {
  const rows = [];
  for (let i = from; i < to; i++) rows.push(...gen.request(i).rows);
  return rows;
}

function moments(values: readonly number[]) {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1);
  return { mean, sd: Math.sqrt(variance) };
}

/** Draws n values and checks their mean and sd against the distribution's, within 5 standard errors. */
function expectMoments(draw: (random: Random) => number, mean: number, sd: number, n = 100_000) {
  const random = mulberry32(7);
  const values = Array.from({ length: n }, () => draw(random));
  const observed = moments(values);
  expect(Math.abs(observed.mean - mean)).toBeLessThan((5 * sd) / Math.sqrt(n));
  // The sd of a sample sd is about sd / sqrt(2n) for near-normal data; heavy tails get more room.
  expect(Math.abs(observed.sd - sd) / sd).toBeLessThan(0.03);
}

const drifts = (...specs: string[]): Drift[] => specs.map(parseDrift);

describe("random draws", () => {
  it("repeat exactly for a seed and differ between seeds", () => {
    const a = mulberry32(123);
    const b = mulberry32(123);
    const c = mulberry32(124);
    const first = Array.from({ length: 5 }, () => a());
    expect(Array.from({ length: 5 }, () => b())).toEqual(first);
    expect(Array.from({ length: 5 }, () => c())).not.toEqual(first);
  });

  it("have the moments of their distributions", () => {
    expectMoments((r) => normal(r, 10, 3), 10, 3);
    const [mu, sigma] = [1, 0.5];
    expectMoments(
      (r) => lognormal(r, mu, sigma),
      Math.exp(mu + sigma ** 2 / 2),
      Math.sqrt((Math.exp(sigma ** 2) - 1) * Math.exp(2 * mu + sigma ** 2)),
    );
    const [a, b] = [2, 5];
    expectMoments(
      (r) => beta(r, a, b),
      a / (a + b),
      Math.sqrt((a * b) / ((a + b) ** 2 * (a + b + 1))),
    );
    expectMoments((r) => gamma(r, 0.5), 0.5, Math.sqrt(0.5));
    expectMoments((r) => uniform(r, -1, 3), 1, 4 / Math.sqrt(12));
    expectMoments((r) => exponential(r, 60), 60, 60);
    expectMoments((r) => poisson(r, 3), 3, Math.sqrt(3));
    expectMoments((r) => poisson(r, 40), 40, Math.sqrt(40));
    expectMoments((r) => uniformInt(r, 18, 90), 54, Math.sqrt((73 ** 2 - 1) / 12));
    expectMoments((r) => (bernoulli(r, 0.3) ? 1 : 0), 0.3, Math.sqrt(0.21));
  });

  it("give integers in range and categories in proportion to their weights", () => {
    const random = mulberry32(9);
    const ints = Array.from({ length: 20_000 }, () => uniformInt(random, 18, 90));
    expect(Math.min(...ints)).toBe(18);
    expect(Math.max(...ints)).toBe(90);
    expect(ints.every(Number.isInteger)).toBe(true);
    const counts = new Map<number, number>();
    const n = 100_000;
    for (let i = 0; i < n; i++) {
      const k = weightedIndex(random, [5, 3, 2]);
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
    for (const [i, p] of [0.5, 0.3, 0.2].entries()) {
      expect(Math.abs((counts.get(i) ?? 0) / n - p)).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / n));
    }
  });
});

describe("profile expressions", () => {
  it("evaluate with the usual precedence, functions and comparisons", () => {
    const values: Record<string, number | string | boolean> = {
      age: 30,
      region: "south",
      flag: true,
    };
    const e = (source: string) => compileExpression(source).evaluate((n) => values[n]);
    expect(e("1 + 2 * 3 ^ 2")).toBe(19);
    expect(e("-2 ^ 2")).toBe(-4);
    expect(e("0.08 * (age - 18)")).toBeCloseTo(0.96);
    expect(e("min(age, 10, 20) + max(1, 2)")).toBe(12);
    expect(e("(age >= 30) + (region == 'south') + (region != \"north\") + flag")).toBe(4);
    expect(e("expit(0)")).toBe(0.5);
    expect(e("clip(age, 0, 25)")).toBe(25);
    expect(Number.isNaN(e("missing_feature + 1"))).toBe(true);
    expect(compileExpression("a * log(b) + `c-d`").names).toEqual(["a", "b", "c-d"]);
  });

  it("name the position of a mistake", () => {
    expect(() => compileExpression("1 + * 2")).toThrow(/unexpected '\*' at 5/);
    expect(() => compileExpression("foo(1)")).toThrow(/unknown function 'foo'/);
    expect(() => compileExpression("log(1, 2)")).toThrow(/log\(\) takes 1 argument/);
    expect(() => compileExpression("(1 + 2")).toThrow(/expected '\)'/);
  });
});

describe("profiles", () => {
  it("the builtin demo-credit-risk profile sends rows its schema accepts", () => {
    const rows = rowsOf(generator({ batchRate: 0.2 }), 0, 3000);
    for (const row of rows) expect(demoValidator.validate(row.inputs).valid).toBe(true);
    // Plausible applicants: the training data's shape.
    const incomes = moments(rows.map((r) => r.inputs.income as number));
    expect(incomes.mean).toBeGreaterThan(55_000);
    expect(incomes.mean).toBeLessThan(80_000);
    const ages = rows.map((r) => r.inputs.age as number);
    expect(Math.min(...ages)).toBe(18);
    expect(Math.max(...ages)).toBe(90);
    for (const row of rows) {
      expect(row.inputs.months_employed as number).toBeLessThanOrEqual(
        12 * ((row.inputs.age as number) - 18),
      );
    }
  });

  it("derives a generic profile from any input schema", () => {
    const schema: InputSchema = {
      type: "object",
      properties: {
        amount: { type: "number", minimum: 5, maximum: 25 },
        count: { type: "integer", minimum: 0, maximum: 4 },
        balance: { type: "number", minimum: 100 },
        score: { type: "number" },
        country: { type: "string", enum: ["DE", "FR", "US", "NL"] },
        tier: { type: "integer", enum: [1, 2, 3] },
        note: { type: "string", maxLength: 1 },
        is_new: { type: "boolean" },
      },
      required: ["amount"],
    };
    const profile = resolveProfile(
      {
        name: "generic-model",
        inputSchema: schema,
        task: "classification",
        classes: ["no", "yes"],
      },
      {},
    );
    const gen = generator({}, profile);
    const rows = rowsOf(gen, 0, 5000).map((r) => r.inputs);
    const validator = new Validator(schema as object);
    for (const row of rows) expect(validator.validate(row).valid).toBe(true);
    const amounts = moments(rows.map((r) => r.amount as number));
    expect(amounts.mean).toBeGreaterThan(14);
    expect(amounts.mean).toBeLessThan(16);
    expect(rows.every((r) => Number.isInteger(r.count))).toBe(true);
    expect(rows.every((r) => (r.balance as number) >= 100)).toBe(true);
    expect(new Set(rows.map((r) => r.note)).size).toBe(5);
    expect(new Set(rows.map((r) => r.is_new))).toEqual(new Set([true, false]));
    // Enums are skewed: the first value is the most common.
    const share = (value: string) => rows.filter((r) => r.country === value).length / rows.length;
    expect(share("DE")).toBeGreaterThan(share("FR"));
    expect(share("FR")).toBeGreaterThan(share("US"));
    expect(share("US")).toBeGreaterThan(share("NL"));
    // The generic true model is logistic over the features, at a 20% base rate.
    const labels = rowsOf(gen, 0, 5000).map((r) => r.truth?.label);
    const positives = labels.filter((l) => l === "yes").length / labels.length;
    expect(Math.abs(positives - 0.2)).toBeLessThan(0.03);
  });

  it("clips to the schema's minimum and maximum and rounds integers and decimals", () => {
    const schema: InputSchema = {
      type: "object",
      properties: {
        x: { type: "number", minimum: 0, maximum: 10 },
        n: { type: "integer", minimum: 0, maximum: 6 },
        d: { type: "number" },
      },
    };
    const profile = resolveProfile(
      { name: "clip", inputSchema: schema },
      {
        features: {
          x: { kind: "normal", mean: 10, sd: 2 },
          n: { kind: "normal", mean: 5.4, sd: 2 },
          d: { kind: "uniform", low: 0, high: 1, decimals: 1 },
        },
        truth: null,
      },
    );
    const rows = rowsOf(generator({}, profile), 0, 4000).map((r) => r.inputs);
    const xs = rows.map((r) => r.x as number);
    expect(Math.max(...xs)).toBe(10);
    const atMax = xs.filter((x) => x === 10).length / xs.length;
    expect(Math.abs(atMax - 0.5)).toBeLessThan(0.04);
    const ns = rows.map((r) => r.n as number);
    expect(ns.every((n) => Number.isInteger(n) && n >= 0 && n <= 6)).toBe(true);
    expect(ns.filter((n) => n === 6).length).toBeGreaterThan(0);
    expect(rows.every((r) => Math.round((r.d as number) * 10) / 10 === r.d)).toBe(true);
  });

  it("reports mistakes with the feature or path they are about", () => {
    const resolve = (profile: ProfileFile) => () => resolveProfile(demoInfo, profile);
    expect(resolve({ features: { salary: { kind: "normal", mean: 1, sd: 1 } } })).toThrow(
      /feature 'salary' is not in the input schema/,
    );
    expect(resolve({ features: { has_mortgage: { kind: "normal", mean: 1, sd: 1 } } })).toThrow(
      /feature 'has_mortgage': is boolean/,
    );
    expect(
      resolve({
        features: {
          age: { kind: "normal", mean: "income / 1000", sd: 1 },
          income: { kind: "normal", mean: "age * 1000", sd: 1 },
        },
      }),
    ).toThrow(/cycle: (age -> income -> age|income -> age -> income)/);
    expect(resolve({ features: { age: { kind: "normal", mean: "height + 1", sd: 1 } } })).toThrow(
      /feature 'age': mean reads 'height', which is not a feature/,
    );
    expect(() =>
      parseProfile({ features: { age: { kind: "normal", mean: 1 } } }, "p.json"),
    ).toThrow(/p\.json: features\.age\.sd/);
    expect(
      resolve({ truth: { kind: "logistic", positive: "yes", negative: "no", logit: "0" } }),
    ).toThrow(/truth positive 'yes' is not a class of 'demo-credit-risk'/);
  });

  it("the example profiles in scripts/traffic resolve against the demo model", () => {
    const file = join(root, "scripts", "traffic", "credit-risk-downturn.json");
    const parsed = parseProfile(JSON.parse(readFileSync(file, "utf8")), file);
    const profile = resolveProfile(demoInfo, profileFor("demo-credit-risk", parsed).profile);
    const rows = rowsOf(generator({}, profile), 0, 2000);
    for (const row of rows) expect(demoValidator.validate(row.inputs).valid).toBe(true);
    // A downturn: the same true model finds more defaults than at baseline.
    const rate = rows.filter((r) => r.truth?.label === "default").length / rows.length;
    expect(rate).toBeGreaterThan(0.2);
  });
});

describe("requests", () => {
  it("are the same for the same seed, whatever the order they are made in", () => {
    const a = generator({ batchRate: 0.3 });
    const b = generator({ batchRate: 0.3 });
    const forward = Array.from({ length: 50 }, (_, i) => a.request(i));
    const backward = Array.from({ length: 50 }, (_, i) => b.request(49 - i)).reverse();
    expect(backward).toEqual(forward);
    const other = generator({ batchRate: 0.3, seed: 43 });
    expect(other.request(0).body).not.toEqual(forward[0]?.body);
  });

  it("send batches at the batch rate, single requests otherwise", () => {
    const gen = generator({ batchRate: 0.1, batchMax: 5 });
    const requests = Array.from({ length: 5000 }, (_, i) => gen.request(i));
    const batches = requests.filter((r) => Array.isArray(r.body.inputs));
    expect(Math.abs(batches.length / 5000 - 0.1)).toBeLessThan(0.02);
    const sizes = new Set(batches.map((r) => r.rows.length));
    expect([...sizes].sort()).toEqual([2, 3, 4, 5]);
    for (const r of requests.filter((r) => !Array.isArray(r.body.inputs)))
      expect(r.rows).toHaveLength(1);
  });

  it("carry segment attributes in their proportions and a key per customer that repeats", () => {
    const gen = generator();
    const requests = Array.from({ length: 20_000 }, (_, i) => gen.request(i));
    const regionOf = new Map<string, string>();
    for (const r of requests) {
      const region = r.body.attributes.region as string;
      if (regionOf.has(r.body.key)) expect(regionOf.get(r.body.key)).toBe(region);
      regionOf.set(r.body.key, region);
    }
    expect(regionOf.size).toBeLessThan(requests.length / 5); // keys repeat (2000 customers)
    const share = (name: string, value: string) =>
      requests.filter((r) => r.body.attributes[name] === value).length / requests.length;
    expect(Math.abs(share("region", "south") - 0.25)).toBeLessThan(0.02);
    expect(Math.abs(share("channel", "web") - 0.55)).toBeLessThan(0.02);
    for (const r of requests) {
      const age = (r.body.inputs as Record<string, number>).age as number;
      const band =
        age < 25 ? "18-24" : age < 35 ? "25-34" : age < 50 ? "35-49" : age < 65 ? "50-64" : "65+";
      expect(r.body.attributes.age_band).toBe(band);
    }
  });

  it("give labels at the true model's rate, with more defaults in the segment it penalises", () => {
    const rows = rowsOf(generator(), 0, 40_000);
    const n = rows.length;
    const defaults = rows.filter((r) => r.truth?.label === "default").length;
    const meanProbability = rows.reduce((a, r) => a + (r.truth?.probability ?? 0), 0) / n;
    const se = Math.sqrt((meanProbability * (1 - meanProbability)) / n);
    expect(Math.abs(defaults / n - meanProbability)).toBeLessThan(5 * se);
    expect(Math.abs(meanProbability - 0.15)).toBeLessThan(0.01);
    const sent = rows.filter((r) => r.label.send).length / n;
    expect(Math.abs(sent - 0.8)).toBeLessThan(0.01);

    const rateIn = (list: typeof rows, region: string, inside: boolean) => {
      const selected = list.filter((r) => (r.attributes.region === region) === inside);
      return selected.filter((r) => r.truth?.label === "default").length / selected.length;
    };
    expect(rateIn(rows, "south", true) - rateIn(rows, "south", false)).toBeGreaterThan(0.04);

    const fair = resolveProfile(demoInfo, profileFor("demo-credit-risk", undefined).profile, {
      segments: [],
    });
    const fairRows = rowsOf(generator({}, fair), 0, 40_000);
    expect(
      Math.abs(rateIn(fairRows, "south", true) - rateIn(fairRows, "south", false)),
    ).toBeLessThan(0.015);
    // Outcomes follow the label: a loss for a default, revenue for a repaid loan.
    for (const row of rows.slice(0, 500)) {
      expect(row.outcomes.map((o) => o.kpi)).toEqual([
        row.truth?.label === "default" ? "credit_loss" : "interest_revenue",
      ]);
    }
  });
});

describe("drift", () => {
  it("parses the documented syntax", () => {
    expect(parseDrift("income:shift=1.5sd@60s")).toMatchObject({
      feature: "income",
      kind: "shift",
      amount: 1.5,
      unit: "sd",
      start: { seconds: 60 },
    });
    expect(parseDrift("income:shift=-5000")).toMatchObject({
      amount: -5000,
      start: { seconds: 0 },
    });
    expect(parseDrift("has_mortgage:rate=0.8@0")).toMatchObject({ kind: "rate", amount: 0.8 });
    expect(parseDrift("region:rate=south:0.6@2m..500req")).toMatchObject({
      value: "south",
      amount: 0.6,
      start: { seconds: 120 },
      end: { request: 500 },
    });
    expect(parseDrift("age:missing=0.1@30s")).toMatchObject({ kind: "missing", amount: 0.1 });
    expect(parseDrift("utilization:out_of_range=0.05@1500ms")).toMatchObject({
      kind: "out_of_range",
      start: { seconds: 1.5 },
    });
  });

  it("rejects mistakes with an error naming --drift", () => {
    for (const [spec, message] of [
      ["income", /expected FEATURE:KIND=AMOUNT/],
      ["income:shove=1", /unknown kind 'shove'/],
      ["income:shift=abc", /shift 'abc' is not a number/],
      ["income:scale=-2", /scale '-2' must be a positive number/],
      ["age:missing=1.5", /missing must be between 0 and 1/],
      ["age:missing=0.1@soon", /start 'soon' is not a time/],
      ["age:missing=0.1@60s..30s", /ends before it starts/],
    ] as const) {
      expect(() => parseDrift(spec), spec).toThrow(UsageError);
      expect(() => parseDrift(spec), spec).toThrow(new RegExp(`^--drift "${literal(spec)}": `));
      expect(() => parseDrift(spec), spec).toThrow(message);
    }
    expect(() => parseOptions(["--drift", "income:shove=1"])).toThrow(/^--drift "income:shove=1"/);
    for (const [spec, message] of [
      ["salary:shift=1", /'salary' is not a feature of 'demo-credit-risk'/],
      ["has_mortgage:shift=1", /shift needs a numeric feature; 'has_mortgage' is boolean/],
      ["income:rate=0.5", /rate needs a boolean or categorical feature/],
      ["has_mortgage:out_of_range=0.1", /'has_mortgage' has no range to leave/],
    ] as const) {
      expect(() => checkDrift(parseDrift(spec), demo), spec).toThrow(message);
      expect(() => checkDrift(parseDrift(spec), demo), spec).toThrow(/^--drift "/);
    }
  });

  it("cuts the run into phases at the changes' planned request indices", () => {
    const phases = planPhases(drifts("income:shift=1sd@10s", "age:missing=0.1@5s..15s"), 10, 300);
    expect(phases.map((p) => [p.firstRequest, p.endRequest, p.label])).toEqual([
      [0, 50, "baseline"],
      [50, 100, "age:missing=0.1@5s..15s"],
      [100, 150, "income:shift=1sd@10s + age:missing=0.1@5s..15s"],
      [150, 300, "income:shift=1sd@10s"],
    ]);
    expect(planPhases(drifts("age:omit=0.1@100req"), 10, null).map((p) => p.endRequest)).toEqual([
      100,
      null,
    ]);
    expect(planPhases([], 10, 20)).toHaveLength(1);
  });

  it("changes only the named feature, only from its start, by the stated amount", () => {
    const plain = generator();
    const shifted = generator({ drifts: drifts("income:shift=1.5sd@10s") }); // request 1000 at 100/s
    for (let i = 0; i < 1000; i += 7) expect(shifted.request(i)).toEqual(plain.request(i));
    const sd = demo.byName.get("income")?.reference;
    if (sd?.kind !== "numeric") throw new Error("income has no numeric reference");
    for (let i = 1000; i < 1300; i++) {
      const before = plain.request(i).rows[0]?.inputs as Record<string, number>;
      const after = shifted.request(i).rows[0]?.inputs as Record<string, number>;
      expect(after.income).toBeCloseTo((before.income as number) + 1.5 * sd.sd, 1);
      expect({ ...after, income: 0 }).toEqual({ ...before, income: 0 });
    }
  });

  it("moves rates and injects missing and out-of-range values in the stated shares", () => {
    const gen = generator({
      drifts: drifts(
        "has_mortgage:rate=0.8",
        "age:missing=0.1",
        "utilization:out_of_range=0.05",
        "credit_lines:omit=0.2",
        "debt_to_income:scale=2",
      ),
    });
    const base = rowsOf(generator(), 0, 20_000);
    const rows = rowsOf(gen, 0, 20_000);
    const n = rows.length;
    const near = (share: number, p: number) =>
      expect(Math.abs(share - p)).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / n));
    near(rows.filter((r) => r.inputs.has_mortgage === true).length / n, 0.8);
    near(rows.filter((r) => r.inputs.age === null).length / n, 0.1);
    near(rows.filter((r) => !("credit_lines" in r.inputs)).length / n, 0.2);
    const outside = rows.filter((r) =>
      breaksSchema(
        demoInfo.inputSchema.properties.utilization as never,
        r.inputs.utilization ?? null,
      ),
    );
    near(outside.length / n, 0.05);
    expect(outside.every((r) => r.corrupted.utilization === "out_of_range")).toBe(true);
    // Rows with a missing or out-of-range value are exactly those the schema refuses.
    for (const row of rows.slice(0, 2000)) {
      const refused = !demoValidator.validate(row.inputs).valid;
      const corrupted = ["age", "utilization", "credit_lines"].some((f) => f in row.corrupted);
      expect(refused).toBe(corrupted);
    }
    const ratio =
      moments(rows.map((r) => r.inputs.debt_to_income as number)).mean /
      moments(base.map((r) => r.inputs.debt_to_income as number)).mean;
    expect(ratio).toBeGreaterThan(1.95); // x2, a little less where 1.5 clips
    expect(ratio).toBeLessThan(2);
  });
});

function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

describe("command line", () => {
  it("names the flag of a bad argument", () => {
    for (const [argv, message] of [
      [["--rate", "abc"], /^--rate: expected a positive number/],
      [["--rate"], /^--rate: needs a value/],
      [["--duration", "soon"], /^--duration: 'soon' is not a duration/],
      [["--duration", "10s", "--requests", "5"], /^--duration and --requests/],
      [["--label-rate", "2"], /^--label-rate: expected a number from 0 to 1/],
      [["--batch-max", "101"], /^--batch-max: expected an integer from 2 to 100/],
      [["--seed", "-1"], /^--seed: needs a value|^--seed: expected an integer/],
      [["--url", "ftp://x"], /^--url: 'ftp:\/\/x' is not an http\(s\) URL/],
      [["--model", "Bad_Name"], /^--model: 'Bad_Name' is not a model name/],
      [["--segment-effect", "region"], /^--segment-effect: 'region' is not ATTRIBUTE=VALUE:EFFECT/],
      [["--label-delay", "40s..20s"], /^--label-delay: '40s..20s' ends before it starts/],
      [["--frobnicate"], /^--frobnicate: unknown option/],
    ] as const) {
      expect(() => parseOptions(argv), argv.join(" ")).toThrow(message);
    }
    expect(parseOptions(["--duration", "2s", "--rate", "20"]).requests).toBe(40);
    expect(parseOptions(["--label-delay=20s..40s"]).labelDelay).toEqual({ min: 20, max: 40 });
  });

  it("exits 2 with the message on a bad argument", async () => {
    const errors: string[] = [];
    const code = await main(["--dry-run", "--drift", "income:shift=1@x"], {
      out: () => {},
      err: (line) => errors.push(line),
    });
    expect(code).toBe(2);
    expect(errors.join("\n")).toMatch(
      /^traffic: --drift "income:shift=1@x": start 'x' is not a time/,
    );
  });

  it("writes a manifest with the profile, the drift, and what each phase sent", async () => {
    const dir = mkdtempSync(join(tmpdir(), "airlock-traffic-"));
    try {
      const file = join(dir, "manifest.json");
      const lines: string[] = [];
      const code = await main(
        [
          "--dry-run",
          "--requests=4000",
          "--rate=100",
          "--seed=5",
          "--batch-rate=0",
          "--drift=income:shift=1.5sd@20s",
          "--drift=has_mortgage:rate=0.9@20s",
          `--manifest=${file}`,
        ],
        {
          out: (line) => lines.push(line),
          err: () => {},
          env: {},
          adminTokenFile: join(dir, "none"),
        },
      );
      expect(code).toBe(0);
      expect(lines).toHaveLength(4000);
      const manifest = JSON.parse(readFileSync(file, "utf8"));
      expect(manifest.format).toBe("airlock-traffic-manifest/1");
      expect(manifest.run.dryRun).toBe(true);
      expect(manifest.settings).toMatchObject({ seed: 5, rate: 100, plannedRequests: 4000 });
      expect(manifest.profile.source).toBe("builtin:demo-credit-risk");
      expect(manifest.profile.features.income.kind).toBe("lognormal");
      expect(manifest.profile.truth.kind).toBe("logistic");
      expect(manifest.drift).toHaveLength(2);
      expect(manifest.drift[0]).toMatchObject({ feature: "income", startRequest: 2000 });
      expect(manifest.phases).toHaveLength(2);
      const [before, after] = manifest.phases;
      expect(before).toMatchObject({ label: "baseline", firstRequest: 0, endRequest: 2000 });
      expect(before.sent).toEqual({ requests: 2000, rows: 2000, batches: 0 });
      expect(after.sent.requests).toBe(2000);
      const sd = manifest.profile.features.income.reference.sd;
      const shift = after.features.income.mean - before.features.income.mean;
      expect(Math.abs(shift - 1.5 * sd)).toBeLessThan(0.15 * sd);
      expect(Math.abs(after.features.has_mortgage.proportions.true - 0.9)).toBeLessThan(0.03);
      expect(before.features.age.missing).toBe(0);
      expect(before.features.income).toMatchObject({ kind: "numeric", n: 2000, outOfRange: 0 });
      for (const key of ["mean", "std", "p05", "p50", "p95"])
        expect(typeof before.features.income[key]).toBe("number");
      expect(before.attributes.region.south).toBeGreaterThan(0.2);
      expect(before.truth.meanProbability).toBeGreaterThan(0.12);
      // What the manifest says was sent is what a dry run prints.
      const printed = lines.slice(0, 2000).map((l) => JSON.parse(l).body.inputs.income as number);
      expect(before.features.income.mean).toBeCloseTo(moments(printed).mean, 4);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------- against a stand-in server

interface Received {
  at: number;
  method: string;
  path: string;
  authorization: string | undefined;
  body: unknown;
}

/**
 * Answers like Airlock's predict, feedback and admin routes, and records every request with the
 * time on the run's clock. `onReceived` sees each request once it is recorded, before its answer.
 */
async function standIn() {
  const received: Received[] = [];
  /** Prediction id -> when it was answered and the row it was for. */
  const issued = new Map<string, { at: number; inputs: unknown }>();
  let counter = 0;
  let clock: Clock = realClock;
  let onReceived: (received: readonly Received[]) => void = () => {};
  /** Forgets what was received and answers on `runClock` from now on. */
  const reset = (runClock: Clock, hook: typeof onReceived = () => {}) => {
    received.length = 0;
    issued.clear();
    clock = runClock;
    onReceived = hook;
  };
  const server: Server = createServer((request: IncomingMessage, response: ServerResponse) => {
    let text = "";
    request.on("data", (chunk) => {
      text += chunk;
    });
    request.on("end", () => {
      const at = clock.now();
      const body = text ? JSON.parse(text) : undefined;
      const path = request.url ?? "";
      received.push({
        at,
        method: request.method ?? "",
        path,
        authorization: request.headers.authorization,
        body,
      });
      onReceived(received);
      const json = (status: number, value: unknown, headers: Record<string, string> = {}) => {
        response.writeHead(status, { "content-type": "application/json", ...headers });
        response.end(JSON.stringify(value));
      };
      if (request.method === "GET" && path === "/admin/models/demo-credit-risk") {
        if (request.headers.authorization !== "Bearer admin-token") return json(401, {});
        return json(200, demoModel);
      }
      if (request.method === "POST" && path === "/admin/keys") {
        if (request.headers.authorization !== "Bearer admin-token") return json(401, {});
        return json(201, { id: "key_1", key: "ak_for_tests" });
      }
      if (request.method === "POST" && path === "/v1/models/demo-credit-risk/predict") {
        const inputs = (body as { inputs: unknown }).inputs;
        const rows = Array.isArray(inputs) ? inputs : [inputs];
        if (!rows.every((row) => demoValidator.validate(row).valid)) {
          return json(400, { error: { code: "VALIDATION_FAILED", message: "Invalid inputs" } });
        }
        const ids = rows.map(() => `pred-${++counter}`);
        for (const [i, id] of ids.entries()) issued.set(id, { at, inputs: rows[i] });
        const outputs = rows.map(() => ({ label: "repaid", score: 0.1 }));
        return json(
          200,
          Array.isArray(inputs)
            ? { predictionIds: ids, outputs }
            : { predictionId: ids[0], outputs: outputs[0] },
          { "x-airlock-prediction-id": ids.join(",") },
        );
      }
      if (request.method === "POST" && (path === "/v1/feedback" || path === "/v1/outcomes")) {
        if (request.headers.authorization !== "Bearer ak_for_tests") return json(401, {});
        // As Airlock does for a key that may cover several models: each item names its model.
        const items = body as { model?: string }[];
        if (!items.every((item) => item.model === "demo-credit-risk")) {
          return json(400, { error: { code: "VALIDATION_FAILED", message: "model: is required" } });
        }
        return json(202, { accepted: items.length });
      }
      if (request.method === "GET" && path === "/v2/health/live") return json(200, {});
      json(404, {});
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    received,
    issued,
    reset,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

describe("against a server", () => {
  let server: Awaited<ReturnType<typeof standIn>>;
  let dir: string;
  beforeAll(async () => {
    server = await standIn();
    dir = mkdtempSync(join(tmpdir(), "airlock-traffic-"));
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const isPrediction = (r: Received) => r.path.endsWith("/predict");

  it("sends at the rate, labels after the delay, outcomes with them, and a manifest", async () => {
    // On a simulated clock: it moves only while nothing is in flight, so each request and its
    // answer happen at the request's planned time, however loaded the machine is.
    const clock = new SimulatedClock();
    server.reset(clock);
    const manifestFile = join(dir, "run.json");
    const lines: string[] = [];
    const argv = [
      "--url",
      server.url,
      "--admin-token",
      "admin-token",
      "--rate",
      "20",
      "--duration",
      "2s",
      "--seed",
      "11",
      "--batch-rate",
      "0.2",
      "--label-delay",
      "500ms",
      "--label-rate",
      "1",
      "--drift",
      "age:missing=0.3@1s",
      "--manifest",
      manifestFile,
    ];
    const code = await main(argv, {
      out: (line) => lines.push(line),
      err: (line) => lines.push(line),
      env: {},
      adminTokenFile: join(dir, "none"),
      clock,
    });
    expect(code).toBe(0);

    const predictions = server.received.filter(isPrediction);
    expect(predictions).toHaveLength(40);
    // 20/s from the start of the run (the clock's 0): request i goes out at i * 50 ms.
    expect(predictions.map((r) => r.at)).toEqual(Array.from({ length: 40 }, (_, i) => i * 50));

    // Exactly the seeded requests; before the drift every row is valid, after it some are not.
    const profile = resolveProfile(demoInfo, profileFor("demo-credit-risk", undefined).profile);
    const gen = createGenerator(profile, {
      seed: 11,
      rate: 20,
      total: 40,
      batchRate: 0.2,
      batchMax: 10,
      labelRate: 1,
      labelDelay: { min: 0.5, max: 0.5 },
      drifts: drifts("age:missing=0.3@1s"),
    });
    const expected: GeneratedRequest[] = Array.from({ length: 40 }, (_, i) => gen.request(i));
    const sortKey = (body: unknown) => JSON.stringify(body);
    expect(predictions.map((r) => sortKey(r.body)).sort()).toEqual(
      expected.map((r) => sortKey(r.body)).sort(),
    );
    const rowsOfBody = (body: unknown) => {
      const inputs = (body as { inputs: unknown }).inputs;
      return Array.isArray(inputs) ? inputs : [inputs];
    };
    const valid = (r: GeneratedRequest) =>
      rowsOfBody(r.body).every((row) => demoValidator.validate(row).valid);
    expect(expected.slice(0, 20).every(valid)).toBe(true);
    expect(expected.slice(20).some((r) => !valid(r))).toBe(true);
    for (const r of predictions) expect(r.authorization).toBe("Bearer ak_for_tests");

    // A label for every accepted prediction, with its true label: due the delay after its answer,
    // it goes out with the next look for due labels (every 100 ms).
    const truthOf = new Map<string, string>();
    for (const r of expected)
      for (const row of r.rows) truthOf.set(JSON.stringify(row.inputs), String(row.truth?.label));
    const labels = server.received
      .filter((r) => r.path === "/v1/feedback")
      .flatMap((r) =>
        (r.body as { predictionId: string; model: string; label: string }[]).map((item) => ({
          ...item,
          at: r.at,
        })),
      );
    expect(labels).toHaveLength(server.issued.size);
    for (const label of labels) {
      const prediction = server.issued.get(label.predictionId);
      expect(prediction).toBeDefined();
      expect(label.at - (prediction?.at ?? 0)).toBeGreaterThanOrEqual(500);
      expect(label.at - (prediction?.at ?? 0)).toBeLessThan(600);
      expect(label.label).toBe(truthOf.get(JSON.stringify(prediction?.inputs)));
      expect(label.model).toBe("demo-credit-risk");
    }
    const outcomes = server.received
      .filter((r) => r.path === "/v1/outcomes")
      .flatMap(
        (r) =>
          r.body as { predictionId: string; model: string; kpi: string; key: string; id: string }[],
      );
    expect(outcomes).toHaveLength(labels.length);
    const labelOf = new Map(labels.map((l) => [l.predictionId, l.label]));
    for (const outcome of outcomes) {
      expect(outcome.kpi).toBe(
        labelOf.get(outcome.predictionId) === "default" ? "credit_loss" : "interest_revenue",
      );
      expect(outcome.key).toMatch(/^cust-\d{6}$/);
      expect(outcome.model).toBe("demo-credit-risk");
    }

    const output = lines.join("\n");
    expect(output).toMatch(/sent 40 requests/);
    expect(output).toMatch(new RegExp(`labels: ${labels.length} sent, ${labels.length} accepted`));
    const manifest = JSON.parse(readFileSync(manifestFile, "utf8"));
    expect(manifest.run.interrupted).toBe(false);
    expect(manifest.run.argv).toContain("***");
    expect(manifest.run.argv).not.toContain("admin-token");
    expect(manifest.target.schemaFrom).toBe("admin API");
    expect(manifest.phases.map((p: { sent: { requests: number } }) => p.sent.requests)).toEqual([
      20, 20,
    ]);
    expect(manifest.phases[0].responses).toEqual({ "200": 20 });
    expect(manifest.phases[1].responses["400"]).toBeGreaterThan(0);
    expect(manifest.totals.labels.accepted).toBe(labels.length);
  });

  it("stops on abort: no more requests, labels not yet due dropped and counted", async () => {
    const clock = new SimulatedClock();
    const controller = new AbortController();
    // Stopped (as by Ctrl-C) while the server is answering its 10th prediction.
    const stopAt = 10;
    server.reset(clock, (received) => {
      if (received.filter(isPrediction).length === stopAt) controller.abort();
    });
    const manifestFile = join(dir, "stopped.json");
    const lines: string[] = [];
    const code = await main(
      [
        "--url",
        server.url,
        "--key",
        "ak_for_tests",
        "--rate",
        "20",
        "--label-delay",
        "10s",
        "--label-rate",
        "1",
        "--manifest",
        manifestFile,
      ],
      {
        out: (line) => lines.push(line),
        err: (line) => lines.push(line),
        signal: controller.signal,
        env: {},
        adminTokenFile: join(dir, "none"),
        clock,
      },
    );
    // An unlimited run: that it returned at all is the stop.
    expect(code).toBe(0);
    expect(controller.signal.aborted).toBe(true);
    // The 10th request, in flight at the stop, was answered; none went out after it.
    const predictions = server.received.filter(isPrediction);
    expect(predictions).toHaveLength(stopAt);
    expect(predictions.at(-1)?.at).toBe((stopAt - 1) * 50);
    expect(server.issued.size).toBeGreaterThanOrEqual(stopAt);
    // Labels are due 10 s after their answer: none was due at the stop.
    expect(server.received.filter((r) => r.path === "/v1/feedback")).toHaveLength(0);
    const manifest = JSON.parse(readFileSync(manifestFile, "utf8"));
    expect(manifest.run.interrupted).toBe(true);
    expect(manifest.totals.requests).toBe(stopAt);
    expect(manifest.totals.acceptedRows).toBe(server.issued.size);
    expect(manifest.totals.labels.dropped).toBe(server.issued.size);
    expect(lines.join("\n")).toContain(`stopped after ${stopAt} requests`);
    expect(lines.join("\n")).toContain(`dropped ${server.issued.size} labels`);
  });

  it("runs on the real clock: every request, then every label once due", async () => {
    server.reset(realClock);
    const lines: string[] = [];
    const code = await main(
      [
        ...["--url", server.url, "--key", "ak_for_tests", "--requests", "6", "--rate", "200"],
        ...["--batch-rate", "0", "--label-delay", "0s", "--label-rate", "1"],
      ],
      {
        out: (line) => lines.push(line),
        err: (line) => lines.push(line),
        env: {},
        adminTokenFile: join(dir, "none"),
      },
    );
    expect(code).toBe(0);
    expect(server.received.filter(isPrediction)).toHaveLength(6);
    const labelled = server.received
      .filter((r) => r.path === "/v1/feedback")
      .flatMap((r) => (r.body as { predictionId: string }[]).map((l) => l.predictionId));
    expect(labelled.sort()).toEqual([...server.issued.keys()].sort());
    expect(lines.join("\n")).toMatch(/labels: 6 sent, 6 accepted/);
  });
});

describe("traffic generator as a program", () => {
  it("writes every dry-run request into a pipe before it exits", async () => {
    const { spawn } = await import("node:child_process");
    const child = spawn(
      process.execPath,
      ["scripts/traffic.ts", "--dry-run", "--requests", "4000", "--seed", "5", "--batch-rate", "0"],
      { stdio: ["ignore", "pipe", "ignore"] },
    );
    let lines = 0;
    let rest = "";
    child.stdout.setEncoding("utf8");
    // A slow reader, so that output is still buffered when the program finishes.
    for await (const chunk of child.stdout) {
      const text = rest + chunk;
      const parts = text.split("\n");
      rest = parts.pop() ?? "";
      lines += parts.length;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const code = await new Promise((resolve) => child.on("close", resolve));
    expect(code).toBe(0);
    expect(lines).toBe(4000);
  });
});
