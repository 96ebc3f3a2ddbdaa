CREATE TABLE "alert_deliveries" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "alert_deliveries_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"alert_id" bigint NOT NULL,
	"destination_id" text NOT NULL,
	"transition" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"last_status" integer,
	"last_error" text,
	"next_attempt_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"sent_at" timestamp with time zone,
	CONSTRAINT "alert_deliveries_transition_check" CHECK ("alert_deliveries"."transition" in ('firing', 'resolved')),
	CONSTRAINT "alert_deliveries_status_check" CHECK ("alert_deliveries"."status" in ('pending', 'sent', 'failed', 'dropped'))
);
--> statement-breakpoint
CREATE TABLE "alert_destinations" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"kind" text NOT NULL,
	"url_box" text NOT NULL,
	"url_hint" text NOT NULL,
	"secret_box" text,
	"models" jsonb,
	"min_severity" text DEFAULT 'warning' NOT NULL,
	"include_system" boolean DEFAULT true NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_by" text NOT NULL,
	"deleted_at" timestamp with time zone,
	"deleted_by" text,
	CONSTRAINT "alert_destinations_kind_check" CHECK ("alert_destinations"."kind" in ('slack', 'webhook')),
	CONSTRAINT "alert_destinations_secret_check" CHECK (("alert_destinations"."kind" = 'webhook') = ("alert_destinations"."secret_box" is not null))
);
--> statement-breakpoint
CREATE TABLE "alerts" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "alerts_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"fingerprint" text NOT NULL,
	"rule" text NOT NULL,
	"severity" text NOT NULL,
	"state" text NOT NULL,
	"model" text NOT NULL,
	"version" text NOT NULL,
	"role" text NOT NULL,
	"metric" text NOT NULL,
	"dimension" text NOT NULL,
	"value" double precision,
	"threshold" double precision,
	"comparison" text NOT NULL,
	"window_seconds" integer,
	"window_start" timestamp with time zone,
	"summary" text NOT NULL,
	"count" integer DEFAULT 1 NOT NULL,
	"first_seen_at" timestamp with time zone NOT NULL,
	"last_seen_at" timestamp with time zone NOT NULL,
	"clear_since" timestamp with time zone,
	"resolved_at" timestamp with time zone,
	"resolution" text,
	"acknowledged_at" timestamp with time zone,
	"acknowledged_by" text,
	"acknowledgement" text,
	CONSTRAINT "alerts_severity_check" CHECK ("alerts"."severity" in ('warning', 'critical')),
	CONSTRAINT "alerts_state_check" CHECK ("alerts"."state" in ('pending', 'firing', 'resolved')),
	CONSTRAINT "alerts_resolved_check" CHECK (("alerts"."state" = 'resolved') = ("alerts"."resolved_at" is not null))
);
--> statement-breakpoint
ALTER TABLE "models" ADD COLUMN "alert_rules" jsonb;--> statement-breakpoint
ALTER TABLE "alert_deliveries" ADD CONSTRAINT "alert_deliveries_alert_id_alerts_id_fk" FOREIGN KEY ("alert_id") REFERENCES "public"."alerts"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "alert_deliveries" ADD CONSTRAINT "alert_deliveries_destination_id_alert_destinations_id_fk" FOREIGN KEY ("destination_id") REFERENCES "public"."alert_destinations"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "alert_deliveries_notice_key" ON "alert_deliveries" USING btree ("alert_id","destination_id","transition");--> statement-breakpoint
CREATE INDEX "alert_deliveries_status_updated_at_idx" ON "alert_deliveries" USING btree ("status","updated_at");--> statement-breakpoint
CREATE UNIQUE INDEX "alerts_open_fingerprint_key" ON "alerts" USING btree ("fingerprint") WHERE "alerts"."state" in ('pending', 'firing');--> statement-breakpoint
CREATE INDEX "alerts_model_first_seen_at_idx" ON "alerts" USING btree ("model","first_seen_at");--> statement-breakpoint
CREATE INDEX "alerts_state_last_seen_at_idx" ON "alerts" USING btree ("state","last_seen_at");