CREATE TABLE "monitoring_cursors" (
	"name" text PRIMARY KEY NOT NULL,
	"position" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "monitoring_pending" (
	"kind" text NOT NULL,
	"window_start" timestamp with time zone NOT NULL,
	"marked_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "monitoring_pending_pk" PRIMARY KEY("kind","window_start"),
	CONSTRAINT "monitoring_pending_kind_check" CHECK ("monitoring_pending"."kind" in ('labels', 'outcomes'))
);
--> statement-breakpoint
-- `control`: the champion's answer, computed in shadow, to a request the canary answered.
ALTER TABLE "predictions" DROP CONSTRAINT "predictions_role_check";--> statement-breakpoint
ALTER TABLE "predictions" ADD CONSTRAINT "predictions_role_check" CHECK ("role" IN ('served', 'canary', 'shadow', 'fallback', 'control'));--> statement-breakpoint
-- The creation time a UUIDv7 prediction id carries (its first 48 bits, in
-- milliseconds since the epoch), which is the prediction's created_at; null
-- for any other id. Lets the jobs find a label's prediction window, and its
-- partition, without searching every partition.
CREATE FUNCTION "prediction_id_time"(id text) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT CASE WHEN id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$'
    THEN to_timestamp(('x' || lpad(substr(replace(id, '-', ''), 1, 12), 16, '0'))::bit(64)::bigint / 1000.0)
  END
$$;
