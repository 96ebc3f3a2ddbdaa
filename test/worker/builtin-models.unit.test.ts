import { describe, expect, it } from "vitest";
import { type CompiledModel, compileModel, type ModelProblem } from "../../shared/builtin";
import { float32Above, TreeEnsemble } from "../../shared/builtin/ensemble";
import { bindingProblems, predictBuiltin } from "../../shared/builtin/serve";
import { parseXgboostDump, parseXgboostJson } from "../../shared/builtin/xgboost";
import type { InputSchema } from "../../shared/schemas/model";

/** A one-split XGBoost tree: feature `feature` < `threshold` goes to leaf `low`, else `high`. */
function stump(feature: number, threshold: number, low: number, high: number, defaultLeft = 1) {
  return {
    tree_param: { num_deleted: "0", num_feature: "2", num_nodes: "3", size_leaf_vector: "0" },
    id: 0,
    left_children: [1, -1, -1],
    right_children: [2, -1, -1],
    parents: [2147483647, 0, 0],
    split_indices: [feature, 0, 0],
    split_conditions: [threshold, low, high],
    default_left: [defaultLeft, 0, 0],
    split_type: [0, 0, 0],
    base_weights: [0, low, high],
    loss_changes: [1, 0, 0],
    sum_hessian: [10, 5, 5],
    categories: [],
    categories_nodes: [],
    categories_segments: [],
    categories_sizes: [],
  };
}

function xgbJson(options: {
  objective?: string;
  baseScore?: string;
  numClass?: string;
  featureNames?: string[];
  trees?: unknown[];
  treeInfo?: number[];
  booster?: string;
  weightDrop?: number[];
}) {
  const trees = options.trees ?? [stump(0, 0.5, -0.4, 0.3)];
  const gbtree = {
    name: "gbtree",
    model: {
      gbtree_model_param: { num_parallel_tree: "1", num_trees: String(trees.length) },
      trees,
      tree_info: options.treeInfo ?? trees.map(() => 0),
    },
  };
  return {
    version: [1, 7, 4],
    learner: {
      attributes: {},
      feature_names: options.featureNames ?? ["a", "b"],
      feature_types: [],
      gradient_booster: options.weightDrop
        ? { name: "dart", gbtree, weight_drop: options.weightDrop }
        : { ...gbtree, name: options.booster ?? "gbtree" },
      learner_model_param: {
        base_score: options.baseScore ?? "5E-1",
        boost_from_average: "1",
        num_class: options.numClass ?? "0",
        num_feature: "2",
        num_target: "1",
      },
      objective: { name: options.objective ?? "binary:logistic" },
    },
  };
}

function compiled(format: string, model: unknown, options = {}): CompiledModel {
  const result = compileModel(format, model, options);
  if (!result.ok) throw new Error(`${result.problem.path}: ${result.problem.message}`);
  return result.model;
}

function problemsOf(format: string, model: unknown, options = {}): ModelProblem[] {
  const result = compileModel(format, model, options);
  if (result.ok) throw new Error("expected the model file to be refused");
  return result.problems;
}

function problemOf(format: string, model: unknown, options = {}): ModelProblem {
  const result = compileModel(format, model, options);
  if (result.ok) throw new Error("expected the model file to be refused");
  return result.problem;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** XGBoost's margins (predict with output_margin=True) for rows of features a and b. */
function xgbMargins(format: string, model: unknown, rows: number[][]): number[] {
  const parsed =
    format === "xgboost-json" ? parseXgboostJson(model) : parseXgboostDump(model, ["a", "b"]);
  const ensemble = new TreeEnsemble({ ...parsed.spec, link: "identity", featureCount: 2 });
  const out = new Float64Array(rows.length * ensemble.width);
  ensemble.predict(Float32Array.from(rows.flat()), rows.length, out);
  return [...out];
}

/** A one-split dump tree: a < 0.5 goes to leaf `low`, else `high`; missing goes left. */
function dumpStump(low: number, high: number) {
  return {
    nodeid: 0,
    depth: 0,
    split: "a",
    split_condition: 0.5,
    yes: 1,
    no: 2,
    missing: 1,
    children: [
      { nodeid: 1, leaf: low },
      { nodeid: 2, leaf: high },
    ],
  };
}

describe("XGBoost evaluation", () => {
  const model = compiled("xgboost-json", xgbJson({}));

  it("adds the leaf to the base margin and applies the logistic link", () => {
    const out = model.predict(Float64Array.of(0.2, 0, 0.9, 0), 2);
    expect(out[1]).toBeCloseTo(sigmoid(-0.4), 6);
    expect(out[0]).toBeCloseTo(1 - sigmoid(-0.4), 6);
    expect(out[3]).toBeCloseTo(sigmoid(0.3), 6);
  });

  it("sends a missing value the split's default way", () => {
    const left = model.predict(Float64Array.of(Number.NaN, 0), 1);
    expect(left[1]).toBeCloseTo(sigmoid(-0.4), 6);
    const rightByDefault = compiled(
      "xgboost-json",
      xgbJson({ trees: [stump(0, 0.5, -0.4, 0.3, 0)] }),
    );
    expect(rightByDefault.predict(Float64Array.of(Number.NaN, 0), 1)[1]).toBeCloseTo(
      sigmoid(0.3),
      6,
    );
  });

  it("compares inputs as 32-bit floats, as XGBoost does", () => {
    // 0.1000000005 < 0.1f in double precision, but rounds to 0.1f: not less, so right.
    const threshold = Math.fround(0.1);
    const m = compiled("xgboost-json", xgbJson({ trees: [stump(0, threshold, -0.4, 0.3)] }));
    expect(0.1000000005 < threshold).toBe(true);
    expect(m.predict(Float64Array.of(0.1000000005, 0), 1)[1]).toBeCloseTo(sigmoid(0.3), 6);
    expect(m.predict(Float64Array.of(0.0999999, 0), 1)[1]).toBeCloseTo(sigmoid(-0.4), 6);
  });

  it("turns base_score into a margin per objective", () => {
    const poisson = compiled(
      "xgboost-json",
      xgbJson({ objective: "count:poisson", baseScore: "2E0" }),
    );
    expect(poisson.predict(Float64Array.of(0.9, 0), 1)[0]).toBeCloseTo(2 * Math.exp(0.3), 5);
    // XGBoost 3 writes base_score as a bracketed list.
    const squared = compiled(
      "xgboost-json",
      xgbJson({ objective: "reg:squarederror", baseScore: "[1.5E0]" }),
    );
    expect(squared.predict(Float64Array.of(0.9, 0), 1)[0]).toBeCloseTo(1.8, 6);
  });

  it("gives each tree to its class group under multi:softprob", () => {
    const m = compiled(
      "xgboost-json",
      xgbJson({
        objective: "multi:softprob",
        numClass: "3",
        trees: [stump(0, 0.5, 1, 0), stump(1, 0.5, 0, 2), stump(0, 0.5, 0, 0)],
        treeInfo: [0, 1, 2],
      }),
    );
    const out = m.predict(Float64Array.of(0.2, 0.9), 1);
    const e = [Math.exp(1.5), Math.exp(2.5), Math.exp(0.5)];
    const sum = e.reduce((a, b) => a + b);
    expect([...out].map((p) => Number(p.toFixed(6)))).toEqual(
      e.map((v) => Number((v / sum).toFixed(6))),
    );
  });

  it("weights DART trees by weight_drop", () => {
    const base = xgbJson({ objective: "reg:squarederror", baseScore: "0E0" });
    const dart = {
      ...base,
      learner: {
        ...base.learner,
        gradient_booster: {
          name: "dart",
          gbtree: base.learner.gradient_booster,
          weight_drop: [0.5],
        },
      },
    };
    expect(compiled("xgboost-json", dart).predict(Float64Array.of(0.9, 0), 1)[0]).toBeCloseTo(
      0.15,
      6,
    );
  });
});

// Expected values are XGBoost 1.7.4's own, from Booster.predict on these models
// loaded with Booster.load_model.
describe("XGBoost parity, to the float", () => {
  it("sums leaves as the 32-bit floats XGBoost stores, not the decimals the file spells", () => {
    // 0.024 + 0.901 - 0.712 summed from the doubles rounds one unit away.
    const model = xgbJson({
      objective: "reg:squarederror",
      baseScore: "0E0",
      trees: [
        stump(0, 0.5, 0.024, -0.024),
        stump(0, 0.5, 0.901, -0.901),
        stump(1, 0.5, -0.712, 0.712),
      ],
    });
    expect(compiled("xgboost-json", model).predict(Float64Array.of(0.2, 0.2), 1)[0]).toBe(
      0.21299999952316284,
    );
    const dump = {
      objective: "reg:squarederror",
      baseScore: 0,
      trees: [dumpStump(0.024, -0.024), dumpStump(0.901, -0.901), dumpStump(-0.712, 0.712)],
    };
    expect(xgbMargins("xgboost-dump", dump, [[0.2, 0.2]])).toEqual([0.21299999952316284]);
  });

  it("weights DART trees by the 32-bit weight_drop", () => {
    const model = xgbJson({
      objective: "reg:squarederror",
      baseScore: "0E0",
      trees: [stump(0, 0.5, 0.628, -0.628)],
      weightDrop: [0.3643],
    });
    expect(xgbMargins("xgboost-json", model, [[0.2, 0.2]])).toEqual([0.22878041863441467]);
  });

  it("turns base_score into the base margin in single precision", () => {
    const model = xgbJson({ baseScore: "1.20526314E-1", trees: [stump(0, 0.5, 0, 0)] });
    expect(xgbMargins("xgboost-json", model, [[0.2, 0.2]])).toEqual([-1.9874556064605713]);
    expect(compiled("xgboost-json", model).predict(Float64Array.of(0.2, 0.2), 1)[1]).toBe(
      0.12052630633115768,
    );
  });

  it("computes softmax in single precision, as XGBoost's predict does", () => {
    const model = xgbJson({
      objective: "multi:softprob",
      numClass: "3",
      trees: [stump(0, 0.5, -1.657, 0), stump(0, 0.5, -1.053, 0), stump(0, 0.5, 1.205, 0)],
      treeInfo: [0, 1, 2],
    });
    expect(xgbMargins("xgboost-json", model, [[0.2, 0.2]])).toEqual([
      -1.156999945640564, -0.5529999732971191, 1.7050000429153442,
    ]);
    // A double-precision softmax rounds the first to 0.049198297... instead.
    expect([...compiled("xgboost-json", model).predict(Float64Array.of(0.2, 0.2), 1)]).toEqual([
      0.049198299646377563, 0.09000445157289505, 0.8607972860336304,
    ]);
  });

  it("keeps a very negative margin's probability above 0, as XGBoost's sigmoid does", () => {
    const model = xgbJson({ trees: [stump(0, 0.5, -100, 100)] });
    const out = compiled("xgboost-json", model).predict(Float64Array.of(0.2, 0, 0.9, 0), 2);
    expect(out[1]).toBe(3.006635794144578e-39);
    expect(out[3]).toBe(1);
  });
});

describe("XGBoost dumps as XGBoost hands them out", () => {
  const trees = [dumpStump(-0.4, 0.3)];

  it("takes baseScore as a number or as save_config spells it", () => {
    for (const baseScore of [0.5, "5E-1", "[5E-1]", " 5.0E-1 "]) {
      const m = compiled(
        "xgboost-dump",
        { objective: "binary:logistic", baseScore, trees },
        {
          features: ["a", "b"],
        },
      );
      expect(m.predict(Float64Array.of(0.9, 0), 1)[1]).toBe(Math.fround(sigmoid(0.3)));
    }
    const poisson = { objective: "count:poisson", baseScore: "[2E0]", trees };
    expect(xgbMargins("xgboost-dump", poisson, [[0.9, 0]])).toEqual([
      Math.fround(Math.fround(Math.log(2)) + Math.fround(0.3)),
    ]);
  });

  it("takes get_dump's strings as they are, and numClass as save_config spells it", () => {
    const strings = {
      objective: "multi:softprob",
      baseScore: "5E-1",
      numClass: "3",
      trees: [dumpStump(1, 0), dumpStump(0, 2), dumpStump(0, 0)].map((t) => JSON.stringify(t)),
    };
    const parsed = { ...strings, numClass: 3, trees: strings.trees.map((t) => JSON.parse(t)) };
    const options = { features: ["a", "b"] };
    const x = Float64Array.of(0.2, 0.9);
    expect([...compiled("xgboost-dump", strings, options).predict(x, 1)]).toEqual([
      ...compiled("xgboost-dump", parsed, options).predict(x, 1),
    ]);
    expect(xgbMargins("xgboost-dump", strings, [[0.2, 0.9]])).toEqual([1.5, 0.5, 0.5]);
  });

  it("names every problem in the file at once", () => {
    const p = problemOf(
      "xgboost-dump",
      {
        objective: "binary:logistic",
        baseScore: "half",
        trees: [dumpStump(-0.4, 0.3), "0:[a<0.5] yes=1,no=2,missing=1", { nodeid: 0, leaf: "x" }],
      },
      { features: ["a", "b"] },
    );
    expect(p.path).toBe("model");
    expect(p.message).toBe(
      "has 3 problems: baseScore 'half' is not a number, nor a bracketed list of numbers; " +
        'trees[1] is in get_dump\'s text format; dump with dump_format="json"; ' +
        "trees[2].leaf must be a finite number",
    );
    const header = problemOf("xgboost-dump", { objective: "multi:softprob", trees: 3 });
    expect(header.message).toBe(
      "has 3 problems: numClass is required for multi:softprob: the number of classes; " +
        'baseScore is required: the learner\'s base_score, as save_config reports it (e.g. "5E-1"); ' +
        "trees must be an array",
    );
  });

  it("says what a bare get_dump list lacks", () => {
    const p = problemOf("xgboost-dump", [dumpStump(-0.4, 0.3)], { features: ["a", "b"] });
    expect(p.path).toBe("model");
    expect(p.message).toMatch(
      /bare list of trees; give \{ objective, baseScore, numClass\?, trees \}/,
    );
  });

  it("refuses a base score outside the objective's domain, saying which", () => {
    const p = problemOf("xgboost-dump", { objective: "binary:logistic", baseScore: "1E0", trees });
    expect(p).toEqual({
      path: "model.baseScore",
      message: "1 will not do: binary:logistic needs a base score between 0 and 1 (exclusive)",
    });
  });
});

describe("model files refused with the place and the reason", () => {
  it("names an unknown objective and lists the supported ones", () => {
    const p = problemOf("xgboost-json", xgbJson({ objective: "rank:pairwise" }));
    expect(p.path).toBe("model.learner.objective.name");
    expect(p.message).toMatch(/'rank:pairwise' is not supported.*binary:logistic/);
  });

  it("names a child that references a node the tree does not have", () => {
    const tree = stump(0, 0.5, -0.4, 0.3);
    tree.right_children = [7, -1, -1];
    const p = problemOf("xgboost-json", xgbJson({ trees: [tree] }));
    expect(p.path).toBe("model.learner.gradient_booster.model.trees[0].right_children[0]");
    expect(p.message).toMatch(/references node 7, but the tree has nodes 0 to 2/);
  });

  it("refuses a tree that loops back to a node", () => {
    const tree = stump(0, 0.5, -0.4, 0.3);
    tree.left_children = [1, 0, -1];
    tree.right_children = [2, 2, -1];
    const p = problemOf("xgboost-json", xgbJson({ trees: [tree] }));
    expect(p.message).toMatch(/a second time/);
  });

  it("refuses a split on a feature the model does not have", () => {
    const p = problemOf("xgboost-json", xgbJson({ trees: [stump(5, 0.5, -0.4, 0.3)] }));
    expect(p.path).toBe("model.learner.gradient_booster.model.trees[0].split_indices[0]");
    expect(p.message).toMatch(/feature 5/);
  });

  it("refuses categorical splits, gblinear and vector leaves", () => {
    const categorical = stump(0, 0.5, -0.4, 0.3);
    categorical.split_type = [1, 0, 0];
    expect(problemOf("xgboost-json", xgbJson({ trees: [categorical] })).message).toMatch(
      /categorical/,
    );
    expect(problemOf("xgboost-json", xgbJson({ booster: "gblinear" })).message).toMatch(
      /booster 'gblinear' is not supported/,
    );
    const vector = stump(0, 0.5, -0.4, 0.3);
    vector.tree_param.size_leaf_vector = "3";
    expect(problemOf("xgboost-json", xgbJson({ trees: [vector] })).message).toMatch(
      /vector leaves/,
    );
  });

  it("asks for feature names when the file has none, and refuses ones that disagree", () => {
    const unnamed = xgbJson({ featureNames: [] });
    expect(problemOf("xgboost-json", unnamed).path).toBe("features");
    expect(compiled("xgboost-json", unnamed, { features: ["x", "y"] }).features).toEqual([
      "x",
      "y",
    ]);
    expect(problemOf("xgboost-json", xgbJson({}), { features: ["b", "a"] }).message).toMatch(
      /differ from the feature names in the model file/,
    );
    expect(problemOf("xgboost-json", unnamed, { features: ["x"] }).message).toMatch(
      /names 1 features, but the model has 2/,
    );
  });

  it("refuses an XGBoost dump whose split points at a missing node", () => {
    const dump = {
      objective: "binary:logistic",
      baseScore: 0.5,
      trees: [
        {
          nodeid: 0,
          depth: 0,
          split: "a",
          split_condition: 0.5,
          yes: 1,
          no: 9,
          missing: 1,
          children: [{ nodeid: 1, leaf: -0.4 }],
        },
      ],
    };
    const p = problemOf("xgboost-dump", dump, { features: ["a", "b"] });
    expect(p.path).toBe("model.trees[0].no");
    expect(p.message).toMatch(/references node 9/);
    // The file's own problems come first; then the features it needs beside it.
    expect(problemOf("xgboost-dump", dump).path).toBe("model.trees[0].no");
    const sound = { ...dump, trees: [dumpStump(-0.4, 0.3)] };
    expect(problemOf("xgboost-dump", sound).path).toBe("features");
  });

  it("reads an XGBoost dump with named and numbered splits", () => {
    const tree = (split: string) => ({
      nodeid: 0,
      split,
      split_condition: 0.5,
      yes: 2,
      no: 1,
      missing: 1,
      children: [
        { nodeid: 2, leaf: -0.4 },
        { nodeid: 1, leaf: 0.3 },
      ],
    });
    const m = compiled(
      "xgboost-dump",
      { objective: "reg:squarederror", baseScore: 0, trees: [tree("b"), tree("f0")] },
      { features: ["a", "b"] },
    );
    // b=0.2 < 0.5 -> yes (-0.4); a=0.9 -> no (0.3); missing a -> 'missing' = no.
    expect(m.predict(Float64Array.of(0.9, 0.2), 1)[0]).toBeCloseTo(-0.1, 6);
    expect(m.predict(Float64Array.of(Number.NaN, 0.9), 1)[0]).toBeCloseTo(0.6, 6);
  });

  it("refuses scikit-learn files with mismatched shapes", () => {
    const linear = {
      features: ["a", "b"],
      coef: [[1, 2, 3]],
      intercept: [0],
      classes: [0, 1],
    };
    const p = problemOf("sklearn-linear", linear);
    expect(p).toEqual({ path: "model.coef[0]", message: "holds 3 coefficients for 2 features" });
    const trees = {
      features: ["a"],
      classes: ["x", "y", "z"],
      combine: "mean",
      link: "identity",
      trees: [
        {
          childrenLeft: [1, -1, -1],
          childrenRight: [2, -1, -1],
          feature: [0, -2, -2],
          threshold: [0.5, -2, -2],
          value: [
            [0.3, 0.3, 0.4],
            [1, 0],
            [0, 0, 1],
          ],
        },
      ],
    };
    expect(problemOf("sklearn-trees", trees)).toEqual({
      path: "model.trees[0].value[1]",
      message: "holds 2 values, but a leaf of this tree needs 3",
    });
    expect(problemOf("sklearn-trees", { ...trees, link: "probit" }).path).toBe("model.link");
  });

  it("names every problem in a scikit-learn linear file at once, not the first", () => {
    const file = {
      estimator: "LogisticRegression",
      features: ["a", "b", "a"],
      coef: [
        [1, 2],
        [1, "x", 3],
      ],
      intercept: [0, 0, 0],
      classes: ["no", "yes"],
      multiClass: "one-vs-one",
    };
    expect(problemsOf("sklearn-linear", file)).toEqual([
      { path: "model.features[2]", message: "repeats feature 'a'" },
      { path: "model.coef[1][1]", message: "must be a finite number" },
      { path: "model.multiClass", message: "must be 'multinomial' or 'ovr'" },
      { path: "model.coef", message: "holds 2 rows; a binary classifier has one" },
      { path: "model.intercept", message: "holds 3 values for 1 outputs" },
    ]);
    // With the features readable, each row is measured against them.
    expect(problemsOf("sklearn-linear", { ...file, features: ["a", "b", "c"] })).toContainEqual({
      path: "model.coef[0]",
      message: "holds 2 coefficients for 3 features",
    });
  });

  it("says where scikit-learn's attribute names go in a linear file, and points at the exporter", () => {
    const attributes = {
      feature_names_in_: ["a", "b"],
      coef_: [[0.5, -1]],
      intercept_: [0.1],
      classes_: ["no", "yes"],
    };
    const exporter = "(scripts/export/sklearn_export.py writes this file from a fitted estimator)";
    expect(problemsOf("sklearn-linear", attributes)).toEqual([
      {
        path: "model.features",
        message: `is missing: the file has 'feature_names_in_', which this format names 'features' ${exporter}`,
      },
      {
        path: "model.classes",
        message: `is missing: the file has 'classes_', which this format names 'classes' ${exporter}`,
      },
      {
        path: "model.coef",
        message: `is missing: the file has 'coef_', which this format names 'coef' ${exporter}`,
      },
      {
        path: "model.intercept",
        message: `is missing: the file has 'intercept_', which this format names 'intercept' ${exporter}`,
      },
    ]);
    expect(problemsOf("sklearn-linear", {})).toEqual(
      ["features", "coef", "intercept"].map((field) => ({
        path: `model.${field}`,
        message: `is missing ${exporter}`,
      })),
    );
    // The shape the exporter writes is accepted.
    const exported = compiled("sklearn-linear", {
      estimator: "LogisticRegression",
      features: ["a", "b"],
      coef: [[0.5, -1]],
      intercept: [0.1],
      classes: ["no", "yes"],
    });
    expect(exported.predict(Float64Array.of(2, 1), 1)[1]).toBeCloseTo(sigmoid(0.1), 12);
  });

  it("names every problem in a scikit-learn tree file's fields at once", () => {
    const tree = {
      childrenLeft: [1, -1, -1],
      childrenRight: [2, -1, -1],
      feature: [0, -2, -2],
      threshold: [0.5, -2, -2],
      value: [[0.5], [0.2], [0.8]],
    };
    const problems = problemsOf("sklearn-trees", {
      features: ["a"],
      combine: "median",
      link: "identity",
      base: [0, 0],
      trees: [tree, { ...tree, output: 3, childrenRight: "none" }],
    });
    expect(problems).toEqual([
      { path: "model.combine", message: "must be 'mean' or 'sum'" },
      { path: "model.base", message: "holds 2 values for 1 outputs" },
      { path: "model.trees[1].output", message: "names output 3, but the model has 1" },
      { path: "model.trees[1].childrenRight", message: "must be an array" },
    ]);
  });

  it("refuses an unknown format", () => {
    expect(problemOf("onnx", {})).toMatchObject({ path: "format" });
  });
});

describe("scikit-learn evaluation", () => {
  it("goes left when the float32 input is <= the float64 threshold", () => {
    const tree = (threshold: number) => ({
      features: ["a"],
      combine: "sum",
      link: "identity",
      trees: [
        {
          childrenLeft: [1, -1, -1],
          childrenRight: [2, -1, -1],
          feature: [0, -2, -2],
          threshold: [threshold, -2, -2],
          value: [[0], [1], [2]],
        },
      ],
    });
    const exact = compiled("sklearn-trees", tree(0.5));
    expect(exact.predict(Float64Array.of(0.5), 1)[0]).toBe(1);
    expect(exact.predict(Float64Array.of(0.50000001), 1)[0]).toBe(1); // rounds to 0.5f
    expect(exact.predict(Float64Array.of(0.5000001), 1)[0]).toBe(2);
    // float32(0.1) is above the double 0.1, so 0.1 goes right.
    expect(compiled("sklearn-trees", tree(0.1)).predict(Float64Array.of(0.1), 1)[0]).toBe(2);
  });

  it("computes binary, multinomial and one-vs-rest logistic regression", () => {
    const binary = compiled("sklearn-linear", {
      features: ["a", "b"],
      coef: [[0.5, -1]],
      intercept: [0.25],
      classes: ["no", "yes"],
    });
    const z = 0.5 * 2 - 1 * 3 + 0.25;
    expect([...binary.predict(Float64Array.of(2, 3), 1)]).toEqual([1 - sigmoid(z), sigmoid(z)]);
    const coef = [
      [1, 0],
      [0, 1],
      [1, 1],
    ];
    const multinomial = compiled("sklearn-linear", {
      features: ["a", "b"],
      coef,
      intercept: [0, 0, -1],
      classes: [0, 1, 2],
    });
    const margins = [2, 3, 4];
    const e = margins.map(Math.exp);
    const total = e.reduce((a, b) => a + b);
    const soft = multinomial.predict(Float64Array.of(2, 3), 1);
    for (const [k, v] of e.entries()) expect(soft[k]).toBeCloseTo(v / total, 12);
    const ovr = compiled("sklearn-linear", {
      features: ["a", "b"],
      coef,
      intercept: [0, 0, -1],
      classes: [0, 1, 2],
      multiClass: "ovr",
    });
    const s = margins.map(sigmoid);
    const sum = s.reduce((a, b) => a + b);
    const out = ovr.predict(Float64Array.of(2, 3), 1);
    for (const [k, v] of s.entries()) expect(out[k]).toBeCloseTo(v / sum, 12);
  });
});

describe("float32Above", () => {
  it("is the smallest float32 above its argument", () => {
    for (const t of [0.1, 0.5, -0.1, 1e-40, -1e-40, 3.4e38, 123456.789, 0, -0]) {
      const above = float32Above(t);
      expect(above).toBeGreaterThan(t);
      expect(Math.fround(above)).toBe(above);
      // Nothing float32 lies strictly between.
      const below = new Float32Array([above]);
      const bits = new Int32Array(below.buffer);
      const step = bits[0] ?? 0;
      bits[0] = above > 0 ? step - 1 : step + 1;
      expect((below[0] ?? Number.NaN) <= t).toBe(true);
    }
    expect(float32Above(Number.POSITIVE_INFINITY)).toBe(Number.POSITIVE_INFINITY);
  });
});

describe("a compiled model against the model it serves", () => {
  const schema: InputSchema = {
    type: "object",
    properties: {
      a: { type: "number" },
      b: { type: "integer" },
      country: { type: "string" },
    },
    required: ["a"],
  };
  const linear = compiled("sklearn-linear", {
    features: ["a", "b"],
    coef: [[0.5, -1]],
    intercept: [0.25],
    classes: ["no", "yes"],
  });
  const spec = { task: "classification" as const, classes: ["no", "yes"], positiveClass: "yes" };

  it("refuses features the schema lacks, string features and optional ones a model needs", () => {
    expect(bindingProblems(linear, { ...spec, inputSchema: schema })).toEqual([
      {
        path: "features",
        message:
          "feature 'b' may be left out by callers (not in the input schema's required list), but this model cannot take missing values",
      },
    ]);
    const other = compiled("sklearn-linear", {
      features: ["a", "zip", "country"],
      coef: [[0.5, -1, 1]],
      intercept: [0.25],
      classes: ["no", "yes"],
    });
    const messages = bindingProblems(other, { ...spec, inputSchema: schema }).map((p) => p.message);
    expect(messages).toEqual([
      "the model file uses feature 'zip', which the model's input schema lacks",
      "feature 'country' is a string in the input schema; builtin models take numbers and booleans",
    ]);
  });

  it("refuses another task or other classes", () => {
    const required = { ...schema, required: ["a", "b"] };
    expect(bindingProblems(linear, { ...spec, inputSchema: required })).toEqual([]);
    expect(
      bindingProblems(linear, {
        task: "regression",
        classes: null,
        positiveClass: null,
        inputSchema: required,
      })[0]?.message,
    ).toMatch(/is a classification model, but the model it serves is regression/);
    expect(
      bindingProblems(linear, { ...spec, classes: ["no", "maybe"], inputSchema: required })[0]
        ?.path,
    ).toBe("classes");
  });

  it("predicts in canonical form, with the positive class's score and the threshold", () => {
    const rows = [
      { a: 2, b: 3 },
      { a: 10, b: 0 },
    ];
    const result = predictBuiltin(linear, spec, rows, 0.9);
    if (!result.ok) throw new Error(result.reason);
    const z0 = 0.5 * 2 - 3 + 0.25;
    expect(result.predictions[0]).toEqual({ label: "no", score: sigmoid(z0) });
    expect(result.predictions[1]).toMatchObject({ label: "yes" });
    // The positive class may be the first of the file's classes.
    const flipped = predictBuiltin(linear, { ...spec, positiveClass: "no" }, rows);
    if (!flipped.ok) throw new Error(flipped.reason);
    expect(flipped.predictions[0]).toEqual({ label: "no", score: 1 - sigmoid(z0) });
  });

  it("reports a missing value the model cannot take instead of guessing", () => {
    const result = predictBuiltin(linear, spec, [{ a: 1, b: null }]);
    expect(result).toEqual({
      ok: false,
      reason: "row 0: feature 'b' is missing, and this model cannot take missing values",
    });
  });
});
