import { drizzle } from 'drizzle-orm/node-postgres'
import pg from 'pg'
import t, { type Test } from 'tap'
import { migrate } from '../lib/index.js'
import { parseClientAddress } from '../lib/client-ip.js'
import { clientLimitKeys, countHits, enforceClientLimit, limitHits, planChecks, slidingWindow, takeSlots, type Check } from '../lib/rate-limit.js'
import { createStore, type Store } from '../lib/store/index.js'
import { createTestDatabase, dialects, lockWaited, postgresUrl, type Dialect } from './helper.js'

// The counting functions of lib/rate-limit.ts on a real store of each dialect, with the time passed
// in: the counters' keys, each limit's exact boundary, the seconds a refusal tells, and what a
// refused request leaves counted. The route tests see these only through a few status codes.

const SECOND = 1000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE
const T0 = new Date('2030-01-01T00:00:00Z').getTime()

const at = (ms: number) => new Date(T0 + ms)

/** planChecks over a store, as login uses it: every counter of `checks` read in one statement, then checked. */
async function refuseIfAnyFull (store: Store, checks: readonly Check[], now: Date): Promise<void> {
  const plan = planChecks(checks)
  plan.refuseIfAnyFull(await store.readCounters(plan.keys), now)
}

/**
 * One migrated database of the dialect for the whole file (creating one per test would cost more
 * than the tests): each test counts under its own `prefix`, and reads back only its counters.
 */
async function storeFor (t: Test, dialect: Dialect) {
  const database = await createTestDatabase(t, dialect)
  await migrate(database.db)
  const store = createStore(database.db, dialect)
  let tests = 0
  return {
    store,
    database,
    /** A key prefix of its own (or the one given), and its counters by key without the prefix. */
    scope (given?: string) {
      const prefix = given ?? `t${++tests}:`
      const counters = async (): Promise<Record<string, number>> => {
        const rows = await database.query('SELECT key, count FROM securelogin_rate_limits WHERE key LIKE $1 ORDER BY key', [`${prefix}%`])
        return Object.fromEntries(rows.map((row) => [String(row.key).slice(prefix.length), Number(row.count)]))
      }
      return { prefix, counters }
    },
  }
}

/** The error `run` throws, or undefined. */
async function refusalOf (run: Promise<unknown>): Promise<{ code?: string, retryAfter?: number, seconds?: number } | undefined> {
  return run.then(() => undefined, (error: unknown) => error as { code?: string, retryAfter?: number })
}

/** A refusal that records the seconds it was given. */
const refusedAfter = (seconds: number) => Object.assign(new Error('refused'), { seconds })

/** One request counted on `key` under each of `rules`. */
const hit = (store: Store, key: string, rules: ReadonlyArray<{ max: number, windowMs: number }>, now: Date) => countHits(store, limitHits(key, rules, now))

for (const dialect of dialects) {
  const shared = storeFor(t, dialect)

  t.test(`${dialect}: countHits of limitHits`, async (t) => {
    const { store, scope } = await shared
    const { prefix: p, counters } = scope()
    const hourly = [{ max: 2, windowMs: HOUR }]
    await hit(store, `${p}k`, hourly, at(0))
    await hit(store, `${p}k`, hourly, at(0))
    t.same(await counters(), { k: 2 }, 'one rule: counted under the key itself')
    const refused = await refusalOf(hit(store, `${p}k`, hourly, at(30 * MINUTE + 500)))
    t.match(refused, { code: 'SECURELOGIN_RATE_LIMITED', retryAfter: 1800 }, 'the hit past max is refused (429) with the seconds left in the window, rounded up')
    t.same(await counters(), { k: 3 }, 'the refused hit counted too')

    const refusedLate = await refusalOf(hit(store, `${p}k`, hourly, at(HOUR - 1)))
    t.match(refusedLate, { retryAfter: 1 }, 'the last millisecond of a window still tells 1 second, never 0')

    const two = [{ max: 1, windowMs: MINUTE }, { max: 5, windowMs: HOUR }]
    await hit(store, `${p}multi`, two, at(0))
    t.match(await counters(), { 'multi/60s': 1, 'multi/3600s': 1 }, 'several rules: one counter per window, named by its seconds')
    t.match(await refusalOf(hit(store, `${p}multi`, two, at(SECOND))), { retryAfter: 59 }, 'the full rule refuses, with its own window\'s seconds')
  })

  t.test(`${dialect}: refuseIfAnyFull counts nothing and refuses at max`, async (t) => {
    const { store, scope } = await shared
    const { prefix: p, counters } = scope()
    const rules = [{ max: 2, windowMs: MINUTE }]
    await refuseIfAnyFull(store, [{ key: `${p}k`, rules }], at(0))
    t.same(await counters(), {}, 'no counter, no refusal, nothing counted')
    await hit(store, `${p}k`, rules, at(0))
    await refuseIfAnyFull(store, [{ key: `${p}k`, rules }], at(0))
    t.same(await counters(), { k: 1 }, 'below max: not refused, not counted')
    await hit(store, `${p}k`, rules, at(0))
    t.match(await refusalOf(refuseIfAnyFull(store, [{ key: `${p}k`, rules }], at(20 * SECOND))), { code: 'SECURELOGIN_RATE_LIMITED', retryAfter: 40 }, 'at max: refused with the seconds left')
    t.equal((await refusalOf(refuseIfAnyFull(store, [{ key: `${p}k`, rules, refusal: refusedAfter }], at(20 * SECOND))))?.seconds, 40, 'or with the given refusal')
    await refuseIfAnyFull(store, [{ key: `${p}k`, rules }], at(MINUTE))
    t.pass('a window that has ended refuses nothing')
  })

  t.test(`${dialect}: refuseIfAnyFull reads every check's counters in one statement and refuses with the first full check, in order`, async (t) => {
    const { store, scope } = await shared
    const { prefix: p, counters } = scope()
    const minute = [{ max: 1, windowMs: MINUTE }]
    const hour = [{ max: 1, windowMs: HOUR }]
    const refusedBy = (name: string) => (seconds: number) => Object.assign(new Error(name), { seconds })
    const reads: string[][] = []
    const counting: Store = { ...store, readCounters: async (keys) => { reads.push([...keys]); return await store.readCounters(keys) } }
    await hit(store, `${p}a`, minute, at(0))
    await hit(store, `${p}b`, minute, at(0))
    await slidingWindow.take(store, `${p}lock`, hour, at(0))
    const lock = { key: `${p}lock`, rules: hour, refusal: refusedBy('lock'), sliding: true }
    const a = { key: `${p}a`, rules: minute, refusal: refusedBy('a') }
    const b = { key: `${p}b`, rules: minute, refusal: refusedBy('b') }
    const before = await counters()

    t.match(await refusalOf(refuseIfAnyFull(counting, [lock, a, b], at(SECOND))), { message: 'lock', seconds: 3599 }, 'the first check, a sliding window')
    t.same(reads, [[`${p}lock#0`, `${p}a`, `${p}b`]], 'every counter of every check in one read')
    t.match(await refusalOf(refuseIfAnyFull(counting, [b, a], at(SECOND))), { message: 'b', seconds: 59 }, 'in the order given')
    t.match(await refusalOf(refuseIfAnyFull(counting, [a, lock], at(MINUTE))), { message: 'lock' }, 'a fixed window that has ended is passed over')
    await refuseIfAnyFull(counting, [a, b, { key: `${p}never`, rules: minute }], at(MINUTE))
    await refuseIfAnyFull(counting, [], at(0))
    t.same(await counters(), before, 'nothing counted by any of it')
  })

  t.test(`${dialect}: takeSlots takes a slot of every rule of every limit, or none`, async (t) => {
    const { store, scope } = await shared
    const { prefix: p, counters } = scope()
    const limits = [
      { key: `${p}a`, rules: [{ max: 3, windowMs: MINUTE }] },
      { key: `${p}b`, rules: [{ max: 1, windowMs: MINUTE }, { max: 10, windowMs: HOUR }], refusal: refusedAfter },
    ]
    await takeSlots(store, limits, at(0))
    t.same(await counters(), { a: 1, 'b/3600s': 1, 'b/60s': 1 })
    const refused = await refusalOf(takeSlots(store, limits, at(15 * SECOND)))
    t.equal(refused?.seconds, 45, 'the full rule\'s own refusal, with the seconds left in its window')
    t.same(await counters(), { a: 1, 'b/3600s': 1, 'b/60s': 1 }, 'and the slots already taken given back')

    const first = [{ key: `${p}c`, rules: [{ max: 1, windowMs: MINUTE }] }, { key: `${p}d`, rules: [{ max: 5, windowMs: MINUTE }] }]
    await takeSlots(store, first, at(0))
    t.match(await refusalOf(takeSlots(store, first, at(SECOND))), { code: 'SECURELOGIN_RATE_LIMITED', retryAfter: 59 }, 'without a refusal of its own, 429')

    // The counter was full, then purged before it could be read for its window's end.
    const purgedMeanwhile: Store = { ...store, takeRateLimits: async () => 0, readRateLimit: async () => undefined }
    const gone = [{ key: `${p}e`, rules: [{ max: 1, windowMs: 90 * SECOND }], refusal: refusedAfter }]
    t.equal((await refusalOf(takeSlots(purgedMeanwhile, gone, at(0))))?.seconds, 90, 'a full counter gone before it was read: the whole window')
  })

  t.test(`${dialect}: a sliding window allows max hits in any span of one window`, async (t) => {
    const { store, scope } = await shared
    const { prefix: p } = scope()
    const rules = [{ max: 2, windowMs: MINUTE }]
    t.same(slidingWindow.slotKeys(`${p}k`, rules[0]!, rules), [`${p}k#0`, `${p}k#1`], 'one slot per allowed hit')
    t.same(await slidingWindow.take(store, `${p}k`, rules, at(0)), [`${p}k#0`], 'the first free slot')
    t.same(await slidingWindow.take(store, `${p}k`, rules, at(40 * SECOND)), [`${p}k#1`], 'then the next')
    const full = await refusalOf(slidingWindow.take(store, `${p}k`, rules, at(50 * SECOND)))
    t.match(full, { code: 'SECURELOGIN_RATE_LIMITED', retryAfter: 10 }, 'both taken: refused until the first frees, a window after it was taken')
    t.equal((await refusalOf(refuseIfAnyFull(store, [{ key: `${p}k`, rules, refusal: refusedAfter, sliding: true }], at(50 * SECOND))))?.seconds, 10, 'refuseIfAnyFull tells the same')
    t.match(await refusalOf(refuseIfAnyFull(store, [{ key: `${p}k`, rules, sliding: true }], at(50 * SECOND))), { code: 'SECURELOGIN_RATE_LIMITED', retryAfter: 10 }, 'with 429 by default')
    t.same(await slidingWindow.take(store, `${p}k`, rules, at(MINUTE)), [`${p}k#0`], 'exactly a window after it was taken, a slot is free again')
    t.match(await refusalOf(slidingWindow.take(store, `${p}k`, rules, at(MINUTE + 39 * SECOND + 500))), { retryAfter: 1 }, 'half a second before the next frees: 1 second')

    await slidingWindow.free(store, [`${p}k#0`, `${p}k#1`])
    await refuseIfAnyFull(store, [{ key: `${p}k`, rules, sliding: true }], at(MINUTE + 40 * SECOND))
    t.same(await slidingWindow.take(store, `${p}k`, rules, at(MINUTE + 40 * SECOND)), [`${p}k#0`], 'free gives slots back at once')
  })

  t.test(`${dialect}: a sliding window of several rules takes one slot under each, or none`, async (t) => {
    const { store, scope } = await shared
    const { prefix: p, counters } = scope()
    const rules = [{ max: 1, windowMs: MINUTE }, { max: 1, windowMs: HOUR }]
    t.same(await slidingWindow.take(store, `${p}k`, rules, at(0)), [`${p}k/60s#0`, `${p}k/3600s#0`])
    // The hour's slot is taken, the minute's is free again: the minute's must not stay taken.
    const refused = await refusalOf(slidingWindow.take(store, `${p}k`, rules, at(2 * MINUTE), refusedAfter))
    t.equal(refused?.seconds, 58 * 60, 'refused by the hourly rule, for the rest of its hour')
    const minuteSlot = (await slidingWindow.inUse(store, `${p}k`, rules[0]!, rules, at(2 * MINUTE))).free
    t.same(minuteSlot, [`${p}k/60s#0`], 'the minute\'s slot taken by the refused hit was freed')
    t.same(await slidingWindow.inUse(store, `${p}k`, rules[1]!, rules, at(2 * MINUTE)), { free: [], secondsUntilFree: 58 * 60 })
    t.same(await slidingWindow.inUse(store, `${p}never`, rules[1]!, rules, at(0)), { free: [`${p}never/3600s#0`], secondsUntilFree: 1 }, 'nothing in use: every slot free')

    await slidingWindow.reset(store, `${p}k`, rules)
    t.same(await counters(), {}, 'reset deletes every slot of every rule')
  })

  t.test(`${dialect}: openChallengeTaking opens the code and takes its counters, or takes none`, async (t) => {
    const { store, scope } = await shared
    const { prefix: p, counters } = scope()
    const phone = `+1415555${String(1000 + (process.pid % 9000)).padStart(4, '0')}`
    const code = (challengeId: string, ms: number) => ({ phone, challengeId, codeHash: 'hash', now: at(ms), expiresAt: at(ms + 10 * MINUTE), resendIntervalMs: 30 * SECOND })
    const sends = [{ key: `${p}a`, windowMs: MINUTE, max: 2 }, { key: `${p}b`, windowMs: HOUR, max: 1 }]

    const first = await store.openChallengeTaking(code('00000000-0000-4000-8000-00000000000a', 0), sends)
    t.equal(first.full, -1, 'every counter had room')
    t.equal(first.challenge?.challengeId, '00000000-0000-4000-8000-00000000000a', 'and the code is open')
    t.same(await counters(), { a: 1, b: 1 }, 'one hit on each')

    const tooSoon = await store.openChallengeTaking(code('00000000-0000-4000-8000-00000000000b', SECOND), sends)
    t.same(tooSoon, { challenge: undefined, full: -1 }, 'inside the resend interval: no code')
    t.same(await counters(), { a: 1, b: 1 }, 'and nothing counted')
    t.equal((await store.findChallenge(phone))?.challengeId, '00000000-0000-4000-8000-00000000000a', 'the first code stays')

    const full = await store.openChallengeTaking(code('00000000-0000-4000-8000-00000000000c', MINUTE / 2), sends)
    t.equal(full.full, 1, 'the second counter is full')
    t.equal(full.challenge?.challengeId, '00000000-0000-4000-8000-00000000000c', 'the code was opened')
    t.same(await counters(), { a: 1, b: 1 }, 'the hit on the first counter was given back')
    t.equal((await store.findChallenge(phone))?.challengeId, '00000000-0000-4000-8000-00000000000a', 'and the code it replaced is back')
  })

  t.test(`${dialect}: readRateLimit reads a counter only inside its window`, async (t) => {
    const { store, scope } = await shared
    const { prefix: p } = scope()
    const counter = { key: `${p}k`, windowMs: MINUTE, max: 5 }
    await store.takeRateLimits([counter], at(0))
    await store.takeRateLimits([counter], at(SECOND))
    t.same(await store.readRateLimit(`${p}k`, MINUTE, at(MINUTE - 1)), { count: 2, resetAt: at(MINUTE) }, 'the last millisecond of the window')
    t.equal(await store.readRateLimit(`${p}k`, MINUTE, at(MINUTE)), undefined, 'a window that has ended holds no count, from its very end')
    t.equal(await store.readRateLimit(`${p}never`, MINUTE, at(0)), undefined, 'nor does a counter never hit')
  })

  t.test(`${dialect}: takeSlidingSlot takes a slot once a window at most, and one of two takers at once`, async (t) => {
    const { store, scope } = await shared
    const { prefix: p } = scope()
    t.equal(await store.takeSlidingSlot(`${p}s`, MINUTE, at(0)), true, 'a slot never taken')
    t.equal(await store.takeSlidingSlot(`${p}s`, MINUTE, at(MINUTE - 1)), false, 'taken less than a window ago')
    t.equal(await store.takeSlidingSlot(`${p}s`, MINUTE, at(MINUTE)), true, 'exactly a window after it was taken')
    const both = await Promise.all([store.takeSlidingSlot(`${p}t`, MINUTE, at(0)), store.takeSlidingSlot(`${p}t`, MINUTE, at(0))])
    t.same(both.sort(), [false, true], 'two at once: one gets it')
  })

  t.test(`${dialect}: takeFirstFreeSlot takes the first free slot in one statement, and never one slot twice`, async (t) => {
    const { store, scope } = await shared
    const { prefix: p } = scope()
    const keys = [`${p}s#0`, `${p}s#1`, `${p}s#2`]
    t.equal((await store.takeFirstFreeSlot(keys, MINUTE, at(0))).slot, `${p}s#0`, 'the first slot when none is taken')
    t.equal((await store.takeFirstFreeSlot(keys, MINUTE, at(SECOND))).slot, `${p}s#1`, 'then the next')
    t.equal((await store.takeFirstFreeSlot(keys, MINUTE, at(MINUTE - 1))).slot, `${p}s#2`)
    t.equal((await store.takeFirstFreeSlot(keys, MINUTE, at(MINUTE - 1))).slot, undefined, 'none while every slot was taken less than a window ago')
    t.equal((await store.takeFirstFreeSlot(keys, MINUTE, at(MINUTE))).slot, `${p}s#0`, 'a slot exactly a window after it was taken')

    const racing = [`${p}r#0`, `${p}r#1`]
    const taken = (await Promise.all([1, 2, 3].map(() => store.takeFirstFreeSlot(racing, MINUTE, at(0))))).map(({ slot }) => slot).filter((key) => key !== undefined)
    t.ok(taken.length >= 1, 'three at once: at least one wins a slot')
    t.equal(new Set(taken).size, taken.length, 'and no slot is won twice')

    // slidingWindow.take falls back to trying each free slot when its pick was taken meanwhile.
    const rule = [{ max: 2, windowMs: MINUTE }]
    const outcomes = await Promise.all([1, 2, 3].map(() => slidingWindow.take(store, `${p}w`, rule, at(0)).then((slots) => slots[0], () => 'refused')))
    t.same(outcomes.sort(), ['refused', `${p}w#0`, `${p}w#1`], 'three takes of a window of two at once: both slots, once each, and one refusal')
  })

  t.test(`${dialect}: takeRateLimits throws a database error, never taking it for room or a full counter`, async (t) => {
    const { store, scope, database } = await shared
    const { prefix: p } = scope()
    const broken = `${p}broken`
    if (dialect === 'sqlite') {
      await database.query(`CREATE TRIGGER refuse_counters BEFORE INSERT ON securelogin_rate_limits WHEN NEW.key = '${broken}' BEGIN SELECT RAISE(ABORT, 'counters refused by the test'); END`)
    } else {
      await database.query("CREATE FUNCTION refuse_counters() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'counters refused by the test'; END $$")
      await database.query(`CREATE TRIGGER refuse_counters BEFORE INSERT ON securelogin_rate_limits FOR EACH ROW WHEN (NEW.key = '${broken}') EXECUTE FUNCTION refuse_counters()`)
    }
    t.teardown(() => database.query('DROP TRIGGER refuse_counters' + (dialect === 'sqlite' ? '' : ' ON securelogin_rate_limits')))
    const counters = [{ key: `${p}ok`, windowMs: MINUTE, max: 5 }, { key: broken, windowMs: MINUTE, max: 5 }]
    const failed = await store.takeRateLimits(counters, at(0)).then(() => undefined, (error: Error) => error)
    // Drizzle wraps the driver's error on PostgreSQL (as its cause), not on better-sqlite3's sync path.
    t.match(failed?.cause ?? failed, { message: 'counters refused by the test' }, 'the take fails with the database\'s error')
  })

  // better-sqlite3 runs the takes in one synchronous transaction: a take refused by its second
  // counter never holds the first, not even while it is being refused.
  if (dialect === 'sqlite') {
    t.test('sqlite: a take refused part-way holds no slot a take beside it could have had', async (t) => {
      const { store, scope } = await shared
      const { prefix: p, counters } = scope()
      const a = { key: `${p}a`, windowMs: MINUTE, max: 1 }
      const full = { key: `${p}full`, windowMs: MINUTE, max: 1 }
      t.equal(await store.takeRateLimits([full], at(0)), -1)
      const [refused, beside] = await Promise.all([store.takeRateLimits([a, full], at(SECOND)), store.takeRateLimits([a], at(SECOND))])
      t.equal(refused, 1, 'refused by its full counter')
      t.equal(beside, -1, 'the other take got the free slot')
      t.same(await counters(), { a: 1, full: 1 }, 'one hit on each, none given back')
    })
  }

  t.test(`${dialect}: enforceClientLimit counts IPv6 clients per /64, /56 and /48, narrowest first`, async (t) => {
    const { store, scope } = await shared
    const { counters } = scope('verify:ip:')
    const rules = [{ max: 1, windowMs: MINUTE }]
    await enforceClientLimit(store, 'verify', parseClientAddress('2001:db8:1:2a3:4:5:6:7')!, rules, at(0))
    t.same(await counters(), {
      '2001:0db8:0001:0200::/56': 1,
      '2001:0db8:0001:02a3::/64': 1,
      '2001:0db8:0001::/48': 1,
    })
    const refused = await refusalOf(enforceClientLimit(store, 'verify', parseClientAddress('2001:db8:1:2a3::9')!, rules, at(0)))
    t.match(refused, { code: 'SECURELOGIN_RATE_LIMITED' }, 'a second hit from the same /64 is refused')
    t.same(await counters(), {
      '2001:0db8:0001:0200::/56': 1,
      '2001:0db8:0001:02a3::/64': 2,
      '2001:0db8:0001::/48': 1,
    }, 'refused at its /64, it spends nothing of the wider networks')
    // Three more /64s of the same /56: its budget is 4 times the rule's max.
    for (const net64 of ['2001:db8:1:2a4::1', '2001:db8:1:2a5::1', '2001:db8:1:2a6::1']) await enforceClientLimit(store, 'verify', parseClientAddress(net64)!, rules, at(0))
    t.match(await refusalOf(enforceClientLimit(store, 'verify', parseClientAddress('2001:db8:1:2a7::1')!, rules, at(0))), { code: 'SECURELOGIN_RATE_LIMITED' }, 'a fifth /64 of the /56 is refused')

    await enforceClientLimit(store, 'send', parseClientAddress('198.51.100.7')!, rules, at(0))
    t.same(await scope('send:ip:').counters(), { '198.51.100.7': 1 }, 'an IPv4 address is counted on its own, under its action')
  })
}

t.test('clientLimitKeys: the network of each scope, host bits zeroed', async (t) => {
  t.same(clientLimitKeys(parseClientAddress('203.0.113.9')!), [{ key: '203.0.113.9', budget: 1 }])
  t.same(clientLimitKeys(parseClientAddress('2001:db8:abcd:ffff:1:2:3:4')!), [
    { key: '2001:0db8:abcd:ffff::/64', budget: 1 },
    { key: '2001:0db8:abcd:ff00::/56', budget: 4 },
    { key: '2001:0db8:abcd::/48', budget: 16 },
  ])
  t.same(clientLimitKeys(parseClientAddress('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')!).map(({ key }) => key), [
    'ffff:ffff:ffff:ffff::/64', 'ffff:ffff:ffff:ff00::/56', 'ffff:ffff:ffff::/48',
  ], 'all bits set: only the prefix kept')
})

const inCi = process.env.CI !== undefined && process.env.CI !== ''

// The fallback of slidingWindow.take, made certain: its one-statement take picks a slot that reads
// as free while another transaction is taking it, waits for that one, and wins nothing.
t.test('postgres: a take whose free slot is taken meanwhile tries the next free one', { skip: postgresUrl === undefined && !inCi ? 'needs SECURELOGIN_TEST_POSTGRES_URL (CI sets it)' : false }, async (t) => {
  const database = await createTestDatabase(t, 'postgres')
  await migrate(database.db)
  const store = createStore(database.db, 'postgres')
  const rule = [{ max: 2, windowMs: MINUTE }]
  t.same(await slidingWindow.take(store, 'lock', rule, at(0)), ['lock#0'])
  const locker = new pg.Client({ connectionString: database.url })
  await locker.connect()
  t.teardown(() => locker.end())
  await locker.query('BEGIN')
  await locker.query('UPDATE securelogin_rate_limits SET window_start = $1 WHERE key = $2', [at(2 * MINUTE), 'lock#0'])
  const take = slidingWindow.take(store, 'lock', rule, at(2 * MINUTE)).catch((error: Error) => error.message)
  t.equal(await lockWaited(database.query), true, 'the take waits for the slot it read as free')
  await locker.query('COMMIT')
  t.same(await take, ['lock#1'], 'and then takes the next free slot')
})

// PostgreSQL takes a request's counters in one statement and gives back the ones it took when
// another was full (hostile review of takeRateLimits). A give-back that lands after another
// request started a new window on the row must not come out of that new window: it erased the
// hit that opened it, and one more send got through that window.
t.test('postgres: a hit given back after its window rolled over is not taken from the new window', { skip: postgresUrl === undefined && !inCi ? 'needs SECURELOGIN_TEST_POSTGRES_URL (CI sets it)' : false }, async (t) => {
  const database = await createTestDatabase(t, 'postgres')
  await migrate(database.db)
  const store = createStore(database.db, 'postgres')
  // Request X's store has one connection, so that a query queued behind X's take holds back X's give-back.
  const xPool = new pg.Pool({ connectionString: database.url, max: 1 })
  t.teardown(() => xPool.end())
  const xStore = createStore(drizzle(xPool), 'postgres')
  const phone = { key: 'send:phone:+14155550100', rules: [{ max: 5, windowMs: MINUTE }] }
  const global = { key: 'send:global', rules: [{ max: 1, windowMs: 10 * MINUTE }] }
  for (let i = 0; i < 4; i++) await takeSlots(store, [phone], at(0))
  await takeSlots(store, [global], at(0))
  const phoneCount = async () => Number((await database.query('SELECT count FROM securelogin_rate_limits WHERE key = $1', [phone.key]))[0]?.count)

  // Request X, at 59 s, waits on the spent global counter's row, held here by another connection;
  // behind it, on X's one connection, a pause that X's give-back will have to wait for.
  const locker = new pg.Client({ connectionString: database.url })
  await locker.connect()
  t.teardown(() => locker.end())
  await locker.query('BEGIN')
  await locker.query('SELECT * FROM securelogin_rate_limits WHERE key = $1 FOR UPDATE', [global.key])
  const x = takeSlots(xStore, [phone, global], at(59 * SECOND)).then(() => 'sent', (error: Error) => error.message)
  const xWaits = () => xPool.totalCount === 1 && xPool.idleCount === 0
  for (let i = 0; i < 500 && !xWaits(); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  const pause = xPool.query('SELECT pg_sleep(1)')
  t.equal(xPool.waitingCount, 1, 'the pause waits for X\'s connection')

  // X takes the number's 5th send of the window opened at 0 and is refused by the global counter;
  // its give-back waits behind the pause, while request Y, at 61 s, opens the number's next window.
  await locker.query('COMMIT')
  for (let i = 0; i < 500 && await phoneCount() !== 5; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(await phoneCount(), 5, 'X holds the 5th send of the first window')
  await takeSlots(store, [phone], at(61 * SECOND))
  t.equal(await phoneCount(), 1, 'Y\'s send opened the new window')
  await pause
  t.not(await x, 'sent', 'X is refused by the spent global budget')
  t.equal(await phoneCount(), 1, 'Y\'s send still counts in the new window')

  let sent = 1
  for (let i = 0; i < 6; i++) if (await takeSlots(store, [phone], at(62 * SECOND + i)).then(() => true, () => false)) sent++
  t.equal(sent, 5, 'at most max sends of the number in the new window')
})

const needsPostgres = { skip: postgresUrl === undefined && !inCi ? 'needs SECURELOGIN_TEST_POSTGRES_URL (CI sets it)' : false }

/**
 * A number with an open code and a full send counter on PostgreSQL, and `whileLocked`: runs `send`
 * while another connection's write (`write` with `params`) is in progress, and commits that write
 * once the send waits for it.
 */
async function sendsAgainstAWrite (t: Test, phone: string) {
  const database = await createTestDatabase(t, 'postgres')
  await migrate(database.db)
  const store = createStore(database.db, 'postgres')
  const code = (challengeId: string, ms: number) => ({ phone, challengeId, codeHash: 'hash', now: at(ms), expiresAt: at(ms + 10 * MINUTE), resendIntervalMs: 30 * SECOND })
  const full = [{ key: 'send:full', windowMs: HOUR, max: 1 }]
  t.equal((await store.openChallengeTaking(code('00000000-0000-4000-8000-0000000000a1', 0), full)).full, -1, 'the first code, and the counter now full')
  const writer = new pg.Client({ connectionString: database.url })
  await writer.connect()
  t.teardown(() => writer.end())
  const whileLocked = async <T>(write: string, params: unknown[], send: () => Promise<T>): Promise<T> => {
    await writer.query('BEGIN')
    await writer.query(write, params)
    let settled = false
    const sending = send().finally(() => { settled = true })
    t.equal(await lockWaited(database.query, () => settled), true, 'the send waits for the other write')
    await writer.query('COMMIT')
    return sending
  }
  return { store, code, full, whileLocked }
}

// openChallengeTaking puts back the code it replaced when a counter is full, but not a code deleted
// (withdrawn, purged, its account deleted) while the send ran: that one must stay gone.
t.test('postgres: a refused send does not bring back a code deleted while it ran', needsPostgres, async (t) => {
  const phone = '+14155550190'
  const { store, code, full, whileLocked } = await sendsAgainstAWrite(t, phone)
  const refused = await whileLocked('DELETE FROM securelogin_otp_challenges WHERE phone = $1', [phone], async () => store.openChallengeTaking(code('00000000-0000-4000-8000-0000000000a2', MINUTE), full))
  t.equal(refused.full, 0, 'refused by the full counter')
  t.equal((await store.findChallenge(phone))?.challengeId, '00000000-0000-4000-8000-0000000000a2', 'only the new code is there (the caller withdraws it): the deleted one stays gone')
})

// And what it puts back is the code as it was when replaced, not as the statement's snapshot saw it:
// a code used (or guessed at) while the send waited for it comes back used (or with that attempt),
// and a send that only waited for such a write is not refused for it.
t.test('postgres: a send that waited for a code being used puts it back used, and one with room opens', needsPostgres, async (t) => {
  const phone = '+14155550191'
  const { store, code, full, whileLocked } = await sendsAgainstAWrite(t, phone)
  const use = 'UPDATE securelogin_otp_challenges SET consumed_at = $2, attempts = attempts + 1 WHERE phone = $1'
  t.equal((await whileLocked(use, [phone, at(SECOND)], async () => store.openChallengeTaking(code('00000000-0000-4000-8000-0000000000a2', MINUTE), full))).full, 0, 'refused by the full counter')
  const row = await store.findChallenge(phone)
  t.same([row?.challengeId, row?.consumedAt, row?.attempts], ['00000000-0000-4000-8000-0000000000a1', at(SECOND), 1], 'the code is back as it was when replaced: used, with its attempt')
  const opened = await whileLocked(use, [phone, at(2 * SECOND)], async () => store.openChallengeTaking(code('00000000-0000-4000-8000-0000000000a3', 2 * MINUTE), [{ key: 'send:room', windowMs: HOUR, max: 5 }]))
  t.same([opened.full, opened.challenge?.challengeId], [-1, '00000000-0000-4000-8000-0000000000a3'], 'a send with room opens its code once the other write is in')
})
