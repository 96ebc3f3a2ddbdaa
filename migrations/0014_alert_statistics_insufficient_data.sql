ALTER TABLE "monitoring_results" DROP CONSTRAINT "monitoring_results_status_check";--> statement-breakpoint
ALTER TABLE "alerts" ADD COLUMN "statistics" jsonb DEFAULT '[]'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "monitoring_results" ADD CONSTRAINT "monitoring_results_status_check" CHECK ("monitoring_results"."status" in ('ok', 'warn', 'alert', 'unknown', 'insufficient_data'));