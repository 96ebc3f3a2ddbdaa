import { beforeAll, describe, expect, it } from "vitest";
import { call, type ErrorJson, json } from "./helpers";
import { modelWithVersions, putRollout } from "./rollout-helpers";
import { defaultWordingIn, wordingProblem } from "./validation-wording";

/**
 * A 400 for a bad field says what is wrong in words for people, after the
 * field's path: "is required", "must be a string", "must be one of 'v2' or
 * 'json'", never zod's own "Invalid input: expected string, received
 * undefined". The first part pins the words; the second derives bad
 * requests for every route in /openapi.json (a missing required field, a
 * wrong type, a number out of range, a string too long, an unknown key, a
 * wrong enum value, in bodies, query strings and paths) and holds every
 * answer to them.
 */

let model = "";
let apiKey = "";

beforeAll(async () => {
  model = await modelWithVersions(1, "words");
  expect((await putRollout(model, { champion: "v1" })).status).toBe(200);
  const key = await call("/admin/keys", {
    method: "POST",
    body: { name: "words", models: [model] },
  });
  expect(key.status).toBe(201);
  apiKey = (await json<{ key: string }>(key)).key;
});

/** The 400's details, as path → message, after checking that it is one. */
async function details(response: Response): Promise<Record<string, string>> {
  const body = await json<ErrorJson>(response);
  expect(response.status, JSON.stringify(body)).toBe(400);
  expect(body.error.code).toBe("VALIDATION_FAILED");
  expect(wordingProblem(body.error)).toBeNull();
  return Object.fromEntries((body.error.details ?? []).map((d) => [d.path, d.message]));
}

const post = (path: string, body: unknown, token?: string) =>
  call(path, { method: "POST", body, ...(token ? { token } : {}) });

describe("validation messages: the words", () => {
  it("says a missing field is required, and what type a field must be", async () => {
    const found = await details(
      await post("/admin/models", { name: 5, owner: "x", description: 7, public: "no" }),
    );
    expect(found).toMatchObject({
      name: "must be a string",
      task: "is required: one of 'classification' or 'regression'",
      description: "must be a string",
      inputSchema: "is required",
      public: "must be true or false",
    });
  });

  it("lists the allowed values of an enum, and of a discriminator", async () => {
    const found = await details(
      await post(`/admin/models/${model}/versions`, {
        version: "v9",
        upstream: { kind: "http", url: "https://example.com", protocol: "grpc", timeoutMs: 10 },
      }),
    );
    expect(found["upstream.protocol"]).toBe("must be one of 'v2' or 'json'");
    const kinds = await details(
      await post(`/admin/models/${model}/versions`, { version: "v9", upstream: { kind: "s3" } }),
    );
    expect(kinds["upstream.kind"]).toBe("must be one of 'http' or 'builtin'");
    const none = await details(
      await post(`/admin/models/${model}/versions`, { version: "v9", upstream: {} }),
    );
    expect(none["upstream.kind"]).toBe("is required: one of 'http' or 'builtin'");
  });

  it("gives lengths, counts and ranges in words", async () => {
    const found = await details(
      await post(`/admin/models/${model}/versions`, {
        version: "v9",
        upstream: {
          kind: "http",
          url: "ftp://example.com/model",
          protocol: "v2",
          timeoutMs: 30_001,
        },
        modelCard: { summary: "x".repeat(20_001), trainingData: { rows: -1 } },
      }),
    );
    expect(found).toMatchObject({
      "upstream.url": "must be a URL starting with https:// or http://",
      "upstream.timeoutMs": "must be at most 30000",
      "modelCard.summary": "must be at most 20000 characters",
      "modelCard.trainingData.rows": "must be at least 0",
    });
    const keys = await details(await post("/admin/keys", { name: "", models: [] }));
    expect(keys).toEqual({ name: "must not be empty", models: "must not be empty" });
    const threshold = await details(
      await post(`/admin/models/${model}/versions`, {
        version: "v9",
        upstream: { kind: "http", url: "https://example.com", protocol: "v2", timeoutMs: 1.5 },
      }),
    );
    expect(threshold["upstream.timeoutMs"]).toBe("must be a whole number");
  });

  it("names a key that is not a field of the object it is in", async () => {
    const found = await details(
      await post("/admin/keys", { name: "k", models: [model], scope: "all", colour: "red" }),
    );
    expect(found["(body)"]).toBe("'scope' and 'colour' are not fields of this object");
    const nested = await details(
      await call(`/admin/models/${model}/rollout`, {
        method: "PUT",
        body: { champion: "v1", canary: { version: "v1", percent: 5, salt: "x" } },
      }),
    );
    expect(nested.canary).toBe("'salt' is not a field of this object");
  });

  it("words the query and the path like the body", async () => {
    for (const [query, message] of [
      ["limit=abc", "must be a number"],
      ["limit=0", "must be at least 1"],
      ["limit=201", "must be at most 200"],
      ["limit=1.5", "must be a whole number"],
    ]) {
      expect(await details(await call(`/admin/models?${query}`))).toEqual({ limit: message });
    }
    expect(await details(await call("/admin/alerts?state=closed"))).toEqual({
      state: "must be one of 'open', 'pending', 'firing' or 'resolved'",
    });
    expect(await details(await call("/admin/alerts/abc"))).toEqual({ id: "must be a number" });
    expect(await details(await call("/admin/models/Not%20A%20Slug"))).toEqual({
      model: expect.stringMatching(/^must be a lowercase slug/),
    });
  });

  it("says which types a union takes, or which branch a value failed", async () => {
    const label = await details(
      await post("/v1/feedback", { predictionId: crypto.randomUUID(), label: { a: 1 } }, apiKey),
    );
    expect(label).toEqual({ label: "must be a number or a string" });
    const missing = await details(
      await post("/v1/feedback", { predictionId: crypto.randomUUID() }, apiKey),
    );
    expect(missing).toEqual({ label: "is required: a number or a string" });
    // A value of one branch's type is held to that branch (as before).
    const empty = await details(
      await post("/v1/feedback", { predictionId: crypto.randomUUID(), label: "" }, apiKey),
    );
    expect(empty).toEqual({ label: "must not be empty" });
    const output = await details(
      await call(`/admin/models/${model}`, {
        method: "PATCH",
        body: { fallback: { kind: "static", output: { label: 5 } } },
      }),
    );
    expect(output["fallback.output"]).toBe(
      "fits none of the forms it may take (label: must be a string; or value: is required)",
    );
  });

  it("words a key of a record by the key's own rule", async () => {
    const found = await details(
      await post(
        `/v1/models/${model}/predict`,
        { inputs: { amount: 1, country: "DE" }, attributes: { "bad key!": "x" } },
        apiKey,
      ),
    );
    expect(found["attributes.bad key!"]).toBe(
      "is not a valid key: it must be 1 to 64 letters, digits, '_', '.' or '-'",
    );
  });

  it("words the Open Inference Protocol's errors the same way", async () => {
    const response = await post(
      `/v2/models/${model}/infer`,
      { inputs: [{ name: "amount", shape: [1.5], datatype: "FP64", data: [1] }] },
      apiKey,
    );
    expect(response.status).toBe(400);
    const { error } = await json<{ error: string }>(response);
    expect(error).toBe("Invalid body: inputs[0].shape[0]: must be a whole number");
  });

  it("finds zod's wording where it is, and not in a client's quoted key", () => {
    expect(defaultWordingIn("Invalid input: expected string, received undefined")).toBeDefined();
    expect(defaultWordingIn("Too small: expected array to have >=1 items")).toBeDefined();
    expect(defaultWordingIn('Unrecognized key: "x"')).toBeDefined();
    expect(defaultWordingIn("'expected' is not a field of this object")).toBeUndefined();
    expect(
      wordingProblem({
        message: "Invalid body: name: Invalid input",
        details: [{ path: "name", message: "Invalid input" }],
      }),
    ).toMatch(/zod's wording/);
    expect(
      wordingProblem({
        message: "Invalid body: receivedAt: is required",
        details: [{ path: "receivedAt", message: "is required" }],
      }),
    ).toBeNull();
  });
});

type Schema = {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  minItems?: number;
  maxItems?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  example?: unknown;
};

interface Parameter {
  name: string;
  in: string;
  schema?: Schema;
}

interface Doc {
  paths: Record<
    string,
    Record<
      string,
      {
        parameters?: Parameter[];
        requestBody?: { content?: Record<string, { schema?: Schema }> };
      }
    >
  >;
  components: { schemas: Record<string, Schema> };
}

/** One bad request and the field its 400 must name. */
interface BadRequest {
  what: string;
  field: string;
  path?: Record<string, string>;
  query?: Record<string, string>;
  body?: unknown;
}

type Path = (string | number)[];

/** A schema with its $ref and allOf resolved. */
function resolved(schema: Schema, doc: Doc): Schema {
  let current = schema;
  for (let hops = 0; current.$ref && hops < 10; hops++) {
    current = doc.components.schemas[current.$ref.replace("#/components/schemas/", "")] ?? {};
  }
  if (current.allOf) {
    const merged: Schema = { ...current, allOf: undefined };
    for (const part of current.allOf) Object.assign(merged, resolved(part, doc));
    return merged;
  }
  return current;
}

function types(schema: Schema, doc: Doc): Set<string> | null {
  const s = resolved(schema, doc);
  const options = s.anyOf ?? s.oneOf;
  if (options) {
    const all = new Set<string>();
    for (const option of options) {
      const inner = types(option, doc);
      if (!inner) return null;
      for (const t of inner) all.add(t);
    }
    return all;
  }
  if (s.const !== undefined) return new Set([typeof s.const]);
  if (s.enum) return new Set(s.enum.map((v) => (v === null ? "null" : typeof v)));
  if (s.type === undefined) return null;
  const named = Array.isArray(s.type) ? s.type : [s.type];
  return new Set(named.map((t) => (t === "integer" ? "number" : t)));
}

/** A value of the schema's shape: not always valid, but of the right types where it can be. */
function skeleton(schema: Schema, doc: Doc, depth = 0): unknown {
  const s = resolved(schema, doc);
  if (depth > 8) return null;
  if (s.const !== undefined) return s.const;
  if (s.enum) return s.enum[0];
  const options = s.anyOf ?? s.oneOf;
  if (options) {
    const option = options.find((o) => resolved(o, doc).type !== "null") ?? options[0];
    return option ? skeleton(option, doc, depth + 1) : null;
  }
  if (s.example !== undefined) return structuredClone(s.example);
  const type = Array.isArray(s.type) ? s.type.find((t) => t !== "null") : s.type;
  switch (type) {
    case "object":
      return Object.fromEntries(
        (s.required ?? []).map((name) => [
          name,
          skeleton(s.properties?.[name] ?? {}, doc, depth + 1),
        ]),
      );
    case "array":
      return s.items ? [skeleton(s.items, doc, depth + 1)] : [];
    case "string":
      if (s.format === "uuid") return crypto.randomUUID();
      if (s.format === "date-time") return new Date().toISOString();
      return "x".repeat(Math.max(s.minLength ?? 1, 1));
    case "integer":
    case "number":
      return s.minimum ?? (s.exclusiveMinimum !== undefined ? s.exclusiveMinimum + 1 : 1);
    case "boolean":
      return true;
    default:
      return {};
  }
}

/** A value of none of the types. */
function wrongTypeFor(allowed: Set<string>): unknown {
  const typeOf = (value: unknown) => (Array.isArray(value) ? "array" : typeof value);
  return [12345, "text", true, ["x"], { a: 1 }].find((value) => !allowed.has(typeOf(value)));
}

/** The object schema a value at this place is held to, if it is one zod reports field by field. */
function objectSchema(schema: Schema, doc: Doc): Schema | null {
  const s = resolved(schema, doc);
  if (s.properties) return s;
  const options = s.anyOf ?? s.oneOf;
  if (!options) return null;
  // One object among other types (an item or an array of them), or a discriminated union.
  const objects = options.map((o) => resolved(o, doc)).filter((o) => o.properties);
  if (objects.length === 1 && objects[0]) return objects[0];
  const first = objects[0];
  const tag = Object.keys(first?.properties ?? {}).find((name) =>
    objects.every((o) => resolved(o.properties?.[name] ?? {}, doc).const !== undefined),
  );
  return tag ? (first ?? null) : null;
}

function setAt(root: unknown, path: Path, value: unknown | typeof REMOVE): unknown {
  const copy = structuredClone(root);
  let node = copy as Record<string | number, unknown>;
  for (const part of path.slice(0, -1)) node = node[part] as Record<string | number, unknown>;
  const last = path[path.length - 1] as string | number;
  if (value === REMOVE) delete node[last];
  else node[last] = value;
  return copy;
}
const REMOVE = Symbol("remove");

const fieldName = (path: Path) =>
  path.reduce<string>(
    (out, part) =>
      typeof part === "number" ? `${out}[${part}]` : out === "" ? part : `${out}.${part}`,
    "",
  );

/** Out-of-range values for a number, string or array schema. */
function outOfRange(s: Schema, base: unknown): [string, unknown][] {
  const out: [string, unknown][] = [];
  const type = Array.isArray(s.type) ? s.type.find((t) => t !== "null") : s.type;
  if (type === "number" || type === "integer") {
    if (s.minimum !== undefined) out.push(["below its minimum", s.minimum - 1]);
    if (s.exclusiveMinimum !== undefined)
      out.push(["at its exclusive minimum", s.exclusiveMinimum]);
    if (s.maximum !== undefined && s.maximum < Number.MAX_SAFE_INTEGER)
      out.push(["above its maximum", s.maximum + 1]);
    if (s.exclusiveMaximum !== undefined)
      out.push(["at its exclusive maximum", s.exclusiveMaximum]);
    if (type === "integer") out.push(["not a whole number", 1.5]);
  }
  if (type === "string") {
    if (s.maxLength !== undefined && s.maxLength < 100_000)
      out.push(["too long", "x".repeat(s.maxLength + 1)]);
    if (s.minLength !== undefined && s.minLength > 0)
      out.push(["too short", "x".repeat(s.minLength - 1)]);
    if (s.pattern !== undefined || s.format !== undefined)
      out.push(["of the wrong form", "Bad Form!"]);
  }
  if (type === "array") {
    if (s.maxItems !== undefined && s.maxItems <= 1000)
      out.push(["with too many items", Array.from({ length: s.maxItems + 1 }, () => base)]);
    if (s.minItems !== undefined && s.minItems > 0)
      out.push(["with too few items", Array.from({ length: s.minItems - 1 }, () => base)]);
  }
  return out;
}

/** Bad bodies derived from a body schema: one fault each, at a field the 400 must name. */
function badBodies(schema: Schema, doc: Doc): BadRequest[] {
  const out: BadRequest[] = [];
  // `body` holds a value at `path` and at each of its parents, so a fault there is reached.
  const visit = (raw: Schema, path: Path, body: unknown, depth: number) => {
    const object = objectSchema(raw, doc);
    if (!object || depth > 4) return;
    const here = fieldName(path) || "(body)";
    if (object.additionalProperties === false) {
      out.push({
        what: `an unknown key in ${here}`,
        field: here,
        body: setAt(body, [...path, "notAField"], 1),
      });
    }
    for (const [name, property] of Object.entries(object.properties ?? {})) {
      const at = [...path, name];
      const field = fieldName(at);
      const s = resolved(property, doc);
      const fault = (what: string, value: unknown) =>
        out.push({ what: `${field} ${what}`, field, body: setAt(body, at, value) });
      if (object.required?.includes(name)) fault("left out", REMOVE);
      const allowed = types(property, doc);
      if (allowed) fault("of the wrong type", wrongTypeFor(allowed));
      if (s.enum?.every((v) => typeof v === "string")) fault("not one of its values", "nope");
      const value = skeleton(property, doc);
      for (const [why, bad] of outOfRange(s, value)) fault(why, bad);
      if (objectSchema(property, doc)) visit(property, at, setAt(body, at, value), depth + 1);
      const item =
        s.items ?? resolved((s.anyOf ?? []).find((o) => resolved(o, doc).items) ?? {}, doc).items;
      if (item && objectSchema(item, doc)) {
        visit(item, [...at, 0], setAt(body, at, [skeleton(item, doc)]), depth + 1);
      }
    }
  };
  visit(schema, [], skeleton(schema, doc), 0);
  return out;
}

/** Bad path and query parameters: a value of the wrong type, range or form. */
function badParameters(parameters: Parameter[], doc: Doc): BadRequest[] {
  const out: BadRequest[] = [];
  for (const parameter of parameters) {
    if (parameter.in !== "path" && parameter.in !== "query") continue;
    const s = resolved(parameter.schema ?? {}, doc);
    const type = Array.isArray(s.type) ? s.type.find((t) => t !== "null") : s.type;
    const values: [string, string][] = [];
    if (type === "integer" || type === "number") values.push(["not a number", "abc"]);
    if (s.enum) values.push(["not one of its values", "nope"]);
    for (const [why, value] of outOfRange(s, "x")) values.push([why, String(value)]);
    for (const [why, value] of values) {
      const where = parameter.in === "path" ? "path" : "query";
      // An empty path segment is another route.
      if (where === "path" && value === "") continue;
      out.push({
        what: `${where} parameter ${parameter.name} ${why}`,
        field: parameter.name,
        [where]: { [parameter.name]: value },
      });
    }
  }
  return out;
}

describe("validation messages: every route", () => {
  it("answers each bad field of every documented route in words, naming the field", {
    timeout: 180_000,
  }, async () => {
    const doc = await json<Doc>(await call("/openapi.json", { token: null }));
    const owned: Record<string, string> = {
      model,
      version: "v1",
      id: "1",
      predictionId: crypto.randomUUID(),
      sha256: "a".repeat(64),
    };
    const problems: string[] = [];
    const routes = new Set<string>();
    let sent = 0;
    for (const [template, methods] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        const bodySchema = operation.requestBody?.content?.["application/json"]?.schema;
        const requests = [
          ...badParameters(operation.parameters ?? [], doc),
          ...(bodySchema ? badBodies(bodySchema, doc) : []),
        ];
        const route = `${method.toUpperCase()} ${template}`;
        for (const bad of requests) {
          let path = template.replace(/\{([^}]+)\}/g, (_, name: string) =>
            encodeURIComponent(bad.path?.[name] ?? owned[name] ?? "x"),
          );
          if (bad.query) path += `?${new URLSearchParams(bad.query)}`;
          const admin = template.startsWith("/admin");
          const response = await call(path, {
            method: method.toUpperCase(),
            ...(admin ? {} : { token: apiKey }),
            ...(bodySchema ? { body: bad.body ?? skeleton(bodySchema, doc) } : {}),
          });
          sent += 1;
          routes.add(route);
          const problem = await answerProblem(response, template.startsWith("/v2"), bad.field);
          if (problem) problems.push(`${route}, ${bad.what}: ${problem}`);
        }
      }
    }
    expect(problems).toEqual([]);
    // The derivation reached the routes that validate anything, with many requests.
    expect(routes.size).toBeGreaterThan(35);
    expect(sent).toBeGreaterThan(300);
  });
});

/** What is wrong with the answer to a request with one bad field, or null. */
async function answerProblem(
  response: Response,
  v2: boolean,
  field: string,
): Promise<string | null> {
  const text = await response.text();
  if (response.status !== 400) return `status ${response.status}: ${text.slice(0, 300)}`;
  if (v2) {
    const code = response.headers.get("x-airlock-error-code");
    const message = (JSON.parse(text) as { error: string }).error;
    if (code !== "VALIDATION_FAILED") return `${code}: ${message}`;
    if (!message.includes(`${field}: `)) return `does not name ${field}: ${message}`;
    return wordingProblem({ message });
  }
  const { error } = JSON.parse(text) as ErrorJson;
  if (error.code !== "VALIDATION_FAILED") return `${error.code}: ${error.message}`;
  if (!error.details?.some((detail) => detail.path === field)) {
    return `no detail names ${field}: ${JSON.stringify(error.details)}`;
  }
  return wordingProblem(error);
}
