import { randomUUID } from 'node:crypto'
import pg from 'pg'
import t from 'tap'
import * as postgresTables from '../lib/db/postgres.js'
import * as sqliteTables from '../lib/db/sqlite.js'
import { migrate, purgeExpired } from '../lib/index.js'
import { buildApp, createTestDatabase, dialects, postgresUrl } from './helper.js'

// Housekeeping: expired codes, ended sessions and stale counters go, in batches of 1,000 rows a
// statement; live rows stay.

const HOUR = 3_600_000

for (const dialect of dialects) {
  t.test(`${dialect}: purgeExpired deletes what has expired, in batches, and keeps what is live`, async (t) => {
    const test = await buildApp(t, dialect, { purgeInterval: false })
    const { users, otpChallenges, sessions, rateLimits, revocations } = (dialect === 'sqlite' ? sqliteTables : postgresTables) as unknown as typeof postgresTables
    const db = test.database.db as unknown as import('drizzle-orm/pg-core').PgDatabase<any, any, any>
    const now = new Date()
    const past = new Date(now.getTime() - 2 * HOUR)
    const future = new Date(now.getTime() + HOUR)
    const inChunks = async <T>(rows: T[], insert: (chunk: T[]) => Promise<unknown>) => {
      for (let i = 0; i < rows.length; i += 250) await insert(rows.slice(i, i + 250))
    }
    await db.insert(users).values({ id: '00000000-0000-4000-8000-000000000001', phone: '+14155550100', createdAt: now })
    const challenge = (i: number, expiresAt: Date) => ({ phone: `+1415${String(i).padStart(7, '0')}`, challengeId: randomUUID(), codeHash: 'h', attempts: 0, sentAt: past, expiresAt, consumedAt: null })
    await inChunks([...Array.from({ length: 2_345 }, (_, i) => challenge(i, past)), ...Array.from({ length: 7 }, (_, i) => challenge(10_000 + i, future))], (chunk) => db.insert(otpChallenges).values(chunk))
    const session = (_i: number, expiresAt: Date) => ({ id: randomUUID(), userId: '00000000-0000-4000-8000-000000000001', generation: 0, createdAt: past, refreshedAt: past, expiresAt, revokedAt: null, revokedReason: null })
    await inChunks([...Array.from({ length: 1_001 }, (_, i) => session(i, past)), ...Array.from({ length: 3 }, (_, i) => session(10_000 + i, future))], (chunk) => db.insert(sessions).values(chunk))
    const counter = (i: number, windowStart: Date) => ({ key: `send:ip:203.0.113.${i}`, windowStart, count: 1 })
    await inChunks([...Array.from({ length: 1_000 }, (_, i) => counter(i, new Date(now.getTime() - 8 * 24 * HOUR))), ...Array.from({ length: 5 }, (_, i) => counter(10_000 + i, now))], (chunk) => db.insert(rateLimits).values(chunk))
    // The revocation log: rows older than the longest access-token lifetime (1 day) and recent ones.
    const revocation = (revokedAt: Date) => ({ sessionId: randomUUID(), revokedAt })
    await inChunks([...Array.from({ length: 1_002 }, () => revocation(new Date(now.getTime() - 25 * HOUR))), ...Array.from({ length: 4 }, () => revocation(new Date(now.getTime() - 23 * HOUR)))], (chunk) => db.insert(revocations).values(chunk))

    t.same(await purgeExpired(test.database.db, { now }), { challenges: 2_345, sessions: 1_001, counters: 1_000, revocations: 1_002, accounts: 0 }, 'every expired row went, over several batches')
    const count = async (table: string) => Number((await test.database.query(`SELECT count(*) AS n FROM ${table}`))[0]!.n)
    t.equal(await count('securelogin_otp_challenges'), 7, 'live codes stay')
    t.equal(await count('securelogin_sessions'), 3, 'live sessions stay')
    t.equal(await count('securelogin_rate_limits'), 5, 'current counters stay')
    t.equal(await count('securelogin_revocations'), 4, 'revocations whose access tokens may still be alive stay logged')
    t.same(await purgeExpired(test.database.db, { now }), { challenges: 0, sessions: 0, counters: 0, revocations: 0, accounts: 0 }, 'a second run finds nothing')
  })
}

t.test('purgeInterval is checked', async (t) => {
  await t.rejects(buildApp(t, 'sqlite', { purgeInterval: 0.5 }), /purgeInterval must be false or a duration from 1 second to 1 day/)
  await t.rejects(buildApp(t, 'sqlite', { purgeInterval: true as never }), /purgeInterval/)
})

for (const dialect of dialects) {
  t.test(`${dialect}: accounts that never proved their number go after unverifiedAccountTtl; proven ones and ones signing in stay`, async (t) => {
    const test = await buildApp(t, dialect, { purgeInterval: false })
    const { users, otpChallenges } = (dialect === 'sqlite' ? sqliteTables : postgresTables) as unknown as typeof postgresTables
    const db = test.database.db as unknown as import('drizzle-orm/pg-core').PgDatabase<any, any, any>
    const now = new Date()
    const old = new Date(now.getTime() - 8 * 24 * HOUR)
    const account = (i: number, createdAt: Date, phoneVerifiedAt: Date | null) => ({ id: randomUUID(), phone: `+1415${String(i).padStart(7, '0')}`, createdAt, phoneVerifiedAt })
    const stale = Array.from({ length: 1_203 }, (_, i) => account(i, old, null))
    for (let i = 0; i < stale.length; i += 250) await db.insert(users).values(stale.slice(i, i + 250))
    await db.insert(users).values([account(20_001, old, old), account(20_002, now, null), account(20_003, old, null), { ...account(20_004, old, null), status: 'suspended' }])
    // An app's table that references one of them without ON DELETE CASCADE.
    const referenced = account(20_005, old, null)
    await db.insert(users).values(referenced)
    await test.database.query('CREATE TABLE app_orders (id integer PRIMARY KEY, user_id uuid NOT NULL REFERENCES securelogin_users (id))'.replace('uuid', dialect === 'sqlite' ? 'text' : 'uuid'))
    await test.database.query('INSERT INTO app_orders (id, user_id) VALUES (1, $1)', [referenced.id])
    // The last one is being signed into: its code is open.
    await db.insert(otpChallenges).values({ phone: '+14150020003', challengeId: randomUUID(), codeHash: 'h', attempts: 0, sentAt: now, expiresAt: new Date(now.getTime() + HOUR), consumedAt: null })

    t.same(await purgeExpired(test.database.db, { now, unverifiedAccountTtl: false }), { challenges: 0, sessions: 0, counters: 0, revocations: 0, accounts: 0 }, 'false keeps them')
    t.equal((await purgeExpired(test.database.db, { now })).accounts, 1_203, 'the default (7 days) deletes every stale unproven account, over several batches')
    const left = await test.database.query('SELECT phone FROM securelogin_users ORDER BY phone')
    t.same(left.map((row) => row.phone), ['+14150020001', '+14150020002', '+14150020003', '+14150020004', '+14150020005'], 'the proven one, the new one, the one signing in, the suspended one and the one the app\'s data refers to stay')
    t.equal((await test.database.query('SELECT id FROM app_orders')).length, 1, 'the app\'s row is untouched')
    t.equal((await purgeExpired(test.database.db, { now: new Date(now.getTime() + 2 * 24 * HOUR), unverifiedAccountTtl: '1d' })).accounts, 2, 'later, with a shorter ttl, the new one goes, and so does the one whose code has expired')
    await t.rejects(purgeExpired(test.database.db, { unverifiedAccountTtl: 'soon' as never }), /unverifiedAccountTtl must be false or a duration/)
  })
}

t.test('the scheduled purge deletes unverified accounts past unverifiedAccountTtl', async (t) => {
  const database = await createTestDatabase(t, 'sqlite')
  await migrate(database.db)
  await database.query("INSERT INTO securelogin_users (id, phone, auth_type, status, created_at) VALUES ('00000000-0000-4000-8000-0000000000aa', '+14155550177', 'PHONE', 'active', $1)", [Date.now() - 2 * HOUR])
  // The first run comes after a random delay of up to a minute: a random 0 makes it come at once.
  const random = Math.random
  Math.random = () => 0
  const test = await buildApp(t, 'sqlite', { purgeInterval: '1m', unverifiedAccountTtl: '1h' }, database).finally(() => { Math.random = random })
  const started = Date.now()
  while ((await test.database.query('SELECT id FROM securelogin_users')).length > 0 && Date.now() - started < 10_000) await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(await test.database.query('SELECT id FROM securelogin_users'), [], 'the account went')
})

t.test('unverifiedAccountTtl is checked', async (t) => {
  await t.rejects(buildApp(t, 'sqlite', { unverifiedAccountTtl: '10m' }), /unverifiedAccountTtl must be false or a duration from 1 hour to 1 year/)
  await t.rejects(buildApp(t, 'sqlite', { unverifiedAccountTtl: true as never }), /unverifiedAccountTtl/)
})

for (const dialect of dialects) {
  t.test(`${dialect}: sessions ended longer ago than an access token lives are purged; recently ended ones stay`, async (t) => {
    const test = await buildApp(t, dialect, { purgeInterval: false })
    const { users, sessions } = (dialect === 'sqlite' ? sqliteTables : postgresTables) as unknown as typeof postgresTables
    const db = test.database.db as unknown as import('drizzle-orm/pg-core').PgDatabase<any, any, any>
    const now = new Date()
    const userId = randomUUID()
    await db.insert(users).values({ id: userId, phone: '+14155550111', createdAt: now, phoneVerifiedAt: now })
    const session = (revokedAt: Date | null) => ({ id: randomUUID(), userId, generation: 0, createdAt: now, refreshedAt: now, expiresAt: new Date(now.getTime() + 30 * 24 * HOUR), revokedAt, revokedReason: revokedAt === null ? null : 'logout' })
    await db.insert(sessions).values([session(new Date(now.getTime() - 25 * HOUR)), session(new Date(now.getTime() - HOUR)), session(null)])
    // Without the app's options, the longest access-token lifetime allowed (1 day) is assumed.
    t.equal((await purgeExpired(test.database.db, { now })).sessions, 1, 'the session ended 25 hours ago went')
    t.equal((await test.database.query('SELECT id FROM securelogin_sessions')).length, 2, 'the one ended an hour ago and the live one stay')
  })
}

for (const dialect of dialects) {
  t.test(`${dialect}: a deleted account goes once its ended sessions are purged; a password account without a number is not unproven`, async (t) => {
    const test = await buildApp(t, dialect, { purgeInterval: false })
    const { users, sessions } = (dialect === 'sqlite' ? sqliteTables : postgresTables) as unknown as typeof postgresTables
    const db = test.database.db as unknown as import('drizzle-orm/pg-core').PgDatabase<any, any, any>
    const now = new Date()
    const old = new Date(now.getTime() - 8 * 24 * HOUR)
    const forgotten = randomUUID()
    const remembered = randomUUID()
    await db.insert(users).values([
      // Deleted: no number, no name; one of them has a session that ended an hour ago.
      { id: forgotten, phone: null, status: 'deleted', createdAt: old },
      { id: remembered, phone: null, status: 'deleted', createdAt: old },
      // A password account that never added a number: nothing to prove.
      { id: randomUUID(), phone: null, email: 'carol@example.com', passwordHash: 'h', authType: 'PASSWORD', createdAt: old },
      // An unproven phone account past the ttl.
      { id: randomUUID(), phone: '+14155550123', createdAt: old },
    ])
    await db.insert(sessions).values({ id: randomUUID(), userId: remembered, generation: 0, createdAt: old, refreshedAt: old, expiresAt: new Date(now.getTime() + 30 * 24 * HOUR), revokedAt: new Date(now.getTime() - HOUR), revokedReason: 'deleted' })

    t.equal((await purgeExpired(test.database.db, { now })).accounts, 2, 'the unproven one and the deleted one without sessions, both counted')
    const left = async () => (await test.database.query('SELECT id, email FROM securelogin_users')).map((row) => String(row.email ?? row.id)).sort()
    t.same(await left(), ['carol@example.com', remembered].sort(), 'the password account stays, and so does the deleted one whose ended session is kept')
    t.same(await purgeExpired(test.database.db, { now: new Date(now.getTime() + 2 * 24 * HOUR) }), { challenges: 0, sessions: 1, counters: 0, revocations: 1, accounts: 1 }, 'once its session is purged, the deleted account goes in the same run, and so does the log of its revocation')
    t.same(await left(), ['carol@example.com'], 'only the password account is left')
  })
}

for (const dialect of dialects) {
  t.test(`${dialect}: when a batch falls back to one account at a time, an error other than a reference fails the purge`, async (t) => {
    const test = await buildApp(t, dialect, { purgeInterval: false })
    const { users } = (dialect === 'sqlite' ? sqliteTables : postgresTables) as unknown as typeof postgresTables
    const db = test.database.db as unknown as import('drizzle-orm/pg-core').PgDatabase<any, any, any>
    const old = new Date(Date.now() - 8 * 24 * HOUR)
    const referenced = '00000000-0000-4000-8000-000000000001'
    const refused = '00000000-0000-4000-8000-000000000002'
    await db.insert(users).values([{ id: referenced, phone: '+14155550131', createdAt: old }, { id: refused, phone: '+14155550132', createdAt: old }])
    await test.database.query('CREATE TABLE app_orders (id integer PRIMARY KEY, user_id uuid NOT NULL REFERENCES securelogin_users (id))'.replace('uuid', dialect === 'sqlite' ? 'text' : 'uuid'))
    await test.database.query('INSERT INTO app_orders (id, user_id) VALUES (1, $1)', [referenced])
    // The batch fails on the reference (the refused account's delete, after the referenced one's,
    // goes through there); then, one account at a time, the refused one's delete fails otherwise.
    const refusal = `old.id = '${refused}' AND EXISTS (SELECT 1 FROM securelogin_users WHERE id = '${referenced}')`
    if (dialect === 'sqlite') {
      await test.database.query(`CREATE TRIGGER refuse_purge BEFORE DELETE ON securelogin_users WHEN ${refusal} BEGIN SELECT RAISE(ABORT, 'not now'); END`)
    } else {
      await test.database.query(`CREATE FUNCTION refuse_purge() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF ${refusal.replace('old.id', 'old.id::text')} THEN RAISE EXCEPTION 'not now'; END IF; RETURN old; END $$`)
      await test.database.query('CREATE TRIGGER refuse_purge BEFORE DELETE ON securelogin_users FOR EACH ROW EXECUTE FUNCTION refuse_purge()')
    }
    const error = await purgeExpired(test.database.db, {}).then(() => undefined, (error: Error) => error)
    // Drizzle may wrap the driver's error ("Failed query: …", the driver's as its cause).
    t.match(`${error?.message} ${(error?.cause as Error | undefined)?.message}`, /not now/, 'the error is thrown, not passed over like a reference')
    t.equal((await test.database.query('SELECT id FROM securelogin_users')).length, 2, 'both accounts stay')
  })
}

// Hostile review of the one-statement take of several counters (issue 12): the purge deleted its
// batch in whatever order it found the rows while a take locked them in key order, and the two
// deadlocked; and a counter taken again while the purge ran was deleted once the take committed,
// so one more guess or send got through its window.
const inCi = process.env.CI !== undefined && process.env.CI !== ''
t.test('postgres: the purge passes over a counter being taken, and the counter stays taken', { skip: postgresUrl === undefined && !inCi ? 'needs SECURELOGIN_TEST_POSTGRES_URL (CI sets it)' : false }, async (t) => {
  const database = await createTestDatabase(t, 'postgres')
  await migrate(database.db)
  const now = new Date()
  const stale = new Date(now.getTime() - 8 * 24 * HOUR)
  for (const key of ['lock:+14155550100#0', 'send:phone:+14155550101']) await database.query('INSERT INTO securelogin_rate_limits (key, window_start, count) VALUES ($1, $2, 1)', [key, stale])
  const counters = async () => (await database.query('SELECT key, window_start FROM securelogin_rate_limits ORDER BY key')).map((row) => [row.key, (row.window_start as Date).getTime()])

  // A wrong guess takes the stale slot again; its transaction (or the rest of a multi-counter
  // take) is still open while the purge runs.
  const taker = new pg.Client({ connectionString: database.url })
  await taker.connect()
  t.teardown(() => taker.end())
  await taker.query('BEGIN')
  await taker.query('UPDATE securelogin_rate_limits SET window_start = $1 WHERE key = $2', [now, 'lock:+14155550100#0'])
  const purged = await Promise.race([purgeExpired(database.db, { now }), new Promise((resolve) => setTimeout(() => resolve('waited for the locked counter'), 3000))])
  t.match(purged, { counters: 1 }, 'the purge did not wait for the counter being taken, and deleted the other stale one')
  await taker.query('COMMIT')
  t.same(await counters(), [['lock:+14155550100#0', now.getTime()]], 'the slot taken again stays, taken')
  t.match(await purgeExpired(database.db, { now }), { counters: 0 }, 'and the next run keeps it too')
})

// A code's row also holds its resend cooldown, which may outlast the code (resendInterval longer
// than ttl): the purge keeps the row until both have passed, or the next request would get a new
// code at once (hostile review 2026-12-05).
for (const dialect of dialects) {
  t.test(`${dialect}: the purge keeps an expired code's row while its resend cooldown lasts`, async (t) => {
    const test = await buildApp(t, dialect, { purgeInterval: false, otp: { ttl: '1s', resendInterval: '10m' } })
    const phone = '+14155550123'
    await test.app.inject({ method: 'POST', url: '/api/auth/register', payload: { phone } })
    const login = () => test.app.inject({ method: 'POST', url: '/api/auth/login', payload: { phone } })
    t.equal((await login()).statusCode, 200)
    // Two seconds on: the code has expired, its cooldown has not. Without the app's options the
    // purge keeps a row as long as any cooldown could last (resendInterval at most 1h).
    t.same(await purgeExpired(test.database.db, { now: new Date(Date.now() + 2_000) }), { challenges: 0, sessions: 0, counters: 0, revocations: 0, accounts: 0 }, 'the row stays')
    const again = await login()
    t.equal(again.statusCode, 429, 'the cooldown still holds')
    t.equal(again.json().code, 'SECURELOGIN_OTP_RESEND_TOO_SOON')
    t.equal(test.outbox.messages.filter((message) => message.to === phone).length, 1, 'one code sent')
    t.equal((await purgeExpired(test.database.db, { now: new Date(Date.now() + 3_601_000) })).challenges, 1, 'once any cooldown is over, it goes')
  })

  t.test(`${dialect}: the scheduled purge keeps an expired code's row until the app's resend interval has passed`, async (t) => {
    const test = await buildApp(t, dialect, { purgeInterval: '1s', otp: { ttl: '1s', resendInterval: '10s' } })
    const phone = '+14155550124'
    await test.app.inject({ method: 'POST', url: '/api/auth/register', payload: { phone } })
    const login = () => test.app.inject({ method: 'POST', url: '/api/auth/login', payload: { phone } })
    t.equal((await login()).statusCode, 200)
    const sentAt = Date.now()
    const rows = async (of: string) => (await test.database.query('SELECT phone FROM securelogin_otp_challenges WHERE phone = $1', [of])).length
    await new Promise((resolve) => setTimeout(resolve, 1_100))
    // Once the code has expired, a row whose cooldown is over (expired 10 s ago; resendInterval −
    // ttl is 9 s): its going shows that the purge has run since.
    const { otpChallenges } = (dialect === 'sqlite' ? sqliteTables : postgresTables) as unknown as typeof postgresTables
    const db = test.database.db as unknown as import('drizzle-orm/pg-core').PgDatabase<any, any, any>
    const done = '+14155550125'
    await db.insert(otpChallenges).values({ phone: done, challengeId: randomUUID(), codeHash: 'h', attempts: 0, sentAt: new Date(Date.now() - 11_000), expiresAt: new Date(Date.now() - 10_000), consumedAt: null })
    while (await rows(done) > 0 && Date.now() - sentAt < 8_000) await new Promise((resolve) => setTimeout(resolve, 50))
    t.equal(await rows(done), 0, 'the purge ran after the code expired')
    t.ok(Date.now() - sentAt < 9_000, 'within the cooldown')
    t.equal(await rows(phone), 1, 'it kept the row: the cooldown lasts')
    t.equal((await login()).json().code, 'SECURELOGIN_OTP_RESEND_TOO_SOON', 'and holds')
  })
}
