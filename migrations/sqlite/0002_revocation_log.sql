CREATE TABLE `securelogin_revocations` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`session_id` text NOT NULL,
	`revoked_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `securelogin_revocations_revoked_at_idx` ON `securelogin_revocations` (`revoked_at`);--> statement-breakpoint
-- Written by hand: drizzle-kit does not model triggers. A migration that rebuilds
-- securelogin_sessions drops these triggers with the old table and must create them again.
CREATE TRIGGER `securelogin_sessions_revoked` AFTER UPDATE OF `revoked_at` ON `securelogin_sessions`
  FOR EACH ROW WHEN OLD.`revoked_at` IS NULL AND NEW.`revoked_at` IS NOT NULL
BEGIN
  INSERT INTO `securelogin_revocations` (`session_id`, `revoked_at`) VALUES (NEW.`id`, NEW.`revoked_at`);
END;--> statement-breakpoint
-- A session written already revoked (an INSERT, or REPLACE: a DELETE and an INSERT) is logged too.
CREATE TRIGGER `securelogin_sessions_inserted_revoked` AFTER INSERT ON `securelogin_sessions`
  FOR EACH ROW WHEN NEW.`revoked_at` IS NOT NULL
BEGIN
  INSERT INTO `securelogin_revocations` (`session_id`, `revoked_at`) VALUES (NEW.`id`, NEW.`revoked_at`);
END;--> statement-breakpoint
-- `> 0` rather than IS NOT NULL, which SQLite's planner would answer with a scan of every session:
-- through the index on revoked_at, only the revoked ones are read.
INSERT INTO `securelogin_revocations` (`session_id`, `revoked_at`)
  SELECT `id`, `revoked_at` FROM `securelogin_sessions` WHERE `revoked_at` > 0;
