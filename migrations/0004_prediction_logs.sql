CREATE TABLE "dead_letters" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "dead_letters_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"message_id" text NOT NULL,
	"queue" text NOT NULL,
	"body" jsonb,
	"error" text NOT NULL,
	"attempts" integer NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	"replayed_at" timestamp with time zone,
	"replayed_by" text
);
--> statement-breakpoint
CREATE TABLE "prediction_refs" (
	"prediction_id" text NOT NULL,
	"role" text NOT NULL,
	"version" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"model" text NOT NULL,
	"prediction" jsonb,
	"attributes" jsonb NOT NULL,
	"key_hmac" text,
	CONSTRAINT "prediction_refs_prediction_id_role_version_created_at_pk" PRIMARY KEY("prediction_id","role","version","created_at")
) PARTITION BY RANGE ("created_at");
--> statement-breakpoint
CREATE TABLE "predictions" (
	"prediction_id" text NOT NULL,
	"role" text NOT NULL,
	"version" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"request_id" text NOT NULL,
	"model" text NOT NULL,
	"inputs" jsonb NOT NULL,
	"prediction" jsonb,
	"attributes" jsonb NOT NULL,
	"key_hmac" text,
	"latency_ms" double precision NOT NULL,
	"status" text NOT NULL,
	"error_code" text,
	"state_version" bigint NOT NULL,
	"stored_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "predictions_prediction_id_role_version_created_at_pk" PRIMARY KEY("prediction_id","role","version","created_at")
) PARTITION BY RANGE ("created_at");
--> statement-breakpoint
CREATE TABLE "rejected_requests" (
	"prediction_id" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"request_id" text NOT NULL,
	"model" text NOT NULL,
	"inputs" jsonb,
	"issues" jsonb NOT NULL,
	"attributes" jsonb NOT NULL,
	"key_hmac" text,
	"state_version" bigint NOT NULL,
	"stored_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rejected_requests_prediction_id_created_at_pk" PRIMARY KEY("prediction_id","created_at")
) PARTITION BY RANGE ("created_at");
--> statement-breakpoint
CREATE UNIQUE INDEX "dead_letters_message_id_key" ON "dead_letters" USING btree ("message_id");--> statement-breakpoint
CREATE INDEX "dead_letters_received_at_idx" ON "dead_letters" USING btree ("received_at");--> statement-breakpoint
CREATE INDEX "prediction_refs_prediction_id_idx" ON "prediction_refs" USING btree ("prediction_id");--> statement-breakpoint
CREATE INDEX "prediction_refs_model_created_at_idx" ON "prediction_refs" USING btree ("model","created_at");--> statement-breakpoint
CREATE INDEX "predictions_model_version_created_at_idx" ON "predictions" USING btree ("model","version","created_at");--> statement-breakpoint
CREATE INDEX "rejected_requests_model_created_at_idx" ON "rejected_requests" USING btree ("model","created_at");--> statement-breakpoint
-- Result roles and statuses, as the consumer writes them.
ALTER TABLE "predictions" ADD CONSTRAINT "predictions_role_check" CHECK ("role" IN ('served', 'canary', 'shadow', 'fallback'));--> statement-breakpoint
ALTER TABLE "predictions" ADD CONSTRAINT "predictions_status_check" CHECK ("status" IN ('ok', 'error', 'timeout'));--> statement-breakpoint
-- Rows whose day has no partition land here instead of failing the insert;
-- the maintenance job moves them into their day's partition.
CREATE TABLE "predictions_default" PARTITION OF "predictions" DEFAULT;--> statement-breakpoint
CREATE TABLE "prediction_refs_default" PARTITION OF "prediction_refs" DEFAULT;--> statement-breakpoint
CREATE TABLE "rejected_requests_default" PARTITION OF "rejected_requests" DEFAULT;--> statement-breakpoint
-- Creates the daily partitions of `parent` (named <parent>_pYYYYMMDD, UTC days)
-- from `first_day` for `days` days. Rows of such a day already in the DEFAULT
-- partition are moved into the new partition, in the same transaction.
-- Returns the number of rows moved (the job alerts when it is not zero).
CREATE FUNCTION "airlock_ensure_day_partitions"(parent text, first_day date, days integer)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	day date;
	part text;
	low timestamptz;
	high timestamptz;
	moved bigint := 0;
	n bigint;
BEGIN
	FOR i IN 0 .. days - 1 LOOP
		day := first_day + i;
		part := parent || '_p' || to_char(day, 'YYYYMMDD');
		CONTINUE WHEN to_regclass(quote_ident(part)) IS NOT NULL;
		low := day::timestamp AT TIME ZONE 'UTC';
		high := (day + 1)::timestamp AT TIME ZONE 'UTC';
		EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, parent);
		EXECUTE format(
			'WITH moved AS (DELETE FROM %I WHERE created_at >= $1 AND created_at < $2 RETURNING *) INSERT INTO %I SELECT * FROM moved',
			parent || '_default', part) USING low, high;
		GET DIAGNOSTICS n = ROW_COUNT;
		moved := moved + n;
		EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', parent, part, low, high);
	END LOOP;
	RETURN moved;
END;
$$;--> statement-breakpoint
-- Drops the daily partitions of `parent` whose whole day is older than
-- `keep_days` days. Returns the names dropped.
CREATE FUNCTION "airlock_drop_day_partitions"(parent text, keep_days integer)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	part record;
	cutoff date := (now() AT TIME ZONE 'UTC')::date - keep_days;
BEGIN
	FOR part IN
		SELECT c.relname AS name
		FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = to_regclass(quote_ident(parent))
			AND c.relname ~ ('^' || parent || '_p[0-9]{8}$')
			AND to_date(right(c.relname, 8), 'YYYYMMDD') < cutoff
	LOOP
		EXECUTE format('DROP TABLE %I', part.name);
		RETURN NEXT part.name;
	END LOOP;
END;
$$;--> statement-breakpoint
SELECT "airlock_ensure_day_partitions"(t, (now() AT TIME ZONE 'UTC')::date - 1, 9)
FROM unnest(ARRAY['predictions', 'prediction_refs', 'rejected_requests']) AS t;
