CREATE TABLE "monitoring_results" (
	"model" text NOT NULL,
	"version" text NOT NULL,
	"role" text NOT NULL,
	"window_seconds" integer NOT NULL,
	"window_start" timestamp with time zone NOT NULL,
	"metric" text NOT NULL,
	"dimension" text NOT NULL,
	"value" double precision,
	"reason" text,
	"status" text NOT NULL,
	"details" jsonb NOT NULL,
	"run_id" bigint NOT NULL,
	"computed_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "monitoring_results_pk" PRIMARY KEY("model","version","role","window_seconds","window_start","metric","dimension"),
	CONSTRAINT "monitoring_results_status_check" CHECK ("monitoring_results"."status" in ('ok', 'warn', 'alert', 'unknown'))
);
--> statement-breakpoint
CREATE TABLE "monitoring_runs" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "monitoring_runs_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"job" text NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	"duration_ms" integer,
	"status" text NOT NULL,
	"windows" integer DEFAULT 0 NOT NULL,
	"results" integer DEFAULT 0 NOT NULL,
	"error" text,
	"details" jsonb DEFAULT '{}'::jsonb NOT NULL,
	CONSTRAINT "monitoring_runs_status_check" CHECK ("monitoring_runs"."status" in ('running', 'succeeded', 'failed'))
);
--> statement-breakpoint
CREATE INDEX "monitoring_results_model_window_idx" ON "monitoring_results" USING btree ("model","window_start");--> statement-breakpoint
CREATE INDEX "monitoring_runs_job_started_at_idx" ON "monitoring_runs" USING btree ("job","started_at");