import { z } from "@hono/zod-openapi";
import { builtinFormats, MAX_MODEL_BYTES } from "../builtin";
import { checkEgressUrl, refusedUpstreamSecret, UPSTREAM_SECRET_PREFIX } from "../egress";
import { VERSION_STATUSES } from "../rollout/status";
import { UploadedBaseline } from "./baseline";
import { ClassLabel, FeatureName, ModelName, Timestamp, VersionLabel } from "./common";

/**
 * Names a Worker secret that holds the upstream's credential; never the
 * credential. Only secrets under UPSTREAM_ (checked again at each call).
 */
const SecretName = z
  .string()
  .regex(
    /^[A-Z][A-Z0-9_]{0,63}$/,
    "must be the name of a secret: uppercase letters, digits and '_'",
  )
  .superRefine((name, ctx) => {
    const refused = refusedUpstreamSecret(name);
    if (refused) ctx.addIssue({ code: "custom", message: refused });
  })
  .openapi({
    description: `The name of a Worker secret starting with ${UPSTREAM_SECRET_PREFIX} (e.g. UPSTREAM_FRAUD_MODEL_TOKEN), sent as a bearer token. No other secret can be named.`,
  });

const Threshold = z.number().gt(0).lt(1).openapi({
  description:
    "Binary models: the label is the positive class when its score is at least this (default 0.5).",
});

/**
 * The URL's form; whether it may be called (the egress rules, with the
 * allowlist) is checked on registration and at each call.
 */
const UpstreamUrl = z
  .url({ protocol: /^https?$/ })
  .max(2048)
  .superRefine((value, ctx) => {
    const url = new URL(value);
    if (url.username || url.password) {
      ctx.addIssue({
        code: "custom",
        message: "must not embed credentials; name a secret in 'credential' instead",
      });
    }
    if (url.hash) ctx.addIssue({ code: "custom", message: "must not have a fragment" });
  })
  .openapi({
    description:
      "https to a public host or address (IPv6 in brackets); http, private addresses and local names only for hosts on UPSTREAM_ALLOWED_HOSTS. Redirects are not followed.",
  });

export const HttpUpstream = z
  .object({
    kind: z.literal("http"),
    url: UpstreamUrl,
    protocol: z.enum(["v2", "json"]),
    timeoutMs: z.number().int().min(1).max(30_000),
    idempotent: z.boolean().optional(),
    credential: SecretName.optional(),
    outputMapping: z
      .object({
        label: z.string().max(256).optional(),
        score: z.string().max(256).optional(),
        probabilities: z.string().max(256).optional(),
        value: z.string().max(256).optional(),
      })
      .strict()
      .optional()
      .openapi({
        description:
          "Where the canonical prediction is in the response: JSON pointers into each output item (json), or output tensor names (v2).",
      }),
    threshold: Threshold.optional(),
  })
  .strict()
  .openapi("HttpUpstream", {
    example: {
      kind: "http",
      url: "https://models.example.com/v2/models/fraud/infer",
      protocol: "v2",
      timeoutMs: 800,
      credential: "UPSTREAM_FRAUD_MODEL_TOKEN",
    },
  });

export type HttpUpstream = z.infer<typeof HttpUpstream>;

const BuiltinFormat = z.enum(builtinFormats).openapi({
  description:
    "xgboost-json: the file Booster.save_model writes; xgboost-dump: { objective, baseScore, numClass?, trees } with trees from get_dump(dump_format='json'); sklearn-trees and sklearn-linear: what scripts/export/sklearn_export.py writes from a fitted estimator.",
});

const builtinBeside = {
  features: z.array(FeatureName).min(1).max(1000).optional().openapi({
    description:
      "Feature names in the model's column order, for model files that do not name them (XGBoost without feature names, dumps).",
  }),
  classes: z.array(ClassLabel).min(2).max(1000).optional().openapi({
    description:
      "XGBoost classifiers: the model's class labels in class index order (default: the model's classes, in order).",
  }),
  threshold: Threshold.optional(),
};

/** A builtin model as registered: the model file travels in the request. */
export const BuiltinUpstream = z
  .object({
    kind: z.literal("builtin"),
    format: BuiltinFormat,
    model: z.record(z.string(), z.unknown()).openapi({
      description: `The model file as JSON, at most ${MAX_MODEL_BYTES} bytes. Stored once by content hash.`,
    }),
    ...builtinBeside,
  })
  .strict()
  .openapi("BuiltinUpstream");

/** A builtin model as stored and shown: the model file is an artefact named by its hash. */
export const StoredBuiltinUpstream = z
  .object({
    kind: z.literal("builtin"),
    format: BuiltinFormat,
    artifactSha256: z.string().openapi({
      description:
        "SHA-256 of the model file's canonical JSON; GET /admin/artifacts/{sha256} returns it.",
    }),
    modelBytes: z.number().int(),
    ...builtinBeside,
  })
  .strict()
  .openapi("StoredBuiltinUpstream");
export type StoredBuiltinUpstream = z.infer<typeof StoredBuiltinUpstream>;

export const Upstream = z
  .discriminatedUnion("kind", [HttpUpstream, BuiltinUpstream])
  .openapi("Upstream");
export type Upstream = z.infer<typeof Upstream>;

export const StoredUpstream = z
  .discriminatedUnion("kind", [HttpUpstream, StoredBuiltinUpstream])
  .openapi("StoredUpstream");
export type StoredUpstream = z.infer<typeof StoredUpstream>;

const LongText = z.string().max(20_000);
const AttributeName = z.string().min(1).max(200);

/**
 * A model card, after Mitchell et al. Every section is optional while a
 * version is being registered; `missingCardSections` in responses tells
 * what its author still has to write before a governed model's version may
 * leave shadow (shared/governance/card.ts).
 */
export const ModelCard = z
  .object({
    summary: LongText.optional(),
    intendedUse: LongText.optional(),
    outOfScopeUse: LongText.optional(),
    trainingData: z
      .object({
        description: LongText.optional(),
        source: z.string().max(2048).optional(),
        snapshotAt: z.string().max(64).optional(),
        rows: z.number().int().min(0).optional(),
        sensitiveAttributes: z
          .object({
            used: z.array(AttributeName).max(200),
            excluded: z.array(AttributeName).max(200),
            notes: LongText.optional(),
          })
          .strict()
          .optional()
          .openapi({
            description:
              "Sensitive attributes (age, sex, nationality, …) the model uses and those kept out of training; present, even with empty lists, once the author has stated it.",
          }),
      })
      .strict()
      .optional(),
    provenance: z
      .object({
        framework: z.string().max(200).optional(),
        frameworkVersion: z.string().max(100).optional(),
        trainingRun: z.string().max(2048).optional(),
        codeRevision: z.string().max(200).optional(),
        artifactUri: z.string().max(2048).optional(),
        artifactSha256: z
          .string()
          .regex(/^[0-9a-f]{64}$/, "must be a lowercase hex SHA-256")
          .optional(),
        trainedBy: z.string().max(200).optional(),
        trainedAt: z.string().max(64).optional(),
      })
      .strict()
      .optional(),
    evaluationMetrics: z
      .array(
        z
          .object({
            name: z.string().min(1).max(100),
            value: z.number(),
            dataset: z.string().max(500).optional(),
            segment: z.string().max(500).optional(),
          })
          .strict(),
      )
      .max(500)
      .optional(),
    fairnessAnalysis: z
      .object({
        attributes: z.array(AttributeName).max(100).openapi({
          description: "The request attributes analysed, e.g. `region`.",
        }),
        summary: LongText,
        findings: z
          .array(
            z
              .object({
                attribute: AttributeName,
                metric: z.string().min(1).max(100),
                value: z.number(),
                group: z.string().max(500).optional(),
              })
              .strict(),
          )
          .max(500)
          .optional(),
      })
      .strict()
      .optional(),
    limitations: LongText.optional(),
    mitigations: LongText.optional().openapi({
      description: "What is done about the limitations and the fairness findings.",
    }),
    ethicalConsiderations: LongText.optional(),
    humanOversight: z
      .object({
        killSwitchOwner: z.string().max(200).openapi({
          description: "Who engages the kill switch: a person or a team, by name.",
        }),
        rollbackPlan: LongText,
        reviewCadence: z.string().max(200).optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .openapi("ModelCard", {
    example: {
      intendedUse: "Score card-not-present transactions for manual review.",
      trainingData: { description: "Transactions Jan-Jun 2026", rows: 1200000 },
      provenance: { framework: "xgboost", frameworkVersion: "2.1.1", codeRevision: "9f2c1e0" },
      evaluationMetrics: [{ name: "roc_auc", value: 0.94, dataset: "holdout-2026-06" }],
      limitations: "Not trained on business accounts.",
    },
  });
export type ModelCard = z.infer<typeof ModelCard>;

export const CreateVersionBody = z
  .object({
    version: VersionLabel,
    upstream: Upstream,
    modelCard: ModelCard.default({}),
    baseline: UploadedBaseline.optional().openapi({
      description:
        "The version's reference data for drift and data-quality monitoring: rows as in training or validation, and optionally its predictions for them. Also settable later (POST .../baseline).",
    }),
  })
  .strict()
  .openapi("CreateVersion");
export type CreateVersionBody = z.infer<typeof CreateVersionBody>;

/** A version as the registry stores it. */
export const Version = z.object({
  model: ModelName,
  version: VersionLabel,
  status: z.enum(VERSION_STATUSES),
  upstream: StoredUpstream,
  upstreamSha256: z.string(),
  modelCard: ModelCard,
  cardRevision: z.number().int().openapi({
    description:
      "The model card's revision: 1 when the version was registered, one more with each edit (`GET …/card?revision=n` reads any).",
  }),
  cardSha256: z.string().nullable().openapi({
    description: "SHA-256 of the card's text as stored (jsonb's canonical text).",
  }),
  missingCardSections: z.array(z.string()).openapi({
    description:
      "What the card's author still has to write before the version may leave shadow on a governed model, as paths in the card (e.g. `humanOversight.rollbackPlan`). The items Airlock fills itself are in GET …/checklist.",
  }),
  retired: z.object({ at: Timestamp, by: z.string(), reason: z.string() }).nullable().openapi({
    description:
      "Set once the version is retired for good (POST …/retire): it may never be named in a rollout again. Null for a version that only left the rollout (status `retired`), which may come back.",
  }),
  createdAt: Timestamp,
  createdBy: z.string(),
  updatedAt: Timestamp,
});
export type Version = z.infer<typeof Version>;

export const versionWarningCodes = [
  "CREDENTIAL_NOT_SET",
  "CREDENTIAL_REFUSED",
  "UPSTREAM_URL_REFUSED",
] as const;

/**
 * Something that stops a version from serving now but can be put right
 * without registering it again (a secret set, the allowlist widened).
 * What can never be put right is refused at registration instead.
 */
export const VersionWarning = z
  .object({
    code: z.enum(versionWarningCodes),
    field: z.string().openapi({ example: "upstream.credential" }),
    message: z.string(),
  })
  .openapi("VersionWarning", {
    example: {
      code: "CREDENTIAL_NOT_SET",
      field: "upstream.credential",
      message:
        "The Worker has no secret 'UPSTREAM_FRAUD_MODEL_TOKEN': every call to this version fails until it is set (npx wrangler secret put UPSTREAM_FRAUD_MODEL_TOKEN)",
    },
  });
export type VersionWarning = z.infer<typeof VersionWarning>;

/** A version as the API shows it: as stored, and whether it can serve with the Worker's configuration now. */
export const VersionResource = Version.extend({
  servable: z.boolean().openapi({
    description:
      "True when nothing known prevents this version from serving: no warning applies. Not a promise that its upstream answers.",
  }),
  warnings: z.array(VersionWarning).openapi({
    description:
      "What stops this version from serving with the Worker's configuration now, and how to put it right. Worked out from the configuration each time the version is shown, so a secret set later clears its warning.",
  }),
}).openapi("Version");
export type VersionResource = z.infer<typeof VersionResource>;

/** What the Worker's configuration says about calling an upstream. */
export interface UpstreamConfiguration {
  /** UPSTREAM_ALLOWED_HOSTS, parsed. */
  allowlist: ReadonlySet<string>;
  /** Whether the Worker has this secret, with a value. */
  hasSecret(name: string): boolean;
}

/**
 * Why calls to this upstream would fail now, by field. A builtin model was
 * checked whole at registration and has none. The URL and credential rules
 * refuse a registration outright; here they name a version stored before a
 * rule was tightened.
 */
export function upstreamWarnings(
  upstream: StoredUpstream,
  configuration: UpstreamConfiguration,
): VersionWarning[] {
  if (upstream.kind !== "http") return [];
  const warnings: VersionWarning[] = [];
  const url = checkEgressUrl(upstream.url, configuration.allowlist);
  if (!url.ok) {
    warnings.push({
      code: "UPSTREAM_URL_REFUSED",
      field: "upstream.url",
      message: `The egress rules refuse this URL now (${url.reason}): every call fails with UPSTREAM_FORBIDDEN until the rules admit it (a host on UPSTREAM_ALLOWED_HOSTS), or until a new version names another URL`,
    });
  }
  const credential = upstream.credential;
  if (credential !== undefined) {
    const refused = refusedUpstreamSecret(credential);
    if (refused) {
      warnings.push({
        code: "CREDENTIAL_REFUSED",
        field: "upstream.credential",
        message: `${refused}: every call fails with UPSTREAM_FORBIDDEN; register a new version that names an ${UPSTREAM_SECRET_PREFIX}… secret`,
      });
    } else if (!configuration.hasSecret(credential)) {
      warnings.push({
        code: "CREDENTIAL_NOT_SET",
        field: "upstream.credential",
        message: `The Worker has no secret '${credential}': every call to this version fails until it is set (npx wrangler secret put ${credential})`,
      });
    }
  }
  return warnings;
}
