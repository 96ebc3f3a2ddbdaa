import { type SQL, sql } from "drizzle-orm";
import type { Database } from "../../shared/db/client";
import type { CategoricalWindow, NumericWindow } from "../../shared/monitoring/window-counts";

/**
 * The SQL that counts one window of a version's results for the drift and
 * data-quality statistics; the shapes it returns, and what they mean, are in
 * shared/monitoring/window-counts.ts.
 */

export interface ResultWindow {
  model: string;
  version: string;
  role: string;
  from: Date;
  to: Date;
}

function source(window: ResultWindow, column: "inputs" | "prediction"): SQL {
  return sql`SELECT ${sql.raw(column)} AS doc FROM predictions
    WHERE model = ${window.model} AND version = ${window.version} AND role = ${window.role}
      AND created_at >= ${window.from.toISOString()} AND created_at < ${window.to.toISOString()}`;
}

/** Bucket counts per numeric field against each field's sorted, distinct thresholds. */
export async function numericWindows(
  db: Database,
  window: ResultWindow,
  column: "inputs" | "prediction",
  thresholds: Record<string, number[]>,
): Promise<Record<string, NumericWindow>> {
  const out: Record<string, NumericWindow> = {};
  for (const name of Object.keys(thresholds)) {
    const t = thresholds[name] ?? [];
    out[name] = {
      n: 0,
      missing: 0,
      min: null,
      max: null,
      mean: null,
      std: null,
      thresholds: t,
      buckets: new Array(t.length + 1).fill(0),
      equal: new Array(t.length + 1).fill(0),
      sums: new Array(t.length + 1).fill(0),
    };
  }
  // A field without edges has one bucket: width_bucket needs at least one edge.
  const names = Object.keys(thresholds).filter((name) => (thresholds[name] ?? []).length > 0);
  if (names.length === 0) return out;
  // Each field's edges as a constant of the statement, chosen by the field's
  // position: an array carried in every row would be decompressed per row.
  const edges = sql`(CASE i ${sql.join(
    names.map(
      (name, index) =>
        sql`WHEN ${sql.raw(String(index + 1))} THEN ${`{${(thresholds[name] ?? []).join(",")}}`}::float8[]`,
    ),
    sql` `,
  )} END)`;
  const { rows } = await db.execute<{
    name: string;
    b: number | null;
    n: string;
    eq: string;
    sum: number | null;
    missing: string;
    min: number | null;
    max: number | null;
    mean: number | null;
    std: number | null;
  }>(sql`
    WITH src AS MATERIALIZED (${source(window, column)}),
    vals AS (
      SELECT f.i, f.name,
        CASE WHEN jsonb_typeof(src.doc -> f.name) = 'number'
          THEN (src.doc ->> f.name)::float8 END AS x
      FROM src CROSS JOIN jsonb_array_elements_text(${JSON.stringify(names)}::jsonb)
        WITH ORDINALITY AS f(name, i)
    ),
    bucketed AS (
      SELECT name, x, b, coalesce(b > 0 AND x = (${edges})[b], false) AS eq
      FROM (
        SELECT i, name, x, CASE WHEN x IS NOT NULL THEN width_bucket(x, ${edges}) END AS b
        FROM vals
      ) v
    )
    SELECT name, b, count(x) AS n, count(*) FILTER (WHERE eq) AS eq, sum(x) AS sum,
      count(*) - count(x) AS missing,
      NULL::float8 AS min, NULL::float8 AS max, NULL::float8 AS mean, NULL::float8 AS std
    FROM bucketed GROUP BY name, b
    UNION ALL
    SELECT name, -1, count(x), 0, NULL, 0, min(x), max(x), avg(x), stddev_pop(x)
    FROM vals GROUP BY name`);
  for (const row of rows) {
    const entry = out[row.name];
    if (!entry) continue;
    const b = row.b === null ? null : Number(row.b);
    if (b === -1) {
      entry.n = Number(row.n);
      entry.min = row.min === null ? null : Number(row.min);
      entry.max = row.max === null ? null : Number(row.max);
      entry.mean = row.mean === null ? null : Number(row.mean);
      entry.std = row.std === null ? null : Number(row.std);
      continue;
    }
    entry.missing += Number(row.missing);
    if (b === null) continue;
    entry.buckets[b] = (entry.buckets[b] ?? 0) + Number(row.n);
    entry.equal[b] = (entry.equal[b] ?? 0) + Number(row.eq);
    entry.sums[b] = (entry.sums[b] ?? 0) + Number(row.sum ?? 0);
  }
  return out;
}

/** Value counts per categorical field (numbers and booleans as JSON text, as baselines keep them). */
export async function categoricalWindows(
  db: Database,
  window: ResultWindow,
  column: "inputs" | "prediction",
  names: string[],
): Promise<Record<string, CategoricalWindow>> {
  const out: Record<string, CategoricalWindow> = {};
  // Counts without a prototype: a category may be called "constructor" or "__proto__".
  for (const name of names) out[name] = { n: 0, missing: 0, counts: Object.create(null) };
  if (names.length === 0) return out;
  const { rows } = await db.execute<{ name: string; value: string | null; n: string }>(sql`
    WITH src AS MATERIALIZED (${source(window, column)}),
    vals AS (
      SELECT f.name, src.doc -> f.name AS v
      FROM src CROSS JOIN jsonb_array_elements_text(${JSON.stringify(names)}::jsonb) AS f(name)
    )
    SELECT name,
      CASE jsonb_typeof(v) WHEN 'string' THEN v #>> '{}'
        WHEN 'number' THEN v::text WHEN 'boolean' THEN v::text END AS value,
      count(*) AS n
    FROM vals GROUP BY 1, 2`);
  for (const row of rows) {
    const entry = out[row.name];
    if (!entry) continue;
    const count = Number(row.n);
    if (row.value === null) entry.missing += count;
    else {
      entry.counts[row.value] = count;
      entry.n += count;
    }
  }
  return out;
}
