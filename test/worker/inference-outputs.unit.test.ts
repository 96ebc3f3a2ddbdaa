import { describe, expect, it } from "vitest";
import {
  DEFAULT_THRESHOLD,
  fromJsonResponse,
  fromV2Response,
  type ModelOutputSpec,
  type OutputResult,
  PROBABILITY_SUM_TOLERANCE,
  parseJsonPointer,
  resolveJsonPointer,
  toCanonical,
} from "../../shared/inference/outputs";

const binary: ModelOutputSpec = {
  task: "classification",
  classes: ["legit", "fraud"],
  positiveClass: "fraud",
};
const animals: ModelOutputSpec = {
  task: "classification",
  classes: ["cat", "dog", "bird"],
  positiveClass: null,
};
/** Classes that spell numbers, but not their own indexes. */
const ratings: ModelOutputSpec = {
  task: "classification",
  classes: ["1", "2", "3"],
  positiveClass: null,
};
const regression: ModelOutputSpec = { task: "regression", classes: null, positiveClass: null };

function predictions(result: OutputResult) {
  if (!result.ok) throw new Error(`expected predictions, got: ${result.reason}`);
  return result.predictions;
}

function reason(result: OutputResult) {
  if (result.ok) throw new Error(`expected a failure, got ${JSON.stringify(result.predictions)}`);
  return result.reason;
}

/** One canonical JSON item for a single request. */
const single = (spec: ModelOutputSpec, item: unknown, threshold?: number) =>
  fromJsonResponse(spec, { outputs: item }, 1, undefined, { threshold });

describe("JSON pointers (RFC 6901)", () => {
  // The example document of RFC 6901, section 5.
  const doc = {
    foo: ["bar", "baz"],
    "": 0,
    "a/b": 1,
    "c%d": 2,
    "e^f": 3,
    "g|h": 4,
    "i\\j": 5,
    'k"l': 6,
    " ": 7,
    "m~n": 8,
  };
  const at = (pointer: string) => {
    const tokens = parseJsonPointer(pointer);
    if (!tokens) throw new Error(`not a pointer: ${pointer}`);
    return resolveJsonPointer(doc, tokens);
  };

  it("resolves the RFC's examples", () => {
    expect(at("")).toEqual({ found: true, value: doc });
    expect(at("/foo")).toEqual({ found: true, value: ["bar", "baz"] });
    expect(at("/foo/0")).toEqual({ found: true, value: "bar" });
    expect(at("/")).toEqual({ found: true, value: 0 });
    expect(at("/a~1b")).toEqual({ found: true, value: 1 });
    expect(at("/c%d")).toEqual({ found: true, value: 2 });
    expect(at("/e^f")).toEqual({ found: true, value: 3 });
    expect(at("/g|h")).toEqual({ found: true, value: 4 });
    expect(at("/i\\j")).toEqual({ found: true, value: 5 });
    expect(at('/k"l')).toEqual({ found: true, value: 6 });
    expect(at("/ ")).toEqual({ found: true, value: 7 });
    expect(at("/m~0n")).toEqual({ found: true, value: 8 });
  });

  it("unescapes ~1 before ~0, so ~01 is a literal ~1", () => {
    expect(parseJsonPointer("/~01")).toEqual(["~1"]);
    expect(resolveJsonPointer({ "~1": 9, "/": 10 }, ["~1"])).toEqual({ found: true, value: 9 });
  });

  it("refuses strings that are not pointers", () => {
    expect(parseJsonPointer("foo")).toBeNull();
    expect(parseJsonPointer("/a~2")).toBeNull();
    expect(parseJsonPointer("/a~")).toBeNull();
    expect(parseJsonPointer("#/foo")).toBeNull();
  });

  it("does not find what is not there", () => {
    expect(at("/foo/2")).toEqual({ found: false });
    expect(at("/foo/-")).toEqual({ found: false });
    expect(at("/foo/01")).toEqual({ found: false });
    expect(at("/foo/bar")).toEqual({ found: false });
    expect(at("/missing")).toEqual({ found: false });
    expect(at("/a~1b/deeper")).toEqual({ found: false });
    expect(resolveJsonPointer({}, ["toString"])).toEqual({ found: false });
    expect(resolveJsonPointer([1], ["length"])).toEqual({ found: false });
  });
});

describe("fromJsonResponse: canonical predictions", () => {
  it("maps a single classification", () => {
    expect(predictions(single(binary, { label: "fraud", score: 0.91 }))).toEqual([
      { label: "fraud", score: 0.91 },
    ]);
  });

  it("keeps probabilities, in the model's classes order", () => {
    const [p] = predictions(
      single(animals, { label: "dog", probabilities: { bird: 0.1, dog: 0.7, cat: 0.2 } }),
    );
    expect(p).toEqual({ label: "dog", probabilities: { cat: 0.2, dog: 0.7, bird: 0.1 } });
    expect(Object.keys((p as { probabilities: object }).probabilities)).toEqual([
      "cat",
      "dog",
      "bird",
    ]);
  });

  it("ignores keys it does not know", () => {
    expect(predictions(single(binary, { label: "legit", explanation: "fine", value: 3 }))).toEqual([
      { label: "legit" },
    ]);
    expect(predictions(single(regression, { value: 1.5, label: "x" }))).toEqual([{ value: 1.5 }]);
  });

  it("maps a single regression", () => {
    expect(predictions(single(regression, { value: -12.25 }))).toEqual([{ value: -12.25 }]);
  });

  it("maps a batch in order", () => {
    const body = { outputs: [{ label: "legit" }, { label: "fraud", score: 0.8 }, { score: 0.1 }] };
    expect(predictions(fromJsonResponse(binary, body, 3))).toEqual([
      { label: "legit" },
      { label: "fraud", score: 0.8 },
      { label: "legit", score: 0.1 },
    ]);
  });

  it("expects an array for a batch, even a batch of one", () => {
    expect(
      predictions(
        fromJsonResponse(regression, { outputs: [{ value: 2 }] }, 1, undefined, { batch: true }),
      ),
    ).toEqual([{ value: 2 }]);
    expect(
      reason(
        fromJsonResponse(regression, { outputs: { value: 2 } }, 1, undefined, { batch: true }),
      ),
    ).toBe("outputs must be an array for a batch");
    expect(reason(fromJsonResponse(regression, { outputs: { value: 2 } }, 2))).toBe(
      "outputs must be an array for a batch",
    );
  });

  it("expects an object for a single request", () => {
    expect(reason(fromJsonResponse(regression, { outputs: [{ value: 2 }] }, 1))).toBe(
      "outputs must be a prediction object for a single request",
    );
    expect(reason(single(regression, 2))).toBe(
      "outputs must be a prediction object for a single request",
    );
  });

  it("refuses a batch with the wrong number of items", () => {
    const body = { outputs: [{ value: 1 }, { value: 2 }] };
    expect(reason(fromJsonResponse(regression, body, 3))).toBe("outputs holds 2 items for 3 rows");
    expect(reason(fromJsonResponse(regression, body, 1, undefined, { batch: true }))).toBe(
      "outputs holds 2 items for 1 rows",
    );
  });

  it("refuses items that are not objects, naming the item", () => {
    expect(reason(fromJsonResponse(regression, { outputs: [{ value: 1 }, 2] }, 2))).toBe(
      "outputs[1] must be a prediction object",
    );
  });

  it("refuses responses without outputs", () => {
    expect(reason(fromJsonResponse(regression, { value: 1 }, 1))).toBe(
      "the response has no 'outputs'",
    );
    expect(reason(fromJsonResponse(regression, null, 1))).toBe("the response has no 'outputs'");
    expect(reason(fromJsonResponse(regression, [{ value: 1 }], 1))).toBe(
      "the response has no 'outputs'",
    );
    expect(reason(fromJsonResponse(regression, { error: "model not loaded" }, 1))).toBe(
      "the response has no 'outputs'",
    );
  });

  it("refuses impossible calls instead of throwing", () => {
    expect(reason(fromJsonResponse(regression, { outputs: [] }, 0))).toBe(
      "rows must be a positive integer",
    );
    expect(reason(fromJsonResponse(regression, { outputs: [] }, 1.5))).toBe(
      "rows must be a positive integer",
    );
    expect(
      reason(
        fromJsonResponse(regression, { outputs: { value: 1 } }, 2, undefined, { batch: false }),
      ),
    ).toBe("a single prediction has 1 row, not 2");
  });

  it("names the failing item of a batch", () => {
    const body = { outputs: [{ label: "legit" }, { label: "fraud" }, { label: "maybe" }] };
    expect(reason(fromJsonResponse(binary, body, 3))).toBe(
      `outputs[2]: label "maybe" is not one of the model's classes`,
    );
  });

  it("treats a null field as absent", () => {
    expect(predictions(single(binary, { label: null, score: 0.7, probabilities: null }))).toEqual([
      { label: "fraud", score: 0.7 },
    ]);
    expect(reason(single(regression, { value: null }))).toBe("outputs: no value");
  });
});

describe("fromJsonResponse: mappings", () => {
  it("evaluates pointers against the item in outputs", () => {
    const body = { outputs: { prediction: { class: "fraud", p: 0.83 } } };
    const mapping = { label: "/prediction/class", score: "/prediction/p" };
    expect(predictions(fromJsonResponse(binary, body, 1, mapping))).toEqual([
      { label: "fraud", score: 0.83 },
    ]);
  });

  it("evaluates pointers against each element of outputs for a batch", () => {
    const body = { outputs: [{ proba: [0.2, 0.8] }, { proba: [0.6, 0.4] }] };
    expect(predictions(fromJsonResponse(binary, body, 2, { probabilities: "/proba" }))).toEqual([
      { label: "fraud", probabilities: { legit: 0.2, fraud: 0.8 } },
      { label: "legit", probabilities: { legit: 0.6, fraud: 0.4 } },
    ]);
  });

  it("never evaluates against the body root when outputs is present", () => {
    const body = { outputs: { label: "cat" }, label: "dog" };
    expect(predictions(fromJsonResponse(animals, body, 1, { label: "/label" }))).toEqual([
      { label: "cat" },
    ]);
    expect(reason(fromJsonResponse(animals, body, 1, { label: "/outputs/label" }))).toBe(
      "outputs: no label, probabilities or score",
    );
  });

  it("uses the body itself when there is no outputs member", () => {
    expect(
      predictions(fromJsonResponse(regression, { result: { y: 3.25 } }, 1, { value: "/result/y" })),
    ).toEqual([{ value: 3.25 }]);
    expect(
      predictions(fromJsonResponse(regression, [{ y: 1 }, { y: 2 }], 2, { value: "/y" })),
    ).toEqual([{ value: 1 }, { value: 2 }]);
    expect(reason(fromJsonResponse(regression, { y: 1 }, 2, { value: "/y" }))).toBe(
      "the response must be an array for a batch",
    );
    expect(reason(fromJsonResponse(regression, [{ y: 1 }], 2, { value: "/y" }))).toBe(
      "the response holds 1 items for 2 rows",
    );
  });

  it("accepts the empty pointer for a bare value", () => {
    expect(predictions(fromJsonResponse(regression, { outputs: 4.5 }, 1, { value: "" }))).toEqual([
      { value: 4.5 },
    ]);
    expect(predictions(fromJsonResponse(regression, 4.5, 1, { value: "" }))).toEqual([
      { value: 4.5 },
    ]);
    expect(
      predictions(fromJsonResponse(animals, { outputs: ["bird", "cat"] }, 2, { label: "" })),
    ).toEqual([{ label: "bird" }, { label: "cat" }]);
  });

  it("unescapes ~1 and ~0 in mapping pointers", () => {
    const body = { outputs: { "a/b": { "m~n": "dog" } } };
    expect(predictions(fromJsonResponse(animals, body, 1, { label: "/a~1b/m~0n" }))).toEqual([
      { label: "dog" },
    ]);
  });

  it("reads only the fields the mapping names", () => {
    const body = { outputs: { label: "fraud", score: 0.2 } };
    expect(predictions(fromJsonResponse(binary, body, 1, { label: "/label" }))).toEqual([
      { label: "fraud" },
    ]);
  });

  it("refuses a mapping that is not made of pointers", () => {
    expect(reason(fromJsonResponse(binary, { outputs: {} }, 1, { label: "label" }))).toBe(
      `mapping.label is not a JSON pointer: "label"`,
    );
    expect(reason(fromJsonResponse(regression, { outputs: {} }, 1, { value: "/a~2" }))).toBe(
      `mapping.value is not a JSON pointer: "/a~2"`,
    );
  });

  it("fails when the mapped field is not there", () => {
    expect(reason(fromJsonResponse(regression, { outputs: { y: 1 } }, 1, { value: "/z" }))).toBe(
      "outputs: no value",
    );
    expect(reason(fromJsonResponse(regression, [{ y: 1 }, {}], 2, { value: "/y" }))).toBe(
      "the response[1]: no value",
    );
  });
});

describe("canonical rules: labels", () => {
  it("requires the label to be one of the classes", () => {
    expect(reason(single(animals, { label: "horse" }))).toBe(
      `outputs: label "horse" is not one of the model's classes`,
    );
    expect(reason(single(animals, { label: "Cat" }))).toBe(
      `outputs: label "Cat" is not one of the model's classes`,
    );
  });

  it("reads a number as a class index when no class spells it", () => {
    expect(predictions(single(binary, { label: 1 }))).toEqual([{ label: "fraud" }]);
    expect(predictions(single(animals, { label: 2 }))).toEqual([{ label: "bird" }]);
    expect(reason(single(animals, { label: 3 }))).toBe(
      "outputs: label 3 is neither a class nor a class index",
    );
    expect(reason(single(animals, { label: -1 }))).toBe(
      "outputs: label -1 is neither a class nor a class index",
    );
    expect(reason(single(animals, { label: 0.5 }))).toBe(
      "outputs: label 0.5 is neither a class nor a class index",
    );
  });

  it("reads a number as the class it spells before reading it as an index", () => {
    // 1 spells class "1" (index 1 would be "2"); 0 spells no class, so it is index 0.
    expect(predictions(single(ratings, { label: 1 }))).toEqual([{ label: "1" }]);
    expect(predictions(single(ratings, { label: 3 }))).toEqual([{ label: "3" }]);
    expect(predictions(single(ratings, { label: 0 }))).toEqual([{ label: "1" }]);
  });

  it("refuses labels that are neither strings nor numbers", () => {
    expect(reason(single(binary, { label: true }))).toBe(
      "outputs: label true is not a string or a class index",
    );
    expect(reason(single(binary, { label: ["fraud"] }))).toBe(
      `outputs: label ["fraud"] is not a string or a class index`,
    );
  });

  it("cuts long upstream values short in reasons", () => {
    const text = reason(single(binary, { label: "x".repeat(500) }));
    expect(text).toBe(`outputs: label "${"x".repeat(60)}... is not one of the model's classes`);
  });

  it("keeps a given label even when the score points elsewhere", () => {
    expect(predictions(single(binary, { label: "legit", score: 0.95 }))).toEqual([
      { label: "legit", score: 0.95 },
    ]);
  });

  it("refuses a classification model without classes", () => {
    const none: ModelOutputSpec = { task: "classification", classes: null, positiveClass: null };
    expect(reason(single(none, { label: "a" }))).toBe("outputs: the model lists no classes");
  });
});

describe("canonical rules: scores", () => {
  it("accepts a score in [0, 1] for a binary model, bounds included", () => {
    expect(predictions(single(binary, { label: "legit", score: 0 }))).toEqual([
      { label: "legit", score: 0 },
    ]);
    expect(predictions(single(binary, { label: "fraud", score: 1 }))).toEqual([
      { label: "fraud", score: 1 },
    ]);
  });

  it("refuses scores outside [0, 1] or not numbers", () => {
    expect(reason(single(binary, { label: "fraud", score: 1.2 }))).toBe(
      "outputs: score 1.2 is not in [0, 1]",
    );
    expect(reason(single(binary, { label: "fraud", score: -0.1 }))).toBe(
      "outputs: score -0.1 is not in [0, 1]",
    );
    expect(reason(single(binary, { label: "fraud", score: "0.5" }))).toBe(
      `outputs: score "0.5" is not in [0, 1]`,
    );
  });

  it("allows a score only for binary models", () => {
    expect(reason(single(animals, { label: "cat", score: 0.5 }))).toBe(
      "outputs: a score is only allowed for binary classification",
    );
  });

  it("needs the positive class to use a score", () => {
    const noPositive = { ...binary, positiveClass: null };
    expect(reason(single(noPositive, { score: 0.5 }))).toBe(
      "outputs: a score needs the model's positive class",
    );
  });

  it("derives the label from the score with the default threshold 0.5", () => {
    expect(DEFAULT_THRESHOLD).toBe(0.5);
    expect(predictions(single(binary, { score: 0.5 }))).toEqual([{ label: "fraud", score: 0.5 }]);
    expect(predictions(single(binary, { score: 0.4999 }))).toEqual([
      { label: "legit", score: 0.4999 },
    ]);
  });

  it("derives the label from the score with a given threshold", () => {
    expect(predictions(single(binary, { score: 0.35 }, 0.3))).toEqual([
      { label: "fraud", score: 0.35 },
    ]);
    expect(predictions(single(binary, { score: 0.85 }, 0.9))).toEqual([
      { label: "legit", score: 0.85 },
    ]);
    // The other class is whichever is not positive, whatever the order.
    const flipped: ModelOutputSpec = { ...binary, classes: ["fraud", "legit"] };
    expect(predictions(single(flipped, { score: 0.2 }))).toEqual([{ label: "legit", score: 0.2 }]);
  });

  it("refuses a threshold outside [0, 1]", () => {
    expect(reason(single(binary, { score: 0.5 }, 1.5))).toBe("threshold 1.5 is not in [0, 1]");
    expect(reason(single(binary, { score: 0.5 }, Number.NaN))).toBe(
      "threshold NaN is not in [0, 1]",
    );
  });
});

describe("canonical rules: probabilities", () => {
  it("derives the label as the most probable class", () => {
    expect(
      predictions(single(animals, { probabilities: { cat: 0.1, dog: 0.3, bird: 0.6 } })),
    ).toEqual([{ label: "bird", probabilities: { cat: 0.1, dog: 0.3, bird: 0.6 } }]);
  });

  it("breaks ties by the classes order, not the key order", () => {
    const [p] = predictions(single(animals, { probabilities: { bird: 0.4, dog: 0.4, cat: 0.2 } }));
    expect(p).toEqual({ label: "dog", probabilities: { cat: 0.2, dog: 0.4, bird: 0.4 } });
  });

  it("prefers probabilities over the score to derive a label", () => {
    const item = { probabilities: { legit: 0.6, fraud: 0.4 }, score: 0.4 };
    expect(predictions(single(binary, item, 0.3))).toEqual([
      { label: "legit", score: 0.4, probabilities: { legit: 0.6, fraud: 0.4 } },
    ]);
  });

  it("accepts an array in classes order", () => {
    expect(predictions(single(animals, { probabilities: [0.5, 0.25, 0.25] }))).toEqual([
      { label: "cat", probabilities: { cat: 0.5, dog: 0.25, bird: 0.25 } },
    ]);
    expect(reason(single(animals, { probabilities: [0.5, 0.5] }))).toBe(
      "outputs: probabilities hold 2 values for 3 classes",
    );
  });

  it("accepts a subset of classes that sums to 1", () => {
    expect(predictions(single(animals, { probabilities: { dog: 1 } }))).toEqual([
      { label: "dog", probabilities: { dog: 1 } },
    ]);
  });

  it("refuses keys that are not classes", () => {
    expect(reason(single(animals, { probabilities: { cat: 0.5, horse: 0.5 } }))).toBe(
      `outputs: probabilities name "horse", not a class`,
    );
  });

  it("refuses values outside [0, 1] or not numbers", () => {
    expect(reason(single(binary, { probabilities: { legit: 1.5, fraud: -0.5 } }))).toBe(
      `outputs: probability of "legit" is 1.5, not in [0, 1]`,
    );
    expect(reason(single(binary, { probabilities: { legit: "0.5", fraud: 0.5 } }))).toBe(
      `outputs: probability of "legit" is "0.5", not in [0, 1]`,
    );
  });

  it("requires the sum to be within 1e-3 of 1", () => {
    expect(PROBABILITY_SUM_TOLERANCE).toBe(1e-3);
    expect(predictions(single(binary, { probabilities: { legit: 0.5, fraud: 0.5009 } }))).toEqual([
      { label: "fraud", probabilities: { legit: 0.5, fraud: 0.5009 } },
    ]);
    expect(predictions(single(binary, { probabilities: { legit: 0.4, fraud: 0.5991 } }))).toEqual([
      { label: "fraud", probabilities: { legit: 0.4, fraud: 0.5991 } },
    ]);
    expect(reason(single(binary, { probabilities: { legit: 0.5, fraud: 0.502 } }))).toBe(
      "outputs: probabilities sum to 1.002, not 1",
    );
    expect(reason(single(binary, { probabilities: { legit: 0.4, fraud: 0.5 } }))).toBe(
      "outputs: probabilities sum to 0.9, not 1",
    );
    expect(reason(single(binary, { probabilities: {} }))).toBe(
      "outputs: probabilities sum to 0, not 1",
    );
  });

  it("refuses probabilities that are neither an object nor an array", () => {
    expect(reason(single(binary, { probabilities: "0.5,0.5" }))).toBe(
      "outputs: probabilities must be an object of class to probability",
    );
  });

  it("refuses a classification with nothing to take a label from", () => {
    expect(reason(single(binary, {}))).toBe("outputs: no label, probabilities or score");
    expect(reason(single(binary, { value: 1 }))).toBe("outputs: no label, probabilities or score");
  });
});

describe("canonical rules: regression", () => {
  it("requires a finite number", () => {
    expect(reason(single(regression, {}))).toBe("outputs: no value");
    expect(reason(single(regression, { value: "3" }))).toBe(
      `outputs: value "3" is not a finite number`,
    );
    expect(reason(single(regression, { label: "high" }))).toBe("outputs: no value");
    expect(toCanonical(regression, { value: Number.POSITIVE_INFINITY })).toEqual({
      ok: false,
      reason: "value Infinity is not a finite number",
    });
    expect(toCanonical(regression, { value: Number.NaN })).toEqual({
      ok: false,
      reason: "value NaN is not a finite number",
    });
    expect(toCanonical(regression, { value: 0 })).toEqual({ ok: true, value: { value: 0 } });
  });
});

// ---- Open Inference Protocol ----------------------------------------------------------------

const tensor = (name: string, datatype: string, shape: number[], data: unknown[]) => ({
  name,
  datatype,
  shape,
  data,
});
const v2 = (...outputs: unknown[]) => ({ model_name: "m", id: "1", outputs });

describe("fromV2Response: labels", () => {
  it("reads a BYTES label tensor", () => {
    expect(
      predictions(fromV2Response(animals, v2(tensor("label", "BYTES", [1], ["dog"])), 1)),
    ).toEqual([{ label: "dog" }]);
    const body = v2(tensor("label", "BYTES", [3], ["dog", "cat", "bird"]));
    expect(predictions(fromV2Response(animals, body, 3))).toEqual([
      { label: "dog" },
      { label: "cat" },
      { label: "bird" },
    ]);
  });

  it("accepts shape [rows, 1] and nested data", () => {
    const body = v2(tensor("label", "BYTES", [2, 1], [["cat"], ["bird"]]));
    expect(predictions(fromV2Response(animals, body, 2))).toEqual([
      { label: "cat" },
      { label: "bird" },
    ]);
  });

  it("reads integer labels as spelled classes or class indexes", () => {
    expect(
      predictions(fromV2Response(binary, v2(tensor("label", "INT64", [2], [0, 1])), 2)),
    ).toEqual([{ label: "legit" }, { label: "fraud" }]);
    expect(
      predictions(fromV2Response(ratings, v2(tensor("label", "INT32", [2], [3, 2])), 2)),
    ).toEqual([{ label: "3" }, { label: "2" }]);
    expect(reason(fromV2Response(animals, v2(tensor("label", "UINT8", [2], [0, 7])), 2))).toBe(
      "row 1: label 7 is neither a class nor a class index",
    );
  });

  it("refuses labels of the wrong element type or datatype", () => {
    expect(reason(fromV2Response(binary, v2(tensor("label", "INT64", [1], [0.5])), 1))).toBe(
      "output 'label': data holds 0.5, not an integer",
    );
    expect(reason(fromV2Response(binary, v2(tensor("label", "BYTES", [1], [1])), 1))).toBe(
      "output 'label': data holds 1, not a string",
    );
    expect(reason(fromV2Response(binary, v2(tensor("label", "FP32", [1], [1])), 1))).toBe(
      `output 'label': datatype "FP32" is not BYTES or an integer type`,
    );
  });

  it("refuses labels that are not classes, naming the row", () => {
    const body = v2(tensor("label", "BYTES", [2], ["cat", "horse"]));
    expect(reason(fromV2Response(animals, body, 2))).toBe(
      `row 1: label "horse" is not one of the model's classes`,
    );
    expect(reason(fromV2Response(animals, v2(tensor("label", "BYTES", [1], ["horse"])), 1))).toBe(
      `label "horse" is not one of the model's classes`,
    );
  });
});

describe("fromV2Response: scores and probabilities", () => {
  it("derives labels from a score tensor with the threshold", () => {
    const body = v2(tensor("score", "FP32", [3], [0.9, 0.5, 0.2]));
    expect(predictions(fromV2Response(binary, body, 3))).toEqual([
      { label: "fraud", score: 0.9 },
      { label: "fraud", score: 0.5 },
      { label: "legit", score: 0.2 },
    ]);
    expect(predictions(fromV2Response(binary, body, 3, undefined, { threshold: 0.6 }))).toEqual([
      { label: "fraud", score: 0.9 },
      { label: "legit", score: 0.5 },
      { label: "legit", score: 0.2 },
    ]);
  });

  it("accepts a score of shape [rows, 1] in FP64", () => {
    const body = v2(tensor("score", "FP64", [2, 1], [[0.1], [0.7]]));
    expect(predictions(fromV2Response(binary, body, 2))).toEqual([
      { label: "legit", score: 0.1 },
      { label: "fraud", score: 0.7 },
    ]);
  });

  it("refuses score tensors of the wrong datatype, shape or range", () => {
    expect(reason(fromV2Response(binary, v2(tensor("score", "INT64", [1], [1])), 1))).toBe(
      `output 'score': datatype "INT64" is not a floating-point type`,
    );
    expect(reason(fromV2Response(binary, v2(tensor("score", "FP32", [1, 2], [0.4, 0.6])), 1))).toBe(
      "output 'score': shape [1,2] is not [1] or [1, 1]",
    );
    expect(reason(fromV2Response(binary, v2(tensor("score", "FP32", [1], [1.5])), 1))).toBe(
      "score 1.5 is not in [0, 1]",
    );
    expect(reason(fromV2Response(animals, v2(tensor("score", "FP32", [1], [0.5])), 1))).toBe(
      "a score is only allowed for binary classification",
    );
  });

  it("maps probabilities columns to classes, flat or nested", () => {
    const flat = v2(tensor("probabilities", "FP32", [2, 3], [0.7, 0.2, 0.1, 0.1, 0.1, 0.8]));
    const nested = v2(
      tensor(
        "probabilities",
        "FP32",
        [2, 3],
        [
          [0.7, 0.2, 0.1],
          [0.1, 0.1, 0.8],
        ],
      ),
    );
    const expected = [
      { label: "cat", probabilities: { cat: 0.7, dog: 0.2, bird: 0.1 } },
      { label: "bird", probabilities: { cat: 0.1, dog: 0.1, bird: 0.8 } },
    ];
    expect(predictions(fromV2Response(animals, flat, 2))).toEqual(expected);
    expect(predictions(fromV2Response(animals, nested, 2))).toEqual(expected);
  });

  it("keeps a label tensor alongside probabilities and score", () => {
    const body = v2(
      tensor("label", "BYTES", [1], ["fraud"]),
      tensor("score", "FP32", [1], [0.3]),
      tensor("probabilities", "FP32", [1, 2], [0.7, 0.3]),
    );
    expect(predictions(fromV2Response(binary, body, 1))).toEqual([
      { label: "fraud", score: 0.3, probabilities: { legit: 0.7, fraud: 0.3 } },
    ]);
  });

  it("refuses probabilities of the wrong shape or size", () => {
    expect(
      reason(fromV2Response(animals, v2(tensor("probabilities", "FP32", [1, 2], [0.5, 0.5])), 1)),
    ).toBe("output 'probabilities': shape [1,2] is not [1, 3]");
    expect(
      reason(
        fromV2Response(animals, v2(tensor("probabilities", "FP32", [3], [0.5, 0.25, 0.25])), 1),
      ),
    ).toBe("output 'probabilities': shape [3] is not [1, 3]");
    expect(
      reason(fromV2Response(animals, v2(tensor("probabilities", "FP64", [1, 3], [0.5, 0.5])), 1)),
    ).toBe("output 'probabilities': data holds 2 elements for shape [1,3]");
  });

  it("refuses probabilities that do not sum to 1", () => {
    const body = v2(tensor("probabilities", "FP32", [2, 2], [0.5, 0.5, 0.5, 0.6]));
    expect(reason(fromV2Response(binary, body, 2))).toBe("row 1: probabilities sum to 1.1, not 1");
  });
});

describe("fromV2Response: regression", () => {
  it("reads a value tensor of shape [rows] or [rows, 1]", () => {
    expect(
      predictions(fromV2Response(regression, v2(tensor("value", "FP64", [2], [1.5, -3])), 2)),
    ).toEqual([{ value: 1.5 }, { value: -3 }]);
    expect(
      predictions(
        fromV2Response(regression, v2(tensor("value", "FP32", [2, 1], [[0.25], [4]])), 2),
      ),
    ).toEqual([{ value: 0.25 }, { value: 4 }]);
  });

  it("refuses integer values and non-numbers", () => {
    expect(reason(fromV2Response(regression, v2(tensor("value", "INT64", [1], [3])), 1))).toBe(
      `output 'value': datatype "INT64" is not a floating-point type`,
    );
    expect(reason(fromV2Response(regression, v2(tensor("value", "FP64", [2], [1, null])), 2))).toBe(
      "output 'value': data holds null, not a number",
    );
    expect(reason(fromV2Response(regression, v2(tensor("value", "FP64", [1], ["NaN"])), 1))).toBe(
      `output 'value': data holds "NaN", not a number`,
    );
  });

  it("ignores classification tensors for a regression model", () => {
    const body = v2(tensor("label", "BYTES", [1], ["x"]), tensor("value", "FP64", [1], [2]));
    expect(predictions(fromV2Response(regression, body, 1))).toEqual([{ value: 2 }]);
    expect(reason(fromV2Response(regression, v2(tensor("label", "BYTES", [1], ["x"])), 1))).toBe(
      "no output tensor 'value'",
    );
  });
});

describe("fromV2Response: structure", () => {
  it("refuses responses without an outputs array", () => {
    expect(reason(fromV2Response(binary, { error: "boom" }, 1))).toBe(
      "the response has no 'outputs' array",
    );
    expect(reason(fromV2Response(binary, null, 1))).toBe("the response has no 'outputs' array");
    expect(reason(fromV2Response(binary, { outputs: {} }, 1))).toBe(
      "the response has no 'outputs' array",
    );
  });

  it("refuses a response with none of the expected tensors", () => {
    expect(reason(fromV2Response(binary, v2(tensor("output0", "FP32", [1], [0.5])), 1))).toBe(
      "no output tensor 'label', 'score', 'probabilities'",
    );
  });

  it("ignores other tensors and entries that are not tensors", () => {
    const body = v2(
      null,
      tensor("embedding", "FP32", [1, 2], [3, 4]),
      tensor("label", "BYTES", [1], ["dog"]),
    );
    expect(predictions(fromV2Response(animals, body, 1))).toEqual([{ label: "dog" }]);
  });

  it("refuses two tensors of the same name", () => {
    const body = v2(tensor("label", "BYTES", [1], ["dog"]), tensor("label", "BYTES", [1], ["cat"]));
    expect(reason(fromV2Response(animals, body, 1))).toBe("2 output tensors are named 'label'");
  });

  it("refuses tensors whose first dimension is not the row count", () => {
    expect(
      reason(fromV2Response(animals, v2(tensor("label", "BYTES", [3], ["a", "b", "c"])), 2)),
    ).toBe("output 'label': shape [3] is not [2] or [2, 1]");
  });

  it("refuses malformed tensors", () => {
    expect(
      reason(fromV2Response(animals, v2({ name: "label", shape: [1], data: ["dog"] }), 1)),
    ).toBe("output 'label': has no datatype");
    expect(reason(fromV2Response(animals, v2(tensor("label", "BYTES", [-1], ["dog"])), 1))).toBe(
      "output 'label': shape must be an array of non-negative integers",
    );
    expect(
      reason(fromV2Response(animals, v2({ name: "label", datatype: "BYTES", shape: [1] }), 1)),
    ).toBe("output 'label': has no data array");
    expect(reason(fromV2Response(animals, v2(tensor("label", "BYTES", [2], ["dog"])), 2))).toBe(
      "output 'label': data holds 1 elements for shape [2]",
    );
    let deep: unknown = ["dog"];
    for (let i = 0; i < 10; i++) deep = [deep];
    expect(
      reason(fromV2Response(animals, v2(tensor("label", "BYTES", [1], deep as unknown[])), 1)),
    ).toBe("output 'label': data is nested too deeply");
  });

  it("refuses impossible calls instead of throwing", () => {
    expect(reason(fromV2Response(animals, v2(), 0))).toBe("rows must be a positive integer");
    expect(
      reason(
        fromV2Response(animals, v2(tensor("label", "BYTES", [1], ["dog"])), 1, undefined, {
          threshold: -1,
        }),
      ),
    ).toBe("threshold -1 is not in [0, 1]");
  });
});

describe("fromV2Response: mappings", () => {
  it("reads the tensors the mapping names, and only those", () => {
    const body = v2(
      tensor("predict", "INT64", [2], [1, 0]),
      tensor("predict_proba", "FP32", [2, 2], [0.3, 0.7, 0.9, 0.1]),
      tensor("score", "FP32", [2], [0.7, 0.1]),
    );
    const mapping = { label: "predict", probabilities: "predict_proba" };
    expect(predictions(fromV2Response(binary, body, 2, mapping))).toEqual([
      { label: "fraud", probabilities: { legit: 0.3, fraud: 0.7 } },
      { label: "legit", probabilities: { legit: 0.9, fraud: 0.1 } },
    ]);
  });

  it("renames the value tensor of a regression model", () => {
    const body = v2(tensor("variable", "FP32", [1], [42.5]), tensor("value", "FP32", [1], [0]));
    expect(predictions(fromV2Response(regression, body, 1, { value: "variable" }))).toEqual([
      { value: 42.5 },
    ]);
  });

  it("fails when the mapped tensors are absent or the mapping names none", () => {
    const body = v2(tensor("label", "BYTES", [1], ["dog"]));
    expect(reason(fromV2Response(animals, body, 1, { label: "class" }))).toBe(
      "no output tensor 'class'",
    );
    expect(reason(fromV2Response(animals, body, 1, { value: "label" }))).toBe(
      "the mapping names no output",
    );
  });
});
