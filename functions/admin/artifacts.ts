import { z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import {
  type CompiledModel,
  compileModel,
  MAX_MODEL_BYTES,
  type ModelProblem,
} from "../../shared/builtin";
import { bindingProblems } from "../../shared/builtin/serve";
import { canonicalJson, sha256Hex } from "../../shared/crypto";
import type { Transaction } from "../../shared/db/client";
import { modelArtifacts, type models } from "../../shared/db/schema";
import { ApiError } from "../../shared/errors";
import { Timestamp } from "../../shared/schemas/common";
import type { StoredBuiltinUpstream, Upstream } from "../../shared/schemas/version";
import { apiRouter } from "../router";
import { errorResponses, jsonContent } from "./openapi";
import { adminRoute } from "./route";

type BuiltinUpstream = Extract<Upstream, { kind: "builtin" }>;

/** A builtin model file read, checked and hashed, before it meets the model it serves. */
export interface PreparedBuiltin {
  upstream: StoredBuiltinUpstream;
  body: string;
  compiled: CompiledModel;
}

const encoder = new TextEncoder();

/**
 * Reads a builtin model file from a registration: canonical JSON (so equal
 * files hash equal), the size limit (413), and every structural check of its
 * format (400 naming the place in the file).
 */
export async function prepareBuiltin(upstream: BuiltinUpstream): Promise<PreparedBuiltin> {
  const body = canonicalJson(upstream.model);
  const bytes = encoder.encode(body).byteLength;
  if (bytes > MAX_MODEL_BYTES) {
    throw new ApiError(
      "MODEL_FILE_TOO_LARGE",
      `upstream.model is ${bytes} bytes as JSON; the limit is ${MAX_MODEL_BYTES} bytes`,
    );
  }
  const compiled = compileModel(upstream.format, upstream.model, {
    features: upstream.features,
    classes: upstream.classes,
  });
  if (!compiled.ok) throw modelFileInvalid(compiled.problems);
  const { model: _file, ...beside } = upstream;
  return {
    upstream: { ...beside, artifactSha256: await sha256Hex(body), modelBytes: bytes },
    body,
    compiled: compiled.model,
  };
}

/**
 * Checks a prepared model file against the model it will serve, then stores
 * the file once by hash. Runs inside the registration's transaction.
 */
export async function storeBuiltin(
  tx: Transaction,
  model: typeof models.$inferSelect,
  prepared: PreparedBuiltin,
  actor: string,
): Promise<void> {
  const problems = bindingProblems(prepared.compiled, {
    task: model.task,
    classes: model.classes ?? null,
    positiveClass: model.positiveClass ?? null,
    inputSchema: model.inputSchema,
  });
  if (problems.length > 0) throw modelFileInvalid(problems);
  await tx
    .insert(modelArtifacts)
    .values({
      sha256: prepared.upstream.artifactSha256,
      format: prepared.upstream.format,
      bytes: prepared.upstream.modelBytes,
      body: prepared.body,
      createdBy: actor,
    })
    .onConflictDoNothing({ target: modelArtifacts.sha256 });
}

/** A 400 naming every problem found, each in `details`, the first in the message. */
function modelFileInvalid(problems: readonly ModelProblem[]): ApiError {
  const details = problems.map((p) => ({ path: `upstream.${p.path}`, message: p.message }));
  const more = details.length > 1 ? ` (and ${details.length - 1} more)` : "";
  return new ApiError("MODEL_FILE_INVALID", `${details[0]?.path}: ${details[0]?.message}${more}`, {
    details,
  });
}

const Sha256Param = z
  .string()
  .regex(/^[0-9a-f]{64}$/, "must be a lowercase hex SHA-256")
  .openapi({ param: { name: "sha256", in: "path" } });

const Artifact = z
  .object({
    sha256: z.string(),
    format: z.string(),
    bytes: z.number().int(),
    createdAt: Timestamp,
    createdBy: z.string(),
    model: z.record(z.string(), z.unknown()),
  })
  .openapi("Artifact");

export const artifactsApi = apiRouter();

artifactsApi.openapi(
  adminRoute({
    permission: "models.read",
    method: "get",
    path: "/{sha256}",
    tags: ["Versions"],
    summary: "A builtin model file, by content hash",
    description: "Artefacts never change: the hash names exactly one file.",
    request: { params: z.object({ sha256: Sha256Param }) },
    responses: {
      200: jsonContent(Artifact, "The model file and where it came from"),
      ...errorResponses(400, 401, 404, 503),
    },
  }),
  async (c) => {
    const { sha256 } = c.req.valid("param");
    const [row] = await c.var
      .database()
      .select()
      .from(modelArtifacts)
      .where(eq(modelArtifacts.sha256, sha256));
    if (!row) throw new ApiError("ARTIFACT_NOT_FOUND", `No model file has SHA-256 ${sha256}`);
    return c.json(
      {
        sha256: row.sha256,
        format: row.format,
        bytes: row.bytes,
        createdAt: row.createdAt.toISOString(),
        createdBy: row.createdBy,
        model: JSON.parse(row.body) as Record<string, unknown>,
      },
      200,
    );
  },
);
