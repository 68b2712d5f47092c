import { sql } from 'drizzle-orm'
import { pgTable, text, integer, bigint, uuid, timestamp, index, uniqueIndex, primaryKey } from 'drizzle-orm/pg-core'

// Column keys and JS types match lib/db/sqlite.ts exactly: the store is written once for both.
const at = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' })

/**
 * Accounts. A phone account is its number (E.164); a password account (`password` option) is its
 * email, and may add a number. A deleted account stays as a row without number or name until its
 * ended sessions are purged, so that every instance learns its tokens ended.
 */
export const users = pgTable('securelogin_users', {
  id: uuid('id').primaryKey(),
  phone: text('phone'),
  email: text('email'),
  passwordHash: text('password_hash'),
  username: text('username'),
  authType: text('auth_type').notNull().default('PHONE'),
  status: text('status').notNull().default('active'),
  phoneVerifiedAt: at('phone_verified_at'),
  createdAt: at('created_at').notNull(),
}, (t) => [
  uniqueIndex('securelogin_users_phone_key').on(t.phone),
  uniqueIndex('securelogin_users_email_key').on(t.email),
  // The purge's two walks through accounts, each over the few rows it is about, not the whole table.
  index('securelogin_users_unverified_idx').on(t.id).where(sql`${t.phoneVerifiedAt} is null`),
  index('securelogin_users_deleted_idx').on(t.id).where(sql`${t.status} = 'deleted'`),
])

/** The open one-time-code challenge of each phone number; a new code replaces the row's content. */
export const otpChallenges = pgTable('securelogin_otp_challenges', {
  phone: text('phone').primaryKey(),
  challengeId: uuid('challenge_id').notNull(),
  codeHash: text('code_hash'),
  attempts: integer('attempts').notNull().default(0),
  sentAt: at('sent_at').notNull(),
  expiresAt: at('expires_at').notNull(),
  consumedAt: at('consumed_at'),
}, (t) => [index('securelogin_otp_challenges_expires_at_idx').on(t.expiresAt)])

/** One row per signed-in device; `generation` numbers the refresh token currently valid. */
export const sessions = pgTable('securelogin_sessions', {
  id: uuid('id').primaryKey(),
  userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  generation: integer('generation').notNull().default(0),
  createdAt: at('created_at').notNull(),
  refreshedAt: at('refreshed_at').notNull(),
  expiresAt: at('expires_at').notNull(),
  revokedAt: at('revoked_at'),
  revokedReason: text('revoked_reason'),
  // The device, for the user's list of sessions: as last seen, at sign-in and at each refresh.
  userAgent: text('user_agent'),
  ip: text('ip'),
}, (t) => [
  index('securelogin_sessions_user_id_idx').on(t.userId),
  index('securelogin_sessions_revoked_at_idx').on(t.revokedAt),
  index('securelogin_sessions_expires_at_idx').on(t.expiresAt),
])

/** Fixed-window counters shared by every instance of the app. */
export const rateLimits = pgTable('securelogin_rate_limits', {
  key: text('key').primaryKey(),
  windowStart: at('window_start').notNull(),
  count: integer('count').notNull(),
}, (t) => [index('securelogin_rate_limits_window_start_idx').on(t.windowStart)])

/**
 * How many accounts each number has had that are gone from it (deleted, or moved to another
 * number): a new account's id is derived from the number and this count, so that an id never
 * passes to the next holder of a recycled number. Keyed by a keyed hash of the number: a deleted
 * account's number is not kept.
 */
export const phoneHistory = pgTable('securelogin_phone_history', {
  phoneKey: text('phone_key').primaryKey(),
  endedAccounts: integer('ended_accounts').notNull(),
})

/**
 * Every revocation of a session, written by triggers on `securelogin_sessions` (its `revoked_at` set)
 * (migrations/postgres/0002) with the id of the transaction that revoked it, so that each
 * instance's revocation list reads only what is new since its last read. Transactions commit out
 * of the order of their ids, so a read does not resume after the highest id it saw but from the
 * oldest transaction still running when it read (`txid_snapshot_xmin`): every revocation it could
 * not see has an id at least that.
 */
export const revocations = pgTable('securelogin_revocations', {
  seq: bigint('txid', { mode: 'number' }).notNull().default(sql`txid_current()`),
  sessionId: uuid('session_id').notNull(),
  revokedAt: at('revoked_at').notNull(),
}, (t) => [
  // A primary key, so that a table in a logical-replication publication (FOR ALL TABLES) still
  // takes the purge's DELETE; it is also the index of reads by position.
  primaryKey({ name: 'securelogin_revocations_pkey', columns: [t.seq, t.sessionId] }),
  index('securelogin_revocations_revoked_at_idx').on(t.revokedAt),
])

export const tables = { users, otpChallenges, sessions, rateLimits, phoneHistory, revocations }
