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
CREATE UNIQUE INDEX "securelogin_users_email_key" ON "securelogin_users" USING btree ("email");