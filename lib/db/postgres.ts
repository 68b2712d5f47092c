import { pgTable, text, integer, uuid, timestamp, index, uniqueIndex } from 'drizzle-orm/pg-core'

// Column keys and JS types match lib/db/sqlite.ts exactly: the store is written once for both.
const at = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' })

/** Accounts: the phone number (E.164) is the account. */
export const users = pgTable('securelogin_users', {
  id: uuid('id').primaryKey(),
  phone: text('phone').notNull(),
  username: text('username'),
  authType: text('auth_type').notNull().default('PHONE'),
  status: text('status').notNull().default('active'),
  phoneVerifiedAt: at('phone_verified_at'),
  createdAt: at('created_at').notNull(),
}, (t) => [uniqueIndex('securelogin_users_phone_key').on(t.phone)])

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

export const tables = { users, otpChallenges, sessions, rateLimits }
