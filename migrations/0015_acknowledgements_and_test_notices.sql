CREATE TABLE "alert_acknowledgements" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "alert_acknowledgements_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"alert_id" bigint NOT NULL,
	"acknowledged_by" text NOT NULL,
	"acknowledged_at" timestamp with time zone DEFAULT now() NOT NULL,
	"note" text
);
--> statement-breakpoint
ALTER TABLE "alert_deliveries" DROP CONSTRAINT "alert_deliveries_transition_check";--> statement-breakpoint
ALTER TABLE "alert_deliveries" ALTER COLUMN "alert_id" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "alert_acknowledgements" ADD CONSTRAINT "alert_acknowledgements_alert_id_alerts_id_fk" FOREIGN KEY ("alert_id") REFERENCES "public"."alerts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "alert_acknowledgements_alert_id_idx" ON "alert_acknowledgements" USING btree ("alert_id","id");--> statement-breakpoint
-- Each alert's one acknowledgement so far (the last, which overwrote any before it) becomes its first row.
INSERT INTO "alert_acknowledgements" ("alert_id", "acknowledged_by", "acknowledged_at", "note")
SELECT "id", coalesce("acknowledged_by", 'unknown'), "acknowledged_at", "acknowledgement"
FROM "alerts" WHERE "acknowledged_at" IS NOT NULL ORDER BY "id";--> statement-breakpoint
-- Acknowledgements are history: refuse UPDATE, DELETE and TRUNCATE at the database itself, as for audit_log.
CREATE OR REPLACE FUNCTION alert_acknowledgements_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'alert_acknowledgements is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END;
$$;--> statement-breakpoint
CREATE TRIGGER alert_acknowledgements_no_update_delete
  BEFORE UPDATE OR DELETE ON "alert_acknowledgements"
  FOR EACH ROW EXECUTE FUNCTION alert_acknowledgements_refuse_change();--> statement-breakpoint
CREATE TRIGGER alert_acknowledgements_no_truncate
  BEFORE TRUNCATE ON "alert_acknowledgements"
  FOR EACH STATEMENT EXECUTE FUNCTION alert_acknowledgements_refuse_change();--> statement-breakpoint
ALTER TABLE "alerts" DROP COLUMN "acknowledged_at";--> statement-breakpoint
ALTER TABLE "alerts" DROP COLUMN "acknowledged_by";--> statement-breakpoint
ALTER TABLE "alerts" DROP COLUMN "acknowledgement";--> statement-breakpoint
ALTER TABLE "alert_deliveries" ADD CONSTRAINT "alert_deliveries_test_check" CHECK (("alert_deliveries"."transition" = 'test') = ("alert_deliveries"."alert_id" is null));--> statement-breakpoint
ALTER TABLE "alert_deliveries" ADD CONSTRAINT "alert_deliveries_transition_check" CHECK ("alert_deliveries"."transition" in ('firing', 'resolved', 'test'));