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
 */
import type { EnsembleSpec, SourceTree } from "./ensemble";
import type { LinearSpec } from "./linear";
import type { Link } from "./link";
import {
  arrayAt,
  classLabelsAt,
  featureNamesAt,
  integerAt,
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
  if (root.estimator !== undefined) stringAt(root.estimator, "estimator");
  const features = featureNamesAt(root.features, "features");
  const classes = root.classes === undefined ? null : classLabelsAt(root.classes, "classes");
  const combine = stringAt(root.combine, "combine");
  if (combine !== "mean" && combine !== "sum") problem("combine", "must be 'mean' or 'sum'");
  const link = stringAt(root.link, "link") as Link;
  if (!(treeLinks as readonly string[]).includes(link)) {
    problem("link", `must be one of ${treeLinks.join(", ")}`);
  }

  let margins: number;
  if (!classes) {
    if (link !== "identity") problem("link", "must be 'identity' for a regressor (no classes)");
    margins = 1;
  } else if (link === "logistic") {
    if (classes.length !== 2) problem("link", "'logistic' needs exactly two classes");
    margins = 1;
  } else {
    margins = classes.length;
  }

  const scale = root.scale === undefined ? 1 : numberAt(root.scale, "scale");
  const base =
    root.base === undefined ? new Array<number>(margins).fill(0) : numbersAt(root.base, "base");
  if (base.length !== margins)
    problem("base", `holds ${base.length} values for ${margins} outputs`);

  const trees = arrayAt(root.trees, "trees").map((raw, t): SourceTree => {
    const path = `trees[${t}]`;
    const tree = objectAt(raw, path);
    const output = tree.output === undefined ? -1 : integerAt(tree.output, `${path}.output`);
    if (output < -1 || output >= margins) {
      problem(`${path}.output`, `names output ${output}, but the model has ${margins}`);
    }
    const values = arrayAt(tree.value, `${path}.value`);
    const left = numbersAt(tree.childrenLeft, `${path}.childrenLeft`);
    if (values.length !== left.length) {
      problem(`${path}.value`, `has ${values.length} entries, but childrenLeft has ${left.length}`);
    }
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
      right: numbersAt(tree.childrenRight, `${path}.childrenRight`),
      feature: numbersAt(tree.feature, `${path}.feature`),
      threshold: numbersAt(tree.threshold, `${path}.threshold`),
      defaultLeft:
        tree.missingGoToLeft === undefined
          ? undefined
          : numbersAt(tree.missingGoToLeft, `${path}.missingGoToLeft`),
      leaf: (node) => {
        const value = values[node];
        return Array.isArray(value) ? (value as number[]) : [Number.NaN];
      },
      output,
      weight: 1,
    };
  });

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

export function parseSklearnLinear(model: unknown): ParsedLinear {
  const root = objectAt(model, "");
  if (root.estimator !== undefined) stringAt(root.estimator, "estimator");
  const features = featureNamesAt(root.features, "features");
  const classes = root.classes === undefined ? null : classLabelsAt(root.classes, "classes");
  const n = features.length;

  // coef_: [n] or [[n]] for one margin, [[n] x K] for K classes.
  const coefRaw = arrayAt(root.coef, "coef");
  const rows: number[][] = Array.isArray(coefRaw[0])
    ? coefRaw.map((row, k) => numbersAt(row, `coef[${k}]`))
    : [numbersAt(coefRaw, "coef")];
  for (const [k, row] of rows.entries()) {
    if (row.length !== n)
      problem(`coef[${k}]`, `holds ${row.length} coefficients for ${n} features`);
  }
  const intercepts =
    typeof root.intercept === "number"
      ? [numberAt(root.intercept, "intercept")]
      : numbersAt(root.intercept, "intercept");

  let link: Link;
  let margins: number;
  if (!classes) {
    if (rows.length !== 1)
      problem("coef", `holds ${rows.length} rows; a regressor (no classes) has one`);
    link = "identity";
    margins = 1;
  } else if (classes.length === 2) {
    if (rows.length !== 1)
      problem("coef", `holds ${rows.length} rows; a binary classifier has one`);
    link = "logistic";
    margins = 1;
  } else {
    if (rows.length !== classes.length) {
      problem("coef", `holds ${rows.length} rows for ${classes.length} classes`);
    }
    const multiClass =
      root.multiClass === undefined ? "multinomial" : stringAt(root.multiClass, "multiClass");
    if (multiClass !== "multinomial" && multiClass !== "ovr") {
      problem("multiClass", "must be 'multinomial' or 'ovr'");
    }
    link = multiClass === "ovr" ? "ovr" : "softmax";
    margins = classes.length;
  }
  if (intercepts.length !== margins) {
    problem("intercept", `holds ${intercepts.length} values for ${margins} outputs`);
  }
  return {
    task: classes ? "classification" : "regression",
    features,
    classes,
    spec: { featureCount: n, coef: rows.flat(), intercept: intercepts, margins, link },
  };
}
