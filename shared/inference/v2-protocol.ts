/**
 * The Open Inference Protocol (V2) as Airlock serves it: decoding inference
 * requests into input rows and encoding canonical predictions as output
 * tensors. Pure: no bindings, no I/O.
 *
 * Requests. One input tensor per feature, batched along the first dimension:
 * shape [rows] or [rows, 1], 1 to 100 rows, data flat or nested (row-major).
 * Element types follow the datatype: BOOL booleans, the INT and UINT types integers,
 * FP* finite numbers, BYTES strings; `null` marks a missing value. A feature
 * with no tensor is absent from every row. The protocol allows only scalar
 * parameter values, so `parameters.key` carries the sticky bucketing key and
 * `parameters["attribute.<name>"]` each segment attribute. `outputs`, when
 * given, picks output tensors by name.
 *
 * Responses. Output tensors are named after the canonical prediction fields:
 * `label` (BYTES, [rows]), `score` (FP64, [rows]: the positive class's
 * probability, binary models), `probabilities` (FP64, [rows, classes], columns
 * in the model's classes order, listed in the tensor's `classes` parameter as
 * JSON) and `value` (FP64, [rows]). A tensor is sent when every row's
 * prediction has that field. `parameters.prediction_id` lists the prediction
 * ids, comma-separated, in row order; `parameters.fallback` is true when a
 * fallback answered.
 */
import type { InputSchema } from "../schemas/model";

import { type InputIssue, type InputRow, MAX_BATCH_ROWS } from "./inputs";
import type { CanonicalPrediction } from "./outputs";
import { datatypeOf } from "./v2-request";

export const v2Datatypes = [
  "BOOL",
  "UINT8",
  "UINT16",
  "UINT32",
  "UINT64",
  "INT8",
  "INT16",
  "INT32",
  "INT64",
  "FP16",
  "FP32",
  "FP64",
  "BYTES",
] as const;
export type V2Datatype = (typeof v2Datatypes)[number];

export type V2Scalar = string | number | boolean;

export interface V2Tensor {
  name: string;
  shape: number[];
  datatype: string;
  parameters?: Record<string, V2Scalar>;
  data: unknown[];
}

export interface DecodedV2Request {
  id: string | undefined;
  rows: InputRow[];
  key: string | undefined;
  attributes: Record<string, string>;
  /** Output tensors asked for by name; undefined for all. */
  outputs: string[] | undefined;
}

export type DecodeResult =
  | { ok: true; value: DecodedV2Request }
  | { ok: false; issues: InputIssue[] };

const ATTRIBUTE_PREFIX = "attribute.";
const attributeName = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_ATTRIBUTES = 32;
const MAX_ISSUES = 100;

export const outputNames = {
  classification: ["label", "score", "probabilities"],
  regression: ["value"],
} as const;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Reads an inference request into rows of features for the model's input
 * schema. Checks the protocol's shape only: the rows are then validated
 * against the schema like any other prediction's.
 */
export function decodeV2Request(
  body: unknown,
  schema: InputSchema,
  task: "classification" | "regression",
): DecodeResult {
  const issues: InputIssue[] = [];
  const add = (path: string, message: string) => {
    if (issues.length < MAX_ISSUES) issues.push({ path, message });
  };
  if (!isObject(body))
    return { ok: false, issues: [{ path: "body", message: "must be an object" }] };
  for (const field of Object.keys(body)) {
    if (!["id", "parameters", "inputs", "outputs"].includes(field)) {
      add(field, "is not a field of an inference request");
    }
  }

  let id: string | undefined;
  if (body.id !== undefined) {
    if (typeof body.id !== "string" || body.id.length > 256)
      add("id", "must be a string of at most 256 characters");
    else id = body.id;
  }

  let key: string | undefined;
  const attributes: Record<string, string> = {};
  if (body.parameters !== undefined) {
    if (!isObject(body.parameters)) add("parameters", "must be an object of scalar values");
    else {
      for (const [name, value] of Object.entries(body.parameters)) {
        const path = `parameters.${name}`;
        if (!isScalar(value)) {
          add(path, "must be a string, number or boolean");
          continue;
        }
        if (name === "key") {
          const text = String(value);
          if (typeof value === "boolean" || text === "" || text.length > 256) {
            add(path, "must be a string or number of 1 to 256 characters");
          } else key = text;
        } else if (name.startsWith(ATTRIBUTE_PREFIX)) {
          const attribute = name.slice(ATTRIBUTE_PREFIX.length);
          if (!attributeName.test(attribute)) {
            add(path, "must name an attribute of 1 to 64 letters, digits, '_', '.' or '-'");
          } else if (String(value).length > 256) add(path, "must be at most 256 characters");
          else attributes[attribute] = String(value);
        }
      }
      if (Object.keys(attributes).length > MAX_ATTRIBUTES) {
        add("parameters", `must carry at most ${MAX_ATTRIBUTES} attributes`);
      }
    }
  }

  let outputs: string[] | undefined;
  if (body.outputs !== undefined) {
    if (!Array.isArray(body.outputs)) add("outputs", "must be an array of requested outputs");
    else {
      const known: readonly string[] = outputNames[task];
      outputs = [];
      for (const [i, item] of body.outputs.entries()) {
        if (!isObject(item) || typeof item.name !== "string") {
          add(`outputs[${i}]`, "must be an object with a name");
        } else if (!known.includes(item.name)) {
          add(
            `outputs[${i}].name`,
            `'${item.name}' is not an output of this model (${known.join(", ")})`,
          );
        } else outputs.push(item.name);
      }
    }
  }

  const rows = decodeInputs(body.inputs, schema, add);
  if (issues.length > 0 || !rows) return { ok: false, issues };
  return { ok: true, value: { id, rows, key, attributes, outputs } };
}

function isScalar(value: unknown): value is V2Scalar {
  return (
    typeof value === "string" ||
    typeof value === "boolean" ||
    (typeof value === "number" && Number.isFinite(value))
  );
}

function decodeInputs(
  inputs: unknown,
  schema: InputSchema,
  add: (path: string, message: string) => void,
): InputRow[] | null {
  if (!Array.isArray(inputs) || inputs.length === 0) {
    add("inputs", "must be a non-empty array of input tensors, one per feature");
    return null;
  }
  let rowCount: number | undefined;
  const columns: { name: string; values: (V2Scalar | null)[] }[] = [];
  const seen = new Set<string>();
  for (const [i, tensor] of inputs.entries()) {
    const at = `inputs[${i}]`;
    if (!isObject(tensor)) {
      add(at, "must be an input tensor");
      continue;
    }
    const { name, shape, datatype, data } = tensor;
    if (typeof name !== "string" || name === "") {
      add(`${at}.name`, "must be a feature name");
      continue;
    }
    const where = `inputs[${i}] (${name})`;
    if (seen.has(name)) add(`${where}.name`, "repeats an input");
    seen.add(name);
    if (!Object.hasOwn(schema.properties, name) && schema.additionalProperties !== true) {
      add(`${where}.name`, `'${name}' is not a feature of this model`);
      continue;
    }
    if (tensor.parameters !== undefined && !isObject(tensor.parameters)) {
      add(`${where}.parameters`, "must be an object of scalar values");
    }
    if (typeof datatype !== "string" || !(v2Datatypes as readonly string[]).includes(datatype)) {
      add(`${where}.datatype`, `must be one of ${v2Datatypes.join(", ")}`);
      continue;
    }
    if (
      !Array.isArray(shape) ||
      shape.some((d) => typeof d !== "number" || !Number.isInteger(d) || d < 0) ||
      !(shape.length === 1 || (shape.length === 2 && shape[1] === 1))
    ) {
      add(`${where}.shape`, "must be [rows] or [rows, 1]: one value per row");
      continue;
    }
    const rows = shape[0] as number;
    if (rows < 1 || rows > MAX_BATCH_ROWS) {
      add(`${where}.shape`, `must have 1 to ${MAX_BATCH_ROWS} rows, got ${rows}`);
      continue;
    }
    if (rowCount === undefined) rowCount = rows;
    else if (rows !== rowCount) {
      add(`${where}.shape`, `has ${rows} rows, but the first input has ${rowCount}`);
      continue;
    }
    if (!Array.isArray(data)) {
      add(`${where}.data`, "must be an array");
      continue;
    }
    const flat = flatten(data);
    if (!flat || flat.length !== rows) {
      add(
        `${where}.data`,
        `must hold ${rows} values for shape [${shape.join(", ")}], flat or nested`,
      );
      continue;
    }
    const values: (V2Scalar | null)[] = [];
    for (const [row, value] of flat.entries()) {
      const problem = elementProblem(datatype as V2Datatype, value);
      if (problem) {
        add(`${where}.data[${row}]`, problem);
        break;
      }
      values.push(value as V2Scalar | null);
    }
    columns.push({ name, values });
  }
  if (rowCount === undefined || columns.length !== inputs.length) return null;
  const rows: InputRow[] = Array.from({ length: rowCount }, () => ({}));
  for (const { name, values } of columns) {
    for (let r = 0; r < rowCount; r++) (rows[r] as InputRow)[name] = values[r] ?? null;
  }
  return rows;
}

/** Row-major elements of nested arrays, or null when nested deeper than a matrix. */
function flatten(data: unknown[]): unknown[] | null {
  const out: unknown[] = [];
  for (const item of data) {
    if (Array.isArray(item)) {
      if (item.some(Array.isArray)) return null;
      out.push(...item);
    } else out.push(item);
  }
  return out;
}

/**
 * What each integer datatype holds. INT64 and UINT64 reach past what a JSON
 * number carries exactly: JavaScript's safe integers are their range here.
 */
const integerRanges: Record<
  Exclude<V2Datatype, "BOOL" | "BYTES" | "FP16" | "FP32" | "FP64">,
  [number, number]
> = {
  INT8: [-128, 127],
  INT16: [-32_768, 32_767],
  INT32: [-2_147_483_648, 2_147_483_647],
  INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
  UINT8: [0, 255],
  UINT16: [0, 65_535],
  UINT32: [0, 4_294_967_295],
  UINT64: [0, Number.MAX_SAFE_INTEGER],
};

function elementProblem(datatype: V2Datatype, value: unknown): string | null {
  if (value === null) return null; // a missing value
  switch (datatype) {
    case "BOOL":
      return typeof value === "boolean" ? null : "must be a boolean (BOOL)";
    case "BYTES":
      return typeof value === "string" ? null : "must be a string (BYTES)";
    case "FP16":
    case "FP32":
    case "FP64":
      return typeof value === "number" && Number.isFinite(value)
        ? null
        : `must be a finite number (${datatype})`;
    default: {
      if (typeof value !== "number" || !Number.isInteger(value))
        return `must be an integer (${datatype})`;
      const [min, max] = integerRanges[datatype];
      if (value < min || value > max) return `must be between ${min} and ${max} (${datatype})`;
      return null;
    }
  }
}

/** `inputs[3].amount` (a row issue from validation) as the tensor's element: `amount[3]`. */
export function tensorIssuePath(path: string): string {
  const match = /^inputs\[(\d+)\]\.(.+)$/.exec(path);
  return match ? `${match[2]}[${match[1]}]` : path;
}

export interface V2ResponseInput {
  model: string;
  version: string | null;
  id: string;
  predictionIds: string[];
  outputs: CanonicalPrediction[];
  fallback: boolean;
  classes: string[] | null;
  requested: string[] | undefined;
}

export interface V2InferenceResponse {
  model_name: string;
  model_version?: string;
  id: string;
  parameters: Record<string, V2Scalar>;
  outputs: V2Tensor[];
}

export function encodeV2Response(input: V2ResponseInput): V2InferenceResponse {
  const rows = input.outputs.length;
  const tensors: V2Tensor[] = [];
  const every = <K extends string>(field: K) =>
    input.outputs.every((p) => field in p && (p as Record<string, unknown>)[field] !== undefined);
  const want = (name: string) => !input.requested || input.requested.includes(name);
  if (every("label") && want("label")) {
    tensors.push({
      name: "label",
      shape: [rows],
      datatype: "BYTES",
      data: input.outputs.map((p) => (p as { label: string }).label),
    });
  }
  if (every("score") && want("score")) {
    tensors.push({
      name: "score",
      shape: [rows],
      datatype: "FP64",
      data: input.outputs.map((p) => (p as { score: number }).score),
    });
  }
  if (every("probabilities") && want("probabilities") && input.classes) {
    const classes = input.classes;
    tensors.push({
      name: "probabilities",
      shape: [rows, classes.length],
      datatype: "FP64",
      parameters: { classes: JSON.stringify(classes) },
      data: input.outputs.flatMap((p) => {
        const probabilities = (p as { probabilities: Record<string, number> }).probabilities;
        return classes.map((c) => probabilities[c] ?? 0);
      }),
    });
  }
  if (every("value") && want("value")) {
    tensors.push({
      name: "value",
      shape: [rows],
      datatype: "FP64",
      data: input.outputs.map((p) => (p as { value: number }).value),
    });
  }
  const parameters: Record<string, V2Scalar> = { prediction_id: input.predictionIds.join(",") };
  if (input.fallback) parameters.fallback = true;
  const response: V2InferenceResponse = {
    model_name: input.model,
    id: input.id,
    parameters,
    outputs: tensors,
  };
  if (input.version) response.model_version = input.version;
  return response;
}

export interface V2MetadataTensor {
  name: string;
  datatype: string;
  shape: number[];
}

/** Model metadata: inputs from the input schema, outputs from the task. */
export function modelMetadata(
  name: string,
  versions: string[],
  schema: InputSchema,
  task: "classification" | "regression",
  classes: string[] | null,
): {
  name: string;
  versions: string[];
  platform: string;
  inputs: V2MetadataTensor[];
  outputs: V2MetadataTensor[];
} {
  const inputs = Object.entries(schema.properties).map(([feature, spec]) => ({
    name: feature,
    datatype: datatypeOf[spec.type],
    shape: [-1],
  }));
  const outputs: V2MetadataTensor[] =
    task === "regression"
      ? [{ name: "value", datatype: "FP64", shape: [-1] }]
      : [
          { name: "label", datatype: "BYTES", shape: [-1] },
          ...(classes?.length === 2 ? [{ name: "score", datatype: "FP64", shape: [-1] }] : []),
          { name: "probabilities", datatype: "FP64", shape: [-1, classes?.length ?? -1] },
        ];
  return { name, versions, platform: "airlock", inputs, outputs };
}
