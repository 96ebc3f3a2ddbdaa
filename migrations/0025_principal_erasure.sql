ALTER TABLE "principals" ADD COLUMN "erased_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "principals" ADD COLUMN "erased_by" text;