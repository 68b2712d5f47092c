CREATE TABLE "securelogin_revocations" (
	"txid" bigint DEFAULT txid_current() NOT NULL,
	"session_id" uuid NOT NULL,
	"revoked_at" timestamp with time zone NOT NULL,
	CONSTRAINT "securelogin_revocations_pkey" PRIMARY KEY("txid","session_id")
);
--> statement-breakpoint
CREATE INDEX "securelogin_revocations_revoked_at_idx" ON "securelogin_revocations" USING btree ("revoked_at");--> statement-breakpoint
-- Written by hand: drizzle-kit does not model triggers. SECURITY DEFINER: a role that may revoke a
-- session needs no rights on the log (an instance of the previous version keeps working with its
-- grants). The log is the one in the sessions table's own schema, whatever the revoking
-- connection's search_path, which is pinned so that nothing on it can stand in for what the
-- function calls.
CREATE FUNCTION "securelogin_log_revocation"() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
  SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- A conflict is the same session revoked again by the transaction that logged it (after setting
  -- revoked_at back to NULL): no other transaction saw it live in between, one row is enough.
  EXECUTE format('INSERT INTO %I.securelogin_revocations (session_id, revoked_at) VALUES ($1, $2) ON CONFLICT DO NOTHING', TG_TABLE_SCHEMA)
    USING NEW."id", NEW."revoked_at";
  RETURN NULL;
END
$$;--> statement-breakpoint
-- Revoked by an UPDATE, or written already revoked (an INSERT). The triggers come before the copy
-- of the sessions already revoked: creating them waits for revocations in progress and holds off
-- new ones until this migration commits, so every revocation is either copied here or logged.
CREATE TRIGGER "securelogin_sessions_revoked" AFTER UPDATE OF "revoked_at" ON "securelogin_sessions"
  FOR EACH ROW WHEN (OLD."revoked_at" IS NULL AND NEW."revoked_at" IS NOT NULL)
  EXECUTE PROCEDURE "securelogin_log_revocation"();--> statement-breakpoint
CREATE TRIGGER "securelogin_sessions_inserted_revoked" AFTER INSERT ON "securelogin_sessions"
  FOR EACH ROW WHEN (NEW."revoked_at" IS NOT NULL)
  EXECUTE PROCEDURE "securelogin_log_revocation"();--> statement-breakpoint
INSERT INTO "securelogin_revocations" ("session_id", "revoked_at")
  SELECT "id", "revoked_at" FROM "securelogin_sessions" WHERE "revoked_at" IS NOT NULL;
