import { randomBytes, randomUUID } from 'node:crypto'
import pg from 'pg'
import t from 'tap'
import { accountIdFor, deleteAccount, phoneKeyFor, registerAccount, type AccountContext } from '../lib/accounts.js'
import { isUniqueViolation } from '../lib/db/faults.js'
import { migrate } from '../lib/index.js'
import { createStore, type Store, type User } from '../lib/store/index.js'
import { buildApp, caught, createTestDatabase, dialects, lockWaited, openCode, sessionOf, signIn, testPhone, type Dialect } from './helper.js'

// The account lifecycle's rules one by one, each where a mutation test (issue 11) found no test
// holding it: how often a registration or a deletion retries a race before giving up, what the
// store answers when a change of number loses a race, which reason an ended session records, and
// what the app's levers do with ids that are not account ids.

type Tap = Parameters<typeof createTestDatabase>[0]

/** A migrated database and its store, with a hash key of its own. */
async function storeOf (t: Tap, dialect: Dialect) {
  const database = await createTestDatabase(t, dialect)
  await migrate(database.db)
  return { database, store: createStore(database.db, dialect), hashKey: randomBytes(32) }
}

const noRevocations = { add () {} } as unknown as AccountContext['revocations']

/** store.changePhone's arguments for moving `user` to `newPhone` with the code `challengeId`, asked from a live session of it. */
async function move (store: Store, hashKey: Buffer, user: User, newPhone: string, challengeId: string) {
  const callerSid = await sessionOf(store, user)
  const now = new Date()
  return {
    userId: user.id,
    callerSid,
    oldPhone: user.phone,
    oldPhoneKey: user.phone === null ? undefined : phoneKeyFor(hashKey, user.phone),
    newPhone,
    newPhoneKey: phoneKeyFor(hashKey, newPhone),
    challengeId,
    session: { id: randomUUID(), expiresAt: new Date(now.getTime() + 60_000), userAgent: null, ip: null },
    now,
  }
}

function sql (dialect: Dialect, text: string): string {
  return dialect === 'sqlite' ? text.replace(/\$\d+/g, '?') : text
}

t.test('the first account of a number keeps the id it had before numbers counted their ended accounts', async (t) => {
  // Ids already given out must not change: this one is what accountIdFor answered before the
  // count existed (commit 650d32e, the hash of the number alone).
  const hashKey = Buffer.alloc(32, 7)
  const phone = '+14155550100'
  t.equal(accountIdFor(hashKey, phone), '0f3f3ef9-8b1f-4287-8813-0d05f8d98ed5')
  t.equal(accountIdFor(hashKey, phone, 0), '0f3f3ef9-8b1f-4287-8813-0d05f8d98ed5')
  t.equal(accountIdFor(hashKey, phone, 1), '8d75fe09-dbcb-4a9f-a061-7c74f9da7039', 'the second account\'s id differs')
})

for (const dialect of dialects) {
  t.test(`${dialect}: a registration whose id stays taken gives up after three tries`, async (t) => {
    const { store, hashKey } = await storeOf(t, dialect)
    // The number's first account moved to another number and keeps its id; a registration that
    // reads the history as it was before the move keeps choosing that id.
    const phone = testPhone()
    const moved = await registerAccount({ store, hashKey }, phone, undefined, new Date())
    const target = testPhone()
    t.type(await store.changePhone(await move(store, hashKey, moved, target, await openCode(store, target))), 'object')
    let tries = 0
    const staleStore: Store = {
      ...store,
      endedAccountsOf: async () => 0,
      // A registration that would not give up ends at a fifth try, and the test fails rather than hangs.
      registerUser: async (...args) => (++tries > 4 ? { user: moved, created: false } : store.registerUser(...args)),
    }
    const error = await caught(registerAccount({ store: staleStore, hashKey }, phone, undefined, new Date()))
    t.ok(isUniqueViolation(error), 'the last unique violation is thrown')
    t.equal(tries, 3)
  })

  t.test(`${dialect}: a registration whose number keeps changing accounts takes each stale account back and gives up after three tries`, async (t) => {
    const { store, hashKey, database } = await storeOf(t, dialect)
    const phone = testPhone()
    let reads = 0
    // Every read of the history sees one more ended account than the one before (and a fifth
    // try fails the test rather than loop on).
    const restlessStore: Store = { ...store, endedAccountsOf: async () => { if (reads > 8) throw new Error('a fifth try'); return reads++ } }
    const error = await caught(registerAccount({ store: restlessStore, hashKey }, phone, undefined, new Date()))
    t.match(error, { message: 'fastify-securelogin: the number kept changing accounts during registration' })
    t.equal(reads, 6, 'three tries, each reading the history before and after its insert')
    t.same(await database.query(sql(dialect, 'SELECT id FROM securelogin_users WHERE phone = $1'), [phone]), [], 'no stale account is left')
  })

  t.test(`${dialect}: a deletion that read the number before it changed reads the account again`, async (t) => {
    const { store, hashKey } = await storeOf(t, dialect)
    const oldPhone = testPhone()
    const newPhone = testPhone()
    const user = await registerAccount({ store, hashKey }, oldPhone, undefined, new Date())
    await store.markPhoneVerified(user.id, new Date())
    t.type(await store.changePhone(await move(store, hashKey, user, newPhone, await openCode(store, newPhone))), 'object')
    let reads = 0
    // The first read is from before the move.
    const lateStore: Store = { ...store, findUserById: async (id) => (reads++ === 0 ? user : store.findUserById(id)) }
    t.equal(await deleteAccount({ store: lateStore, hashKey, revocations: noRevocations }, user.id), true)
    t.equal(reads, 2)
    t.equal(await store.endedAccountsOf(phoneKeyFor(hashKey, newPhone)), 1, 'the number it held counts it')
    t.equal(await store.endedAccountsOf(phoneKeyFor(hashKey, oldPhone)), 1, 'the number it left counted it once, at the move')
  })

  t.test(`${dialect}: a deletion that keeps reading a number the account no longer has gives up after three tries`, async (t) => {
    const { store, hashKey } = await storeOf(t, dialect)
    const user = await registerAccount({ store, hashKey }, testPhone(), undefined, new Date())
    let reads = 0
    const staleStore: Store = { ...store, findUserById: async () => { if (++reads > 4) throw new Error('a fifth try'); return { ...user, phone: testPhone() } } }
    const error = await caught(deleteAccount({ store: staleStore, hashKey, revocations: noRevocations }, user.id))
    t.match(error, { message: 'fastify-securelogin: the account kept changing during its deletion' })
    t.equal(reads, 3)
    t.equal((await store.findUserById(user.id))?.id, user.id, 'the account is still there')
  })
}

for (const dialect of dialects) {
  t.test(`${dialect}: the store's answers when a change of number loses a race`, async (t) => {
    const { store, hashKey } = await storeOf(t, dialect)
    const user = await registerAccount({ store, hashKey }, testPhone(), undefined, new Date())
    await store.markPhoneVerified(user.id, new Date())

    // The code was used (or replaced) meanwhile.
    const target = testPhone()
    t.equal(await store.changePhone(await move(store, hashKey, user, target, randomUUID())), 'code-used', 'another challenge\'s id')

    // The number got a proven account meanwhile.
    const holder = await registerAccount({ store, hashKey }, target, undefined, new Date())
    await store.markPhoneVerified(holder.id, new Date())
    t.equal(await store.changePhone(await move(store, hashKey, user, target, await openCode(store, target))), 'taken')
    t.equal((await store.findUserById(holder.id))?.phone, target, 'the holder keeps it')
    t.equal((await store.findChallenge(target))?.consumedAt, null, 'all or nothing: the code is not used up')

    // The account's number changed meanwhile: the caller read it before.
    const elsewhere = testPhone()
    t.equal(await store.changePhone({ ...(await move(store, hashKey, user, elsewhere, await openCode(store, elsewhere))), oldPhone: testPhone() }), 'moved')
    t.equal((await store.findUserById(user.id))?.phone, user.phone, 'the account did not move')
    t.equal(await store.endedAccountsOf(phoneKeyFor(hashKey, user.phone as string)), 0, 'nor does its number count it as ended')
    t.equal((await store.findChallenge(elsewhere))?.consumedAt, null, 'all or nothing: the code is not used up')
  })

  t.test(`${dialect}: a change of number counts one ended account on the old number, and on the new one only for an unproven account it removed`, async (t) => {
    const { store, hashKey } = await storeOf(t, dialect)
    const count = (phone: string) => store.endedAccountsOf(phoneKeyFor(hashKey, phone))
    const user = await registerAccount({ store, hashKey }, testPhone(), undefined, new Date())
    await store.markPhoneVerified(user.id, new Date())
    const oldPhone = user.phone as string

    const free = testPhone()
    t.type(await store.changePhone(await move(store, hashKey, user, free, await openCode(store, free))), 'object')
    t.equal(await count(oldPhone), 1)
    t.equal(await count(free), 0, 'a free number had no account before')

    // Someone registered the next number and never proved it: the move removes that account,
    // and the number counts it, so the account after this one gets an id that was never given.
    const squatted = testPhone()
    const squatter = await registerAccount({ store, hashKey }, squatted, undefined, new Date())
    const moved = await store.findUserById(user.id) as User
    t.type(await store.changePhone(await move(store, hashKey, moved, squatted, await openCode(store, squatted))), 'object')
    t.equal(await store.findUserById(squatter.id), undefined, 'the unproven account is gone')
    t.equal(await count(squatted), 1)
    t.equal(await count(free), 1, 'and the number it left counts it')
  })
}

for (const dialect of dialects) {
  t.test(`${dialect}: every way an account's sessions end records its reason`, async (t) => {
    // The reasons docs/databases.md lists for securelogin_sessions.revoked_reason.
    const test = await buildApp(t, dialect, { otp: { resendInterval: 0.001 } })
    const { secureLogin } = test.app
    const reasonsOf = async (userid: string) => (await test.database.query(sql(dialect, 'SELECT revoked_reason FROM securelogin_sessions WHERE user_id = $1 ORDER BY created_at'), [userid])).map((row) => row.revoked_reason)

    const revoked = await signIn(test, testPhone())
    t.equal(await secureLogin.revokeSessions(revoked.userid), 1)
    t.same(await reasonsOf(revoked.userid), ['revoked_by_app'])

    const disabled = await signIn(test, testPhone())
    t.equal(await secureLogin.setStatus(disabled.userid, 'disabled'), true)
    t.same(await reasonsOf(disabled.userid), ['account_disabled'])

    const deleted = await signIn(test, testPhone())
    t.equal(await secureLogin.deleteUser(deleted.userid), true)
    t.same(await reasonsOf(deleted.userid), ['account_deleted'])

    const mover = await signIn(test, testPhone())
    const newPhone = testPhone()
    await test.app.inject({ method: 'POST', url: '/api/auth/phone', payload: { phone: newPhone }, headers: { authorization: `Bearer ${mover.access_token}` } })
    const moved = await test.app.inject({ method: 'POST', url: '/api/auth/phone/verify', payload: { phone: newPhone, token: test.outbox.lastCodeFor(newPhone) }, headers: { authorization: `Bearer ${mover.access_token}` } })
    t.equal(moved.statusCode, 200, moved.body)
    t.same(await reasonsOf(mover.userid), ['phone_changed', null], 'the earlier session ended; the new one is live')
  })

  t.test(`${dialect}: the store registers a number once: a second registration answers the first account, not a creation`, async (t) => {
    const { store } = await storeOf(t, dialect)
    const phone = testPhone()
    const first = await store.registerUser(randomUUID(), phone, 'Ada', new Date())
    t.equal(first.created, true)
    t.equal(first.user.username, 'Ada', 'the name given is stored')
    const second = await store.registerUser(randomUUID(), phone, 'Ada', new Date())
    t.equal(second.created, false, 'registerAccount deletes what it believes it created when the number changed hands meanwhile: a false creation would delete the existing account')
    t.equal(second.user.id, first.user.id)
    t.equal(second.user.username, 'Ada', 'the same name again keeps it')
  })

  t.test(`${dialect}: a code opens no session for an account disabled before it is used, or while`, async (t) => {
    const { database, store } = await storeOf(t, dialect)
    const phone = testPhone()
    const { user } = await store.registerUser(randomUUID(), phone, undefined, new Date())
    const use = (challengeId: string) => store.consumeIntoSession({ phone, challengeId, userId: user.id, now: new Date(), expiresAt: new Date(Date.now() + 60_000), device: { userAgent: null, ip: null } })
    await database.query("UPDATE securelogin_users SET status = 'disabled' WHERE id = $1", [user.id])
    t.equal(await use(await openCode(store, phone)), undefined, 'disabled before: no session')
    await database.query("UPDATE securelogin_users SET status = 'active' WHERE id = $1", [user.id])

    // The row lock is PostgreSQL's: SQLite runs one writer at a time, and PGlite has one connection.
    if (database.url === undefined) return
    const disabler = new pg.Client({ connectionString: database.url })
    await disabler.connect()
    database.beforeClose.push(() => disabler.end())
    const challengeId = await openCode(store, phone)
    // A disabling in progress (uncommitted) while the code is used.
    await disabler.query('BEGIN')
    await disabler.query("UPDATE securelogin_users SET status = 'disabled' WHERE id = $1", [user.id])
    let settled = false
    const using = use(challengeId).finally(() => { settled = true })
    await lockWaited(async (text) => (await disabler.query(text)).rows, () => settled)
    await disabler.query('COMMIT')
    t.equal(await using, undefined, 'it waited for the disabling, then opened nothing')
    t.same(await database.query('SELECT id FROM securelogin_sessions'), [], 'no session left behind')
  })

  t.test(`${dialect}: setting an active account active again ends none of its sessions`, async (t) => {
    const test = await buildApp(t, dialect)
    const user = await signIn(test, testPhone())
    t.equal(await test.app.secureLogin.setStatus(user.userid, 'active'), true)
    const me = await test.app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${user.access_token}` } })
    t.equal(me.statusCode, 200, me.body)
  })

  t.test(`${dialect}: the app's levers take only account ids; anything else names no account`, async (t) => {
    // On PostgreSQL the id column is a uuid, which would refuse the string outright (a 500 for the
    // app's route) if it reached the database.
    const test = await buildApp(t, dialect)
    const { secureLogin } = test.app
    const user = await signIn(test, testPhone())
    const notIds = ['not-a-uuid', `x${user.userid}`, `${user.userid}x`, user.userid.slice(1), user.userid.replace(/-/g, ''), user.userid.replace(/^./, 'g'), user.userid.replace(/.$/, 'g')]
    for (const userid of notIds) {
      t.equal(await secureLogin.findUser({ userid }), undefined, `findUser ${userid}`)
      t.equal(await secureLogin.revokeSessions(userid), 0, `revokeSessions ${userid}`)
      t.equal(await secureLogin.setStatus(userid, 'disabled'), false, `setStatus ${userid}`)
      t.equal(await secureLogin.deleteUser(userid), false, `deleteUser ${userid}`)
    }
    t.equal((await test.app.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${user.access_token}` } })).statusCode, 200, 'the account was not touched')
    const refused = await caught(secureLogin.setStatus(user.userid, 'banned' as 'disabled'))
    t.match(refused, { name: 'TypeError', message: 'fastify-securelogin: setStatus: status must be \'active\' or \'disabled\', not "banned"' })
  })
}
