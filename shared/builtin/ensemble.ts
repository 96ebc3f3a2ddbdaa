/**
 * Tree ensembles in a compact, flat form: every node of every tree in a few
 * typed arrays, children of a split stored side by side, so evaluating a row
 * touches no objects. Built once per isolate from what the format parsers
 * read (XGBoost, scikit-learn) and checked on the way: a child that names a
 * node the tree does not have, a node reached twice (a loop or a shared
 * subtree), a feature out of range or a threshold that is not a number are
 * problems with the model file.
 */
import { applyLink, type Link, linkWidth } from "./link";
import { problem } from "./problem";

/** One tree as a format stores it: parallel arrays indexed by node id. */
export interface SourceTree {
  /** Where the tree is in the model file, for problems. */
  path: string;
  /** The names of the arrays below in the file, for problems. */
  fields: { left: string; right: string; feature: string; threshold: string; value: string };
  /** Left child per node; a negative number marks a leaf. */
  left: ArrayLike<number>;
  right: ArrayLike<number>;
  feature: ArrayLike<number>;
  threshold: ArrayLike<number>;
  /** Where a missing value goes at each split (true: left); absent when the model takes none. */
  defaultLeft?: ArrayLike<number | boolean> | undefined;
  /** The leaf's value(s): one number, or one per margin for trees that add to all margins. */
  leaf: (node: number) => ArrayLike<number>;
  /** The margin this tree adds to, or -1 when it adds to all of them (forests). */
  output: number;
  /** A multiplier on the tree's output (DART's weight_drop); 1 otherwise. */
  weight: number;
}

export interface EnsembleSpec {
  featureCount: number;
  /** Margins the trees add up to (classes for multiclass, 1 for binary and regression). */
  margins: number;
  /**
   * Go left when x < threshold (XGBoost) or x <= threshold (scikit-learn).
   * Both compare the input as a 32-bit float.
   */
  comparison: "lt" | "le";
  /**
   * `float32` is XGBoost's predictor: the base margin, every leaf and every
   * DART weight is a 32-bit float (rounded once, when the model is compiled),
   * and each tree's leaf is added to its margin in single precision, tree by
   * tree in file order. `float64` is scikit-learn's: sums in double.
   */
  accumulate: "float32" | "float64";
  /** `mean` divides the sum by the number of trees (forests). */
  combine: "sum" | "mean";
  /** Multiplies the combined sum (scikit-learn gradient boosting's learning rate). */
  scale: number;
  /** Added to each margin (the base score, or the initial estimator's prediction). */
  base: number[];
  link: Link;
  trees: SourceTree[];
}

/**
 * Layout: per node, `feature` and `threshold` (a split goes right when
 * x >= threshold), `child` (a split's left child; the right one follows it)
 * and `leaf` (a leaf's first value slot, -1 for splits). A leaf points to
 * itself with a NaN threshold, so a walk can take a tree's full depth in
 * steps without asking whether it has reached a leaf: rows without missing
 * values walk four trees at once, with no branch on the data.
 */
export class TreeEnsemble {
  readonly featureCount: number;
  readonly margins: number;
  /** Values written per row by `predict`. */
  readonly width: number;
  readonly acceptsMissing: boolean;
  readonly treeCount: number;
  readonly nodeCount: number;
  /** Which features any split reads (features no split reads never matter). */
  readonly usedFeatures: Uint8Array;

  readonly #feature: Int32Array;
  readonly #threshold: Float32Array;
  readonly #child: Int32Array;
  readonly #leaf: Int32Array;
  readonly #missingRight: Uint8Array;
  readonly #leafValues: Float64Array;
  readonly #roots: Int32Array;
  readonly #depth: Int32Array;
  readonly #groupDepth: Int32Array;
  readonly #treeOutput: Int32Array;
  readonly #treeWeight: Float64Array | null;
  readonly #float32: boolean;
  readonly #divisor: number;
  readonly #scale: number;
  readonly #base: Float64Array;
  readonly #link: Link;

  constructor(spec: EnsembleSpec) {
    if (spec.trees.length === 0) problem("trees", "the model has no trees");
    this.featureCount = spec.featureCount;
    this.margins = spec.margins;
    this.width = linkWidth(spec.link, spec.margins);
    this.acceptsMissing = spec.trees.every((tree) => tree.defaultLeft !== undefined);
    this.treeCount = spec.trees.length;
    this.#float32 = spec.accumulate === "float32";
    this.#divisor = spec.combine === "mean" ? spec.trees.length : 1;
    this.#scale = spec.scale;
    this.#base = Float64Array.from(spec.base, (b) => (this.#float32 ? Math.fround(b) : b));
    this.#link = spec.link;

    let nodes = 0;
    let leafSlots = 0;
    for (const tree of spec.trees) {
      nodes += tree.left.length;
      leafSlots += tree.left.length * (tree.output < 0 ? spec.margins : 1);
    }
    const arrays: Arrays = {
      feature: new Int32Array(nodes),
      threshold: new Float32Array(nodes),
      child: new Int32Array(nodes),
      leaf: new Int32Array(nodes),
      missingRight: new Uint8Array(nodes),
      leafValues: new Float64Array(leafSlots),
      usedFeatures: new Uint8Array(spec.featureCount),
      nextLeaf: 0,
    };
    const count = spec.trees.length;
    const roots = new Int32Array(count);
    const depth = new Int32Array(count);
    const treeOutput = new Int32Array(count);
    const weights = new Float64Array(count);
    let weighted = false;

    let next = 0;
    for (const [t, tree] of spec.trees.entries()) {
      if (tree.output >= spec.margins) {
        problem(tree.path, `adds to output ${tree.output}, but the model has ${spec.margins}`);
      }
      roots[t] = next;
      treeOutput[t] = tree.output;
      weights[t] = this.#float32 ? Math.fround(tree.weight) : tree.weight;
      if (weights[t] !== 1) weighted = true;
      const placed = placeTree(tree, spec, next, arrays);
      next = placed.next;
      depth[t] = placed.depth;
    }
    const groupDepth = new Int32Array(count >> 2);
    for (let g = 0; g < groupDepth.length; g++) {
      const t = g * 4;
      groupDepth[g] = Math.max(
        depth[t] as number,
        depth[t + 1] as number,
        depth[t + 2] as number,
        depth[t + 3] as number,
      );
    }
    this.nodeCount = next;
    this.#feature = arrays.feature.subarray(0, next);
    this.#threshold = arrays.threshold.subarray(0, next);
    this.#child = arrays.child.subarray(0, next);
    this.#leaf = arrays.leaf.subarray(0, next);
    this.#missingRight = arrays.missingRight.subarray(0, next);
    this.#leafValues = arrays.leafValues.subarray(0, arrays.nextLeaf);
    this.#roots = roots;
    this.#depth = depth;
    this.#groupDepth = groupDepth;
    this.#treeOutput = treeOutput;
    this.#treeWeight = weighted ? weights : null;
    this.usedFeatures = arrays.usedFeatures;
  }

  /** Approximate bytes held by the compact form. */
  get bytes(): number {
    return (
      this.#feature.byteLength +
      this.#threshold.byteLength +
      this.#child.byteLength +
      this.#leaf.byteLength +
      this.#missingRight.byteLength +
      this.#leafValues.byteLength +
      this.#roots.byteLength * 4
    );
  }

  /**
   * Evaluates `rows` rows of `x` (row-major, `featureCount` values per row,
   * already rounded to 32-bit floats; NaN is missing) and writes `width`
   * values per row to `out`.
   */
  predict(x: Float32Array, rows: number, out: Float64Array): void {
    const feature = this.#feature;
    const threshold = this.#threshold;
    const child = this.#child;
    const leaf = this.#leaf;
    const missingRight = this.#missingRight;
    const roots = this.#roots;
    const depth = this.#depth;
    const groupDepth = this.#groupDepth;
    const float32 = this.#float32;
    const margins = this.margins;
    const trees = roots.length;
    const grouped = groupDepth.length * 4;
    const stride = this.featureCount;
    const acc = new Float64Array(margins);
    const width = this.width;
    const base = this.#base;
    const link = this.#link;
    const factor = this.#scale / this.#divisor;

    for (let r = 0; r < rows; r++) {
      const at = r * stride;
      if (float32) acc.set(base);
      else acc.fill(0);
      let complete = true;
      for (let j = at; j < at + stride; j++) {
        if (Number.isNaN(x[j])) {
          complete = false;
          break;
        }
      }
      if (complete) {
        let t = 0;
        for (; t < grouped; t += 4) {
          let a = roots[t] as number;
          let b = roots[t + 1] as number;
          let c = roots[t + 2] as number;
          let d = roots[t + 3] as number;
          for (let i = groupDepth[t >> 2] as number; i > 0; i--) {
            a =
              (child[a] as number) +
              +((x[at + (feature[a] as number)] as number) >= (threshold[a] as number));
            b =
              (child[b] as number) +
              +((x[at + (feature[b] as number)] as number) >= (threshold[b] as number));
            c =
              (child[c] as number) +
              +((x[at + (feature[c] as number)] as number) >= (threshold[c] as number));
            d =
              (child[d] as number) +
              +((x[at + (feature[d] as number)] as number) >= (threshold[d] as number));
          }
          this.#add(acc, t, leaf[a] as number);
          this.#add(acc, t + 1, leaf[b] as number);
          this.#add(acc, t + 2, leaf[c] as number);
          this.#add(acc, t + 3, leaf[d] as number);
        }
        for (; t < trees; t++) {
          let a = roots[t] as number;
          for (let i = depth[t] as number; i > 0; i--) {
            a =
              (child[a] as number) +
              +((x[at + (feature[a] as number)] as number) >= (threshold[a] as number));
          }
          this.#add(acc, t, leaf[a] as number);
        }
      } else {
        for (let t = 0; t < trees; t++) {
          let n = roots[t] as number;
          while ((leaf[n] as number) < 0) {
            const v = x[at + (feature[n] as number)] as number;
            const s = threshold[n] as number;
            // NaN fails both comparisons and takes the split's default direction.
            n = (child[n] as number) + (v < s ? 0 : v >= s ? 1 : (missingRight[n] as number));
          }
          this.#add(acc, t, leaf[n] as number);
        }
      }
      if (!float32) {
        for (let k = 0; k < margins; k++)
          acc[k] = (base[k] as number) + (acc[k] as number) * factor;
      }
      if (float32) xgboostTransform(link, acc, margins, out, r * width);
      else applyLink(link, acc, 0, margins, out, r * width);
    }
  }

  /** Adds tree `t`'s leaf (value slot `slot`) to the margins, in the model's precision. */
  #add(acc: Float64Array, t: number, slot: number): void {
    const values = this.#leafValues;
    const k = this.#treeOutput[t] as number;
    if (k >= 0) {
      let value = values[slot] as number;
      const weights = this.#treeWeight;
      if (this.#float32) {
        if (weights) value = Math.fround(value * (weights[t] as number));
        acc[k] = Math.fround((acc[k] as number) + value);
      } else {
        if (weights) value *= weights[t] as number;
        acc[k] = (acc[k] as number) + value;
      }
    } else {
      for (let j = 0; j < acc.length; j++)
        acc[j] = (acc[j] as number) + (values[slot + j] as number);
    }
  }
}

const EXP_LIMIT = Math.fround(88.7);

/**
 * XGBoost's transform of its margins (`PredTransform`), operation by
 * operation in single precision as XGBoost 1.7 to 3.x compute it
 * (`common::Sigmoid` and `common::Softmax` in src/common/math.h, `expf` for
 * the log-link objectives): `Math.fround` after a step stands for one float
 * operation, and `expf` for `Math.fround(Math.exp(x))`. The C library's
 * `expf` is not always correctly rounded, so an output can differ from
 * XGBoost's by one unit in the last place.
 */
function xgboostTransform(
  link: Link,
  margins: Float64Array,
  count: number,
  out: Float64Array,
  to: number,
): void {
  switch (link) {
    case "logistic": {
      const p = xgboostSigmoid(margins[0] as number);
      out[to] = 1 - p;
      out[to + 1] = p;
      return;
    }
    case "sigmoid":
      out[to] = xgboostSigmoid(margins[0] as number);
      return;
    case "exp":
      out[to] = Math.fround(Math.exp(margins[0] as number));
      return;
    case "softmax": {
      let max = margins[0] as number;
      for (let k = 1; k < count; k++) max = Math.max(max, margins[k] as number);
      // The exponentials are floats, their sum a double, rounded to a float once.
      let sum = 0;
      for (let k = 0; k < count; k++) {
        const e = Math.fround(Math.exp(Math.fround((margins[k] as number) - max)));
        out[to + k] = e;
        sum += e;
      }
      const total = Math.fround(sum);
      for (let k = 0; k < count; k++) out[to + k] = Math.fround((out[to + k] as number) / total);
      return;
    }
    default:
      applyLink(link, margins, 0, count, out, to);
  }
}

/**
 * `1 / (expf(min(-x, 88.7f)) + 1)`: the clamp keeps a very negative margin's
 * probability above 0. (The 1e-16 XGBoost adds to the denominator is lost
 * when added to a float of at least 1.)
 */
function xgboostSigmoid(x: number): number {
  return Math.fround(1 / Math.fround(Math.fround(Math.exp(Math.min(-x, EXP_LIMIT))) + 1));
}

interface Arrays {
  feature: Int32Array;
  threshold: Float32Array;
  child: Int32Array;
  leaf: Int32Array;
  missingRight: Uint8Array;
  leafValues: Float64Array;
  usedFeatures: Uint8Array;
  nextLeaf: number;
}

/**
 * Copies one tree into the flat arrays from index `start`, breadth first, so
 * that the children of a split sit at `child` and `child + 1`. Returns the
 * next free index and the tree's depth (the most steps from root to a leaf).
 */
function placeTree(
  tree: SourceTree,
  spec: EnsembleSpec,
  start: number,
  arrays: Arrays,
): { next: number; depth: number } {
  const count = tree.left.length;
  const { fields, path } = tree;
  for (const [name, values] of [
    [fields.right, tree.right],
    [fields.feature, tree.feature],
    [fields.threshold, tree.threshold],
  ] as const) {
    if (values.length !== count) {
      problem(`${path}.${name}`, `has ${values.length} entries, but ${fields.left} has ${count}`);
    }
  }
  if (tree.defaultLeft && tree.defaultLeft.length !== count) {
    problem(path, `the default directions list ${tree.defaultLeft.length} nodes, not ${count}`);
  }
  if (count === 0) problem(path, "the tree has no nodes");
  const seen = new Uint8Array(count);
  seen[0] = 1;
  // Source ids in placement order; slot i of the queue lands at start + i.
  const order = new Int32Array(count);
  const levels = new Int32Array(count);
  let depth = 0;
  let head = 0;
  let tail = 1;
  let nextLeaf = arrays.nextLeaf;
  const leafWidth = tree.output < 0 ? spec.margins : 1;
  const lessOrEqual = spec.comparison === "le";
  const float32 = spec.accumulate === "float32";
  while (head < tail) {
    const id = order[head] as number;
    const at = start + head;
    const level = levels[head] as number;
    head++;
    const left = tree.left[id] as number;
    if (!Number.isInteger(left)) problem(`${path}.${fields.left}[${id}]`, "must be an integer");
    if (left < 0) {
      const values = tree.leaf(id);
      if (values.length !== leafWidth) {
        problem(
          `${path}.${fields.value}[${id}]`,
          `holds ${values.length} values, but a leaf of this tree needs ${leafWidth}`,
        );
      }
      for (let k = 0; k < leafWidth; k++) {
        const value = values[k] as number;
        if (typeof value !== "number" || !Number.isFinite(value)) {
          problem(`${path}.${fields.value}[${id}]`, "must hold finite numbers");
        }
        if (float32 && !Number.isFinite(Math.fround(value))) {
          problem(`${path}.${fields.value}[${id}]`, `${value} is beyond a 32-bit float's range`);
        }
        // XGBoost keeps leaves as 32-bit floats; the file's decimal is only
        // their shortest spelling, and adding the double it parses to rounds
        // differently in the last place.
        arrays.leafValues[nextLeaf + k] = float32 ? Math.fround(value) : value;
      }
      // A leaf steps to itself: x >= NaN is always false.
      arrays.feature[at] = 0;
      arrays.threshold[at] = Number.NaN;
      arrays.child[at] = at;
      arrays.leaf[at] = nextLeaf;
      nextLeaf += leafWidth;
      if (level > depth) depth = level;
      continue;
    }
    const right = tree.right[id] as number;
    for (const [name, node] of [
      [fields.left, left],
      [fields.right, right],
    ] as const) {
      if (!Number.isInteger(node) || node < 0 || node >= count) {
        problem(
          `${path}.${name}[${id}]`,
          `references node ${node}, but the tree has nodes 0 to ${count - 1}`,
        );
      }
      if (seen[node]) {
        problem(
          `${path}.${name}[${id}]`,
          `references node ${node} a second time (a tree must not loop or share nodes)`,
        );
      }
      seen[node] = 1;
    }
    const feature = tree.feature[id] as number;
    if (!Number.isInteger(feature) || feature < 0 || feature >= spec.featureCount) {
      problem(
        `${path}.${fields.feature}[${id}]`,
        `splits on feature ${feature}, but the model has features 0 to ${spec.featureCount - 1}`,
      );
    }
    const threshold = tree.threshold[id] as number;
    if (typeof threshold !== "number" || Number.isNaN(threshold)) {
      problem(`${path}.${fields.threshold}[${id}]`, "must be a number");
    }
    arrays.feature[at] = feature;
    arrays.usedFeatures[feature] = 1;
    arrays.threshold[at] = lessOrEqual ? float32Above(threshold) : Math.fround(threshold);
    arrays.missingRight[at] = tree.defaultLeft?.[id] ? 0 : 1;
    arrays.child[at] = start + tail;
    arrays.leaf[at] = -1;
    levels[tail] = level + 1;
    levels[tail + 1] = level + 1;
    order[tail++] = left;
    order[tail++] = right;
  }
  arrays.nextLeaf = nextLeaf;
  return { next: start + tail, depth };
}

const bits = new Float32Array(1);
const bitsInt = new Int32Array(bits.buffer);

/**
 * The smallest 32-bit float greater than `t`: for a 32-bit float x,
 * `x <= t` exactly when `x < float32Above(t)`, so both comparisons run as one.
 */
export function float32Above(t: number): number {
  if (t === Number.POSITIVE_INFINITY) return t;
  const f = Math.fround(t);
  if (f > t) return f;
  if (f === Number.POSITIVE_INFINITY) return f;
  // Step f up by one unit in the last place.
  if (f === 0) return 1.401298464324817e-45;
  bits[0] = f;
  bitsInt[0] = (bitsInt[0] as number) + (f > 0 ? 1 : -1);
  return bits[0] as number;
}
