import type { FastifyReply, FastifyRequest } from 'fastify'
import { userFromAccessClaims } from './claims.js'
import { ACCESS_COOKIE, cookieToken, REFRESH_COOKIE, type CookieOptions } from './cookies.js'
import { FreshTokenRequiredError, SessionExpiredError, SessionRevokedError, TokenMissingError } from './errors.js'
import type { RevocationList } from './revocation.js'
import type { Store } from './store/index.js'
import type { TokenService } from './tokens.js'

/**
 * Extra claims the app puts into access tokens with `jwt.claims` (roles, tenant…). Empty here:
 * declare yours by merging into it, and they are typed on `request.user` and in `jwt.claims`.
 * @example
 * declare module 'fastify-securelogin' {
 *   interface SecureLoginClaims { roles: string[] }
 * }
 */
export interface SecureLoginClaims {}

/** What `authenticate` puts on `request.user`. */
export interface SecureLoginUser extends SecureLoginClaims {
  /** The public user id (UUID), the JWT `sub`. */
  userid: string
  /** The account's phone number in E.164; null for an email-and-password account that has not added one. */
  phone: string | null
  /** The session id, shared by the session's access and refresh tokens. */
  sid: string
  /** True when the access token came from verify_sms, not from refresh. */
  fresh: boolean
}

/** What `authenticateRefresh` puts on `request.user`. */
export interface SecureLoginRefreshUser extends SecureLoginUser {
  /** The session generation the refresh token belongs to. */
  generation: number
}

export type AuthHook = (request: FastifyRequest, reply: FastifyReply) => Promise<void>

const BEARER = /^Bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+) *$/i

/** The token of an `Authorization: Bearer` header; any other header is treated as missing. */
export function bearerToken (request: FastifyRequest): string {
  const header = request.headers.authorization
  const match = typeof header === 'string' ? BEARER.exec(header) : null
  if (match === null) throw new TokenMissingError()
  return match[1] as string
}

/**
 * The Bearer token, or (only on a server with cookies enabled, for a request without an
 * Authorization header that asks for the cookie transport) the token in the cookie `name`.
 */
function tokenOf (request: FastifyRequest, cookies: CookieOptions | undefined, name: string): string {
  if (cookies === undefined || request.headers.authorization !== undefined) return bearerToken(request)
  const token = cookieToken(request, cookies, name)
  if (token === undefined) throw new TokenMissingError()
  return token
}

/**
 * The database's answer; when it cannot serve (503), `Retry-After` goes on the reply here, since
 * the app's own error handler answers for the app's routes and knows nothing of it.
 */
async function tellWhenToRetry<T> (answer: Promise<T>, reply: FastifyReply): Promise<T> {
  try {
    return await answer
  } catch (error) {
    const seconds = (error as { retryAfter?: unknown }).retryAfter
    if (typeof seconds === 'number') reply.header('retry-after', String(seconds))
    throw error
  }
}

export function createAuthHooks (tokens: TokenService, revocations: RevocationList, store: Store, options: { withExtraClaims: boolean, cookies: CookieOptions | undefined, idleTimeoutMs: number }) {
  const { withExtraClaims, cookies, idleTimeoutMs } = options
  const accessCookies = cookies?.accessTokenInCookie === true ? cookies : undefined
  /** Refuses a revoked session; waits for the database only when the revocation list is stale. */
  async function refuseRevoked (sessionId: string, reply: FastifyReply): Promise<void> {
    const revoked = revocations.isRevoked(sessionId)
    if (revoked === true || (revoked !== false && await tellWhenToRetry(revoked, reply))) throw new SessionRevokedError()
  }

  const authenticate: AuthHook = async (request, reply) => {
    const claims = await tokens.verifyAccess(tokenOf(request, accessCookies, ACCESS_COOKIE))
    await refuseRevoked(claims.sid, reply)
    request.user = userFromAccessClaims(claims, withExtraClaims)
  }

  const authenticateFresh: AuthHook = async (request, reply) => {
    await authenticate(request, reply)
    if (!request.user.fresh) throw new FreshTokenRequiredError()
  }

  // For /refresh, which checks the token against its session row itself (the rotation's UPDATE,
  // then reuse detection): a genuine, unexpired refresh token whose session is not on the list.
  const refreshTokenClaims: AuthHook = async (request, reply) => {
    const claims = tokens.verifyRefresh(tokenOf(request, cookies, REFRESH_COOKIE))
    await refuseRevoked(claims.sid, reply)
    const user = { userid: claims.sub, phone: claims.phone, sid: claims.sid, fresh: false, generation: claims.gen }
    request.user = user as SecureLoginRefreshUser
  }

  // For the app's routes: the revocation list only holds sessions ended within an access token's
  // lifetime, and a refresh token lives for months, so its session row is read.
  const authenticateRefresh: AuthHook = async (request, reply) => {
    await refreshTokenClaims(request, reply)
    const { sid, userid } = request.user
    const session = await tellWhenToRetry(store.findSession(sid), reply)
    const now = Date.now()
    if (session === undefined || session.userId !== userid || session.revokedAt !== null || session.expiresAt.getTime() <= now) throw new SessionRevokedError()
    if (session.refreshedAt.getTime() <= now - idleTimeoutMs) throw new SessionExpiredError()
  }

  return { authenticate, authenticateFresh, authenticateRefresh, refreshTokenClaims }
}
