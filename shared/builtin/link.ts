/**
 * From margins (what trees or a linear model add up to) to what the model
 * predicts: probabilities in class order for classifiers, a value for
 * regressors.
 */
export type Link =
  /** Regression, or classifiers whose margins already are probabilities (forests). */
  | "identity"
  /** Binary classifier with one margin: [1 - p, p], p = sigmoid(margin). */
  | "logistic"
  /** Regression on the probability scale (XGBoost reg:logistic): value = sigmoid(margin). */
  | "sigmoid"
  /** Log-link regression (count:poisson, reg:gamma, reg:tweedie): value = exp(margin). */
  | "exp"
  /** Multiclass, one margin per class. */
  | "softmax"
  /** Multiclass one-vs-rest (scikit-learn): sigmoid per class, normalised to sum 1. */
  | "ovr";

/** How many values the link writes for `margins` margins. */
export function linkWidth(link: Link, margins: number): number {
  return link === "logistic" ? 2 : margins;
}

/**
 * Applies `link` to `margins` values at `from` in `src`, writing at `to` in `out`.
 * `float32` computes the sigmoid in single precision, as XGBoost does.
 */
export function applyLink(
  link: Link,
  src: ArrayLike<number>,
  from: number,
  margins: number,
  out: Float64Array,
  to: number,
  float32 = false,
): void {
  switch (link) {
    case "identity":
      for (let k = 0; k < margins; k++) out[to + k] = src[from + k] as number;
      return;
    case "logistic": {
      const p = sigmoid(src[from] as number, float32);
      out[to] = 1 - p;
      out[to + 1] = p;
      return;
    }
    case "sigmoid":
      out[to] = sigmoid(src[from] as number, float32);
      return;
    case "exp":
      out[to] = float32
        ? Math.fround(Math.exp(src[from] as number))
        : Math.exp(src[from] as number);
      return;
    case "softmax": {
      let max = Number.NEGATIVE_INFINITY;
      for (let k = 0; k < margins; k++) max = Math.max(max, src[from + k] as number);
      let sum = 0;
      for (let k = 0; k < margins; k++) {
        const e = Math.exp((src[from + k] as number) - max);
        out[to + k] = e;
        sum += e;
      }
      for (let k = 0; k < margins; k++) out[to + k] = (out[to + k] as number) / sum;
      return;
    }
    case "ovr": {
      let sum = 0;
      for (let k = 0; k < margins; k++) {
        const p = sigmoid(src[from + k] as number, false);
        out[to + k] = p;
        sum += p;
      }
      for (let k = 0; k < margins; k++) out[to + k] = (out[to + k] as number) / sum;
      return;
    }
  }
}

function sigmoid(x: number, float32: boolean): number {
  if (!float32) return 1 / (1 + Math.exp(-x));
  return Math.fround(1 / Math.fround(1 + Math.fround(Math.exp(-x))));
}
