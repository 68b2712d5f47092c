import { createHmac, randomBytes } from 'node:crypto'
import t from 'tap'
import { deriveKey } from '../lib/keys.js'
import { buildApp, createTestDatabase, dialects, post, signIn, testPhone, TEST_SECRET, type TestApp } from './helper.js'

function me (test: TestApp, token: string) {
  return test.app.inject({ url: '/me', headers: { authorization: `Bearer ${token}` } })
}

function claims (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())
}

function header (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString())
}

/** The token's payload signed again with HS256 and `key`, under the header `head`. */
function resigned (token: string, key: Buffer, head: Record<string, unknown>): string {
  const input = `${Buffer.from(JSON.stringify(head)).toString('base64url')}.${token.split('.')[1]}`
  return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`
}

/** Moves the session's last refresh (or sign-in) `ms` into the past. */
async function ageSession (test: TestApp, dialect: string, ms: number): Promise<void> {
  const past = dialect === 'sqlite' ? Date.now() - ms : new Date(Date.now() - ms)
  await test.database.query('UPDATE securelogin_sessions SET refreshed_at = $1', [past])
}

for (const dialect of dialects) {
  t.test(`${dialect}: tokens`, async (t) => {
    t.test('the access token is a standard HS256 JWT that any service with the secret can verify', async (t) => {
      const test = await buildApp(t, dialect)
      const { access_token: token, userid } = await signIn(test, testPhone())
      const [head, payload, signature] = token.split('.') as [string, string, string]
      t.same(header(token), { alg: 'HS256', typ: 'at+jwt' }, 'typed as an access token (RFC 9068)')
      const expected = createHmac('sha256', Buffer.from(TEST_SECRET)).update(`${head}.${payload}`).digest('base64url')
      t.equal(signature, expected, 'signed with jwt.secret itself')
      const body = claims(token)
      t.equal(body.sub, userid, 'sub is the public user id')
      t.match(body.sub, /^[0-9a-f-]{36}$/)
      t.equal(body.type, 'access')
      t.type(body.sid, 'string')
      t.equal(body.fresh, true)
      t.ok(typeof body.iat === 'number' && typeof body.exp === 'number' && body.exp === (body.iat as number) + 600)
    })

    t.test('each verifier requires its own typ: at+jwt for access tokens, rt+jwt for refresh tokens', async (t) => {
      const test = await buildApp(t, dialect)
      const tokens = await signIn(test, testPhone())
      t.same(header(tokens.refresh_token), { alg: 'HS256', typ: 'rt+jwt' })
      const accessKey = Buffer.from(TEST_SECRET)
      const refreshKey = deriveKey(accessKey, 'refresh-token')
      // Each token signed again with its own key: only the typ changes.
      t.equal((await me(test, resigned(tokens.access_token, accessKey, { alg: 'HS256', typ: 'at+jwt' }))).statusCode, 200, 'the access token re-signed as it was works')
      for (const typ of ['JWT', 'rt+jwt', undefined]) {
        const answer = await me(test, resigned(tokens.access_token, accessKey, { alg: 'HS256', typ }))
        t.equal(answer.json().code, 'SECURELOGIN_TOKEN_INVALID', `authenticate refuses an access token typed ${typ}`)
      }
      for (const typ of ['JWT', 'at+jwt', undefined]) {
        const answer = await post(test.app, '/refresh', undefined, resigned(tokens.refresh_token, refreshKey, { alg: 'HS256', typ }))
        t.equal(answer.json().code, 'SECURELOGIN_TOKEN_INVALID', `refresh refuses a refresh token typed ${typ}`)
      }
      const control = await post(test.app, '/refresh', undefined, resigned(tokens.refresh_token, refreshKey, { alg: 'HS256', typ: 'rt+jwt' }))
      t.equal(control.statusCode, 200, 'the refresh token re-signed as it was works')
    })

    t.test('a refresh token is not an access token and the other way round', async (t) => {
      const test = await buildApp(t, dialect)
      const tokens = await signIn(test, testPhone())
      const asAccess = await me(test, tokens.refresh_token)
      t.equal(asAccess.statusCode, 401)
      t.equal(asAccess.json().code, 'SECURELOGIN_TOKEN_INVALID')
      const asRefresh = await post(test.app, '/refresh', undefined, tokens.access_token)
      t.equal(asRefresh.statusCode, 401)
      t.equal(asRefresh.json().code, 'SECURELOGIN_TOKEN_INVALID')
    })

    t.test('the algorithm is pinned: alg none and other HMAC sizes are refused', async (t) => {
      const test = await buildApp(t, dialect)
      const { access_token: token } = await signIn(test, testPhone())
      const payload = token.split('.')[1]!
      const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${payload}.`
      t.equal((await me(test, none)).statusCode, 401)
      const hs512Header = Buffer.from(JSON.stringify({ alg: 'HS512', typ: 'JWT' })).toString('base64url')
      const hs512 = `${hs512Header}.${payload}.${createHmac('sha512', Buffer.from(TEST_SECRET)).update(`${hs512Header}.${payload}`).digest('base64url')}`
      t.equal((await me(test, hs512)).statusCode, 401)
      const forged = claims(token)
      forged.sub = '00000000-0000-4000-8000-000000000000'
      const tampered = `${token.split('.')[0]}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${token.split('.')[2]}`
      t.equal((await me(test, tampered)).statusCode, 401, 'a changed payload breaks the signature')
    })

    t.test('an expired access token is refused with its own code', async (t) => {
      // 3 s: exp is whole seconds (iat rounded down), so a 1 s token signed in a second's last
      // milliseconds could expire before its first use.
      const test = await buildApp(t, dialect, { jwt: { accessTokenTtl: 3 } })
      const { access_token: token } = await signIn(test, testPhone())
      t.equal((await me(test, token)).statusCode, 200)
      const { exp } = claims(token) as { exp: number }
      await new Promise((resolve) => setTimeout(resolve, exp * 1000 + 100 - Date.now()))
      const late = await me(test, token)
      t.equal(late.statusCode, 401)
      t.equal(late.json().code, 'SECURELOGIN_TOKEN_EXPIRED')
    })

    t.test('a token signed with another secret is refused', async (t) => {
      const test = await buildApp(t, dialect)
      const other = await buildApp(t, dialect, { jwt: { secret: randomBytes(48).toString('base64') } })
      const { access_token: token } = await signIn(other, testPhone())
      t.equal((await me(test, token)).json().code, 'SECURELOGIN_TOKEN_INVALID')
    })
  })

  t.test(`${dialect}: refresh`, async (t) => {
    t.test('refresh rotates: the old refresh token stops working at once', async (t) => {
      const test = await buildApp(t, dialect)
      const first = await signIn(test, testPhone())
      const second = (await post(test.app, '/refresh', undefined, first.refresh_token)).json()
      t.type(second.refresh_token, 'string')
      const replay = await post(test.app, '/refresh', undefined, first.refresh_token)
      t.equal(replay.statusCode, 409, 'a replay within sessions.reuseGrace is told to use the newer token')
      t.equal(replay.json().code, 'SECURELOGIN_REFRESH_SUPERSEDED')
      t.equal((await post(test.app, '/refresh', undefined, second.refresh_token)).statusCode, 200, 'a replay within the grace period does not end the session')
    })

    t.test('of 20 concurrent refreshes with one token exactly one yields a new pair, and the session survives', async (t) => {
      const test = await buildApp(t, dialect)
      const tokens = await signIn(test, testPhone())
      const answers = await Promise.all(Array.from({ length: 20 }, () => post(test.app, '/refresh', undefined, tokens.refresh_token)))
      const winners = answers.filter((a) => a.statusCode === 200)
      t.equal(winners.length, 1)
      t.same(answers.filter((a) => a.statusCode !== 200).map((a) => a.json().code), Array(19).fill('SECURELOGIN_REFRESH_SUPERSEDED'), 'the others are told to use the newer token, not signed out')
      const next = await post(test.app, '/refresh', undefined, winners[0]!.json().refresh_token)
      t.equal(next.statusCode, 200, 'the winner\'s token still works')
    })

    t.test('reusing a refresh token two generations old ends the session', async (t) => {
      const test = await buildApp(t, dialect)
      const first = await signIn(test, testPhone())
      const second = (await post(test.app, '/refresh', undefined, first.refresh_token)).json()
      const third = (await post(test.app, '/refresh', undefined, second.refresh_token)).json()
      const stolen = await post(test.app, '/refresh', undefined, first.refresh_token)
      t.equal(stolen.statusCode, 401)
      t.equal((await post(test.app, '/refresh', undefined, third.refresh_token)).statusCode, 401, 'the current refresh token died with the session')
      t.equal((await me(test, third.access_token)).statusCode, 401, 'and so did its access token')
      const rows = await test.database.query('SELECT revoked_reason FROM securelogin_sessions')
      t.equal(rows[0]!.revoked_reason, 'refresh_token_reuse')
    })

    t.test('reusing the previous refresh token after the grace period ends the session', async (t) => {
      const test = await buildApp(t, dialect)
      const first = await signIn(test, testPhone())
      const second = (await post(test.app, '/refresh', undefined, first.refresh_token)).json()
      await ageSession(test, dialect, 60_000)
      const reused = await post(test.app, '/refresh', undefined, first.refresh_token)
      t.equal(reused.statusCode, 401)
      t.equal(reused.json().code, 'SECURELOGIN_SESSION_REVOKED')
      t.equal((await post(test.app, '/refresh', undefined, second.refresh_token)).statusCode, 401, 'the session has ended')
    })

    t.test('sessions.reuseGrace sets the grace period', async (t) => {
      const test = await buildApp(t, dialect, { sessions: { reuseGrace: '5m' } })
      const first = await signIn(test, testPhone())
      const second = (await post(test.app, '/refresh', undefined, first.refresh_token)).json()
      await ageSession(test, dialect, 60_000)
      t.equal((await post(test.app, '/refresh', undefined, first.refresh_token)).json().code, 'SECURELOGIN_REFRESH_SUPERSEDED', 'a minute after the rotation is within 5 minutes')
      await ageSession(test, dialect, 5 * 60_000 + 1000)
      t.equal((await post(test.app, '/refresh', undefined, first.refresh_token)).json().code, 'SECURELOGIN_SESSION_REVOKED', 'past 5 minutes the reuse ends the session')
      t.equal((await post(test.app, '/refresh', undefined, second.refresh_token)).json().code, 'SECURELOGIN_SESSION_REVOKED')
    })

    t.test('a session idle for sessions.idleTimeout cannot be refreshed; each refresh restarts the clock', async (t) => {
      const test = await buildApp(t, dialect, { sessions: { idleTimeout: '1h' } })
      const first = await signIn(test, testPhone())
      await ageSession(test, dialect, 50 * 60_000)
      const second = await post(test.app, '/refresh', undefined, first.refresh_token)
      t.equal(second.statusCode, 200, '50 minutes after sign-in the session is still live')
      await ageSession(test, dialect, 50 * 60_000)
      const third = await post(test.app, '/refresh', undefined, second.json().refresh_token)
      t.equal(third.statusCode, 200, 'and 50 minutes after that refresh (100 after sign-in) too')
      await ageSession(test, dialect, 60 * 60_000 + 1000)
      const idle = await post(test.app, '/refresh', undefined, third.json().refresh_token)
      t.equal(idle.statusCode, 401)
      t.equal(idle.json().code, 'SECURELOGIN_SESSION_EXPIRED', 'an hour and a second without a refresh')
      const [row] = await test.database.query('SELECT generation, revoked_at FROM securelogin_sessions')
      t.equal(Number(row!.generation), 2, 'the refused refresh did not rotate')
      t.equal(row!.revoked_at, null, 'an idle session is not a revoked one')
    })

    t.test('the default idle timeout is 30 days', async (t) => {
      const test = await buildApp(t, dialect)
      const tokens = await signIn(test, testPhone())
      await ageSession(test, dialect, 29 * 86_400_000)
      const live = await post(test.app, '/refresh', undefined, tokens.refresh_token)
      t.equal(live.statusCode, 200, '29 days')
      await ageSession(test, dialect, 30 * 86_400_000 + 1000)
      t.equal((await post(test.app, '/refresh', undefined, live.json().refresh_token)).json().code, 'SECURELOGIN_SESSION_EXPIRED', '30 days')
    })


    t.test('a refresh token expires with its session', async (t) => {
      const test = await buildApp(t, dialect)
      const tokens = await signIn(test, testPhone())
      const past = dialect === 'sqlite' ? Date.now() - 1000 : new Date(Date.now() - 1000)
      await test.database.query('UPDATE securelogin_sessions SET expires_at = $1', [past])
      t.equal((await post(test.app, '/refresh', undefined, tokens.refresh_token)).statusCode, 401)
    })

    t.test('refresh accepts no body, an empty JSON body and {}', async (t) => {
      const test = await buildApp(t, dialect)
      let { refresh_token: token } = await signIn(test, testPhone())
      for (const request of [{}, { payload: '', headers: { 'content-type': 'application/json' } }, { payload: '{}', headers: { 'content-type': 'application/json' } }]) {
        const answer = await test.app.inject({ method: 'POST', url: '/api/auth/refresh', ...request, headers: { ...request.headers, authorization: `Bearer ${token}` } })
        t.equal(answer.statusCode, 200, answer.body)
        token = answer.json().refresh_token
      }
    })
  })

  t.test(`${dialect}: logout`, async (t) => {
    // Several devices of one number sign in back to back: no resend cooldown here.
    const devices = { otp: { resendInterval: 0.001 } }

    t.test('logout ends only that session', async (t) => {
      const test = await buildApp(t, dialect, devices)
      const phone = testPhone()
      const laptop = await signIn(test, phone)
      const phoneApp = await signIn(test, phone)
      t.equal((await post(test.app, '/logout', { refresh_token: laptop.refresh_token }, laptop.access_token)).statusCode, 200)
      t.equal((await me(test, laptop.access_token)).statusCode, 401)
      t.equal((await post(test.app, '/refresh', undefined, laptop.refresh_token)).statusCode, 401)
      t.equal((await me(test, phoneApp.access_token)).statusCode, 200, 'the other device is still signed in')
      const second = await post(test.app, '/logout', { refresh_token: laptop.refresh_token }, phoneApp.access_token)
      t.equal(second.statusCode, 401, 'a second logout of the same session fails')
      t.equal(second.json().code, 'SECURELOGIN_SESSION_REVOKED')
    })

    t.test('logout without a refresh token ends the access token\'s session', async (t) => {
      const test = await buildApp(t, dialect)
      const tokens = await signIn(test, testPhone())
      t.equal((await post(test.app, '/logout', {}, tokens.access_token)).statusCode, 200)
      t.equal((await post(test.app, '/refresh', undefined, tokens.refresh_token)).statusCode, 401)
    })

    t.test('the refresh token must belong to the same user', async (t) => {
      const test = await buildApp(t, dialect)
      const alice = await signIn(test, testPhone())
      const bob = await signIn(test, testPhone())
      const answer = await post(test.app, '/logout', { refresh_token: bob.refresh_token }, alice.access_token)
      t.equal(answer.statusCode, 403)
      t.equal(answer.json().code, 'SECURELOGIN_SESSION_MISMATCH')
      t.equal((await post(test.app, '/refresh', undefined, bob.refresh_token)).statusCode, 200, 'bob is still signed in')
    })

    t.test('logout needs an access token, not a refresh token', async (t) => {
      const test = await buildApp(t, dialect)
      const tokens = await signIn(test, testPhone())
      t.equal((await post(test.app, '/logout', { refresh_token: tokens.refresh_token }, tokens.refresh_token)).statusCode, 401)
      t.equal((await post(test.app, '/logout', { refresh_token: tokens.access_token }, tokens.access_token)).statusCode, 401, 'nor an access token in place of the refresh token')
      t.equal((await me(test, tokens.access_token)).statusCode, 200, 'nothing was ended')
    })

    t.test('logout_all_other_sessions needs a fresh token and ends every other session', async (t) => {
      const test = await buildApp(t, dialect, devices)
      const phone = testPhone()
      const signedIn = []
      for (let i = 0; i < 3; i++) signedIn.push(await signIn(test, phone))
      const stranger = await signIn(test, testPhone())
      const [keep, ...others] = signedIn as [typeof signedIn[0], ...typeof signedIn]

      const refreshed = (await post(test.app, '/refresh', undefined, keep.refresh_token)).json()
      const stale = await post(test.app, '/logout_all_other_sessions', { refresh_token: refreshed.refresh_token }, refreshed.access_token)
      t.equal(stale.statusCode, 401)
      t.equal(stale.json().code, 'SECURELOGIN_FRESH_TOKEN_REQUIRED')

      const wrong = await post(test.app, '/logout_all_other_sessions', { refresh_token: others[0]!.refresh_token }, keep.access_token)
      t.equal(wrong.statusCode, 403, 'a refresh token of another session is refused')

      const done = await post(test.app, '/logout_all_other_sessions', { refresh_token: refreshed.refresh_token }, keep.access_token)
      t.equal(done.statusCode, 200)
      t.same(done.json(), { message: 'logout all other sessions successful' })
      for (const other of others) {
        t.equal((await me(test, other.access_token)).statusCode, 401)
        t.equal((await post(test.app, '/refresh', undefined, other.refresh_token)).statusCode, 401)
      }
      t.equal((await me(test, keep.access_token)).statusCode, 200, 'the current session stays')
      t.equal((await me(test, stranger.access_token)).statusCode, 200, 'other users are untouched')
      const ended = await test.database.query('SELECT revoked_reason FROM securelogin_sessions WHERE revoked_at IS NOT NULL')
      t.same(ended.map((row) => row.revoked_reason), others.map(() => 'logout_all_other_sessions'), 'each ended session records why it ended')
    })

    t.test('a fresh-only route refuses a refreshed token', async (t) => {
      const test = await buildApp(t, dialect)
      const tokens = await signIn(test, testPhone())
      t.equal((await test.app.inject({ url: '/fresh', headers: { authorization: `Bearer ${tokens.access_token}` } })).statusCode, 200)
      const refreshed = (await post(test.app, '/refresh', undefined, tokens.refresh_token)).json()
      const answer = await test.app.inject({ url: '/fresh', headers: { authorization: `Bearer ${refreshed.access_token}` } })
      t.equal(answer.statusCode, 401)
      t.equal(answer.json().code, 'SECURELOGIN_FRESH_TOKEN_REQUIRED')
    })

    t.test('another instance on the same database refuses a logged-out access token within revocationMaxDelay', async (t) => {
      const database = await createTestDatabase(t, dialect)
      const a = await buildApp(t, dialect, { revocationMaxDelay: 1 }, database)
      const b = await buildApp(t, dialect, { revocationMaxDelay: 1 }, database)
      const tokens = await signIn(a, testPhone())
      t.equal((await me(b, tokens.access_token)).statusCode, 200, 'instance B accepts the token')
      t.equal((await post(a.app, '/logout', {}, tokens.access_token)).statusCode, 200)
      const loggedOutAt = Date.now()
      let refusedAfter = -1
      while (Date.now() - loggedOutAt < 3000) {
        if ((await me(b, tokens.access_token)).statusCode === 401) { refusedAfter = Date.now() - loggedOutAt; break }
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      t.ok(refusedAfter >= 0, `instance B refused the token ${refusedAfter} ms after logout`)
    })
  })
}
