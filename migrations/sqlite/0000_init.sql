CREATE TABLE `securelogin_otp_challenges` (
	`phone` text PRIMARY KEY NOT NULL,
	`challenge_id` text NOT NULL,
	`code_hash` text,
	`attempts` integer DEFAULT 0 NOT NULL,
	`sent_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`consumed_at` integer
);
--> statement-breakpoint
CREATE INDEX `securelogin_otp_challenges_expires_at_idx` ON `securelogin_otp_challenges` (`expires_at`);--> statement-breakpoint
CREATE TABLE `securelogin_rate_limits` (
	`key` text PRIMARY KEY NOT NULL,
	`window_start` integer NOT NULL,
	`count` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `securelogin_rate_limits_window_start_idx` ON `securelogin_rate_limits` (`window_start`);--> statement-breakpoint
CREATE TABLE `securelogin_sessions` (
	`id` text PRIMARY KEY NOT NULL,
	`user_id` text NOT NULL,
	`generation` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL,
	`refreshed_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`revoked_at` integer,
	`revoked_reason` text,
	FOREIGN KEY (`user_id`) REFERENCES `securelogin_users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `securelogin_sessions_user_id_idx` ON `securelogin_sessions` (`user_id`);--> statement-breakpoint
CREATE INDEX `securelogin_sessions_revoked_at_idx` ON `securelogin_sessions` (`revoked_at`);--> statement-breakpoint
CREATE INDEX `securelogin_sessions_expires_at_idx` ON `securelogin_sessions` (`expires_at`);--> statement-breakpoint
CREATE TABLE `securelogin_users` (
	`id` text PRIMARY KEY NOT NULL,
	`phone` text NOT NULL,
	`username` text,
	`auth_type` text DEFAULT 'PHONE' NOT NULL,
	`status` text DEFAULT 'active' NOT NULL,
	`phone_verified_at` integer,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `securelogin_users_phone_key` ON `securelogin_users` (`phone`);