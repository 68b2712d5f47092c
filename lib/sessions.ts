import { randomUUID } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { phoneKeyFor } from './accounts.js'
import { extraClaimsFor } from './claims.js'
import { isUniqueViolation } from './db/faults.js'
import { deviceOf } from './device.js'
import { AccountInactiveError, OtpExpiredError, PhoneTakenError, RefreshSupersededError, SessionExpiredError, SessionMismatchError, SessionRevokedError } from './errors.js'
import type { Events } from './events.js'
import type { ResolvedOptions } from './options.js'
import type { RevocationList } from './revocation.js'
import type { ApprovedCode } from './challenges.js'
import type { Session, Store } from './store/index.js'
import type { TokenService } from './tokens.js'

export interface SessionContext {
  options: ResolvedOptions
  store: Store
  tokens: TokenService
  revocations: RevocationList
  events: Events
}

export interface IssuedTokens {
  access_token: string
  refresh_token: string
  token_type: 'Bearer'
  expires_in: number
}

/** The tokens of a sign-in or refresh and when their session ends (for cookie lifetimes). */
export interface IssuedSession {
  tokens: IssuedTokens
  sessionId: string
  sessionExpiresAt: number
}

/** The token pair of a session at its current generation; an access token never outlives its session. */
export function signSessionTokens (tokens: TokenService, args: { userId: string, phone: string | null, session: Session, fresh: boolean, now: number, extraClaims: Record<string, unknown> }): IssuedSession {
  const { userId, phone, session, fresh, now, extraClaims } = args
  const sessionExpiresAt = session.expiresAt.getTime()
  const access = tokens.signAccess({ userId, sessionId: session.id, phone, fresh, now, sessionExpiresAt, extraClaims })
  const refreshToken = tokens.signRefresh({ userId, sessionId: session.id, phone, generation: session.generation, now, sessionExpiresAt })
  return { tokens: { access_token: access.token, refresh_token: refreshToken, token_type: 'Bearer', expires_in: access.expiresIn }, sessionId: session.id, sessionExpiresAt }
}

/** A sign-in's session, opened when its code was used up. */
export interface OpenedSession { session: Session, now: number }

/**
 * Opens a session for a user who just proved their number. The code is used up by the same write
 * that opens the session; a request that lost the code to another gets OTP_EXPIRED.
 */
export async function openSignInSession (ctx: SessionContext, approved: ApprovedCode, request: FastifyRequest): Promise<OpenedSession> {
  const { user, phone, challengeId } = approved
  const now = Date.now()
  const session = await ctx.store.consumeIntoSession({ phone, challengeId, userId: user.id, now: new Date(now), expiresAt: new Date(now + ctx.options.refreshTokenTtlMs), device: deviceOf(request) })
  if (session === undefined) throw new OtpExpiredError()
  return { session, now }
}

/**
 * The tokens of a sign-in, with a fresh access token: of the session opened with the code's check
 * (`opened`, only for an app without `jwt.claims`), or of one opened here (openSignInSession).
 */
export async function issueSessionTokens (ctx: SessionContext, approved: ApprovedCode, request: FastifyRequest, opened?: OpenedSession): Promise<IssuedSession> {
  const { user, phone } = approved
  // Before the code is used: an app whose claims fail leaves the code and no session.
  const extraClaims = await extraClaimsFor(ctx.options.jwtClaims, { userid: user.id, phone }, request)
  const { session, now } = opened ?? await openSignInSession(ctx, approved, request)
  return signSessionTokens(ctx.tokens, { userId: user.id, phone, session, fresh: true, now, extraClaims })
}

/**
 * Exchanges a refresh token for a new pair. The old token stops working at once. A token one
 * generation old within `sessions.reuseGrace` of the rotation is a client racing itself (two tabs):
 * it is told to use the newer token. Any other older token means it was copied: the session is
 * ended, so neither copy works any more. A session unused for `sessions.idleTimeout` has expired.
 */
export async function rotateRefreshToken (ctx: SessionContext, claims: { sub: string, sid: string, phone: string | null, gen: number }, request: FastifyRequest): Promise<IssuedSession> {
  const { store, tokens, revocations } = ctx
  // Before the rotation: claims that fail leave the refresh token usable.
  const extraClaims = await extraClaimsFor(ctx.options.jwtClaims, { userid: claims.sub, phone: claims.phone }, request)
  const now = Date.now()
  const { reuseGraceMs, idleTimeoutMs } = ctx.options.sessions
  const session = await store.rotateSession(claims.sid, claims.sub, claims.gen, new Date(now), new Date(now - idleTimeoutMs), deviceOf(request))
  if (session === undefined) {
    // Why the rotation did not happen, for the answer only: the UPDATE alone decided.
    const current = await store.findSession(claims.sid)
    const live = current !== undefined && current.userId === claims.sub && current.revokedAt === null && current.expiresAt.getTime() > now
    if (!live) throw new SessionRevokedError()
    const sinceRotation = now - current.refreshedAt.getTime()
    if (claims.gen < current.generation) {
      if (claims.gen === current.generation - 1 && sinceRotation < reuseGraceMs) throw new RefreshSupersededError()
      if (await store.revokeSession(current.id, current.userId, 'refresh_token_reuse', new Date(now))) {
        revocations.add(current.id)
        ctx.events.emit(request, { type: 'refresh.reuse', userid: current.userId, sid: current.id, phone: claims.phone })
      }
      throw new SessionRevokedError()
    }
    if (claims.gen === current.generation && sinceRotation >= idleTimeoutMs) throw new SessionExpiredError()
    throw new SessionRevokedError()
  }
  return signSessionTokens(tokens, { userId: claims.sub, phone: claims.phone, session, fresh: false, now, extraClaims })
}

/**
 * Ends the session named by `refreshToken` (or the caller's own). The refresh token must be a
 * genuine one of the same user.
 */
export async function endSession (ctx: SessionContext, caller: { userid: string, sid: string }, refreshToken: string | undefined): Promise<void> {
  let sid = caller.sid
  if (refreshToken !== undefined) {
    const claims = ctx.tokens.verifyRefresh(refreshToken)
    if (claims.sub !== caller.userid) throw new SessionMismatchError()
    sid = claims.sid
  }
  if (!await ctx.store.revokeSession(sid, caller.userid, 'logout', new Date())) throw new SessionRevokedError()
  ctx.revocations.add(sid)
}

/** Ends every session of the caller but the current one. */
export async function endOtherSessions (ctx: SessionContext, caller: { userid: string, sid: string }, refreshToken: string | undefined): Promise<void> {
  if (refreshToken !== undefined) {
    const claims = ctx.tokens.verifyRefresh(refreshToken)
    if (claims.sub !== caller.userid || claims.sid !== caller.sid) throw new SessionMismatchError()
  }
  const ended = await ctx.store.revokeOtherSessions(caller.userid, caller.sid, new Date())
  for (const sid of ended) ctx.revocations.add(sid)
}

/**
 * Moves the caller's account to the number whose change code was just checked, and signs it in
 * there: every earlier session ends (a number change is what someone who took over an account
 * would do first, so no session of before survives it), and a new one opens with a fresh access
 * token. The old number counts one more ended account, so whoever gets it next gets a new id.
 */
export async function changePhoneAndSignIn (ctx: SessionContext & { hashKey: Buffer }, args: { userId: string, sid: string, newPhone: string, challengeId: string }, request: FastifyRequest): Promise<IssuedSession> {
  const { userId, sid, newPhone, challengeId } = args
  const user = await ctx.store.findUserById(userId)
  if (user === undefined) throw new SessionRevokedError()
  if (user.status !== 'active') throw new AccountInactiveError()
  const extraClaims = await extraClaimsFor(ctx.options.jwtClaims, { userid: userId, phone: newPhone }, request)
  const now = Date.now()
  let changed: Awaited<ReturnType<SessionContext['store']['changePhone']>>
  try {
    changed = await ctx.store.changePhone({
      userId,
      callerSid: sid,
      oldPhone: user.phone,
      oldPhoneKey: user.phone === null ? undefined : phoneKeyFor(ctx.hashKey, user.phone),
      newPhone,
      newPhoneKey: phoneKeyFor(ctx.hashKey, newPhone),
      challengeId,
      session: { id: randomUUID(), expiresAt: new Date(now + ctx.options.refreshTokenTtlMs), ...deviceOf(request) },
      now: new Date(now),
    })
  } catch (error) {
    // The number got an account between the check and the move: its unique index refused.
    if (isUniqueViolation(error)) throw new PhoneTakenError()
    throw error
  }
  if (changed === 'code-used') throw new OtpExpiredError()
  if (changed === 'taken') throw new PhoneTakenError()
  // Changed or deleted meanwhile by another request: this one proved nothing about the new state.
  if (changed === 'moved' || changed === 'revoked') throw new SessionRevokedError()
  for (const sid of changed.ended) ctx.revocations.add(sid)
  return signSessionTokens(ctx.tokens, { userId, phone: newPhone, session: changed.session, fresh: true, now, extraClaims })
}
