-- Labels and outcomes name their model, one the reporting key covers, and a
-- prediction keeps one current label per model: a key for another model can
-- neither relabel a prediction nor replace its label. Written by hand where
-- drizzle-kit cannot express it (the old primary key's name, the backfill).
--
-- Rows stored before carry the model their key covered when it covered one,
-- else their prediction's model when the key covered that, else '': a label
-- nobody can place, which the monitoring job never joins.
ALTER TABLE "feedback" ADD COLUMN "model" text;--> statement-breakpoint
ALTER TABLE "feedback_events" ADD COLUMN "model" text;--> statement-breakpoint
ALTER TABLE "outcomes" ADD COLUMN "model" text;--> statement-breakpoint
UPDATE "feedback" f SET "model" = coalesce(
  (SELECT k.models ->> 0 FROM "api_keys" k
    WHERE k.id = f.api_key_id AND jsonb_array_length(k.models) = 1),
  (SELECT r.model FROM "prediction_refs" r JOIN "api_keys" k ON k.id = f.api_key_id
    WHERE r.prediction_id = f.prediction_id AND k.models @> jsonb_build_array(r.model) LIMIT 1),
  '');--> statement-breakpoint
UPDATE "feedback_events" f SET "model" = coalesce(
  (SELECT k.models ->> 0 FROM "api_keys" k
    WHERE k.id = f.api_key_id AND jsonb_array_length(k.models) = 1),
  (SELECT r.model FROM "prediction_refs" r JOIN "api_keys" k ON k.id = f.api_key_id
    WHERE r.prediction_id = f.prediction_id AND k.models @> jsonb_build_array(r.model) LIMIT 1),
  '');--> statement-breakpoint
UPDATE "outcomes" o SET "model" = coalesce(
  (SELECT k.models ->> 0 FROM "api_keys" k
    WHERE k.id = o.api_key_id AND jsonb_array_length(k.models) = 1),
  (SELECT r.model FROM "prediction_refs" r JOIN "api_keys" k ON k.id = o.api_key_id
    WHERE r.prediction_id = o.prediction_id AND k.models @> jsonb_build_array(r.model) LIMIT 1),
  '');--> statement-breakpoint
ALTER TABLE "feedback" ALTER COLUMN "model" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "feedback_events" ALTER COLUMN "model" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "outcomes" ALTER COLUMN "model" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "feedback" DROP CONSTRAINT "feedback_pkey";--> statement-breakpoint
ALTER TABLE "feedback" ADD CONSTRAINT "feedback_pk" PRIMARY KEY("prediction_id","model");
