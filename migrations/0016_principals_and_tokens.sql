CREATE TABLE "access_settings" (
	"name" text PRIMARY KEY NOT NULL,
	"value" jsonb NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_by" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "principal_grants" (
	"principal_id" text NOT NULL,
	"role" text NOT NULL,
	"model" text DEFAULT '' NOT NULL,
	"granted_at" timestamp with time zone DEFAULT now() NOT NULL,
	"granted_by" text NOT NULL,
	CONSTRAINT "principal_grants_principal_id_role_model_pk" PRIMARY KEY("principal_id","role","model"),
	CONSTRAINT "principal_grants_owner_model" CHECK (("principal_grants"."role" = 'owner') = ("principal_grants"."model" <> ''))
);
--> statement-breakpoint
CREATE TABLE "principal_tokens" (
	"id" text PRIMARY KEY NOT NULL,
	"principal_id" text NOT NULL,
	"name" text NOT NULL,
	"prefix" text NOT NULL,
	"token_hash" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_by" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"last_used_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	"revoked_by" text
);
--> statement-breakpoint
CREATE TABLE "principals" (
	"id" text PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"display_name" text NOT NULL,
	"email" text,
	"access_common_name" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"created_by" text NOT NULL,
	"disabled_at" timestamp with time zone,
	"disabled_by" text,
	CONSTRAINT "principals_kind_identity" CHECK (("principals"."kind" = 'person' AND "principals"."access_common_name" IS NULL) OR ("principals"."kind" = 'service' AND "principals"."email" IS NULL))
);
--> statement-breakpoint
ALTER TABLE "audit_log" ADD COLUMN "auth_method" text;--> statement-breakpoint
ALTER TABLE "audit_log" ADD COLUMN "auth_token_id" text;--> statement-breakpoint
ALTER TABLE "principal_grants" ADD CONSTRAINT "principal_grants_principal_id_principals_id_fk" FOREIGN KEY ("principal_id") REFERENCES "public"."principals"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "principal_tokens" ADD CONSTRAINT "principal_tokens_principal_id_principals_id_fk" FOREIGN KEY ("principal_id") REFERENCES "public"."principals"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "principal_tokens_token_hash_key" ON "principal_tokens" USING btree ("token_hash");--> statement-breakpoint
CREATE INDEX "principal_tokens_principal_idx" ON "principal_tokens" USING btree ("principal_id","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "principals_email_key" ON "principals" USING btree ("email");--> statement-breakpoint
CREATE UNIQUE INDEX "principals_access_common_name_key" ON "principals" USING btree ("access_common_name");--> statement-breakpoint
CREATE INDEX "audit_log_actor_idx" ON "audit_log" USING btree ("actor","id");