import { describe, expect, it } from "vitest";
import {
  longerThan,
  MAX_BATCH_ROWS,
  MAX_INPUT_ISSUES,
  validateInputs,
} from "../../shared/inference/inputs";
import { InputSchema } from "../../shared/schemas/model";

const schema = InputSchema.parse({
  type: "object",
  properties: {
    amount: { type: "number", minimum: 0, maximum: 10_000 },
    items: { type: "integer", minimum: 1 },
    country: { type: "string", enum: ["DE", "FR", "US"] },
    note: { type: "string", maxLength: 5 },
    is_new_customer: { type: "boolean" },
    risk_tier: { type: "integer", enum: [1, 2, 3] },
  },
  required: ["amount", "country"],
});

const open = InputSchema.parse({
  type: "object",
  properties: { amount: { type: "number" } },
  required: ["amount"],
  additionalProperties: true,
});

/** The issues of inputs that must be refused. */
function issues(inputs: unknown, against: InputSchema = schema) {
  const result = validateInputs(against, inputs);
  if (result.ok) throw new Error(`expected issues, got rows ${JSON.stringify(result.rows)}`);
  return result.issues;
}

/** The rows of inputs that must be accepted. */
function accepted(inputs: unknown, against: InputSchema = schema) {
  const result = validateInputs(against, inputs);
  if (!result.ok) throw new Error(`expected rows, got ${JSON.stringify(result.issues)}`);
  return result;
}

/** The single issue of one field value in a single prediction. */
function fieldIssue(name: string, value: unknown) {
  return issues({ amount: 10, country: "DE", [name]: value });
}

describe("validateInputs: shape of inputs", () => {
  it("accepts one object as a single prediction, keeping its keys and order", () => {
    const result = accepted({ country: "FR", amount: 12.5, is_new_customer: true });
    expect(result).toEqual({
      ok: true,
      batch: false,
      rows: [{ country: "FR", amount: 12.5, is_new_customer: true }],
    });
    expect(Object.keys(result.rows[0] ?? {})).toEqual(["country", "amount", "is_new_customer"]);
  });

  it("leaves absent optional features absent instead of inventing nulls", () => {
    const [row] = accepted({ amount: 1, country: "US" }).rows;
    expect(row).toEqual({ amount: 1, country: "US" });
    expect(Object.hasOwn(row ?? {}, "note")).toBe(false);
    expect(Object.hasOwn(row ?? {}, "items")).toBe(false);
  });

  it("returns fresh row objects, not the caller's", () => {
    const input = { amount: 1, country: "US" };
    const [row] = accepted(input).rows;
    expect(row).not.toBe(input);
    expect(row).toEqual(input);
  });

  it("accepts an array as a batch, rows in input order", () => {
    const result = accepted([
      { amount: 3, country: "US" },
      { amount: 1, country: "DE", items: 2 },
      { amount: 2, country: "FR", note: null },
    ]);
    expect(result.batch).toBe(true);
    expect(result.rows).toEqual([
      { amount: 3, country: "US" },
      { amount: 1, country: "DE", items: 2 },
      { amount: 2, country: "FR", note: null },
    ]);
  });

  it("treats an array of one as a batch", () => {
    expect(accepted([{ amount: 3, country: "US" }])).toEqual({
      ok: true,
      batch: true,
      rows: [{ amount: 3, country: "US" }],
    });
  });

  it("refuses inputs that are neither an object nor an array, at path inputs", () => {
    for (const value of [null, undefined, 5, "amount=3", true]) {
      expect(issues(value)).toEqual([
        { path: "inputs", message: "must be an object of features or an array of 1 to 100" },
      ]);
    }
  });

  it("refuses an empty batch", () => {
    expect(issues([])).toEqual([{ path: "inputs", message: "must hold at least one row" }]);
  });

  it("accepts 100 rows and refuses 101", () => {
    const row = { amount: 1, country: "DE" };
    expect(MAX_BATCH_ROWS).toBe(100);
    expect(accepted(Array.from({ length: 100 }, () => row)).rows).toHaveLength(100);
    expect(issues(Array.from({ length: 101 }, () => row))).toEqual([
      { path: "inputs", message: "must hold at most 100 rows, got 101" },
    ]);
  });

  it("refuses batch rows that are not objects, naming each", () => {
    expect(issues([{ amount: 1, country: "DE" }, [1, "DE"], null, "x"])).toEqual([
      { path: "inputs[1]", message: "must be an object of features" },
      { path: "inputs[2]", message: "must be an object of features" },
      { path: "inputs[3]", message: "must be an object of features" },
    ]);
  });
});

describe("validateInputs: required features and missing values", () => {
  it("requires required features to be present", () => {
    expect(issues({ amount: 5 })).toEqual([{ path: "inputs.country", message: "is required" }]);
    expect(issues({})).toEqual([
      { path: "inputs.amount", message: "is required" },
      { path: "inputs.country", message: "is required" },
    ]);
  });

  it("refuses null for a required feature", () => {
    expect(issues({ amount: null, country: "DE" })).toEqual([
      { path: "inputs.amount", message: "is required and must not be null" },
    ]);
  });

  it("accepts null for an optional feature as a missing value, and keeps it", () => {
    const [row] = accepted({
      amount: 5,
      country: "DE",
      items: null,
      note: null,
      is_new_customer: null,
      risk_tier: null,
    }).rows;
    expect(row).toEqual({
      amount: 5,
      country: "DE",
      items: null,
      note: null,
      is_new_customer: null,
      risk_tier: null,
    });
  });

  it("looks at own properties only, for declared and unknown names alike", () => {
    // The registry refuses such names; validation must still be safe if one got through.
    const odd = {
      type: "object",
      properties: { constructor: { type: "string" }, x: { type: "number" } },
      required: ["constructor"],
    } as InputSchema;
    // `constructor` is inherited by every object but not present here.
    expect(issues({ x: 1 }, odd)).toEqual([{ path: "inputs.constructor", message: "is required" }]);
    expect(issues({ amount: 1, country: "DE", toString: 1 })).toEqual([
      { path: "inputs.toString", message: "is not a feature of this model" },
    ]);
  });

  it("keeps a key named __proto__ as an own property, never as a prototype", () => {
    // JSON.parse makes `__proto__` an own property, as a request body would.
    expect(issues(JSON.parse('{"amount": 1, "__proto__": {"polluted": 1}}'), open)).toEqual([
      { path: "inputs.__proto__", message: "must be a number, string, boolean or null" },
    ]);
    const [kept] = accepted(JSON.parse('{"amount": 1, "__proto__": 3}'), open).rows;
    expect(Object.hasOwn(kept ?? {}, "__proto__")).toBe(true);
    expect(Object.getOwnPropertyDescriptor(kept, "__proto__")?.value).toBe(3);
    expect(Object.getPrototypeOf(kept)).toBe(Object.prototype);
    expect(issues(JSON.parse('{"amount": 1, "country": "DE", "__proto__": 3}'))).toEqual([
      { path: "inputs.__proto__", message: "is not a feature of this model" },
    ]);
    // A schema object that declares it (built as JSON.parse builds it).
    const declared = JSON.parse(
      '{"type":"object","properties":{"__proto__":{"type":"number"}},"required":["__proto__"]}',
    ) as InputSchema;
    expect(issues({}, declared)).toEqual([{ path: "inputs.__proto__", message: "is required" }]);
    const [own] = accepted(JSON.parse('{"__proto__": 4}'), declared).rows;
    expect(Object.getOwnPropertyDescriptor(own, "__proto__")?.value).toBe(4);
  });
});

describe("validateInputs: types", () => {
  it("accepts finite numbers for number features, integers included", () => {
    expect(accepted({ amount: 0.25, country: "DE" }).rows[0]?.amount).toBe(0.25);
    expect(accepted({ amount: 7, country: "DE" }).rows[0]?.amount).toBe(7);
  });

  it("refuses non-numbers for number features", () => {
    expect(fieldIssue("amount", "12")).toEqual([
      { path: "inputs.amount", message: "must be a number" },
    ]);
    expect(fieldIssue("amount", true)).toEqual([
      { path: "inputs.amount", message: "must be a number" },
    ]);
  });

  it("refuses NaN and infinities", () => {
    for (const value of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      expect(fieldIssue("items", value)).toEqual([
        { path: "inputs.items", message: "must be a finite number" },
      ]);
    }
    expect(fieldIssue("amount", Number.NaN)).toEqual([
      { path: "inputs.amount", message: "must be a finite number" },
    ]);
  });

  it("accepts integers and refuses fractions and strings for integer features", () => {
    expect(accepted({ amount: 1, country: "DE", items: 3 }).rows[0]?.items).toBe(3);
    expect(fieldIssue("items", 1.5)).toEqual([
      { path: "inputs.items", message: "must be an integer" },
    ]);
    expect(fieldIssue("items", "3")).toEqual([
      { path: "inputs.items", message: "must be an integer" },
    ]);
  });

  it("takes strings and booleans by their exact types", () => {
    expect(accepted({ amount: 1, country: "DE", note: "hi", is_new_customer: false }).rows).toEqual(
      [{ amount: 1, country: "DE", note: "hi", is_new_customer: false }],
    );
    expect(fieldIssue("note", 5)).toEqual([{ path: "inputs.note", message: "must be a string" }]);
    expect(fieldIssue("is_new_customer", "true")).toEqual([
      { path: "inputs.is_new_customer", message: "must be a boolean" },
    ]);
    expect(fieldIssue("is_new_customer", 1)).toEqual([
      { path: "inputs.is_new_customer", message: "must be a boolean" },
    ]);
  });

  it("refuses nested objects and arrays as feature values", () => {
    expect(fieldIssue("amount", { value: 1 })).toEqual([
      { path: "inputs.amount", message: "must be a number" },
    ]);
    expect(fieldIssue("note", ["a"])).toEqual([
      { path: "inputs.note", message: "must be a string" },
    ]);
    expect(fieldIssue("is_new_customer", [true])).toEqual([
      { path: "inputs.is_new_customer", message: "must be a boolean" },
    ]);
  });
});

describe("validateInputs: enum, bounds and length", () => {
  it("accepts enum members and refuses others, strings and numbers", () => {
    expect(accepted({ amount: 1, country: "US", risk_tier: 2 }).rows).toHaveLength(1);
    expect(fieldIssue("country", "UK")).toEqual([
      { path: "inputs.country", message: 'must be one of "DE", "FR", "US"' },
    ]);
    expect(fieldIssue("country", "de")).toEqual([
      { path: "inputs.country", message: 'must be one of "DE", "FR", "US"' },
    ]);
    expect(fieldIssue("risk_tier", 4)).toEqual([
      { path: "inputs.risk_tier", message: "must be one of 1, 2, 3" },
    ]);
  });

  it("names at most ten enum values in a message", () => {
    const many = InputSchema.parse({
      type: "object",
      properties: { code: { type: "string", enum: Array.from({ length: 12 }, (_, i) => `c${i}`) } },
    });
    expect(issues({ code: "x" }, many)).toEqual([
      {
        path: "inputs.code",
        message:
          'must be one of "c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", … (12 values)',
      },
    ]);
  });

  it("treats minimum and maximum as inclusive", () => {
    expect(accepted({ amount: 0, country: "DE", items: 1 }).rows).toHaveLength(1);
    expect(accepted({ amount: 10_000, country: "DE" }).rows).toHaveLength(1);
    expect(fieldIssue("amount", -0.01)).toEqual([
      { path: "inputs.amount", message: "must be at least 0" },
    ]);
    expect(fieldIssue("amount", 10_000.5)).toEqual([
      { path: "inputs.amount", message: "must be at most 10000" },
    ]);
    expect(fieldIssue("items", 0)).toEqual([
      { path: "inputs.items", message: "must be at least 1" },
    ]);
  });

  it("counts maxLength in Unicode code points", () => {
    const ok = (note: string) => accepted({ amount: 1, country: "DE", note }).rows[0]?.note;
    expect(ok("abcde")).toBe("abcde");
    expect(ok("ééééé")).toBe("ééééé");
    // Five emoji are ten UTF-16 units but five code points.
    expect(ok("😀😀😀😀😀")).toBe("😀😀😀😀😀");
    // A lone surrogate counts as one code point.
    expect(ok("\ud800\ud800\ud800\ud800\ud800")).toHaveLength(5);
    const tooLong = [{ path: "inputs.note", message: "must be at most 5 characters long" }];
    expect(fieldIssue("note", "abcdef")).toEqual(tooLong);
    expect(fieldIssue("note", "😀😀😀😀😀😀")).toEqual(tooLong);
    expect(fieldIssue("note", "a😀😀😀😀😀")).toEqual(tooLong);
  });

  it("longerThan counts code points with early exits", () => {
    expect(longerThan("", 1)).toBe(false);
    expect(longerThan("ab", 1)).toBe(true);
    expect(longerThan("😀", 1)).toBe(false);
    expect(longerThan("😀a", 1)).toBe(true);
    expect(longerThan("😀😀😀", 3)).toBe(false);
    expect(longerThan("😀😀😀😀", 3)).toBe(true);
    expect(longerThan("\udc00\ud800", 1)).toBe(true);
    expect(longerThan("x".repeat(7), 3)).toBe(true);
  });
});

describe("validateInputs: unknown features", () => {
  it("refuses features the schema does not declare", () => {
    expect(issues({ amount: 1, country: "DE", colour: "red", "odd name": 1 })).toEqual([
      { path: "inputs.colour", message: "is not a feature of this model" },
      { path: "inputs.odd name", message: "is not a feature of this model" },
    ]);
  });

  it("keeps them as they are when additionalProperties is true", () => {
    expect(accepted({ amount: 1, colour: "red", n: 2, flag: false, gap: null }, open).rows).toEqual(
      [{ amount: 1, colour: "red", n: 2, flag: false, gap: null }],
    );
  });

  it("still refuses nested or non-finite values in additional features", () => {
    expect(issues({ amount: 1, tags: ["a"], meta: { a: 1 }, inf: Number.NaN }, open)).toEqual([
      { path: "inputs.tags", message: "must be a number, string, boolean or null" },
      { path: "inputs.meta", message: "must be a number, string, boolean or null" },
      { path: "inputs.inf", message: "must be a number, string, boolean or null" },
    ]);
  });

  it("still checks declared features when additionalProperties is true", () => {
    expect(issues({ amount: "1", extra: 1 }, open)).toEqual([
      { path: "inputs.amount", message: "must be a number" },
    ]);
  });
});

describe("validateInputs: batches are all-or-nothing", () => {
  it("collects every issue of every row, by row, declared features first", () => {
    const result = validateInputs(schema, [
      { amount: 1, country: "DE" },
      { amount: -1, country: "XX", colour: "red" },
      { amount: 1, country: "DE" },
      { country: "US", items: 2.5 },
    ]);
    expect(result).toEqual({
      ok: false,
      issues: [
        { path: "inputs[1].amount", message: "must be at least 0" },
        { path: "inputs[1].country", message: 'must be one of "DE", "FR", "US"' },
        { path: "inputs[1].colour", message: "is not a feature of this model" },
        { path: "inputs[3].amount", message: "is required" },
        { path: "inputs[3].items", message: "must be an integer" },
      ],
    });
  });

  it("refuses a whole batch for one bad row", () => {
    const rows = Array.from({ length: 10 }, () => ({ amount: 1, country: "DE" }));
    rows[9] = { amount: 1, country: "ZZ" };
    expect(issues(rows)).toEqual([
      { path: "inputs[9].country", message: 'must be one of "DE", "FR", "US"' },
    ]);
  });

  it("stops at 100 issues", () => {
    expect(MAX_INPUT_ISSUES).toBe(100);
    const rows = Array.from({ length: 100 }, () => ({ colour: "red" }));
    const found = issues(rows);
    expect(found).toHaveLength(100);
    // Three issues per row: rows 0..32 complete, then the first of row 33.
    expect(found[0]).toEqual({ path: "inputs[0].amount", message: "is required" });
    expect(found[2]).toEqual({
      path: "inputs[0].colour",
      message: "is not a feature of this model",
    });
    expect(found[99]).toEqual({ path: "inputs[33].amount", message: "is required" });
  });
});
