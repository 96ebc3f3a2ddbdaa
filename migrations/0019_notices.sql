ALTER TABLE "alert_deliveries" DROP CONSTRAINT "alert_deliveries_test_check";--> statement-breakpoint
ALTER TABLE "alert_deliveries" DROP CONSTRAINT "alert_deliveries_transition_check";--> statement-breakpoint
ALTER TABLE "alert_deliveries" ALTER COLUMN "transition" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "alert_deliveries" ADD COLUMN "type" text;--> statement-breakpoint
ALTER TABLE "alert_deliveries" ADD COLUMN "model" text;--> statement-breakpoint
UPDATE "alert_deliveries" d SET "type" = 'alert.' || d."transition",
  "model" = (SELECT a."model" FROM "alerts" a WHERE a."id" = d."alert_id");--> statement-breakpoint
ALTER TABLE "alert_deliveries" ALTER COLUMN "type" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "alert_deliveries" ADD COLUMN "notice_key" text;--> statement-breakpoint
ALTER TABLE "alert_deliveries" ADD COLUMN "payload" jsonb;--> statement-breakpoint
ALTER TABLE "alert_destinations" ADD COLUMN "types" jsonb;--> statement-breakpoint
ALTER TABLE "approvals" ADD COLUMN "change" text;--> statement-breakpoint
CREATE UNIQUE INDEX "alert_deliveries_other_notice_key" ON "alert_deliveries" USING btree ("notice_key","destination_id") WHERE "alert_deliveries"."notice_key" IS NOT NULL;--> statement-breakpoint
ALTER TABLE "alert_deliveries" ADD CONSTRAINT "alert_deliveries_type_check" CHECK ("alert_deliveries"."type" ~ '^[a-z][a-z_]*[.][a-z][a-z_]*$');--> statement-breakpoint
ALTER TABLE "alert_deliveries" ADD CONSTRAINT "alert_deliveries_kind_check" CHECK (CASE WHEN "alert_deliveries"."type" IN ('alert.firing', 'alert.resolved') THEN "alert_deliveries"."alert_id" IS NOT NULL AND "alert_deliveries"."transition" IS NOT NULL WHEN "alert_deliveries"."type" = 'alert.test' THEN "alert_deliveries"."alert_id" IS NULL AND "alert_deliveries"."transition" IS NOT NULL ELSE "alert_deliveries"."alert_id" IS NULL AND "alert_deliveries"."transition" IS NULL AND "alert_deliveries"."notice_key" IS NOT NULL AND "alert_deliveries"."payload" IS NOT NULL END);--> statement-breakpoint
ALTER TABLE "alert_deliveries" ADD CONSTRAINT "alert_deliveries_transition_check" CHECK ("alert_deliveries"."transition" IS NULL OR "alert_deliveries"."type" = 'alert.' || "alert_deliveries"."transition");