import { and, eq, isNull, ne, sql } from 'drizzle-orm'
import type { PgDatabase } from 'drizzle-orm/pg-core'
import type * as postgresTables from '../db/postgres.js'
import { SessionRevokedError } from '../errors.js'
import { DELETED, type NewSession } from './accounts.js'
import { atomically } from './atomic.js'

type Tables = typeof postgresTables.tables
type Db = PgDatabase<any, any, any>
type User = typeof postgresTables.users.$inferSelect
type Session = typeof postgresTables.sessions.$inferSelect

/**
 * The store's email-and-password accounts. A session opens, and a password changes, only on
 * condition that the account's password hash is still the one the caller checked: a sign-in
 * with a password that has just been changed opens nothing, and a change ends every session
 * opened with the old password before it.
 */
export function createPasswordStore (database: unknown, t: Tables, dialect: 'sqlite' | 'postgres') {
  const db = database as Db
  const { users, sessions } = t

  /** The account, if still active with this password hash; on PostgreSQL its row is share-locked until the transaction ends. */
  const activeWithHash = (tx: Db, userId: string, passwordHash: string) => {
    const query = tx.select({ id: users.id }).from(users).where(and(eq(users.id, userId), eq(users.status, 'active'), eq(users.passwordHash, passwordHash))).limit(1)
    return dialect === 'postgres' ? query.for('share') : query
  }

  return {
    /** The account whose email is `email` (as normalizeEmail returns it). */
    async findUserByEmail (email: string): Promise<User | undefined> {
      const rows = await db.select().from(users).where(and(eq(users.email, email), ne(users.status, DELETED))).limit(1)
      return rows[0]
    },

    /** Creates an email-and-password account; undefined when the email has an account already. */
    async insertPasswordUser (args: { id: string, email: string, passwordHash: string, username: string | undefined, now: Date }): Promise<User | undefined> {
      const { id, email, passwordHash, username, now } = args
      const rows = await db.insert(users)
        .values({ id, email, passwordHash, username: username ?? null, authType: 'PASSWORD', createdAt: now })
        .onConflictDoNothing({ target: users.email })
        .returning()
      return rows[0]
    },

    /**
     * Opens a session of the account, on condition that it is active and its password hash is
     * still `passwordHash`. On PostgreSQL the account row stays share-locked until the session is
     * in, so a password change or a disable waits for it and then ends it too.
     */
    async openPasswordSession (args: { userId: string, passwordHash: string, session: NewSession, now: Date }): Promise<Session | undefined> {
      const { userId, passwordHash, session, now } = args
      return atomically(db, function * (tx) {
        const account: unknown[] = yield activeWithHash(tx, userId, passwordHash)
        if (account.length === 0) return undefined
        const opened: Session[] = yield tx.insert(sessions).values({
          id: session.id, userId, generation: 0, createdAt: now, refreshedAt: now, expiresAt: session.expiresAt, userAgent: session.userAgent, ip: session.ip,
        }).returning()
        return opened[0]
      })
    },

    /** Replaces the hash `from` by `to` (a re-hash with today's parameters); false when it changed meanwhile. */
    async replacePasswordHash (userId: string, from: string, to: string): Promise<boolean> {
      const rows = await db.update(users).set({ passwordHash: to })
        .where(and(eq(users.id, userId), eq(users.passwordHash, from)))
        .returning({ id: users.id })
      return rows.length === 1
    },

    /**
     * Sets the account's password (and its email, when it gets its first password) on condition
     * that its hash is still `from` (null: it has none), and ends every other session of the
     * account in the same transaction. Returns the ids of the sessions ended, or undefined when
     * the account is not active or its password changed meanwhile. A taken email throws the
     * unique index's error; SessionRevokedError when `keepSid`, the session asking, has ended.
     */
    async setPassword (args: { userId: string, from: string | null, to: string, email: string | undefined, keepSid: string, now: Date }): Promise<string[] | undefined> {
      const { userId, from, to, email, keepSid, now } = args
      return atomically(db, function * (tx) {
        const changed: unknown[] = yield tx.update(users)
          .set(email === undefined ? { passwordHash: to } : { passwordHash: to, email })
          .where(and(eq(users.id, userId), eq(users.status, 'active'), from === null ? isNull(users.passwordHash) : eq(users.passwordHash, from)))
          .returning({ id: users.id })
        if (changed.length === 0) return undefined
        const ended: Array<{ id: string }> = yield tx.update(sessions)
          .set({ revokedAt: now, revokedReason: 'password_changed' })
          .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt), ne(sessions.id, keepSid)))
          .returning({ id: sessions.id })
        // The asking session must still be live: one ended before, on an instance whose access
        // tokens still pass until it learns it, must not leave a password behind. Its row is locked
        // after the account's, as changePhone locks them, and the paths that end sessions read the
        // account's row first (endSessions), so none waits on it in the other order. Throwing
        // undoes the change.
        const asking: unknown[] = yield tx.update(sessions).set({ refreshedAt: sql`${sessions.refreshedAt}` })
          .where(and(eq(sessions.id, keepSid), eq(sessions.userId, userId), isNull(sessions.revokedAt)))
          .returning({ id: sessions.id })
        if (asking.length === 0) throw new SessionRevokedError()
        return ended.map((row) => row.id)
      })
    },
  }
}
