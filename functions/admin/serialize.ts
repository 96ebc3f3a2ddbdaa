import type { models, modelVersions } from "../../shared/db/schema";
import { missingCardSections } from "../../shared/governance/card";
import type { Model } from "../../shared/schemas/model";
import type { Version } from "../../shared/schemas/version";

type ModelRow = typeof models.$inferSelect;
type VersionRow = typeof modelVersions.$inferSelect;

export function modelResource(row: ModelRow): Model {
  return {
    name: row.name,
    task: row.task,
    owner: row.owner,
    description: row.description,
    inputSchema: row.inputSchema,
    classes: row.classes ?? null,
    positiveClass: row.positiveClass ?? null,
    public: row.public,
    fallback: row.fallback,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export function versionResource(modelName: string, row: VersionRow): Version {
  return {
    model: modelName,
    version: row.version,
    status: row.status,
    upstream: row.upstream,
    upstreamSha256: row.upstreamSha256,
    modelCard: row.modelCard,
    cardRevision: row.cardRevision,
    cardSha256: row.cardSha256,
    missingCardSections: missingCardSections(row.modelCard),
    retired:
      row.retiredAt && row.retiredBy
        ? { at: row.retiredAt.toISOString(), by: row.retiredBy, reason: row.retiredReason ?? "" }
        : null,
    createdAt: row.createdAt.toISOString(),
    createdBy: row.createdBy,
    updatedAt: row.updatedAt.toISOString(),
  };
}
