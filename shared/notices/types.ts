import { type SQL, sql } from "drizzle-orm";
import { SYSTEM_MODEL } from "../alerts/types";

/**
 * Notice types: what Airlock tells its destinations about. Each has a
 * family (the part before the dot); a destination takes every type (no
 * filter), or the exact types and whole families (`approval.*`) it lists.
 * New features add their types here (and to docs/alerts.md).
 */
export const NOTICE_TYPES = {
  "alert.firing": "An alert fired: a rule's condition held for its evaluations.",
  "alert.resolved": "A firing alert resolved: its condition cleared, or its data stopped.",
  "approval.requested":
    "Someone asked for a change that the model's governance policy says needs approvals.",
  "approval.decided":
    "Someone approved or rejected a request; says which roles it still needs, if any.",
  "approval.applied": "An approved change was made, consuming its request.",
  "audit.checkpoint":
    "A signed checkpoint of the audit trail's head, to keep outside Airlock. Sent only to destinations that list it (or `audit.*`), whatever their model filter.",
} as const;

export type NoticeType = keyof typeof NOTICE_TYPES;

/**
 * Types a destination takes only when it lists them (or their family): a
 * destination without a type filter is not sent them. They are about
 * Airlock as a whole, so a destination's model filter does not apply.
 */
export const OPT_IN_NOTICE_TYPES: readonly string[] = ["audit.checkpoint"];

/** A destination's test notice: addressed to it alone, whatever it filters. */
export const TEST_NOTICE_TYPE = "alert.test";

export const NOTICE_FAMILIES = [
  ...new Set(Object.keys(NOTICE_TYPES).map((type) => type.split(".")[0] as string)),
];

/** Whether `entry` may stand in a destination's `types`: a known type, or a known family's `family.*`. */
export function isNoticeFilter(entry: string): boolean {
  if (entry in NOTICE_TYPES) return true;
  const family = /^([a-z_]+)\.\*$/.exec(entry)?.[1];
  return family !== undefined && NOTICE_FAMILIES.includes(family);
}

/** Whether a destination that lists `types` (null: all) takes a notice of `type`. */
export function takesType(types: readonly string[] | null, type: string): boolean {
  if (types === null) return !OPT_IN_NOTICE_TYPES.includes(type);
  return types.includes(type) || types.includes(`${type.split(".")[0]}.*`);
}

const SEVERITY_RANK = { warning: 1, critical: 2 } as const;

/**
 * The SQL condition under which the destination `d` (an alias of
 * alert_destinations) takes a notice: not deleted; for an opt-in type, that
 * it lists the type; for any other, its type filter, the model (Airlock's
 * own health, '', only where `include_system`) and, for a notice that has a
 * severity, at least the destination's `min_severity`.
 * `takesType` says the same for types, in TypeScript.
 */
export function destinationTakes(notice: {
  type: SQL | string;
  model: SQL | string;
  severity: SQL | "warning" | "critical" | null;
}): SQL {
  const type = typeof notice.type === "string" ? sql`${notice.type}::text` : notice.type;
  const model = typeof notice.model === "string" ? sql`${notice.model}::text` : notice.model;
  const severity =
    notice.severity === null
      ? sql`NULL::int`
      : typeof notice.severity === "string"
        ? sql`${SEVERITY_RANK[notice.severity]}::int`
        : sql`(CASE ${notice.severity} WHEN 'critical' THEN 2 ELSE 1 END)`;
  const optIn = sql`${type} = ANY(${`{${OPT_IN_NOTICE_TYPES.join(",")}}`}::text[])`;
  const listed = sql`(d.types ? ${type} OR d.types ? (split_part(${type}, '.', 1) || '.*'))`;
  return sql`d.deleted_at IS NULL
    AND (CASE WHEN ${optIn} THEN coalesce(${listed}, false) ELSE (d.types IS NULL OR ${listed})
      AND (CASE WHEN ${model} = ${SYSTEM_MODEL} THEN d.include_system
        ELSE d.models IS NULL OR d.models ? ${model} END)
      AND (${severity} IS NULL OR ${severity} >= (CASE d.min_severity WHEN 'critical' THEN 2 ELSE 1 END)) END)`;
}
