import fc from "fast-check";

/**
 * Request parts for the API fuzz suite, derived from the OpenAPI document:
 * values that follow a schema, and hostile ones in their place — strings
 * Postgres cannot store, numbers at the edges of what JSON and Postgres
 * hold, nesting past the body bound, sizes past the field limits, wrong
 * types.
 */

export type JsonSchema = {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minimum?: number;
  maximum?: number;
  format?: string;
  nullable?: boolean;
};

export interface Components {
  schemas?: Record<string, JsonSchema>;
}

/** Strings Postgres cannot store: a NUL, lone surrogates. */
export const storageBreakers = [
  "\u0000",
  "nul\u0000inside",
  "\uD800",
  "lone \uDC00 low",
  "\uDBFF\uDBFF",
];

/** Strings that have broken, or could break, a service that stores what it is sent. */
export const hostileStrings = [
  ...storageBreakers,
  "",
  " ",
  "😀",
  "%00",
  "../../etc/passwd",
  "'; DROP TABLE predictions; --",
  "$" + "{jndi:ldap://x}",
  "<script>alert(1)</script>",
  "0000-01-01T00:00:00Z",
  "9999-12-31T23:59:59.999Z",
  "275761-01-01T00:00:00Z",
  "1e309",
  "-0",
  "NaN",
  "__proto__",
  "constructor",
  "a".repeat(300),
  "x".repeat(70_000),
  "\u202Eevil",
  "\r\nSet-Cookie: x=1",
];

export const hostileNumbers = [
  0,
  -0,
  -1,
  1.5,
  2 ** 31,
  -(2 ** 31) - 1,
  2 ** 53 + 2,
  -(2 ** 63),
  1e308,
  -1e308,
  5e-324,
  Number.MAX_SAFE_INTEGER,
  8.64e15 + 1,
];

/** Arrays nested past the body bound (32), and just inside it. */
function nested(levels: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < levels; i++) value = [value];
  return value;
}

export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(...storageBreakers),
  fc.constantFrom(...hostileStrings),
  fc.constantFrom(...hostileNumbers),
  fc.constantFrom(null, true, false, [], {}, [null], { "": "" }, { "a\u0000": 1 }),
  fc.constantFrom(nested(31), nested(33), nested(200)),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.jsonValue({ maxDepth: 3 }),
);

function resolve(schema: JsonSchema, components: Components): JsonSchema {
  let current = schema;
  for (let hops = 0; current.$ref && hops < 10; hops++) {
    const name = current.$ref.replace("#/components/schemas/", "");
    current = components.schemas?.[name] ?? {};
  }
  return current;
}

/**
 * Values of the resources the suite owns, by field name (`model`,
 * `predictionId`, …): a field so named takes one of them now and then, so
 * that requests reach past "no such model" into what a route does.
 */
export type FieldPools = Record<string, readonly unknown[]>;

/** A value that follows the schema where it can, hostile in about one place in eight. */
export function valueFor(
  schema: JsonSchema,
  components: Components,
  depth = 0,
  pools: FieldPools = {},
): fc.Arbitrary<unknown> {
  const conforming = conformingValue(schema, components, depth, pools);
  return fc.oneof({ weight: 7, arbitrary: conforming }, { weight: 1, arbitrary: hostileValue });
}

function conformingValue(
  raw: JsonSchema,
  components: Components,
  depth: number,
  pools: FieldPools,
): fc.Arbitrary<unknown> {
  const schema = resolve(raw, components);
  if (depth > 6) return fc.jsonValue({ maxDepth: 1 });
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum && schema.enum.length > 0) return fc.constantFrom(...schema.enum);
  const options = schema.anyOf ?? schema.oneOf;
  if (options && options.length > 0) {
    return fc.oneof(...options.map((option) => valueFor(option, components, depth + 1, pools)));
  }
  if (schema.allOf && schema.allOf.length > 0) {
    const merged: JsonSchema = { type: "object", properties: {}, required: [] };
    for (const part of schema.allOf) {
      const resolved = resolve(part, components);
      Object.assign(merged.properties ?? {}, resolved.properties ?? {});
      merged.required?.push(...(resolved.required ?? []));
    }
    return conformingValue(merged, components, depth, pools);
  }
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  const type = types.find((t) => t !== "null") ?? (schema.properties ? "object" : undefined);
  switch (type) {
    case "string":
      if (schema.format === "uuid") return fc.uuid({ version: 7 });
      if (schema.format === "uri") return fc.webUrl();
      return schema.format === "date-time"
        ? fc
            .date({ min: new Date("2000-01-01"), max: new Date("2100-01-01"), noInvalidDate: true })
            .map((d) => d.toISOString())
        : fc.oneof(
            fc.string({ maxLength: 20 }),
            fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,20}[a-z0-9]$/),
          );
    case "integer":
      return fc.integer({
        min: Math.max(schema.minimum ?? -1000, -1_000_000),
        max: Math.min(schema.maximum ?? 1000, 1_000_000),
      });
    case "number":
      return fc.double({
        min: schema.minimum ?? -1e6,
        max: schema.maximum ?? 1e6,
        noNaN: true,
        noDefaultInfinity: true,
      });
    case "boolean":
      return fc.boolean();
    case "array": {
      const items = schema.items ?? {};
      return fc.array(valueFor(items, components, depth + 1, pools), {
        minLength: Math.min(schema.minItems ?? 0, 3),
        maxLength: Math.min(schema.maxItems ?? 4, 4),
      });
    }
    case "object": {
      const properties = schema.properties ?? {};
      const required = new Set(schema.required ?? []);
      const record: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [name, property] of Object.entries(properties)) {
        const value = valueFor(property, components, depth + 1, pools);
        const owned = pools[name];
        record[name] =
          owned && owned.length > 0
            ? fc.oneof(
                { weight: 2, arbitrary: fc.constantFrom(...owned) },
                { weight: 1, arbitrary: value },
              )
            : value;
      }
      const base = fc.record(record, {
        requiredKeys: [...required].filter((name) => name in record),
      });
      // Now and then a field the schema does not know.
      const extra = fc.oneof(
        { weight: 6, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: fc.constantFrom("extra", "__proto__", "a\u0000b") },
      );
      return fc
        .tuple(base, extra)
        .map(([value, key]) =>
          key === null ? value : { ...(value as object), [key]: "unexpected" },
        );
    }
    default:
      return fc.jsonValue({ maxDepth: 3 });
  }
}

/** A path or query value: a pool value the suite owns, a hostile string, or a made-up one. */
export function textFor(pool: readonly string[]): fc.Arbitrary<string> {
  const choices: fc.WeightedArbitrary<string>[] = [
    { weight: 2, arbitrary: fc.constantFrom(...storageBreakers) },
    // URLs stay within what a client library would send.
    { weight: 2, arbitrary: fc.constantFrom(...hostileStrings.filter((s) => s.length <= 300)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
  ];
  if (pool.length > 0) choices.unshift({ weight: 5, arbitrary: fc.constantFrom(...pool) });
  return fc.oneof(...choices);
}

/** Percent-encodes as a client would; a lone surrogate goes as the raw bytes of its UTF-8 form. */
export function encodePart(value: string): string {
  try {
    return encodeURIComponent(value);
  } catch {
    return value.replace(/[\uD800-\uDFFF]/g, "%ED%A0%80").replace(/[^%\w.-]/g, "_");
  }
}
