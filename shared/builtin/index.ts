/**
 * Builtin models: evaluated inside the Worker that took the request, with no
 * network hop. `compileModel` reads a model file in one of the supported
 * formats, checks it, and builds the compact typed-array form that serves
 * predictions. Pure: no bindings, no I/O.
 */
import { TreeEnsemble } from "./ensemble";
import { LinearModel } from "./linear";
import { ModelFileProblem, upstreamProblem } from "./problem";
import { ModelFileProblems, ProblemList, parseSklearnLinear, parseSklearnTrees } from "./sklearn";
import { parseXgboostDump, parseXgboostJson } from "./xgboost";

export const builtinFormats = [
  "xgboost-json",
  "xgboost-dump",
  "sklearn-trees",
  "sklearn-linear",
] as const;
export type BuiltinFormat = (typeof builtinFormats)[number];

/** The largest model file accepted, in bytes of its JSON text. */
export const MAX_MODEL_BYTES = 10 * 1024 * 1024;

/** Fields given beside the model file, for formats that do not carry them. */
export interface BuiltinOptions {
  /** Feature names in the model's column order. */
  features?: string[] | undefined;
  /** Class labels in the model's class index order (XGBoost classifiers). */
  classes?: string[] | undefined;
}

export interface CompiledModel {
  readonly format: BuiltinFormat;
  readonly task: "classification" | "regression";
  /** Feature names in column order. */
  readonly features: readonly string[];
  /** Class labels in output order; null for regression, or when classes are only numbered. */
  readonly classes: readonly string[] | null;
  /** Classes the model predicts (classification), 1 for regression. */
  readonly classCount: number;
  /** Values `predict` writes per row: one probability per class, or the value. */
  readonly width: number;
  /** Whether a missing (null or absent) feature can be evaluated. */
  readonly acceptsMissing: boolean;
  /** Per feature, whether the prediction can depend on it. */
  readonly usedFeatures: Uint8Array;
  /** Approximate bytes held. */
  readonly bytes: number;
  readonly description: string;
  /** `x`: row-major, one value per feature, NaN for missing. */
  predict(x: Float64Array, rows: number): Float64Array;
}

export interface ModelProblem {
  /** `features`, or a path inside the model file (`model...`). */
  path: string;
  message: string;
}

export type CompileResult =
  | { ok: true; model: CompiledModel }
  | {
      ok: false;
      /** The first of `problems`. */
      problem: ModelProblem;
      /** Every problem found, in the order found (scikit-learn files name them all; others the first). */
      problems: ModelProblem[];
    };

export function isBuiltinFormat(format: string): format is BuiltinFormat {
  return (builtinFormats as readonly string[]).includes(format);
}

export function compileModel(
  format: string,
  model: unknown,
  options: BuiltinOptions = {},
): CompileResult {
  try {
    return { ok: true, model: compile(format, model, options) };
  } catch (error) {
    const found =
      error instanceof ModelFileProblems
        ? error.problems
        : error instanceof ModelFileProblem
          ? [error]
          : undefined;
    const [first, ...rest] = (found ?? []).map(modelProblem);
    if (!first) throw error;
    return { ok: false, problem: first, problems: [first, ...rest] };
  }
}

function modelProblem(problem: ModelFileProblem): ModelProblem {
  const path =
    problem.scope === "upstream"
      ? problem.path
      : problem.path === ""
        ? "model"
        : `model.${problem.path}`;
  return { path, message: problem.message };
}

function compile(format: string, model: unknown, options: BuiltinOptions): CompiledModel {
  switch (format) {
    case "xgboost-json":
    case "xgboost-dump": {
      const parsed =
        format === "xgboost-json"
          ? parseXgboostJson(model)
          : parseXgboostDump(model, options.features ?? null);
      const features = agreeingFeatures(parsed.features, options.features, parsed.featureCount);
      const classes =
        parsed.task === "classification"
          ? givenClasses(options.classes, parsed.classCount)
          : noClasses(options);
      const ensemble = new TreeEnsemble({ ...parsed.spec, featureCount: features.length });
      return treeModel(format, parsed.task, features, classes, parsed.classCount, ensemble);
    }
    case "sklearn-trees": {
      const parsed = parseSklearnTrees(model);
      const { features, classes } = besideSklearn(parsed, options);
      const ensemble = new TreeEnsemble(parsed.spec);
      return treeModel(format, parsed.task, features, classes, classes?.length ?? 1, ensemble);
    }
    case "sklearn-linear": {
      const parsed = parseSklearnLinear(model);
      const { features, classes } = besideSklearn(parsed, options);
      const linear = new LinearModel(parsed.spec);
      return {
        format,
        task: parsed.task,
        features,
        classes,
        classCount: classes?.length ?? 1,
        width: linear.width,
        acceptsMissing: false,
        usedFeatures: new Uint8Array(features.length).fill(1),
        bytes: linear.bytes,
        description: `linear model, ${features.length} features, ${linear.margins} output(s)`,
        predict(x, rows) {
          const out = new Float64Array(rows * linear.width);
          linear.predict(x, rows, out);
          return out;
        },
      };
    }
    default:
      upstreamProblem(
        "format",
        `'${format}' is not a builtin format; supported: ${builtinFormats.join(", ")}`,
      );
  }
}

function treeModel(
  format: BuiltinFormat,
  task: "classification" | "regression",
  features: string[],
  classes: string[] | null,
  classCount: number,
  ensemble: TreeEnsemble,
): CompiledModel {
  return {
    format,
    task,
    features,
    classes,
    classCount,
    width: ensemble.width,
    acceptsMissing: ensemble.acceptsMissing,
    usedFeatures: ensemble.usedFeatures,
    bytes: ensemble.bytes,
    description: `${ensemble.treeCount} trees, ${ensemble.nodeCount} nodes, ${features.length} features`,
    predict(x, rows) {
      const out = new Float64Array(rows * ensemble.width);
      ensemble.predict(Float32Array.from(x), rows, out);
      return out;
    },
  };
}

/** A scikit-learn file's features and classes, checked together against those given beside it. */
function besideSklearn(
  parsed: { features: string[]; classes: string[] | null },
  options: BuiltinOptions,
): { features: string[]; classes: string[] | null } {
  const found = new ProblemList();
  found.check(() => agreeingFeatures(parsed.features, options.features, parsed.features.length));
  found.check(() => agreeingClasses(parsed.classes, options.classes));
  found.throwIfAny();
  return { features: parsed.features, classes: parsed.classes };
}

/** The model file's feature names, or the ones given beside it; both must agree. */
function agreeingFeatures(
  inFile: string[] | null,
  given: string[] | undefined,
  count: number,
): string[] {
  if (
    inFile &&
    given &&
    (inFile.length !== given.length || inFile.some((name, i) => name !== given[i]))
  ) {
    upstreamProblem(
      "features",
      "differ from the feature names in the model file; leave them out or make them equal",
    );
  }
  const features = inFile ?? given;
  if (!features) {
    upstreamProblem(
      "features",
      "the model file does not name its features: give their names in column order beside the model",
    );
  }
  if (features.length !== count) {
    upstreamProblem("features", `names ${features.length} features, but the model has ${count}`);
  }
  return features;
}

function agreeingClasses(inFile: string[] | null, given: string[] | undefined): string[] | null {
  if (given && !inFile) upstreamProblem("classes", "are only for classifiers");
  if (
    inFile &&
    given &&
    (inFile.length !== given.length || inFile.some((c, i) => c !== given[i]))
  ) {
    upstreamProblem(
      "classes",
      "differ from the classes in the model file; leave them out or make them equal",
    );
  }
  return inFile;
}

function givenClasses(given: string[] | undefined, count: number): string[] | null {
  if (given && given.length !== count) {
    upstreamProblem("classes", `names ${given.length} classes, but the model predicts ${count}`);
  }
  return given ?? null;
}

function noClasses(options: BuiltinOptions): null {
  if (options.classes) upstreamProblem("classes", "are only for classifiers");
  return null;
}
