/**
 * A compiled builtin model against the model it serves: the checks made when
 * a version is registered, and predictions in canonical form. Pure.
 */
import type { InputRow } from "../inference/inputs";
import {
  type CanonicalPrediction,
  DEFAULT_THRESHOLD,
  type ModelOutputSpec,
  type RawPrediction,
  toCanonical,
} from "../inference/outputs";
import type { InputSchema } from "../schemas/model";
import type { CompiledModel, ModelProblem } from "./index";

export interface ServedModel extends ModelOutputSpec {
  inputSchema: InputSchema;
}

/**
 * What stops `compiled` from serving `model`, as problems at paths of the
 * version's upstream: a task or classes that do not match, a feature the input
 * schema lacks or that is not a number or boolean, or a feature the model
 * cannot do without that the schema lets callers leave out.
 */
export function bindingProblems(compiled: CompiledModel, model: ServedModel): ModelProblem[] {
  const problems: ModelProblem[] = [];
  if (compiled.task !== model.task) {
    problems.push({
      path: "model",
      message: `is a ${compiled.task} model, but the model it serves is ${model.task}`,
    });
    return problems;
  }
  if (model.task === "classification") {
    const classes = model.classes ?? [];
    if (compiled.classes) {
      const missing = compiled.classes.filter((c) => !classes.includes(c));
      if (missing.length > 0 || compiled.classes.length !== classes.length) {
        problems.push({
          path: "classes",
          message: `the model file's classes [${compiled.classes.join(", ")}] are not the model's classes [${classes.join(", ")}]`,
        });
      }
    } else if (compiled.classCount !== classes.length) {
      problems.push({
        path: "classes",
        message: `the model file predicts ${compiled.classCount} classes, but the model has ${classes.length}; classes are taken in the model's order unless 'classes' names them`,
      });
    }
    if (classes.length === 2 && model.positiveClass === null) {
      problems.push({ path: "model", message: "a binary model needs the model's positiveClass" });
    }
  }
  const required = new Set(model.inputSchema.required ?? []);
  for (const [i, name] of compiled.features.entries()) {
    const feature = model.inputSchema.properties[name];
    if (!feature) {
      problems.push({
        path: "features",
        message: `the model file uses feature '${name}', which the model's input schema lacks`,
      });
    } else if (feature.type === "string") {
      problems.push({
        path: "features",
        message: `feature '${name}' is a string in the input schema; builtin models take numbers and booleans`,
      });
    } else if (!compiled.acceptsMissing && compiled.usedFeatures[i] && !required.has(name)) {
      problems.push({
        path: "features",
        message: `feature '${name}' may be left out by callers (not in the input schema's required list), but this model cannot take missing values`,
      });
    }
  }
  return problems;
}

export type BuiltinResult =
  | { ok: true; predictions: CanonicalPrediction[] }
  | { ok: false; reason: string };

/** Row-major feature values for `rows`, NaN where a value is null or absent. */
export function featureMatrix(
  compiled: CompiledModel,
  rows: readonly InputRow[],
): { ok: true; x: Float64Array } | { ok: false; reason: string } {
  const features = compiled.features;
  const n = features.length;
  const x = new Float64Array(rows.length * n);
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r] as InputRow;
    const at = r * n;
    for (let j = 0; j < n; j++) {
      const value = row[features[j] as string];
      if (typeof value === "number") x[at + j] = value;
      else if (typeof value === "boolean") x[at + j] = value ? 1 : 0;
      else if (value === null || value === undefined) {
        if (!compiled.acceptsMissing && compiled.usedFeatures[j]) {
          return {
            ok: false,
            reason: `row ${r}: feature '${features[j]}' is missing, and this model cannot take missing values`,
          };
        }
        x[at + j] = Number.NaN;
      } else {
        return {
          ok: false,
          reason: `row ${r}: feature '${features[j]}' is not a number or boolean`,
        };
      }
    }
  }
  return { ok: true, x };
}

/** Predictions for validated rows, in canonical form. */
export function predictBuiltin(
  compiled: CompiledModel,
  model: ModelOutputSpec,
  rows: readonly InputRow[],
  threshold = DEFAULT_THRESHOLD,
): BuiltinResult {
  const matrix = featureMatrix(compiled, rows);
  if (!matrix.ok) return matrix;
  const out = compiled.predict(matrix.x, rows.length);
  const width = compiled.width;
  const classes = compiled.classes ?? model.classes ?? [];
  const positive = model.positiveClass === null ? -1 : classes.indexOf(model.positiveClass);
  const predictions: CanonicalPrediction[] = [];
  for (let r = 0; r < rows.length; r++) {
    const at = r * width;
    let raw: RawPrediction;
    if (model.task === "regression") raw = { value: out[at] };
    else if (classes.length === 2) raw = { score: out[at + (positive < 0 ? 1 : positive)] };
    else {
      const probabilities: Record<string, number> = {};
      for (let k = 0; k < classes.length; k++)
        probabilities[classes[k] as string] = out[at + k] as number;
      raw = { probabilities };
    }
    const checked = toCanonical(model, raw, threshold);
    if (!checked.ok) return { ok: false, reason: `row ${r}: ${checked.reason}` };
    predictions.push(checked.value);
  }
  return { ok: true, predictions };
}
