CREATE TABLE "erased_keys" (
	"key_hmac" text NOT NULL,
	"erasure_id" bigint NOT NULL,
	"model" text,
	"before" timestamp with time zone NOT NULL,
	CONSTRAINT "erased_keys_key_hmac_erasure_id_pk" PRIMARY KEY("key_hmac","erasure_id")
);
--> statement-breakpoint
CREATE TABLE "erasure_requests" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "erasure_requests_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"subject" text NOT NULL,
	"key_hmac" text,
	"model" text,
	"prediction_ids" jsonb,
	"reason" text NOT NULL,
	"status" text NOT NULL,
	"progress" jsonb NOT NULL,
	"counts" jsonb NOT NULL,
	"error" text,
	"requested_by" text NOT NULL,
	"requested_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	CONSTRAINT "erasure_requests_subject_check" CHECK (CASE "erasure_requests"."subject" WHEN 'key' THEN "erasure_requests"."key_hmac" IS NOT NULL WHEN 'predictions' THEN "erasure_requests"."prediction_ids" IS NOT NULL ELSE false END),
	CONSTRAINT "erasure_requests_status_check" CHECK ("erasure_requests"."status" in ('queued', 'running', 'succeeded', 'failed'))
);
--> statement-breakpoint
CREATE TABLE "erasure_tombstones" (
	"prediction_id" text PRIMARY KEY NOT NULL,
	"erasure_id" bigint NOT NULL,
	"erased_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "erased_keys" ADD CONSTRAINT "erased_keys_erasure_id_erasure_requests_id_fk" FOREIGN KEY ("erasure_id") REFERENCES "public"."erasure_requests"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "erasure_tombstones" ADD CONSTRAINT "erasure_tombstones_erasure_id_erasure_requests_id_fk" FOREIGN KEY ("erasure_id") REFERENCES "public"."erasure_requests"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "erasure_requests_status_idx" ON "erasure_requests" USING btree ("status","updated_at");