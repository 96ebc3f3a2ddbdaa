import { type SQL, sql } from "drizzle-orm";
import type { Queryable } from "../../shared/db/client";
import { LOW_CARDINALITY } from "../../shared/drift";
import {
  BASELINE_SAMPLE_SIZE,
  type Baseline,
  type BaselineSource,
  type DeclaredKind,
  type DimensionSummary,
  keepTop,
  SAMPLE_QUANTILES,
} from "../../shared/monitoring/baseline";
import { categoricalWindows } from "./window-sql";

/**
 * A baseline from a window of a version's own traffic, aggregated in
 * Postgres: the Worker never sees the rows, only per-field statistics, up to
 * 1000 sample values per numeric field and the category counts. Same rules
 * as shared/monitoring/baseline.ts.
 */

export interface TrafficWindow {
  model: string;
  version: string;
  role: "served" | "canary" | "shadow";
  from: Date;
  to: Date;
}

const quantileLiteral = `{${SAMPLE_QUANTILES.join(",")}}`;

/** The window's rows of one jsonb column, each field of `names` as (name, value). */
function fieldValues(window: TrafficWindow, column: "inputs" | "prediction", names: string[]): SQL {
  return sql`
    WITH src AS MATERIALIZED (
      SELECT ${sql.raw(column)} AS doc FROM predictions
      WHERE model = ${window.model} AND version = ${window.version} AND role = ${window.role}
        AND created_at >= ${window.from.toISOString()} AND created_at < ${window.to.toISOString()}
    ), vals AS (
      SELECT f.name, src.doc -> f.name AS v
      FROM src CROSS JOIN jsonb_array_elements_text(${JSON.stringify(names)}::jsonb) AS f(name)
    )`;
}

type NumericRow = {
  name: string;
  n: string;
  missing: string;
  distinct: string;
  min: number | null;
  max: number | null;
  mean: number | null;
  std: number | null;
  sample: number[] | null;
};

async function summarizeColumn(
  db: Queryable,
  window: TrafficWindow,
  column: "inputs" | "prediction",
  kinds: Record<string, DeclaredKind>,
): Promise<Record<string, DimensionSummary>> {
  const out: Record<string, DimensionSummary> = {};
  const numeric = Object.keys(kinds).filter((name) => kinds[name] === "numeric");
  let categorical = Object.keys(kinds).filter((name) => kinds[name] === "categorical");
  const small: string[] = [];
  if (numeric.length > 0) {
    const { rows } = await db.execute<NumericRow>(sql`
      ${fieldValues(window, column, numeric)}, nums AS (
        SELECT name, CASE WHEN jsonb_typeof(v) = 'number' THEN (v #>> '{}')::float8 END AS x
        FROM vals
      )
      SELECT name, count(x) AS n, count(*) - count(x) AS missing, count(DISTINCT x) AS distinct,
        min(x) AS min, max(x) AS max, avg(x) AS mean, stddev_pop(x) AS std,
        percentile_disc(${quantileLiteral}::float8[]) WITHIN GROUP (ORDER BY x) AS sample
      FROM nums GROUP BY name`);
    for (const row of rows) {
      const n = Number(row.n);
      const distinct = Number(row.distinct);
      if (n === 0 || distinct <= LOW_CARDINALITY) {
        categorical = [...categorical, row.name];
        continue;
      }
      const sampled = n > BASELINE_SAMPLE_SIZE;
      if (!sampled) small.push(row.name);
      out[row.name] = {
        kind: "numeric",
        n,
        missing: Number(row.missing),
        distinct,
        min: Number(row.min),
        max: Number(row.max),
        mean: Number(row.mean),
        std: Number(row.std),
        sample: sampled ? (row.sample ?? []).map(Number) : [],
        sampled,
      };
    }
  }
  if (small.length > 0) {
    // Few values: keep them all (the exact reference for KS).
    const { rows } = await db.execute<{ name: string; values: number[] }>(sql`
      ${fieldValues(window, column, small)}
      SELECT name, array_agg((v #>> '{}')::float8 ORDER BY (v #>> '{}')::float8) AS values
      FROM vals WHERE jsonb_typeof(v) = 'number' GROUP BY name`);
    for (const row of rows) {
      const summary = out[row.name];
      if (summary?.kind === "numeric") summary.sample = row.values.map(Number);
    }
  }
  // Categories are counted as the monitoring job counts a window's.
  const counted = await categoricalWindows(db, window, column, categorical);
  for (const [name, entry] of Object.entries(counted)) {
    out[name] = keepTop(new Map(Object.entries(entry.counts)), entry.n, entry.missing);
  }
  return out;
}

/** Summarises a window of traffic; `rows` is 0 when the window holds none. */
export async function baselineFromTraffic(
  db: Queryable,
  window: TrafficWindow,
  kinds: { features: Record<string, DeclaredKind>; predictions: Record<string, DeclaredKind> },
  meta: { createdAt: string; createdBy: string },
): Promise<Baseline> {
  const { rows } = await db.execute<{ n: string }>(sql`
    SELECT count(*) AS n FROM predictions
    WHERE model = ${window.model} AND version = ${window.version} AND role = ${window.role}
      AND created_at >= ${window.from.toISOString()} AND created_at < ${window.to.toISOString()}`);
  const total = Number(rows[0]?.n ?? 0);
  const source: BaselineSource = {
    kind: "traffic",
    from: window.from.toISOString(),
    to: window.to.toISOString(),
    role: window.role,
  };
  if (total === 0) return { schema: 1, source, rows: 0, ...meta, features: {}, predictions: {} };
  return {
    schema: 1,
    source,
    rows: total,
    ...meta,
    features: await summarizeColumn(db, window, "inputs", kinds.features),
    predictions: await summarizeColumn(db, window, "prediction", kinds.predictions),
  };
}
