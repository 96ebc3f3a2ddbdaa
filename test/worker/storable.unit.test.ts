import { describe, expect, it } from "vitest";
import { z } from "zod";
import { PredictionResultSchema } from "../../shared/inference/events";
import { DEFAULT_JSON_BOUNDS, parseJsonBody } from "../../shared/json-body";
import {
  inspectJson,
  NUL_MESSAGE,
  replaceUnstorable,
  StorableString,
  SURROGATE_MESSAGE,
  storableJsonText,
  unstorableText,
} from "../../shared/storable";

describe("the string rule", () => {
  it.each([
    ["plain text", "income band 3", null],
    ["non-BMP text (a valid surrogate pair)", "😀 ok", null],
    ["U+FFFD itself", "\uFFFD", null],
    ["a NUL", "a\u0000b", NUL_MESSAGE],
    ["a lone high surrogate", "x\uD800y", SURROGATE_MESSAGE],
    ["a lone low surrogate", "\uDC00", SURROGATE_MESSAGE],
    ["a high surrogate at the end", "ab\uDBFF", SURROGATE_MESSAGE],
    ["two high surrogates", "\uD800\uD800\uDC00", SURROGATE_MESSAGE],
    ["a reversed pair", "\uDC00\uD800", SURROGATE_MESSAGE],
  ])("%s", (_, value, expected) => {
    expect(unstorableText(value)).toBe(expected);
  });

  it("finds the first bad string or key in nested JSON, with its path", () => {
    expect(inspectJson({ a: [1, "ok", { b: "x\u0000" }] })).toEqual({
      kind: "unstorable",
      path: ["a", 2, "b"],
      message: NUL_MESSAGE,
    });
    expect(inspectJson({ ok: { "k\uD800": 1 } })).toEqual({
      kind: "unstorable",
      path: ["ok", "k\uD800"],
      message: `its name ${SURROGATE_MESSAGE}`,
    });
    expect(inspectJson({ a: [1, 2, { b: "fine" }], c: null })).toBeNull();
    // Strings left alone on request, depth still bounded.
    expect(inspectJson({ a: "x\u0000" }, { strings: false })).toBeNull();
    expect(inspectJson({ a: [[["x"]]] }, { maxDepth: 3, strings: false })).toEqual({
      kind: "too_deep",
      path: ["a", 0, 0],
    });
  });

  it("is one zod piece that names the field", () => {
    const schema = z.object({ reason: StorableString(100) });
    const parsed = schema.safeParse({ reason: "nul\u0000reason" });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues).toEqual([
      expect.objectContaining({ path: ["reason"], message: NUL_MESSAGE }),
    ]);
    expect(schema.safeParse({ reason: "fine" }).success).toBe(true);
  });

  it("keeps what cannot be stored as escaped JSON text that is plain ASCII where it was bad", () => {
    const text = storableJsonText({ a: "x\u0000y", b: "\uD800" });
    expect(text).toBe('{"a":"x\\u0000y","b":"\\ud800"}');
    expect(unstorableText(text)).toBeNull();
    expect(JSON.parse(text)).toEqual({ a: "x\u0000y", b: "\uD800" });
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(JSON.parse(storableJsonText(circular))).toEqual({
      unserializable: expect.stringContaining("circular"),
    });
    expect(replaceUnstorable("a\u0000b\uD800c😀")).toBe("a\uFFFDb\uFFFDc😀");
  });

  it("holds for every string of a logged result", () => {
    const result = {
      role: "served",
      predictionId: "p",
      requestId: "r",
      model: "m",
      version: "v1",
      prediction: { label: "yes" },
      inputs: { x: 1 },
      attributes: {},
      keyHmac: null,
      latencyMs: 1,
      status: "ok",
      errorCode: null,
      stateVersion: 1,
      timestamp: "2026-12-01T00:00:00.000Z",
    };
    expect(PredictionResultSchema.safeParse(result).success).toBe(true);
    const paths = (value: Record<string, unknown>) =>
      PredictionResultSchema.safeParse({ ...result, ...value }).error?.issues.map((i) =>
        i.path.join("."),
      );
    expect(paths({ attributes: { seg: "a\u0000" } })).toEqual(["attributes.seg"]);
    expect(paths({ inputs: { note: ["\uD800"] } })).toEqual(["inputs.note.0"]);
    expect(paths({ prediction: { label: "\u0000" } })).toEqual(["prediction.label"]);
    expect(paths({ requestId: "\u0000" })).toEqual(["requestId"]);
    expect(paths({ timestamp: "0000-01-01T00:00:00Z" })).toEqual(["timestamp"]);
  });
});

describe("JSON body bounds", () => {
  const nested = (levels: number) => `${"[".repeat(levels)}1${"]".repeat(levels)}`;

  it("accepts a body at the depth bound and refuses one level more, naming where", () => {
    const max = DEFAULT_JSON_BOUNDS.maxDepth;
    // The top-level object is level 1, so the array may nest max - 1 deep.
    expect(parseJsonBody(`{"a":${nested(max - 1)}}`).ok).toBe(true);
    expect(parseJsonBody(`{"a":${nested(max)}}`)).toEqual({
      ok: false,
      problem: { kind: "too_deep", path: "a[0][0][0][0][0]…", maxDepth: max },
    });
    expect(parseJsonBody(`{"a":{"b":${nested(max)}}}`, { maxDepth: 3 })).toMatchObject({
      problem: { kind: "too_deep", path: "a.b[0]" },
    });
  });

  it("refuses 500,000 levels without exhausting the stack", () => {
    const result = parseJsonBody(nested(500_000));
    expect(result.ok).toBe(false);
    expect(inspectJson(JSON.parse(nested(100)), { maxDepth: 100 })).toBeNull();
  });

  it("checks strings only when an escape could hide a bad one, and names the field", () => {
    expect(parseJsonBody('{"attributes":{"seg":"a\\u0000b"}}')).toEqual({
      ok: false,
      problem: { kind: "unstorable", path: "attributes.seg", message: NUL_MESSAGE },
    });
    expect(parseJsonBody('{"note":"\\ud83d\\ude00"}')).toEqual({
      ok: true,
      value: { note: "😀" },
    });
    // An escaped backslash followed by u0000 is six plain characters.
    expect(parseJsonBody('{"note":"\\\\u0000"}')).toEqual({ ok: true, value: { note: "\\u0000" } });
    expect(parseJsonBody("{not json")).toEqual({ ok: false, problem: { kind: "malformed" } });
  });
});
