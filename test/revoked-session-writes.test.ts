import t from 'tap'
import { createStore } from '../lib/store/index.js'
import { buildApp, claimsOf, dialects, post, signIn, testPhone, type Dialect, type TestApp } from './helper.js'

// A session ended on another instance keeps its access tokens working here until this instance's
// revocation list learns it (revocationMaxDelay). In that time its token must not change the
// account's number (which opens a new session of its own) nor give the account a password (a way
// back in): each checks, in the transaction that writes, that the asking session is still live.
// Hostile review 2026-12-05: a revoked token moved the account to the thief's number and got a
// 60-day session.

/** Ends the session as another instance would: in the database, unknown to this one's revocation list. */
async function endElsewhere (test: TestApp, dialect: Dialect, userId: string, sid: string): Promise<void> {
  const elsewhere = createStore(test.database.db, dialect)
  if (!await elsewhere.revokeSession(sid, userId, 'logout', new Date())) throw new Error('nothing revoked')
}

async function liveSessions (test: TestApp, userId: string): Promise<number> {
  return (await test.database.query('SELECT id FROM securelogin_sessions WHERE user_id = $1 AND revoked_at IS NULL', [userId])).length
}

for (const dialect of dialects) {
  t.test(`${dialect}: a session ended on another instance cannot change the account's number`, async (t) => {
    // The revocation list does not refresh during the test: this instance still takes the token.
    const test = await buildApp(t, dialect, { revocationMaxDelay: '1m' })
    const phone = testPhone()
    const signedIn = await signIn(test, phone)
    const newPhone = testPhone()
    t.equal((await post(test.app, '/phone', { phone: newPhone }, signedIn.access_token)).statusCode, 200, 'a code for the new number')
    await endElsewhere(test, dialect, signedIn.userid, claimsOf(signedIn.access_token).sid as string)

    const verify = await post(test.app, '/phone/verify', { phone: newPhone, token: test.outbox.lastCodeFor(newPhone) }, signedIn.access_token)
    t.equal(verify.statusCode, 401)
    t.equal(verify.json().code, 'SECURELOGIN_SESSION_REVOKED')
    t.notOk('refresh_token' in verify.json(), 'no new session')
    t.equal(await liveSessions(test, signedIn.userid), 0, 'none was opened')
    t.same((await test.database.query('SELECT phone FROM securelogin_users WHERE id = $1', [signedIn.userid])).map((row) => row.phone), [phone], 'the account keeps its number')
    t.same((await test.database.query('SELECT consumed_at FROM securelogin_otp_challenges WHERE phone = $1', [newPhone])).map((row) => row.consumed_at), [null], 'and the code is not used up')
  })

  t.test(`${dialect}: a session ended on another instance cannot give the account a password`, async (t) => {
    const test = await buildApp(t, dialect, { revocationMaxDelay: '1m', password: { enabled: true } })
    const signedIn = await signIn(test, testPhone())
    const other = await signIn(test, testPhone())
    await endElsewhere(test, dialect, signedIn.userid, claimsOf(signedIn.access_token).sid as string)

    const email = `revoked.${process.pid}@example.com`
    const change = await post(test.app, '/password', { newpassword: 'correct horse battery staple', email }, signedIn.access_token)
    t.equal(change.statusCode, 401)
    t.equal(change.json().code, 'SECURELOGIN_SESSION_REVOKED')
    t.same((await test.database.query('SELECT password_hash, email FROM securelogin_users WHERE id = $1', [signedIn.userid])).map((row) => [row.password_hash, row.email]), [[null, null]], 'no password and no email were set')
    t.equal((await post(test.app, '/login', { auth_type: 'PASSWORD', email, password: 'correct horse battery staple' })).statusCode, 401, 'nobody signs in with it')
    // A live session of another account is not touched, and a live one may still set its password.
    t.equal((await post(test.app, '/password', { newpassword: 'another long passphrase', email: `live.${process.pid}@example.com` }, other.access_token)).statusCode, 200, 'a live session sets one')
  })
}

for (const dialect of dialects) {
  t.test(`${dialect}: ending every session of an account while its number changes leaves no live session, whichever commits first`, async (t) => {
    const test = await buildApp(t, dialect, { otp: { resendInterval: 0.001 }, rateLimit: { sendsPerPrefix: { max: 1_000, window: '1h' }, sendsPerIp: { max: 1_000, window: '1h' }, verifiesPerIp: { max: 1_000, window: '1h' }, registersPerIp: { max: 1_000, window: '1h' } } })
    const outcomes = new Set<number>()
    for (let round = 0; round < 30; round++) {
      const signedIn = await signIn(test, testPhone())
      const newPhone = testPhone()
      t.equal((await post(test.app, '/phone', { phone: newPhone }, signedIn.access_token)).statusCode, 200)
      const code = test.outbox.lastCodeFor(newPhone)
      // Staggered by 0–5 ms: either may take the account's row first.
      const [change] = await Promise.all([
        post(test.app, '/phone/verify', { phone: newPhone, token: code }, signedIn.access_token),
        new Promise((resolve) => setTimeout(resolve, round % 6)).then(() => test.app.secureLogin.revokeSessions(signedIn.userid)),
      ])
      outcomes.add(change.statusCode)
      t.equal(await liveSessions(test, signedIn.userid), 0, `round ${round}: the change answered ${change.statusCode}, and no session is live`)
    }
    t.comment(`answers of the change: ${[...outcomes].join(', ')}`)
  })
}
