ALTER TABLE "dead_letters" ADD COLUMN "body_text" text;--> statement-breakpoint
ALTER TABLE "dead_letters" ADD COLUMN "discarded_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "dead_letters" ADD COLUMN "discarded_by" text;--> statement-breakpoint
ALTER TABLE "dead_letters" ADD COLUMN "discard_reason" text;