/**
 * XGBoost models, from the two things XGBoost writes:
 * - `xgboost-json`: the file `Booster.save_model("model.json")` writes, as is
 *   (XGBoost 1.x to 3.x layouts; gbtree and dart boosters);
 * - `xgboost-dump`: `{ objective, baseScore, numClass?, trees }` where `trees`
 *   is `Booster.get_dump(dump_format="json")`: its strings as they are, or
 *   each parsed (as `dump_model(..., dump_format="json")` writes them), and
 *   `baseScore` is the learner's `base_score` as XGBoost reports it (in output
 *   space: a probability for binary:logistic), a number or XGBoost's own
 *   string ("5E-1", or "[5E-1]" from XGBoost 3); `numClass` likewise.
 *
 * Evaluation follows XGBoost's predictor (see `TreeEnsemble`, `float32`):
 * inputs, thresholds, leaves and the base margin are 32-bit floats, a row goes
 * left when `x < split_condition`, a missing value (null or absent) takes the
 * split's default direction, leaves are summed in single precision, and the
 * objective's transform runs in single precision as XGBoost's does.
 */
import type { EnsembleSpec, SourceTree } from "./ensemble";
import type { Link } from "./link";
import {
  arrayAt,
  integerAt,
  isObject,
  ModelFileProblem,
  numberAt,
  numbersAt,
  objectAt,
  problem,
  stringAt,
  upstreamProblem,
} from "./problem";

export interface Objective {
  task: "classification" | "regression";
  link: Link;
  /**
   * From base_score (output space) to the base margin, as XGBoost's
   * `ProbToMargin` computes it: in single precision, `Math.fround` standing
   * for each float operation.
   */
  margin: (baseScore: number) => number;
  /** The base scores the margin is defined for, in words. */
  domain: string;
}

const f32 = Math.fround;

/** XGBoost's `ProbToMargin` per objective family, and the base scores it takes. */
const baseMargin = {
  identity: { margin: (p: number) => f32(p), domain: "within a 32-bit float's range" },
  /** `-logf(1.0f / p - 1.0f)` */
  logit: {
    margin: (p: number) => -f32(Math.log(f32(f32(1 / f32(p)) - 1))),
    domain: "between 0 and 1 (exclusive)",
  },
  /** `std::log(float)` */
  log: { margin: (p: number) => f32(Math.log(f32(p))), domain: "above 0" },
} satisfies Record<string, Pick<Objective, "margin" | "domain">>;

const objectives: Record<string, Objective> = {
  "binary:logistic": { task: "classification", link: "logistic", ...baseMargin.logit },
  "multi:softprob": { task: "classification", link: "softmax", ...baseMargin.identity },
  "multi:softmax": { task: "classification", link: "softmax", ...baseMargin.identity },
  "reg:squarederror": { task: "regression", link: "identity", ...baseMargin.identity },
  "reg:linear": { task: "regression", link: "identity", ...baseMargin.identity },
  "reg:squaredlogerror": { task: "regression", link: "identity", ...baseMargin.identity },
  "reg:pseudohubererror": { task: "regression", link: "identity", ...baseMargin.identity },
  "reg:absoluteerror": { task: "regression", link: "identity", ...baseMargin.identity },
  "reg:logistic": { task: "regression", link: "sigmoid", ...baseMargin.logit },
  "count:poisson": { task: "regression", link: "exp", ...baseMargin.log },
  "reg:gamma": { task: "regression", link: "exp", ...baseMargin.log },
  "reg:tweedie": { task: "regression", link: "exp", ...baseMargin.log },
};

export const supportedObjectives = Object.keys(objectives);

export function objectiveOf(name: string, path: string): Objective {
  const objective = objectives[name];
  if (!objective) {
    problem(
      path,
      `objective '${name}' is not supported; supported objectives: ${supportedObjectives.join(", ")}`,
    );
  }
  return objective;
}

export interface ParsedEnsemble {
  task: "classification" | "regression";
  /** Feature names in column order, when the file names them. */
  features: string[] | null;
  featureCount: number;
  /** Number of classes (classification), 1 for regression. */
  classCount: number;
  spec: Omit<EnsembleSpec, "featureCount">;
}

/**
 * A number as XGBoost writes its model parameters: a string ("5E-1", or a
 * bracketed list "[5E-1]" or "[5E-1,5E-1]" from 3.0 on), or a plain number.
 */
function parameterNumbers(value: unknown, path: string): number[] {
  if (typeof value === "number") {
    if (!Number.isFinite(value)) problem(path, "must be a finite number");
    return [value];
  }
  if (typeof value !== "string") {
    problem(path, 'must be a number, or a string as XGBoost writes one ("5E-1", "[5E-1]")');
  }
  const text = value.trim();
  const inner = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const parts = inner.split(",").map((part) => part.trim());
  const numbers = parts.map((part) => (part === "" ? Number.NaN : Number(part)));
  if (numbers.some((n) => !Number.isFinite(n))) {
    problem(path, `'${value}' is not a number, nor a bracketed list of numbers`);
  }
  return numbers;
}

function parameterInteger(value: unknown, path: string): number {
  const numbers = parameterNumbers(value, path);
  const [n] = numbers;
  if (numbers.length !== 1 || n === undefined || !Number.isInteger(n) || n < 0) {
    problem(path, "must be a whole number");
  }
  return n;
}

/** `Booster.save_model` JSON. */
export function parseXgboostJson(model: unknown): ParsedEnsemble {
  const root = objectAt(model, "");
  const learner = objectAt(root.learner, "learner");
  const objectiveName = stringAt(
    objectAt(learner.objective, "learner.objective").name,
    "learner.objective.name",
  );
  const objective = objectiveOf(objectiveName, "learner.objective.name");
  const params = objectAt(learner.learner_model_param, "learner.learner_model_param");
  const featureCount = parameterInteger(
    params.num_feature,
    "learner.learner_model_param.num_feature",
  );
  const numClass = parameterInteger(
    params.num_class ?? "0",
    "learner.learner_model_param.num_class",
  );
  if (params.num_target !== undefined) {
    const targets = parameterInteger(params.num_target, "learner.learner_model_param.num_target");
    if (targets > 1)
      problem("learner.learner_model_param.num_target", "multi-target models are not supported");
  }
  const margins = objective.link === "softmax" ? numClass : 1;
  if (objective.link === "softmax" && numClass < 2) {
    problem("learner.learner_model_param.num_class", `must be at least 2 for ${objectiveName}`);
  }
  const baseScores = parameterNumbers(params.base_score, "learner.learner_model_param.base_score");
  const base = expandBase(
    baseScores,
    margins,
    objectiveName,
    objective,
    "learner.learner_model_param.base_score",
  );

  const booster = objectAt(learner.gradient_booster, "learner.gradient_booster");
  const boosterName = stringAt(booster.name, "learner.gradient_booster.name");
  let gbtree: Record<string, unknown>;
  let gbtreePath: string;
  let weights: number[] | null = null;
  if (boosterName === "gbtree") {
    gbtree = booster;
    gbtreePath = "learner.gradient_booster";
  } else if (boosterName === "dart") {
    gbtree = objectAt(booster.gbtree, "learner.gradient_booster.gbtree");
    gbtreePath = "learner.gradient_booster.gbtree";
    weights = numbersAt(booster.weight_drop, "learner.gradient_booster.weight_drop");
  } else {
    problem(
      "learner.gradient_booster.name",
      `booster '${boosterName}' is not supported; supported boosters: gbtree, dart`,
    );
  }
  const body = objectAt(gbtree.model, `${gbtreePath}.model`);
  const trees = arrayAt(body.trees, `${gbtreePath}.model.trees`);
  const treeInfo = numbersAt(body.tree_info, `${gbtreePath}.model.tree_info`);
  if (treeInfo.length !== trees.length) {
    problem(
      `${gbtreePath}.model.tree_info`,
      `has ${treeInfo.length} entries for ${trees.length} trees`,
    );
  }
  if (weights && weights.length !== trees.length) {
    problem(
      "learner.gradient_booster.weight_drop",
      `has ${weights.length} weights for ${trees.length} trees`,
    );
  }

  const sources = trees.map((raw, t): SourceTree => {
    const path = `${gbtreePath}.model.trees[${t}]`;
    const tree = objectAt(raw, path);
    const param = objectAt(tree.tree_param, `${path}.tree_param`);
    if (
      param.size_leaf_vector !== undefined &&
      parameterInteger(param.size_leaf_vector, `${path}.tree_param.size_leaf_vector`) > 1
    ) {
      problem(
        `${path}.tree_param.size_leaf_vector`,
        "vector leaves (multi-target trees) are not supported",
      );
    }
    const left = numbersAt(tree.left_children, `${path}.left_children`);
    const splitType =
      tree.split_type === undefined ? [] : numbersAt(tree.split_type, `${path}.split_type`);
    const categorical = splitType.findIndex((type) => type !== 0);
    if (categorical >= 0) {
      problem(`${path}.split_type[${categorical}]`, "categorical splits are not supported");
    }
    const conditions = numbersAt(tree.split_conditions, `${path}.split_conditions`);
    const group = treeInfo[t] as number;
    if (!Number.isInteger(group) || group < 0 || group >= margins) {
      problem(
        `${gbtreePath}.model.tree_info[${t}]`,
        `names output group ${group}, but the model has ${margins}`,
      );
    }
    return {
      path,
      fields: {
        left: "left_children",
        right: "right_children",
        feature: "split_indices",
        threshold: "split_conditions",
        value: "split_conditions",
      },
      left,
      right: numbersAt(tree.right_children, `${path}.right_children`),
      feature: numbersAt(tree.split_indices, `${path}.split_indices`),
      threshold: conditions,
      defaultLeft: defaultDirections(tree.default_left, `${path}.default_left`),
      leaf: (node) => [conditions[node] as number],
      output: group,
      weight: weights ? (weights[t] as number) : 1,
    };
  });

  const names =
    learner.feature_names === undefined
      ? []
      : arrayAt(learner.feature_names, "learner.feature_names");
  let features: string[] | null = null;
  if (names.length > 0) {
    if (names.length !== featureCount) {
      problem(
        "learner.feature_names",
        `names ${names.length} features, but num_feature is ${featureCount}`,
      );
    }
    features = names.map((name, i) => stringAt(name, `learner.feature_names[${i}]`));
  }
  return xgboostEnsemble(objective, features, featureCount, margins, base, sources);
}

/** The base margin per output, from base_score: one value for all, or one per output. */
function expandBase(
  scores: number[],
  margins: number,
  objectiveName: string,
  objective: Objective,
  path: string,
): number[] {
  if (scores.length !== 1 && scores.length !== margins) {
    problem(path, `holds ${scores.length} values for ${margins} outputs`);
  }
  return Array.from({ length: margins }, (_, k) => {
    const score = scores.length === 1 ? (scores[0] as number) : (scores[k] as number);
    const margin = objective.margin(score);
    if (!Number.isFinite(margin)) {
      problem(
        path,
        `${score} will not do: ${objectiveName} needs a base score ${objective.domain}`,
      );
    }
    return margin;
  });
}

/** `default_left` is 0/1 numbers (XGBoost 1.x-3.x) or booleans. */
function defaultDirections(value: unknown, path: string): number[] {
  const items = arrayAt(value, path);
  return items.map((item, i) => {
    if (item === 0 || item === 1) return item;
    if (typeof item === "boolean") return item ? 1 : 0;
    return problem(`${path}[${i}]`, "must be 0, 1, true or false");
  });
}

interface DumpNode {
  id: number;
  path: string;
  split?: string;
  condition?: number;
  yes?: number;
  no?: number;
  missing?: number;
  leaf?: number;
}

/** A dump tree read for its structure, before its split names meet the features. */
interface DumpTree {
  path: string;
  nodes: Map<number, DumpNode>;
}

/** How many of a file's problems one refusal lists. */
const LISTED_PROBLEMS = 10;

/**
 * Problems with independent parts of a file, collected so that one refusal
 * names them all: one problem keeps its place; several are listed, each with
 * its place, under the file itself.
 */
class Problems {
  readonly #found: ModelFileProblem[] = [];

  /** Runs `read`; a problem it finds is kept, and the result is `undefined`. */
  check<T>(read: () => T): T | undefined {
    try {
      return read();
    } catch (error) {
      if (!(error instanceof ModelFileProblem) || error.scope !== "model") throw error;
      this.#found.push(error);
      return undefined;
    }
  }

  throwIfAny(): void {
    const found = this.#found;
    if (found.length === 1) throw found[0];
    if (found.length === 0) return;
    const listed = found.slice(0, LISTED_PROBLEMS).map((p) => `${p.path} ${p.message}`);
    const more = found.length - listed.length;
    problem(
      "",
      `has ${found.length} problems: ${listed.join("; ")}${more > 0 ? `; and ${more} more` : ""}`,
    );
  }
}

/**
 * `{ objective, baseScore, numClass?, trees }` with `trees` what
 * `get_dump(dump_format="json")` returns, its strings as they are or parsed.
 * Split features are named (`"split": "age"`) or numbered (`"f3"`);
 * `features` maps names to columns. Every problem in the file is named at
 * once; the features beside it are checked once the file is sound.
 */
export function parseXgboostDump(model: unknown, features: string[] | null): ParsedEnsemble {
  if (Array.isArray(model)) {
    problem(
      "",
      "is a bare list of trees; give { objective, baseScore, numClass?, trees } with the list as " +
        "trees: the dump leaves out the objective and base score (save_config has them)",
    );
  }
  const root = objectAt(model, "");
  const found = new Problems();
  const objectiveName = found.check(() => stringAt(root.objective, "objective"));
  const objective =
    objectiveName === undefined
      ? undefined
      : found.check(() => objectiveOf(objectiveName, "objective"));
  const margins =
    objective?.link === "softmax"
      ? found.check(() => {
          if (root.numClass === undefined) {
            problem("numClass", `is required for ${objectiveName}: the number of classes`);
          }
          const count = parameterInteger(root.numClass, "numClass");
          if (count < 2) problem("numClass", `must be at least 2 for ${objectiveName}`);
          return count;
        })
      : 1;
  const base = found.check(() => {
    if (root.baseScore === undefined) {
      problem(
        "baseScore",
        'is required: the learner\'s base_score, as save_config reports it (e.g. "5E-1")',
      );
    }
    const scores = parameterNumbers(root.baseScore, "baseScore");
    if (!objective || margins === undefined) return undefined;
    return expandBase(scores, margins, objectiveName as string, objective, "baseScore");
  });
  const trees = found.check(() => arrayAt(root.trees, "trees")) ?? [];
  const parsed = trees.map((raw, t) => found.check(() => readDumpTree(raw, `trees[${t}]`)));
  found.throwIfAny();
  if (!features) {
    upstreamProblem(
      "features",
      "an XGBoost dump does not list its features: give them in column order beside the model",
    );
  }
  const column = new Map(features.map((name, i) => [name, i]));
  const outputs = margins as number;
  const sources = parsed.map((tree, t) =>
    found.check(() => dumpSource(tree as DumpTree, t, outputs, column, features.length)),
  );
  found.throwIfAny();
  return xgboostEnsemble(
    objective as Objective,
    features,
    features.length,
    outputs,
    base as number[],
    sources as SourceTree[],
  );
}

/** One tree of the dump: an object, or get_dump's JSON string for it. */
function readDumpTree(raw: unknown, path: string): DumpTree {
  let tree = raw;
  if (typeof raw === "string") {
    try {
      tree = JSON.parse(raw);
    } catch {
      const text = raw.trimStart();
      problem(
        path,
        /^\d+:(\[|leaf=)/.test(text)
          ? 'is in get_dump\'s text format; dump with dump_format="json"'
          : 'is a string but not JSON: give get_dump(dump_format="json")\'s strings whole',
      );
    }
  }
  const nodes = new Map<number, DumpNode>();
  const stack: [unknown, string][] = [[tree, path]];
  while (stack.length > 0) {
    const [item, at] = stack.pop() as [unknown, string];
    const node = objectAt(item, at);
    const id = integerAt(node.nodeid, `${at}.nodeid`);
    if (id < 0) problem(`${at}.nodeid`, "must not be negative");
    if (nodes.has(id)) problem(`${at}.nodeid`, `repeats node ${id}`);
    if (node.leaf !== undefined) {
      nodes.set(id, { id, path: at, leaf: numberAt(node.leaf, `${at}.leaf`) });
      continue;
    }
    const split = stringAt(node.split, `${at}.split`);
    if (node.split_condition === undefined) {
      problem(`${at}.split_condition`, "is missing (categorical splits are not supported)");
    }
    nodes.set(id, {
      id,
      path: at,
      split,
      condition: numberAt(node.split_condition, `${at}.split_condition`),
      yes: integerAt(node.yes, `${at}.yes`),
      no: integerAt(node.no, `${at}.no`),
      missing: integerAt(node.missing, `${at}.missing`),
    });
    const children = node.children === undefined ? [] : arrayAt(node.children, `${at}.children`);
    for (const [i, child] of children.entries()) stack.push([child, `${at}.children[${i}]`]);
  }
  if (!nodes.has(0)) problem(path, "has no node 0 (the root)");
  for (const node of nodes.values()) {
    if (node.leaf !== undefined) continue;
    for (const [name, target] of [
      ["yes", node.yes],
      ["no", node.no],
    ] as const) {
      if (target === undefined || !nodes.has(target)) {
        problem(`${node.path}.${name}`, `references node ${target}, which the tree does not have`);
      }
    }
    if (node.missing !== node.yes && node.missing !== node.no) {
      problem(
        `${node.path}.missing`,
        `references node ${node.missing}, which is neither 'yes' nor 'no'`,
      );
    }
  }
  return { path, nodes };
}

/** A dump tree in the ensemble's layout, its split names resolved to columns. */
function dumpSource(
  tree: DumpTree,
  t: number,
  margins: number,
  column: Map<string, number>,
  featureCount: number,
): SourceTree {
  const { nodes, path } = tree;
  const size = Math.max(...nodes.keys()) + 1;
  const left = new Array<number>(size).fill(-1);
  const right = new Array<number>(size).fill(-1);
  const feature = new Array<number>(size).fill(0);
  const threshold = new Array<number>(size).fill(0);
  const defaultLeft = new Array<number>(size).fill(0);
  // Unused ids (XGBoost's pruned nodes) are leaves nobody reaches.
  const leaves = new Array<number>(size).fill(0);
  for (const node of nodes.values()) {
    if (node.leaf !== undefined) {
      leaves[node.id] = node.leaf;
      continue;
    }
    left[node.id] = node.yes as number;
    right[node.id] = node.no as number;
    defaultLeft[node.id] = node.missing === node.yes ? 1 : 0;
    threshold[node.id] = node.condition as number;
    feature[node.id] = resolveSplit(
      node.split as string,
      column,
      featureCount,
      `${node.path}.split`,
    );
  }
  return {
    path,
    fields: {
      left: "yes",
      right: "no",
      feature: "split",
      threshold: "split_condition",
      value: "leaf",
    },
    left,
    right,
    feature,
    threshold,
    defaultLeft,
    leaf: (node) => [leaves[node] as number],
    output: margins > 1 ? t % margins : 0,
    weight: 1,
  };
}

/** XGBoost's predictor: x < threshold goes left, 32-bit leaves summed in single precision. */
function xgboostEnsemble(
  objective: Objective,
  features: string[] | null,
  featureCount: number,
  margins: number,
  base: number[],
  trees: SourceTree[],
): ParsedEnsemble {
  return {
    task: objective.task,
    features,
    featureCount,
    classCount: objective.task === "classification" ? Math.max(margins, 2) : 1,
    spec: {
      margins,
      comparison: "lt",
      accumulate: "float32",
      combine: "sum",
      scale: 1,
      base,
      link: objective.link,
      trees,
    },
  };
}

function resolveSplit(
  split: string,
  column: Map<string, number>,
  count: number,
  path: string,
): number {
  const named = column.get(split);
  if (named !== undefined) return named;
  const numbered = /^f(\d+)$/.exec(split);
  if (numbered) {
    const index = Number(numbered[1]);
    if (index < count) return index;
    problem(path, `splits on feature ${split}, but the model has ${count} features`);
  }
  problem(path, `splits on feature '${split}', which is not among the model's features`);
}

export function isXgboostJson(model: unknown): boolean {
  return isObject(model) && isObject(model.learner);
}
