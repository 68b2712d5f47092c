import { createHash, randomUUID } from 'node:crypto'
import { and, eq, gt, gte, inArray, isNotNull, isNull, lt, lte, ne, notExists, or, sql, type SQL } from 'drizzle-orm'
import type { PgDatabase } from 'drizzle-orm/pg-core'
import * as postgresTables from '../db/postgres.js'
import * as sqliteTables from '../db/sqlite.js'
import type { SecureLoginDatabase } from '../options.js'
import { isForeignKeyViolation } from '../db/faults.js'
import { createAccountStore, DELETED } from './accounts.js'
import { createPasswordStore } from './passwords.js'
import { createUnitOfWork, type UnitOfWorkMisuse } from './unit-of-work.js'

// Both dialects' tables have the same column keys and JS types, and Drizzle's query builders build
// dialect-specific SQL at run time, so the store is written once against the PostgreSQL types.
// Every write that must happen once (consume a code, rotate a token, revoke a session) is a single
// conditional UPDATE … RETURNING: atomic on both engines, and better-sqlite3 cannot run async
// transactions anyway.
type Tables = typeof postgresTables.tables
type Db = PgDatabase<any, any, any>

export type User = typeof postgresTables.users.$inferSelect
export type Session = typeof postgresTables.sessions.$inferSelect
export type OtpChallenge = typeof postgresTables.otpChallenges.$inferSelect

/** Rows one purge statement deletes at most. */
export const PURGE_BATCH = 1000

/** The hash of a code that can never be entered (see killChallenge). */
const DEAD_CODE_HASH = '-'

/**
 * LIMIT 1 written into the statement's text. Drizzle binds a number given to `.limit()` as a
 * parameter, and SQLite (3.53, better-sqlite3 12) ran a statement with a bound LIMIT 3 to 4 times
 * slower than the same statement with a literal one, apparently planning it again at every run
 * (docs/performance.md). Statements the store prepares once use this, or no LIMIT where a unique
 * key already allows one row at most; test/query-plans.test.ts checks that none binds its LIMIT.
 */
const LIMIT_ONE = sql.raw('1') as unknown as number

/** How the store prepares its statements on PostgreSQL (the `postgres` option). */
export interface StoreOptions { namedStatements?: boolean }

export function createStore (database: SecureLoginDatabase, dialect: 'sqlite' | 'postgres', unitMisuse?: UnitOfWorkMisuse, { namedStatements = false }: StoreOptions = {}) {
  const db = database as unknown as Db
  const t = (dialect === 'sqlite' ? sqliteTables.tables : postgresTables.tables) as unknown as Tables
  const { users, otpChallenges, sessions, rateLimits, phoneHistory, revocations } = t

  // The hot statements of sign-in, built and prepared once: building SQL with Drizzle and preparing
  // it (better-sqlite3) cost more CPU per call than running it. Placeholders go through the
  // column's encoder, so dates bind as on the unprepared path. Prepared on first use: better-sqlite3
  // prepares eagerly, and the tables may not exist yet. No statement names by default: the server
  // keeps a named statement per connection, which fails behind older transaction-pooling proxies
  // (PgBouncer before 1.21). With `postgres.namedStatements` the server parses and plans each once
  // per connection instead of on every call; the name is a hash of the text, so two versions of
  // this library sharing a pool never mean different statements by one name.
  const lazy = <T>(build: () => T) => { let value: T | undefined; return () => (value ??= build()) }
  const nameOf = (query: { toSQL: () => { sql: string } }): string =>
    (namedStatements && dialect === 'postgres' ? `securelogin_${createHash('sha256').update(query.toSQL().sql).digest('base64url').slice(0, 22)}` : undefined) as string
  const preparedOnce = <Q extends { toSQL: () => { sql: string }, prepare: (name: string) => unknown }>(build: () => Q) =>
    lazy(() => { const query = build(); return query.prepare(nameOf(query)) as ReturnType<Q['prepare']> })
  const p = sql.placeholder
  const expiredWindowOf = (floor: string) => sql`${rateLimits.windowStart} <= ${sql.param(p(floor), rateLimits.windowStart)}`
  const expiredWindow = expiredWindowOf('windowFloor')
  // A fixed-window counter's update: one more in the current window, or the first of a new one.
  const countInWindowOf = (expired: SQL) => ({
    count: sql`CASE WHEN ${expired} THEN 1 ELSE ${rateLimits.count} + 1 END`,
    windowStart: sql`CASE WHEN ${expired} THEN excluded.${sql.identifier('window_start')} ELSE ${rateLimits.windowStart} END`,
  })
  const countInWindow = countInWindowOf(expiredWindow)
  // PostgreSQL: a client's hit (see HitAt) counted in a WITH of the statement it guards, with its own
  // placeholders; `hit` answers the count and window start as hitRateLimit's upsert does.
  const hitValues = ({ key, windowMs, now }: HitAt) => ({ hitKey: key, hitWindowFloor: new Date(now.getTime() - windowMs), now })
  const hitFirst = () => db.$with('hit').as(db.insert(rateLimits).values({ key: p('hitKey'), windowStart: p('now'), count: 1 })
    .onConflictDoUpdate({ target: rateLimits.key, set: countInWindowOf(expiredWindowOf('hitWindowFloor')) })
    .returning({ count: rateLimits.count, windowStart: rateLimits.windowStart }))
  // PostgreSQL: the counters of takeRateLimitsAtOnce as its arrays. One statement cannot upsert a
  // row twice; the callers' keys are distinct (one per limit and rule window).
  const counterArrays = (counters: ReadonlyArray<{ key: string, windowMs: number, max: number }>, now: Date) => {
    if (new Set(counters.map(({ key }) => key)).size !== counters.length) throw new Error('fastify-securelogin: takeRateLimits: a counter appears twice')
    return {
      keys: counters.map(({ key }) => key),
      windowFloors: counters.map(({ windowMs }) => new Date(now.getTime() - windowMs).toISOString()),
      maxes: counters.map(({ max }) => String(max)),
    }
  }
  // takeRateLimit's placeholders for one counter.
  const takeValues = ({ key, windowMs, max }: { key: string, windowMs: number, max: number }, now: Date) => ({ key, now, windowFloor: new Date(now.getTime() - windowMs), max })
  // openChallenge's placeholders.
  const challengeValues = ({ phone, challengeId, codeHash, now, expiresAt, resendIntervalMs }: NewChallenge) => ({ phone, challengeId, codeHash, now, expiresAt, sentBefore: new Date(now.getTime() - resendIntervalMs) })
  // better-sqlite3: takes each counter in turn and answers the index of the first full one, or -1;
  // run inside allOrNothingSync, which undoes the takes when one was full.
  const takeAllSync = (counters: ReadonlyArray<{ key: string, windowMs: number, max: number }>, now: Date): number => {
    const take = prepared.takeRateLimit() as unknown as SyncStatement
    return counters.findIndex((counter) => take.all(takeValues(counter, now)).length === 0)
  }
  // better-sqlite3: runs `run` in a transaction of its own (a savepoint inside a unit of work),
  // rolled back when it throws. better-sqlite3's transaction function, made once: drizzle's
  // transaction() makes a new one, with its four variants, on every call.
  // Other synchronous drivers (sql.js) keep drizzle's.
  let nativeTransaction: ((run: () => void) => void) | undefined
  const inTransactionSync = (run: () => void): void => {
    nativeTransaction ??= nativeTransactionOf(database) ?? ((work) => { (database as unknown as SqliteDatabase).transaction(work) })
    nativeTransaction(run)
  }
  // better-sqlite3: `work` in one transaction (a savepoint inside a unit of work), rolled back when
  // the index of the full counter it answers is not -1.
  const allOrNothingSync = <T>(work: () => T, fullOf: (answer: T) => number): T => {
    let answer!: T
    try {
      inTransactionSync(() => {
        answer = work()
        if (fullOf(answer) !== -1) throw new RollBack()
      })
    } catch (error) {
      if (!(error instanceof RollBack)) throw error
    }
    return answer
  }
  // After takeRateLimitsAtOnce: -1 when every counter was taken; else the first full one, once the
  // hits taken are given back, each to the window it was counted in.
  const fullAfterTaking = async (counters: ReadonlyArray<{ key: string }>, taken: ReadonlyArray<{ key: string, windowStart: Date }>): Promise<number> => {
    if (taken.length === counters.length) return -1
    for (const hit of taken) await prepared.releaseRateLimit().execute(hit)
    return counters.findIndex(({ key }) => !taken.some((hit) => hit.key === key))
  }
  // A session opens only for an account still active when the code is used: disabling or deleting
  // it while a verify is on its way must not leave a live session behind. On PostgreSQL the account
  // row is locked (FOR SHARE) until the session is in, so setStatus and deleteAccount, which update
  // that row first, wait for it and then end the new session too, or make this find no active account.
  const activeAccount = (lock: SQL) => sql`exists (select 1 from ${users} where ${users.id} = ${p('userId')} and ${users.status} = 'active'${lock})`
  const accountActive = activeAccount(dialect === 'postgres' ? sql` for share` : sql``)
  // A refresh only checks: disabling and deleting end the account's sessions in the same
  // transaction, so this only guards against a session that got past them some other way.
  const accountStillActive = activeAccount(sql``)
  // One attempt at the open challenge of a number: counted before the code is compared.
  const attemptOf = () => db.update(otpChallenges)
    .set({ attempts: sql`${otpChallenges.attempts} + 1` })
    .where(and(eq(otpChallenges.phone, p('phone')), isNull(otpChallenges.consumedAt), gt(otpChallenges.expiresAt, sql.param(p('now'), otpChallenges.expiresAt)), lt(otpChallenges.attempts, p('maxAttempts'))))
  // Everything a send reads before it writes, in one statement: the number's challenge, its
  // account and ended accounts (as findAccountOf), and the counters its limits check, as a JSON
  // array of [key, count, window start in ms] (a text on SQLite, parsed by the driver elsewhere).
  const readBeforeSendOf = (afterHit: boolean) => {
    const counter = dialect === 'postgres'
      ? sql`json_build_array(${rateLimits.key}, ${rateLimits.count}, round(extract(epoch from ${rateLimits.windowStart}) * 1000))`
      : sql`json_array(${rateLimits.key}, ${rateLimits.count}, ${rateLimits.windowStart})`
    const counters = dialect === 'postgres'
      ? sql`(select coalesce(json_agg(${counter}), '[]'::json) from ${rateLimits} where ${rateLimits.key} = any(${p('keys')}))`
      : sql`(select json_group_array(${counter}) from ${rateLimits} where ${rateLimits.key} in (select value from json_each(${p('keys')})))`
    // Built only for PostgreSQL: a WITH of an INSERT needs drizzle-orm 0.39.
    const hit = afterHit ? hitFirst() : undefined
    return (hit === undefined ? db : db.with(hit))
      .select({ challenge: otpChallenges, user: users, endedAccounts: phoneHistory.endedAccounts, counters: sql<unknown>`${counters}`.as('counters'), hit: hit === undefined ? sql<null>`null` : { count: hit.count, windowStart: hit.windowStart } })
      // The hit answers exactly one row: the rest is read joined to it.
      .from(hit ?? sql`(select 1) as ${sql.identifier('one')}`)
      .leftJoin(otpChallenges, eq(otpChallenges.phone, p('phone')))
      .leftJoin(users, eq(users.phone, p('phone')))
      .leftJoin(phoneHistory, eq(phoneHistory.phoneKey, p('phoneKey')))
  }
  // The first free slot of `keys` (a JSON array on SQLite, a text[] on PostgreSQL), in their order,
  // taken with one statement: the read and the take of a sliding window's hit in one round trip.
  // A slot another request takes in between fails the upsert's own condition, and nothing is taken.
  // `hit`: only while the client's hit counted in the same statement (hitFirst) is within its max.
  const takeFirstFreeSlotOf = (hit?: ReturnType<typeof hitFirst>) => {
    const slot = sql.identifier('slot')
    const slots = dialect === 'postgres'
      ? sql`unnest(${p('keys')}::text[]) with ordinality as ${slot}(${sql.identifier('key')}, ${sql.identifier('position')})`
      : sql`json_each(${p('keys')}) as ${slot}`
    const slotKey = dialect === 'postgres' ? sql`${slot}.${sql.identifier('key')}` : sql`${slot}.${sql.identifier('value')}`
    const position = dialect === 'postgres' ? sql`${slot}.${sql.identifier('position')}` : sql`${slot}.${sql.identifier('key')}`
    const taken = sql`${sql.param(p('now'), rateLimits.windowStart)}`
    return db.insert(rateLimits).select(db.select({
      key: sql`${slotKey}`.as('key'),
      windowStart: (dialect === 'postgres' ? sql`${taken}::timestamptz` : taken).as('window_start'),
      count: sql`1`.as('count'),
    }).from(slots)
      .where(and(
        notExists(db.select({ key: rateLimits.key }).from(rateLimits).where(and(sql`${rateLimits.key} = ${slotKey}`, gt(rateLimits.windowStart, sql.param(p('windowFloor'), rateLimits.windowStart))))),
        hit === undefined ? undefined : sql`(select ${hit.count} from ${hit}) <= ${p('hitMax')}`,
      ))
      .orderBy(position).limit(LIMIT_ONE))
      .onConflictDoUpdate({
        target: rateLimits.key,
        set: { windowStart: sql`excluded.${sql.identifier('window_start')}`, count: 1 },
        setWhere: expiredWindow,
      })
      .returning({ key: rateLimits.key })
  }
  // A new challenge for the number, replacing its previous one unless that was sent less than the
  // resend interval ago (then nothing is written and nothing returned); with `onlyIf`, only a row
  // that also meets it.
  const openChallengeOf = (onlyIf?: SQL) => db.insert(otpChallenges)
    .values({ phone: p('phone'), challengeId: p('challengeId'), codeHash: p('codeHash'), attempts: 0, sentAt: p('now'), expiresAt: p('expiresAt'), consumedAt: null })
    .onConflictDoUpdate({
      target: otpChallenges.phone,
      set: {
        challengeId: sql`excluded.${sql.identifier('challenge_id')}`,
        codeHash: sql`excluded.${sql.identifier('code_hash')}`,
        attempts: 0,
        sentAt: sql`excluded.${sql.identifier('sent_at')}`,
        expiresAt: sql`excluded.${sql.identifier('expires_at')}`,
        consumedAt: null,
      },
      setWhere: and(lte(otpChallenges.sentAt, sql.param(p('sentBefore'), otpChallenges.sentAt)), onlyIf),
    })
  // PostgreSQL: takeRateLimit for several counters in one statement (one round trip), each
  // counter's window and limit read from its input row (`countersInput`). In key order, so that two
  // requests taking the same counters lock their rows in the same order and never deadlock.
  const column = (name: string) => sql.identifier(name)
  const countersInput = () => db.$with('input').as(db.select({
    key: sql<string>`${column('key')}`.as('key'),
    windowFloor: sql`${column('window_floor')}::timestamptz`.as('window_floor'),
    max: sql`${column('max')}::int`.as('max'),
    // Every array as text[]: postgres.js binds text[] alike whether or not it prepares.
  }).from(sql`unnest(${p('keys')}::text[], ${p('windowFloors')}::text[], ${p('maxes')}::text[]) as ${column('counter')}(${column('key')}, ${column('window_floor')}, ${column('max')})`))
  const takeCounters = (qb: { insert: Db['insert'] }, input: ReturnType<typeof countersInput>, onlyIf?: SQL) => {
    // ON CONFLICT sees only the row and `excluded`: its counter's window and limit come from the input by key.
    const ofInput = (name: string) => sql`(select ${column(name)} from ${column('input')} where ${column('input')}.${column('key')} = excluded.${column('key')})`
    const expired = sql`${rateLimits.windowStart} <= ${ofInput('window_floor')}`
    return qb.insert(rateLimits).select(db.select({
      key: input.key,
      windowStart: sql`${sql.param(p('now'), rateLimits.windowStart)}::timestamptz`.as('window_start'),
      count: sql`1`.as('count'),
    }).from(input).where(onlyIf).orderBy(input.key))
      .onConflictDoUpdate({
        target: rateLimits.key,
        set: {
          count: sql`CASE WHEN ${expired} THEN 1 ELSE ${rateLimits.count} + 1 END`,
          windowStart: sql`CASE WHEN ${expired} THEN excluded.${sql.identifier('window_start')} ELSE ${rateLimits.windowStart} END`,
        },
        setWhere: sql`${expired} OR ${rateLimits.count} < ${ofInput('max')}`,
      })
      .returning({ key: rateLimits.key, windowStart: rateLimits.windowStart })
  }
  const prepared = {
    findUserByPhone: preparedOnce(() => db.select().from(users).where(eq(users.phone, p('phone')))),
    // The account of a number and how many accounts the number has had before, in one statement:
    // a number with an account and one without cost the same.
    findAccountOf: preparedOnce(() => db.select({ user: users, endedAccounts: phoneHistory.endedAccounts })
      .from(sql`(select 1) as ${sql.identifier('one')}`)
      .leftJoin(users, eq(users.phone, p('phone')))
      .leftJoin(phoneHistory, eq(phoneHistory.phoneKey, p('phoneKey')))),
    findChallenge: preparedOnce(() => db.select().from(otpChallenges).where(eq(otpChallenges.phone, p('phone')))),
    readBeforeSend: preparedOnce(() => readBeforeSendOf(false)),
    // PostgreSQL: the client's hit counted in the same statement (one round trip fewer).
    readBeforeSendAfterHit: preparedOnce(() => readBeforeSendOf(true)),
    openChallenge: preparedOnce(() => openChallengeOf().returning()),
    // PostgreSQL: the challenge and, only when it opened, the sends it counts (takeRateLimitsAtOnce)
    // in one statement; `taken` answers the counters taken as [key, window start in ms].
    // `replaced` answers the challenge it replaced, as it was when replaced.
    openChallengeTaking: preparedOnce(() => {
      // FOR UPDATE: the row as it is now (READ COMMITTED waits for a write in progress and reads what
      // it committed, and skips a row deleted meanwhile), held until the upsert replaces it. The
      // upsert replaces only that row: not one another send inserted after this statement began.
      const previous = db.$with('previous').as(db.select().from(otpChallenges).where(eq(otpChallenges.phone, p('phone'))).for('update'))
      const opened = db.$with('opened').as(openChallengeOf(sql`exists (select 1 from ${previous} where ${previous.challengeId} = ${otpChallenges.challengeId})`).returning())
      const input = countersInput()
      const taken = db.$with('taken').as(takeCounters(db, input, sql`exists (select 1 from ${opened})`))
      return db.with(previous, opened, input, taken).select({
        challenge: {
          phone: opened.phone, challengeId: opened.challengeId, codeHash: opened.codeHash, attempts: opened.attempts, sentAt: opened.sentAt, expiresAt: opened.expiresAt, consumedAt: opened.consumedAt,
        },
        replaced: {
          phone: previous.phone, challengeId: previous.challengeId, codeHash: previous.codeHash, attempts: previous.attempts, sentAt: previous.sentAt, expiresAt: previous.expiresAt, consumedAt: previous.consumedAt,
        },
        taken: sql<Array<[string, number]>>`(select coalesce(json_agg(json_build_array(${taken.key}, round(extract(epoch from ${taken.windowStart}) * 1000))), '[]'::json) from ${taken})`.as('taken'),
      }).from(sql`(select 1) as ${sql.identifier('one')}`).leftJoin(opened, sql`true`).leftJoin(previous, sql`true`)
    }),
    recordAttempt: preparedOnce(() => attemptOf().returning()),
    // PostgreSQL: the attempt and the number's account (as findAccountOf) in one statement.
    recordAttemptAndFindAccount: preparedOnce(() => {
      const attempt = db.$with('attempt').as(attemptOf().returning())
      return db.with(attempt).select({
        challenge: {
          phone: attempt.phone, challengeId: attempt.challengeId, codeHash: attempt.codeHash, attempts: attempt.attempts, sentAt: attempt.sentAt, expiresAt: attempt.expiresAt, consumedAt: attempt.consumedAt,
        },
        user: users,
        endedAccounts: phoneHistory.endedAccounts,
      })
        .from(sql`(select 1) as ${sql.identifier('one')}`)
        .leftJoin(attempt, sql`true`)
        .leftJoin(users, eq(users.phone, p('phone')))
        .leftJoin(phoneHistory, eq(phoneHistory.phoneKey, p('phoneKey')))
    }),
    hitRateLimit: preparedOnce(() => db.insert(rateLimits).values({ key: p('key'), windowStart: p('now'), count: 1 })
      .onConflictDoUpdate({ target: rateLimits.key, set: countInWindow })
      .returning({ count: rateLimits.count, windowStart: rateLimits.windowStart })),
    // The same upsert, applied only while the window has room: a slot is taken atomically or not at all.
    takeRateLimit: preparedOnce(() => db.insert(rateLimits).values({ key: p('key'), windowStart: p('now'), count: 1 })
      .onConflictDoUpdate({
        target: rateLimits.key,
        set: countInWindow,
        setWhere: sql`${expiredWindow} OR ${rateLimits.count} < ${sql.param(p('max'), rateLimits.count)}`,
      })
      .returning({ count: rateLimits.count, windowStart: rateLimits.windowStart })),
    // One slot of a sliding window: free when it was last taken a window ago or more.
    takeSlidingSlot: preparedOnce(() => db.insert(rateLimits).values({ key: p('key'), windowStart: p('now'), count: 1 })
      .onConflictDoUpdate({
        target: rateLimits.key,
        set: { windowStart: sql`excluded.${sql.identifier('window_start')}`, count: 1 },
        setWhere: expiredWindow,
      })
      .returning({ count: rateLimits.count })),
    // Read by every registration (twice, or once and once with the client's hit).
    endedAccountsOf: preparedOnce(() => db.select({ endedAccounts: phoneHistory.endedAccounts }).from(phoneHistory).where(eq(phoneHistory.phoneKey, p('phoneKey')))),
    // PostgreSQL: the client's hit and the number's history (as endedAccountsOf) in one statement.
    endedAccountsAfterHit: preparedOnce(() => {
      const hit = hitFirst()
      return db.with(hit).select({ endedAccounts: phoneHistory.endedAccounts, hit: { count: hit.count, windowStart: hit.windowStart } })
        .from(hit).leftJoin(phoneHistory, eq(phoneHistory.phoneKey, p('phoneKey')))
    }),
    takeFirstFreeSlot: preparedOnce(() => takeFirstFreeSlotOf()),
    // PostgreSQL: the client's hit and the slot in one statement (one round trip fewer).
    takeFirstFreeSlotAfterHit: preparedOnce(() => {
      const hit = hitFirst()
      const slot = db.$with('slot').as(takeFirstFreeSlotOf(hit))
      return db.with(hit, slot).select({ hit: { count: hit.count, windowStart: hit.windowStart }, slot: sql<string | null>`(select ${slot.key} from ${slot})`.as('slot') }).from(hit)
    }),
    takeRateLimitsAtOnce: preparedOnce(() => {
      const input = countersInput()
      return takeCounters(db.with(input), input)
    }),
    readRateLimit: preparedOnce(() => db.select({ count: rateLimits.count, windowStart: rateLimits.windowStart }).from(rateLimits).where(eq(rateLimits.key, p('key')))),
    // Any number of counters in one prepared statement: the keys go as one parameter (a text[] on
    // PostgreSQL, a JSON array on SQLite), so the statement is the same whatever their number.
    readCounters: preparedOnce(() => db.select({ key: rateLimits.key, count: rateLimits.count, windowStart: rateLimits.windowStart }).from(rateLimits)
      .where(dialect === 'postgres' ? sql`${rateLimits.key} = any(${p('keys')})` : sql`${rateLimits.key} in (select value from json_each(${p('keys')}))`)),
    // Every first sign-in of an account (with signUp 'on-verify', every new account).
    markPhoneVerified: preparedOnce(() => db.update(users).set({ phoneVerifiedAt: sql`${sql.param(p('now'), users.phoneVerifiedAt)}` })
      .where(and(eq(users.id, p('userId')), isNull(users.phoneVerifiedAt)))),
    freeSlot: preparedOnce(() => db.update(rateLimits).set({ windowStart: sql`${sql.param(p('never'), rateLimits.windowStart)}` }).where(eq(rateLimits.key, p('key')))),
    // Gives back a hit taken in the window that began at `windowStart`, and only in that window: once
    // another request has started a new one on the row, the hit went with the old window, and taking
    // one from the new window would let one request more through it.
    releaseRateLimit: preparedOnce(() => db.update(rateLimits).set({ count: sql`${rateLimits.count} - 1` })
      .where(and(eq(rateLimits.key, p('key')), eq(rateLimits.windowStart, sql.param(p('windowStart'), rateLimits.windowStart)), gt(rateLimits.count, 0)))),
    insertUser: preparedOnce(() => db.insert(users)
      .values({ id: p('id'), phone: p('phone'), username: p('username'), createdAt: p('now') })
      .onConflictDoNothing({ target: users.phone })
      .returning()),
    // PostgreSQL: uses up the code and inserts the session it proves in one statement (the INSERT
    // reads the UPDATE's RETURNING), so a fault leaves both or neither.
    consumeIntoSession: preparedOnce(() => {
      const consumed = db.$with('consumed').as(db.update(otpChallenges)
        .set({ consumedAt: sql`${sql.param(p('now'), otpChallenges.consumedAt)}` })
        .where(and(eq(otpChallenges.phone, p('phone')), eq(otpChallenges.challengeId, p('challengeId')), isNull(otpChallenges.consumedAt), accountActive))
        .returning({ phone: otpChallenges.phone }))
      const now = sql`${sql.param(p('now'), sessions.createdAt)}::timestamptz`
      return db.with(consumed).insert(sessions).select(db.select({
        id: sql`${p('id')}::uuid`.as('id'),
        userId: sql`${p('userId')}::uuid`.as('user_id'),
        generation: sql`0`.as('generation'),
        createdAt: now.as('created_at'),
        refreshedAt: now.as('refreshed_at'),
        expiresAt: sql`${sql.param(p('expiresAt'), sessions.expiresAt)}::timestamptz`.as('expires_at'),
        revokedAt: sql`null`.as('revoked_at'),
        revokedReason: sql`null`.as('revoked_reason'),
        userAgent: sql`${p('userAgent')}::text`.as('user_agent'),
        ip: sql`${p('ip')}::text`.as('ip'),
      }).from(consumed)).returning()
    }),
    // SQLite has no UPDATE in a WITH: the same two writes, in one transaction.
    consumeChallenge: preparedOnce(() => db.update(otpChallenges)
      .set({ consumedAt: sql`${sql.param(p('now'), otpChallenges.consumedAt)}` })
      .where(and(eq(otpChallenges.phone, p('phone')), eq(otpChallenges.challengeId, p('challengeId')), isNull(otpChallenges.consumedAt), accountActive))
      .returning({ phone: otpChallenges.phone })),
    createSession: preparedOnce(() => db.insert(sessions)
      .values({ id: p('id'), userId: p('userId'), generation: 0, createdAt: p('now'), refreshedAt: p('now'), expiresAt: p('expiresAt'), userAgent: p('userAgent'), ip: p('ip') })
      .returning()),
    rotateSession: preparedOnce(() => db.update(sessions)
      .set({ generation: sql`${sessions.generation} + 1`, refreshedAt: sql`${sql.param(p('now'), sessions.refreshedAt)}`, userAgent: sql`${p('userAgent')}`, ip: sql`${p('ip')}` })
      .where(and(
        eq(sessions.id, p('id')),
        eq(sessions.userId, p('userId')),
        eq(sessions.generation, p('generation')),
        isNull(sessions.revokedAt),
        gt(sessions.expiresAt, sql.param(p('now'), sessions.expiresAt)),
        gt(sessions.refreshedAt, sql.param(p('idleSince'), sessions.refreshedAt)),
        accountStillActive,
      ))
      .returning()),
  }

  /** Active accounts created before `createdBefore` that never proved their number, unless a code is open for it. */
  // Written as literals, not parameters: a partial index serves a query only when the planner can
  // see that the query's condition implies the index's.
  const unproven = (now: Date, createdBefore: Date) => and(
    sql`${users.phoneVerifiedAt} is null`,
    // A password account without a number has nothing to prove.
    isNotNull(users.phone),
    // A suspended account stays: deleting it would let its number register afresh, active.
    eq(users.status, 'active'),
    lt(users.createdAt, createdBefore),
    // One being signed into right now stays (its code proves the number in a moment).
    notExists(db.select({ phone: otpChallenges.phone }).from(otpChallenges).where(and(eq(otpChallenges.phone, users.phone), gt(otpChallenges.expiresAt, now)))),
  )
  /** Deleted accounts whose ended sessions are all purged: no instance needs to refuse their tokens any more. */
  const deletedAndForgotten = () => and(
    sql`${users.status} = ${sql.raw(`'${DELETED}'`)}`,
    notExists(db.select({ id: sessions.id }).from(sessions).where(eq(sessions.userId, users.id))),
  )

  /**
   * Deletes the accounts `selected` picks, 1,000 at a time in id order. An app's table that
   * references an account without ON DELETE CASCADE makes its batch fail: that batch is then tried
   * account by account, and the referenced ones stay (the app's data is never deleted for us, nor
   * does it stop the purge).
   */
  async function purgeAccounts (selected: ReturnType<typeof and>): Promise<number> {
    let deleted = 0
    let after: string | undefined
    for (;;) {
      const batch = (await db.select({ id: users.id }).from(users).where(after === undefined ? selected : and(selected, gt(users.id, after))).orderBy(users.id).limit(PURGE_BATCH)).map((row) => row.id)
      if (batch.length === 0) return deleted
      try {
        deleted += (await db.delete(users).where(and(inArray(users.id, batch), selected)).returning({ id: users.id })).length
      } catch (error) {
        if (!isForeignKeyViolation(error)) throw error
        for (const id of batch) {
          try {
            deleted += (await db.delete(users).where(and(eq(users.id, id), selected)).returning({ id: users.id })).length
          } catch (inner) {
            if (!isForeignKeyViolation(inner)) throw inner
          }
        }
      }
      if (batch.length < PURGE_BATCH) return deleted
      after = batch[batch.length - 1] as string
    }
  }

  return {
    ...createAccountStore(db, t, dialect),
    ...createPasswordStore(db, t, dialect),
    /** Runs a request's store calls with their writes committed together (see lib/store/unit-of-work.ts). */
    unitOfWork: createUnitOfWork(database, unitMisuse),

    async findUserByPhone (phone: string): Promise<User | undefined> {
      const rows = await prepared.findUserByPhone().execute({ phone })
      return rows[0]
    },

    /** The account of `phone` (if any) and how many accounts the number had before (`phoneKey`: see lib/accounts.ts). */
    async findAccountOf (phone: string, phoneKey: string): Promise<{ user: User | undefined, endedAccounts: number }> {
      const row = (await prepared.findAccountOf().execute({ phone, phoneKey }))[0]
      return { user: row?.user ?? undefined, endedAccounts: row?.endedAccounts ?? 0 }
    },

    /**
     * Creates the account, or returns the existing one: the unique index decides under concurrency.
     * Registering proves nothing, so no registration may name an account someone else created: the
     * first one's username stays only while later ones (before the first verify) agree with it; one
     * that names another leaves the account without a name, and nothing renames it afterwards.
     */
    async registerUser (id: string, phone: string, username: string | undefined, now: Date): Promise<{ user: User, created: boolean }> {
      const inserted = await prepared.insertUser().execute({ id, phone, username: username ?? null, now })
      const user = inserted[0] ?? await this.findUserByPhone(phone)
      if (user === undefined) throw new Error('registered user vanished')
      // Two registrations of an unproven number that do not name it alike (one naming it, one not,
      // or two names): either may be the owner's, so the account keeps no name at all.
      if (inserted[0] === undefined && user.phoneVerifiedAt === null && user.username !== null && user.username !== username) {
        await db.update(users).set({ username: null })
          .where(and(eq(users.id, user.id), isNull(users.phoneVerifiedAt), username === undefined ? sql`true` : ne(users.username, username)))
      }
      return { user, created: inserted[0] !== undefined }
    },

    async markPhoneVerified (userId: string, now: Date): Promise<void> {
      await prepared.markPhoneVerified().execute({ userId, now })
    },

    /**
     * Opens a new challenge for `phone`, replacing the previous one, unless one was sent less than
     * `resendIntervalMs` ago. Returns undefined in that case (the caller answers 429).
     */
    async openChallenge (args: NewChallenge): Promise<OtpChallenge | undefined> {
      const rows = await prepared.openChallenge().execute(challengeValues(args))
      return rows[0]
    },

    /**
     * openChallenge, and only when it opened the challenge, takeRateLimits of `counters` (the sends
     * it counts), all or nothing: answers the challenge (undefined: the cooldown refused it, and
     * nothing was taken) and the index of the first full counter (-1: all taken). When one is full,
     * nothing it did is left: the hits are given back and the challenge it replaced is back as it was
     * (on better-sqlite3 one rolled-back transaction; on PostgreSQL the statement reads the challenge
     * it replaces FOR UPDATE, and it is written back with any attempts made at the new one
     * meanwhile), or the caller withdraws the new one when it replaced none (and on an asynchronous
     * SQLite driver, where the challenge it replaced is lost).
     */
    async openChallengeTaking (args: NewChallenge, counters: ReadonlyArray<{ key: string, windowMs: number, max: number }>): Promise<{ challenge: OtpChallenge | undefined, full: number }> {
      const { phone, challengeId, now } = args
      const values = challengeValues(args)
      const sqlite = database as unknown as SqliteDatabase
      if (dialect === 'sqlite' && sqlite.resultKind === 'sync') {
        const open = prepared.openChallenge() as unknown as SyncStatement
        return allOrNothingSync(() => {
          const challenge = open.all(values)[0] as OtpChallenge | undefined
          return { challenge, full: challenge === undefined ? -1 : takeAllSync(counters, now) }
        }, ({ full }) => full)
      }
      if (dialect !== 'postgres' || counters.length === 0) {
        const challenge = await this.openChallenge(args)
        return { challenge, full: challenge === undefined ? -1 : await this.takeRateLimits(counters, now) }
      }
      const row = (await prepared.openChallengeTaking().execute({ ...values, ...counterArrays(counters, now) }))[0]
      const challenge = row?.challenge ?? undefined
      if (challenge === undefined) return { challenge, full: -1 }
      const taken = (row?.taken ?? []).map(([key, windowStart]) => ({ key, windowStart: new Date(Number(windowStart)) }))
      const full = await fullAfterTaking(counters, taken)
      const replaced = row?.replaced
      if (full !== -1 && replaced !== null && replaced !== undefined) {
        await db.update(otpChallenges)
          .set({ challengeId: replaced.challengeId, codeHash: replaced.codeHash, attempts: sql`${replaced.attempts} + ${otpChallenges.attempts}`, sentAt: replaced.sentAt, expiresAt: replaced.expiresAt, consumedAt: replaced.consumedAt })
          .where(and(eq(otpChallenges.phone, phone), eq(otpChallenges.challengeId, challengeId)))
      }
      return { challenge, full }
    },

    /**
     * What a send reads before it writes, in one round trip: the challenge of `phone`, its account
     * and how many accounts the number had before (`phoneKey`, as findAccountOf), and the counters
     * of `keys` as readCounters reads them. With `hit`, first counts it (as hitRateLimit) and
     * answers its count: on PostgreSQL in the same statement.
     */
    async readBeforeSend (phone: string, phoneKey: string, keys: readonly string[], hit?: HitAt): Promise<{ challenge: OtpChallenge | undefined, user: User | undefined, endedAccounts: number, counters: Map<string, { count: number, windowStart: Date }>, hit: HitCount | undefined }> {
      const values = { phone, phoneKey, keys: dialect === 'postgres' ? keys : JSON.stringify(keys) }
      let counted: HitCount | undefined
      let row
      if (hit !== undefined && dialect === 'postgres') {
        row = (await prepared.readBeforeSendAfterHit().execute({ ...values, ...hitValues(hit) }))[0]
        counted = hitCountOf(row?.hit, hit)
      } else {
        if (hit !== undefined) counted = await this.hitRateLimit(hit.key, hit.windowMs, hit.now)
        row = (await prepared.readBeforeSend().execute(values))[0]
      }
      const raw = row?.counters ?? []
      const counters = (typeof raw === 'string' ? JSON.parse(raw) : raw) as Array<[string, number, number | string]>
      return {
        challenge: row?.challenge ?? undefined,
        user: row?.user ?? undefined,
        endedAccounts: row?.endedAccounts ?? 0,
        counters: new Map(counters.map(([key, count, windowStart]) => [key, { count: Number(count), windowStart: new Date(Number(windowStart)) }])),
        hit: counted,
      }
    },

    /** How many accounts the number of `phoneKey` has had that are gone from it. */
    async endedAccountsOf (phoneKey: string): Promise<number> {
      const rows = await prepared.endedAccountsOf().execute({ phoneKey })
      return rows[0]?.endedAccounts ?? 0
    },

    /** endedAccountsOf, with `hit` counted first (as hitRateLimit: on PostgreSQL in the same statement) and its count answered. */
    async endedAccountsAfterHit (phoneKey: string, hit: HitAt): Promise<{ endedAccounts: number, hit: HitCount }> {
      if (dialect !== 'postgres') {
        const counted = await this.hitRateLimit(hit.key, hit.windowMs, hit.now)
        return { endedAccounts: await this.endedAccountsOf(phoneKey), hit: counted }
      }
      const row = (await prepared.endedAccountsAfterHit().execute({ phoneKey, ...hitValues(hit) }))[0]
      return { endedAccounts: row?.endedAccounts ?? 0, hit: hitCountOf(row?.hit, hit) }
    },

    async findChallenge (phone: string): Promise<OtpChallenge | undefined> {
      const rows = await prepared.findChallenge().execute({ phone })
      return rows[0]
    },

    /** Withdraws a challenge whose code could not be delivered, so it neither works nor blocks a resend. */
    async withdrawChallenge (phone: string, challengeId: string): Promise<void> {
      await db.delete(otpChallenges).where(and(eq(otpChallenges.phone, phone), eq(otpChallenges.challengeId, challengeId)))
    },

    /**
     * Makes a challenge's code unusable but keeps the row, with its cooldown and attempt count: an
     * undelivered code then looks exactly like the code of a number without an account, which
     * nobody can answer either. (A stored hash is base64url and never the one character `-`.)
     */
    async killChallenge (phone: string, challengeId: string): Promise<void> {
      await db.update(otpChallenges).set({ codeHash: DEAD_CODE_HASH }).where(and(eq(otpChallenges.phone, phone), eq(otpChallenges.challengeId, challengeId)))
    },

    /**
     * Counts one attempt against the open challenge, if it is open, unused, unexpired and has tries
     * left. Counting before comparing means concurrent guesses cannot exceed the limit.
     */
    async recordAttempt (phone: string, now: Date, maxAttempts: number): Promise<OtpChallenge | undefined> {
      const rows = await prepared.recordAttempt().execute({ phone, now, maxAttempts })
      return rows[0]
    },

    /**
     * recordAttempt, and the account of `phone` and how many accounts the number had before
     * (`phoneKey`, as findAccountOf): on PostgreSQL in one round trip, elsewhere in two statements.
     */
    async recordAttemptAndFindAccount (phone: string, phoneKey: string, now: Date, maxAttempts: number): Promise<{ challenge: OtpChallenge | undefined, user: User | undefined, endedAccounts: number }> {
      if (dialect !== 'postgres') {
        // The account first: a read that fails then spends no attempt (one statement on PostgreSQL: both or neither).
        const account = await this.findAccountOf(phone, phoneKey)
        return { challenge: await this.recordAttempt(phone, now, maxAttempts), ...account }
      }
      const row = (await prepared.recordAttemptAndFindAccount().execute({ phone, phoneKey, now, maxAttempts }))[0]
      return { challenge: row?.challenge ?? undefined, user: row?.user ?? undefined, endedAccounts: row?.endedAccounts ?? 0 }
    },

    /**
     * Uses up the challenge `challengeId` of `phone` and opens a session of `userId`, both or
     * neither: no fault or killed process leaves a used code without its session. Only one caller
     * can win; the others get undefined (the code was used, or replaced by a newer one).
     */
    async consumeIntoSession (args: { phone: string, challengeId: string, userId: string, now: Date, expiresAt: Date, device: Device }): Promise<Session | undefined> {
      const { device, ...rest } = args
      const values = { ...rest, ...device, id: randomUUID() }
      if (dialect === 'postgres') return (await prepared.consumeIntoSession().execute(values))[0]
      const sqlite = database as unknown as SqliteDatabase
      if (sqlite.resultKind === 'sync') {
        // better-sqlite3 runs the statements synchronously: nothing else runs in between either.
        const consume = prepared.consumeChallenge() as unknown as SyncStatement
        const create = prepared.createSession() as unknown as SyncStatement
        let session: Session | undefined
        inTransactionSync(() => { session = consume.all(values).length === 0 ? undefined : create.all(values)[0] as Session })
        return session
      }
      // An asynchronous SQLite driver (libSQL): a transaction of its own.
      return sqlite.transaction(async () => {
        const consumed = await prepared.consumeChallenge().execute(values)
        return consumed.length === 0 ? undefined : (await prepared.createSession().execute(values))[0]
      })
    },

    async findSession (id: string): Promise<Session | undefined> {
      const rows = await db.select().from(sessions).where(eq(sessions.id, id)).limit(1)
      return rows[0]
    },

    /**
     * Moves a live session from `generation` to the next one; only one caller can win. A session
     * last refreshed (or opened) at `idleSince` or before has been idle too long and stays as it is.
     */
    async rotateSession (id: string, userId: string, generation: number, now: Date, idleSince: Date, device: Device): Promise<Session | undefined> {
      const rows = await prepared.rotateSession().execute({ id, userId, generation, now, idleSince, ...device })
      return rows[0]
    },

    /** Ends one session of `userId`; false when it was not live. */
    async revokeSession (id: string, userId: string, reason: string, now: Date): Promise<boolean> {
      const rows = await db.update(sessions)
        .set({ revokedAt: now, revokedReason: reason })
        .where(and(eq(sessions.id, id), eq(sessions.userId, userId), isNull(sessions.revokedAt)))
        .returning({ id: sessions.id })
      return rows.length === 1
    },

    /** Ends every live session of `userId` except `keepId` (as endSessions); returns the ids ended. */
    async revokeOtherSessions (userId: string, keepId: string, now: Date): Promise<string[]> {
      return this.endSessions(userId, 'logout_all_other_sessions', now, keepId)
    },

    /**
     * Revocations at or after `cursor` (all of them at start, when it is undefined) that happened
     * after `since`, for the revocation list every instance keeps, and the cursor to pass next time:
     * the first position a revocation not seen yet can have (see the `revocations` tables). It is
     * read before the rows, so a revocation committing in between is read twice, never missed.
     */
    async revocationsAfter (cursor: number | undefined, since: Date): Promise<{ cursor: number, revocations: Array<{ id: string, revokedAt: Date }> }> {
      const firstUnseen = dialect === 'postgres'
        ? sql`txid_snapshot_xmin(txid_current_snapshot())`
        // Read on a connection with no transaction of its own open: one would count its own
        // uncommitted rows, whose positions a rollback gives out again (the store's transactions
        // on better-sqlite3 are synchronous, so no read runs inside one).
        : sql`(select coalesce(max(${revocations.seq}), 0) + 1 from ${revocations})`
      const [position] = await db.select({ next: firstUnseen.mapWith(Number) }).from(sql`(select 1) one`)
      if (position === undefined) throw new Error('the revocation cursor read returned nothing')
      const rows = await db.select({ id: revocations.sessionId, revokedAt: revocations.revokedAt }).from(revocations)
        .where(and(cursor === undefined ? undefined : gte(revocations.seq, cursor), gt(revocations.revokedAt, since)))
      return { cursor: position.next, revocations: rows }
    },

    /**
     * Counts one hit in the fixed window of `key` and returns the count and when the window ends.
     * One upsert, so concurrent hits on several instances all count.
     */
    async hitRateLimit (key: string, windowMs: number, now: Date): Promise<{ count: number, resetAt: Date }> {
      const rows = await prepared.hitRateLimit().execute({ key, now, windowFloor: new Date(now.getTime() - windowMs) })
      return hitCountOf(rows[0], { windowMs })
    },

    /** The count of `key` in its current window, or undefined when it has none. */
    async readRateLimit (key: string, windowMs: number, now: Date): Promise<{ count: number, resetAt: Date } | undefined> {
      const rows = await prepared.readRateLimit().execute({ key })
      const row = rows[0]
      if (row === undefined || row.windowStart.getTime() <= now.getTime() - windowMs) return undefined
      return { count: row.count, resetAt: new Date(row.windowStart.getTime() + windowMs) }
    },

    /**
     * Counts one hit on each of `counters` if every one has room, or on none: returns the index of
     * the first full one (nothing counted), or -1. On better-sqlite3 the upserts run synchronously
     * in one transaction (one commit, and nothing to give back); on PostgreSQL all in one statement
     * (one round trip), and the hits it counted are given back when one counter was full; elsewhere
     * each is its own upsert and the hits already counted are given back. A hit is given back only
     * to the window it was counted in, also when an upsert fails (best effort: the give-back may
     * fail too).
     * Either way concurrent callers never overshoot.
     */
    async takeRateLimits (counters: ReadonlyArray<{ key: string, windowMs: number, max: number }>, now: Date): Promise<number> {
      const sqlite = database as unknown as SqliteDatabase
      if (dialect === 'sqlite' && sqlite.resultKind === 'sync') return allOrNothingSync(() => takeAllSync(counters, now), (full) => full)
      if (dialect === 'postgres') return fullAfterTaking(counters, await prepared.takeRateLimitsAtOnce().execute({ ...counterArrays(counters, now), now }))
      const taken: Array<{ key: string, windowStart: Date }> = []
      const giveBack = async () => { for (const hit of taken) await prepared.releaseRateLimit().execute(hit) }
      for (const [index, counter] of counters.map((each) => takeValues(each, now)).entries()) {
        let row: { windowStart: Date } | undefined
        try {
          [row] = await prepared.takeRateLimit().execute(counter)
        } catch (error) {
          // A write that failed half-way counts nothing either, as far as the database still lets us.
          await giveBack().catch(() => {})
          throw error
        }
        if (row !== undefined) {
          taken.push({ key: counter.key, windowStart: row.windowStart })
          continue
        }
        await giveBack()
        return index
      }
      return -1
    },

    /**
     * Takes the first of the slots `keys` that is free (last taken `windowMs` ago or never); answers
     * its key, or undefined when none was taken. With `hit`, first counts it (as hitRateLimit: on
     * PostgreSQL in the same statement) and answers its count; a hit past its max takes no slot.
     */
    async takeFirstFreeSlot (keys: readonly string[], windowMs: number, now: Date, hit?: HitAt): Promise<{ slot: string | undefined, hit: HitCount | undefined }> {
      const values = { keys: dialect === 'postgres' ? keys : JSON.stringify(keys), now, windowFloor: new Date(now.getTime() - windowMs) }
      if (hit !== undefined && dialect === 'postgres') {
        const row = (await prepared.takeFirstFreeSlotAfterHit().execute({ ...values, ...hitValues(hit), hitMax: hit.max }))[0]
        return { slot: row?.slot ?? undefined, hit: hitCountOf(row?.hit, hit) }
      }
      const counted = hit === undefined ? undefined : await this.hitRateLimit(hit.key, hit.windowMs, hit.now)
      if (hit !== undefined && counted !== undefined && counted.count > hit.max) return { slot: undefined, hit: counted }
      return { slot: (await prepared.takeFirstFreeSlot().execute(values))[0]?.key, hit: counted }
    },

    /** Marks the slot `key` taken now, if it was free (last taken `windowMs` ago or never). */
    async takeSlidingSlot (key: string, windowMs: number, now: Date): Promise<boolean> {
      const rows = await prepared.takeSlidingSlot().execute({ key, now, windowFloor: new Date(now.getTime() - windowMs) })
      return rows.length === 1
    },

    /**
     * The rows of `keys` that exist, as they are (window not applied): the fixed-window counters and
     * sliding-window slots a request checks before it counts anything, read in one statement.
     */
    async readCounters (keys: readonly string[]): Promise<Map<string, { count: number, windowStart: Date }>> {
      if (keys.length === 0) return new Map()
      const rows = await prepared.readCounters().execute({ keys: dialect === 'postgres' ? keys : JSON.stringify(keys) })
      return new Map(rows.map(({ key, count, windowStart }) => [key, { count, windowStart }]))
    },

    /** Frees the slot `key` (a check that was not a wrong guess gives its slot back). */
    async freeSlot (key: string): Promise<void> {
      await prepared.freeSlot().execute({ key, never: new Date(0) })
    },

    async deleteRateLimit (key: string): Promise<void> {
      await db.delete(rateLimits).where(eq(rateLimits.key, key))
    },

    /**
     * Deletes rows no longer needed: expired challenges, sessions that expired or ended before
     * `endedBefore` (no access token of theirs is left to refuse), revocations logged before it,
     * counters older than the longest window, accounts created before `unverifiedBefore` that never
     * proved their number (unless a code is open for it), and what is left of deleted accounts once
     * their sessions are gone.
     */
    async purgeExpired (args: { now: Date, challengesExpiredBefore: Date, longestWindowMs: number, endedBefore: Date, unverifiedBefore: Date | undefined }): Promise<{ challenges: number, sessions: number, counters: number, revocations: number, accounts: number }> {
      const { now, challengesExpiredBefore, longestWindowMs, endedBefore, unverifiedBefore } = args
      // In bounded batches, each its own short statement: a large table is never locked for long,
      // and other writers get in between.
      const inBatches = async (deleteBatch: () => Promise<unknown[]>): Promise<number> => {
        let deleted = 0
        for (;;) {
          const batch = (await deleteBatch()).length
          deleted += batch
          if (batch < PURGE_BATCH) return deleted
        }
      }
      const staleBefore = new Date(now.getTime() - longestWindowMs)
      // On PostgreSQL each batch locks its rows as it chooses them (FOR UPDATE, which re-reads a row
      // updated since the statement began and keeps it only if still expired) and passes over rows
      // another statement holds (SKIP LOCKED): a counter being taken again is not deleted once its
      // take commits, and the purge never waits with rows of its own locked, which would deadlock
      // with a request taking several counters at once (takeRateLimits). The DELETE states the
      // condition again, so that it says what it deletes on either database.
      const batchOf = <Q extends { for: (strength: 'update', config: { skipLocked: true }) => unknown }>(query: Q) =>
        dialect === 'postgres' ? query.for('update', { skipLocked: true }) as Q : query
      const expiredChallenge = lt(otpChallenges.expiresAt, challengesExpiredBefore)
      const endedSession = or(lt(sessions.expiresAt, now), lt(sessions.revokedAt, endedBefore))
      const staleCounter = lt(rateLimits.windowStart, staleBefore)
      const oldRevocation = lt(revocations.revokedAt, endedBefore)
      return {
        challenges: await inBatches(() => db.delete(otpChallenges)
          .where(and(expiredChallenge, inArray(otpChallenges.phone, batchOf(db.select({ phone: otpChallenges.phone }).from(otpChallenges).where(expiredChallenge).limit(PURGE_BATCH)))))
          .returning({ phone: otpChallenges.phone })),
        sessions: await inBatches(() => db.delete(sessions)
          .where(and(endedSession, inArray(sessions.id, batchOf(db.select({ id: sessions.id }).from(sessions).where(endedSession).limit(PURGE_BATCH)))))
          .returning({ id: sessions.id })),
        counters: await inBatches(() => db.delete(rateLimits)
          .where(and(staleCounter, inArray(rateLimits.key, batchOf(db.select({ key: rateLimits.key }).from(rateLimits).where(staleCounter).limit(PURGE_BATCH)))))
          .returning({ key: rateLimits.key })),
        revocations: await inBatches(() => db.delete(revocations)
          // By the whole key: on PostgreSQL one transaction's id is on every session it revoked.
          .where(and(oldRevocation, sql`(${revocations.seq}, ${revocations.sessionId}) in ${batchOf(db.select({ seq: revocations.seq, sessionId: revocations.sessionId }).from(revocations).where(oldRevocation).limit(PURGE_BATCH))}`))
          .returning({ seq: revocations.seq })),
        accounts: (unverifiedBefore === undefined ? 0 : await purgeAccounts(unproven(now, unverifiedBefore))) + await purgeAccounts(deletedAndForgotten()),
      }
    },
  }
}

export type Store = ReturnType<typeof createStore>

/** A code to open for `phone` (store.openChallenge): its hash, when it was sent and expires, and the resend interval that may refuse it. */
export interface NewChallenge { phone: string, challengeId: string, codeHash: string | null, now: Date, expiresAt: Date, resendIntervalMs: number }

/**
 * A fixed-window rate-limit hit counted by the statement it guards (store.readBeforeSend,
 * store.endedAccountsAfterHit, store.takeFirstFreeSlot): on PostgreSQL in the same round trip, elsewhere
 * just before it. `max`: the most its window allows, for a guarded write to hold back when full.
 */
export interface HitAt { key: string, windowMs: number, max: number, now: Date }

/** What counting a hit answered: the count in its window (this hit included), and when the window ends. */
export interface HitCount { count: number, resetAt: Date }

function hitCountOf (row: { count: number | null, windowStart: Date | null } | null | undefined, { windowMs }: { windowMs: number }): HitCount {
  if (row === null || row === undefined || row.count === null || row.windowStart === null) throw new Error('rate limit upsert returned nothing')
  return { count: row.count, resetAt: new Date(row.windowStart.getTime() + windowMs) }
}

/** The device a session was last used from, as its owner's list of sessions shows it. */
export interface Device { userAgent: string | null, ip: string | null }

/** Thrown inside a better-sqlite3 transaction to roll it back. */
class RollBack extends Error {}

interface SyncStatement { all: (values: Record<string, unknown>) => unknown[] }

/** better-sqlite3's `transaction`: wraps a function so that each call runs in BEGIN … COMMIT, or in a savepoint when a transaction is open. */
interface SyncTransactions { inTransaction: boolean, transaction: <Args extends unknown[], Result>(run: (...args: Args) => Result) => (...args: Args) => Result }

/** A transaction function of the database's better-sqlite3 connection, made once; undefined for another driver. */
function nativeTransactionOf (database: unknown): ((run: () => void) => void) | undefined {
  const client = (database as { $client?: Partial<SyncTransactions> }).$client
  if (typeof client?.inTransaction !== 'boolean' || typeof client.transaction !== 'function') return undefined
  return client.transaction((work: () => void) => work())
}
interface SqliteDatabase { resultKind: 'sync' | 'async', transaction: <T>(run: () => T) => T }
