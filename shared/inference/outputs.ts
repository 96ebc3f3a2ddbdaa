/**
 * Mapping an upstream's response to canonical predictions. Pure: no bindings,
 * no I/O, and nothing here throws: a response that does not map is an upstream
 * failure, reported as `{ ok: false, reason }`.
 *
 * JSON protocol. Airlock sends `{ "inputs": { ...features } }` for a single
 * prediction and `{ "inputs": [ { ...features }, ... ] }` for a batch (even a
 * batch of one). The upstream answers `{ "outputs": <prediction> }` to a single
 * request and `{ "outputs": [<prediction>, ...] }`, one item per row in request
 * order, to a batch. Without a mapping each prediction is in canonical form
 * (`{ label, score?, probabilities? }` or `{ value }`; other keys are ignored).
 * With a mapping, each field is an RFC 6901 JSON pointer evaluated against the
 * row's item, and only the fields the mapping names are read. The items are
 * found by one rule: if the body is an object with an `outputs` member, the
 * items come from `outputs` (pointers are relative to it, never to the body);
 * otherwise the body itself is the item (single) or the array of items (batch).
 * A pointer that does not resolve, or resolves to null, leaves its field absent.
 *
 * Open Inference Protocol (V2). The response's output tensors are found by
 * name: `label` (BYTES or an integer type, shape [rows] or [rows, 1]), `score`
 * (floating point, [rows] or [rows, 1]), `probabilities` (floating point,
 * [rows, number of classes], columns in the model's classes order) and `value`
 * (floating point, [rows] or [rows, 1]). A mapping renames them; as with JSON,
 * a mapping replaces the default names entirely. Tensor data may be flat
 * (row-major) or nested.
 *
 * Both protocols then apply the same rules (`toCanonical`).
 */

export type CanonicalPrediction =
  | { label: string; score?: number; probabilities?: Record<string, number> }
  | { value: number };

export interface ModelOutputSpec {
  task: "classification" | "regression";
  classes: string[] | null;
  positiveClass: string | null;
}

/** JSON protocol: JSON pointers into each row's item. V2: output tensor names. */
export interface OutputMapping {
  label?: string;
  score?: string;
  probabilities?: string;
  value?: string;
}

export interface OutputOptions {
  /**
   * A binary model's label, when the upstream gives only the positive-class
   * score, is the positive class if score >= threshold. Default 0.5.
   */
  threshold?: number;
}

export interface JsonOutputOptions extends OutputOptions {
  /** Whether the request was a batch (`inputs` an array). Default: rows !== 1. */
  batch?: boolean;
}

export type OutputResult =
  | { ok: true; predictions: CanonicalPrediction[] }
  | { ok: false; reason: string };

/** What an upstream said about one row, before checking; undefined is absent. */
export interface RawPrediction {
  label?: unknown;
  score?: unknown;
  probabilities?: unknown;
  value?: unknown;
}

export const DEFAULT_THRESHOLD = 0.5;
/** Probabilities must sum to 1 within this much. */
export const PROBABILITY_SUM_TOLERANCE = 1e-3;

type Field = keyof OutputMapping;
const classificationFields = ["label", "score", "probabilities"] as const satisfies Field[];
const regressionFields = ["value"] as const satisfies Field[];

type Checked<T> = { ok: true; value: T } | { ok: false; reason: string };
const bad = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });

// ---- JSON protocol --------------------------------------------------------------------------

export function fromJsonResponse(
  spec: ModelOutputSpec,
  body: unknown,
  rows: number,
  mapping?: OutputMapping,
  options: JsonOutputOptions = {},
): OutputResult {
  const setup = checkCall(rows, options);
  if (!setup.ok) return setup;
  const threshold = setup.value;
  const batch = options.batch ?? rows !== 1;
  if (!batch && rows !== 1) return bad(`a single prediction has 1 row, not ${rows}`);

  const fields = fieldsOf(spec);
  const pointers: [Field, string[]][] = [];
  for (const field of fields) {
    const pointer = mapping ? mapping[field] : `/${field}`;
    if (pointer === undefined) continue;
    const tokens = parseJsonPointer(pointer);
    if (!tokens) return bad(`mapping.${field} is not a JSON pointer: ${show(pointer)}`);
    pointers.push([field, tokens]);
  }

  const hasOutputs = isPlainObject(body) && Object.hasOwn(body, "outputs");
  if (!hasOutputs && !mapping) return bad("the response has no 'outputs'");
  const outputs = hasOutputs ? (body as Record<string, unknown>).outputs : body;
  const where = hasOutputs ? "outputs" : "the response";

  let items: unknown[];
  if (batch) {
    if (!Array.isArray(outputs)) return bad(`${where} must be an array for a batch`);
    if (outputs.length !== rows) {
      return bad(`${where} holds ${outputs.length} items for ${rows} rows`);
    }
    items = outputs;
  } else {
    if (!mapping && !isPlainObject(outputs)) {
      return bad(`${where} must be a prediction object for a single request`);
    }
    items = [outputs];
  }

  const predictions: CanonicalPrediction[] = [];
  for (const [i, item] of items.entries()) {
    const at = batch ? `${where}[${i}]` : where;
    if (!mapping && !isPlainObject(item)) return bad(`${at} must be a prediction object`);
    const raw: RawPrediction = {};
    for (const [field, tokens] of pointers) {
      const found = resolveJsonPointer(item, tokens);
      if (found.found && found.value !== null) raw[field] = found.value;
    }
    const result = toCanonical(spec, raw, threshold);
    if (!result.ok) return bad(`${at}: ${result.reason}`);
    predictions.push(result.value);
  }
  return { ok: true, predictions };
}

/**
 * The reference tokens of an RFC 6901 JSON pointer ("" is the whole document),
 * or null if it is not one: it must start with "/", and "~" may only appear
 * as "~0" (a literal "~") or "~1" (a literal "/").
 */
export function parseJsonPointer(pointer: string): string[] | null {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) return null;
  const tokens: string[] = [];
  for (const raw of pointer.slice(1).split("/")) {
    if (/~(?![01])/.test(raw)) return null;
    tokens.push(raw.replaceAll("~1", "/").replaceAll("~0", "~"));
  }
  return tokens;
}

/** Evaluates parsed pointer tokens against a JSON value; only own members count. */
export function resolveJsonPointer(
  document: unknown,
  tokens: readonly string[],
): { found: true; value: unknown } | { found: false } {
  let current = document;
  for (const token of tokens) {
    if (Array.isArray(current)) {
      // "0" or digits without a leading zero; "-" (past the end) never resolves.
      if (!/^(?:0|[1-9][0-9]*)$/.test(token)) return { found: false };
      const index = Number(token);
      if (index >= current.length) return { found: false };
      current = current[index];
    } else if (isPlainObject(current)) {
      if (!Object.hasOwn(current, token)) return { found: false };
      current = current[token];
    } else {
      return { found: false };
    }
  }
  return { found: true, value: current };
}

// ---- Open Inference Protocol (V2) -----------------------------------------------------------

const floatTypes = new Set(["FP16", "FP32", "FP64", "BF16"]);
const integerTypes = new Set([
  "INT8",
  "INT16",
  "INT32",
  "INT64",
  "UINT8",
  "UINT16",
  "UINT32",
  "UINT64",
]);
/** Tensors nest no deeper than their shape, and shapes this deep are not predictions. */
const MAX_TENSOR_DEPTH = 8;

export function fromV2Response(
  spec: ModelOutputSpec,
  body: unknown,
  rows: number,
  mapping?: OutputMapping,
  options: OutputOptions = {},
): OutputResult {
  const setup = checkCall(rows, options);
  if (!setup.ok) return setup;
  const threshold = setup.value;
  if (!isPlainObject(body) || !Array.isArray(body.outputs)) {
    return bad("the response has no 'outputs' array");
  }
  const outputs: unknown[] = body.outputs;
  const classes = spec.classes;
  if (spec.task === "classification" && !hasClasses(classes)) {
    return bad("the model lists no classes");
  }

  const columns: Partial<Record<Field, unknown[]>> = {};
  const looked: string[] = [];
  for (const field of fieldsOf(spec)) {
    const name = mapping ? mapping[field] : field;
    if (name === undefined) continue;
    looked.push(name);
    const tensors = outputs.filter((output) => isPlainObject(output) && output.name === name);
    if (tensors.length > 1) return bad(`${tensors.length} output tensors are named '${name}'`);
    const tensor = tensors[0];
    if (tensor === undefined) continue;
    const width = field === "probabilities" ? (classes?.length ?? 0) : 1;
    const read = readTensor(tensor as Record<string, unknown>, field, rows, width);
    if (!read.ok) return bad(`output '${name}': ${read.reason}`);
    columns[field] = read.value;
  }
  if (Object.keys(columns).length === 0) {
    const names = looked.map((name) => `'${name}'`).join(", ");
    return bad(looked.length === 0 ? "the mapping names no output" : `no output tensor ${names}`);
  }

  const predictions: CanonicalPrediction[] = [];
  for (let i = 0; i < rows; i++) {
    const raw: RawPrediction = {};
    if (columns.label) raw.label = columns.label[i];
    if (columns.score) raw.score = columns.score[i];
    if (columns.value) raw.value = columns.value[i];
    const probabilities = columns.probabilities;
    if (probabilities && classes) {
      const n = classes.length;
      raw.probabilities = Object.fromEntries(classes.map((c, j) => [c, probabilities[i * n + j]]));
    }
    const result = toCanonical(spec, raw, threshold);
    if (!result.ok) return bad(rows === 1 ? result.reason : `row ${i}: ${result.reason}`);
    predictions.push(result.value);
  }
  return { ok: true, predictions };
}

/** A tensor's elements, flat and row-major, after checking its datatype and shape. */
function readTensor(
  tensor: Record<string, unknown>,
  field: Field,
  rows: number,
  width: number,
): Checked<unknown[]> {
  const { datatype, shape, data } = tensor;
  if (typeof datatype !== "string") return bad("has no datatype");
  const textual = field === "label" && datatype === "BYTES";
  const integral = field === "label" && integerTypes.has(datatype);
  if (field === "label" ? !textual && !integral : !floatTypes.has(datatype)) {
    const expected = field === "label" ? "BYTES or an integer type" : "a floating-point type";
    return bad(`datatype ${show(datatype)} is not ${expected}`);
  }
  if (
    !Array.isArray(shape) ||
    !shape.every((d) => typeof d === "number" && Number.isSafeInteger(d) && d >= 0)
  ) {
    return bad("shape must be an array of non-negative integers");
  }
  const dims = shape as number[];
  const fits =
    field === "probabilities"
      ? dims.length === 2 && dims[0] === rows && dims[1] === width
      : (dims.length === 1 && dims[0] === rows) ||
        (dims.length === 2 && dims[0] === rows && dims[1] === 1);
  if (!fits) {
    const expected =
      field === "probabilities" ? `[${rows}, ${width}]` : `[${rows}] or [${rows}, 1]`;
    return bad(`shape ${show(shape)} is not ${expected}`);
  }
  if (!Array.isArray(data)) return bad("has no data array");
  const flat = flatten(data);
  if (!flat) return bad("data is nested too deeply");
  if (flat.length !== rows * width) {
    return bad(`data holds ${flat.length} elements for shape ${show(shape)}`);
  }
  for (const element of flat) {
    if (textual ? typeof element !== "string" : typeof element !== "number") {
      return bad(`data holds ${show(element)}, not a ${textual ? "string" : "number"}`);
    }
    if (integral && !Number.isInteger(element))
      return bad(`data holds ${show(element)}, not an integer`);
  }
  return { ok: true, value: flat };
}

function flatten(data: unknown[], depth = 0): unknown[] | null {
  if (depth > MAX_TENSOR_DEPTH) return null;
  const out: unknown[] = [];
  for (const element of data) {
    if (Array.isArray(element)) {
      const inner = flatten(element, depth + 1);
      if (!inner) return null;
      for (const x of inner) out.push(x);
    } else {
      out.push(element);
    }
  }
  return out;
}

// ---- canonical form ---------------------------------------------------------------------------

/**
 * Checks one row's raw prediction and completes it:
 * - classification: the label must be one of the classes (a number names the
 *   class it spells, e.g. 1 for "1", and otherwise, if an integer in range, the
 *   class at that index); `score` is the positive-class probability, in [0, 1],
 *   and only for binary models; `probabilities` is an object of class ->
 *   probability in [0, 1] (or an array in classes order), summing to 1 within
 *   1e-3. Without a label, the label is the most probable class (ties: first in
 *   classes order), or, with only a score, the positive class when score >=
 *   threshold and the other class otherwise. A label given with probabilities
 *   or a score is kept as given.
 * - regression: `value` must be a finite number.
 */
export function toCanonical(
  spec: ModelOutputSpec,
  raw: RawPrediction,
  threshold = DEFAULT_THRESHOLD,
): Checked<CanonicalPrediction> {
  if (spec.task === "regression") {
    if (raw.value === undefined) return bad("no value");
    if (typeof raw.value !== "number" || !Number.isFinite(raw.value)) {
      return bad(`value ${show(raw.value)} is not a finite number`);
    }
    return { ok: true, value: { value: raw.value } };
  }

  const classes = spec.classes;
  if (!hasClasses(classes)) return bad("the model lists no classes");

  let label: string | undefined;
  if (raw.label !== undefined) {
    const resolved = resolveLabel(raw.label, classes);
    if (!resolved.ok) return resolved;
    label = resolved.value;
  }

  let score: number | undefined;
  if (raw.score !== undefined) {
    if (classes.length !== 2) return bad("a score is only allowed for binary classification");
    if (!isProbability(raw.score)) return bad(`score ${show(raw.score)} is not in [0, 1]`);
    if (spec.positiveClass === null || !classes.includes(spec.positiveClass)) {
      return bad("a score needs the model's positive class");
    }
    score = raw.score;
  }

  let probabilities: Record<string, number> | undefined;
  if (raw.probabilities !== undefined) {
    const checked = checkProbabilities(raw.probabilities, classes);
    if (!checked.ok) return checked;
    probabilities = checked.value;
  }

  if (label === undefined) {
    if (probabilities) {
      let best: string | undefined;
      for (const c of classes) {
        const p = probabilities[c];
        if (p !== undefined && (best === undefined || p > (probabilities[best] ?? 0))) best = c;
      }
      label = best;
    } else if (score !== undefined && spec.positiveClass !== null) {
      const positive = spec.positiveClass;
      label = score >= threshold ? positive : classes.find((c) => c !== positive);
    }
    if (label === undefined) return bad("no label, probabilities or score");
  }

  const prediction: { label: string; score?: number; probabilities?: Record<string, number> } = {
    label,
  };
  if (score !== undefined) prediction.score = score;
  if (probabilities) prediction.probabilities = probabilities;
  return { ok: true, value: prediction };
}

function resolveLabel(label: unknown, classes: readonly string[]): Checked<string> {
  if (typeof label === "string") {
    return classes.includes(label)
      ? { ok: true, value: label }
      : bad(`label ${show(label)} is not one of the model's classes`);
  }
  if (typeof label === "number" && Number.isFinite(label)) {
    const spelled = String(label);
    if (classes.includes(spelled)) return { ok: true, value: spelled };
    const byIndex = Number.isInteger(label) && label >= 0 ? classes[label] : undefined;
    if (byIndex !== undefined) return { ok: true, value: byIndex };
    return bad(`label ${show(label)} is neither a class nor a class index`);
  }
  return bad(`label ${show(label)} is not a string or a class index`);
}

/** Probabilities keyed by class, in classes order. */
function checkProbabilities(
  value: unknown,
  classes: readonly string[],
): Checked<Record<string, number>> {
  let entries: [string, unknown][];
  if (Array.isArray(value)) {
    if (value.length !== classes.length) {
      return bad(`probabilities hold ${value.length} values for ${classes.length} classes`);
    }
    entries = classes.map((c, i) => [c, value[i]]);
  } else if (isPlainObject(value)) {
    entries = Object.entries(value);
  } else {
    return bad("probabilities must be an object of class to probability");
  }
  const given = new Map<string, number>();
  let sum = 0;
  for (const [c, p] of entries) {
    if (!classes.includes(c)) return bad(`probabilities name ${show(c)}, not a class`);
    if (!isProbability(p)) return bad(`probability of ${show(c)} is ${show(p)}, not in [0, 1]`);
    given.set(c, p);
    sum += p;
  }
  if (!(Math.abs(sum - 1) <= PROBABILITY_SUM_TOLERANCE)) {
    return bad(`probabilities sum to ${sum}, not 1`);
  }
  const ordered: Record<string, number> = {};
  for (const c of classes) {
    const p = given.get(c);
    if (p !== undefined) ordered[c] = p;
  }
  return { ok: true, value: ordered };
}

// ---- helpers --------------------------------------------------------------------------------

function checkCall(rows: number, options: OutputOptions): Checked<number> {
  if (!Number.isSafeInteger(rows) || rows < 1) return bad(`rows must be a positive integer`);
  const threshold = options.threshold ?? DEFAULT_THRESHOLD;
  if (!isProbability(threshold)) return bad(`threshold ${show(threshold)} is not in [0, 1]`);
  return { ok: true, value: threshold };
}

function fieldsOf(spec: ModelOutputSpec): readonly Field[] {
  return spec.task === "regression" ? regressionFields : classificationFields;
}

function hasClasses(classes: string[] | null): classes is string[] {
  return classes !== null && classes.length >= 2;
}

function isProbability(value: unknown): value is number {
  return typeof value === "number" && value >= 0 && value <= 1;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A value as it appears in a reason: JSON, cut short. */
function show(value: unknown): string {
  let text: string;
  try {
    text =
      value === undefined || typeof value === "number"
        ? String(value)
        : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > 64 ? `${text.slice(0, 61)}...` : text;
}
