/**
 * Monitoring II on known populations, through the real paths: results stored
 * by the queue consumer, labels and outcomes posted to /v1/feedback and
 * /v1/outcomes, the job run, rows read from the monitoring endpoint. The
 * expected numbers come from the array forms of shared/metrics (checked
 * against scikit-learn and SciPy in metrics.unit.test.ts) over the same
 * simulated requests.
 */
import { env } from "cloudflare:workers";
import { v7 } from "uuid";
import { describe, expect, it } from "vitest";
import { runMonitoring } from "../../functions/jobs/monitoring";
import { storeLogs } from "../../functions/queue/prediction-logs";
import { keyHmac, type PredictionEvent } from "../../shared/inference/events";
import {
  classificationMetrics,
  fairnessReport,
  kpiDifference,
  labelCoverage,
  logLoss,
  logLossBinary,
  regressionMetrics,
  rocAuc,
} from "../../shared/metrics";
import {
  call,
  classificationModel,
  createModel,
  httpUpstream,
  json,
  regressionModel,
  uniqueName,
} from "./helpers";
import { mulberry32 } from "./random";
import type { ResultRow } from "./traffic-helpers";

const WINDOW = 900_000;

interface Population {
  /** Score noise of each version: smaller is better. */
  canaryNoise: number;
  championNoise: number;
  /** Conversion probability of requests each version answered. */
  canaryConversion: number;
  championConversion: number;
  /** Revenue added when the answer was right. */
  revenueIfRight: number;
}

interface Request {
  id: string;
  key: string;
  region: "north" | "south";
  fraud: boolean;
  answeredBy: "v1" | "v2";
  scores: { v1: number; v2: number; v3: number };
  at: number;
}

const label = (score: number) => (score >= 0.5 ? "fraud" : "legit");
const clamp = (x: number) => Math.min(0.999, Math.max(0.001, x));
const round = (x: number) => Math.round(x * 1e4) / 1e4;

/**
 * N requests in one window: the champion v1 answers 70%, the canary v2 30%
 * (and v1 scores those too, as `control`), a shadow v3 scores every request
 * with a bias: +0.3 for region south.
 */
function simulate(seed: number, start: number, n: number, p: Population): Request[] {
  const random = mulberry32(seed);
  return Array.from({ length: n }, (_, i) => {
    const fraud = random() < 0.3;
    const region = i % 3 === 0 ? "south" : "north";
    const base = fraud ? 0.65 : 0.35;
    const v1 = clamp(round(base + (random() * 2 - 1) * p.championNoise));
    const v2 = clamp(round(base + (random() * 2 - 1) * p.canaryNoise));
    const v3 = clamp(round(v1 + (region === "south" ? 0.3 : 0)));
    return {
      id: v7({ msecs: start + Math.floor((i * (WINDOW - 1000)) / n) }),
      key: `cust-${seed}-${i}`,
      region,
      fraud,
      answeredBy: random() < 0.3 ? "v2" : "v1",
      scores: { v1, v2, v3 },
      at: start + Math.floor((i * (WINDOW - 1000)) / n),
    };
  });
}

async function store(model: string, requests: Request[]): Promise<void> {
  const events: PredictionEvent[] = [];
  for (const r of requests) {
    const base = {
      predictionId: r.id,
      requestId: r.id,
      model,
      inputs: { amount: 10, country: "DE" },
      attributes: { region: r.region },
      keyHmac: await keyHmac(env.LOG_HMAC_KEY, r.key),
      latencyMs: 3,
      status: "ok" as const,
      errorCode: null,
      stateVersion: 1,
      timestamp: new Date(r.at).toISOString(),
    };
    const result = (role: PredictionEvent["role"], version: "v1" | "v2" | "v3") => ({
      ...base,
      role,
      version,
      prediction: { label: label(r.scores[version]), score: r.scores[version] },
    });
    if (r.answeredBy === "v1") events.push(result("served", "v1"));
    else events.push(result("canary", "v2"), result("control", "v1"));
    events.push(result("shadow", "v3"));
  }
  const stored = await storeLogs(env, events, []);
  expect(stored.predictions).toBe(events.length);
}

async function reporterKey(...models: string[]): Promise<string> {
  const response = await call("/admin/keys", {
    method: "POST",
    body: { name: `reporter-${models.join("-")}`, models },
  });
  expect(response.status).toBe(201);
  return (await json<{ key: string }>(response)).key;
}

async function post(path: string, items: unknown[], key: string): Promise<void> {
  for (let i = 0; i < items.length; i += 1000) {
    const response = await call(path, {
      method: "POST",
      body: items.slice(i, i + 1000),
      token: key,
    });
    expect(response.status).toBe(202);
  }
}

const labels = (requests: Request[]) =>
  requests.map((r) => ({ predictionId: r.id, label: r.fraud ? "fraud" : "legit" }));

/** Revenue by prediction id; conversion (0/1) by the customer's key. */
function outcomes(requests: Request[], p: Population, seed: number) {
  const random = mulberry32(seed);
  return requests.flatMap((r) => {
    const right = label(r.scores[r.answeredBy]) === (r.fraud ? "fraud" : "legit");
    const conversion = r.answeredBy === "v2" ? p.canaryConversion : p.championConversion;
    return [
      {
        predictionId: r.id,
        kpi: "revenue",
        value: round(50 + random() * 40 + (right ? p.revenueIfRight : 0)),
        at: new Date(r.at + 500).toISOString(),
      },
      {
        key: r.key,
        kpi: "converted",
        value: random() < conversion ? 1 : 0,
        at: new Date(r.at + 500).toISOString(),
      },
    ];
  });
}

async function results(model: string, from: number, to: number): Promise<ResultRow[]> {
  const response = await call(
    `/admin/models/${model}/monitoring?from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}`,
  );
  expect(response.status).toBe(200);
  return (await json<{ items: ResultRow[] }>(response)).items;
}

function pick(rows: ResultRow[], role: string, version: string, metric: string, dimension = "") {
  const found = rows.filter(
    (r) =>
      r.windowSeconds === 900 &&
      r.role === role &&
      r.version === version &&
      r.metric === metric &&
      r.dimension === dimension,
  );
  expect(found, `${role} ${version} ${metric} ${dimension}`).toHaveLength(1);
  return found[0] as ResultRow;
}

/** What the job should say about one (version, role), from the arrays. */
function expectedQuality(requests: Request[], labelled: Set<string>, version: "v1" | "v2" | "v3") {
  const rows = requests.filter((r) => labelled.has(r.id));
  const actual = rows.map((r) => (r.fraud ? "fraud" : "legit"));
  const scores = rows.map((r) => r.scores[version]);
  return {
    coverage: labelCoverage(rows.length, requests.length).value,
    classification: classificationMetrics(actual, scores.map(label), { positive: "fraud" }),
    auc: rocAuc(
      rows.map((r) => r.fraud),
      scores,
    ).value,
    logLoss: logLossBinary(
      rows.map((r) => r.fraud),
      scores,
    ).value,
  };
}

function expectQuality(
  rows: ResultRow[],
  role: string,
  version: string,
  expected: ReturnType<typeof expectedQuality>,
) {
  const close = (metric: string, value: number | null) => {
    expect(value, metric).not.toBeNull();
    expect(pick(rows, role, version, metric).value, `${role} ${version} ${metric}`).toBeCloseTo(
      value as number,
      12,
    );
  };
  close("label_coverage", expected.coverage);
  close("accuracy", expected.classification.accuracy.value);
  close("precision", expected.classification.precision.value);
  close("recall", expected.classification.recall.value);
  close("f1", expected.classification.f1.value);
  close("roc_auc", expected.auc);
  close("log_loss", expected.logLoss);
}

const population: Population = {
  championNoise: 0.3,
  canaryNoise: 0.18,
  championConversion: 0.3,
  canaryConversion: 0.45,
  revenueIfRight: 25,
};

describe("monitoring II on known populations", () => {
  it("measures quality per version from late labels, redoing only the labelled windows", {
    timeout: 120_000,
  }, async () => {
    const model = uniqueName("q");
    expect((await createModel(classificationModel(model))).status).toBe(201);
    for (const version of ["v1", "v2", "v3"]) {
      const created = await call(`/admin/models/${model}/versions`, {
        method: "POST",
        body: { version, upstream: httpUpstream },
      });
      expect(created.status).toBe(201);
    }
    const start = Date.parse("2026-10-07T12:00:00.000Z");
    const requests = simulate(21, start, 900, population);
    await store(model, requests);
    const key = await reporterKey(model);

    // Half the labels before the first run, 30% more long after it.
    const first = requests.filter((_, i) => i % 10 < 5);
    const late = requests.filter((_, i) => i % 10 >= 5 && i % 10 < 8);
    await post("/v1/feedback", labels(first), key);
    const run1 = await runMonitoring(env, new Date(start + WINDOW + 30_000), {
      settleMs: 0,
      health: false,
    });
    let rows = await results(model, start, start + WINDOW);
    const labelled = new Set(first.map((r) => r.id));
    const byVersion = (version: "v1" | "v2") => requests.filter((r) => r.answeredBy === version);
    expectQuality(rows, "served", "v1", expectedQuality(byVersion("v1"), labelled, "v1"));
    expectQuality(rows, "canary", "v2", expectedQuality(byVersion("v2"), labelled, "v2"));
    expectQuality(rows, "control", "v1", expectedQuality(byVersion("v2"), labelled, "v1"));
    expectQuality(rows, "shadow", "v3", expectedQuality(requests, labelled, "v3"));
    // The better canary is better than the champion on the same requests.
    expect(pick(rows, "canary", "v2", "roc_auc").value as number).toBeGreaterThan(
      pick(rows, "control", "v1", "roc_auc").value as number,
    );
    // The canary against the champion's control answers, pair by pair.
    const canaryRequests = byVersion("v2");
    const agreement = pick(rows, "canary", "v2", "canary_agreement", "v1");
    expect(agreement.details.pairs).toBe(canaryRequests.length);
    expect(agreement.value).toBeCloseTo(
      canaryRequests.filter((r) => label(r.scores.v2) === label(r.scores.v1)).length /
        canaryRequests.length,
      12,
    );
    const resultsRow = pick(rows, "served", "v1", "results");
    expect(resultsRow.runId).toBe(run1.runId);

    await post("/v1/feedback", labels(late), key);
    // Hours later the window is no longer recent: only its label metrics are redone.
    const run2 = await runMonitoring(env, new Date(start + 3 * 3_600_000), {
      settleMs: 0,
      health: false,
    });
    expect(run2.marked.labels).toBeGreaterThanOrEqual(1);
    rows = await results(model, start, start + WINDOW);
    for (const r of late) labelled.add(r.id);
    expectQuality(rows, "served", "v1", expectedQuality(byVersion("v1"), labelled, "v1"));
    expectQuality(rows, "shadow", "v3", expectedQuality(requests, labelled, "v3"));
    expect(pick(rows, "served", "v1", "label_coverage").runId).not.toBe(run1.runId);
    // Traffic metrics of the window were not recomputed.
    expect(pick(rows, "served", "v1", "results").runId).toBe(run1.runId);
    // The hour around it was computed from the rows, with the new labels.
    const hour = rows.find(
      (r) =>
        r.windowSeconds === 3600 &&
        r.role === "served" &&
        r.version === "v1" &&
        r.metric === "label_coverage",
    );
    expect(hour?.value).toBeCloseTo(
      expectedQuality(byVersion("v1"), labelled, "v1").coverage as number,
      12,
    );
    // Nothing is left pending for the window once it is redone.
    const again = await runMonitoring(env, new Date(start + 3 * 3_600_000), {
      settleMs: 0,
      health: false,
    });
    expect(again.redone.filter((r) => Date.parse(r.start) === start && r.seconds === 900)).toEqual(
      [],
    );

    // Outcomes that happened in the window, reported a day later: only the KPIs are redone.
    const revenue = requests
      .filter((r) => r.answeredBy === "v1")
      .map((r, i) => ({
        predictionId: r.id,
        kpi: "revenue",
        value: 10 + (i % 7),
        at: new Date(r.at + 1000).toISOString(),
      }));
    await post("/v1/outcomes", revenue, key);
    const coverageRun = pick(rows, "served", "v1", "label_coverage").runId;
    const run3 = await runMonitoring(env, new Date(start + 26 * 3_600_000), {
      settleMs: 0,
      health: false,
    });
    rows = await results(model, start, start + WINDOW);
    const count = pick(rows, "served", "v1", "kpi_count", "revenue");
    expect(count.value).toBe(revenue.length);
    expect(count.runId).not.toBe(run1.runId);
    expect(pick(rows, "served", "v1", "kpi_sum", "revenue").value).toBe(
      revenue.reduce((a, b) => a + b.value, 0),
    );
    expect(run3.marked.outcomes).toBeGreaterThanOrEqual(1);
    expect(pick(rows, "served", "v1", "label_coverage").runId).toBe(coverageRun);
    expect(pick(rows, "served", "v1", "results").runId).toBe(run1.runId);
  });

  it("reports the biased shadow challenger's disparate impact per region", {
    timeout: 120_000,
  }, async () => {
    const model = uniqueName("fair");
    expect((await createModel(classificationModel(model))).status).toBe(201);
    const start = Date.parse("2026-10-08T12:00:00.000Z");
    const requests = simulate(22, start, 600, population);
    // A third group too small to judge.
    const tiny = simulate(23, start, 12, population).map((r) => ({ ...r, region: "islands" }));
    await store(model, [...requests, ...(tiny as unknown as Request[])]);
    const key = await reporterKey(model);
    await post("/v1/feedback", labels([...requests, ...(tiny as unknown as Request[])]), key);
    await runMonitoring(env, new Date(start + WINDOW + 30_000), { settleMs: 0, health: false });
    const rows = await results(model, start, start + WINDOW);

    const all = [...requests, ...(tiny as unknown as Request[])];
    const groups = (version: "v1" | "v3", subset: Request[]) =>
      ["north", "south", "islands"].map((region) => {
        const members = subset.filter((r) => r.region === region);
        return {
          group: region,
          n: members.length,
          predictedPositive: members.filter((r) => label(r.scores[version]) === "fraud").length,
          actualPositive: members.filter((r) => r.fraud).length,
          truePositive: members.filter((r) => r.fraud && label(r.scores[version]) === "fraud")
            .length,
        };
      });
    const biased = fairnessReport(groups("v3", all));
    const shadowRatio = pick(rows, "shadow", "v3", "disparate_impact_ratio", "region");
    expect(shadowRatio.value).toBeCloseTo(biased.disparateImpactRatio.value as number, 12);
    expect(biased.disparateImpactRatio.value as number).toBeLessThan(0.8);
    expect(shadowRatio.status).toBe("alert");
    expect(shadowRatio.details.fourFifths).toBe(false);
    expect(pick(rows, "shadow", "v3", "demographic_parity_difference", "region").value).toBeCloseTo(
      biased.demographicParityDifference.value as number,
      12,
    );
    expect(pick(rows, "shadow", "v3", "equal_opportunity_difference", "region").value).toBeCloseTo(
      biased.equalOpportunityDifference.value as number,
      12,
    );
    const south = pick(rows, "shadow", "v3", "selection_rate", "region=south");
    const southCounts = groups("v3", all)[1];
    expect(south.value).toBeCloseTo(
      (southCounts?.predictedPositive as number) / (southCounts?.n as number),
      12,
    );
    const islands = pick(rows, "shadow", "v3", "selection_rate", "region=islands");
    expect(islands).toMatchObject({ value: null, reason: "group_too_small" });
    expect(islands.details.n).toBe(12);
    // The unbiased champion passes the four-fifths rule on the same requests.
    const served = all.filter((r) => r.answeredBy === "v1");
    const fair = fairnessReport(groups("v1", served));
    const championRatio = pick(rows, "served", "v1", "disparate_impact_ratio", "region");
    expect(championRatio.value).toBeCloseTo(fair.disparateImpactRatio.value as number, 12);
    expect(championRatio.status).toBe("ok");
  });

  it.each([
    ["a better canary", population, true],
    [
      "a worse canary",
      {
        ...population,
        canaryNoise: 0.45,
        canaryConversion: 0.15,
        revenueIfRight: 25,
      },
      false,
    ],
  ] as const)(
    "compares KPIs of %s with the champion's, with intervals",
    {
      timeout: 120_000,
    },
    async (_name, p, better) => {
      const model = uniqueName("kpi");
      expect((await createModel(classificationModel(model))).status).toBe(201);
      const start = Date.parse(better ? "2026-10-09T12:00:00.000Z" : "2026-10-10T12:00:00.000Z");
      const requests = simulate(better ? 24 : 25, start, 1200, p);
      await store(model, requests);
      const key = await reporterKey(model);
      const events = outcomes(requests, p, 31);
      await post("/v1/outcomes", events, key);
      await runMonitoring(env, new Date(start + WINDOW + 30_000), { settleMs: 0, health: false });
      const rows = await results(model, start, start + WINDOW);

      const summary = (version: "v1" | "v2", kpi: string) => {
        const ids = new Map(requests.map((r) => [r.id, r]));
        const keys = new Map(requests.map((r) => [r.key, r]));
        const values = events
          .filter((e) => e.kpi === kpi)
          .filter((e) => {
            const r =
              "predictionId" in e ? ids.get(e.predictionId as string) : keys.get(e.key as string);
            return r?.answeredBy === version;
          })
          .map((e) => e.value);
        const n = values.length;
        const sum = values.reduce((a, b) => a + b, 0);
        const mean = sum / n;
        const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
        return { n, sum, variance, binary: values.every((v) => v === 0 || v === 1) };
      };
      for (const kpi of ["revenue", "converted"]) {
        const champion = summary("v1", kpi);
        const canary = summary("v2", kpi);
        expect(pick(rows, "served", "v1", "kpi_count", kpi).value).toBe(champion.n);
        expect(pick(rows, "canary", "v2", "kpi_count", kpi).value).toBe(canary.n);
        expect(pick(rows, "served", "v1", "kpi_sum", kpi).value).toBeCloseTo(champion.sum, 6);
        expect(pick(rows, "canary", "v2", "kpi_mean", kpi).value).toBeCloseTo(
          canary.sum / canary.n,
          9,
        );
        const expected = kpiDifference(canary, champion);
        expect(expected.method).toBe(kpi === "converted" ? "newcombe" : "welch");
        const difference = pick(rows, "canary", "v2", "kpi_difference", kpi);
        expect(difference.value).toBeCloseTo(expected.interval.estimate as number, 9);
        expect(difference.details.lower).toBeCloseTo(expected.interval.lower as number, 9);
        expect(difference.details.upper).toBeCloseTo(expected.interval.upper as number, 9);
        expect(difference.details).toMatchObject({
          method: expected.method,
          comparedWith: "v1",
          significant: true,
          canary: { n: canary.n },
          champion: { n: champion.n },
        });
        // Better: the whole interval above 0; worse: below.
        if (better) expect(difference.details.lower as number).toBeGreaterThan(0);
        else expect(difference.details.upper as number).toBeLessThan(0);
      }
      // Every conversion was attributed through its key, every revenue through its id.
      expect(pick(rows, "served", "v1", "kpi_count", "converted").details).toMatchObject({
        byKey: summary("v1", "converted").n,
        byPrediction: 0,
      });
    },
  );

  it("measures regression and multiclass quality", { timeout: 120_000 }, async () => {
    const random = mulberry32(41);
    const start = Date.parse("2026-10-11T12:00:00.000Z");
    const regression = uniqueName("reg");
    const multiclass = uniqueName("multi");
    expect((await createModel(regressionModel(regression))).status).toBe(201);
    const classes = ["low", "mid", "high"];
    expect(
      (await createModel(classificationModel(multiclass, { classes, positiveClass: undefined })))
        .status,
    ).toBe(201);
    const base = (model: string, i: number) => ({
      predictionId: v7({ msecs: start + i * 1000 }),
      requestId: `r${i}`,
      model,
      role: "served" as const,
      version: "v1",
      inputs: { items: 3 },
      attributes: {},
      keyHmac: null,
      latencyMs: 2,
      status: "ok" as const,
      errorCode: null,
      stateVersion: 1,
      timestamp: new Date(start + i * 1000).toISOString(),
    });
    const truth: number[] = [];
    const predicted: number[] = [];
    const actualClass: number[] = [];
    const probabilities: number[][] = [];
    const events: PredictionEvent[] = [];
    for (let i = 0; i < 300; i++) {
      const y = round(20 + random() * 80);
      const yHat = round(y + (random() - 0.4) * 15);
      truth.push(y);
      predicted.push(yHat);
      events.push({ ...base(regression, i), prediction: { value: yHat } });
      const raw = classes.map(() => 0.05 + random());
      const sum = raw.reduce((a, b) => a + b, 0);
      const p = raw.map((x) => x / sum);
      const top = p.indexOf(Math.max(...p));
      actualClass.push(random() < 0.6 ? top : Math.floor(random() * 3));
      probabilities.push(p);
      events.push({
        ...base(multiclass, i),
        prediction: {
          label: classes[top] as string,
          probabilities: Object.fromEntries(classes.map((c, j) => [c, p[j] as number])),
        },
      });
    }
    await storeLogs(env, events, []);
    // One key for both models: each label names its model.
    const key = await reporterKey(regression, multiclass);
    const regressionEvents = events.filter((e) => e.model === regression);
    const multiclassEvents = events.filter((e) => e.model === multiclass);
    // Labels for all but the last 50; regression labels as numbers.
    await post(
      "/v1/feedback",
      regressionEvents
        .slice(0, 250)
        .map((e, i) => ({ predictionId: e.predictionId, model: regression, label: truth[i] })),
      key,
    );
    await post(
      "/v1/feedback",
      multiclassEvents.slice(0, 250).map((e, i) => ({
        predictionId: e.predictionId,
        model: multiclass,
        label: classes[actualClass[i] as number],
      })),
      key,
    );
    await runMonitoring(env, new Date(start + WINDOW + 30_000), { settleMs: 0, health: false });

    const reg = await results(regression, start, start + WINDOW);
    const expected = regressionMetrics(truth.slice(0, 250), predicted.slice(0, 250));
    for (const [metric, value] of [
      ["mae", expected.mae.value],
      ["rmse", expected.rmse.value],
      ["r2", expected.r2.value],
      ["mean_error", expected.meanError.value],
    ] as const) {
      expect(value, metric).not.toBeNull();
      expect(pick(reg, "served", "v1", metric).value, metric).toBeCloseTo(value as number, 9);
    }
    expect(pick(reg, "served", "v1", "label_coverage").value).toBeCloseTo(250 / 300, 12);

    const multi = await results(multiclass, start, start + WINDOW);
    const actual = actualClass.slice(0, 250).map((c) => classes[c] as string);
    const predictedLabels = probabilities
      .slice(0, 250)
      .map((p) => classes[p.indexOf(Math.max(...p))] as string);
    const scores = classificationMetrics(actual, predictedLabels);
    expect(scores.average).toBe("macro");
    for (const metric of ["accuracy", "precision", "recall", "f1"] as const) {
      expect(pick(multi, "served", "v1", metric).value, metric).toBeCloseTo(
        scores[metric].value as number,
        12,
      );
    }
    expect(pick(multi, "served", "v1", "log_loss").value).toBeCloseTo(
      logLoss(actualClass.slice(0, 250), probabilities.slice(0, 250)).value as number,
      12,
    );
    // ROC AUC is reported for binary models only.
    expect(multi.some((r) => r.metric === "roc_auc")).toBe(false);
  });
});
