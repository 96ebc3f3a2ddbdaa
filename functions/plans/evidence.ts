/**
 * The evidence of one rollout phase, read from Postgres
 * (shared/plans/evidence.ts says what it holds and who is compared with
 * whom in each kind of phase). Only results served in the phase count:
 * those of the plan's model and two versions, created in the phase's span,
 * under the rollout state the phase began at or a later one. Every query is
 * bounded by the model, the span (so only the span's partitions are read)
 * and the state version.
 *
 * - Pairs: functions/monitoring/comparison.ts's statement, narrowed to the
 *   model, the two versions and the state version.
 * - Operations: results, errors (status other than ok) and p99 latency of
 *   each side.
 * - Quality and fairness: `prediction_refs` joined to `feedback` on the
 *   prediction id and the model, as functions/monitoring/labels.ts joins
 *   them; groups count every result of the group, true positives the
 *   labelled ones.
 * - KPIs: outcomes of the model tied by prediction id to a result of the
 *   phase. Outcomes tied only to a bucketing key are not attributed here:
 *   within a phase one key may have been answered by both versions, and a
 *   phase's comparison should rest only on outcomes known to follow one
 *   version's answer.
 * - Open alerts: read only when the monitoring job's coverage has reached
 *   the span's end less two base windows (the window just ended and the one
 *   before, which the job computes again for late rows); otherwise null, so
 *   a job that did not run is never a pass.
 */
import { type SQL, sql } from "drizzle-orm";
import type { Queryable } from "../../shared/db/client";
import type { ConfusionCell, GroupCounts, KpiSummary, RegressionSums } from "../../shared/metrics";
import type { PairSums } from "../../shared/monitoring/comparison-rows";
import type { PhaseEvidence, PhasePairs, PhaseQuery } from "../../shared/plans/evidence";
import type {
  FairnessAttributeInput,
  KpiInput,
  OpenAlert,
  OperationsSide,
  QualityInput,
  Span,
} from "../../shared/plans/gates";
import type { PhaseKind } from "../../shared/plans/phases";
import { COVERAGE_CURSOR } from "../jobs/monitoring";
import { pairSumsQuery } from "../monitoring/comparison";
import { MAX_GROUPS_PER_ATTRIBUTE } from "../monitoring/labels";

type Role = "served" | "canary" | "shadow" | "control";
type Count = string | number;

/** The roles of a phase: its pairs, and the two populations everything else compares. */
interface PhaseRoles {
  pairs: { challenger: "shadow" | "canary" | "served"; champion: "served" | "control" | "shadow" };
  challenger: Role;
  champion: Role;
}

export const PHASE_ROLES: Record<PhaseKind, PhaseRoles> = {
  shadow: {
    pairs: { challenger: "shadow", champion: "served" },
    challenger: "shadow",
    champion: "served",
  },
  canary: {
    pairs: { challenger: "canary", champion: "control" },
    challenger: "canary",
    champion: "served",
  },
  full: {
    pairs: { challenger: "served", champion: "shadow" },
    challenger: "served",
    champion: "shadow",
  },
  guard: {
    pairs: { challenger: "served", champion: "shadow" },
    challenger: "served",
    champion: "shadow",
  },
};

export interface EvidenceOptions {
  /** The monitoring job's base window in seconds (MONITORING_WINDOW_SECONDS). */
  windowSeconds: number;
}

/** The evidence of the phase `query` describes, from its start to its span's end. */
export async function phaseEvidence(
  db: Queryable,
  query: PhaseQuery,
  options: EvidenceOptions,
): Promise<PhaseEvidence> {
  const span: Span = { start: query.span.start.toISOString(), end: query.span.end.toISOString() };
  const roles = PHASE_ROLES[query.kind];
  const served = query.kind !== "shadow";
  const [pairs, operations, progress, openAlerts, quality, fairness, kpis] = await Promise.all([
    phasePairs(db, query, roles),
    phaseOperations(db, query, roles),
    challengerProgress(db, query, roles),
    currentOpenAlerts(db, query, options.windowSeconds),
    served ? phaseQuality(db, query, roles) : null,
    served ? phaseFairness(db, query, roles) : [],
    query.kind === "canary" ? phaseKpis(db, query, roles) : [],
  ]);
  return {
    span,
    progress: {
      dwellSeconds: Math.max(0, (query.span.end.getTime() - query.span.start.getTime()) / 1000),
      requests: progress.requests,
      labels: progress.labels,
      span,
    },
    pairs,
    operations: { ...operations, span },
    openAlerts,
    quality: quality && { ...quality, span },
    fairness,
    kpis,
  };
}

// ---- the phase's bounds -----------------------------------------------------------------

/** Results of the phase's model, span and states, in the table aliased `alias`. */
function inPhase(alias: string, query: PhaseQuery): SQL {
  const a = sql.raw(alias);
  return sql`${a}.model = ${query.model}
    AND ${a}.created_at >= ${query.span.start.toISOString()}
    AND ${a}.created_at < ${query.span.end.toISOString()}
    AND ${a}.state_version >= ${query.fromStateVersion}`;
}

/** The side a result belongs to: the challenger, the champion, or neither (null). */
function sideOf(alias: string, query: PhaseQuery, roles: PhaseRoles): SQL {
  const a = sql.raw(alias);
  return sql`CASE
    WHEN ${a}.role = ${roles.challenger} AND ${a}.version = ${query.challenger} THEN 'challenger'
    WHEN ${a}.role = ${roles.champion} AND ${a}.version = ${query.champion} THEN 'champion'
  END`;
}

function eitherSide(alias: string, query: PhaseQuery, roles: PhaseRoles): SQL {
  const a = sql.raw(alias);
  return sql`((${a}.role = ${roles.challenger} AND ${a}.version = ${query.challenger})
    OR (${a}.role = ${roles.champion} AND ${a}.version = ${query.champion}))`;
}

// ---- pairs and operations ---------------------------------------------------------------

async function phasePairs(
  db: Queryable,
  query: PhaseQuery,
  roles: PhaseRoles,
): Promise<PhasePairs> {
  const { rows } = await db.execute<PairSums>(
    pairSumsQuery({
      challengerRole: roles.pairs.challenger,
      referenceRoles: [roles.pairs.champion],
      from: query.span.start,
      to: query.span.end,
      model: query.model,
      challengerVersion: query.challenger,
      referenceVersion: query.champion,
      fromStateVersion: query.fromStateVersion,
    }),
  );
  const sums = rows[0];
  if (query.task === "classification")
    return {
      task: "classification",
      sums: {
        pairs: Number(sums?.labelled ?? 0),
        agreeing: Number(sums?.agreeing ?? 0),
        scoredPairs: Number(sums?.scored ?? 0),
        sumAbsScoreDifference: Number(sums?.sum_abs_score ?? 0),
      },
    };
  // x is the champion's prediction (the reference), y the challenger's.
  return {
    task: "regression",
    sums: {
      n: Number(sums?.valued ?? 0),
      sumX: Number(sums?.sum_x ?? 0),
      sumY: Number(sums?.sum_y ?? 0),
      sumXX: Number(sums?.sum_xx ?? 0),
      sumYY: Number(sums?.sum_yy ?? 0),
      sumXY: Number(sums?.sum_xy ?? 0),
      sumAbsDifference: Number(sums?.sum_abs_value ?? 0),
    },
  };
}

async function phaseOperations(
  db: Queryable,
  query: PhaseQuery,
  roles: PhaseRoles,
): Promise<{ champion: OperationsSide; challenger: OperationsSide }> {
  const { rows } = await db.execute<{
    side: "challenger" | "champion";
    results: Count;
    errors: Count;
    p99: number | null;
  }>(sql`
    SELECT ${sideOf("p", query, roles)} AS side, count(*) AS results,
      count(*) FILTER (WHERE p.status <> 'ok') AS errors,
      percentile_cont(0.99) WITHIN GROUP (ORDER BY p.latency_ms) AS p99
    FROM predictions p
    WHERE ${inPhase("p", query)} AND ${eitherSide("p", query, roles)}
    GROUP BY 1`);
  const side = (name: "challenger" | "champion"): OperationsSide => {
    const row = rows.find((r) => r.side === name);
    return {
      results: Number(row?.results ?? 0),
      errors: Number(row?.errors ?? 0),
      p99LatencyMs: row?.p99 === null || row?.p99 === undefined ? null : Number(row.p99),
    };
  };
  return { challenger: side("challenger"), champion: side("champion") };
}

/** The challenger's results in the phase, and how many of them have a label. */
async function challengerProgress(
  db: Queryable,
  query: PhaseQuery,
  roles: PhaseRoles,
): Promise<{ requests: number; labels: number }> {
  const { rows } = await db.execute<{ requests: Count; labels: Count }>(sql`
    SELECT
      (SELECT count(*) FROM predictions p
        WHERE ${inPhase("p", query)} AND p.role = ${roles.challenger}
          AND p.version = ${query.challenger}) AS requests,
      (SELECT count(*) FROM prediction_refs r
        JOIN feedback f ON f.prediction_id = r.prediction_id AND f.model = r.model
        WHERE ${inPhase("r", query)} AND r.role = ${roles.challenger}
          AND r.version = ${query.challenger} AND r.prediction IS NOT NULL) AS labels`);
  return { requests: Number(rows[0]?.requests ?? 0), labels: Number(rows[0]?.labels ?? 0) };
}

// ---- alerts -----------------------------------------------------------------------------

async function currentOpenAlerts(
  db: Queryable,
  query: PhaseQuery,
  windowSeconds: number,
): Promise<OpenAlert[] | null> {
  const needed = new Date(query.span.end.getTime() - 2 * windowSeconds * 1000);
  const { rows } = await db.execute<{
    covered: boolean | null;
    id: Count | null;
    rule: string | null;
    version: string | null;
    severity: "warning" | "critical" | null;
    summary: string | null;
  }>(sql`
    WITH coverage AS (
      SELECT coalesce(bool_or(position >= ${needed.toISOString()}::timestamptz), false) AS covered
      FROM monitoring_cursors WHERE name = ${COVERAGE_CURSOR}
    )
    SELECT coverage.covered, a.id, a.rule, a.version, a.severity, a.summary
    FROM coverage
    LEFT JOIN alerts a ON coverage.covered AND a.model = ${query.model}
      AND a.state IN ('pending', 'firing')
    ORDER BY a.id`);
  if (rows[0]?.covered !== true) return null;
  return rows
    .filter((r) => r.id !== null)
    .map((r) => ({
      id: Number(r.id),
      rule: r.rule as string,
      version: r.version as string,
      severity: r.severity as "warning" | "critical",
      summary: r.summary as string,
    }));
}

// ---- labels: quality and fairness -------------------------------------------------------

/** The phase's results of either side with their labels (null when unlabelled). */
function labelledResults(query: PhaseQuery, roles: PhaseRoles): SQL {
  return sql`
    SELECT ${sideOf("r", query, roles)} AS side, r.prediction, r.attributes,
      f.label #>> '{}' AS actual,
      CASE WHEN jsonb_typeof(f.label) = 'number' THEN (f.label #>> '{}')::float8 END AS actual_value
    FROM prediction_refs r
    LEFT JOIN feedback f ON f.prediction_id = r.prediction_id AND f.model = r.model
    WHERE ${inPhase("r", query)} AND ${eitherSide("r", query, roles)} AND r.prediction IS NOT NULL`;
}

async function phaseQuality(
  db: Queryable,
  query: PhaseQuery,
  roles: PhaseRoles,
): Promise<QualityInput> {
  if (query.task === "classification") {
    const { rows } = await db.execute<{
      side: "challenger" | "champion";
      actual: string;
      predicted: string;
      count: Count;
    }>(sql`
      SELECT side, actual, prediction ->> 'label' AS predicted, count(*) AS count
      FROM (${labelledResults(query, roles)}) l
      WHERE actual IS NOT NULL AND jsonb_typeof(prediction -> 'label') = 'string'
      GROUP BY side, actual, prediction ->> 'label'
      ORDER BY side, actual, predicted`);
    const cells = (side: string): ConfusionCell[] =>
      rows
        .filter((r) => r.side === side)
        .map((r) => ({ actual: r.actual, predicted: r.predicted, count: Number(r.count) }));
    return { task: "classification", challenger: cells("challenger"), champion: cells("champion") };
  }
  const { rows } = await db.execute<{
    side: "challenger" | "champion";
    n: Count;
    sum_y: number | null;
    sum_yy: number | null;
    sum_p: number | null;
    sum_se: number | null;
    sum_ae: number | null;
  }>(sql`
    SELECT side, count(*) AS n, sum(actual_value) AS sum_y,
      sum(actual_value * actual_value) AS sum_yy, sum(value) AS sum_p,
      sum((actual_value - value) ^ 2) AS sum_se, sum(abs(actual_value - value)) AS sum_ae
    FROM (
      SELECT side, actual_value, (prediction ->> 'value')::float8 AS value
      FROM (${labelledResults(query, roles)}) l
      WHERE actual_value IS NOT NULL AND jsonb_typeof(prediction -> 'value') = 'number'
    ) v
    GROUP BY side`);
  const sums = (side: string): RegressionSums => {
    const row = rows.find((r) => r.side === side);
    return {
      n: Number(row?.n ?? 0),
      sumActual: Number(row?.sum_y ?? 0),
      sumActualSquared: Number(row?.sum_yy ?? 0),
      sumPredicted: Number(row?.sum_p ?? 0),
      sumSquaredError: Number(row?.sum_se ?? 0),
      sumAbsoluteError: Number(row?.sum_ae ?? 0),
    };
  };
  return { task: "regression", challenger: sums("challenger"), champion: sums("champion") };
}

/**
 * Each named attribute's groups on each side (the largest
 * MAX_GROUPS_PER_ATTRIBUTE), as the monitoring job counts them: selection
 * over every result, true-positive rates over the labelled ones. Without a
 * positive class (regression) every attribute has no groups, which the
 * fairness gate reports as not computable.
 */
async function phaseFairness(
  db: Queryable,
  query: PhaseQuery,
  roles: PhaseRoles,
): Promise<FairnessAttributeInput[]> {
  const attributes = [...query.fairnessAttributes];
  if (attributes.length === 0) return [];
  const empty = () => attributes.map((attribute) => ({ attribute, challenger: [], champion: [] }));
  if (query.task !== "classification" || query.positiveClass === null) return empty();
  const positive = query.positiveClass;
  const { rows } = await db.execute<{
    side: "challenger" | "champion";
    attribute: string;
    grp: string;
    n: Count;
    predicted_positive: Count;
    actual_positive: Count;
    true_positive: Count;
  }>(sql`
    SELECT * FROM (
      SELECT side, a.attribute, l.attributes ->> a.attribute AS grp, count(*) AS n,
        count(*) FILTER (WHERE prediction ->> 'label' = ${positive}) AS predicted_positive,
        count(*) FILTER (WHERE actual = ${positive}) AS actual_positive,
        count(*) FILTER (WHERE actual = ${positive}
          AND prediction ->> 'label' = ${positive}) AS true_positive,
        row_number() OVER (PARTITION BY side, a.attribute
          ORDER BY count(*) DESC, l.attributes ->> a.attribute) AS place
      FROM (${labelledResults(query, roles)}) l
      CROSS JOIN jsonb_array_elements_text(${JSON.stringify(attributes)}::jsonb) AS a(attribute)
      WHERE l.attributes ? a.attribute AND jsonb_typeof(l.prediction -> 'label') = 'string'
      GROUP BY side, a.attribute, l.attributes ->> a.attribute
    ) g
    WHERE place <= ${MAX_GROUPS_PER_ATTRIBUTE}
    ORDER BY side, attribute, place`);
  return empty().map(({ attribute }) => {
    const groups = (side: string): GroupCounts[] =>
      rows
        .filter((r) => r.side === side && r.attribute === attribute)
        .map((r) => ({
          group: r.grp,
          n: Number(r.n),
          predictedPositive: Number(r.predicted_positive),
          actualPositive: Number(r.actual_positive),
          truePositive: Number(r.true_positive),
        }));
    return { attribute, challenger: groups("challenger"), champion: groups("champion") };
  });
}

// ---- KPIs -------------------------------------------------------------------------------

/** Each named KPI's outcomes on each side, attributed by prediction id to the phase's results. */
async function phaseKpis(db: Queryable, query: PhaseQuery, roles: PhaseRoles): Promise<KpiInput[]> {
  const names = query.kpis.map((k) => k.name);
  if (names.length === 0) return [];
  const { rows } = await db.execute<{
    side: "challenger" | "champion";
    kpi: string;
    n: Count;
    sum: number;
    variance: number | null;
    binary: boolean;
  }>(sql`
    SELECT ${sideOf("r", query, roles)} AS side, o.kpi, count(*) AS n, sum(o.value) AS sum,
      var_samp(o.value) AS variance, bool_and(o.value IN (0, 1)) AS binary
    FROM prediction_refs r
    JOIN outcomes o ON o.prediction_id = r.prediction_id AND o.model = r.model
    WHERE ${inPhase("r", query)} AND ${eitherSide("r", query, roles)} AND r.prediction IS NOT NULL
      AND o.kpi IN (SELECT jsonb_array_elements_text(${JSON.stringify(names)}::jsonb))
    GROUP BY 1, o.kpi`);
  const summary = (side: string, kpi: string): KpiSummary => {
    const row = rows.find((r) => r.side === side && r.kpi === kpi);
    if (!row) return { n: 0, sum: 0, variance: null, binary: true };
    return {
      n: Number(row.n),
      sum: Number(row.sum),
      variance: row.variance === null ? null : Number(row.variance),
      binary: row.binary,
    };
  };
  return query.kpis.map((kpi) => ({
    name: kpi.name,
    higherIsBetter: kpi.higherIsBetter,
    canary: summary("challenger", kpi.name),
    champion: summary("champion", kpi.name),
  }));
}
