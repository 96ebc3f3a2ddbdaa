CREATE TABLE "feedback" (
	"prediction_id" text PRIMARY KEY NOT NULL,
	"label" jsonb NOT NULL,
	"observed_at" timestamp with time zone NOT NULL,
	"api_key_id" text NOT NULL,
	"revision" integer DEFAULT 1 NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "feedback_events" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "feedback_events_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"prediction_id" text NOT NULL,
	"label" jsonb NOT NULL,
	"observed_at" timestamp with time zone NOT NULL,
	"api_key_id" text NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "outcomes" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "outcomes_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"client_id" text,
	"api_key_id" text NOT NULL,
	"prediction_id" text,
	"key_hmac" text,
	"kpi" text NOT NULL,
	"value" double precision NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "outcomes_subject_check" CHECK ("outcomes"."prediction_id" is not null or "outcomes"."key_hmac" is not null)
);
--> statement-breakpoint
CREATE INDEX "feedback_updated_at_idx" ON "feedback" USING btree ("updated_at");--> statement-breakpoint
CREATE INDEX "feedback_events_prediction_id_idx" ON "feedback_events" USING btree ("prediction_id");--> statement-breakpoint
CREATE INDEX "feedback_events_received_at_idx" ON "feedback_events" USING btree ("received_at");--> statement-breakpoint
CREATE UNIQUE INDEX "outcomes_client_id_key" ON "outcomes" USING btree ("api_key_id","client_id") WHERE "outcomes"."client_id" is not null;--> statement-breakpoint
CREATE INDEX "outcomes_prediction_id_idx" ON "outcomes" USING btree ("prediction_id");--> statement-breakpoint
CREATE INDEX "outcomes_key_hmac_at_idx" ON "outcomes" USING btree ("key_hmac","at");--> statement-breakpoint
CREATE INDEX "outcomes_kpi_at_idx" ON "outcomes" USING btree ("kpi","at");