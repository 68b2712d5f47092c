import type { FastifyRequest } from 'fastify'
import t, { type Test } from 'tap'
import type { EventFields } from '../lib/events.js'
import type { RevocationList } from '../lib/revocation.js'
import { endOtherSessions, endSession, issueSessionTokens, rotateRefreshToken, type SessionContext } from '../lib/sessions.js'
import type { Session, Store, User } from '../lib/store/index.js'
import { tokenService } from './fixtures/token-service.js'

// lib/sessions.ts on its own, with the plugin's real tokens and a store the test answers for: what
// each call asks the store, and, when a rotation is refused, which answer each session state gets
// (superseded, reuse that ends the session, idle, revoked), with the exact time boundaries.

const USER = '6f1c1b5e-2d3a-4b7c-9d8e-0f1a2b3c4d5e'
const OTHER_USER = '11111111-2222-4333-8444-555555555555'
const SID = '0e9d8c7b-6a5f-4e3d-8c2b-1a0f9e8d7c6b'
const PHONE = '+14155550123'
const SECOND = 1000
const DAY = 24 * 3600 * SECOND
const GRACE_MS = 10 * SECOND
const IDLE_MS = 7 * DAY
// The device a session records: this request's User-Agent and address.
const request = { headers: { 'user-agent': 'Tests/1.0' }, ip: '203.0.113.9' } as unknown as FastifyRequest
const DEVICE = { userAgent: 'Tests/1.0', ip: '203.0.113.9' }

function sessionRow (now: number, changes: Partial<Session> = {}): Session {
  return { id: SID, userId: USER, generation: 4, createdAt: new Date(now - DAY), refreshedAt: new Date(now - 60 * SECOND), expiresAt: new Date(now + 30 * DAY), revokedAt: null, revokedReason: null, userAgent: null, ip: null, ...changes }
}

function payloadOf (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())
}

/** A session context whose store, revocation list and events record what they were asked. */
async function contextFor (t: Test) {
  const { tokens, options } = await tokenService(t)
  const calls: Array<[string, ...unknown[]]> = []
  const answers = {
    consumeIntoSession: undefined as Session | undefined,
    rotateSession: undefined as Session | undefined,
    findSession: undefined as Session | undefined,
    revokeSession: true,
    revokeOtherSessions: [] as string[],
  }
  const store = {
    consumeIntoSession: async (args: unknown) => { calls.push(['consumeIntoSession', args]); return answers.consumeIntoSession },
    rotateSession: async (...args: unknown[]) => { calls.push(['rotateSession', ...args]); return answers.rotateSession },
    findSession: async (id: string) => { calls.push(['findSession', id]); return answers.findSession },
    revokeSession: async (...args: unknown[]) => { calls.push(['revokeSession', ...args]); return answers.revokeSession },
    revokeOtherSessions: async (...args: unknown[]) => { calls.push(['revokeOtherSessions', ...args]); return answers.revokeOtherSessions },
  } as unknown as Store
  const revoked: string[] = []
  const events: EventFields[] = []
  const ctx: SessionContext = {
    options: { ...options, sessions: { reuseGraceMs: GRACE_MS, idleTimeoutMs: IDLE_MS } },
    store,
    tokens,
    revocations: { add: (sid: string) => { revoked.push(sid) } } as unknown as RevocationList,
    events: { emit: (_request: unknown, fields: EventFields) => { events.push(fields) } } as unknown as SessionContext['events'],
  }
  return { ctx, calls, answers, revoked, events, tokens, options }
}

/** Stops the clock at `now` for the rest of the test. */
function freezeClock (t: Test): number {
  const realNow = Date.now
  const now = realNow()
  Date.now = () => now
  t.teardown(() => { Date.now = realNow })
  return now
}

/** The code of what `promise` rejects with, or 'resolved'. */
async function outcome (promise: Promise<unknown>): Promise<string | undefined> {
  return promise.then(() => 'resolved', (error: { code?: string }) => error.code)
}

t.test('a sign-in uses the code up into a session of refreshTokenTtl, with a fresh token pair', async (t) => {
  const { ctx, calls, answers, options } = await contextFor(t)
  const now = freezeClock(t)
  const user = { id: USER, phone: PHONE } as User
  t.equal(await outcome(issueSessionTokens(ctx, { user, phone: PHONE, challengeId: 'c-1' }, request)), 'SECURELOGIN_OTP_EXPIRED', 'a code another request used up: OTP_EXPIRED')
  t.same(calls, [['consumeIntoSession', { phone: PHONE, challengeId: 'c-1', userId: USER, now: new Date(now), expiresAt: new Date(now + options.refreshTokenTtlMs), device: DEVICE }]], 'the session asked for ends refreshTokenTtl from now, from this device')

  answers.consumeIntoSession = sessionRow(now, { generation: 0, expiresAt: new Date(now + options.refreshTokenTtlMs) })
  const issued = await issueSessionTokens(ctx, { user, phone: PHONE, challengeId: 'c-1' }, request)
  t.equal(issued.sessionId, SID)
  t.equal(issued.sessionExpiresAt, now + options.refreshTokenTtlMs)
  t.equal(issued.tokens.token_type, 'Bearer')
  t.equal(issued.tokens.expires_in, 600)
  t.match(payloadOf(issued.tokens.access_token), { type: 'access', sub: USER, sid: SID, phone: PHONE, fresh: true })
  t.match(payloadOf(issued.tokens.refresh_token), { type: 'refresh', sub: USER, sid: SID, phone: PHONE, gen: 0, exp: Math.floor((now + options.refreshTokenTtlMs) / 1000) })
})

t.test('a rotation asks for the token\'s session and generation, not idle since idleTimeout', async (t) => {
  const { ctx, calls, answers } = await contextFor(t)
  const now = freezeClock(t)
  answers.rotateSession = sessionRow(now, { generation: 5 })
  const issued = await rotateRefreshToken(ctx, { sub: USER, sid: SID, phone: PHONE, gen: 4 }, request)
  t.same(calls, [['rotateSession', SID, USER, 4, new Date(now), new Date(now - IDLE_MS), DEVICE]])
  t.match(payloadOf(issued.tokens.access_token), { fresh: false, sid: SID })
  t.equal(payloadOf(issued.tokens.refresh_token).gen, 5, 'the new pair is of the new generation')
})

t.test('a refused rotation: the answer for each state of the session', async (t) => {
  const { ctx, answers, revoked, events, calls } = await contextFor(t)
  const now = freezeClock(t)
  const refused = async (gen: number, session: Session | undefined, sub = USER) => {
    answers.findSession = session
    revoked.length = 0
    events.length = 0
    return outcome(rotateRefreshToken(ctx, { sub, sid: SID, phone: PHONE, gen }, request))
  }
  t.equal(await refused(4, undefined), 'SECURELOGIN_SESSION_REVOKED', 'no session')
  t.equal(calls.at(-1)?.[0], 'findSession', 'the session is read to tell why')
  // A session that is not live is only refused, whatever the token's generation: an older one must
  // not read as a client racing itself, nor end (as a reuse) a session of someone else.
  for (const [state, session, sub] of [
    ['the session of another user', sessionRow(now), OTHER_USER],
    ['an ended session', sessionRow(now, { revokedAt: new Date(now - SECOND) }), USER],
    ['a session that ends this millisecond', sessionRow(now, { expiresAt: new Date(now) }), USER],
  ] as const) {
    for (const gen of [4, 3, 2]) t.equal(await refused(gen, { ...session, refreshedAt: new Date(now) }, sub), 'SECURELOGIN_SESSION_REVOKED', `${state}, a token of generation ${gen}`)
    t.same([revoked, events], [[], []], `${state}: nothing ended, nothing reported`)
  }
  t.equal(calls.filter(([name]) => name === 'revokeSession').length, 0, 'no revocation asked')
  t.equal(await refused(4, sessionRow(now, { expiresAt: new Date(now + 1) })), 'SECURELOGIN_SESSION_REVOKED', 'a live session at the same generation, not idle: still revoked (the UPDATE refused it)')
  t.same(revoked, [], 'and nothing ended')

  // One generation old, within the grace: a client racing itself.
  t.equal(await refused(3, sessionRow(now, { refreshedAt: new Date(now - GRACE_MS + 1) })), 'SECURELOGIN_REFRESH_SUPERSEDED', 'one generation old, just inside reuseGrace: superseded')
  t.same(revoked, [], 'the session goes on')
  t.equal(calls.filter(([name]) => name === 'revokeSession').length, 0, 'no revocation asked')

  // Reuse: the session is ended, once.
  t.equal(await refused(3, sessionRow(now, { refreshedAt: new Date(now - GRACE_MS) })), 'SECURELOGIN_SESSION_REVOKED', 'one generation old at exactly reuseGrace: reuse')
  t.same(revoked, [SID], 'the session is on the revocation list')
  t.same(events, [{ type: 'refresh.reuse', userid: USER, sid: SID, phone: PHONE }], 'the reuse is reported')
  t.same(calls.at(-1), ['revokeSession', SID, USER, 'refresh_token_reuse', new Date(now)])
  t.equal(await refused(2, sessionRow(now, { refreshedAt: new Date(now) })), 'SECURELOGIN_SESSION_REVOKED', 'two generations old, even at once: reuse')
  t.same(revoked, [SID])
  answers.revokeSession = false
  t.equal(await refused(2, sessionRow(now)), 'SECURELOGIN_SESSION_REVOKED', 'reuse of a session another request just ended')
  t.same([revoked, events], [[], []], 'reported once only, by the request that ended it')
  answers.revokeSession = true

  t.equal(await refused(4, sessionRow(now, { refreshedAt: new Date(now - IDLE_MS) })), 'SECURELOGIN_SESSION_EXPIRED', 'the current generation, unused for exactly idleTimeout: expired')
  t.equal(await refused(4, sessionRow(now, { refreshedAt: new Date(now - IDLE_MS + 1) })), 'SECURELOGIN_SESSION_REVOKED', 'a millisecond less: not idle')
  t.equal(await refused(5, sessionRow(now, { refreshedAt: new Date(now - IDLE_MS) })), 'SECURELOGIN_SESSION_REVOKED', 'a generation the session never had: revoked, not expired')
  t.same(revoked, [], 'none of these ends the session')
})

/** A store call without its last argument, the time of the write (logout takes it from `new Date()`). */
const withoutTime = (call: unknown[]) => call.slice(0, -1)
const timeOf = (call: unknown[]) => (call.at(-1) as Date).getTime()

t.test('logout ends the caller\'s session or the one its refresh token names, of the same user only', async (t) => {
  const { ctx, calls, answers, revoked, tokens } = await contextFor(t)
  const now = Date.now()
  const caller = { userid: USER, sid: SID }
  await endSession(ctx, caller, undefined)
  t.same(calls.map(withoutTime), [['revokeSession', SID, USER, 'logout']])
  t.ok(timeOf(calls[0]!) >= now, 'revoked now')
  t.same(revoked, [SID], 'on the revocation list at once')

  const otherSid = '22222222-3333-4444-8555-666666666666'
  const own = tokens.signRefresh({ userId: USER, sessionId: otherSid, phone: PHONE, generation: 0, now, sessionExpiresAt: now + DAY })
  await endSession(ctx, caller, own)
  t.same(withoutTime(calls.at(-1)!), ['revokeSession', otherSid, USER, 'logout'], 'the session of the refresh token')
  t.same(revoked, [SID, otherSid])

  const foreign = tokens.signRefresh({ userId: OTHER_USER, sessionId: otherSid, phone: PHONE, generation: 0, now, sessionExpiresAt: now + DAY })
  t.equal(await outcome(endSession(ctx, caller, foreign)), 'SECURELOGIN_SESSION_MISMATCH', 'another user\'s refresh token')
  t.equal(await outcome(endSession(ctx, caller, 'not.a.token')), 'SECURELOGIN_TOKEN_INVALID')
  answers.revokeSession = false
  t.equal(await outcome(endSession(ctx, caller, undefined)), 'SECURELOGIN_SESSION_REVOKED', 'a session already ended')
  t.same(revoked, [SID, otherSid], 'nothing more on the list')
})

t.test('logout of the other sessions ends them all but the caller\'s', async (t) => {
  const { ctx, calls, answers, revoked, tokens } = await contextFor(t)
  const now = Date.now()
  const caller = { userid: USER, sid: SID }
  answers.revokeOtherSessions = ['a', 'b']
  await endOtherSessions(ctx, caller, undefined)
  t.same(calls.map(withoutTime), [['revokeOtherSessions', USER, SID]])
  t.ok(timeOf(calls[0]!) >= now, 'revoked now')
  t.same(revoked, ['a', 'b'], 'each ended session on the list')

  const token = (userId: string, sessionId: string) => tokens.signRefresh({ userId, sessionId, phone: PHONE, generation: 0, now, sessionExpiresAt: now + DAY })
  await endOtherSessions(ctx, caller, token(USER, SID))
  t.equal(calls.length, 2, 'with the caller\'s own refresh token')
  t.equal(await outcome(endOtherSessions(ctx, caller, token(OTHER_USER, SID))), 'SECURELOGIN_SESSION_MISMATCH', 'a refresh token of another user')
  t.equal(await outcome(endOtherSessions(ctx, caller, token(USER, 'another-session'))), 'SECURELOGIN_SESSION_MISMATCH', 'a refresh token of another session')
  t.equal(calls.length, 2, 'neither ends anything')
})
