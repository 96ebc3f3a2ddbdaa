/**
 * Linear and logistic models: one row of coefficients per margin, in one
 * typed array, evaluated in double precision as scikit-learn does.
 */
import { applyLink, type Link, linkWidth } from "./link";

export interface LinearSpec {
  featureCount: number;
  /** Row-major, `margins` rows of `featureCount` coefficients. */
  coef: ArrayLike<number>;
  intercept: ArrayLike<number>;
  margins: number;
  link: Link;
}

export class LinearModel {
  readonly featureCount: number;
  readonly margins: number;
  readonly width: number;
  readonly #coef: Float64Array;
  readonly #intercept: Float64Array;
  readonly #link: Link;

  constructor(spec: LinearSpec) {
    this.featureCount = spec.featureCount;
    this.margins = spec.margins;
    this.width = linkWidth(spec.link, spec.margins);
    this.#coef = Float64Array.from(spec.coef);
    this.#intercept = Float64Array.from(spec.intercept);
    this.#link = spec.link;
  }

  get bytes(): number {
    return this.#coef.byteLength + this.#intercept.byteLength;
  }

  /** `x` is row-major with `featureCount` values per row, no missing values. */
  predict(x: Float64Array, rows: number, out: Float64Array): void {
    const coef = this.#coef;
    const intercept = this.#intercept;
    const n = this.featureCount;
    const margins = this.margins;
    const width = this.width;
    const link = this.#link;
    const z = new Float64Array(margins);
    for (let r = 0; r < rows; r++) {
      const at = r * n;
      for (let k = 0; k < margins; k++) {
        const w = k * n;
        let sum = 0;
        for (let j = 0; j < n; j++) sum += (x[at + j] as number) * (coef[w + j] as number);
        z[k] = sum + (intercept[k] as number);
      }
      if (link === "identity" && margins === 1) out[r] = z[0] as number;
      else applyLink(link, z, 0, margins, out, r * width);
    }
  }
}
