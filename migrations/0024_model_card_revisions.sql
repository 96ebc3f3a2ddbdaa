CREATE TABLE "model_card_revisions" (
	"version_id" bigint NOT NULL,
	"revision" integer NOT NULL,
	"model_card" jsonb NOT NULL,
	"sha256" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_by" text NOT NULL,
	CONSTRAINT "model_card_revisions_version_id_revision_pk" PRIMARY KEY("version_id","revision")
);
--> statement-breakpoint
ALTER TABLE "model_versions" ADD COLUMN "card_revision" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "model_versions" ADD COLUMN "card_sha256" text;--> statement-breakpoint
ALTER TABLE "model_card_revisions" ADD CONSTRAINT "model_card_revisions_version_id_model_versions_id_fk" FOREIGN KEY ("version_id") REFERENCES "public"."model_versions"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
-- A card's hash is over its text as stored (jsonb's canonical text), like the audit chain's.
-- Each version's card as it is now becomes its revision 1; earlier edits are in the audit trail.
INSERT INTO "model_card_revisions" ("version_id", "revision", "model_card", "sha256", "created_at", "created_by")
SELECT "id", 1, "model_card", encode(sha256(convert_to("model_card"::text, 'UTF8')), 'hex'),
  "updated_at", 'airlock'
FROM "model_versions";
--> statement-breakpoint
UPDATE "model_versions"
SET "card_sha256" = encode(sha256(convert_to("model_card"::text, 'UTF8')), 'hex');
--> statement-breakpoint
CREATE TRIGGER model_card_revisions_no_update_delete
  BEFORE UPDATE OR DELETE ON "model_card_revisions"
  FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
--> statement-breakpoint
CREATE TRIGGER model_card_revisions_no_truncate
  BEFORE TRUNCATE ON "model_card_revisions"
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();
