import { describe, expect, it } from "vitest";
import { type InputRow, validateInputs } from "../../shared/inference/inputs";
import { toV2Request } from "../../shared/inference/v2-request";
import { InputSchema } from "../../shared/schemas/model";

const schema = InputSchema.parse({
  type: "object",
  properties: {
    country: { type: "string", enum: ["DE", "FR", "US"] },
    amount: { type: "number", minimum: 0 },
    items: { type: "integer" },
    is_new_customer: { type: "boolean" },
  },
  required: ["amount", "country"],
});

const open = InputSchema.parse({
  type: "object",
  properties: { amount: { type: "number" } },
  additionalProperties: true,
});

describe("toV2Request", () => {
  it("builds one tensor per feature in the schema's order, shape [rows]", () => {
    const rows = [
      { amount: 12.5, country: "DE", items: 2, is_new_customer: true },
      { is_new_customer: false, items: 1, country: "US", amount: 0 },
    ];
    expect(toV2Request(schema, rows)).toEqual({
      inputs: [
        { name: "country", shape: [2], datatype: "BYTES", data: ["DE", "US"] },
        { name: "amount", shape: [2], datatype: "FP64", data: [12.5, 0] },
        { name: "items", shape: [2], datatype: "INT64", data: [2, 1] },
        { name: "is_new_customer", shape: [2], datatype: "BOOL", data: [true, false] },
      ],
    });
  });

  it("builds shape [1] for a single row", () => {
    const request = toV2Request(schema, [{ amount: 3, country: "FR" }]);
    expect(request.inputs.map((t) => [t.name, t.shape, t.data])).toEqual([
      ["country", [1], ["FR"]],
      ["amount", [1], [3]],
      ["items", [1], [null]],
      ["is_new_customer", [1], [null]],
    ]);
  });

  it("sends null for null and absent values alike, and JSON keeps it", () => {
    const request = toV2Request(schema, [
      { amount: 1, country: "DE", items: null },
      { amount: 2, country: "US", is_new_customer: null },
      { amount: 3, country: "FR", items: 7, is_new_customer: true },
    ]);
    expect(request.inputs[2]).toEqual({
      name: "items",
      shape: [3],
      datatype: "INT64",
      data: [null, null, 7],
    });
    expect(request.inputs[3]).toEqual({
      name: "is_new_customer",
      shape: [3],
      datatype: "BOOL",
      data: [null, null, true],
    });
    expect(JSON.parse(JSON.stringify(request))).toEqual(request);
  });

  it("leaves out features the schema does not declare unless additionalProperties is true", () => {
    const request = toV2Request(schema, [{ amount: 1, country: "DE", colour: "red" }]);
    expect(request.inputs.map((t) => t.name)).toEqual([
      "country",
      "amount",
      "items",
      "is_new_customer",
    ]);
  });

  it("appends additional features sorted by name, typed by their values", () => {
    const rows: InputRow[] = [
      { amount: 1, zeta: "z", Beta: true, alpha: 1.5, mixed: 1, empty: null },
      { amount: 2, zeta: null, Beta: false, alpha: 2, mixed: "two" },
      { amount: 3, mixed: true, extra: "x" },
    ];
    expect(toV2Request(open, rows).inputs).toEqual([
      { name: "amount", shape: [3], datatype: "FP64", data: [1, 2, 3] },
      // Sorted by UTF-16 code units: uppercase before lowercase.
      { name: "Beta", shape: [3], datatype: "BOOL", data: [true, false, null] },
      { name: "alpha", shape: [3], datatype: "FP64", data: [1.5, 2, null] },
      { name: "empty", shape: [3], datatype: "BYTES", data: [null, null, null] },
      { name: "extra", shape: [3], datatype: "BYTES", data: [null, null, "x"] },
      { name: "mixed", shape: [3], datatype: "BYTES", data: ["1", "two", "true"] },
      { name: "zeta", shape: [3], datatype: "BYTES", data: ["z", null, null] },
    ]);
  });

  it("adds request parameters when given, as a copy", () => {
    const parameters = { content_type: "pd", threshold: 0.5, explain: false };
    const request = toV2Request(schema, [{ amount: 1, country: "DE" }], parameters);
    expect(request.parameters).toEqual({ content_type: "pd", threshold: 0.5, explain: false });
    expect(request.parameters).not.toBe(parameters);
    expect(Object.keys(request)).toEqual(["parameters", "inputs"]);
    expect(Object.hasOwn(toV2Request(schema, [{ amount: 1, country: "DE" }]), "parameters")).toBe(
      false,
    );
  });

  it("takes validated rows straight from validateInputs", () => {
    const validated = validateInputs(schema, [
      { amount: 5, country: "FR" },
      { amount: 6, country: "DE", items: 4 },
    ]);
    if (!validated.ok) throw new Error(JSON.stringify(validated.issues));
    expect(toV2Request(schema, validated.rows).inputs).toEqual([
      { name: "country", shape: [2], datatype: "BYTES", data: ["FR", "DE"] },
      { name: "amount", shape: [2], datatype: "FP64", data: [5, 6] },
      { name: "items", shape: [2], datatype: "INT64", data: [null, 4] },
      { name: "is_new_customer", shape: [2], datatype: "BOOL", data: [null, null] },
    ]);
  });
});
