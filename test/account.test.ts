import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildApp, dialects, post, signIn, testPhone, type TestApp } from './helper.js'

// The signed-in user's own account and sessions (GET/PATCH/DELETE /me, GET/DELETE /sessions), on
// both databases. Each rule is tried the way someone would break it: another user's session, a
// token of a deleted account, a name with hidden characters.

function call (app: FastifyInstance, method: 'GET' | 'PATCH' | 'DELETE' | 'POST', url: string, token: string, payload?: object, headers: Record<string, string> = {}) {
  return app.inject({ method, url: `/api/auth${url}`, payload, headers: { authorization: `Bearer ${token}`, ...headers } })
}

/** Signs in with a given User-Agent; the verify_sms answer. */
async function signInFrom (test: TestApp, phone: string, userAgent: string) {
  await post(test.app, '/register', { phone })
  const login = await post(test.app, '/login', { phone })
  if (login.statusCode !== 200 && login.json().code !== 'SECURELOGIN_OTP_RESEND_TOO_SOON') throw new Error(login.body)
  const verify = await test.app.inject({ method: 'POST', url: '/api/auth/verify_sms', payload: { phone, token: test.outbox.lastCodeFor(phone) }, headers: { 'user-agent': userAgent } })
  if (verify.statusCode !== 200) throw new Error(verify.body)
  return verify.json() as { userid: string, access_token: string, refresh_token: string }
}

for (const dialect of dialects) {
  t.test(`${dialect}: GET /me answers the caller's account; PATCH /me renames it under the username rules`, async (t) => {
    const test = await buildApp(t, dialect, { otp: { resendInterval: 0.001 } })
    const phone = testPhone()
    const { userid, access_token: token } = await signIn(test, phone)

    const me = await call(test.app, 'GET', '/me', token)
    t.equal(me.statusCode, 200)
    t.same(Object.keys(me.json()).sort(), ['auth_types', 'created_at', 'phone', 'phone_verified_at', 'userid', 'username'])
    t.match(me.json(), { userid, phone, username: null, auth_types: ['PHONE'] })
    t.notOk('email' in me.json(), 'a phone account has no email field')
    t.ok(Date.parse(me.json().created_at) <= Date.now() && me.json().phone_verified_at !== null, 'timestamps are ISO dates; the number is proven')

    const renamed = await call(test.app, 'PATCH', '/me', token, { username: '  Ada L.  ' })
    t.equal(renamed.statusCode, 200)
    t.equal(renamed.json().username, 'Ada L.', 'trimmed')
    for (const bad of ['evil\u202Egnp.exe', 'zero\u200Bwidth', '   ', 'x'.repeat(65)]) {
      const refused = await call(test.app, 'PATCH', '/me', token, { username: bad })
      t.equal(refused.statusCode, 400, `refused: ${JSON.stringify(bad)}`)
      t.equal(refused.json().code, 'SECURELOGIN_BAD_REQUEST')
    }
    t.equal((await call(test.app, 'GET', '/me', token)).json().username, 'Ada L.', 'a refused name changed nothing')
    const cleared = await call(test.app, 'PATCH', '/me', token, { username: null })
    t.equal(cleared.json().username, null, 'null removes the name')
    t.equal((await call(test.app, 'PATCH', '/me', token, { nickname: 'x' })).statusCode, 400, 'unknown fields are refused')

    const anonymous = await test.app.inject({ method: 'GET', url: '/api/auth/me' })
    t.equal(anonymous.statusCode, 401)
    t.equal(anonymous.json().code, 'SECURELOGIN_TOKEN_MISSING')
  })

  t.test(`${dialect}: GET /sessions lists the caller's live sessions with their device, newest first`, async (t) => {
    const test = await buildApp(t, dialect, { otp: { resendInterval: 0.001 } })
    const phone = testPhone()
    const laptop = await signInFrom(test, phone, 'Laptop/1.0')
    await new Promise((resolve) => setTimeout(resolve, 5))
    const phoneApp = await signInFrom(test, phone, `Phone/2.0 ${'x'.repeat(400)}\u0007`)
    const other = await signIn(test, testPhone())

    const listed = await call(test.app, 'GET', '/sessions', phoneApp.access_token)
    t.equal(listed.statusCode, 200)
    const { sessions } = listed.json() as { sessions: Array<Record<string, unknown>> }
    t.equal(sessions.length, 2, 'both sessions of the caller, none of another user')
    t.equal(sessions[0]?.current, true, 'the newest first, and it is the current one')
    t.equal(sessions[1]?.user_agent, 'Laptop/1.0')
    t.equal(sessions[1]?.current, false)
    t.equal((sessions[0]?.user_agent as string).length, 256, 'a long User-Agent is cut to 256 characters')
    t.notMatch(sessions[0]?.user_agent as string, /\u0007/, 'without control characters')
    t.equal(sessions[0]?.ip, '127.0.0.1')
    t.notOk(sessions.some((session) => JSON.stringify(session).includes(other.userid)), 'nothing of another user')

    // A refresh is a sighting: it moves last_seen_at and records the device it came from.
    const before = sessions[1]?.last_seen_at as string
    await new Promise((resolve) => setTimeout(resolve, 5))
    const refreshed = await test.app.inject({ method: 'POST', url: '/api/auth/refresh', headers: { authorization: `Bearer ${laptop.refresh_token}`, 'user-agent': 'Laptop/1.1' } })
    t.equal(refreshed.statusCode, 200)
    const after = (await call(test.app, 'GET', '/sessions', phoneApp.access_token)).json().sessions[1]
    t.ok(Date.parse(after.last_seen_at) > Date.parse(before), 'last_seen_at moved')
    t.equal(after.user_agent, 'Laptop/1.1')
    t.equal(after.created_at, sessions[1]?.created_at, 'created_at did not')

    await post(test.app, '/logout', {}, laptop.access_token)
    const remaining = (await call(test.app, 'GET', '/sessions', phoneApp.access_token)).json().sessions
    t.same(remaining.map((session: { sid: string }) => session.sid), [sessions[0]?.sid], 'an ended session is not listed')
  })

  t.test(`${dialect}: DELETE /sessions/:sid ends one of the caller's sessions, and only the caller's`, async (t) => {
    const test = await buildApp(t, dialect, { otp: { resendInterval: 0.001 } })
    const phone = testPhone()
    const first = await signInFrom(test, phone, 'A')
    const second = await signInFrom(test, phone, 'B')
    const stranger = await signIn(test, testPhone())
    const sessions = (await call(test.app, 'GET', '/sessions', first.access_token)).json().sessions as Array<{ sid: string, current: boolean }>
    const secondSid = sessions.find((session) => !session.current)?.sid as string
    const strangerSid = (await call(test.app, 'GET', '/sessions', stranger.access_token)).json().sessions[0].sid as string

    const foreign = await call(test.app, 'DELETE', `/sessions/${strangerSid}`, first.access_token)
    t.equal(foreign.statusCode, 404, 'another user\'s session is answered as unknown')
    t.equal(foreign.json().code, 'SECURELOGIN_SESSION_NOT_FOUND')
    t.equal((await call(test.app, 'GET', '/me', stranger.access_token)).statusCode, 200, 'and goes on')
    t.equal((await call(test.app, 'DELETE', '/sessions/4f1c2a9e-7b4d-4e2f-9a6b-0c8d1e2f3a4b', first.access_token)).statusCode, 404, 'an unknown id: 404')
    t.equal((await call(test.app, 'DELETE', '/sessions/not-a-uuid', first.access_token)).json().code, 'SECURELOGIN_BAD_REQUEST')

    const ended = await call(test.app, 'DELETE', `/sessions/${secondSid}`, first.access_token)
    t.equal(ended.statusCode, 200)
    t.same(ended.json(), { message: 'session ended' })
    t.equal((await call(test.app, 'GET', '/me', second.access_token)).json().code, 'SECURELOGIN_SESSION_REVOKED', 'its access token stops at once')
    t.equal((await test.app.inject({ method: 'POST', url: '/api/auth/refresh', headers: { authorization: `Bearer ${second.refresh_token}` } })).statusCode, 401, 'and its refresh token')
    t.equal((await call(test.app, 'DELETE', `/sessions/${secondSid}`, first.access_token)).statusCode, 404, 'ending it twice: 404')
    t.equal((await call(test.app, 'GET', '/me', first.access_token)).statusCode, 200, 'the caller\'s session goes on')
  })

  t.test(`${dialect}: DELETE /me needs a fresh token, ends every session, and the number registers again under a new id`, async (t) => {
    const test = await buildApp(t, dialect, { otp: { resendInterval: 0.001 } })
    const phone = testPhone()
    const first = await signIn(test, phone)
    await call(test.app, 'PATCH', '/me', first.access_token, { username: 'Old owner' })
    const second = await signIn(test, phone)
    const notFresh = (await post(test.app, '/refresh', undefined, second.refresh_token)).json().access_token as string

    const stale = await call(test.app, 'DELETE', '/me', notFresh)
    t.equal(stale.json().code, 'SECURELOGIN_FRESH_TOKEN_REQUIRED', 'a token from refresh cannot delete the account')

    const deleted = await call(test.app, 'DELETE', '/me', first.access_token)
    t.equal(deleted.statusCode, 200)
    t.same(deleted.json(), { message: 'account deleted' })
    for (const token of [first.access_token, notFresh]) t.equal((await call(test.app, 'GET', '/me', token)).json().code, 'SECURELOGIN_SESSION_REVOKED', 'every session\'s access token stops')
    t.equal((await post(test.app, '/refresh', undefined, first.refresh_token)).statusCode, 401, 'and refresh tokens')
    t.equal((await call(test.app, 'DELETE', '/me', first.access_token)).statusCode, 401, 'deleting twice is refused')

    const rows = await test.database.query(dialect === 'sqlite' ? 'SELECT phone, username, status FROM securelogin_users WHERE id = ?' : 'SELECT phone, username, status FROM securelogin_users WHERE id = $1', [first.userid])
    t.same(rows, [{ phone: null, username: null, status: 'deleted' }], 'nothing personal is left of it (the row goes once its ended sessions are purged)')

    // The next holder of the number: login (before any account) and registration agree on an id,
    // and it is not the deleted account's.
    const loginAnswer = (await post(test.app, '/login', { phone })).json()
    t.not(loginAnswer.userid, first.userid, 'login answers a new id for the number')
    const registered = (await post(test.app, '/register', { phone })).json()
    t.equal(registered.userid, loginAnswer.userid, 'the id registration gives is the one login answered')
    t.not(registered.userid, first.userid, 'the new account does not inherit the old id')
    const next = await signIn(test, phone)
    t.equal(next.userid, registered.userid)
    t.equal((await call(test.app, 'GET', '/me', next.access_token)).json().username, null, 'nor its name')
  })
}

for (const dialect of dialects) {
  t.test(`${dialect}: review findings: upper-case ids, disguised User-Agents, the cookie transport at phone/verify`, async (t) => {
    const test = await buildApp(t, dialect, { otp: { resendInterval: 0.001 }, cookies: true })
    const phone = testPhone()
    const kept = await signInFrom(test, phone, 'Mozilla\u202Egnp.exe\u200B/5.0')
    const other = await signInFrom(test, phone, 'B')
    const sessions = (await call(test.app, 'GET', '/sessions', kept.access_token)).json().sessions as Array<{ sid: string, current: boolean, user_agent: string }>
    t.equal(sessions.find((session) => session.current)?.user_agent, 'Mozillagnp.exe/5.0', 'bidi overrides and zero-width characters are dropped from the User-Agent')

    // An id written in capitals names the same session, and its tokens stop at once.
    const otherSid = sessions.find((session) => !session.current)?.sid as string
    t.equal((await call(test.app, 'DELETE', `/sessions/${otherSid.toUpperCase()}`, kept.access_token)).statusCode, 200)
    t.equal((await call(test.app, 'GET', '/me', other.access_token)).json().code, 'SECURELOGIN_SESSION_REVOKED', 'at once, on this instance')
    t.equal((await test.app.secureLogin.findUser({ userid: kept.userid.toUpperCase() }))?.userid, kept.userid)

    // A cookie client that changes its number gets the new session in cookies, not in the body.
    const site = { host: 'app.example.com', origin: 'http://app.example.com', 'x-securelogin-transport': 'cookie' }
    const newPhone = testPhone()
    await call(test.app, 'POST', '/phone', kept.access_token, { phone: newPhone })
    const moved = await test.app.inject({ method: 'POST', url: '/api/auth/phone/verify', payload: { phone: newPhone, token: test.outbox.lastCodeFor(newPhone) }, headers: { ...site, authorization: `Bearer ${kept.access_token}` } })
    t.equal(moved.statusCode, 200, moved.body)
    t.notOk('refresh_token' in moved.json(), 'the refresh token is not in the body')
    t.ok(moved.cookies.some((cookie) => cookie.name === 'securelogin_refresh' && cookie.httpOnly === true), 'it is in an HttpOnly cookie')
    t.equal(await test.app.secureLogin.revokeSessions(kept.userid.toUpperCase()), 1, 'the app\'s levers take capitals too')
  })
}
