import { sqliteTable, text, integer, index, uniqueIndex } from 'drizzle-orm/sqlite-core'

// Column keys and JS types match lib/db/postgres.ts exactly: the store is written once for both.
// Table names carry a prefix so they can live inside an app's own schema next to its `users`.

/** Accounts: the phone number (E.164) is the account. */
export const users = sqliteTable('securelogin_users', {
  id: text('id').primaryKey(),
  phone: text('phone').notNull(),
  username: text('username'),
  authType: text('auth_type').notNull().default('PHONE'),
  status: text('status').notNull().default('active'),
  phoneVerifiedAt: integer('phone_verified_at', { mode: 'timestamp_ms' }),
  createdAt: integer('created_at', { mode: 'timestamp_ms' }).notNull(),
}, (t) => [uniqueIndex('securelogin_users_phone_key').on(t.phone)])

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

export const tables = { users, otpChallenges, sessions, rateLimits }
