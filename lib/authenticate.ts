import type { FastifyReply, FastifyRequest } from 'fastify'
import { userFromAccessClaims } from './claims.js'
import { ACCESS_COOKIE, cookieToken, REFRESH_COOKIE, type CookieOptions } from './cookies.js'
import { FreshTokenRequiredError, SessionRevokedError, TokenMissingError } from './errors.js'
import type { RevocationList } from './revocation.js'
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
  /** The account's phone number in E.164. */
  phone: string
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

export function createAuthHooks (tokens: TokenService, revocations: RevocationList, options: { withExtraClaims: boolean, cookies: CookieOptions | undefined }) {
  const { withExtraClaims, cookies } = options
  const accessCookies = cookies?.accessTokenInCookie === true ? cookies : undefined
  /** Refuses a revoked session; waits for the database only when the revocation list is stale. */
  async function refuseRevoked (sessionId: string): Promise<void> {
    const revoked = revocations.isRevoked(sessionId)
    if (revoked === true || (revoked !== false && await revoked)) throw new SessionRevokedError()
  }

  const authenticate: AuthHook = async (request) => {
    const claims = await tokens.verifyAccess(tokenOf(request, accessCookies, ACCESS_COOKIE))
    await refuseRevoked(claims.sid)
    request.user = userFromAccessClaims(claims, withExtraClaims)
  }

  const authenticateFresh: AuthHook = async (request, reply) => {
    await authenticate(request, reply)
    if (!request.user.fresh) throw new FreshTokenRequiredError()
  }

  // Refresh tokens are checked against their session row where they are used (rotation, logout);
  // this hook only proves the token is a genuine, unexpired refresh token of a live session.
  const authenticateRefresh: AuthHook = async (request) => {
    const claims = tokens.verifyRefresh(tokenOf(request, cookies, REFRESH_COOKIE))
    await refuseRevoked(claims.sid)
    const user = { userid: claims.sub, phone: claims.phone, sid: claims.sid, fresh: false, generation: claims.gen }
    request.user = user as SecureLoginRefreshUser
  }

  return { authenticate, authenticateFresh, authenticateRefresh }
}
