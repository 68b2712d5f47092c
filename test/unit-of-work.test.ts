import { join } from 'node:path'
import { Writable } from 'node:stream'
import Database from 'better-sqlite3'
import Fastify from 'fastify'
import t from 'tap'
import secureLogin, { migrate, type SecureLoginOptions } from '../lib/index.js'
import { withDeadline } from '../lib/store/deadline.js'
import { createStore } from '../lib/store/index.js'
import { createUnitOfWork, type UnitOfWorkMisuse } from '../lib/store/unit-of-work.js'
import { buildApp, caught, createOutbox, createTestDatabase, dialects, post, TEST_SECRET, testPhone } from './helper.js'

// store.unitOfWork (lib/store/unit-of-work.ts): on better-sqlite3 a request's writes are committed
// together, and only grouped: nothing is rolled back, and every unit's writes are committed by the
// time it returns. Each SQLite test reads through a second connection to the same file, which sees
// only what was committed.

type Tap = Parameters<typeof createTestDatabase>[0]

async function sqliteStore (t: Tap) {
  const file = join(t.testdir(), 'unit.db')
  const database = await createTestDatabase(t, 'sqlite', file)
  await migrate(database.db)
  const observer = new Database(file, { readonly: true })
  const writer = new Database(file, { timeout: 0 })
  t.teardown(() => { observer.close(); writer.close() })
  const client = (database.db as unknown as { $client: Database.Database }).$client
  const countersSeen = () => (observer.prepare('SELECT key, count FROM securelogin_rate_limits ORDER BY key').all() as Array<{ key: string, count: number }>)
  const misused: Array<Parameters<UnitOfWorkMisuse>[0]> = []
  return { store: createStore(database.db, 'sqlite', (problem) => misused.push(problem)), client, countersSeen, writer, misused }
}

t.test('sqlite: a unit\'s writes are one transaction, committed when it returns', async (t) => {
  const { store, client, countersSeen, writer, misused } = await sqliteStore(t)
  const now = new Date()
  const answer = await store.unitOfWork(async () => {
    // BEGIN IMMEDIATE, not BEGIN: the write lock from the start, so a unit whose first statement
    // reads is never refused its first write because another process wrote in between.
    t.throws(() => writer.exec('BEGIN IMMEDIATE'), { code: 'SQLITE_BUSY' }, 'another connection cannot write while the unit is open, even before its first write')
    await store.hitRateLimit('a', 60_000, now)
    await store.hitRateLimit('b', 60_000, now)
    t.same(countersSeen(), [], 'inside the unit, another connection sees none of its writes yet')
    t.equal(client.inTransaction, true)
    return 42
  })
  t.equal(answer, 42, 'the work\'s answer')
  t.equal(client.inTransaction, false, 'nothing left open')
  t.same(countersSeen(), [{ key: 'a', count: 1 }, { key: 'b', count: 1 }], 'both committed')
  t.same(misused, [], 'it only awaited the store')
})

t.test('sqlite: what a unit counted before it threw stays counted', async (t) => {
  const { store, client, countersSeen } = await sqliteStore(t)
  const refused = new Error('refused after counting')
  await t.rejects(store.unitOfWork(async () => {
    await store.hitRateLimit('client', 60_000, new Date())
    throw refused
  }), refused, 'the work\'s error')
  t.equal(client.inTransaction, false)
  t.same(countersSeen(), [{ key: 'client', count: 1 }], 'committed, not rolled back: a refused request is still counted')
})

t.test('sqlite: a unit that finds another\'s transaction open joins it and still commits at its own end', async (t) => {
  const { store, client, countersSeen, misused } = await sqliteStore(t)
  const now = new Date()
  // Against the contract (the first unit awaits something other than the store), to stand for
  // interleaved awaits: the second unit runs while the first one's transaction is open.
  let release!: () => void
  const held = new Promise<void>((resolve) => { release = resolve })
  const first = store.unitOfWork(async () => {
    await store.hitRateLimit('first', 60_000, now)
    await held
    await store.hitRateLimit('first-after', 60_000, now)
  })
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(client.inTransaction, true, 'the first unit\'s transaction is open')
  await store.unitOfWork(async () => { await store.hitRateLimit('second', 60_000, now) })
  t.same(countersSeen(), [{ key: 'first', count: 1 }, { key: 'second', count: 1 }], 'the second unit returned with its writes (and what shared its transaction) committed')
  release()
  await first
  t.equal(client.inTransaction, false)
  t.same(countersSeen().map((row) => row.key), ['first', 'first-after', 'second'])
  t.same(misused, ['joined-open-transaction', 'waited-for-io'], 'both broken rules are told: the second unit joined, the first waited for the event loop')
})

t.test('sqlite: a commit that fails is an error of the unit, and leaves no transaction open', async (t) => {
  const { store, client, countersSeen } = await sqliteStore(t)
  // A foreign key checked at commit time: the one way to make a COMMIT fail on demand.
  client.pragma('defer_foreign_keys = ON')
  await t.rejects(store.unitOfWork(async () => {
    await store.hitRateLimit('counted', 60_000, new Date())
    client.prepare("INSERT INTO securelogin_sessions (id, user_id, generation, created_at, refreshed_at, expires_at) VALUES ('s', 'no such account', 0, 0, 0, 0)").run()
    return 'answered'
  }), { code: 'SQLITE_CONSTRAINT_FOREIGNKEY' }, 'the commit\'s error, not the work\'s answer: what it counted was not written')
  t.equal(client.inTransaction, false, 'rolled back, not left open for the next request to join')
  t.same(countersSeen(), [])
  await store.unitOfWork(async () => { await store.hitRateLimit('next', 60_000, new Date()) })
  t.same(countersSeen(), [{ key: 'next', count: 1 }], 'the next unit commits on its own')
})

t.test('only a synchronous better-sqlite3 connection is grouped: other drivers just run the work', async (t) => {
  const calls: string[] = []
  const lookalike = { inTransaction: false, exec: (source: string) => { calls.push(source) } }
  // An asynchronous SQLite driver (libSQL): its statements are awaited, so other requests' would
  // join a transaction held across them.
  t.equal(await createUnitOfWork({ resultKind: 'async', $client: lookalike })(async () => 'async driver'), 'async driver')
  // A synchronous driver whose client cannot run SQL text.
  t.equal(await createUnitOfWork({ resultKind: 'sync', $client: { inTransaction: false } })(async () => 'no exec'), 'no exec')
  t.same(calls, [], 'no BEGIN or COMMIT sent to either')
})

t.test('a unit of work is not bounded by dbTimeout as a whole: each store call in it is', async (t) => {
  const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
  // Three calls of 40 ms under a 100 ms dbTimeout: each is in time, their sum is not.
  const store = withDeadline({
    unitOfWork: async <T>(work: () => Promise<T>) => work(),
    slowCall: async () => { await delay(40); return 'answered' },
  }, 100)
  const answers = await store.unitOfWork(async () => [await store.slowCall(), await store.slowCall(), await store.slowCall()])
  t.same(answers, ['answered', 'answered', 'answered'], 'no 503 for a request whose every call was in time')
  await t.rejects(withDeadline({ lateCall: async () => { await delay(150) } }, 100).lateCall(), { code: 'SECURELOGIN_UNAVAILABLE' }, 'while a single call past dbTimeout still answers 503')
})

t.test('a unit of work: a failure of its own statements answers 503, what its work throws goes out as it is', async (t) => {
  // A unit awaits nothing but the store; were it ever to await something else, a socket error of
  // that (a vendor's reset) must not pass for the database's.
  const vendorReset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })
  const store = withDeadline({ unitOfWork: async <T>(work: () => Promise<T>) => work() }, 100)
  t.equal(await caught(store.unitOfWork(async () => { throw vendorReset })), vendorReset, "the work's error, not a 503")
  // The unit's BEGIN IMMEDIATE on a file another process holds locked.
  const busy = Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' })
  const locked = withDeadline({ unitOfWork: async <T>(_work: () => Promise<T>): Promise<T> => { throw busy } }, 100)
  t.match(await caught(locked.unitOfWork(async () => 'unreached')), { code: 'SECURELOGIN_UNAVAILABLE', statusCode: 503, cause: busy }, "the unit's own failure: 503")
})

/**
 * Counts the write transactions `client` commits: a unit (BEGIN IMMEDIATE, always committed), a
 * better-sqlite3 transaction() opened outside any other, and a writing statement run on its own.
 */
function countCommits (client: Database.Database) {
  const counter = { commits: 0 }
  const exec = client.exec.bind(client)
  client.exec = (source: string) => { if (source === 'BEGIN IMMEDIATE') counter.commits += 1; return exec(source) }
  const transaction = client.transaction.bind(client)
  client.transaction = ((fn: (...args: unknown[]) => unknown) => {
    const native = transaction(fn)
    const counted = (variant: (...args: unknown[]) => unknown) => (...args: unknown[]) => { if (!client.inTransaction) counter.commits += 1; return variant(...args) }
    return Object.assign(counted(native), { deferred: counted(native.deferred), immediate: counted(native.immediate), exclusive: counted(native.exclusive) })
  }) as unknown as typeof client.transaction
  const prepare = client.prepare.bind(client)
  client.prepare = ((source: string) => {
    const statement = prepare(source)
    for (const method of ['run', 'all', 'get'] as const) {
      const original = statement[method].bind(statement) as (...args: unknown[]) => unknown
      ;(statement as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
        if (!statement.readonly && !client.inTransaction) counter.commits += 1
        return original(...args)
      }
    }
    return statement
  }) as typeof client.prepare
  return counter
}

/** The plugin on SQLite with `options`, what it logs at error level, and a counter of its commits (see countCommits). */
async function countedApp (t: Tap, options: Partial<SecureLoginOptions>) {
  const database = await createTestDatabase(t, 'sqlite')
  const logs = { text: '' }
  const app = Fastify({ logger: { level: 'error', stream: new Writable({ write (chunk, _encoding, done) { logs.text += chunk.toString(); done() } }) } })
  database.beforeClose.push(() => app.close())
  const outbox = createOutbox()
  // No housekeeping purge: a batch of it, run on its own, would count as a commit whenever its first run fell within a test.
  await app.register(secureLogin, { db: database.db, sms: outbox.provider, jwt: { secret: TEST_SECRET }, purgeInterval: false, ...options })
  await app.ready()
  const client = (database.db as unknown as { $client: Database.Database }).$client
  return { app, outbox, logs, client, counter: countCommits(client) }
}

t.test('sqlite: each sign-in step commits its writes in as few transactions as its awaits allow, and no unit waits for anything but the store', async (t) => {
  // An app hook that waits for a service: it must run outside the unit.
  const beforeSend = async () => { await new Promise((resolve) => setTimeout(resolve, 5)); return true }
  const { app, outbox, logs, client, counter } = await countedApp(t, { beforeSend })
  const commitsOf = async (url: string, payload: object, status: number) => {
    counter.commits = 0
    const answer = await post(app, url, payload)
    t.equal(answer.statusCode, status, answer.body)
    return counter.commits
  }
  const phone = testPhone()
  t.equal(await commitsOf('/register', { phone }, 201), 1, 'register: the client\'s count and the account')
  t.equal(await commitsOf('/login', { phone }, 200), 2, 'login: the client\'s count before beforeSend, then the code and its counted sends')
  const code = outbox.lastCodeFor(phone)
  t.equal(await commitsOf('/verify_sms', { phone, token: code === '000000' ? '111111' : '000000' }, 401), 1, 'a wrong code: the client\'s count, the slot and the attempt')
  t.equal(await commitsOf('/verify_sms', { phone, token: code }, 200), 1, 'the right code: the counts, the attempt, the number proved, the session and the slot\'s give-back')
  t.equal(logs.text, '', 'no unit broke its rule (beforeSend waited outside)')
  t.equal(client.inTransaction, false)
})

t.test('sqlite: with a jwt.claims hook, which may wait, the session opens after the check\'s unit', async (t) => {
  const claims = async () => { await new Promise((resolve) => setTimeout(resolve, 5)); return { tenant: 'acme' } }
  const { app, outbox, logs, client, counter } = await countedApp(t, { jwt: { secret: TEST_SECRET, claims } })
  const phone = testPhone()
  t.equal((await post(app, '/register', { phone })).statusCode, 201)
  t.equal((await post(app, '/login', { phone })).statusCode, 200)
  counter.commits = 0
  const answer = await post(app, '/verify_sms', { phone, token: outbox.lastCodeFor(phone) })
  t.equal(answer.statusCode, 200, answer.body)
  t.equal(counter.commits, 2, 'the counts, the attempt, the number proved and the slot\'s give-back; then, after the hook, the session')
  t.equal(logs.text, '', 'no unit waited for the hook')
  t.equal(client.inTransaction, false)
})

for (const dialect of dialects) {
  t.test(`${dialect}: every sign-in step leaves no transaction open, and a wrong code stays counted`, async (t) => {
    const test = await buildApp(t, dialect, { rateLimit: { failedVerifiesPerPhone: { max: 3, window: '1h' } } })
    const phone = testPhone()
    t.equal((await post(test.app, '/register', { phone })).statusCode, 201)
    t.equal((await post(test.app, '/login', { phone })).statusCode, 200)
    const code = test.outbox.lastCodeFor(phone)
    const wrong = code === '000000' ? '111111' : '000000'
    t.equal((await post(test.app, '/verify_sms', { phone, token: wrong })).statusCode, 401)
    const client = (test.database.db as unknown as { $client: { inTransaction?: boolean } }).$client
    if (dialect === 'sqlite') t.equal(client.inTransaction, false, 'committed before the answer')
    const counters = await test.database.query('SELECT key, count FROM securelogin_rate_limits')
    t.ok(counters.some((row) => String(row.key).startsWith('verify:ip:')), 'the client\'s check is counted')
    t.equal(counters.filter((row) => String(row.key).startsWith(`verify:fail:phone:${phone}#`)).length, 1, 'the wrong guess keeps its slot')
    t.equal((await test.database.query('SELECT attempts FROM securelogin_otp_challenges'))[0]!.attempts, 1, 'the attempt is counted')
    t.equal((await post(test.app, '/verify_sms', { phone, token: code })).statusCode, 200)
    if (dialect === 'sqlite') t.equal(client.inTransaction, false)
  })
}
