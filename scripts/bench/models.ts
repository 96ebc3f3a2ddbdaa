// `npm run bench:models`: how fast builtin models evaluate, on one core.
//
// Two models of the sizes that matter: a 100-feature logistic regression and
// a 100-tree, depth-6 gradient-boosted ensemble (XGBoost JSON, binary:logistic),
// both generated here with a seeded PRNG. Each is measured as
// - core: the compiled model on a row-major matrix (what the isolate runs
//   once the request's rows are read), in batches of 100 rows (the largest
//   request batch), 10,000 rows and single rows;
// - end to end: from validated JSON rows to canonical predictions (matrix
//   building, evaluation, labels), in batches of 100 and single rows.
// When Debian's python3-xgboost is present, XGBoost's own predictor runs the
// same model file on the same core in the same run, for a ratio.
//
// Every figure is the median of several timed windows, the scenarios
// interleaved so that machine noise spreads over all of them. The process
// pins itself to one CPU with taskset when it can.
//
// Writes bench/results/models.json. Knobs (environment): BENCH_WINDOW_MS
// (default 200), BENCH_REPEATS (default 9). BENCH_SMOKE=1: a smoke run (one
// 10 ms window per scenario), which checks the predictions against a plain
// reference evaluation of both models (and XGBoost's, when present) and
// writes no result file.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import {
  bundleWorkerModules,
  numberKnob,
  smoke,
  smokeChecks,
  sourceRevision,
  writeResult,
} from "../lib/bench-stats.ts";
import { mulberry32 } from "../lib/traffic/random.ts";

// ---------------------------------------------------------------- one core

if (!process.env.BENCH_PINNED && process.platform === "linux") {
  const cpu = os.availableParallelism() - 1;
  const pinned = spawnSync(
    "taskset",
    ["-c", String(cpu), process.execPath, ...process.execArgv, ...process.argv.slice(1)],
    { stdio: "inherit", env: { ...process.env, BENCH_PINNED: String(cpu) } },
  );
  if (!pinned.error) process.exit(pinned.status ?? 1);
  console.error("taskset is not available: running unpinned");
}

const windowMs = numberKnob("BENCH_WINDOW_MS", 200, 10);
const repeats = numberKnob("BENCH_REPEATS", 9, 1);
const workDir = mkdtempSync(join(os.tmpdir(), "airlock-bench-models-"));
process.on("exit", () => rmSync(workDir, { recursive: true, force: true }));

// ---------------------------------------------------------------- the code under test

/** The Worker's own modules, bundled as they are (no changes) for Node. */
async function loadBuiltin() {
  const outfile = join(workDir, "builtin.mjs");
  await bundleWorkerModules(
    `export { compileModel } from "./shared/builtin/index.ts";
export { predictBuiltin } from "./shared/builtin/serve.ts";`,
    outfile,
  );
  return (await import(outfile)) as BuiltinModule;
}

// The shapes used here, declared locally: the Worker's modules resolve
// imports the bundler's way, not Node's, so they stay out of this program.
interface Compiled {
  bytes: number;
  description: string;
  predict(x: Float64Array, rows: number): Float64Array;
}
interface BuiltinModule {
  compileModel(
    format: string,
    model: unknown,
  ): { ok: true; model: Compiled } | { ok: false; problem: { path: string; message: string } };
  predictBuiltin(
    compiled: Compiled,
    spec: {
      task: "classification" | "regression";
      classes: string[] | null;
      positiveClass: string | null;
    },
    rows: Record<string, number>[],
  ): { ok: true; predictions: unknown[] } | { ok: false; reason: string };
}

// ---------------------------------------------------------------- models and rows

const random = mulberry32(20261125);
const gaussian = () => {
  const u = 1 - random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
};

const FEATURES = 100;
const featureNames = Array.from({ length: FEATURES }, (_, i) => `f${String(i).padStart(3, "0")}`);

const logistic = {
  estimator: "LogisticRegression",
  features: featureNames,
  coef: [featureNames.map(() => gaussian() * 0.1)],
  intercept: [0.05],
  classes: [0, 1],
};

/** A full binary tree of depth 6 in XGBoost's JSON layout (63 splits, 64 leaves). */
function xgboostTree(id: number) {
  const splits = 63;
  const nodes = 127;
  const left: number[] = [];
  const right: number[] = [];
  const feature: number[] = [];
  const condition: number[] = [];
  const defaultLeft: number[] = [];
  for (let i = 0; i < nodes; i++) {
    const split = i < splits;
    left.push(split ? 2 * i + 1 : -1);
    right.push(split ? 2 * i + 2 : -1);
    feature.push(split ? Math.floor(random() * FEATURES) : 0);
    condition.push(Math.fround(split ? gaussian() * 0.8 : gaussian() * 0.05));
    defaultLeft.push(random() < 0.5 ? 1 : 0);
  }
  return {
    id,
    tree_param: {
      num_deleted: "0",
      num_feature: String(FEATURES),
      num_nodes: String(nodes),
      size_leaf_vector: "0",
    },
    left_children: left,
    right_children: right,
    parents: left.map(() => 0),
    split_indices: feature,
    split_conditions: condition,
    split_type: left.map(() => 0),
    default_left: defaultLeft,
    base_weights: condition,
    loss_changes: left.map(() => 0.5), // non-integers: XGBoost reads these as JSON floats
    sum_hessian: left.map(() => 1.5),
    categories: [],
    categories_nodes: [],
    categories_segments: [],
    categories_sizes: [],
  };
}

const TREES = 100;
const boosted = {
  version: [1, 7, 4],
  learner: {
    attributes: {},
    feature_names: featureNames,
    feature_types: featureNames.map(() => "float"),
    gradient_booster: {
      name: "gbtree",
      model: {
        gbtree_model_param: { num_parallel_tree: "1", num_trees: String(TREES) },
        tree_info: Array.from({ length: TREES }, () => 0),
        trees: Array.from({ length: TREES }, (_, i) => xgboostTree(i)),
      },
    },
    learner_model_param: {
      base_score: "5E-1",
      boost_from_average: "1",
      num_class: "0",
      num_feature: String(FEATURES),
      num_target: "1",
    },
    objective: { name: "binary:logistic", reg_loss_param: { scale_pos_weight: "1" } },
  },
};

const POOL = 20_000;
const matrix = new Float64Array(POOL * FEATURES);
for (let i = 0; i < matrix.length; i++) matrix[i] = gaussian();
const objects = Array.from({ length: POOL }, (_, r) =>
  Object.fromEntries(featureNames.map((name, j) => [name, matrix[r * FEATURES + j] as number])),
);

// ---------------------------------------------------------------- timing

interface Scenario {
  name: string;
  rowsPerCall: number;
  /** Runs one call on the rows starting at `offset`; returns something to keep. */
  run: (offset: number) => number;
}

let sink = 0;

/** Rows per second over one window. */
function measure(scenario: Scenario): number {
  const { rowsPerCall } = scenario;
  let offset = 0;
  let rows = 0;
  const started = performance.now();
  let now = started;
  while (now - started < windowMs) {
    for (let i = 0; i < 16; i++) {
      sink += scenario.run(offset);
      rows += rowsPerCall;
      offset += rowsPerCall;
      if (offset + rowsPerCall > POOL) offset = 0;
    }
    now = performance.now();
  }
  return (rows / (now - started)) * 1000;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

// ---------------------------------------------------------------- XGBoost's own predictor

const pythonScript = `
import json, sys, time
import numpy as np
import xgboost as xgb
model_path, rows_path, window, repeats = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
X = np.load(rows_path)
booster = xgb.Booster(model_file=model_path)
booster.set_param({"nthread": 1})
def rate(fn, rows_per_call):
    out = []
    for _ in range(repeats + 1):
        n, offset, start = 0, 0, time.perf_counter()
        while time.perf_counter() - start < window:
            fn(offset)
            n += rows_per_call
            offset = 0 if offset + 2 * rows_per_call > len(X) else offset + rows_per_call
        out.append(n / (time.perf_counter() - start))
    out = sorted(out[1:])
    return out[len(out) // 2]
res = {
  "xgboostVersion": xgb.__version__,
  "batch100": rate(lambda o: booster.inplace_predict(X[o:o+100]), 100),
  "batch10000": rate(lambda o: booster.inplace_predict(X[o:o+10000]), 10000),
  "single": rate(lambda o: booster.inplace_predict(X[o:o+1]), 1),
  "batch10000DMatrix": rate(lambda o: booster.predict(xgb.DMatrix(X[o:o+10000], nthread=1, feature_names=booster.feature_names)), 10000),
}
# The same predictions as Airlock's, on the first rows (sanity).
res["first"] = [float(v) for v in booster.inplace_predict(X[:5])]
print(json.dumps(res))
`;

function xgboostNative(): Record<string, unknown> | { skipped: string } {
  const python = ["/usr/bin/python3", "python3"].find(
    (candidate) => spawnSync(candidate, ["-c", "import xgboost, numpy"]).status === 0,
  );
  if (!python) return { skipped: "python3 with xgboost and numpy is not installed" };
  const modelPath = join(workDir, "model.json");
  const rowsPath = join(workDir, "rows.npy");
  writeFileSync(modelPath, JSON.stringify(boosted));
  writeFileSync(rowsPath, npy(matrix, POOL, FEATURES));
  const scriptPath = join(workDir, "xgb_bench.py");
  writeFileSync(scriptPath, pythonScript);
  const output = execFileSync(
    python,
    [scriptPath, modelPath, rowsPath, String(windowMs / 1000), String(repeats)],
    { encoding: "utf8", env: { ...process.env, OMP_NUM_THREADS: "1" } },
  );
  return JSON.parse(output) as Record<string, unknown>;
}

/** A float64 matrix in NumPy's .npy format (version 1.0). */
function npy(data: Float64Array, rows: number, cols: number): Buffer {
  let header = `{'descr': '<f8', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  const total = 10 + header.length + 1;
  header += `${" ".repeat((64 - (total % 64)) % 64)}\n`;
  const prefix = Buffer.alloc(10);
  prefix.write("\x93NUMPY", 0, "latin1");
  prefix.writeUInt8(1, 6);
  prefix.writeUInt8(0, 7);
  prefix.writeUInt16LE(header.length, 8);
  return Buffer.concat([prefix, Buffer.from(header, "latin1"), Buffer.from(data.buffer)]);
}

// ---------------------------------------------------------------- run

async function main() {
  const { compileModel, predictBuiltin } = await loadBuiltin();
  const compileTimed = (format: string, model: unknown) => {
    const started = performance.now();
    const result = compileModel(format, model);
    const ms = performance.now() - started;
    if (!result.ok) throw new Error(`${result.problem.path}: ${result.problem.message}`);
    return { model: result.model, compileMs: ms, jsonBytes: JSON.stringify(model).length };
  };
  const lr = compileTimed("sklearn-linear", logistic);
  const gbt = compileTimed("xgboost-json", boosted);
  const spec = { task: "classification" as const, classes: ["0", "1"], positiveClass: "1" };

  const slice = (offset: number, rows: number) =>
    matrix.subarray(offset * FEATURES, (offset + rows) * FEATURES);
  const core = (name: string, compiled: typeof lr.model, rows: number): Scenario => ({
    name,
    rowsPerCall: rows,
    run: (offset) => compiled.predict(slice(offset, rows), rows)[0] as number,
  });
  const endToEnd = (name: string, compiled: typeof lr.model, rows: number): Scenario => ({
    name,
    rowsPerCall: rows,
    run: (offset) => {
      const result = predictBuiltin(compiled, spec, objects.slice(offset, offset + rows));
      if (!result.ok) throw new Error(result.reason);
      return result.predictions.length;
    },
  });
  const scenarios: Scenario[] = [
    core("logistic core, batch 100", lr.model, 100),
    core("logistic core, batch 10000", lr.model, 10_000),
    core("logistic core, single row", lr.model, 1),
    endToEnd("logistic end to end, batch 100", lr.model, 100),
    endToEnd("logistic end to end, single row", lr.model, 1),
    core("gbt core, batch 100", gbt.model, 100),
    core("gbt core, batch 10000", gbt.model, 10_000),
    core("gbt core, single row", gbt.model, 1),
    endToEnd("gbt end to end, batch 100", gbt.model, 100),
    endToEnd("gbt end to end, single row", gbt.model, 1),
  ];

  console.log(
    `${scenarios.length} scenarios, ${repeats} windows of ${windowMs} ms each, interleaved${process.env.BENCH_PINNED ? `, pinned to CPU ${process.env.BENCH_PINNED}` : ""}`,
  );
  for (const scenario of scenarios) measure(scenario); // warm-up: compiled code, caches
  const samples = new Map<string, number[]>(scenarios.map((s) => [s.name, []]));
  for (let r = 0; r < repeats; r++) {
    for (const scenario of scenarios) samples.get(scenario.name)?.push(measure(scenario));
  }

  const results = scenarios.map((scenario) => {
    const values = samples.get(scenario.name) ?? [];
    const rowsPerSecond = median(values);
    return {
      scenario: scenario.name,
      rowsPerCall: scenario.rowsPerCall,
      rowsPerSecond: Math.round(rowsPerSecond),
      microsecondsPerRow: Number((1e6 / rowsPerSecond).toFixed(3)),
      spread: {
        min: Math.round(Math.min(...values)),
        max: Math.round(Math.max(...values)),
      },
    };
  });
  if (!smoke) {
    for (const r of results) {
      console.log(
        `${r.scenario.padEnd(34)} ${String(r.rowsPerSecond).padStart(11)} rows/s  ${r.microsecondsPerRow.toFixed(3).padStart(9)} us/row`,
      );
    }
  }

  console.log("XGBoost's own predictor on the same model and rows (one thread)…");
  const native = xgboostNative();
  const check = gbt.model.predict(matrix.subarray(0, 5 * FEATURES), 5);
  const ours = Array.from({ length: 5 }, (_, i) => check[i * 2 + 1] as number);
  if ("first" in native) {
    const first = native.first as number[];
    const worst = Math.max(...first.map((p, i) => Math.abs(p - (ours[i] as number))));
    if (worst > 1e-5) throw new Error(`XGBoost disagrees with the evaluator by ${worst}`);
    native.agreement = `max |difference| ${worst.toExponential(2)} on 5 rows`;
    delete native.first;
    for (const key of ["batch100", "batch10000", "single", "batch10000DMatrix"]) {
      native[key] = Math.round(native[key] as number);
    }
  }
  if (!smoke || "skipped" in native) console.log(JSON.stringify(native));

  const rate = (name: string) => results.find((r) => r.scenario === name)?.rowsPerSecond ?? 0;
  const ratios =
    "batch100" in native
      ? {
          gbtBatch100VsXgboost: Number(
            (rate("gbt core, batch 100") / (native.batch100 as number)).toFixed(2),
          ),
          gbtBatch10000VsXgboost: Number(
            (rate("gbt core, batch 10000") / (native.batch10000 as number)).toFixed(2),
          ),
          gbtSingleVsXgboost: Number(
            (rate("gbt core, single row") / (native.single as number)).toFixed(2),
          ),
        }
      : null;

  const report = {
    benchmark: "bench:models",
    at: new Date().toISOString(),
    ...sourceRevision(),
    environment: {
      node: process.version,
      cpu: os.cpus()[0]?.model ?? "unknown",
      cpus: os.cpus().length,
      pinnedToCpu: process.env.BENCH_PINNED ?? null,
      windowMs,
      repeats,
    },
    models: {
      logistic: {
        features: FEATURES,
        jsonBytes: lr.jsonBytes,
        compiledBytes: lr.model.bytes,
        compileMs: Number(lr.compileMs.toFixed(2)),
      },
      gbt: {
        trees: TREES,
        depth: 6,
        features: FEATURES,
        description: gbt.model.description,
        jsonBytes: gbt.jsonBytes,
        compiledBytes: gbt.model.bytes,
        compileMs: Number(gbt.compileMs.toFixed(2)),
      },
    },
    targets: {
      logisticRowsPerSecond: 5_000_000,
      gbtBatchRowsPerSecond: 400_000,
      gbtSingleRowMicroseconds: 5,
    },
    results,
    xgboostNative: native,
    ratios,
    checksum: Number(sink.toPrecision(8)),
  };
  const written = writeResult("models", report);
  if (!smoke) {
    console.log(`wrote ${written}`);
    return;
  }

  // The work, not its speed: what the models predicted, against plain evaluations.
  const checks = smokeChecks("bench:models");
  checks.check(
    "every scenario evaluated rows",
    results.length === scenarios.length && results.every((r) => r.rowsPerSecond > 0),
    `${results.length} scenarios`,
  );
  const rows = 20;
  const at = (out: Float64Array, r: number) => out[r * 2 + 1] as number;
  const sigmoid = (margin: number) => 1 / (1 + Math.exp(-margin));
  const x = matrix.subarray(0, rows * FEATURES);
  const worst = (ours: Float64Array, reference: (r: number) => number) =>
    Math.max(...Array.from({ length: rows }, (_, r) => Math.abs(at(ours, r) - reference(r))));
  const logisticError = worst(lr.model.predict(x, rows), (r) => {
    let margin = logistic.intercept[0] as number;
    for (let j = 0; j < FEATURES; j++)
      margin += (logistic.coef[0]?.[j] as number) * (x[r * FEATURES + j] as number);
    return sigmoid(margin);
  });
  checks.check(
    "the logistic regression's probabilities match the formula",
    logisticError < 1e-9,
    `max |difference| ${logisticError.toExponential(2)} on ${rows} rows`,
  );
  const trees = boosted.learner.gradient_booster.model.trees;
  const gbtOut = gbt.model.predict(x, rows);
  const gbtError = worst(gbtOut, (r) => {
    let margin = 0; // base_score 0.5 is a margin of 0
    for (const tree of trees) {
      let node = 0;
      while ((tree.left_children[node] as number) >= 0) {
        const value = Math.fround(x[r * FEATURES + (tree.split_indices[node] as number)] as number);
        node =
          value < (tree.split_conditions[node] as number)
            ? (tree.left_children[node] as number)
            : (tree.right_children[node] as number);
      }
      margin += tree.split_conditions[node] as number;
    }
    return sigmoid(margin);
  });
  checks.check(
    "the boosted ensemble's probabilities match a plain walk of its trees",
    gbtError < 1e-5,
    `max |difference| ${gbtError.toExponential(2)} on ${rows} rows`,
  );
  const served = predictBuiltin(gbt.model, spec, objects.slice(0, rows));
  const canonical = served.ok ? (served.predictions as { label: string; score: number }[]) : [];
  checks.check(
    "end to end, JSON rows give the core's scores and their labels",
    canonical.length === rows &&
      canonical.every(
        (p, r) =>
          Math.abs(p.score - at(gbtOut, r)) < 1e-12 && p.label === (p.score >= 0.5 ? "1" : "0"),
      ),
    served.ok ? `${canonical.length} predictions` : served.reason,
  );
  if ("agreement" in native)
    checks.check("XGBoost's own predictor agrees", true, String(native.agreement));
  checks.finish();
}

await main();
