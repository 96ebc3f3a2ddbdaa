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
  /** XGBoost sums leaves in single precision; scikit-learn in double. */
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
  readonly #missingLeft: Uint8Array;
  readonly #leafValues: Float64Array;
  readonly #roots: Int32Array;
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
    this.#base = Float64Array.from(spec.base);
    this.#link = spec.link;

    let nodes = 0;
    let leafSlots = 0;
    for (const tree of spec.trees) {
      nodes += tree.left.length;
      leafSlots += tree.left.length * (tree.output < 0 ? spec.margins : 1);
    }
    const feature = new Int32Array(nodes);
    const threshold = new Float32Array(nodes);
    const child = new Int32Array(nodes);
    const missingLeft = new Uint8Array(nodes);
    const leafValues = new Float64Array(leafSlots);
    const roots = new Int32Array(spec.trees.length);
    const treeOutput = new Int32Array(spec.trees.length);
    const weights = new Float64Array(spec.trees.length);
    const usedFeatures = new Uint8Array(spec.featureCount);
    let weighted = false;

    let next = 0;
    let nextLeaf = 0;
    for (const [t, tree] of spec.trees.entries()) {
      if (tree.output >= spec.margins) {
        problem(tree.path, `adds to output ${tree.output}, but the model has ${spec.margins}`);
      }
      roots[t] = next;
      treeOutput[t] = tree.output;
      weights[t] = tree.weight;
      if (tree.weight !== 1) weighted = true;
      const placed = placeTree(tree, spec, next, {
        feature,
        threshold,
        child,
        missingLeft,
        leafValues,
        usedFeatures,
        nextLeaf,
      });
      next = placed.next;
      nextLeaf = placed.nextLeaf;
    }
    this.nodeCount = next;
    this.#feature = feature.subarray(0, next);
    this.#threshold = threshold.subarray(0, next);
    this.#child = child.subarray(0, next);
    this.#missingLeft = missingLeft.subarray(0, next);
    this.#leafValues = leafValues.subarray(0, nextLeaf);
    this.#roots = roots;
    this.#treeOutput = treeOutput;
    this.#treeWeight = weighted ? weights : null;
    this.usedFeatures = usedFeatures;
  }

  /** Approximate bytes held by the compact form. */
  get bytes(): number {
    return (
      this.#feature.byteLength * 2 +
      this.#threshold.byteLength +
      this.#missingLeft.byteLength +
      this.#leafValues.byteLength +
      this.#roots.byteLength * 2
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
    const missingLeft = this.#missingLeft;
    const leafValues = this.#leafValues;
    const roots = this.#roots;
    const treeOutput = this.#treeOutput;
    const weights = this.#treeWeight;
    const float32 = this.#float32;
    const margins = this.margins;
    const trees = roots.length;
    const stride = this.featureCount;
    const acc = new Float64Array(margins);
    const width = this.width;
    const base = this.#base;
    const link = this.#link;
    const factor = this.#scale / this.#divisor;

    for (let r = 0; r < rows; r++) {
      const at = r * stride;
      if (float32) for (let k = 0; k < margins; k++) acc[k] = Math.fround(base[k] as number);
      else acc.fill(0);
      for (let t = 0; t < trees; t++) {
        let n = roots[t] as number;
        let f = feature[n] as number;
        while (f >= 0) {
          const v = x[at + f] as number;
          const c = child[n] as number;
          const s = threshold[n] as number;
          // NaN fails both comparisons and takes the split's default direction.
          n = v < s ? c : v >= s ? c + 1 : c + 1 - (missingLeft[n] as number);
          f = feature[n] as number;
        }
        const leaf = child[n] as number;
        const k = treeOutput[t] as number;
        if (k >= 0) {
          let value = leafValues[leaf] as number;
          if (weights)
            value = float32
              ? Math.fround(value * (weights[t] as number))
              : value * (weights[t] as number);
          acc[k] = float32 ? Math.fround((acc[k] as number) + value) : (acc[k] as number) + value;
        } else {
          for (let j = 0; j < margins; j++)
            acc[j] = (acc[j] as number) + (leafValues[leaf + j] as number);
        }
      }
      if (!float32) {
        for (let k = 0; k < margins; k++)
          acc[k] = (base[k] as number) + (acc[k] as number) * factor;
      }
      applyLink(link, acc, 0, margins, out, r * width, float32);
    }
  }
}

interface Arrays {
  feature: Int32Array;
  threshold: Float32Array;
  child: Int32Array;
  missingLeft: Uint8Array;
  leafValues: Float64Array;
  usedFeatures: Uint8Array;
  nextLeaf: number;
}

/**
 * Copies one tree into the flat arrays from index `start`, breadth first, so
 * that the children of a split sit at `child` and `child + 1`.
 */
function placeTree(
  tree: SourceTree,
  spec: EnsembleSpec,
  start: number,
  arrays: Arrays,
): { next: number; nextLeaf: number } {
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
  let head = 0;
  let tail = 1;
  let nextLeaf = arrays.nextLeaf;
  const leafWidth = tree.output < 0 ? spec.margins : 1;
  const lessOrEqual = spec.comparison === "le";
  while (head < tail) {
    const id = order[head] as number;
    const at = start + head;
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
        arrays.leafValues[nextLeaf + k] = value;
      }
      arrays.feature[at] = -1;
      arrays.child[at] = nextLeaf;
      nextLeaf += leafWidth;
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
    arrays.missingLeft[at] = tree.defaultLeft?.[id] ? 1 : 0;
    arrays.child[at] = start + tail;
    order[tail++] = left;
    order[tail++] = right;
  }
  return { next: start + tail, nextLeaf };
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
