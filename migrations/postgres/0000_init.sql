CREATE TABLE "securelogin_otp_challenges" (
	"phone" text PRIMARY KEY NOT NULL,
	"challenge_id" uuid NOT NULL,
	"code_hash" text,
	"attempts" integer DEFAULT 0 NOT NULL,
	"sent_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"consumed_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "securelogin_rate_limits" (
	"key" text PRIMARY KEY NOT NULL,
	"window_start" timestamp with time zone NOT NULL,
	"count" integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE "securelogin_sessions" (
	"id" uuid PRIMARY KEY NOT NULL,
	"user_id" uuid NOT NULL,
	"generation" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"refreshed_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"revoked_at" timestamp with time zone,
	"revoked_reason" text
);
--> statement-breakpoint
CREATE TABLE "securelogin_users" (
	"id" uuid PRIMARY KEY NOT NULL,
	"phone" text NOT NULL,
	"username" text,
	"auth_type" text DEFAULT 'PHONE' NOT NULL,
	"status" text DEFAULT 'active' NOT NULL,
	"phone_verified_at" timestamp with time zone,
	"created_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
ALTER TABLE "securelogin_sessions" ADD CONSTRAINT "securelogin_sessions_user_id_securelogin_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."securelogin_users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "securelogin_otp_challenges_expires_at_idx" ON "securelogin_otp_challenges" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "securelogin_rate_limits_window_start_idx" ON "securelogin_rate_limits" USING btree ("window_start");--> statement-breakpoint
CREATE INDEX "securelogin_sessions_user_id_idx" ON "securelogin_sessions" USING btree ("user_id");--> statement-breakpoint
CREATE INDEX "securelogin_sessions_revoked_at_idx" ON "securelogin_sessions" USING btree ("revoked_at");--> statement-breakpoint
CREATE INDEX "securelogin_sessions_expires_at_idx" ON "securelogin_sessions" USING btree ("expires_at");--> statement-breakpoint
CREATE UNIQUE INDEX "securelogin_users_phone_key" ON "securelogin_users" USING btree ("phone");