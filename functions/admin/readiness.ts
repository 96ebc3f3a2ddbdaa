import { and, eq, sql } from "drizzle-orm";
import type { Queryable } from "../../shared/db/client";
import { modelVersions } from "../../shared/db/schema";
import { ApiError } from "../../shared/errors";
import {
  type CardReadiness,
  cardReadiness,
  type ReadinessItem,
} from "../../shared/governance/card";
import { destinationTakes } from "../../shared/notices/types";
import { findModel } from "./models";

type ModelRow = Awaited<ReturnType<typeof findModel>>;

/** A version's definition of done, with what it was worked out from. */
export interface VersionReadiness extends CardReadiness {
  model: string;
  version: string;
  /** Whether the model has a governance policy: only then is the definition of done enforced. */
  governed: boolean;
  cardRevision: number;
  cardSha256: string | null;
  /** The destinations that would receive the model's firing alerts. */
  destinationIds: string[];
}

/**
 * The destinations that would be sent this model's firing alerts: not
 * deleted, taking its `alert.firing` notices by their model and type
 * filters (the same condition a notice is created under), at the
 * severity every destination takes.
 */
export async function alertDestinationsOf(db: Queryable, model: string): Promise<string[]> {
  const { rows } = await db.execute<{ id: string }>(sql`
    SELECT d.id FROM alert_destinations d
    WHERE ${destinationTakes({ type: "alert.firing", model, severity: "critical" })}
    ORDER BY d.id`);
  return rows.map((row) => row.id);
}

/** The definition of done of `version` of a model as it stands; null for a version it does not have. */
export async function readinessOf(
  db: Queryable,
  model: ModelRow,
  version: string,
): Promise<VersionReadiness | null> {
  const [row] = await db
    .select({
      modelCard: modelVersions.modelCard,
      cardRevision: modelVersions.cardRevision,
      cardSha256: modelVersions.cardSha256,
      hasBaseline: sql<boolean>`${modelVersions.baseline} IS NOT NULL`,
    })
    .from(modelVersions)
    .where(and(eq(modelVersions.modelId, model.id), eq(modelVersions.version, version)));
  if (!row) return null;
  const destinationIds = await alertDestinationsOf(db, model.name);
  const readiness = cardReadiness(row.modelCard, {
    baseline: row.hasBaseline,
    destinations: destinationIds.length,
    dataPolicy: model.dataPolicy != null,
    riskTier: model.governance?.tier ?? null,
  });
  return {
    ...readiness,
    model: model.name,
    version,
    governed: model.governance != null,
    cardRevision: row.cardRevision,
    cardSha256: row.cardSha256,
    destinationIds,
  };
}

/** Where a missing item is, for the refusal's details: in the version, or in the model. */
function detailPath(version: string, item: ReadinessItem): string {
  const inVersion = item.filledBy === "card" || item.id === "baseline";
  return inVersion ? `versions/${version}/${item.path}` : item.path;
}

/** The 409 for a version that would get authority before its definition of done is met. */
export function cardIncomplete(readiness: VersionReadiness): ApiError {
  const { model, version, missing } = readiness;
  const count = missing.length === 1 ? "1 item is" : `${missing.length} items are`;
  return new ApiError(
    "MODEL_CARD_INCOMPLETE",
    `Version '${version}' of '${model}' cannot leave shadow: ${count} missing from its definition of done (${missing.map((item) => item.title.toLowerCase()).join(", ")}); GET /admin/models/${model}/checklist?version=${version} shows the whole checklist`,
    {
      details: missing.map((item) => ({
        path: detailPath(version, item),
        message: item.message ?? "",
      })),
    },
  );
}

/**
 * Refuses (409 MODEL_CARD_INCOMPLETE, each missing item in `details`) to
 * give `version` authority (a canary share, the champion's place, a plan
 * leaving shadow) while the model is governed and the version's
 * definition of done is not met. An ungoverned model is never held to it.
 */
export async function assertReadyForAuthority(
  db: Queryable,
  model: string,
  version: string,
): Promise<void> {
  const row = await findModel(db, model);
  if (!row.governance) return;
  const readiness = await readinessOf(db, row, version);
  if (!readiness)
    throw new ApiError("VERSION_NOT_FOUND", `Model '${model}' has no version '${version}'`);
  if (!readiness.complete) throw cardIncomplete(readiness);
}

/**
 * The same, for the versions a rollout change gives authority, on a model
 * already read: a version the model does not have is left for the rollout
 * object to refuse, naming the field.
 */
export async function refuseUnready(
  db: Queryable,
  model: ModelRow,
  versions: string[],
): Promise<void> {
  if (!model.governance) return;
  for (const version of versions) {
    const readiness = await readinessOf(db, model, version);
    if (readiness && !readiness.complete) throw cardIncomplete(readiness);
  }
}
