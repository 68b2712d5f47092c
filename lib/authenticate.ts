import type { FastifyReply, FastifyRequest } from 'fastify'
import { FreshTokenRequiredError, SessionRevokedError, TokenMissingError } from './errors.js'
import type { RevocationList } from './revocation.js'
import type { TokenService } from './tokens.js'

/** What `authenticate` puts on `request.user`. */
export interface SecureLoginUser {
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

export function createAuthHooks (tokens: TokenService, revocations: RevocationList) {
  /** Refuses a revoked session; waits for the database only when the revocation list is stale. */
  async function refuseRevoked (sessionId: string): Promise<void> {
    const revoked = revocations.isRevoked(sessionId)
    if (revoked === true || (revoked !== false && await revoked)) throw new SessionRevokedError()
  }

  const authenticate: AuthHook = async (request) => {
    const claims = tokens.verifyAccess(bearerToken(request))
    await refuseRevoked(claims.sid)
    request.user = { userid: claims.sub, phone: claims.phone, sid: claims.sid, fresh: claims.fresh === true }
  }

  const authenticateFresh: AuthHook = async (request, reply) => {
    await authenticate(request, reply)
    if (!request.user.fresh) throw new FreshTokenRequiredError()
  }

  // Refresh tokens are checked against their session row where they are used (rotation, logout);
  // this hook only proves the token is a genuine, unexpired refresh token of a live session.
  const authenticateRefresh: AuthHook = async (request) => {
    const claims = tokens.verifyRefresh(bearerToken(request))
    await refuseRevoked(claims.sid)
    const user: SecureLoginRefreshUser = { userid: claims.sub, phone: claims.phone, sid: claims.sid, fresh: false, generation: claims.gen }
    request.user = user
  }

  return { authenticate, authenticateFresh, authenticateRefresh }
}
