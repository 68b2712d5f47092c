import { join } from 'node:path'
import Database from 'better-sqlite3'
import { drizzle as drizzleProxy } from 'drizzle-orm/sqlite-proxy'
import t, { type Test } from 'tap'
import { migrate, type SecureLoginDatabase } from '../lib/index.js'
import { createStore } from '../lib/store/index.js'
import { buildApp, createTestDatabase, dialects, post, testPhone } from './helper.js'

// A fault between two writes must leave both or neither: here the session insert fails (a trigger
// refuses it, as a full disk or a lost connection would), and the code must still work afterwards.
for (const dialect of dialects) {
  t.test(`${dialect}: a session that cannot be written leaves the code unused`, async (t) => {
    const test = await buildApp(t, dialect)
    const { app, outbox, database } = test
    const phone = testPhone()
    await post(app, '/register', { phone })
    t.equal((await post(app, '/login', { phone })).statusCode, 200)
    const code = outbox.lastCodeFor(phone)

    if (dialect === 'sqlite') {
      await database.query("CREATE TRIGGER refuse_sessions BEFORE INSERT ON securelogin_sessions BEGIN SELECT RAISE(ABORT, 'no sessions now'); END")
    } else {
      await database.query("CREATE FUNCTION refuse_sessions() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no sessions now'; END $$")
      await database.query('CREATE TRIGGER refuse_sessions BEFORE INSERT ON securelogin_sessions FOR EACH ROW EXECUTE FUNCTION refuse_sessions()')
    }
    const failed = await post(app, '/verify_sms', { phone, token: code })
    t.equal(failed.statusCode, 500, 'the failed write is a server error')
    t.equal(failed.json().code, 'SECURELOGIN_INTERNAL')
    const [challenge] = await database.query('SELECT consumed_at FROM securelogin_otp_challenges WHERE phone = $1', [phone])
    t.equal(challenge?.consumed_at, null, 'the code was not used up')
    t.same(await database.query('SELECT id FROM securelogin_sessions'), [], 'and no session exists')

    await database.query('DROP TRIGGER refuse_sessions' + (dialect === 'sqlite' ? '' : ' ON securelogin_sessions'))
    const retried = await post(app, '/verify_sms', { phone, token: code })
    t.equal(retried.statusCode, 200, 'the same code signs in once the database takes writes again')
    t.equal((await post(app, '/verify_sms', { phone, token: code })).json().code, 'SECURELOGIN_OTP_EXPIRED', 'and only once')
  })
}

/**
 * An asynchronous SQLite driver (libSQL's kind), here Drizzle's sqlite-proxy over better-sqlite3:
 * the store takes its other path, one async transaction for the code and its session, and hits
 * given back for a refused take of several counters. A file of its own per test.
 */
function asyncSqlite (t: Test) {
  const sqlite = new Database(join(t.testdir(), 'async.db'))
  t.teardown(() => sqlite.close())
  const db = drizzleProxy(async (text, params, method) => {
    const statement = sqlite.prepare(text)
    if (!statement.reader) { statement.run(...params); return { rows: [] } }
    const rows = statement.raw().all(...params) as unknown[][]
    return { rows: method === 'get' ? rows[0] ?? [] : rows }
  })
  return { db: db as unknown as SecureLoginDatabase, sqlite }
}

t.test('async sqlite: a code and its session are written both or neither, and once', async (t) => {
  const { db, sqlite } = asyncSqlite(t)
  await migrate(db)
  const store = createStore(db, 'sqlite')
  const now = new Date()
  const phone = '+14155550191'
  const challengeId = '00000000-0000-4000-8000-000000000001'
  const { user } = await store.registerUser('6f1c1b5e-2d3a-4b7c-9d8e-0f1a2b3c4d5e', phone, undefined, now)
  await store.openChallenge({ phone, challengeId, codeHash: 'h', now, expiresAt: new Date(now.getTime() + 60_000), resendIntervalMs: 0 })
  const consume = () => store.consumeIntoSession({ phone, challengeId, userId: user.id, now, expiresAt: new Date(now.getTime() + 3_600_000), device: { userAgent: null, ip: null } })

  sqlite.exec("CREATE TRIGGER refuse_sessions BEFORE INSERT ON securelogin_sessions BEGIN SELECT RAISE(ABORT, 'no sessions now'); END")
  await t.rejects(consume(), 'the session insert fails')
  t.equal((await store.findChallenge(phone))?.consumedAt, null, 'and the code was not used up')
  sqlite.exec('DROP TRIGGER refuse_sessions')

  const session = await consume()
  t.match(session, { userId: user.id, generation: 0, revokedAt: null }, 'the code opens a session')
  t.ok((await store.findChallenge(phone))?.consumedAt instanceof Date, 'and is used up')
  t.equal(await consume(), undefined, 'only once')
  t.same(sqlite.prepare('SELECT count(*) AS n FROM securelogin_sessions').get(), { n: 1 }, 'one session in all')
})

t.test('async sqlite: takeRateLimits counts a hit on every counter or on none', async (t) => {
  const { db, sqlite } = asyncSqlite(t)
  await migrate(db)
  const store = createStore(db, 'sqlite')
  const now = new Date()
  const full = { key: 'full', windowMs: 60_000, max: 1 }
  const room = { key: 'room', windowMs: 60_000, max: 5 }
  t.equal(await store.takeRateLimits([full], now), -1, 'the last hit a counter allows')
  t.equal(await store.takeRateLimits([room, full], now), 1, 'refused by the full counter')
  t.same(sqlite.prepare('SELECT key, count FROM securelogin_rate_limits ORDER BY key').all(), [{ key: 'full', count: 1 }, { key: 'room', count: 0 }], 'the hit on the other given back')
})

// The send limits a code counts against are taken all or none: a write that fails half-way (a
// lost connection, a full disk; here a trigger refuses one counter) must not leave the others
// counted, or a failed login would spend the number's allowance without sending anything.
for (const dialect of dialects) {
  t.test(`${dialect}: takeRateLimits that fails half-way leaves no hit counted`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    await migrate(database.db)
    const store = createStore(database.db, dialect)
    if (dialect === 'sqlite') {
      await database.query("CREATE TRIGGER refuse_counter BEFORE INSERT ON securelogin_rate_limits WHEN NEW.key = 'refused' BEGIN SELECT RAISE(ABORT, 'no counter now'); END")
    } else {
      await database.query("CREATE FUNCTION refuse_counter() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.key = 'refused' THEN RAISE EXCEPTION 'no counter now'; END IF; RETURN NEW; END $$")
      await database.query('CREATE TRIGGER refuse_counter BEFORE INSERT ON securelogin_rate_limits FOR EACH ROW EXECUTE FUNCTION refuse_counter()')
    }
    const now = new Date()
    const room = { key: 'room', windowMs: 60_000, max: 5 }
    t.equal(await store.takeRateLimits([room], now), -1)
    const failure = await store.takeRateLimits([room, { key: 'refused', windowMs: 60_000, max: 5 }], now).then(() => undefined, (error: Error) => error)
    // Drizzle wraps PostgreSQL's error in one that names the query.
    t.match(`${failure?.message} ${(failure?.cause as Error | undefined)?.message}`, /no counter now/, 'the failure is the caller\'s error')
    t.same(await database.query("SELECT key, count FROM securelogin_rate_limits ORDER BY key"), [{ key: 'room', count: 1 }], 'only the hit of before: the one taken before the failure was given back')
  })
}
