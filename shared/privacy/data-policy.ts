import { z } from "@hono/zod-openapi";
import { canonicalJson } from "../crypto";
import { keyHmac } from "../inference/events";
import { LONGEST_RETENTION_DAYS } from "../logs/retention";

/**
 * A model's data policy: what of each request may be stored. Each input
 * field and attribute is `store` (the default), `hash` (kept as its HMAC
 * under LOG_HMAC_KEY, so equal values still join) or `drop` (removed in the
 * Worker before the log event is built: it never reaches the queue,
 * Postgres, dead letters, rejected requests or logs). `retentionDays`
 * shortens how long the model's rows are kept (functions/jobs/log-partitions.ts).
 */
export const FIELD_TREATMENTS = ["store", "hash", "drop"] as const;
export type FieldTreatment = (typeof FIELD_TREATMENTS)[number];

const Treatment = z.enum(FIELD_TREATMENTS).openapi({
  description:
    "`store` as sent; `hash`: its HMAC under the log key (equal values still join); `drop`: never stored.",
});

const Name = z.string().min(1).max(128);

export const DataPolicyBody = z
  .object({
    fields: z
      .record(Name, Treatment)
      .default({})
      .openapi({
        description:
          "Input fields (top-level properties of the model's input schema) by treatment.",
        example: { income: "drop" },
      }),
    attributes: z
      .record(Name, Treatment)
      .default({})
      .openapi({
        description: "Request attributes by treatment.",
        example: { customer_email: "hash" },
      }),
    retentionDays: z
      .number()
      .int()
      .min(1)
      .max(
        LONGEST_RETENTION_DAYS,
        `must be at most ${LONGEST_RETENTION_DAYS} days, the longest Airlock keeps anything; a model's retention can only shorten a table's`,
      )
      .optional()
      .openapi({
        description: `Days the model's rows are kept, in every table whose own retention is longer (prediction logs 90, references, labels and KPI events ${LONGEST_RETENTION_DAYS}, dead letters 14). Absent: each table's own.`,
        example: 30,
      }),
  })
  .strict()
  .openapi("DataPolicy");

export type DataPolicy = z.infer<typeof DataPolicyBody>;

/** Whether a policy changes anything that is stored. */
export function redacts(policy: DataPolicy | null | undefined): policy is DataPolicy {
  if (!policy) return false;
  return [...Object.values(policy.fields), ...Object.values(policy.attributes)].some(
    (treatment) => treatment !== "store",
  );
}

const TREATMENT_RANK: Record<FieldTreatment, number> = { store: 0, hash: 1, drop: 2 };

const treatmentWords: Record<FieldTreatment, [verb: string, participle: string]> = {
  store: ["stores", "stored"],
  hash: ["hashes", "hashed"],
  drop: ["drops", "dropped"],
};

/**
 * A policy as one text, the same for the same policy: `store` entries (the
 * default) left out, names sorted, no retention as null.
 */
export function dataPolicyFingerprint(policy: DataPolicy | null): string {
  const kept = (record: Record<string, FieldTreatment> | undefined) =>
    Object.fromEntries(Object.entries(record ?? {}).filter(([, t]) => t !== "store"));
  return canonicalJson({
    fields: kept(policy?.fields),
    attributes: kept(policy?.attributes),
    retentionDays: policy?.retentionDays ?? null,
  });
}

/**
 * How a new data policy lets Airlock keep more than the one in force, in
 * words: a field or attribute stored where it was hashed or dropped, hashed
 * where it was dropped, or a longer retention. Empty when it only tightens
 * (or when there was no policy, which stores everything for as long as each
 * table keeps it): taking data away never waits.
 */
export function dataPolicyLoosening(before: DataPolicy | null, after: DataPolicy): string[] {
  if (!before) return [];
  const found: string[] = [];
  for (const [kind, was, now] of [
    ["field", before.fields, after.fields],
    ["attribute", before.attributes, after.attributes],
  ] as const) {
    for (const [name, treatment] of Object.entries(was)) {
      const next = now[name] ?? "store";
      if (TREATMENT_RANK[next] < TREATMENT_RANK[treatment])
        found.push(
          `${treatmentWords[next][0]} the ${kind} ${name}, ${treatmentWords[treatment][1]} until now`,
        );
    }
  }
  if (before.retentionDays !== undefined) {
    if (after.retentionDays === undefined)
      found.push(
        `keeps the model's rows as long as each table does, instead of ${before.retentionDays} days`,
      );
    else if (after.retentionDays > before.retentionDays)
      found.push(
        `keeps the model's rows ${after.retentionDays} days instead of ${before.retentionDays}`,
      );
  }
  return found;
}

/** A value as kept under `hash`: an HMAC, marked so that nobody mistakes it for the value. */
export async function hashedValue(secret: string, value: unknown): Promise<string> {
  return `hmac:${await keyHmac(secret, `value:${JSON.stringify(value)}`)}`;
}

async function treat(
  record: Record<string, unknown>,
  treatments: Record<string, FieldTreatment>,
  secret: string,
): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(record)) {
    const treatment = treatments[name] ?? "store";
    if (treatment === "drop") continue;
    out[name] = treatment === "hash" ? await hashedValue(secret, value) : value;
  }
  return out;
}

/** One row of inputs as the policy lets it be stored (anything not an object stays as it is). */
export async function storableInputs(
  policy: DataPolicy,
  inputs: unknown,
  secret: string,
): Promise<unknown> {
  if (Array.isArray(inputs))
    return Promise.all(inputs.map((row) => storableInputs(policy, row, secret)));
  if (!inputs || typeof inputs !== "object") return inputs;
  return treat(inputs as Record<string, unknown>, policy.fields, secret);
}

/** Attributes as the policy lets them be stored. */
export async function storableAttributes(
  policy: DataPolicy,
  attributes: Record<string, string>,
  secret: string,
): Promise<Record<string, string>> {
  return (await treat(attributes, policy.attributes, secret)) as Record<string, string>;
}
