CREATE TABLE "plan_evaluations" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "plan_evaluations_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"plan_id" text NOT NULL,
	"model" text NOT NULL,
	"phase" text NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"verdict" text NOT NULL,
	"reasons" jsonb NOT NULL,
	"gates" jsonb NOT NULL,
	"details" jsonb NOT NULL,
	"sha256" text NOT NULL,
	"outcome" text NOT NULL,
	"outcome_reason" text NOT NULL,
	"state_version" bigint,
	"evaluated_by" text NOT NULL,
	CONSTRAINT "plan_evaluations_verdict_check" CHECK ("plan_evaluations"."verdict" in ('advance', 'hold', 'insufficient_evidence'))
);
--> statement-breakpoint
CREATE TABLE "rollout_plans" (
	"id" text PRIMARY KEY NOT NULL,
	"model" text NOT NULL,
	"challenger" text NOT NULL,
	"champion" text NOT NULL,
	"status" text NOT NULL,
	"phase" text NOT NULL,
	"state" jsonb NOT NULL,
	"revision" integer NOT NULL,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"ended_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rollout_plans_status_check" CHECK ("rollout_plans"."status" in ('active', 'paused', 'completed', 'aborted', 'rolled_back'))
);
--> statement-breakpoint
ALTER TABLE "approvals" ADD COLUMN "evidence" jsonb;--> statement-breakpoint
ALTER TABLE "approvals" ADD COLUMN "evidence_sha256" text;--> statement-breakpoint
ALTER TABLE "plan_evaluations" ADD CONSTRAINT "plan_evaluations_plan_id_rollout_plans_id_fk" FOREIGN KEY ("plan_id") REFERENCES "public"."rollout_plans"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "rollout_plans" ADD CONSTRAINT "rollout_plans_model_models_name_fk" FOREIGN KEY ("model") REFERENCES "public"."models"("name") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "plan_evaluations_plan_at_idx" ON "plan_evaluations" USING btree ("plan_id","at");--> statement-breakpoint
CREATE INDEX "rollout_plans_model_created_at_idx" ON "rollout_plans" USING btree ("model","created_at");--> statement-breakpoint
CREATE INDEX "rollout_plans_status_idx" ON "rollout_plans" USING btree ("status");