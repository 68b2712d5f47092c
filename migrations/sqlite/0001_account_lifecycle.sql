CREATE TABLE `securelogin_phone_history` (
	`phone_key` text PRIMARY KEY NOT NULL,
	`ended_accounts` integer NOT NULL
);
--> statement-breakpoint
PRAGMA foreign_keys=OFF;--> statement-breakpoint
CREATE TABLE `__new_securelogin_users` (
	`id` text PRIMARY KEY NOT NULL,
	`phone` text,
	`email` text,
	`password_hash` text,
	`username` text,
	`auth_type` text DEFAULT 'PHONE' NOT NULL,
	`status` text DEFAULT 'active' NOT NULL,
	`phone_verified_at` integer,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
INSERT INTO `__new_securelogin_users`("id", "phone", "username", "auth_type", "status", "phone_verified_at", "created_at") SELECT "id", "phone", "username", "auth_type", "status", "phone_verified_at", "created_at" FROM `securelogin_users`;--> statement-breakpoint
DROP TABLE `securelogin_users`;--> statement-breakpoint
ALTER TABLE `__new_securelogin_users` RENAME TO `securelogin_users`;--> statement-breakpoint
PRAGMA foreign_keys=ON;--> statement-breakpoint
CREATE UNIQUE INDEX `securelogin_users_phone_key` ON `securelogin_users` (`phone`);--> statement-breakpoint
CREATE UNIQUE INDEX `securelogin_users_email_key` ON `securelogin_users` (`email`);--> statement-breakpoint
CREATE INDEX `securelogin_users_unverified_idx` ON `securelogin_users` (`id`) WHERE "securelogin_users"."phone_verified_at" is null;--> statement-breakpoint
CREATE INDEX `securelogin_users_deleted_idx` ON `securelogin_users` (`id`) WHERE "securelogin_users"."status" = 'deleted';--> statement-breakpoint
ALTER TABLE `securelogin_sessions` ADD `user_agent` text;--> statement-breakpoint
ALTER TABLE `securelogin_sessions` ADD `ip` text;