CREATE TABLE "securelogin_revocations" (
	"txid" bigint DEFAULT txid_current() NOT NULL,
	"session_id" uuid NOT NULL,
	"revoked_at" timestamp with time zone NOT NULL,
	CONSTRAINT "securelogin_revocations_pkey" PRIMARY KEY("txid","session_id")
);
--> statement-breakpoint
CREATE INDEX "securelogin_revocations_revoked_at_idx" ON "securelogin_revocations" USING btree ("revoked_at");--> statement-breakpoint
-- Written by hand: drizzle-kit does not model triggers. The trigger comes before the copy of the
-- sessions already revoked: creating it waits for revocations in progress and holds off new ones
-- until this migration commits, so every revocation is either copied here or logged by it.
CREATE FUNCTION "securelogin_log_revocation"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- A conflict is the same session revoked again by the transaction that logged it (after setting
  -- revoked_at back to NULL): no other transaction saw it live in between, one row is enough.
  INSERT INTO "securelogin_revocations" ("session_id", "revoked_at") VALUES (NEW."id", NEW."revoked_at")
    ON CONFLICT DO NOTHING;
  RETURN NULL;
END
$$;--> statement-breakpoint
CREATE TRIGGER "securelogin_sessions_revoked" AFTER UPDATE OF "revoked_at" ON "securelogin_sessions"
  FOR EACH ROW WHEN (OLD."revoked_at" IS NULL AND NEW."revoked_at" IS NOT NULL)
  EXECUTE PROCEDURE "securelogin_log_revocation"();--> statement-breakpoint
INSERT INTO "securelogin_revocations" ("session_id", "revoked_at")
  SELECT "id", "revoked_at" FROM "securelogin_sessions" WHERE "revoked_at" IS NOT NULL;
