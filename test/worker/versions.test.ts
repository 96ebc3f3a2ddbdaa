import { env } from "cloudflare:workers";
import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import worker from "../../functions/index";
import { modelArtifacts } from "../../shared/db/schema";
import {
  adminHeaders,
  call,
  classificationModel,
  completeModelCard,
  createModel,
  createVersion,
  database,
  type ErrorJson,
  executionContext,
  httpUpstream,
  json,
  uniqueName,
} from "./helpers";

const card = {
  intendedUse: "Score card-not-present transactions",
  trainingData: { description: "Jan-Jun 2026", rows: 1200000 },
  provenance: { framework: "xgboost", frameworkVersion: "2.1.1", codeRevision: "9f2c1e0" },
  evaluationMetrics: [{ name: "roc_auc", value: 0.94, dataset: "holdout" }],
};

const builtin = {
  kind: "builtin",
  format: "sklearn-linear",
  model: { features: ["amount"], coef: [[0.5]], intercept: [0.1], classes: ["legit", "fraud"] },
};

describe("versions: happy paths", () => {
  it("creates a version with an HTTP upstream and a model card, and reads it back", async () => {
    const model = uniqueName();
    await createModel(classificationModel(model));
    const response = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: {
        version: "v1",
        upstream: { ...httpUpstream, credential: "UPSTREAM_FRAUD_TOKEN", idempotent: true },
        modelCard: card,
      },
    });
    expect(response.status).toBe(201);
    expect(response.headers.get("location")).toBe(`/admin/models/${model}/versions/v1`);
    const version = await json(response);
    expect(version).toMatchObject({
      model,
      version: "v1",
      status: "registered",
      createdBy: "prn_testadmin",
      upstream: { kind: "http", credential: "UPSTREAM_FRAUD_TOKEN", idempotent: true },
      modelCard: card,
      missingCardSections: [
        "outOfScopeUse",
        "trainingData.sensitiveAttributes",
        "evaluationMetrics",
        "fairnessAnalysis",
        "limitations",
        "mitigations",
        "humanOversight.killSwitchOwner",
        "humanOversight.rollbackPlan",
      ],
    });
    expect(version.upstreamSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(await json(await call(`/admin/models/${model}/versions/v1`))).toEqual(version);
  });

  it("hashes the upstream canonically: key order does not change the hash", async () => {
    const model = uniqueName();
    await createModel(classificationModel(model));
    const a = await json(await createVersion(model, "a", { upstream: builtin }));
    const reordered = {
      model: { intercept: [0.1], classes: ["legit", "fraud"], coef: [[0.5]], features: ["amount"] },
      format: "sklearn-linear",
      kind: "builtin",
    };
    const b = await json(await createVersion(model, "b", { upstream: reordered }));
    expect(a.upstreamSha256).toBe(b.upstreamSha256);
    expect(a.upstream).toEqual(b.upstream);
    const c = await json(
      await createVersion(model, "c", {
        upstream: { ...builtin, model: { ...builtin.model, intercept: [0] } },
      }),
    );
    expect(c.upstreamSha256).not.toBe(a.upstreamSha256);
  });

  it("stores a builtin model file once, by the hash of its canonical JSON", async () => {
    const model = uniqueName();
    await createModel(classificationModel(model));
    const a = await json<{ upstream: Record<string, unknown> }>(
      await createVersion(model, "a", { upstream: builtin }),
    );
    const file = JSON.stringify(
      Object.fromEntries(Object.entries(builtin.model).sort(([x], [y]) => (x < y ? -1 : 1))),
    );
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", new TextEncoder().encode(file)),
    );
    const sha256 = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
    expect(a.upstream).toEqual({
      kind: "builtin",
      format: "sklearn-linear",
      artifactSha256: sha256,
      modelBytes: file.length,
    });
    // The same file under another version (with a threshold) is the same artefact.
    const b = await json<{ upstream: Record<string, unknown> }>(
      await createVersion(model, "b", { upstream: { ...builtin, threshold: 0.7 } }),
    );
    expect(b.upstream.artifactSha256).toBe(sha256);
    const db = database();
    try {
      const rows = await db.db
        .select()
        .from(modelArtifacts)
        .where(eq(modelArtifacts.sha256, sha256));
      expect(rows).toHaveLength(1);
      expect(rows[0]?.body).toBe(file);
    } finally {
      await db.close();
    }
    const artifact = await call(`/admin/artifacts/${sha256}`);
    expect(artifact.status).toBe(200);
    expect(await json(artifact)).toMatchObject({
      sha256,
      format: "sklearn-linear",
      bytes: file.length,
      createdBy: "prn_testadmin",
      model: builtin.model,
    });
    const unknown = await call(`/admin/artifacts/${"0".repeat(64)}`);
    expect(unknown.status).toBe(404);
    expect((await json<ErrorJson>(unknown)).error.code).toBe("ARTIFACT_NOT_FOUND");
  });

  it("lists versions newest first, builtin models by artefact hash, page by page", async () => {
    const model = uniqueName();
    await createModel(classificationModel(model));
    await createVersion(model, "v1");
    await createVersion(model, "v2", { upstream: builtin });
    await createVersion(model, "v3");
    const first = await json<{ items: Record<string, unknown>[]; nextCursor: string }>(
      await call(`/admin/models/${model}/versions?limit=2`),
    );
    expect(first.items.map((v) => v.version)).toEqual(["v3", "v2"]);
    expect(first.items[1]?.upstream).toEqual({
      kind: "builtin",
      format: "sklearn-linear",
      artifactSha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      modelBytes: expect.any(Number),
    });
    expect(first.nextCursor).toBeTruthy();
    const second = await json<{ items: Record<string, unknown>[]; nextCursor: string | null }>(
      await call(`/admin/models/${model}/versions?limit=2&cursor=${first.nextCursor}`),
    );
    expect(second.items.map((v) => v.version)).toEqual(["v1"]);
    expect(second.nextCursor).toBeNull();
    const full = await json(await call(`/admin/models/${model}/versions/v2`));
    expect(full.upstream).toEqual(first.items[1]?.upstream);
  });

  it("replaces a version's model card, and nothing else", async () => {
    const model = uniqueName();
    await createModel(classificationModel(model));
    const created = await json(await createVersion(model, "v1", { modelCard: card }));
    const newCard = completeModelCard({ ethicalConsiderations: "Reviewed" });
    const response = await call(`/admin/models/${model}/versions/v1`, {
      method: "PATCH",
      body: { modelCard: newCard },
    });
    expect(response.status).toBe(200);
    const updated = await json(response);
    expect(updated.modelCard).toEqual(newCard);
    expect(updated.missingCardSections).toEqual([]);
    expect(updated.upstream).toEqual(created.upstream);
    const refused = await call(`/admin/models/${model}/versions/v1`, {
      method: "PATCH",
      body: { modelCard: newCard, upstream: httpUpstream },
    });
    expect(refused.status).toBe(400);
  });
});

interface VersionWarningJson {
  code: string;
  field: string;
  message: string;
}

interface ShownVersion {
  version: string;
  servable: boolean;
  warnings: VersionWarningJson[];
}

/** Reads a version through a Worker whose configuration differs from the tests' own. */
async function readWith(configuration: Record<string, string>, path: string) {
  const response = await worker.fetch(
    new Request(`http://airlock.test${path}`, { headers: adminHeaders() }),
    { ...env, ...configuration } as Env,
    executionContext(),
  );
  expect(response.status).toBe(200);
  return json<ShownVersion>(response);
}

describe("versions: warnings and servable", () => {
  it("registers a version whose credential secret is not set, warning that it cannot serve until it is", async () => {
    const model = uniqueName();
    await createModel(classificationModel(model));
    const response = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: { version: "v1", upstream: { ...httpUpstream, credential: "UPSTREAM_NOT_SET_YET" } },
    });
    expect(response.status).toBe(201);
    const created = await json<ShownVersion>(response);
    expect(created.servable).toBe(false);
    expect(created.warnings).toEqual([
      {
        code: "CREDENTIAL_NOT_SET",
        field: "upstream.credential",
        message:
          "The Worker has no secret 'UPSTREAM_NOT_SET_YET': every call to this version fails until it is set (npx wrangler secret put UPSTREAM_NOT_SET_YET)",
      },
    ]);
    const path = `/admin/models/${model}/versions/v1`;
    expect(await json(await call(path))).toEqual(created);
    const page = await json<{ items: ShownVersion[] }>(
      await call(`/admin/models/${model}/versions`),
    );
    expect(page.items[0]).toMatchObject({ servable: false, warnings: created.warnings });
    // The audit trail keeps what registration said.
    const audit = await json<{ items: { action: string; after: ShownVersion }[] }>(
      await call(`/admin/audit?target=models/${model}/versions/v1`),
    );
    expect(audit.items[0]?.after.warnings).toEqual(created.warnings);

    // Once the secret is set, nothing is left to say: no new version is needed.
    const later = await readWith({ UPSTREAM_NOT_SET_YET: "token" }, path);
    expect(later).toMatchObject({ servable: true, warnings: [] });
  });

  it("has nothing to warn about when the secret is set, or for a builtin model", async () => {
    const model = uniqueName();
    await createModel(classificationModel(model));
    const http = await json<ShownVersion>(
      await createVersion(model, "v1", {
        upstream: { ...httpUpstream, credential: "UPSTREAM_FRAUD_MODEL_TOKEN" },
      }),
    );
    expect(http).toMatchObject({ servable: true, warnings: [] });
    const local = await json<ShownVersion>(await createVersion(model, "v2", { upstream: builtin }));
    expect(local).toMatchObject({ servable: true, warnings: [] });
  });

  it("warns about a stored version whose URL the egress rules refuse since the allowlist changed", async () => {
    const model = uniqueName();
    await createModel(classificationModel(model));
    await createVersion(model, "v1", {
      upstream: { ...httpUpstream, url: "http://127.0.0.1:9/v2/models/fraud/infer" },
    });
    const path = `/admin/models/${model}/versions/v1`;
    expect(await json(await call(path))).toMatchObject({ servable: true, warnings: [] });
    const narrowed = await readWith({ UPSTREAM_ALLOWED_HOSTS: "" }, path);
    expect(narrowed.servable).toBe(false);
    expect(narrowed.warnings).toEqual([
      {
        code: "UPSTREAM_URL_REFUSED",
        field: "upstream.url",
        message: expect.stringMatching(
          /^The egress rules refuse this URL now \(http is allowed only for hosts on UPSTREAM_ALLOWED_HOSTS\): every call fails with UPSTREAM_FORBIDDEN/,
        ),
      },
    ]);
  });
});

describe("versions: errors", () => {
  it("answers 404 MODEL_NOT_FOUND for a version of an unknown model", async () => {
    const response = await call("/admin/models/ghost-model/versions", {
      method: "POST",
      body: { version: "v1", upstream: httpUpstream },
    });
    expect(response.status).toBe(404);
    expect((await json<ErrorJson>(response)).error.code).toBe("MODEL_NOT_FOUND");
    expect((await call("/admin/models/ghost-model/versions")).status).toBe(404);
  });

  it("answers 404 VERSION_NOT_FOUND for an unknown version", async () => {
    const model = uniqueName();
    await createModel(classificationModel(model));
    const response = await call(`/admin/models/${model}/versions/v404`);
    expect(response.status).toBe(404);
    expect((await json<ErrorJson>(response)).error.code).toBe("VERSION_NOT_FOUND");
  });

  it("answers 409 VERSION_EXISTS and keeps the first version unchanged", async () => {
    const model = uniqueName();
    await createModel(classificationModel(model));
    const first = await json(await createVersion(model, "v1"));
    const again = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: { version: "v1", upstream: { ...httpUpstream, timeoutMs: 5 } },
    });
    expect(again.status).toBe(409);
    expect((await json<ErrorJson>(again)).error.code).toBe("VERSION_EXISTS");
    expect(await json(await call(`/admin/models/${model}/versions/v1`))).toEqual(first);
  });

  it.each([
    ["a non-http URL", { ...httpUpstream, url: "ftp://models.example.com/x" }, "upstream.url"],
    [
      "credentials in the URL",
      { ...httpUpstream, url: "https://user:pw@models.example.com/x" },
      "upstream.url",
    ],
    ["an unknown protocol", { ...httpUpstream, protocol: "grpc" }, "upstream.protocol"],
    ["a zero timeout", { ...httpUpstream, timeoutMs: 0 }, "upstream.timeoutMs"],
    [
      "a credential that is not a secret name",
      { ...httpUpstream, credential: "Bearer abc" },
      "upstream.credential",
    ],
    ["an unknown kind", { kind: "grpc", url: "https://x" }, "upstream.kind"],
    ["an unknown field", { ...httpUpstream, apiKey: "plaintext" }, "upstream"],
  ])("refuses an upstream with %s, naming %s", async (_label, upstream, path) => {
    const model = uniqueName();
    await createModel(classificationModel(model));
    const response = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: { version: "v1", upstream },
    });
    expect(response.status).toBe(400);
    const error = await json<ErrorJson>(response);
    expect(error.error.code).toBe("VALIDATION_FAILED");
    expect(error.error.details?.map((d) => d.path).join(" ")).toContain(path);
    expect((await call(`/admin/models/${model}/versions/v1`)).status).toBe(404);
  });

  it("refuses a bad version label and a model card with unknown sections", async () => {
    const model = uniqueName();
    await createModel(classificationModel(model));
    const label = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: { version: "v 1/..", upstream: httpUpstream },
    });
    expect(label.status).toBe(400);
    expect((await json<ErrorJson>(label)).error.details?.[0]?.path).toBe("version");
    const cardResponse = await call(`/admin/models/${model}/versions`, {
      method: "POST",
      body: {
        version: "v1",
        upstream: httpUpstream,
        modelCard: { intendedUse: "x", secretSauce: 1 },
      },
    });
    expect(cardResponse.status).toBe(400);
    expect((await json<ErrorJson>(cardResponse)).error.message).toContain("modelCard");
  });
});
