/// <reference types="vite/client" />
/**
 * Models trained and exported with XGBoost and scikit-learn
 * (scripts/fixtures/make_builtin_fixtures.py), with the libraries' own
 * predictions: the evaluator must agree to 1e-5, alone and through the
 * registration and predict routes. XGBoost's to the float: its margins
 * exactly, its predictions to one unit in the last place of a 32-bit float.
 */
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { compileModel } from "../../shared/builtin";
import { TreeEnsemble } from "../../shared/builtin/ensemble";
import { predictBuiltin } from "../../shared/builtin/serve";
import { parseXgboostDump, parseXgboostJson } from "../../shared/builtin/xgboost";
import type { InputRow } from "../../shared/inference/inputs";
import type { CanonicalPrediction } from "../../shared/inference/outputs";
import { call, createModel, json, uniqueName } from "./helpers";
import { putRollout } from "./rollout-helpers";

interface Fixture {
  case: string;
  trainedWith: string;
  format: string;
  task: "classification" | "regression";
  features: string[];
  classes?: string[];
  model: Record<string, unknown>;
  rows: InputRow[];
  expected: number[][];
  /** XGBoost's margins (output_margin=True), one per output group. */
  margins?: number[][];
}

const fixtures = Object.values(
  import.meta.glob<Fixture>("../fixtures/builtin/*.json", { eager: true, import: "default" }),
).sort((a, b) => a.case.localeCompare(b.case));

const TOLERANCE = 1e-5;

/** The XGBoost formats do not carry class names or, without feature names, features. */
function beside(fixture: Fixture) {
  if (!fixture.format.startsWith("xgboost")) return {};
  return { features: fixture.features, classes: fixture.classes };
}

const hasMissing = (fixture: Fixture) =>
  fixture.rows.some((row) => fixture.features.some((f) => row[f] === null || !(f in row)));

/** The largest difference from the library's predictions. */
function worstError(fixture: Fixture, predictions: CanonicalPrediction[]): number {
  let worst = 0;
  const classes = fixture.classes ?? [];
  for (const [i, expected] of fixture.expected.entries()) {
    const prediction = predictions[i];
    if (!prediction) return Number.POSITIVE_INFINITY;
    let got: number[];
    if ("value" in prediction) got = [prediction.value];
    else if (classes.length === 2) {
      // The positive class is the library's class 1.
      got = [1 - (prediction.score ?? Number.NaN), prediction.score ?? Number.NaN];
    } else got = classes.map((c) => prediction.probabilities?.[c] ?? Number.NaN);
    for (const [k, value] of expected.entries()) {
      const error = Math.abs((got[k] ?? Number.NaN) - value);
      worst = Number.isNaN(error) ? Number.POSITIVE_INFINITY : Math.max(worst, error);
    }
    if (classes.length > 0 && "label" in prediction) {
      // Ties aside, the label is the library's most probable class.
      const top = Math.max(...expected);
      const runnerUp = Math.max(...expected.filter((p) => p !== top), 0);
      if (top - runnerUp > 1e-6 && classes.length > 2) {
        expect(prediction.label).toBe(classes[expected.indexOf(top)]);
      }
    }
  }
  return worst;
}

/** The fixture's rows as a row-major matrix, NaN where a value is null or absent. */
function matrix(fixture: Fixture): Float64Array {
  const n = fixture.features.length;
  const x = new Float64Array(fixture.rows.length * n);
  for (const [i, row] of fixture.rows.entries()) {
    for (const [j, name] of fixture.features.entries()) {
      const value = row[name];
      x[i * n + j] = typeof value === "number" ? value : Number.NaN;
    }
  }
  return x;
}

const bits = new Float32Array(2);
const bitsInt = new Int32Array(bits.buffer);

/** How many 32-bit floats apart `a` and `b` are (both floats, of one sign). */
function float32Steps(a: number, b: number): number {
  if (Math.fround(a) !== a || Math.fround(b) !== b) return Number.POSITIVE_INFINITY;
  bits[0] = a;
  bits[1] = b;
  if (a === b) return 0;
  if (Math.sign(a) !== Math.sign(b)) return Number.POSITIVE_INFINITY;
  return Math.abs((bitsInt[0] as number) - (bitsInt[1] as number));
}

function spec(fixture: Fixture) {
  return {
    task: fixture.task,
    classes: fixture.classes ?? null,
    positiveClass: fixture.classes?.length === 2 ? (fixture.classes[1] ?? null) : null,
  };
}

describe("fixtures", () => {
  it("cover every format, objective and estimator the issue names", () => {
    const cases = fixtures.map((f) => `${f.format}:${f.case}`);
    expect(fixtures.length).toBeGreaterThanOrEqual(20);
    for (const format of ["xgboost-json", "xgboost-dump", "sklearn-trees", "sklearn-linear"]) {
      expect(cases.some((c) => c.startsWith(`${format}:`))).toBe(true);
    }
    const objectives = fixtures
      .filter((f) => f.format === "xgboost-json")
      .map((f) => (f.model.learner as { objective: { name: string } }).objective.name);
    expect(new Set(objectives)).toEqual(
      new Set(["binary:logistic", "reg:squarederror", "multi:softprob", "count:poisson"]),
    );
    expect(fixtures.filter(hasMissing).map((f) => f.case)).toEqual(
      expect.arrayContaining(["xgb-binary", "xgb-binary-dump"]),
    );
    const xgboost = fixtures.filter((f) => f.format.startsWith("xgboost"));
    expect(xgboost.filter((f) => !f.margins).map((f) => f.case)).toEqual([]);
    // Dumps both as XGBoost hands them out (strings) and as numbers and parsed trees.
    const dumps = xgboost.filter((f) => f.format === "xgboost-dump").map((f) => f.model);
    expect(dumps.some((m) => typeof m.baseScore === "string")).toBe(true);
    expect(dumps.some((m) => typeof m.baseScore === "number")).toBe(true);
    expect(dumps.some((m) => typeof (m.trees as unknown[])[0] === "string")).toBe(true);
    expect(dumps.some((m) => typeof (m.trees as unknown[])[0] === "object")).toBe(true);
  });
});

describe.each(fixtures.filter((f) => f.margins).map((f) => [f.case, f] as const))(
  "%s, against XGBoost to the float",
  (_name, fixture) => {
    const x = matrix(fixture);
    const rows = fixture.rows.length;

    it("adds up to XGBoost's margins exactly", () => {
      const parsed =
        fixture.format === "xgboost-json"
          ? parseXgboostJson(fixture.model)
          : parseXgboostDump(fixture.model, fixture.features);
      const ensemble = new TreeEnsemble({
        ...parsed.spec,
        link: "identity",
        featureCount: fixture.features.length,
      });
      const out = new Float64Array(rows * ensemble.width);
      ensemble.predict(Float32Array.from(x), rows, out);
      const margins = fixture.margins ?? [];
      const got = margins.map((row, i) => [...out.subarray(i * row.length, (i + 1) * row.length)]);
      expect(got).toEqual(margins);
    });

    it("predicts what XGBoost predicts, to one unit in the last place", () => {
      const compiled = compileModel(fixture.format, fixture.model, beside(fixture));
      if (!compiled.ok) throw new Error(`${compiled.problem.path}: ${compiled.problem.message}`);
      const out = compiled.model.predict(x, rows);
      const width = compiled.model.width;
      let worst = 0;
      for (const [i, expected] of fixture.expected.entries()) {
        // A binary model's first value is 1 - p, computed in double from XGBoost's p.
        const from = expected.length === 2 ? 1 : 0;
        for (let k = from; k < expected.length; k++) {
          worst = Math.max(
            worst,
            float32Steps(out[i * width + k] as number, expected[k] as number),
          );
        }
      }
      expect(worst).toBeLessThanOrEqual(1);
    });
  },
);

describe.each(fixtures.map((f) => [f.case, f] as const))("%s", (_name, fixture) => {
  it(`agrees with ${fixture.trainedWith} to 1e-5 on ${fixture.rows.length} rows`, () => {
    const compiled = compileModel(fixture.format, fixture.model, beside(fixture));
    if (!compiled.ok) throw new Error(`${compiled.problem.path}: ${compiled.problem.message}`);
    const result = predictBuiltin(compiled.model, spec(fixture), fixture.rows);
    if (!result.ok) throw new Error(result.reason);
    expect(worstError(fixture, result.predictions)).toBeLessThanOrEqual(TOLERANCE);
  });

  it("serves the same predictions through POST /v1/models/{model}/predict", async () => {
    const model = uniqueName("fx");
    const missing = hasMissing(fixture);
    await createModel({
      name: model,
      task: fixture.task,
      owner: "tests@example.com",
      description: `${fixture.case}: exported from ${fixture.trainedWith}`,
      inputSchema: {
        type: "object",
        properties: Object.fromEntries(fixture.features.map((f) => [f, { type: "number" }])),
        required: missing ? [] : fixture.features,
      },
      ...(fixture.classes ? { classes: fixture.classes } : {}),
      ...(fixture.classes?.length === 2 ? { positiveClass: spec(fixture).positiveClass } : {}),
      public: true,
    });
    const registered = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: {
        version: "v1",
        upstream: {
          kind: "builtin",
          format: fixture.format,
          model: fixture.model,
          ...beside(fixture),
        },
      },
    });
    expect(registered.status, await registered.clone().text()).toBe(201);
    expect((await putRollout(model, { champion: "v1", leaseMs: 250 })).status).toBe(200);
    const predictions: CanonicalPrediction[] = [];
    for (let start = 0; start < fixture.rows.length; start += 100) {
      const response = await exports.default.fetch(
        new Request(`http://airlock.test/v1/models/${model}/predict`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ inputs: fixture.rows.slice(start, start + 100) }),
        }),
      );
      expect(response.status).toBe(200);
      const body = await json<{ outputs: CanonicalPrediction[]; fallback: boolean }>(response);
      expect(body.fallback).toBe(false);
      predictions.push(...body.outputs);
    }
    expect(worstError(fixture, predictions)).toBeLessThanOrEqual(TOLERANCE);
  });
});
