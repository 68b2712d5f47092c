import t from 'tap'
import { buildApp, dialects, post, testPhone, type TestApp } from './helper.js'

// The optional cookie transport for browser apps: the refresh token in an HttpOnly cookie scoped
// to the plugin's routes, read only from requests that ask for it from an allowed origin.

const SITE = { host: 'app.example.com', origin: 'http://app.example.com' }
const COOKIE_CLIENT = { host: SITE.host, origin: SITE.origin, 'x-securelogin-transport': 'cookie' }

async function codeFor (test: TestApp, phone: string): Promise<string> {
  await post(test.app, '/register', { phone })
  await post(test.app, '/login', { phone })
  return test.outbox.lastCodeFor(phone)
}

function cookieSignIn (test: TestApp, phone: string, code: string, headers: Record<string, string> = COOKIE_CLIENT) {
  return test.app.inject({ method: 'POST', url: '/api/auth/verify_sms', payload: { phone, token: code }, headers })
}

function refreshWithCookie (test: TestApp, refresh: string, headers: Record<string, string> = COOKIE_CLIENT) {
  return test.app.inject({ method: 'POST', url: '/api/auth/refresh', headers, cookies: { securelogin_refresh: refresh } })
}

for (const dialect of dialects) {
  t.test(`${dialect}: the refresh token goes into an HttpOnly cookie and out of the body`, async (t) => {
    const test = await buildApp(t, dialect, { cookies: true })
    const phone = testPhone()
    const verify = await cookieSignIn(test, phone, await codeFor(test, phone))
    t.equal(verify.statusCode, 200)
    const body = verify.json()
    t.notOk('refresh_token' in body, 'no refresh token in the body')
    t.ok(body.access_token, 'the access token is in the body')
    const cookie = verify.cookies.find((c) => c.name === 'securelogin_refresh')
    t.ok(cookie, 'a refresh cookie is set')
    t.equal(cookie?.httpOnly, true, 'HttpOnly')
    t.equal(cookie?.secure, true, 'Secure')
    t.equal(cookie?.sameSite, 'Strict', 'SameSite=Strict')
    t.equal(cookie?.path, '/api/auth', 'scoped to the plugin\'s routes')
    t.ok(cookie!.maxAge! > 59 * 86400 && cookie!.maxAge! <= 60 * 86400, 'lives as long as the session')

    const refreshed = await refreshWithCookie(test, cookie!.value)
    t.equal(refreshed.statusCode, 200, 'refresh takes the cookie')
    t.notOk('refresh_token' in refreshed.json())
    const next = refreshed.cookies.find((c) => c.name === 'securelogin_refresh')
    t.ok(next !== undefined && next.value !== cookie!.value, 'and sets the next one')
    const me = await test.app.inject({ url: '/me', headers: { authorization: `Bearer ${refreshed.json().access_token}` } })
    t.equal(me.statusCode, 200)

    const logout = await test.app.inject({ method: 'POST', url: '/api/auth/logout', headers: { ...COOKIE_CLIENT, authorization: `Bearer ${refreshed.json().access_token}` } })
    t.equal(logout.statusCode, 200)
    const cleared = logout.cookies.find((c) => c.name === 'securelogin_refresh')
    t.ok(cleared !== undefined && cleared.value === '' && (cleared.maxAge === 0 || (cleared.expires !== undefined && cleared.expires.getTime() <= Date.now())), 'logout clears the cookie')
    t.equal((await refreshWithCookie(test, next!.value)).statusCode, 401, 'and the session is over')
  })

  t.test(`${dialect}: a cookie is read only for a request that asks for it from an allowed origin`, async (t) => {
    const test = await buildApp(t, dialect, { cookies: true })
    const phone = testPhone()
    const verify = await cookieSignIn(test, phone, await codeFor(test, phone))
    const refresh = verify.cookies.find((c) => c.name === 'securelogin_refresh')!.value

    const noHeader = await refreshWithCookie(test, refresh, { host: SITE.host, origin: SITE.origin })
    t.equal(noHeader.statusCode, 401, 'without X-SecureLogin-Transport the cookie is ignored (a cross-site form cannot send that header)')
    t.equal(noHeader.json().code, 'SECURELOGIN_TOKEN_MISSING')

    for (const origin of ['https://evil.example', 'http://app.example.com.evil.example', 'null', 'https://app.example.com']) {
      const foreign = await refreshWithCookie(test, refresh, { ...COOKIE_CLIENT, origin })
      t.equal(foreign.statusCode, 403, `Origin ${origin} is refused`)
      t.equal(foreign.json().code, 'SECURELOGIN_COOKIE_ORIGIN_REFUSED')
    }
    const { origin: _origin, ...withoutOrigin } = COOKIE_CLIENT
    t.equal((await refreshWithCookie(test, refresh, withoutOrigin)).statusCode, 403, 'a POST without Origin is refused')

    const ok = await refreshWithCookie(test, refresh)
    t.equal(ok.statusCode, 200, 'the refused attempts spent nothing: the cookie still works from the app\'s own origin')
  })

  t.test(`${dialect}: a refused origin at verify_sms spends no code`, async (t) => {
    const test = await buildApp(t, dialect, { cookies: true })
    const phone = testPhone()
    const code = await codeFor(test, phone)
    const refused = await cookieSignIn(test, phone, code, { ...COOKIE_CLIENT, origin: 'https://evil.example' })
    t.equal(refused.statusCode, 403)
    t.equal(refused.cookies.length, 0, 'no cookie is set')
    const rows = await test.database.query('SELECT attempts, consumed_at FROM securelogin_otp_challenges')
    t.equal(Number(rows[0]!.attempts), 0, 'no attempt was counted')
    t.equal((await cookieSignIn(test, phone, code)).statusCode, 200, 'the code still works')
  })

  t.test(`${dialect}: allowedOrigins lists the other origins that may use the cookies`, async (t) => {
    const test = await buildApp(t, dialect, { cookies: { allowedOrigins: ['https://web.example.com'], sameSite: 'lax', secure: false, domain: 'example.com' } })
    const phone = testPhone()
    const code = await codeFor(test, phone)
    t.equal((await cookieSignIn(test, phone, code, { ...COOKIE_CLIENT, origin: 'https://other.example.com' })).statusCode, 403, 'an origin not listed is refused')
    const verify = await cookieSignIn(test, phone, code, { ...COOKIE_CLIENT, origin: 'https://web.example.com' })
    t.equal(verify.statusCode, 200)
    const cookie = verify.cookies.find((c) => c.name === 'securelogin_refresh')!
    t.equal(cookie.sameSite, 'Lax')
    t.notOk(cookie.secure, 'secure: false (plain-http development)')
    t.equal(cookie.domain, 'example.com')
    const own = await refreshWithCookie(test, cookie.value, COOKIE_CLIENT)
    t.equal(own.statusCode, 200, 'the server\'s own origin always may')
  })

  t.test(`${dialect}: a refused origin at refresh does not spend the refresh token, whichever way it came`, async (t) => {
    const test = await buildApp(t, dialect, { cookies: true })
    const phone = testPhone()
    const verify = await cookieSignIn(test, phone, await codeFor(test, phone), { host: SITE.host })
    const refresh = verify.json().refresh_token as string
    const refused = await test.app.inject({ method: 'POST', url: '/api/auth/refresh', headers: { ...COOKIE_CLIENT, origin: 'https://evil.example', authorization: `Bearer ${refresh}` } })
    t.equal(refused.statusCode, 403)
    const rows = await test.database.query('SELECT generation FROM securelogin_sessions')
    t.equal(Number(rows[0]!.generation), 0, 'the session did not rotate')
    t.equal((await post(test.app, '/refresh', {}, refresh)).statusCode, 200, 'the refresh token still works')
  })

  t.test(`${dialect}: two cookies of one name (cookie tossing) count as none`, async (t) => {
    const test = await buildApp(t, dialect, { cookies: true })
    const phone = testPhone()
    const verify = await cookieSignIn(test, phone, await codeFor(test, phone))
    const refresh = verify.cookies.find((c) => c.name === 'securelogin_refresh')!.value
    // The parser reads a name without the spaces and tabs around it (review 2026-12-05): a planted
    // `securelogin_refresh =…` is the same name, and the one it would take.
    const tossings = [
      `securelogin_refresh=planted; securelogin_refresh=${refresh}`,
      `securelogin_refresh=${refresh}; securelogin_refresh=${refresh}`,
      `securelogin_refresh =planted; securelogin_refresh=${refresh}`,
      `\tsecurelogin_refresh\t=planted;securelogin_refresh=${refresh}`,
      `other; securelogin_refresh=planted; securelogin_refresh=${refresh}`,
    ]
    for (const cookie of tossings) {
      const tossed = await test.app.inject({ method: 'POST', url: '/api/auth/refresh', headers: { ...COOKIE_CLIENT, cookie } })
      t.equal(tossed.statusCode, 401, 'refused')
      t.equal(tossed.json().code, 'SECURELOGIN_TOKEN_MISSING')
    }
    t.equal((await refreshWithCookie(test, refresh)).statusCode, 200, 'one cookie works')
  })

  t.test(`${dialect}: accessToken: 'cookie' puts the access token in a cookie too`, async (t) => {
    const test = await buildApp(t, dialect, { cookies: { accessToken: 'cookie' } })
    test.app.log.level = 'silent'
    const phone = testPhone()
    const verify = await cookieSignIn(test, phone, await codeFor(test, phone))
    t.equal(verify.statusCode, 200)
    t.notOk('access_token' in verify.json(), 'no access token in the body')
    t.ok(verify.json().expires_in > 0, 'but its lifetime is')
    const access = verify.cookies.find((c) => c.name === 'securelogin_access')!
    t.equal(access.path, '/', 'the access cookie reaches the app\'s routes')
    t.equal(access.httpOnly, true)
    t.equal(access.maxAge, verify.json().expires_in)

    const me = await test.app.inject({ url: '/me', headers: { host: SITE.host, 'x-securelogin-transport': 'cookie' }, cookies: { securelogin_access: access.value } })
    t.equal(me.statusCode, 200, 'authenticate reads the access cookie on a same-origin GET (browsers send no Origin there)')
    const bare = await test.app.inject({ url: '/me', headers: { host: SITE.host }, cookies: { securelogin_access: access.value } })
    t.equal(bare.statusCode, 401, 'but not without the transport header')
  })

  t.test(`${dialect}: without the cookies option the transport header changes nothing`, async (t) => {
    const test = await buildApp(t, dialect)
    const phone = testPhone()
    const verify = await cookieSignIn(test, phone, await codeFor(test, phone))
    t.equal(verify.statusCode, 200)
    t.ok(verify.json().refresh_token, 'both tokens in the body')
    t.equal(verify.cookies.length, 0, 'no cookie')
  })
}
