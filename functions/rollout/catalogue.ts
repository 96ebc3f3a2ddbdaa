import { and, asc, eq, gt, inArray, isNull, or, sql } from "drizzle-orm";
import type { Catalogue } from "../../durable-objects/model-rollout";
import type { Queryable } from "../../shared/db/client";
import { apiKeys, models, modelVersions } from "../../shared/db/schema";
import { ApiError } from "../../shared/errors";
import type { UpstreamRef, VersionRef } from "../../shared/rollout/state";

/**
 * The registry data a model's rollout object needs, read from Postgres:
 * the model's profile and a reference to every version's upstream (builtin
 * models by content hash).
 */
export async function loadCatalogue(db: Queryable, name: string): Promise<Catalogue> {
  const [model] = await db.select().from(models).where(eq(models.name, name));
  if (!model) throw new ApiError("MODEL_NOT_FOUND", `Model '${name}' does not exist`);
  const rows = await db
    .select({
      version: modelVersions.version,
      upstream: modelVersions.upstream,
      sha256: modelVersions.upstreamSha256,
    })
    .from(modelVersions)
    .where(eq(modelVersions.modelId, model.id))
    .orderBy(asc(modelVersions.id));
  const versions: Record<string, VersionRef> = {};
  for (const row of rows) {
    // A builtin model is carried by reference: the file stays in Postgres.
    const upstream: UpstreamRef =
      row.upstream.kind === "builtin"
        ? {
            kind: "builtin",
            format: row.upstream.format,
            artifactSha256: row.upstream.artifactSha256,
            features: row.upstream.features,
            classes: row.upstream.classes,
            threshold: row.upstream.threshold,
          }
        : row.upstream;
    versions[row.version] = { upstream, upstreamSha256: row.sha256 };
  }
  // Keys allowed for this model that are neither revoked nor expired.
  const keys = await db
    .select({ hash: apiKeys.keyHash, expiresAt: apiKeys.expiresAt })
    .from(apiKeys)
    .where(
      and(
        sql`${apiKeys.models} @> ${JSON.stringify([name])}::jsonb`,
        isNull(apiKeys.revokedAt),
        or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, sql`now()`)),
      ),
    )
    .orderBy(asc(apiKeys.keyHash));
  const apiKeyExpiresAt: Record<string, string> = {};
  for (const key of keys)
    if (key.expiresAt) apiKeyExpiresAt[key.hash] = key.expiresAt.toISOString();
  return {
    profile: {
      name: model.name,
      task: model.task,
      inputSchema: model.inputSchema,
      classes: model.classes ?? null,
      positiveClass: model.positiveClass ?? null,
      fallback: model.fallback,
      public: model.public,
      apiKeyHashes: keys.map((key) => key.hash),
      apiKeyExpiresAt,
      dataPolicy: model.dataPolicy ?? null,
    },
    versions,
  };
}

/**
 * Refuses a rollout that names a version retired for good, naming where
 * (`paths`: version → the body's field; otherwise the version itself).
 */
export async function refuseRetired(
  db: Queryable,
  model: string,
  versions: string[],
  paths: Map<string, string> = new Map(),
): Promise<void> {
  if (versions.length === 0) return;
  const rows = await db
    .select({ version: modelVersions.version, retiredAt: modelVersions.retiredAt })
    .from(modelVersions)
    .innerJoin(models, eq(models.id, modelVersions.modelId))
    .where(
      and(
        eq(models.name, model),
        inArray(modelVersions.version, versions),
        sql`${modelVersions.retiredAt} IS NOT NULL`,
      ),
    );
  if (rows.length === 0) return;
  throw new ApiError(
    "VERSION_RETIRED",
    `Version '${rows[0]?.version}' of '${model}' was retired for good (${rows[0]?.retiredAt?.toISOString()}) and cannot serve again; register it as a new version to bring it back`,
    {
      details: rows.map((row) => ({
        path: paths.get(row.version) ?? row.version,
        message: "is retired",
      })),
    },
  );
}
