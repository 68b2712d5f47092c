import { sql } from 'drizzle-orm'
import { sqliteTable, text, integer, index, uniqueIndex } from 'drizzle-orm/sqlite-core'

// Column keys and JS types match lib/db/postgres.ts exactly: the store is written once for both.
// Table names carry a prefix so they can live inside an app's own schema next to its `users`.

/**
 * Accounts. A phone account is its number (E.164); a password account (`password` option) is its
 * email, and may add a number. A deleted account stays as a row without number or name until its
 * ended sessions are purged, so that every instance learns its tokens ended.
 */
export const users = sqliteTable('securelogin_users', {
  id: text('id').primaryKey(),
  phone: text('phone'),
  email: text('email'),
  passwordHash: text('password_hash'),
  username: text('username'),
  authType: text('auth_type').notNull().default('PHONE'),
  status: text('status').notNull().default('active'),
  phoneVerifiedAt: integer('phone_verified_at', { mode: 'timestamp_ms' }),
  createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
}, (t) => [
  uniqueIndex('securelogin_users_phone_key').on(t.phone),
  uniqueIndex('securelogin_users_email_key').on(t.email),
  // The purge's two walks through accounts, each over the few rows it is about, not the whole table.
  index('securelogin_users_unverified_idx').on(t.id).where(sql`${t.phoneVerifiedAt} is null`),
  index('securelogin_users_deleted_idx').on(t.id).where(sql`${t.status} = 'deleted'`),
])

/** The open one-time-code challenge of each phone number; a new code replaces the row's content. */
export const otpChallenges = sqliteTable('securelogin_otp_challenges', {
  phone: text('phone').primaryKey(),
  challengeId: text('challenge_id').notNull(),
  codeHash: text('code_hash'),
  attempts: integer('attempts').notNull().default(0),
  sentAt: integer('sent_at', { mode: 'timestamp_ms' }).notNull(),
  expiresAt: integer('expires_at', { mode: 'timestamp_ms' }).notNull(),
  consumedAt: integer('consumed_at', { mode: 'timestamp_ms' }),
}, (t) => [index('securelogin_otp_challenges_expires_at_idx').on(t.expiresAt)])

/** One row per signed-in device; `generation` numbers the refresh token currently valid. */
export const sessions = sqliteTable('securelogin_sessions', {
  id: text('id').primaryKey(),
  userId: text('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  generation: integer('generation').notNull().default(0),
  createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
  refreshedAt: integer('refreshed_at', { mode: 'timestamp_ms' }).notNull(),
  expiresAt: integer('expires_at', { mode: 'timestamp_ms' }).notNull(),
  revokedAt: integer('revoked_at', { mode: 'timestamp_ms' }),
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
export const rateLimits = sqliteTable('securelogin_rate_limits', {
  key: text('key').primaryKey(),
  windowStart: integer('window_start', { mode: 'timestamp_ms' }).notNull(),
  count: integer('count').notNull(),
}, (t) => [index('securelogin_rate_limits_window_start_idx').on(t.windowStart)])

/**
 * How many accounts each number has had that are gone from it (deleted, or moved to another
 * number): a new account's id is derived from the number and this count, so that an id never
 * passes to the next holder of a recycled number. Keyed by a keyed hash of the number: a deleted
 * account's number is not kept.
 */
export const phoneHistory = sqliteTable('securelogin_phone_history', {
  phoneKey: text('phone_key').primaryKey(),
  endedAccounts: integer('ended_accounts').notNull(),
})

/**
 * Every revocation of a session, in the order of their commits, written by triggers on
 * `securelogin_sessions` (migrations/sqlite/0002), so that each instance's revocation
 * list reads only what is new since its last read (`seq` after the last it saw). AUTOINCREMENT: a
 * `seq` is never given twice, even after the purge has deleted the newest rows, and writers take
 * turns on SQLite, so a row written after a read always has a higher `seq` than that read saw.
 */
export const revocations = sqliteTable('securelogin_revocations', {
  seq: integer('seq').primaryKey({ autoIncrement: true }),
  sessionId: text('session_id').notNull(),
  revokedAt: integer('revoked_at', { mode: 'timestamp_ms' }).notNull(),
}, (t) => [index('securelogin_revocations_revoked_at_idx').on(t.revokedAt)])

export const tables = { users, otpChallenges, sessions, rateLimits, phoneHistory, revocations }
