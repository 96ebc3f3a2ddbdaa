CREATE TABLE "audit_chain_head" (
	"id" integer PRIMARY KEY NOT NULL,
	"seq" bigint NOT NULL,
	"hash" text NOT NULL,
	CONSTRAINT "audit_chain_head_one_row" CHECK ("audit_chain_head"."id" = 1)
);
--> statement-breakpoint
ALTER TABLE "audit_log" ADD COLUMN "seq" bigint;--> statement-breakpoint
ALTER TABLE "audit_log" ADD COLUMN "content" text;--> statement-breakpoint
ALTER TABLE "audit_log" ADD COLUMN "prev_hash" text;--> statement-breakpoint
ALTER TABLE "audit_log" ADD COLUMN "hash" text;--> statement-breakpoint
CREATE UNIQUE INDEX "audit_log_seq_key" ON "audit_log" USING btree ("seq");--> statement-breakpoint
-- What a row's hash covers: every column but its storage id and the chain's
-- own, with the time in UTC to the microsecond, as jsonb (whose text form is
-- canonical: keys sorted, one spelling per value). The text is stored in
-- `content` and hashed as stored.
CREATE FUNCTION audit_content(a audit_log) RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'seq', a.seq, 'eventId', a.event_id, 'source', a.source, 'actor', a.actor,
    'authMethod', a.auth_method, 'authTokenId', a.auth_token_id,
    'action', a.action, 'targetType', a.target_type, 'target', a.target,
    'before', a.before, 'after', a.after,
    'at', to_char(a.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'requestId', a.request_id)
$$;
--> statement-breakpoint
-- Every insert, from every writer, takes the chain's head under a lock in its
-- own transaction: appends serialize, the sequence has no gaps, and an event
-- already in the trail (an outbox redelivery) is dropped under the lock
-- without taking a number.
CREATE FUNCTION audit_log_chain() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  head record;
BEGIN
  SELECT seq, hash INTO head FROM audit_chain_head WHERE id = 1 FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the audit chain has no head row';
  END IF;
  IF EXISTS (SELECT 1 FROM audit_log WHERE event_id = NEW.event_id) THEN
    RETURN NULL;
  END IF;
  NEW.seq := head.seq + 1;
  NEW.prev_hash := head.hash;
  NEW.content := audit_content(NEW)::text;
  NEW.hash := encode(sha256(convert_to(NEW.prev_hash || E'\n' || NEW.content, 'UTF8')), 'hex');
  UPDATE audit_chain_head SET seq = NEW.seq, hash = NEW.hash WHERE id = 1;
  RETURN NEW;
END;
$$;
--> statement-breakpoint
INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, repeat('0', 64));
--> statement-breakpoint
CREATE TRIGGER audit_log_chain
  BEFORE INSERT ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_chain();
--> statement-breakpoint
-- The genesis row: sequence 1, committing to every row written before the
-- chain (the SHA-256 of their contents, as audit_content gives them, one per
-- line in id order), which stay as they are.
INSERT INTO audit_log (event_id, source, actor, action, target_type, target, before, after)
SELECT 'audit.genesis', 'system', 'airlock', 'audit.genesis', 'audit', 'audit', NULL,
  jsonb_build_object(
    'priorRows', count(*),
    'priorDigest', encode(sha256(convert_to(
      coalesce(string_agg(audit_content(a)::text, E'\n' ORDER BY a.id), ''), 'UTF8')), 'hex'))
FROM audit_log a;
