import { randomUUID } from 'node:crypto'
import t from 'tap'
import { migrate } from '../lib/index.js'
import { createStore } from '../lib/store/index.js'
import { createTestDatabase, dialects } from './helper.js'

// The reads that sign-in folds into one statement each (on PostgreSQL one round trip): login's
// store.readBeforeSend and verify_sms's store.recordAttemptAndFindAccount answer exactly what the
// single reads they replace answer, typed alike, with and without each row.

const MINUTE = 60_000
const T0 = new Date('2030-01-01T00:00:00Z').getTime()
const at = (ms: number) => new Date(T0 + ms)

for (const dialect of dialects) {
  t.test(`${dialect}: readBeforeSend answers the challenge, the account and the counters as their own reads do`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    await migrate(database.db)
    const store = createStore(database.db, dialect)
    const phone = '+14155550100'
    const empty = await store.readBeforeSend(phone, 'key-of-phone', ['a', 'b#0'])
    t.same(empty, { challenge: undefined, user: undefined, endedAccounts: 0, counters: new Map() }, 'nothing there: nothing read')

    await store.registerUser('00000000-0000-4000-8000-000000000001', phone, 'ada', at(0))
    await store.openChallenge({ phone, challengeId: randomUUID(), codeHash: 'hash', now: at(0), expiresAt: at(10 * MINUTE), resendIntervalMs: 30_000 })
    await store.hitRateLimit('a', MINUTE, at(1))
    await store.hitRateLimit('a', MINUTE, at(2))
    await store.takeFirstFreeSlot(['b#0', 'b#1'], MINUTE, at(3))
    await store.hitRateLimit('not asked', MINUTE, at(4))
    await database.query("INSERT INTO securelogin_phone_history (phone_key, ended_accounts) VALUES ('key-of-phone', 2)")

    const read = await store.readBeforeSend(phone, 'key-of-phone', ['a', 'b#0', 'b#1', 'never'])
    t.same(read.challenge, await store.findChallenge(phone), 'the challenge, as findChallenge reads it')
    t.ok(read.challenge?.sentAt instanceof Date, 'its dates as dates')
    t.same({ user: read.user, endedAccounts: read.endedAccounts }, await store.findAccountOf(phone, 'key-of-phone'), 'the account and ended accounts, as findAccountOf reads them')
    t.equal(read.endedAccounts, 2)
    t.same(read.counters, await store.readCounters(['a', 'b#0', 'b#1', 'never']), 'the counters asked for, as readCounters reads them')
    t.same(read.counters, new Map([['a', { count: 2, windowStart: at(1) }], ['b#0', { count: 1, windowStart: at(3) }]]), 'to the millisecond')
  })

  t.test(`${dialect}: a client's hit counted with the read or take it guards counts as hitRateLimit does`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    await migrate(database.db)
    const store = createStore(database.db, dialect)
    const phone = '+14155550103'
    const hit = (key: string, ms: number, max = 5) => ({ key, windowMs: MINUTE, max, now: at(ms) })
    await store.registerUser('00000000-0000-4000-8000-000000000003', phone, undefined, at(0))
    await database.query("INSERT INTO securelogin_phone_history (phone_key, ended_accounts) VALUES ('k', 3)")

    const plain = await store.readBeforeSend(phone, 'k', [])
    const first = await store.readBeforeSend(phone, 'k', [], hit('ip', 1))
    t.same(first.hit, { count: 1, resetAt: at(1 + MINUTE) }, 'a first hit: one, its window from now')
    t.same({ ...first, hit: undefined }, plain, 'the reads as without a hit')
    t.same((await store.readBeforeSend(phone, 'k', [], hit('ip', 2))).hit, { count: 2, resetAt: at(1 + MINUTE) }, 'the next in the same window')
    t.same(await store.hitRateLimit('ip', MINUTE, at(3)), { count: 3, resetAt: at(1 + MINUTE) }, 'one counter with hitRateLimit')
    t.same((await store.readBeforeSend(phone, 'k', [], hit('ip', MINUTE + 1))).hit, { count: 1, resetAt: at(2 * MINUTE + 1) }, 'a window that ended starts again')

    t.same(await store.endedAccountsAfterHit('k', hit('other', 0)), { endedAccounts: 3, hit: { count: 1, resetAt: at(MINUTE) } }, 'the history, and the hit')
    t.same(await store.endedAccountsAfterHit('none', hit('other', 0)), { endedAccounts: 0, hit: { count: 2, resetAt: at(MINUTE) } }, 'a number with no history')

    const slots = ['lock#0', 'lock#1']
    t.same(await store.takeFirstFreeSlot(slots, MINUTE, at(0), hit('by', 0, 1)), { slot: 'lock#0', hit: { count: 1, resetAt: at(MINUTE) } }, 'within its max: the slot is taken')
    t.same(await store.takeFirstFreeSlot(slots, MINUTE, at(0), hit('by', 0, 1)), { slot: undefined, hit: { count: 2, resetAt: at(MINUTE) } }, 'past its max: counted, and no slot taken')
    t.same(await store.takeFirstFreeSlot(slots, MINUTE, at(0)), { slot: 'lock#1', hit: undefined }, 'the slot the refused hit did not take')
  })

  t.test(`${dialect}: recordAttemptAndFindAccount counts the attempt as recordAttempt does, and reads the account`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    await migrate(database.db)
    const store = createStore(database.db, dialect)
    const phone = '+14155550101'
    t.same(await store.recordAttemptAndFindAccount(phone, 'k', at(0), 5), { challenge: undefined, user: undefined, endedAccounts: 0 }, 'no challenge, no account')

    await store.registerUser('00000000-0000-4000-8000-000000000002', phone, undefined, at(0))
    await store.openChallenge({ phone, challengeId: randomUUID(), codeHash: 'hash', now: at(0), expiresAt: at(10 * MINUTE), resendIntervalMs: 30_000 })
    const first = await store.recordAttemptAndFindAccount(phone, 'k', at(1), 2)
    t.same(first.challenge, await store.findChallenge(phone), 'the challenge as counted')
    t.equal(first.challenge?.attempts, 1, 'one attempt counted')
    t.ok(first.challenge?.expiresAt instanceof Date)
    t.same({ user: first.user, endedAccounts: first.endedAccounts }, await store.findAccountOf(phone, 'k'), 'and the account')
    t.equal((await store.recordAttemptAndFindAccount(phone, 'k', at(2), 2)).challenge?.attempts, 2)
    const spent = await store.recordAttemptAndFindAccount(phone, 'k', at(3), 2)
    t.equal(spent.challenge, undefined, 'no attempt left: nothing counted, no challenge answered')
    t.equal(spent.user?.id, '00000000-0000-4000-8000-000000000002', 'the account is read all the same')
    t.equal((await store.findChallenge(phone))?.attempts, 2, 'still two')
    t.equal((await store.recordAttemptAndFindAccount(phone, 'k', at(10 * MINUTE), 5)).challenge, undefined, 'an expired code counts nothing')
  })
}

// On SQLite the attempt and the account are two statements: the account is read first, so that a
// read that fails spends no attempt (on PostgreSQL one statement does both or neither).
t.test('sqlite: recordAttemptAndFindAccount spends no attempt when the account cannot be read', async (t) => {
  const database = await createTestDatabase(t, 'sqlite')
  await migrate(database.db)
  const store = createStore(database.db, 'sqlite')
  const phone = '+14155550102'
  await store.openChallenge({ phone, challengeId: randomUUID(), codeHash: 'hash', now: at(0), expiresAt: at(10 * MINUTE), resendIntervalMs: 30_000 })
  const failing = { ...store, findAccountOf: async () => { throw new Error('the account read failed') } }
  await t.rejects(failing.recordAttemptAndFindAccount(phone, 'k', at(1), 5), /the account read failed/)
  t.equal((await store.findChallenge(phone))?.attempts, 0, 'no attempt spent')
})
