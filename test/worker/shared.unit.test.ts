import { DrizzleQueryError } from "drizzle-orm/errors";
import { describe, expect, it } from "vitest";
import { canonicalJson, secretsEqual, sha256Hex } from "../../shared/crypto";
import { isConnectionError, sqlState } from "../../shared/db/client";
import { ApiError, formatPath, validationError } from "../../shared/errors";
import { decodeCursor, encodeCursor } from "../../shared/pagination";
import { InputSchema } from "../../shared/schemas/model";

describe("canonicalJson", () => {
  it("sorts keys at every depth and drops undefined, keeping array order", () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined } })).toBe(
      '{"a":{"d":[3,{"y":2,"z":1}]},"b":1}',
    );
  });

  it("gives equal hashes for equal values written differently", async () => {
    const a = await sha256Hex(canonicalJson({ x: 1, y: [1, 2] }));
    const b = await sha256Hex(canonicalJson({ y: [1, 2], x: 1 }));
    const c = await sha256Hex(canonicalJson({ y: [2, 1], x: 1 }));
    expect(a).toBe(b);
    expect(a).not.toBe(c);
    expect(a).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe("secretsEqual", () => {
  it("accepts only the identical secret, whatever the lengths", async () => {
    expect(await secretsEqual("s3cret-token", "s3cret-token")).toBe(true);
    expect(await secretsEqual("s3cret-token", "s3cret-tokem")).toBe(false);
    expect(await secretsEqual("s3cret", "s3cret-token")).toBe(false);
    expect(await secretsEqual("", "s3cret-token")).toBe(false);
  });
});

describe("cursors", () => {
  it("round-trip a position and refuse anything else", () => {
    const cursor = encodeCursor({ name: "fraud-ä", id: 42 });
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(cursor, { name: "string", id: "number" })).toEqual({
      name: "fraud-ä",
      id: 42,
    });
    for (const bad of [
      "",
      "!!!",
      btoa("[1]"),
      btoa('{"id":"x"}'),
      btoa('{"id":1.5}'),
      encodeCursor({ other: 1 }),
    ]) {
      expect(() => decodeCursor(bad, { id: "number" })).toThrow(ApiError);
    }
  });
});

describe("validation errors", () => {
  it("name each field path", () => {
    expect(formatPath(["inputSchema", "properties", "age", "enum", 2])).toBe(
      "inputSchema.properties.age.enum[2]",
    );
    expect(formatPath([0, "amount"])).toBe("[0].amount");
    const error = validationError(
      [
        { path: ["name"], message: "too short" },
        { path: [], message: "bad" },
      ],
      "body",
    );
    expect(error.code).toBe("VALIDATION_FAILED");
    expect(error.status).toBe(400);
    expect(error.message).toBe("Invalid body: name: too short; (body): bad");
    expect(error.details).toEqual([
      { path: "name", message: "too short" },
      { path: "(body)", message: "bad" },
    ]);
  });
});

describe("database error classification", () => {
  it("treats unreachable or dropped connections as unavailability, and statement errors as not", () => {
    expect(isConnectionError(Object.assign(new Error("x"), { code: "ECONNREFUSED" }))).toBe(true);
    expect(isConnectionError(Object.assign(new Error("x"), { code: "08006" }))).toBe(true);
    expect(isConnectionError(Object.assign(new Error("x"), { code: "57P01" }))).toBe(true);
    expect(isConnectionError(new Error("Connection terminated unexpectedly"))).toBe(true);
    expect(isConnectionError(Object.assign(new Error("duplicate key"), { code: "23505" }))).toBe(
      false,
    );
    expect(isConnectionError(new TypeError("x is undefined"))).toBe(false);
  });

  it("looks through drizzle's wrapper without reading the statement text", () => {
    const statementError = new DrizzleQueryError(
      "insert into t values ($1)",
      ["network socket closed"],
      Object.assign(new Error("value too long"), { code: "22001" }),
    );
    expect(isConnectionError(statementError)).toBe(false);
    expect(sqlState(statementError)).toBe("22001");
    const dropped = new DrizzleQueryError(
      "select 1",
      [],
      new Error("Connection terminated unexpectedly"),
    );
    expect(isConnectionError(dropped)).toBe(true);
  });
});

describe("input schema", () => {
  it("accepts the documented subset and refuses what it does not describe", () => {
    const ok = InputSchema.safeParse({
      type: "object",
      properties: {
        a: { type: "integer", minimum: 0, maximum: 9, enum: [1, 2] },
        b: { type: "string", maxLength: 3 },
      },
      required: ["a"],
    });
    expect(ok.success).toBe(true);
    expect(InputSchema.safeParse({ type: "object", properties: {} }).success).toBe(false);
    const reserved = InputSchema.safeParse({
      type: "object",
      properties: { amount: { type: "number" } },
      required: ["amount", "__proto__"],
    });
    expect(reserved.success).toBe(false);
    expect(JSON.stringify(reserved.error?.issues)).toContain("reserved");
    expect(
      InputSchema.safeParse({ type: "object", properties: { a: { type: "array" } } }).success,
    ).toBe(false);
    expect(
      InputSchema.safeParse({ type: "object", properties: { a: { type: "boolean", minimum: 1 } } })
        .success,
    ).toBe(false);
    expect(
      InputSchema.safeParse({
        type: "object",
        properties: { a: { type: "number" } },
        required: ["a", "a"],
      }).success,
    ).toBe(false);
  });
});
