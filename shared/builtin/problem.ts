/**
 * What is wrong with a model file, and where. Parsers throw it; `compileModel`
 * turns it into a result, so registration can answer 400 naming the place.
 */
export class ModelFileProblem extends Error {
  /**
   * Where, e.g. `learner.gradient_booster.model.trees[3].left_children[5]`:
   * inside the model file (scope `model`, empty for the file itself), or among
   * the fields given beside it (scope `upstream`, e.g. `features`).
   */
  readonly path: string;
  readonly scope: "model" | "upstream";

  constructor(path: string, message: string, scope: "model" | "upstream" = "model") {
    super(message);
    this.name = "ModelFileProblem";
    this.path = path;
    this.scope = scope;
  }
}

export function problem(path: string, message: string): never {
  throw new ModelFileProblem(path, message);
}

/** A problem with a field given beside the model file (`features`, `classes`). */
export function upstreamProblem(path: string, message: string): never {
  throw new ModelFileProblem(path, message, "upstream");
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function objectAt(value: unknown, path: string): Record<string, unknown> {
  if (!isObject(value)) problem(path, "must be an object");
  return value;
}

export function arrayAt(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) problem(path, "must be an array");
  return value;
}

export function numberAt(value: unknown, path: string): number {
  if (typeof value !== "number" || !Number.isFinite(value))
    problem(path, "must be a finite number");
  return value;
}

export function integerAt(value: unknown, path: string): number {
  if (typeof value !== "number" || !Number.isInteger(value)) problem(path, "must be an integer");
  return value;
}

export function stringAt(value: unknown, path: string): string {
  if (typeof value !== "string") problem(path, "must be a string");
  return value;
}

/** An array of finite numbers. */
export function numbersAt(value: unknown, path: string): number[] {
  const items = arrayAt(value, path);
  for (const [i, item] of items.entries()) numberAt(item, `${path}[${i}]`);
  return items as number[];
}

/** Feature names: distinct non-empty strings. */
export function featureNamesAt(value: unknown, path: string): string[] {
  const items = arrayAt(value, path);
  if (items.length === 0) problem(path, "must name at least one feature");
  const seen = new Set<string>();
  for (const [i, item] of items.entries()) {
    const name = stringAt(item, `${path}[${i}]`);
    if (name === "") problem(`${path}[${i}]`, "must not be empty");
    if (seen.has(name)) problem(`${path}[${i}]`, `repeats feature '${name}'`);
    seen.add(name);
  }
  return items as string[];
}

/** Class labels as strings: numbers are written as JavaScript spells them (1, not 1.0). */
export function classLabelsAt(value: unknown, path: string): string[] {
  const items = arrayAt(value, path);
  if (items.length < 2) problem(path, "must list at least two classes");
  const seen = new Set<string>();
  return items.map((item, i) => {
    let label: string;
    if (typeof item === "string") label = item;
    else if (typeof item === "number" && Number.isFinite(item)) label = String(item);
    else if (typeof item === "boolean") label = String(item);
    else problem(`${path}[${i}]`, "must be a string or a number");
    if (seen.has(label)) problem(`${path}[${i}]`, `repeats class '${label}'`);
    seen.add(label);
    return label;
  });
}
