/**
 * Building an Open Inference Protocol (V2) inference request from validated
 * input rows. Pure: no bindings, no I/O.
 *
 * One input tensor per feature, in the schema's `properties` order, each of
 * shape [rows] with element i taken from row i. Datatypes: FP64 for `number`,
 * INT64 for `integer`, BYTES for `string`, BOOL for `boolean`. When the schema
 * allows additional properties, the extra features present in any row follow,
 * sorted by name, typed by their non-null values (all booleans: BOOL, all
 * numbers: FP64, otherwise BYTES with each value as its JSON text, strings as
 * they are).
 *
 * Missing values: the protocol has no notation for them and JSON cannot carry
 * NaN, so a feature that is null or absent in a row is `null` at that row's
 * position in `data`. Upstreams must accept null there (or the model declare
 * such features required).
 */

import type { InputSchema } from "../schemas/model";
import type { FeatureValue, InputRow } from "./inputs";

export type V2Datatype = "FP64" | "INT64" | "BYTES" | "BOOL";
export type V2Parameters = Record<string, string | number | boolean>;

export interface V2InputTensor {
  name: string;
  shape: [number];
  datatype: V2Datatype;
  data: (number | string | boolean | null)[];
}

export interface V2InferenceRequest {
  parameters?: V2Parameters;
  inputs: V2InputTensor[];
}

export const datatypeOf = {
  number: "FP64",
  integer: "INT64",
  string: "BYTES",
  boolean: "BOOL",
} as const satisfies Record<InputSchema["properties"][string]["type"], V2Datatype>;

export function toV2Request(
  schema: InputSchema,
  rows: readonly InputRow[],
  parameters?: V2Parameters,
): V2InferenceRequest {
  const column = (name: string) => rows.map((row) => valueAt(row, name));
  const inputs: V2InputTensor[] = Object.entries(schema.properties).map(([name, feature]) => ({
    name,
    shape: [rows.length],
    datatype: datatypeOf[feature.type],
    data: column(name),
  }));
  if (schema.additionalProperties === true) {
    const extra = new Set<string>();
    for (const row of rows) {
      for (const name of Object.keys(row)) {
        if (!Object.hasOwn(schema.properties, name)) extra.add(name);
      }
    }
    for (const name of [...extra].sort(byCodeUnits)) {
      inputs.push(extraTensor(name, column(name)));
    }
  }
  return parameters === undefined ? { inputs } : { parameters: { ...parameters }, inputs };
}

function valueAt(row: InputRow, name: string): FeatureValue {
  return Object.hasOwn(row, name) ? (row[name] ?? null) : null;
}

/** A tensor for a feature the schema does not declare, typed by its values. */
function extraTensor(name: string, data: FeatureValue[]): V2InputTensor {
  const present = data.filter((v) => v !== null);
  const shape: [number] = [data.length];
  if (present.length > 0 && present.every((v) => typeof v === "boolean")) {
    return { name, shape, datatype: "BOOL", data };
  }
  if (present.length > 0 && present.every((v) => typeof v === "number")) {
    return { name, shape, datatype: "FP64", data };
  }
  const text = data.map((v) => (v === null || typeof v === "string" ? v : JSON.stringify(v)));
  return { name, shape, datatype: "BYTES", data: text };
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
