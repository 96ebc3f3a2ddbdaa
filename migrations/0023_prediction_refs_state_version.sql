ALTER TABLE "prediction_refs" ADD COLUMN "state_version" bigint;--> statement-breakpoint
-- What the full log rows still hold, the references keep from now on.
UPDATE "prediction_refs" r SET "state_version" = p."state_version"
FROM "predictions" p
WHERE p."prediction_id" = r."prediction_id" AND p."role" = r."role"
  AND p."version" = r."version" AND p."created_at" = r."created_at"
  AND r."state_version" IS NULL;
