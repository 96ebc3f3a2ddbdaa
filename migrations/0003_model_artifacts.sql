CREATE TABLE "model_artifacts" (
	"sha256" text PRIMARY KEY NOT NULL,
	"format" text NOT NULL,
	"bytes" integer NOT NULL,
	"body" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_by" text NOT NULL,
	CONSTRAINT "model_artifacts_sha256_check" CHECK ("model_artifacts"."sha256" ~ '^[0-9a-f]{64}$'),
	CONSTRAINT "model_artifacts_bytes_check" CHECK ("model_artifacts"."bytes" = octet_length("model_artifacts"."body")),
	CONSTRAINT "model_artifacts_hash_check" CHECK ("model_artifacts"."sha256" = encode(sha256(convert_to("model_artifacts"."body", 'UTF8')), 'hex'))
);
--> statement-breakpoint
-- Builtin model files registered inline before artefacts existed move into model_artifacts.
INSERT INTO "model_artifacts" ("sha256", "format", "bytes", "body", "created_by")
SELECT DISTINCT ON (hash) hash, format, octet_length(body), body, 'migration'
FROM (
	SELECT "upstream"->>'format' AS format, ("upstream"->'model')::text AS body,
		encode(sha256(convert_to(("upstream"->'model')::text, 'UTF8')), 'hex') AS hash
	FROM "model_versions"
	WHERE "upstream"->>'kind' = 'builtin' AND "upstream" ? 'model'
) AS inline
ON CONFLICT ("sha256") DO NOTHING;--> statement-breakpoint
UPDATE "model_versions"
SET "upstream" = ("upstream" - 'model') || jsonb_build_object(
	'artifactSha256', encode(sha256(convert_to(("upstream"->'model')::text, 'UTF8')), 'hex'),
	'modelBytes', octet_length(("upstream"->'model')::text)
)
WHERE "upstream"->>'kind' = 'builtin' AND "upstream" ? 'model';
