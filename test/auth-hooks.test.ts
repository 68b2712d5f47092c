import type { FastifyReply, FastifyRequest } from 'fastify'
import t, { type Test } from 'tap'
import { createAuthHooks, type AuthHook } from '../lib/authenticate.js'
import type { CookieOptions } from '../lib/cookies.js'
import { UnavailableError, withRetryAfter } from '../lib/errors.js'
import type { RevocationList } from '../lib/revocation.js'
import type { Session, Store } from '../lib/store/index.js'
import { tokenService } from './fixtures/token-service.js'

// The hooks of lib/authenticate.ts on their own, with the plugin's real tokens and a revocation
// list and a store the test answers for: which header or cookie a token is read from, each reason
// a session is refused, its exact boundaries, and when Retry-After goes on the reply.

const USER = '6f1c1b5e-2d3a-4b7c-9d8e-0f1a2b3c4d5e'
const SID = '0e9d8c7b-6a5f-4e3d-8c2b-1a0f9e8d7c6b'
const PHONE = '+14155550123'
const DAY = 24 * 3600 * 1000
const IDLE_MS = 7 * DAY

interface FakeRequest { headers: Record<string, string | undefined>, method: string, protocol: string, host: string, cookies?: Record<string, string>, user?: Record<string, unknown> }

function requestWith (headers: Record<string, string | undefined>, cookies?: Record<string, string>): FakeRequest {
  return { headers, method: 'GET', protocol: 'https', host: 'app.example', cookies }
}

/** A reply that keeps the headers set on it. */
function replyDouble () {
  const headers: Record<string, string> = {}
  return { headers, reply: { header (name: string, value: string) { headers[name] = value; return this } } as unknown as FastifyReply }
}

/** The error `hook` throws for `request`, or undefined; the reply's headers. */
async function run (hook: AuthHook, request: FakeRequest) {
  const { headers, reply } = replyDouble()
  const error = await hook(request as unknown as FastifyRequest, reply).then(() => undefined, (rejection: unknown) => rejection as { code?: string })
  return { code: error?.code, error, headers, user: request.user }
}

const COOKIES = { secure: true, sameSite: 'lax', accessTokenInCookie: false } as unknown as CookieOptions

/** Hooks over the real token service, a revocation list answering `revoked`, and a store answering `session`. */
async function hooksWith (t: Test, args: { revoked?: (sid: string) => boolean | Promise<boolean>, session?: () => Promise<Session | undefined>, cookies?: CookieOptions, withExtraClaims?: boolean } = {}) {
  const { tokens } = await tokenService(t)
  const revocations = { isRevoked: args.revoked ?? (() => false) } as unknown as RevocationList
  const store = { findSession: args.session ?? (async () => undefined) } as unknown as Store
  const hooks = createAuthHooks(tokens, revocations, store, { withExtraClaims: args.withExtraClaims ?? false, cookies: args.cookies, idleTimeoutMs: IDLE_MS })
  const now = Date.now()
  const access = (fresh = true) => tokens.signAccess({ userId: USER, sessionId: SID, phone: PHONE, fresh, now, sessionExpiresAt: now + DAY, extraClaims: { role: 'admin' } }).token
  const refresh = (generation = 2) => tokens.signRefresh({ userId: USER, sessionId: SID, phone: PHONE, generation, now, sessionExpiresAt: now + DAY })
  return { hooks, access, refresh }
}

function sessionRow (changes: Partial<Session> = {}): Session {
  const now = Date.now()
  return { id: SID, userId: USER, generation: 2, createdAt: new Date(now - DAY), refreshedAt: new Date(now - 1000), expiresAt: new Date(now + DAY), revokedAt: null, revokedReason: null, userAgent: null, ip: null, ...changes }
}

t.test('the Bearer header: its forms', async (t) => {
  const { hooks, access } = await hooksWith(t)
  const token = access()
  for (const header of [`Bearer ${token}`, `bearer ${token}`, `BEARER  ${token}`, `Bearer ${token}  `]) {
    t.equal((await run(hooks.authenticate, requestWith({ authorization: header }))).code, undefined, `accepted: ${JSON.stringify(header.replace(token, '<token>'))}`)
  }
  const refused = [undefined, token, `Bearer${token}`, `Basic ${token}`, `xBearer ${token}`, `Bearer ${token} x`, `Bearer ${token}.x`, `Bearer x${token.slice(token.indexOf('.'))}!`, `Bearer <${token}>`, `Bearer ${token.split('.').slice(0, 2).join('.')}`]
  for (const header of refused) {
    t.equal((await run(hooks.authenticate, requestWith({ authorization: header }))).code, 'SECURELOGIN_TOKEN_MISSING', `treated as missing: ${JSON.stringify(header?.replace(token, '<token>'))}`)
  }
})

t.test('authenticate puts the token\'s user on the request; authenticateFresh wants a fresh token', async (t) => {
  const { hooks, access } = await hooksWith(t)
  const plain = await run(hooks.authenticate, requestWith({ authorization: `Bearer ${access(false)}` }))
  t.same(plain.user, { userid: USER, phone: PHONE, sid: SID, fresh: false }, 'without jwt.claims, no extra claims')
  t.equal((await run(hooks.authenticateFresh, requestWith({ authorization: `Bearer ${access(false)}` }))).code, 'SECURELOGIN_FRESH_TOKEN_REQUIRED')
  const fresh = await run(hooks.authenticateFresh, requestWith({ authorization: `Bearer ${access(true)}` }))
  t.equal(fresh.code, undefined)
  t.equal(fresh.user?.fresh, true)
  t.equal((await run(hooks.authenticateFresh, requestWith({}))).code, 'SECURELOGIN_TOKEN_MISSING', 'authenticateFresh checks the token first')

  const { hooks: withClaims, access: accessWithClaims } = await hooksWith(t, { withExtraClaims: true })
  t.equal((await run(withClaims.authenticate, requestWith({ authorization: `Bearer ${accessWithClaims()}` }))).user?.role, 'admin', 'with jwt.claims, the extra claims too')
})

t.test('a revoked session is refused, at once or after the list was re-read; a 503 carries Retry-After', async (t) => {
  const answers: Record<string, () => boolean | Promise<boolean>> = {
    'revoked, from the loaded list': () => true,
    'revoked, once re-read': () => Promise.resolve(true),
    live: () => false,
    'live, once re-read': () => Promise.resolve(false),
    unreachable: () => Promise.reject(withRetryAfter(new UnavailableError(), 2)),
  }
  let answer = answers.live!
  const { hooks, access, refresh } = await hooksWith(t, { revoked: () => answer() })
  const expected: Record<string, string | undefined> = {
    'revoked, from the loaded list': 'SECURELOGIN_SESSION_REVOKED',
    'revoked, once re-read': 'SECURELOGIN_SESSION_REVOKED',
    live: undefined,
    'live, once re-read': undefined,
    unreachable: 'SECURELOGIN_UNAVAILABLE',
  }
  for (const [name, revoked] of Object.entries(answers)) {
    answer = revoked
    const byAccess = await run(hooks.authenticate, requestWith({ authorization: `Bearer ${access()}` }))
    t.equal(byAccess.code, expected[name], `authenticate, ${name}`)
    t.equal(byAccess.headers['retry-after'], name === 'unreachable' ? '2' : undefined, `authenticate, ${name}: Retry-After only with a 503`)
    t.equal((await run(hooks.refreshTokenClaims, requestWith({ authorization: `Bearer ${refresh()}` }))).code, expected[name], `refresh, ${name}`)
  }
})

t.test('refreshTokenClaims puts the refresh token\'s user and generation on the request', async (t) => {
  const { hooks, refresh, access } = await hooksWith(t)
  const answer = await run(hooks.refreshTokenClaims, requestWith({ authorization: `Bearer ${refresh(5)}` }))
  t.same(answer.user, { userid: USER, phone: PHONE, sid: SID, fresh: false, generation: 5 })
  t.equal((await run(hooks.refreshTokenClaims, requestWith({ authorization: `Bearer ${access()}` }))).code, 'SECURELOGIN_TOKEN_INVALID', 'an access token is not a refresh token')
})

t.test('authenticateRefresh reads the session row: each reason to refuse, and its boundaries', async (t) => {
  let row: Session | undefined
  let failure: Error | undefined
  const { hooks, refresh } = await hooksWith(t, { session: async () => { if (failure !== undefined) throw failure; return row } })
  const check = async (session: Session | undefined) => {
    row = session
    return run(hooks.authenticateRefresh, requestWith({ authorization: `Bearer ${refresh()}` }))
  }
  // The clock stands still, so the boundaries are exact.
  const realNow = Date.now
  const now = realNow()
  Date.now = () => now
  t.teardown(() => { Date.now = realNow })
  const live = await check(sessionRow())
  t.equal(live.code, undefined, 'a live session')
  t.equal(live.user?.generation, 2)
  t.equal((await check(undefined)).code, 'SECURELOGIN_SESSION_REVOKED', 'no session row')
  t.equal((await check(sessionRow({ userId: '11111111-2222-4333-8444-555555555555' }))).code, 'SECURELOGIN_SESSION_REVOKED', 'a session of another user')
  t.equal((await check(sessionRow({ revokedAt: new Date(now - 1000) }))).code, 'SECURELOGIN_SESSION_REVOKED', 'an ended session')
  t.equal((await check(sessionRow({ expiresAt: new Date(now - 1) }))).code, 'SECURELOGIN_SESSION_REVOKED', 'an expired session')
  t.equal((await check(sessionRow({ expiresAt: new Date(now) }))).code, 'SECURELOGIN_SESSION_REVOKED', 'a session expiring this millisecond')
  t.equal((await check(sessionRow({ expiresAt: new Date(now + 1) }))).code, undefined, 'one expiring a millisecond later is live')
  t.equal((await check(sessionRow({ refreshedAt: new Date(now - IDLE_MS) }))).code, 'SECURELOGIN_SESSION_EXPIRED', 'unused for exactly idleTimeout: expired')
  t.equal((await check(sessionRow({ refreshedAt: new Date(now - IDLE_MS + 1) }))).code, undefined, 'unused a millisecond less: live')

  failure = withRetryAfter(new UnavailableError(), 2)
  const unreachable = await check(sessionRow())
  t.equal(unreachable.code, 'SECURELOGIN_UNAVAILABLE')
  t.equal(unreachable.headers['retry-after'], '2', 'a 503 of the store carries Retry-After')
  failure = new Error('a bug, not an outage')
  const broken = await check(sessionRow())
  t.equal(broken.error, failure, 'another error goes on as it is')
  t.same(broken.headers, {}, 'without Retry-After')
})

t.test('with cookies, a request without an Authorization header that asks for them reads the cookie', async (t) => {
  const { hooks, access, refresh } = await hooksWith(t, { cookies: COOKIES })
  const asksForCookies = { 'x-securelogin-transport': 'cookie' }
  t.equal((await run(hooks.refreshTokenClaims, requestWith({ ...asksForCookies, cookie: 'securelogin_refresh=x' }, { securelogin_refresh: refresh() }))).code, undefined, 'the refresh token from its cookie')
  t.equal((await run(hooks.refreshTokenClaims, requestWith(asksForCookies, {}))).code, 'SECURELOGIN_TOKEN_MISSING', 'no cookie: missing')
  t.equal((await run(hooks.refreshTokenClaims, requestWith({ ...asksForCookies, cookie: 'securelogin_refresh=x', authorization: `Bearer ${access()}` }, { securelogin_refresh: refresh() }))).code, 'SECURELOGIN_TOKEN_INVALID', 'an Authorization header wins over the cookie')
  t.equal((await run(hooks.authenticate, requestWith({ ...asksForCookies, cookie: 'securelogin_access=x' }, { securelogin_access: access() }))).code, 'SECURELOGIN_TOKEN_MISSING', 'the access token is not read from a cookie unless accessToken is \'cookie\'')

  const { hooks: accessInCookie, access: accessToken } = await hooksWith(t, { cookies: { ...COOKIES, accessTokenInCookie: true } })
  t.equal((await run(accessInCookie.authenticate, requestWith({ ...asksForCookies, cookie: 'securelogin_access=x' }, { securelogin_access: accessToken() }))).code, undefined, 'with accessToken \'cookie\' it is')

  const { hooks: noCookies, refresh: refreshToken } = await hooksWith(t)
  t.equal((await run(noCookies.refreshTokenClaims, requestWith({ ...asksForCookies, cookie: 'securelogin_refresh=x' }, { securelogin_refresh: refreshToken() }))).code, 'SECURELOGIN_TOKEN_MISSING', 'without the cookies option, no cookie is read')
})
