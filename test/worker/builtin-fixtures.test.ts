/// <reference types="vite/client" />
/**
 * Models trained and exported with XGBoost and scikit-learn
 * (scripts/fixtures/make_builtin_fixtures.py), with the libraries' own
 * predictions: the evaluator must agree to 1e-5, alone and through the
 * registration and predict routes.
 */
import { exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { compileModel } from "../../shared/builtin";
import { predictBuiltin } from "../../shared/builtin/serve";
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
  });
});

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
