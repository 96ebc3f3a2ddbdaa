/**
 * The SQL behind the traffic metrics of a window: per (model, version, role)
 * the window's counts against the version's baseline, the traffic
 * aggregates, and the schema rejections per model. The rows are built by
 * pure functions in shared/monitoring/ (drift-rows.ts, quality-rows.ts,
 * operations-rows.ts), which document the metric names (docs/monitoring.md too).
 *
 * A value that is not finite is stored as null with a reason.
 */
import { sql } from "drizzle-orm";
import type { Database } from "../../shared/db/client";
import type { DriftOverrides } from "../../shared/drift";
import type { Baseline, DimensionSummary } from "../../shared/monitoring/baseline";
import {
  baselineRows,
  type FieldWindows,
  numericThresholds,
} from "../../shared/monitoring/drift-rows";
import type { MetricRow } from "../../shared/monitoring/metric-row";
import { type ResolvedMinimums, resolveMinimums } from "../../shared/monitoring/minimums";
import type { WindowTraffic } from "../../shared/monitoring/operations-rows";
import { schemaRejectionRow } from "../../shared/monitoring/quality-rows";
import type { DataPolicy } from "../../shared/privacy/data-policy";
import type { InputSchema } from "../../shared/schemas/model";
import { categoricalWindows, numericWindows, type ResultWindow } from "./window-sql";

/** Everything the job stores for one window of one (model, version, role). */
export async function versionMetrics(
  db: Database,
  window: ResultWindow,
  rows: number,
  version: {
    inputSchema: InputSchema;
    baseline: Baseline;
    driftOverrides?: DriftOverrides | null;
    dataPolicy?: DataPolicy | null;
  },
  minimums: ResolvedMinimums = resolveMinimums(null),
): Promise<MetricRow[]> {
  const overrides = version.driftOverrides ?? undefined;
  const baseline = version.baseline;
  const counts = async (
    column: "inputs" | "prediction",
    dims: Record<string, DimensionSummary>,
  ): Promise<FieldWindows> => {
    const numeric: Record<string, number[]> = {};
    const categorical: string[] = [];
    for (const [name, summary] of Object.entries(dims)) {
      if (summary.kind === "numeric")
        numeric[name] = numericThresholds(
          summary,
          overrides,
          column === "inputs" ? name : `prediction.${name}`,
        );
      else categorical.push(name);
    }
    return {
      ...(await numericWindows(db, window, column, numeric)),
      ...(await categoricalWindows(db, window, column, categorical)),
    };
  };
  const features = await counts("inputs", baseline.features);
  const predictions = await counts("prediction", baseline.predictions);
  return baselineRows(
    baseline,
    { features, predictions },
    rows,
    overrides,
    minimums,
    version.dataPolicy?.fields,
  );
}

/**
 * The one `schema_rejection_rate` dimension of every field name outside the
 * model's input schema (`extra`, `inputs`, a misspelling): names a client
 * sends never open dimensions, or alerts, of their own.
 */
export const OTHER_FIELDS = "(not in the input schema)";

/** Schema rejections per model in a window, as model-level metric rows. */
export async function rejectionMetrics(
  db: Database,
  from: Date,
  to: Date,
): Promise<Record<string, MetricRow[]>> {
  const range = sql`created_at >= ${from.toISOString()} AND created_at < ${to.toISOString()}`;
  const { rows } = await db.execute<{
    model: string;
    feature: string | null;
    rejected: string;
    accepted: string;
  }>(sql`
    WITH rej AS (
      SELECT model, count(*) AS n FROM rejected_requests WHERE ${range} GROUP BY model
    ), acc AS (
      SELECT model, count(*) AS n FROM predictions
      WHERE ${range} AND role IN ('served', 'canary', 'fallback')
        AND model IN (SELECT model FROM rej)
      GROUP BY model
    ), named AS (
      SELECT r.model, r.prediction_id, regexp_replace(i ->> 'path', '^.*[.]', '') AS name
      FROM rejected_requests r CROSS JOIN jsonb_array_elements(coalesce(r.issues, '[]'::jsonb)) AS i
      WHERE r.created_at >= ${from.toISOString()} AND r.created_at < ${to.toISOString()}
    ), feat AS (
      -- A client chooses the names it sends: only the input schema's features
      -- are dimensions of their own, every other name folds into one.
      SELECT n.model, CASE WHEN m.input_schema -> 'properties' ? n.name THEN n.name
          ELSE ${OTHER_FIELDS} END AS feature,
        count(DISTINCT n.prediction_id) AS n
      FROM named n LEFT JOIN models m ON m.name = n.model
      GROUP BY 1, 2
    )
    SELECT rej.model, NULL AS feature, rej.n AS rejected, coalesce(acc.n, 0) AS accepted
    FROM rej LEFT JOIN acc USING (model)
    UNION ALL
    SELECT feat.model, feat.feature, feat.n, coalesce(acc.n, 0)
    FROM feat JOIN rej USING (model) LEFT JOIN acc USING (model)`);
  const totals = new Map<string, number>();
  for (const row of rows)
    if (row.feature === null) totals.set(row.model, Number(row.rejected) + Number(row.accepted));
  const out: Record<string, MetricRow[]> = {};
  for (const row of rows) {
    const list = out[row.model] ?? [];
    out[row.model] = list;
    list.push(
      schemaRejectionRow(row.feature ?? "", Number(row.rejected), totals.get(row.model) ?? 0),
    );
  }
  return out;
}

/** Results, errors and latency percentiles per (model, version, role) with results in a window. */
export async function windowTraffic(db: Database, from: Date, to: Date): Promise<WindowTraffic[]> {
  const { rows } = await db.execute<{
    model: string;
    version: string;
    role: string;
    results: string;
    errors: string;
    circuit_open: string;
    p: (number | null)[] | null;
  }>(sql`
    SELECT model, version, role, count(*) AS results,
      count(*) FILTER (WHERE status <> 'ok') AS errors,
      count(*) FILTER (WHERE error_code = 'UPSTREAM_CIRCUIT_OPEN') AS circuit_open,
      percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) AS p
    FROM predictions
    WHERE created_at >= ${from.toISOString()} AND created_at < ${to.toISOString()}
    GROUP BY model, version, role`);
  return rows.map((row) => ({
    model: row.model,
    version: row.version,
    role: row.role,
    results: Number(row.results),
    errors: Number(row.errors),
    circuitOpen: Number(row.circuit_open),
    p50: row.p?.[0] ?? null,
    p95: row.p?.[1] ?? null,
    p99: row.p?.[2] ?? null,
  }));
}
