CREATE TABLE "securelogin_phone_history" (
	"phone_key" text PRIMARY KEY NOT NULL,
	"ended_accounts" integer NOT NULL
);
--> statement-breakpoint
ALTER TABLE "securelogin_users" ALTER COLUMN "phone" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "securelogin_sessions" ADD COLUMN "user_agent" text;--> statement-breakpoint
ALTER TABLE "securelogin_sessions" ADD COLUMN "ip" text;--> statement-breakpoint
ALTER TABLE "securelogin_users" ADD COLUMN "email" text;--> statement-breakpoint
ALTER TABLE "securelogin_users" ADD COLUMN "password_hash" text;--> statement-breakpoint
CREATE UNIQUE INDEX "securelogin_users_email_key" ON "securelogin_users" USING btree ("email");--> statement-breakpoint
CREATE INDEX "securelogin_users_unverified_idx" ON "securelogin_users" USING btree ("id") WHERE "securelogin_users"."phone_verified_at" is null;--> statement-breakpoint
CREATE INDEX "securelogin_users_deleted_idx" ON "securelogin_users" USING btree ("id") WHERE "securelogin_users"."status" = 'deleted';