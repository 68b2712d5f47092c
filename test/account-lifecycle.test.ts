import { randomBytes, randomUUID } from 'node:crypto'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { accountFound, accountIdFor, deleteAccount, phoneKeyFor, registerAccount, type AccountContext } from '../lib/accounts.js'
import { migrate } from '../lib/index.js'
import { createStore, type Store, type User } from '../lib/store/index.js'
import { buildApp, createTestDatabase, dialects, openCode, post, sessionOf, signIn, testPhone, type TestApp } from './helper.js'

// Moving an account to another number, the app's own levers (revokeSessions, setStatus,
// deleteUser, findUser), and the rule that an account id never passes to another person: after a
// number change or a deletion, the next account on that number gets a new id, while /login and
// /register still tell nothing about whether the number has an account today.

function call (app: FastifyInstance, method: 'GET' | 'DELETE' | 'POST', url: string, token: string, payload?: object) {
  return app.inject({ method, url: `/api/auth${url}`, payload, headers: { authorization: `Bearer ${token}` } })
}

const FAST_RESEND = { otp: { resendInterval: 0.001 } }
/** For tests that sign one number in many times: the limits are not what they are about. */
const ROOMY = { ...FAST_RESEND, rateLimit: { registersPerIp: { max: 10_000, window: '1h' }, sendsPerPhone: { max: 10_000, window: '1h' }, sendsPerIp: { max: 10_000, window: '1h' }, sendsPerPrefix: { max: 10_000, window: '1h' } } }

/** Asks for a change of number and answers the code the new number got. */
async function changePhone (test: TestApp, token: string, phone: string) {
  const asked = await call(test.app, 'POST', '/phone', token, { phone })
  if (asked.statusCode !== 200) throw new Error(asked.body)
  return call(test.app, 'POST', '/phone/verify', token, { phone, token: test.outbox.lastCodeFor(phone) })
}

/** Moves an account to `newPhone` the way phone/verify does, from a session of its own, with a code opened for it here. */
async function moveAccount (store: Store, hashKey: Buffer, user: User, newPhone: string): Promise<void> {
  const now = new Date()
  const challengeId = await openCode(store, newPhone)
  const moved = await store.changePhone({
    userId: user.id, callerSid: await sessionOf(store, user), oldPhone: user.phone, oldPhoneKey: phoneKeyFor(hashKey, user.phone as string), newPhone, newPhoneKey: phoneKeyFor(hashKey, newPhone), challengeId,
    session: { id: randomUUID(), expiresAt: new Date(now.getTime() + 60_000), userAgent: null, ip: null }, now,
  })
  if (typeof moved === 'string') throw new Error(`the move failed: ${moved}`)
}

function refresh (test: TestApp, refreshToken: string) {
  return post(test.app, '/refresh', undefined, refreshToken)
}

for (const dialect of dialects) {
  t.test(`${dialect}: a change of number moves the account, ends every earlier session and signs in anew`, async (t) => {
    const test = await buildApp(t, dialect, FAST_RESEND)
    const oldPhone = testPhone()
    const newPhone = testPhone()
    const other = await signIn(test, oldPhone)
    const caller = await signIn(test, oldPhone)

    const moved = await changePhone(test, caller.access_token, newPhone)
    t.equal(moved.statusCode, 200, moved.body)
    const body = moved.json()
    t.equal(body.userid, caller.userid, 'the account keeps its id')
    t.equal(body.phone, newPhone)
    for (const token of [caller.access_token, other.access_token]) t.equal((await call(test.app, 'GET', '/me', token)).json().code, 'SECURELOGIN_SESSION_REVOKED', 'every earlier session ended, the caller\'s too')
    t.equal((await refresh(test, other.refresh_token)).statusCode, 401)
    const me = await call(test.app, 'GET', '/me', body.access_token)
    t.equal(me.json().phone, newPhone, 'the new session sees the new number')
    t.equal((await test.app.inject({ method: 'GET', url: '/fresh', headers: { authorization: `Bearer ${body.access_token}` } })).json().phone, newPhone, 'its token is fresh and carries the new number')
    t.equal((await refresh(test, body.refresh_token)).json().access_token !== undefined, true, 'its refresh token works')

    // Signing in by the new number reaches the account; the old number has none now.
    const again = await signIn(test, newPhone)
    t.equal(again.userid, caller.userid)
    const oldLogin = (await post(test.app, '/login', { phone: oldPhone })).json()
    t.not(oldLogin.userid, caller.userid, 'the old number answers another id')
    const registered = (await post(test.app, '/register', { phone: oldPhone })).json()
    t.equal(registered.userid, oldLogin.userid, 'the one registration then gives it')
    t.not(registered.userid, caller.userid, 'the next holder of the old number never gets the moved account\'s id')
  })

  t.test(`${dialect}: a change of number to a taken number sends nothing and tells nothing; own number and stale tokens are refused`, async (t) => {
    const test = await buildApp(t, dialect, FAST_RESEND)
    const phone = testPhone()
    const takenPhone = testPhone()
    const freePhone = testPhone()
    const caller = await signIn(test, phone)
    const holder = await signIn(test, takenPhone)
    const sentBefore = test.outbox.messages.length

    const taken = await call(test.app, 'POST', '/phone', caller.access_token, { phone: takenPhone })
    const free = await call(test.app, 'POST', '/phone', caller.access_token, { phone: freePhone })
    t.equal(taken.statusCode, 200, 'a taken number is answered as a free one')
    t.same(Object.keys(taken.json()), Object.keys(free.json()))
    t.same(test.outbox.messages.slice(sentBefore).map((message) => message.to), [freePhone], 'only the free number got a code')
    const guess = await call(test.app, 'POST', '/phone/verify', caller.access_token, { phone: takenPhone, token: '000000' })
    t.equal(guess.json().code, 'SECURELOGIN_OTP_INVALID', 'no code moves the account there')
    t.equal((await call(test.app, 'GET', '/me', holder.access_token)).json().phone, takenPhone, 'the holder keeps the number')

    t.equal((await call(test.app, 'POST', '/phone', caller.access_token, { phone })).json().code, 'SECURELOGIN_PHONE_UNCHANGED')
    const notFresh = (await refresh(test, caller.refresh_token)).json().access_token as string
    t.equal((await call(test.app, 'POST', '/phone', notFresh, { phone: testPhone() })).json().code, 'SECURELOGIN_FRESH_TOKEN_REQUIRED')
    t.equal((await call(test.app, 'POST', '/phone', caller.access_token, { phone: '12' })).statusCode, 400, 'a number that is not one: 400')
  })

  t.test(`${dialect}: an account that never proved the number does not block a change to it`, async (t) => {
    const test = await buildApp(t, dialect, FAST_RESEND)
    const target = testPhone()
    const caller = await signIn(test, testPhone())
    const squatter = (await post(test.app, '/register', { phone: target })).json().userid as string
    const moved = await changePhone(test, caller.access_token, target)
    t.equal(moved.statusCode, 200, moved.body)
    t.equal(await test.app.secureLogin.findUser({ userid: squatter }), undefined, 'the unproven account is gone')
    t.equal((await test.app.secureLogin.findUser({ phone: target }))?.userid, caller.userid)
    const next = (await post(test.app, '/login', { phone: testPhone() })).json()
    t.not(next.userid, squatter)
  })

  t.test(`${dialect}: with a verifying provider, a change code is still bound to its account`, async (t) => {
    const sent = new Map<string, string>()
    const vendor = {
      name: 'fake-verify',
      async start ({ to }: { to: string }) { sent.set(to, String(100000 + Math.floor(Math.random() * 900000))) },
      async check ({ to, code }: { to: string, code: string }) { return sent.get(to) === code },
    }
    const test = await buildApp(t, dialect, { ...FAST_RESEND, sms: vendor, signUp: 'on-verify' })
    const signInWith = async (phone: string) => {
      await post(test.app, '/login', { phone })
      return (await post(test.app, '/verify_sms', { phone, token: sent.get(phone) as string })).json()
    }
    const attackerPhone = testPhone()
    const victim = await signInWith(testPhone())
    const attacker = await signInWith(attackerPhone)
    const attackerNumber = testPhone()
    // The attacker asks a change of their own account to a number they hold, then offers that
    // code with a stolen (not fresh) token of the victim.
    t.equal((await call(test.app, 'POST', '/phone', attacker.access_token, { phone: attackerNumber })).statusCode, 200)
    const stolen = (await refresh(test, victim.refresh_token)).json().access_token as string
    const hijack = await call(test.app, 'POST', '/phone/verify', stolen, { phone: attackerNumber, token: sent.get(attackerNumber) as string })
    t.equal(hijack.json().code, 'SECURELOGIN_OTP_INVALID', 'another account\'s change code does not move the victim\'s account')
    // Nor a sign-in code.
    const signInNumber = testPhone()
    await post(test.app, '/login', { phone: signInNumber })
    const bySignIn = await call(test.app, 'POST', '/phone/verify', stolen, { phone: signInNumber, token: sent.get(signInNumber) as string })
    t.equal(bySignIn.json().code, 'SECURELOGIN_OTP_INVALID', 'a sign-in code does not move an account')
    // Nor does a change code sign in (here, with signUp 'on-verify', it would make the number an account).
    const asSignIn = await post(test.app, '/verify_sms', { phone: attackerNumber, token: sent.get(attackerNumber) as string })
    t.equal(asSignIn.json().code, 'SECURELOGIN_OTP_INVALID', 'a change code does not sign in')
    t.equal(await test.app.secureLogin.findUser({ phone: attackerNumber }), undefined, 'nor make an account')
    t.equal((await call(test.app, 'GET', '/me', victim.access_token)).statusCode, 200, 'the victim keeps the account and the session')
    // The owner's own code still works, and cannot then sign anyone in.
    const own = await call(test.app, 'POST', '/phone/verify', attacker.access_token, { phone: attackerNumber, token: sent.get(attackerNumber) as string })
    t.equal(own.statusCode, 200, own.body)
    t.not(attackerPhone, attackerNumber)
  })

  t.test(`${dialect}: a disabled account cannot move to a new number`, async (t) => {
    const test = await buildApp(t, dialect, FAST_RESEND)
    const caller = await signIn(test, testPhone())
    const newPhone = testPhone()
    t.equal((await call(test.app, 'POST', '/phone', caller.access_token, { phone: newPhone })).statusCode, 200)
    // Disabled on another instance, whose revocation this instance has not read yet.
    await test.database.query(dialect === 'sqlite' ? "UPDATE securelogin_users SET status = 'disabled' WHERE id = ?" : "UPDATE securelogin_users SET status = 'disabled' WHERE id = $1", [caller.userid])
    const moved = await call(test.app, 'POST', '/phone/verify', caller.access_token, { phone: newPhone, token: test.outbox.lastCodeFor(newPhone) })
    t.equal(moved.json().code, 'SECURELOGIN_ACCOUNT_INACTIVE')
    t.equal((await refresh(test, caller.refresh_token)).statusCode, 401, 'nor refresh its sessions')
  })

  t.test(`${dialect}: a change-of-number code works only for the account that asked, and only once`, async (t) => {
    const test = await buildApp(t, dialect, FAST_RESEND)
    const newPhone = testPhone()
    const owner = await signIn(test, testPhone())
    const intruder = await signIn(test, testPhone())
    t.equal((await call(test.app, 'POST', '/phone', owner.access_token, { phone: newPhone })).statusCode, 200)
    const code = test.outbox.lastCodeFor(newPhone)

    const stolen = await call(test.app, 'POST', '/phone/verify', intruder.access_token, { phone: newPhone, token: code })
    t.equal(stolen.json().code, 'SECURELOGIN_OTP_INVALID', 'another account cannot use it')
    const asSignIn = await post(test.app, '/verify_sms', { phone: newPhone, token: code })
    t.equal(asSignIn.statusCode, 401, 'nor can anyone sign in with it')

    const right = await call(test.app, 'POST', '/phone/verify', owner.access_token, { phone: newPhone, token: code })
    t.equal(right.statusCode, 200, right.body)
    const replay = await call(test.app, 'POST', '/phone/verify', right.json().access_token, { phone: newPhone, token: code })
    t.equal(replay.json().code, 'SECURELOGIN_OTP_EXPIRED', 'a used code does not work twice')
  })

  t.test(`${dialect}: two verifies of one change-of-number code at once: one moves the account, the other is refused`, async (t) => {
    const test = await buildApp(t, dialect, FAST_RESEND)
    const newPhone = testPhone()
    const caller = await signIn(test, testPhone())
    await call(test.app, 'POST', '/phone', caller.access_token, { phone: newPhone })
    const code = test.outbox.lastCodeFor(newPhone)
    const answers = await Promise.all(Array.from({ length: 6 }, () => call(test.app, 'POST', '/phone/verify', caller.access_token, { phone: newPhone, token: code })))
    t.equal(answers.filter((answer) => answer.statusCode === 200).length, 1, 'exactly one moved it')
    // Six checks of a code that allows five attempts: the sixth may find them spent before the winner used the code.
    const refusedAsItMay = (answer: { statusCode: number, json: () => { code: string } }) => answer.statusCode === 401 || (answer.statusCode === 429 && answer.json().code === 'SECURELOGIN_OTP_ATTEMPTS_EXCEEDED')
    t.ok(answers.every((answer) => answer.statusCode === 200 || refusedAsItMay(answer)), answers.map((answer) => answer.body).join('\n'))
    const winner = answers.find((answer) => answer.statusCode === 200)?.json()
    const sessions = (await call(test.app, 'GET', '/sessions', winner.access_token)).json().sessions
    t.equal(sessions.length, 1, 'one new session, not one per request')
  })

  t.test(`${dialect}: secureLogin.revokeSessions, setStatus, deleteUser and findUser`, async (t) => {
    const test = await buildApp(t, dialect, ROOMY)
    const { secureLogin } = test.app
    const phone = testPhone()
    const first = await signIn(test, phone)
    const second = await signIn(test, phone)

    t.match(await secureLogin.findUser({ userid: first.userid }), { userid: first.userid, phone, status: 'active', auth_types: ['PHONE'] })
    t.equal((await secureLogin.findUser({ phone: `(415) 555-${phone.slice(-4)}`.replace('(415) 555-', '+1 415 555 ') }))?.userid, first.userid, 'by number, in any form login accepts')
    t.equal(await secureLogin.findUser({ userid: 'not-a-uuid' }), undefined)
    t.equal(await secureLogin.findUser({ userid: '4f1c2a9e-7b4d-4e2f-9a6b-0c8d1e2f3a4b' }), undefined)

    t.equal(await secureLogin.revokeSessions(first.userid), 2, 'both sessions ended')
    for (const token of [first.access_token, second.access_token]) t.equal((await call(test.app, 'GET', '/me', token)).json().code, 'SECURELOGIN_SESSION_REVOKED')
    t.equal((await refresh(test, second.refresh_token)).statusCode, 401)

    const live = await signIn(test, phone)
    t.equal(await secureLogin.setStatus(live.userid, 'disabled'), true)
    t.equal((await call(test.app, 'GET', '/me', live.access_token)).json().code, 'SECURELOGIN_SESSION_REVOKED', 'disabling ends every session at once')
    t.equal((await refresh(test, live.refresh_token)).statusCode, 401)
    t.equal((await post(test.app, '/login', { phone })).statusCode, 200, 'login answers as for any number')
    const refused = await post(test.app, '/verify_sms', { phone, token: test.outbox.lastCodeFor(phone) })
    t.equal(refused.statusCode, 403, 'the right code of a disabled account is refused')
    t.equal(refused.json().code, 'SECURELOGIN_ACCOUNT_INACTIVE')
    t.equal((await secureLogin.findUser({ userid: live.userid }))?.status, 'disabled')
    await t.rejects(secureLogin.setStatus(live.userid, 'banned' as 'disabled'), TypeError, 'an unknown status is a programming error')

    t.equal(await secureLogin.setStatus(live.userid, 'active'), true)
    const back = await signIn(test, phone)
    t.equal(back.userid, live.userid, 'an enabled account signs in again')

    t.equal(await secureLogin.deleteUser(back.userid), true)
    t.equal((await call(test.app, 'GET', '/me', back.access_token)).json().code, 'SECURELOGIN_SESSION_REVOKED')
    t.equal(await secureLogin.findUser({ userid: back.userid }), undefined, 'a deleted account is not found')
    t.equal(await secureLogin.findUser({ phone }), undefined)
    t.equal(await secureLogin.deleteUser(back.userid), false, 'deleting twice: false')
    t.equal(await secureLogin.setStatus(back.userid, 'active'), false, 'a deleted account cannot be revived')
    t.not((await signIn(test, phone)).userid, back.userid, 'the number signs up again under a new id')
  })

  t.test(`${dialect}: a registration that read the number's history just before its account left never gets the leaving account's id`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    await migrate(database.db)
    const store = createStore(database.db, dialect)
    const hashKey = randomBytes(32)
    const revocations = { add () {} } as unknown as AccountContext['revocations']

    // While the leaving account's row exists (moved, or deleted and not yet purged) its id is
    // taken and the insert fails; once purged, only reading the history again can tell.
    for (const leaves of ['moved', 'deleted', 'deleted and purged'] as const) {
      const phone = testPhone()
      const leaving = await registerAccount({ store, hashKey }, phone, undefined, new Date())
      // The interleaving that loses: the registration reads the history, then the account leaves
      // the number (and the history counts it), then the registration inserts.
      let interleaved = false
      const racingStore: Store = {
        ...store,
        endedAccountsOf: async (phoneKey: string) => {
          const ended = await store.endedAccountsOf(phoneKey)
          if (!interleaved) {
            interleaved = true
            if (leaves === 'moved') await moveAccount(store, hashKey, leaving, testPhone())
            else t.equal(await deleteAccount({ store, hashKey, revocations }, leaving.id), true)
            if (leaves === 'deleted and purged') {
              await store.purgeExpired({ now: new Date(), challengesExpiredBefore: new Date(), longestWindowMs: 0, endedBefore: new Date(Date.now() + 1000), unverifiedBefore: undefined })
              const left = await database.query(dialect === 'sqlite' ? 'SELECT id FROM securelogin_users WHERE id = ?' : 'SELECT id FROM securelogin_users WHERE id = $1', [leaving.id])
              t.same(left, [], 'the deleted account\'s row is gone')
            }
          }
          return ended
        },
      }
      const next = await registerAccount({ store: racingStore, hashKey }, phone, undefined, new Date())
      t.ok(interleaved, `${leaves}: the race happened`)
      t.not(next.id, leaving.id, `${leaves}: the next account of the number has a new id`)
      t.equal(next.id, accountIdFor(hashKey, phone, 1), `${leaves}: the id of the number's second account`)
      t.equal(accountFound(hashKey, phone, await store.readBeforeSend(phone, phoneKeyFor(hashKey, phone), [])).userid, next.id, `${leaves}: and login answers it`)
    }
  })
}

for (const dialect of dialects) {
  t.test(`${dialect}: a code used after its account was disabled or deleted opens no session`, async (t) => {
    const database = await createTestDatabase(t, dialect)
    await migrate(database.db)
    const store = createStore(database.db, dialect)
    const hashKey = randomBytes(32)
    const revocations = { add () {} } as unknown as AccountContext['revocations']
    // verify_sms checked the account (active) and the code; then, before its session is written,
    // the app disables the account, or the user deletes it from another device.
    for (const change of ['disabled', 'deleted'] as const) {
      const phone = testPhone()
      const user = await registerAccount({ store, hashKey }, phone, undefined, new Date())
      const now = new Date()
      const challengeId = randomUUID()
      await store.openChallenge({ phone, challengeId, codeHash: 'x', now, expiresAt: new Date(now.getTime() + 60_000), resendIntervalMs: 0 })
      if (change === 'disabled') t.same(await store.setStatus(user.id, 'disabled', now), [])
      else t.equal(await deleteAccount({ store, hashKey, revocations }, user.id), true)
      const session = await store.consumeIntoSession({ phone, challengeId, userId: user.id, now, expiresAt: new Date(now.getTime() + 60_000), device: { userAgent: null, ip: null } })
      t.equal(session, undefined, `${change}: no session`)
      const rows = await database.query(dialect === 'sqlite' ? 'SELECT id FROM securelogin_sessions WHERE user_id = ?' : 'SELECT id FROM securelogin_sessions WHERE user_id = $1', [user.id])
      t.same(rows, [], `${change}: none in the table either`)
    }
  })
}
