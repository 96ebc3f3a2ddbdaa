/**
 * A rollout phase's evidence read from real rows, judged by the gates with
 * their default thresholds: results stored by the log consumer, labels and
 * outcomes in their tables, alerts and the monitoring job's coverage as the
 * job leaves them. Each test has models of its own; the data is seeded.
 */
import { env } from "cloudflare:workers";
import { sql } from "drizzle-orm";
import { v7 } from "uuid";
import { describe, expect, it } from "vitest";
import { COVERAGE_CURSOR, runMonitoring } from "../../functions/jobs/monitoring";
import { phaseEvidence } from "../../functions/plans/evidence";
import type { PredictionEvent } from "../../shared/inference/events";
import { regressionSums } from "../../shared/metrics";
import { evaluatePhase } from "../../shared/plans/evaluate";
import type { PhaseEvidence, PhaseQuery } from "../../shared/plans/evidence";
import {
  agreementGate,
  alertsGate,
  DEFAULT_GATE_THRESHOLDS,
  errorRateGate,
  fairnessGate,
  kpiGate,
  latencyGate,
  meanDifferenceGate,
  qualityGate,
} from "../../shared/plans/gates";
import { type PhaseKind, type PlanPhase, planPhases } from "../../shared/plans/phases";
import { database, query, uniqueName } from "./helpers";
import { deliverLogs } from "./log-helpers";
import { mulberry32 } from "./random";

const START = Date.parse("2026-10-01T00:00:00.000Z");
const END = START + 2 * 86_400_000;
/** The rollout state the phase began at; results before it belong to an earlier phase. */
const STATE = 7;
const WINDOW_SECONDS = 900;

interface Answer {
  label?: string;
  value?: number;
  latencyMs?: number;
  error?: boolean;
}

interface Written {
  events: PredictionEvent[];
  labels: { predictionId: string; label: string | number }[];
}

const at = (i: number) => START + 60_000 + i * 1000;

function event(
  model: string,
  role: PredictionEvent["role"],
  version: string,
  id: string,
  time: number,
  answer: Answer,
  extra: { stateVersion?: number; region?: string } = {},
): PredictionEvent {
  const prediction =
    answer.error === true
      ? null
      : answer.value !== undefined
        ? { value: answer.value }
        : { label: answer.label ?? "legit" };
  return {
    role,
    predictionId: id,
    requestId: id,
    model,
    version,
    prediction,
    inputs: { amount: 10, country: "DE" },
    attributes: extra.region === undefined ? {} : { region: extra.region },
    keyHmac: null,
    latencyMs: answer.latencyMs ?? 5,
    status: answer.error === true ? "error" : "ok",
    errorCode: answer.error === true ? "UPSTREAM_ERROR" : null,
    stateVersion: extra.stateVersion ?? STATE,
    timestamp: new Date(time).toISOString(),
  };
}

interface PairedRequest {
  challenger: Answer;
  champion: Answer;
  truth?: string | number;
  region?: string;
}

/**
 * Requests answered by both versions in a shadow, full or guard phase: in
 * shadow the champion serves and the challenger shadows, in full and guard
 * the other way round.
 */
function paired(
  model: string,
  kind: "shadow" | "full" | "guard",
  n: number,
  request: (i: number) => PairedRequest,
  options: { stateVersion?: number; time?: (i: number) => number; ids?: string[] } = {},
): Written {
  const out: Written = { events: [], labels: [] };
  const [challengerRole, championRole] =
    kind === "shadow" ? (["shadow", "served"] as const) : (["served", "shadow"] as const);
  for (let i = 0; i < n; i++) {
    const r = request(i);
    const time = (options.time ?? at)(i);
    const id = options.ids?.[i] ?? v7({ msecs: time });
    const extra = { stateVersion: options.stateVersion, region: r.region };
    out.events.push(
      event(model, challengerRole, "v2", id, time, r.challenger, extra),
      event(model, championRole, "v1", id, time, r.champion, extra),
    );
    if (r.truth !== undefined) out.labels.push({ predictionId: id, label: r.truth });
  }
  return out;
}

interface CanaryRequest {
  canary: Answer;
  control: Answer;
  served: Answer;
  truth?: string;
  region?: string;
  revenue?: { canary: number; served: number };
}

/**
 * A canary phase: per i, one request answered by the canary v2 (with the
 * champion's control result for it) and one answered by the champion v1.
 */
function canary(
  model: string,
  n: number,
  request: (i: number) => CanaryRequest,
  options: { stateVersion?: number } = {},
): Written & { outcomes: { predictionId: string; kpi: string; value: number }[] } {
  const out = {
    events: [] as PredictionEvent[],
    labels: [] as Written["labels"],
    outcomes: [] as { predictionId: string; kpi: string; value: number }[],
  };
  for (let i = 0; i < n; i++) {
    const r = request(i);
    const time = at(i);
    const canaryId = v7({ msecs: time });
    const servedId = v7({ msecs: time });
    const extra = { stateVersion: options.stateVersion, region: r.region };
    out.events.push(
      event(model, "canary", "v2", canaryId, time, r.canary, extra),
      event(model, "control", "v1", canaryId, time, r.control, extra),
      event(model, "served", "v1", servedId, time, r.served, extra),
    );
    if (r.truth !== undefined)
      out.labels.push(
        { predictionId: canaryId, label: r.truth },
        { predictionId: servedId, label: r.truth },
      );
    if (r.revenue)
      out.outcomes.push(
        { predictionId: canaryId, kpi: "revenue", value: r.revenue.canary },
        { predictionId: servedId, kpi: "revenue", value: r.revenue.served },
      );
  }
  return out;
}

/** Stores results through the log consumer, labels and outcomes in their tables. */
async function write(
  model: string,
  written: Partial<Written> & { outcomes?: { predictionId: string; kpi: string; value: number }[] },
): Promise<void> {
  const events = written.events ?? [];
  const messages = [];
  for (let i = 0; i < events.length; i += 50)
    messages.push({ body: { schema: 1, results: events.slice(i, i + 50) } });
  for (let i = 0; i < messages.length; i += 100) {
    const delivered = await deliverLogs(messages.slice(i, i + 100));
    expect(delivered.retryMessages).toEqual([]);
  }
  if (written.labels?.length)
    await query(sql`
      INSERT INTO feedback (prediction_id, model, label, observed_at, api_key_id)
      SELECT x.prediction_id, ${model}, x.label, now(), 'test-reporter'
      FROM jsonb_to_recordset(${JSON.stringify(
        written.labels.map((l) => ({ prediction_id: l.predictionId, label: l.label })),
      )}::jsonb) AS x(prediction_id text, label jsonb)`);
  if (written.outcomes?.length)
    await query(sql`
      INSERT INTO outcomes (api_key_id, model, prediction_id, kpi, value, at)
      SELECT 'test-reporter', ${model}, x.prediction_id, x.kpi, x.value, ${new Date(END).toISOString()}
      FROM jsonb_to_recordset(${JSON.stringify(
        written.outcomes.map((o) => ({
          prediction_id: o.predictionId,
          kpi: o.kpi,
          value: o.value,
        })),
      )}::jsonb) AS x(prediction_id text, kpi text, value float8)`);
}

function phase(model: string, kind: PhaseKind, overrides: Partial<PhaseQuery> = {}): PhaseQuery {
  return {
    model,
    task: "classification",
    positiveClass: "fraud",
    kind,
    challenger: "v2",
    champion: "v1",
    fromStateVersion: STATE,
    span: { start: new Date(START), end: new Date(END) },
    fairnessAttributes: [],
    kpis: [],
    ...overrides,
  };
}

async function evidence(q: PhaseQuery): Promise<PhaseEvidence> {
  const handle = database();
  try {
    return await phaseEvidence(handle.db, q, { windowSeconds: WINDOW_SECONDS });
  } finally {
    await handle.close();
  }
}

function agreement(e: PhaseEvidence) {
  if (e.pairs.task !== "classification") throw new Error("expected classification pairs");
  return agreementGate({ pairs: e.pairs.sums, span: e.span });
}

/** 30% fraud, drawn from a seed. */
const truths = (seed: number, n: number) => {
  const random = mulberry32(seed);
  return Array.from({ length: n }, () => (random() < 0.3 ? "fraud" : "legit"));
};
const other = (label: string) => (label === "fraud" ? "legit" : "fraud");

describe("phase evidence: agreement", () => {
  it("passes at 95% over 300 pairs, fails at 80%, waits at 150 pairs", async () => {
    const truth = truths(1, 300);
    const shadow = async (n: number, disagreeEvery: number) => {
      const model = uniqueName("ev-agree");
      await write(
        model,
        paired(model, "shadow", n, (i) => ({
          champion: { label: truth[i] },
          challenger: { label: i % disagreeEvery === 0 ? other(truth[i] as string) : truth[i] },
        })),
      );
      return evidence(phase(model, "shadow"));
    };
    const pass = await shadow(300, 20);
    expect(pass.pairs).toEqual({
      task: "classification",
      sums: { pairs: 300, agreeing: 285, scoredPairs: 0, sumAbsScoreDifference: 0 },
    });
    expect(agreement(pass).verdict).toBe("pass");
    const fail = await shadow(300, 5);
    expect(agreement(fail)).toMatchObject({
      verdict: "fail",
      evidence: { numbers: { agreementRate: 0.8 }, samples: { pairs: 300 } },
    });
    const few = await shadow(150, 20);
    expect(agreement(few)).toMatchObject({
      verdict: "insufficient_evidence",
      needed: { samples: { pairs: 50 } },
    });
  });

  it("counts only the phase's own results: not an earlier state's, not another model's", async () => {
    const model = uniqueName("ev-own");
    const elsewhere = uniqueName("ev-other");
    const truth = truths(2, 300);
    const phaseRows = paired(model, "shadow", 300, (i) => ({
      champion: { label: truth[i] },
      challenger: { label: truth[i] },
    }));
    // The same requests as the phase's, under an earlier rollout state (an
    // earlier phase of the same versions, inside the span), before the span,
    // and another model's results for the same prediction ids: all disagree.
    const disagree = (i: number) => ({
      champion: { label: truth[i] },
      challenger: { label: other(truth[i] as string) },
    });
    const earlier = paired(model, "shadow", 300, disagree, { stateVersion: STATE - 1 });
    const before = paired(model, "shadow", 300, disagree, { time: (i) => START - 1000 - i });
    const ids = phaseRows.events.filter((e) => e.role === "served").map((e) => e.predictionId);
    const another = paired(elsewhere, "shadow", 300, disagree, { ids, time: (i) => at(i) + 1 });
    await write(model, {
      events: [...phaseRows.events, ...earlier.events, ...before.events, ...another.events],
    });

    const e = await evidence(phase(model, "shadow"));
    expect(e.pairs.sums).toMatchObject({ pairs: 300, agreeing: 300 });
    expect(e.progress.requests).toBe(300);
    expect(e.operations.challenger.results).toBe(300);
    expect(e.operations.champion.results).toBe(300);
    expect(agreement(e).verdict).toBe("pass");
    // Judged as a phase: the pairs pass, the 300 requests are short of the shadow's 1000.
    const judged = evaluatePhase(planPhases()[0] as PlanPhase, e, DEFAULT_GATE_THRESHOLDS, {
      task: "classification",
      challenger: "v2",
      fairnessAttributes: [],
      kpis: [],
    });
    expect(judged.gates.find((g) => g.gate === "agreement")?.verdict).toBe("pass");
    expect(judged.gates.find((g) => g.gate === "phase_minimums")?.needed?.samples).toEqual({
      requests: 700,
    });
    // The earlier phase, asked for on its own, has its own pairs.
    const all = await evidence(phase(model, "shadow", { fromStateVersion: STATE - 1 }));
    expect(all.pairs.sums).toMatchObject({ pairs: 600, agreeing: 300 });
  });
});

describe("phase evidence: operations", () => {
  async function shadowOperations(
    n: number,
    challenger: (i: number, random: () => number) => Answer,
  ) {
    const model = uniqueName("ev-ops");
    const random = mulberry32(3);
    await write(
      model,
      paired(model, "shadow", n, (i) => ({
        champion: { label: "legit", latencyMs: 10 + random() * 5, error: i % 100 === 0 },
        challenger: challenger(i, random),
      })),
    );
    return evidence(phase(model, "shadow"));
  }

  it("passes on equal error rates and latency, fails on more errors and a slow p99", async () => {
    const same = await shadowOperations(300, (i, random) => ({
      label: "legit",
      latencyMs: 10 + random() * 6,
      error: i % 100 === 1,
    }));
    expect(same.operations.challenger).toMatchObject({ results: 300, errors: 3 });
    expect(same.operations.champion).toMatchObject({ results: 300, errors: 3 });
    expect(errorRateGate(same.operations).verdict).toBe("pass");
    expect(latencyGate(same.operations).verdict).toBe("pass");

    const worse = await shadowOperations(300, (i, random) => ({
      label: "legit",
      latencyMs: 60 + random() * 20,
      error: i % 20 === 0,
    }));
    expect(worse.operations.challenger.errors).toBe(15);
    expect(errorRateGate(worse.operations)).toMatchObject({
      verdict: "fail",
      evidence: { numbers: { challengerErrorRate: 0.05, championErrorRate: 0.01 } },
    });
    const p99 = worse.operations.challenger.p99LatencyMs as number;
    expect(p99).toBeGreaterThan(60);
    expect(p99).toBeLessThanOrEqual(80);
    expect(latencyGate(worse.operations).verdict).toBe("fail");
  });

  it("waits with fewer than 100 results on a side", async () => {
    const few = await shadowOperations(60, () => ({ label: "legit", latencyMs: 12 }));
    expect(errorRateGate(few.operations)).toMatchObject({
      verdict: "insufficient_evidence",
      needed: { samples: { challengerResults: 40, championResults: 40 } },
    });
    expect(latencyGate(few.operations).verdict).toBe("insufficient_evidence");
  });
});

describe("phase evidence: open alerts", () => {
  async function insertAlert(model: string, version: string, rule: string) {
    await query(sql`
      INSERT INTO alerts (fingerprint, rule, severity, state, model, version, role, metric,
        dimension, value, threshold, comparison, summary, first_seen_at, last_seen_at)
      VALUES (${`${model}:${version}:${rule}`}, ${rule}, 'warning', 'firing', ${model}, ${version},
        'shadow', ${rule}, 'amount', 0.4, 0.2, 'above', ${`${rule} on amount`}, now(), now())`);
  }
  const cursor = async () =>
    (
      await query<{ position: string }>(
        sql`SELECT position::text AS position FROM monitoring_cursors WHERE name = ${COVERAGE_CURSOR}`,
      )
    )[0]?.position;

  it("holds on a drift alert on the challenger, passes without one, and waits for the job", async () => {
    const drifting = uniqueName("ev-alert");
    const quiet = uniqueName("ev-quiet");
    await insertAlert(drifting, "v2", "drift");
    // Not blocking: an operational rule on the challenger, drift on the champion resolved.
    await insertAlert(quiet, "v2", "error_rate");
    await insertAlert(quiet, "v1", "drift");
    await query(sql`UPDATE alerts SET state = 'resolved', resolved_at = now(), resolution = 'recovered'
      WHERE model = ${quiet} AND version = 'v1'`);

    // The monitoring job catches up to now: its coverage passes the phase's end.
    await runMonitoring({ ...env, MONITORING_WINDOW_SECONDS: String(WINDOW_SECONDS) }, new Date(), {
      catchUp: true,
      alerts: false,
      health: false,
    });
    const covered = Date.parse((await cursor()) as string);
    expect(covered).toBeGreaterThanOrEqual(END);

    const held = await evidence(phase(drifting, "shadow"));
    expect(held.openAlerts?.map((a) => [a.version, a.rule])).toEqual([["v2", "drift"]]);
    expect(alertsGate({ challenger: "v2", openAlerts: held.openAlerts }).verdict).toBe("fail");
    const clear = await evidence(phase(quiet, "shadow"));
    expect(clear.openAlerts?.map((a) => a.rule)).toEqual(["error_rate"]);
    expect(alertsGate({ challenger: "v2", openAlerts: clear.openAlerts }).verdict).toBe("pass");

    // A phase whose span ends more than two windows after the job's coverage:
    // the alerts are not current, and the gate waits instead of passing. (The
    // coverage is shared by every test file, and other files' runs only move
    // it forward, up to now: a span that ends a window past the edge stays
    // past it whatever they do meanwhile.)
    const edge = covered + 2 * WINDOW_SECONDS * 1000;
    const atEdge = await evidence(
      phase(quiet, "shadow", { span: { start: new Date(START), end: new Date(edge) } }),
    );
    expect(atEdge.openAlerts).not.toBeNull();
    const pastEdge = Math.max(edge, Date.now() + 2 * WINDOW_SECONDS * 1000) + WINDOW_SECONDS * 1000;
    const stale = await evidence(
      phase(quiet, "shadow", { span: { start: new Date(START), end: new Date(pastEdge) } }),
    );
    expect(stale.openAlerts).toBeNull();
    expect(alertsGate({ challenger: "v2", openAlerts: stale.openAlerts }).verdict).toBe(
      "insufficient_evidence",
    );
  });
});

describe("phase evidence: quality, fairness and KPIs in a canary", () => {
  it("judges accuracy from labels of the phase's canary and served results only", async () => {
    const truth = truths(4, 250);
    const run = async (n: number, canaryWrongEvery: number) => {
      const model = uniqueName("ev-quality");
      const rows = canary(model, n, (i) => ({
        truth: truth[i],
        served: { label: i % 10 === 0 ? other(truth[i] as string) : truth[i] },
        control: { label: i % 10 === 0 ? other(truth[i] as string) : truth[i] },
        canary: {
          label: i % canaryWrongEvery === 1 ? other(truth[i] as string) : truth[i],
        },
      }));
      // An earlier phase's canary results, every one wrong, labelled too.
      const earlier = canary(
        model,
        n,
        (i) => ({
          truth: truth[i],
          served: { label: other(truth[i] as string) },
          control: { label: other(truth[i] as string) },
          canary: { label: other(truth[i] as string) },
        }),
        { stateVersion: STATE - 1 },
      );
      await write(model, {
        events: [...rows.events, ...earlier.events],
        labels: [...rows.labels, ...earlier.labels],
      });
      return evidence(phase(model, "canary"));
    };
    const pass = await run(250, 10);
    expect(pass.progress).toMatchObject({ requests: 250, labels: 250 });
    expect(qualityGate(pass.quality)).toMatchObject({
      verdict: "pass",
      evidence: {
        numbers: { challenger_accuracy: 0.9, champion_accuracy: 0.9 },
        samples: { challengerLabels: 250, championLabels: 250 },
      },
    });
    const fail = await run(250, 5);
    expect(qualityGate(fail.quality)).toMatchObject({
      verdict: "fail",
      evidence: { numbers: { challenger_accuracy: 0.8, champion_accuracy: 0.9 } },
    });
    const few = await run(120, 10);
    expect(qualityGate(few.quality)).toMatchObject({
      verdict: "insufficient_evidence",
      needed: { samples: { challengerLabels: 80, championLabels: 80 } },
    });
  });

  it("judges fairness by region from each side's groups", async () => {
    // Per region, 30% fraud; the champion finds every fraud.
    const run = async (n: number, biased: boolean) => {
      const model = uniqueName("ev-fair");
      const rows = canary(model, n, (i) => {
        const region = i % 2 === 0 ? "north" : "south";
        const k = Math.floor(i / 2) % 10;
        const truth = k < 3 ? "fraud" : "legit";
        // The biased canary finds only a third of the frauds in the south.
        const found = biased && region === "south" ? k < 1 : k < 3;
        return {
          region,
          truth,
          served: { label: truth },
          control: { label: truth },
          canary: { label: found ? "fraud" : "legit" },
        };
      });
      await write(model, rows);
      return evidence(phase(model, "canary", { fairnessAttributes: ["region"] }));
    };
    const fair = await run(400, false);
    expect(fair.fairness).toEqual([
      {
        attribute: "region",
        challenger: [
          { group: "north", n: 200, predictedPositive: 60, actualPositive: 60, truePositive: 60 },
          { group: "south", n: 200, predictedPositive: 60, actualPositive: 60, truePositive: 60 },
        ],
        champion: [
          { group: "north", n: 200, predictedPositive: 60, actualPositive: 60, truePositive: 60 },
          { group: "south", n: 200, predictedPositive: 60, actualPositive: 60, truePositive: 60 },
        ],
      },
    ]);
    expect(fairnessGate({ attributes: fair.fairness }).verdict).toBe("pass");
    const biased = await run(400, true);
    expect(biased.fairness[0]?.challenger[1]).toMatchObject({
      group: "south",
      predictedPositive: 20,
      truePositive: 20,
    });
    expect(fairnessGate({ attributes: biased.fairness }).verdict).toBe("fail");
    const small = await run(40, false);
    expect(fairnessGate({ attributes: small.fairness }).verdict).toBe("insufficient_evidence");
  });

  it("judges a KPI's non-inferiority from outcomes tied to the phase's predictions", async () => {
    const run = async (n: number, canaryMean: number) => {
      const model = uniqueName("ev-kpi");
      const random = mulberry32(5);
      const rows = canary(model, n, () => ({
        served: { label: "legit" },
        control: { label: "legit" },
        canary: { label: "legit" },
        revenue: {
          canary: Math.round((canaryMean + (random() - 0.5) * 20) * 100) / 100,
          served: Math.round((100 + (random() - 0.5) * 20) * 100) / 100,
        },
      }));
      await write(model, rows);
      const e = await evidence(
        phase(model, "canary", { kpis: [{ name: "revenue", higherIsBetter: true }] }),
      );
      // The outcomes tied to control results (the canary's prediction ids) count once, for the canary.
      const expected = rows.outcomes.filter((o) => o.kpi === "revenue");
      const sum = (ids: Set<string>) =>
        expected.filter((o) => ids.has(o.predictionId)).reduce((s, o) => s + o.value, 0);
      const canaryIds = new Set(
        rows.events.filter((x) => x.role === "canary").map((x) => x.predictionId),
      );
      expect(e.kpis[0]?.canary.n).toBe(n);
      expect(e.kpis[0]?.champion.n).toBe(n);
      expect(e.kpis[0]?.canary.sum).toBeCloseTo(sum(canaryIds), 6);
      return e;
    };
    expect(kpiGate({ kpis: (await run(300, 100)).kpis }).verdict).toBe("pass");
    expect(kpiGate({ kpis: (await run(300, 85)).kpis }).verdict).toBe("fail");
    expect(kpiGate({ kpis: (await run(50, 100)).kpis }).verdict).toBe("insufficient_evidence");
  });
});

describe("phase evidence: full and guard", () => {
  it("compares the new champion's served results with the previous champion's shadow", async () => {
    const model = uniqueName("ev-full");
    const random = mulberry32(6);
    const n = 300;
    const previous = Array.from({ length: n }, () => 100 + random() * 40);
    const current = previous.map((x) => x + (random() - 0.5));
    const actual = previous.map((x) => x + (random() - 0.5) * 10);
    await write(
      model,
      paired(model, "full", n, (i) => ({
        champion: { value: previous[i] },
        challenger: { value: current[i] },
        truth: actual[i],
      })),
    );
    const e = await evidence(
      phase(model, "full", { task: "regression", positiveClass: null, fairnessAttributes: ["x"] }),
    );
    expect(e.progress).toMatchObject({ requests: n, labels: n });
    if (e.pairs.task !== "regression") throw new Error("expected regression pairs");
    expect(e.pairs.sums.n).toBe(n);
    expect(e.pairs.sums.sumX).toBeCloseTo(
      previous.reduce((s, x) => s + x, 0),
      6,
    );
    expect(meanDifferenceGate({ pairs: e.pairs.sums }).verdict).toBe("pass");
    if (e.quality?.task !== "regression") throw new Error("expected regression quality");
    const expectChallenger = regressionSums(actual, current);
    expect(e.quality.challenger.n).toBe(n);
    expect(e.quality.challenger.sumAbsoluteError).toBeCloseTo(expectChallenger.sumAbsoluteError, 6);
    expect(e.quality.champion.sumAbsoluteError).toBeCloseTo(
      regressionSums(actual, previous).sumAbsoluteError,
      6,
    );
    expect(qualityGate(e.quality).verdict).toBe("pass");
    // No positive class: no groups, and no KPIs outside a canary.
    expect(e.fairness).toEqual([{ attribute: "x", challenger: [], champion: [] }]);
    expect(e.kpis).toEqual([]);
    // A shadow phase of the same versions finds none of these results.
    const shadow = await evidence(phase(model, "shadow", { task: "regression" }));
    expect(shadow.progress.requests).toBe(0);
    expect(shadow.quality).toBeNull();
  });
});
