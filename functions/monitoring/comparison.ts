/**
 * Challengers against a reference result of the same request, pair by pair
 * on the prediction id (and model), in one window. A pair whose two results
 * fall in different windows (a request at a window's edge) is not counted.
 * Every row carries the number of pairs.
 *
 * Shadows (`shadowComparisons`): each shadow against the version that
 * answered the same request (role 'served' or 'canary'; a fallback or a
 * control never counts as the answer). Rows belong to the shadow's (model,
 * version, role 'shadow') window, with the answering version as the
 * dimension and `answeredBy` in the details.
 *
 * Canaries (`canaryComparisons`): each canary answer against the champion's
 * control result for the same request (role 'control', computed after the
 * response and never returned), so canary and champion are compared on the
 * same inputs, not only by population. Rows belong to the canary's (model,
 * version, role 'canary') window, with the champion as the dimension and
 * `comparedWith` in the details. A control without its canary answer in the
 * window (or the other way round) is not counted.
 *
 * Postgres sums the pairs here; shared/monitoring/comparison-rows.ts turns
 * the sums into rows (with shared/metrics) and names the metrics.
 */
import { type SQL, sql } from "drizzle-orm";
import type { Database } from "../../shared/db/client";
import {
  comparisonRows,
  type Pairing,
  type PairSums,
} from "../../shared/monitoring/comparison-rows";
import type { MetricRow } from "../../shared/monitoring/metric-row";

const shadowPairing: Pairing = {
  challengerRole: "shadow",
  referenceRoles: ["served", "canary"],
  prefix: "shadow",
  referenceKey: "answeredBy",
};

const canaryPairing: Pairing = {
  challengerRole: "canary",
  referenceRoles: ["control"],
  prefix: "canary",
  referenceKey: "comparedWith",
};

/** Comparison rows per shadow (model, version) with pairs in the window. */
export function shadowComparisons(
  db: Database,
  from: Date,
  to: Date,
): Promise<Map<string, MetricRow[]>> {
  return comparisons(db, from, to, shadowPairing);
}

/**
 * Comparison rows per canary (model, version) with pairs in the window: the
 * canary's answers against the champion's control results.
 */
export function canaryComparisons(
  db: Database,
  from: Date,
  to: Date,
): Promise<Map<string, MetricRow[]>> {
  return comparisons(db, from, to, canaryPairing);
}

/** Rows by `${model}\u0000${challenger version}`. */
async function comparisons(
  db: Database,
  from: Date,
  to: Date,
  pairing: Pairing,
): Promise<Map<string, MetricRow[]>> {
  const out = new Map<string, MetricRow[]>();
  for (const sums of await pairSums(db, from, to, pairing)) {
    const key = `${sums.model}\u0000${sums.version}`;
    out.set(key, [...(out.get(key) ?? []), ...comparisonRows(sums, pairing)]);
  }
  return out;
}

/**
 * Sums over the pairs of a challenger result (`c`) and its reference (`r`)
 * created in [from, to), per (model, challenger version, reference version).
 */
async function pairSums(db: Database, from: Date, to: Date, pairing: Pairing): Promise<PairSums[]> {
  const { rows } = await db.execute<PairSums>(
    pairSumsQuery({
      challengerRole: pairing.challengerRole,
      referenceRoles: pairing.referenceRoles,
      from,
      to,
    }),
  );
  return rows;
}

/** Which pairs `pairSumsQuery` sums: always a role on each side and a span, optionally narrower. */
export interface PairFilter {
  challengerRole: "shadow" | "canary" | "served";
  referenceRoles: readonly ("served" | "canary" | "control" | "shadow")[];
  /** Both results of a pair are created in [from, to). */
  from: Date;
  to: Date;
  /** Only this model's pairs. */
  model?: string;
  challengerVersion?: string;
  referenceVersion?: string;
  /** Only results served under this rollout state or a later one (both sides). */
  fromStateVersion?: number;
}

/**
 * The statement that sums over the pairs of a challenger result (`c`) and
 * its reference (`r`), joined on the prediction id and the model, one row
 * (PairSums) per (model, challenger version, reference version). The
 * monitoring job sums every model's pairs in a window; a rollout plan sums
 * one model's pairs of two versions since its phase began
 * (functions/plans/evidence.ts).
 */
export function pairSumsQuery(filter: PairFilter): SQL {
  const range = (alias: string) =>
    sql`${sql.raw(alias)}.created_at >= ${filter.from.toISOString()} AND ${sql.raw(alias)}.created_at < ${filter.to.toISOString()}`;
  const score = (alias: string) => sql.raw(`(${alias}.prediction ->> 'score')::float8`);
  const value = (alias: string) => sql.raw(`(${alias}.prediction ->> 'value')::float8`);
  const both = (field: string) =>
    sql.raw(
      `jsonb_typeof(c.prediction -> '${field}') = 'number' AND jsonb_typeof(r.prediction -> '${field}') = 'number'`,
    );
  const referenceRoles = sql.join(
    filter.referenceRoles.map((role) => sql`${role}`),
    sql`, `,
  );
  const narrower: SQL[] = [];
  if (filter.model !== undefined) narrower.push(sql` AND c.model = ${filter.model}`);
  if (filter.challengerVersion !== undefined)
    narrower.push(sql` AND c.version = ${filter.challengerVersion}`);
  if (filter.referenceVersion !== undefined)
    narrower.push(sql` AND r.version = ${filter.referenceVersion}`);
  if (filter.fromStateVersion !== undefined)
    narrower.push(
      sql` AND c.state_version >= ${filter.fromStateVersion} AND r.state_version >= ${filter.fromStateVersion}`,
    );
  return sql`
    SELECT c.model, c.version, r.version AS reference, count(*) AS pairs,
      count(*) FILTER (WHERE c.prediction ? 'label' AND r.prediction ? 'label') AS labelled,
      count(*) FILTER (WHERE c.prediction ? 'label' AND r.prediction ? 'label'
        AND c.prediction -> 'label' = r.prediction -> 'label') AS agreeing,
      count(*) FILTER (WHERE ${both("score")}) AS scored,
      coalesce(sum(abs(${score("c")} - ${score("r")})) FILTER (WHERE ${both("score")}), 0) AS sum_abs_score,
      count(*) FILTER (WHERE ${both("value")}) AS valued,
      coalesce(sum(${value("r")}) FILTER (WHERE ${both("value")}), 0) AS sum_x,
      coalesce(sum(${value("c")}) FILTER (WHERE ${both("value")}), 0) AS sum_y,
      coalesce(sum(${value("r")} * ${value("r")}) FILTER (WHERE ${both("value")}), 0) AS sum_xx,
      coalesce(sum(${value("c")} * ${value("c")}) FILTER (WHERE ${both("value")}), 0) AS sum_yy,
      coalesce(sum(${value("r")} * ${value("c")}) FILTER (WHERE ${both("value")}), 0) AS sum_xy,
      coalesce(sum(abs(${value("c")} - ${value("r")})) FILTER (WHERE ${both("value")}), 0) AS sum_abs_value,
      sum(r.latency_ms) AS reference_latency,
      count(*) FILTER (WHERE r.status <> 'ok') AS reference_errors,
      sum(c.latency_ms) AS challenger_latency,
      count(*) FILTER (WHERE c.status <> 'ok') AS challenger_errors
    FROM predictions c
    JOIN predictions r ON r.prediction_id = c.prediction_id AND r.model = c.model
      AND r.role IN (${referenceRoles}) AND ${range("r")}
    WHERE c.role = ${filter.challengerRole} AND ${range("c")}${sql.join(narrower)}
    GROUP BY c.model, c.version, r.version`;
}
