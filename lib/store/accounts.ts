import { and, desc, eq, gt, isNull, ne, notExists, sql } from 'drizzle-orm'
import type { PgDatabase } from 'drizzle-orm/pg-core'
import type * as postgresTables from '../db/postgres.js'
import { AccountInactiveError } from '../errors.js'
import { atomically } from './atomic.js'

type Tables = typeof postgresTables.tables
type Db = PgDatabase<any, any, any>
type User = typeof postgresTables.users.$inferSelect
type Session = typeof postgresTables.sessions.$inferSelect

/** A session to open: its id, end and device. */
export interface NewSession { id: string, expiresAt: Date, userAgent: string | null, ip: string | null }

/** A change of number that cannot happen: thrown inside its transaction so that nothing of it stays. */
class ChangeRefused extends Error {
  constructor (readonly outcome: 'taken' | 'moved' | 'revoked') {
    super(outcome)
  }
}

/** What a deleted account keeps until its ended sessions are purged: its id and nothing personal. */
export const DELETED = 'deleted'

/**
 * The store's account lifecycle: reading and renaming an account, the sessions a user sees and
 * ends, disabling, deleting and moving an account to another number. Every change that ends
 * sessions returns their ids, for this instance's revocation list (others read them from the table).
 */
export function createAccountStore (database: unknown, t: Tables, dialect: 'sqlite' | 'postgres') {
  const db = database as Db
  const { users, sessions, otpChallenges, phoneHistory } = t

  const endSessionsOf = (tx: Db, userId: string, reason: string, now: Date, keepId?: string) => tx.update(sessions)
    .set({ revokedAt: now, revokedReason: reason })
    .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt), keepId === undefined ? undefined : ne(sessions.id, keepId)))
    .returning({ id: sessions.id })

  /** One more account gone from the number of `phoneKey`: the next one there gets a new id. */
  const countEndedAccount = (tx: Db, phoneKey: string) => tx.insert(phoneHistory).values({ phoneKey, endedAccounts: 1 })
    .onConflictDoUpdate({ target: phoneHistory.phoneKey, set: { endedAccounts: sql`${phoneHistory.endedAccounts} + 1` } })
    .returning({ endedAccounts: phoneHistory.endedAccounts })

  const ids = (rows: Array<{ id: string }>) => rows.map((row) => row.id)

  return {
    /** The account with this id; a deleted one is not found. */
    async findUserById (id: string): Promise<User | undefined> {
      const rows = await db.select().from(users).where(and(eq(users.id, id), ne(users.status, DELETED))).limit(1)
      return rows[0]
    },

    /** Takes back an account registered an instant ago under an id that turned out stale (see registerAccount). */
    async deleteNewAccount (id: string): Promise<void> {
      await db.delete(users).where(and(eq(users.id, id), isNull(users.phoneVerifiedAt)))
    },

    async setUsername (id: string, username: string | null): Promise<User | undefined> {
      const rows = await db.update(users).set({ username }).where(and(eq(users.id, id), ne(users.status, DELETED))).returning()
      return rows[0]
    },

    /** The user's live sessions (not ended, expired or idle since `idleSince`), newest first. */
    async liveSessionsOf (userId: string, now: Date, idleSince: Date, limit: number): Promise<Session[]> {
      return db.select().from(sessions)
        .where(and(eq(sessions.userId, userId), isNull(sessions.revokedAt), gt(sessions.expiresAt, now), gt(sessions.refreshedAt, idleSince)))
        .orderBy(desc(sessions.createdAt), desc(sessions.id))
        .limit(limit)
    },

    /**
     * Ends every live session of the user (but `keepId`); returns the ids ended. On PostgreSQL the
     * account's row is read FOR SHARE first: a change of number or password in progress (each
     * updates that row before its sessions) commits before the sessions are read, so a session it
     * opens is ended too, or it waits for this and then finds its own session ended. Nor does this
     * hold a session row such a change waits for, which could deadlock.
     */
    async endSessions (userId: string, reason: string, now: Date, keepId?: string): Promise<string[]> {
      return atomically(db, function * (tx) {
        if (dialect === 'postgres') yield tx.select({ id: users.id }).from(users).where(eq(users.id, userId)).for('share')
        return ids(yield endSessionsOf(tx, userId, reason, now, keepId))
      })
    },

    /**
     * Sets the account's status; any status but 'active' ends every session in the same
     * transaction. Undefined when there is no such account.
     */
    async setStatus (userId: string, status: string, now: Date): Promise<string[] | undefined> {
      return atomically(db, function * (tx) {
        const updated: unknown[] = yield tx.update(users).set({ status }).where(and(eq(users.id, userId), ne(users.status, DELETED))).returning({ id: users.id })
        if (updated.length === 0) return undefined
        return status === 'active' ? [] : ids(yield endSessionsOf(tx, userId, 'account_disabled', now))
      })
    },

    /**
     * Deletes the account: its number, email, name and password go at once, its sessions end
     * (recorded, so every instance refuses their tokens), the number's open code goes, and the
     * number counts one more ended account. The row itself, now without anything personal, is
     * purged with its ended sessions. Undefined when there is no such account, or its number is
     * no longer `phone` (it changed meanwhile: read it again).
     */
    async deleteAccount (args: { userId: string, phone: string | null, phoneKey: string | undefined, now: Date }): Promise<string[] | undefined> {
      const { userId, phone, phoneKey, now } = args
      return atomically(db, function * (tx) {
        const deleted: unknown[] = yield tx.update(users)
          .set({ status: DELETED, phone: null, email: null, passwordHash: null, username: null })
          .where(and(eq(users.id, userId), ne(users.status, DELETED), phone === null ? isNull(users.phone) : eq(users.phone, phone)))
          .returning({ id: users.id })
        if (deleted.length === 0) return undefined
        if (phone !== null && phoneKey !== undefined) {
          yield countEndedAccount(tx, phoneKey)
          yield tx.delete(otpChallenges).where(eq(otpChallenges.phone, phone)).returning({ phone: otpChallenges.phone })
        }
        return ids(yield endSessionsOf(tx, userId, 'account_deleted', now))
      })
    },

    /**
     * Moves the account from `oldPhone` to `newPhone`, proven by the code of challenge
     * `challengeId` of the new number, which this uses up; the old number counts one more ended
     * account, every session of the account ends and a new one opens (`session`). An account that
     * never proved the new number (and so has no session) does not hold it: it is deleted, and the
     * number counts it as ended. All or nothing. 'code-used' when the code was used or replaced
     * meanwhile, 'taken' when the new number has a proven account, 'moved' when the account's
     * number is no longer `oldPhone` (or it was deleted), 'revoked' when `callerSid`, the session
     * asking, has ended (on another instance, its access token still passes until that instance
     * learns it); AccountInactiveError when it is disabled.
     */
    async changePhone (args: { userId: string, callerSid: string, oldPhone: string | null, oldPhoneKey: string | undefined, newPhone: string, newPhoneKey: string, challengeId: string, session: NewSession, now: Date }): Promise<{ session: Session, ended: string[] } | 'code-used' | 'taken' | 'moved' | 'revoked'> {
      const { userId, callerSid, oldPhone, oldPhoneKey, newPhone, newPhoneKey, challengeId, session, now } = args
      try {
        return await atomically(db, steps)
      } catch (error) {
        if (error instanceof ChangeRefused) return error.outcome
        throw error
      }
      function * steps (tx: Db): Generator<any, { session: Session, ended: string[] } | 'code-used', any[]> {
        const consumed: unknown[] = yield tx.update(otpChallenges).set({ consumedAt: now })
          .where(and(eq(otpChallenges.phone, newPhone), eq(otpChallenges.challengeId, challengeId), isNull(otpChallenges.consumedAt)))
          .returning({ phone: otpChallenges.phone })
        if (consumed.length === 0) return 'code-used'
        const squatter: unknown[] = yield tx.delete(users)
          .where(and(eq(users.phone, newPhone), isNull(users.phoneVerifiedAt), notExists(tx.select({ id: sessions.id }).from(sessions).where(eq(sessions.userId, users.id)))))
          .returning({ id: users.id })
        if (squatter.length > 0) yield countEndedAccount(tx, newPhoneKey)
        const holder: unknown[] = yield tx.select({ id: users.id }).from(users).where(eq(users.phone, newPhone)).limit(1)
        // Thrown, not returned (as 'moved' below): the transaction is undone, the code stays unused.
        if (holder.length > 0) throw new ChangeRefused('taken')
        const moved: Array<{ status: string }> = yield tx.update(users).set({ phone: newPhone, phoneVerifiedAt: now })
          .where(and(eq(users.id, userId), ne(users.status, DELETED), oldPhone === null ? isNull(users.phone) : eq(users.phone, oldPhone)))
          .returning({ status: users.status })
        if (moved.length === 0) throw new ChangeRefused('moved')
        // Disabled meanwhile (this account's row is locked now, so no later disable can slip in
        // before the sessions below are ended or opened): throwing undoes the move and the code.
        if (moved[0]?.status !== 'active') throw new AccountInactiveError()
        if (oldPhoneKey !== undefined) yield countEndedAccount(tx, oldPhoneKey)
        const ended = ids(yield endSessionsOf(tx, userId, 'phone_changed', now))
        // The asking session must be among those this ends: one ended before (a revocation the
        // caller's instance has not learned yet, or one racing this) proves nothing, and must not
        // become a new session. On PostgreSQL the UPDATE above waits for a revocation in progress
        // and then skips its row; throwing undoes the move and the code.
        if (!ended.includes(callerSid)) throw new ChangeRefused('revoked')
        const opened: Session[] = yield tx.insert(sessions).values({
          id: session.id, userId, generation: 0, createdAt: now, refreshedAt: now, expiresAt: session.expiresAt, userAgent: session.userAgent, ip: session.ip,
        }).returning()
        return { session: opened[0] as Session, ended }
      }
    },
  }
}
