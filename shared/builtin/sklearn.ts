/**
 * scikit-learn models, in the JSON that `scripts/export/sklearn_export.py`
 * writes from a fitted estimator.
 *
 * `sklearn-trees` (forests, extra trees, single trees, gradient boosting):
 *   { estimator, features, classes?, combine: "mean" | "sum", scale?, base?,
 *     link: "identity" | "logistic" | "softmax",
 *     trees: [{ output?, childrenLeft, childrenRight, feature, threshold, value }] }
 * Each tree is its `tree_` arrays; `value[node]` is the tree's prediction at
 * the node (class probabilities for forest classifiers, the value otherwise).
 * The prediction is `link(base + scale * combine(trees))`. A row goes left when
 * its value, as a 32-bit float (scikit-learn casts inputs to float32), is
 * `<= threshold`. Trees from scikit-learn 1.3 or later may carry
 * `missingGoToLeft` (0/1 per node); without it the model takes no missing values.
 *
 * `sklearn-linear` (LogisticRegression, LinearRegression, Ridge, Lasso, ...):
 *   { estimator, features, coef, intercept, classes?, multiClass? }
 * in scikit-learn's layout: `coef` is `coef_` ([n] or [1, n] for regression,
 * [1, n] for binary, [K, n] for K classes), `intercept` is `intercept_`,
 * `classes` is `classes_`. Binary: P(classes[1]) = sigmoid(x.w + b);
 * multiclass: softmax (`multiClass: "multinomial"`, the default) or
 * one-vs-rest sigmoids normalised to sum 1 (`"ovr"`).
 *
 * Both parsers name every problem they find in a file at once (`ProblemList`),
 * and a field left under scikit-learn's attribute name (`coef_`) is pointed
 * to the name the format uses. A tree's structure (children, leaves) is
 * checked afterwards, by the ensemble, and its first problem named.
 */
import type { EnsembleSpec, SourceTree } from "./ensemble";
import type { LinearSpec } from "./linear";
import type { Link } from "./link";
import {
  arrayAt,
  classLabelsAt,
  featureNamesAt,
  integerAt,
  ModelFileProblem,
  numberAt,
  numbersAt,
  objectAt,
  problem,
  stringAt,
} from "./problem";

export interface ParsedTrees {
  task: "classification" | "regression";
  features: string[];
  classes: string[] | null;
  spec: EnsembleSpec;
}

export interface ParsedLinear {
  task: "classification" | "regression";
  features: string[];
  classes: string[] | null;
  spec: LinearSpec;
}

const treeLinks = ["identity", "logistic", "softmax"] as const;

export function parseSklearnTrees(model: unknown): ParsedTrees {
  const root = objectAt(model, "");
  const found = new ProblemList();
  if (root.estimator !== undefined) found.check(() => stringAt(root.estimator, "estimator"));
  const features = found.check(() => featureNamesAt(field(root, "features"), "features"));
  const classes = optionalField(root, "classes", found, (value) => classLabelsAt(value, "classes"));
  const combine = found.check(() => {
    const value = stringAt(field(root, "combine"), "combine");
    if (value !== "mean" && value !== "sum") problem("combine", "must be 'mean' or 'sum'");
    return value;
  });
  const link = found.check(() => {
    const value = stringAt(field(root, "link"), "link") as Link;
    if (!(treeLinks as readonly string[]).includes(value))
      problem("link", `must be one of ${treeLinks.join(", ")}`);
    return value;
  });

  // The number of outputs follows from the classes and the link; when either
  // could not be read, nothing is checked against it.
  let margins: number | undefined;
  if (classes !== undefined && link !== undefined) {
    if (!classes) {
      if (link !== "identity") found.add("link", "must be 'identity' for a regressor (no classes)");
      margins = 1;
    } else if (link === "logistic") {
      if (classes.length !== 2) found.add("link", "'logistic' needs exactly two classes");
      margins = 1;
    } else {
      margins = classes.length;
    }
  }

  const scale = root.scale === undefined ? 1 : found.check(() => numberAt(root.scale, "scale"));
  const base =
    root.base === undefined
      ? margins === undefined
        ? undefined
        : new Array<number>(margins).fill(0)
      : found.check(() => numbersAt(root.base, "base"));
  if (base && margins !== undefined && base.length !== margins)
    found.add("base", `holds ${base.length} values for ${margins} outputs`);

  const rawTrees = found.check(() => arrayAt(field(root, "trees"), "trees")) ?? [];
  const trees = rawTrees.map((raw, t) => found.check(() => sourceTree(raw, t, margins, found)));

  found.throwIfAny();
  if (
    !features ||
    classes === undefined ||
    !combine ||
    !link ||
    margins === undefined ||
    scale === undefined ||
    !base ||
    !trees.every((tree) => tree !== undefined)
  )
    throw new Error("a part of the file was not read, yet no problem was kept");
  return {
    task: classes ? "classification" : "regression",
    features,
    classes,
    spec: {
      featureCount: features.length,
      margins,
      comparison: "le",
      accumulate: "float64",
      combine,
      scale,
      base,
      link,
      trees,
    },
  };
}

/** One tree's `tree_` arrays; every problem in them is kept, and the tree left out. */
function sourceTree(
  raw: unknown,
  t: number,
  margins: number | undefined,
  found: ProblemList,
): SourceTree {
  const path = `trees[${t}]`;
  const tree = objectAt(raw, path);
  let complete = true;
  const part = <T>(read: () => T): T => {
    const value = found.check(read);
    if (value === undefined) complete = false;
    return value as T;
  };
  const output = part(() =>
    tree.output === undefined ? -1 : integerAt(tree.output, `${path}.output`),
  );
  if (output !== undefined && margins !== undefined && (output < -1 || output >= margins)) {
    found.add(`${path}.output`, `names output ${output}, but the model has ${margins}`);
    complete = false;
  }
  const values = part(() => arrayAt(tree.value, `${path}.value`));
  const left = part(() => numbersAt(tree.childrenLeft, `${path}.childrenLeft`));
  if (values && left && values.length !== left.length) {
    found.add(`${path}.value`, `has ${values.length} entries, but childrenLeft has ${left.length}`);
    complete = false;
  }
  const right = part(() => numbersAt(tree.childrenRight, `${path}.childrenRight`));
  const feature = part(() => numbersAt(tree.feature, `${path}.feature`));
  const threshold = part(() => numbersAt(tree.threshold, `${path}.threshold`));
  const defaultLeft =
    tree.missingGoToLeft === undefined
      ? undefined
      : part(() => numbersAt(tree.missingGoToLeft, `${path}.missingGoToLeft`));
  if (!complete) throw new Skipped();
  return {
    path,
    fields: {
      left: "childrenLeft",
      right: "childrenRight",
      feature: "feature",
      threshold: "threshold",
      value: "value",
    },
    left,
    right,
    feature,
    threshold,
    defaultLeft,
    leaf: (node) => {
      const value = values[node];
      return Array.isArray(value) ? (value as number[]) : [Number.NaN];
    },
    output,
    weight: 1,
  };
}

export function parseSklearnLinear(model: unknown): ParsedLinear {
  const root = objectAt(model, "");
  const found = new ProblemList();
  if (root.estimator !== undefined) found.check(() => stringAt(root.estimator, "estimator"));
  const features = found.check(() => featureNamesAt(field(root, "features"), "features"));
  const classes = optionalField(root, "classes", found, (value) => classLabelsAt(value, "classes"));
  const rows = found.check(() => coefRows(field(root, "coef"), found));
  const intercepts = found.check(() => {
    const value = field(root, "intercept");
    return typeof value === "number"
      ? [numberAt(value, "intercept")]
      : finiteNumbers(value, "intercept", found);
  });
  const multiClass =
    root.multiClass === undefined
      ? "multinomial"
      : found.check(() => {
          const value = stringAt(root.multiClass, "multiClass");
          if (value !== "multinomial" && value !== "ovr")
            problem("multiClass", "must be 'multinomial' or 'ovr'");
          return value;
        });

  if (features && rows) {
    for (const [k, row] of rows.entries()) {
      if (row && row.length !== features.length)
        found.add(`coef[${k}]`, `holds ${row.length} coefficients for ${features.length} features`);
    }
  }
  // Outputs (margins) and their link follow from the classes; classes that
  // could not be read leave them unknown, and nothing is checked against them.
  const shape = classes === undefined ? undefined : linearShape(classes, multiClass);
  if (shape && rows && rows.length !== shape.margins)
    found.add("coef", shape.rowsProblem(rows.length));
  if (shape && intercepts && intercepts.length !== shape.margins) {
    found.add("intercept", `holds ${intercepts.length} values for ${shape.margins} outputs`);
  }
  found.throwIfAny();
  const coef = rows?.every((row) => row !== undefined) ? rows.flat() : undefined;
  if (!features || !coef || !intercepts || !shape || classes === undefined)
    throw new Error("a part of the file was not read, yet no problem was kept");
  return {
    task: classes ? "classification" : "regression",
    features,
    classes,
    spec: {
      featureCount: features.length,
      coef,
      intercept: intercepts,
      margins: shape.margins,
      link: shape.link,
    },
  };
}

/** How many outputs a linear model has, their link, and what to say of a coef with other than that many rows. */
function linearShape(classes: string[] | null, multiClass: string | undefined) {
  if (!classes) {
    return {
      margins: 1,
      link: "identity" as Link,
      rowsProblem: (rows: number) => `holds ${rows} rows; a regressor (no classes) has one`,
    };
  }
  if (classes.length === 2) {
    return {
      margins: 1,
      link: "logistic" as Link,
      rowsProblem: (rows: number) => `holds ${rows} rows; a binary classifier has one`,
    };
  }
  return {
    margins: classes.length,
    link: (multiClass === "ovr" ? "ovr" : "softmax") as Link,
    rowsProblem: (rows: number) => `holds ${rows} rows for ${classes.length} classes`,
  };
}

/** coef_: [n] or [[n]] for one output, [[n] x K] for K; a row that cannot be read is undefined. */
function coefRows(value: unknown, found: ProblemList): (number[] | undefined)[] {
  const coef = arrayAt(value, "coef");
  if (coef.length === 0) problem("coef", "must hold at least one coefficient");
  if (!Array.isArray(coef[0])) return [finiteNumbers(coef, "coef", found)];
  return coef.map((row, k) => found.check(() => finiteNumbers(row, `coef[${k}]`, found)));
}

/** An array of finite numbers, naming each entry that is not one. */
function finiteNumbers(value: unknown, path: string, found: ProblemList): number[] {
  const items = arrayAt(value, path);
  let bad = false;
  for (const [i, item] of items.entries()) {
    if (typeof item !== "number" || !Number.isFinite(item)) {
      found.add(`${path}[${i}]`, "must be a finite number");
      bad = true;
    }
  }
  if (bad) throw new Skipped();
  return items as number[];
}

/**
 * What scikit-learn calls each field of a file in this format, for files
 * written by hand from the estimator's attributes.
 */
const sklearnNames: Record<string, string[]> = {
  features: ["feature_names_in_"],
  coef: ["coef_"],
  intercept: ["intercept_"],
  classes: ["classes_"],
};

const EXPORTER = "scripts/export/sklearn_export.py writes this file from a fitted estimator";

/** A field that must be present; its absence says where it went if the file names it as scikit-learn does. */
function field(root: Record<string, unknown>, name: string): unknown {
  const value = root[name];
  if (value !== undefined) return value;
  const misnamed = (sklearnNames[name] ?? []).find((other) => root[other] !== undefined);
  problem(
    name,
    misnamed
      ? `is missing: the file has '${misnamed}', which this format names '${name}' (${EXPORTER})`
      : `is missing (${EXPORTER})`,
  );
}

/**
 * A field that may be left out (undefined when it cannot be read), unless the
 * file carries it under scikit-learn's name: a classifier's `classes_` left
 * where `classes` belongs would otherwise make it a regressor.
 */
function optionalField<T>(
  root: Record<string, unknown>,
  name: string,
  found: ProblemList,
  read: (value: unknown) => T,
): T | null | undefined {
  if (root[name] === undefined) {
    const misnamed = (sklearnNames[name] ?? []).find((other) => root[other] !== undefined);
    if (!misnamed) return null;
    found.add(
      name,
      `is missing: the file has '${misnamed}', which this format names '${name}' (${EXPORTER})`,
    );
    return undefined;
  }
  return found.check(() => read(root[name]));
}

/** Thrown by a check whose problems are already listed: it only stops that check. */
class Skipped extends Error {}

/** At most this many problems are named; the rest are counted. */
const MAX_PROBLEMS = 100;

/**
 * Every problem found in a file, so that one refusal names them all. Checks
 * run through `check`, which keeps a problem and goes on with the next check.
 */
export class ProblemList {
  readonly #problems: ModelFileProblem[] = [];
  #more = 0;

  add(path: string, message: string): void {
    if (this.#problems.length < MAX_PROBLEMS)
      this.#problems.push(new ModelFileProblem(path, message));
    else this.#more += 1;
  }

  /** The check's result, or undefined when it found a problem (kept). */
  check<T>(run: () => T): T | undefined {
    try {
      return run();
    } catch (error) {
      if (error instanceof Skipped) return undefined;
      if (!(error instanceof ModelFileProblem)) throw error;
      if (this.#problems.length < MAX_PROBLEMS) this.#problems.push(error);
      else this.#more += 1;
      return undefined;
    }
  }

  throwIfAny(): void {
    if (this.#problems.length === 0) return;
    const problems = [...this.#problems];
    if (this.#more > 0)
      problems.push(new ModelFileProblem("", `and ${this.#more} more problems not listed`));
    throw new ModelFileProblems(problems);
  }
}

/** More than one thing wrong with a model file, in the order found. */
export class ModelFileProblems extends Error {
  readonly problems: readonly ModelFileProblem[];

  constructor(problems: readonly ModelFileProblem[]) {
    super(problems.map((p) => `${p.path}: ${p.message}`).join("; "));
    this.name = "ModelFileProblems";
    this.problems = problems;
  }
}
