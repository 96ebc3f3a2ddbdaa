ALTER TABLE "model_versions" ADD COLUMN "retired_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "model_versions" ADD COLUMN "retired_by" text;--> statement-breakpoint
ALTER TABLE "model_versions" ADD COLUMN "retired_reason" text;--> statement-breakpoint
ALTER TABLE "model_versions" ADD CONSTRAINT "model_versions_retired_check" CHECK (("model_versions"."retired_at" IS NULL) = ("model_versions"."retired_by" IS NULL));