/**
 * Validation of prediction inputs against a model's input schema. Pure: no
 * bindings, no I/O.
 *
 * `inputs` is one object of features (a single prediction) or an array of 1 to
 * 100 such objects (a batch). A batch is all-or-nothing: every issue of every
 * row is collected (up to `MAX_INPUT_ISSUES`, after which validation stops) and
 * no row is accepted unless all are.
 */
import { formatPath } from "../errors";
import type { FeatureSchema, InputSchema } from "../schemas/model";

export type FeatureValue = number | string | boolean | null;
export type InputRow = Record<string, FeatureValue>;

export interface InputIssue {
  /** `inputs.amount` for a single prediction, `inputs[3].amount` in a batch. */
  path: string;
  message: string;
}

export type InputValidation =
  | { ok: true; rows: InputRow[]; batch: boolean }
  | { ok: false; issues: InputIssue[] };

export const MAX_BATCH_ROWS = 100;
/** Validation stops once this many issues are found. */
export const MAX_INPUT_ISSUES = 100;
/** An enum named in a message lists at most this many values. */
const ENUM_VALUES_SHOWN = 10;

export function validateInputs(schema: InputSchema, inputs: unknown): InputValidation {
  if (Array.isArray(inputs)) {
    if (inputs.length === 0) {
      return fail("inputs", "must hold at least one row");
    }
    if (inputs.length > MAX_BATCH_ROWS) {
      return fail("inputs", `must hold at most ${MAX_BATCH_ROWS} rows, got ${inputs.length}`);
    }
    const issues: InputIssue[] = [];
    const rows: InputRow[] = [];
    for (const [i, item] of inputs.entries()) {
      const row = validateRow(schema, item, ["inputs", i], issues);
      if (row) rows.push(row);
      if (issues.length >= MAX_INPUT_ISSUES) break;
    }
    return issues.length > 0 ? { ok: false, issues } : { ok: true, rows, batch: true };
  }
  if (!isPlainObject(inputs)) {
    return fail("inputs", `must be an object of features or an array of 1 to ${MAX_BATCH_ROWS}`);
  }
  const issues: InputIssue[] = [];
  const row = validateRow(schema, inputs, ["inputs"], issues);
  return row && issues.length === 0
    ? { ok: true, rows: [row], batch: false }
    : { ok: false, issues };
}

/**
 * Validates a list of rows (e.g. a baseline sample) with the same rules, each
 * issue named `<at>[i].<feature>`; no limit on the number of rows here.
 */
export function validateRowList(
  schema: InputSchema,
  items: readonly unknown[],
  at: string,
): InputValidation {
  const issues: InputIssue[] = [];
  const rows: InputRow[] = [];
  for (const [i, item] of items.entries()) {
    const row = validateRow(schema, item, [at, i], issues);
    if (row) rows.push(row);
    if (issues.length >= MAX_INPUT_ISSUES) break;
  }
  return issues.length > 0 ? { ok: false, issues } : { ok: true, rows, batch: true };
}

function fail(path: string, message: string): InputValidation {
  return { ok: false, issues: [{ path, message }] };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Checks one row, appending its issues. Returns the row (a fresh object, keys
 * in the caller's order) when it has none.
 */
function validateRow(
  schema: InputSchema,
  item: unknown,
  at: (string | number)[],
  issues: InputIssue[],
): InputRow | null {
  const before = issues.length;
  const add = (path: (string | number)[], message: string) => {
    if (issues.length < MAX_INPUT_ISSUES) issues.push({ path: formatPath(path), message });
  };
  if (!isPlainObject(item)) {
    add(at, "must be an object of features");
    return null;
  }
  const required = new Set(schema.required ?? []);
  // Declared features first, in the schema's order, then unknown ones in the
  // caller's order: the same input always gives the same issues.
  for (const [name, feature] of Object.entries(schema.properties)) {
    if (!Object.hasOwn(item, name)) {
      if (required.has(name)) add([...at, name], "is required");
      continue;
    }
    const value = item[name];
    if (value === null) {
      if (required.has(name)) add([...at, name], "is required and must not be null");
      continue;
    }
    const problem = featureProblem(feature, value);
    if (problem) add([...at, name], problem);
  }
  for (const [name, value] of Object.entries(item)) {
    if (Object.hasOwn(schema.properties, name)) continue;
    if (schema.additionalProperties !== true) {
      add([...at, name], "is not a feature of this model");
    } else if (!isScalar(value)) {
      add([...at, name], "must be a number, string, boolean or null");
    }
  }
  if (issues.length > before) return null;
  // Object.fromEntries defines own properties, so a feature named `__proto__`
  // stays a feature instead of becoming a prototype.
  return Object.fromEntries(Object.entries(item)) as InputRow;
}

function isScalar(value: unknown): value is FeatureValue {
  if (value === null) return true;
  if (typeof value === "number") return Number.isFinite(value);
  return typeof value === "string" || typeof value === "boolean";
}

/** Why a present, non-null value breaks its feature's rules, or null when it doesn't. */
function featureProblem(feature: FeatureSchema, value: unknown): string | null {
  switch (feature.type) {
    case "number":
    case "integer": {
      if (typeof value !== "number")
        return `must be ${feature.type === "integer" ? "an integer" : "a number"}`;
      if (!Number.isFinite(value)) return "must be a finite number";
      if (feature.type === "integer" && !Number.isInteger(value)) return "must be an integer";
      if (feature.enum && !feature.enum.includes(value)) return enumMessage(feature.enum);
      if (feature.minimum !== undefined && value < feature.minimum) {
        return `must be at least ${feature.minimum}`;
      }
      if (feature.maximum !== undefined && value > feature.maximum) {
        return `must be at most ${feature.maximum}`;
      }
      return null;
    }
    case "string": {
      if (typeof value !== "string") return "must be a string";
      if (feature.enum && !feature.enum.includes(value)) return enumMessage(feature.enum);
      if (feature.maxLength !== undefined && longerThan(value, feature.maxLength)) {
        return `must be at most ${feature.maxLength} characters long`;
      }
      return null;
    }
    case "boolean":
      return typeof value === "boolean" ? null : "must be a boolean";
  }
}

function enumMessage(values: readonly (string | number)[]): string {
  const shown = values.slice(0, ENUM_VALUES_SHOWN).map((v) => JSON.stringify(v));
  const more = values.length > ENUM_VALUES_SHOWN ? `, … (${values.length} values)` : "";
  return `must be one of ${shown.join(", ")}${more}`;
}

/**
 * Whether `text` holds more than `max` Unicode code points (a lone surrogate
 * counts as one). A code point takes one or two UTF-16 units, so only lengths
 * between `max` and `2 * max` units need counting.
 */
export function longerThan(text: string, max: number): boolean {
  if (text.length <= max) return false;
  if (text.length > 2 * max) return true;
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    if (++count > max) return true;
  }
  return false;
}
