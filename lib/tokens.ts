import { randomUUID } from 'node:crypto'
import { createSigner, createVerifier, TokenError } from 'fast-jwt'
import { TokenExpiredError, TokenInvalidError } from './errors.js'
import type { ResolvedOptions } from './options.js'

/** Claims of an access token. `sub` is the public user id. */
export interface AccessClaims {
  type: 'access'
  sub: string
  sid: string
  phone: string
  fresh: boolean
  iat: number
  exp: number
  jti: string
}

/** Claims of a refresh token; `gen` is the session generation it belongs to. */
export interface RefreshClaims {
  type: 'refresh'
  sub: string
  sid: string
  phone: string
  gen: number
  iat: number
  exp: number
  jti: string
}

const ALGORITHM = 'HS256'

/**
 * Signs and verifies both token kinds with one pinned algorithm. The `type` claim keeps a refresh
 * token from being accepted as an access token and the other way round.
 */
export function createTokenService (options: ResolvedOptions) {
  const { jwtSecret: key, issuer, audience } = options
  const sign = createSigner({ key, algorithm: ALGORITHM, iss: issuer, aud: audience })
  // The verified-token cache makes repeated verification of the same access token a map lookup;
  // expiry still applies because cached entries never outlive the token's `exp`.
  const verify = createVerifier({
    key,
    algorithms: [ALGORITHM],
    cache: 10_000,
    allowedIss: issuer,
    allowedAud: audience,
    requiredClaims: ['exp', 'sub', 'sid', 'type'],
  })

  function check<T extends AccessClaims | RefreshClaims> (token: string, type: T['type']): T {
    let claims: T
    try {
      claims = verify(token) as T
    } catch (error) {
      if (error instanceof TokenError && error.code === TokenError.codes.expired) throw new TokenExpiredError()
      throw new TokenInvalidError()
    }
    if (claims.type !== type || typeof claims.sub !== 'string' || typeof claims.sid !== 'string') throw new TokenInvalidError()
    return claims
  }

  return {
    signAccess (args: { userId: string, sessionId: string, phone: string, fresh: boolean, now: number, sessionExpiresAt: number }): { token: string, expiresIn: number } {
      const iat = Math.floor(args.now / 1000)
      // An access token never outlives its session.
      const exp = Math.min(iat + Math.floor(options.accessTokenTtlMs / 1000), Math.floor(args.sessionExpiresAt / 1000))
      const token = sign({ type: 'access', sub: args.userId, sid: args.sessionId, phone: args.phone, fresh: args.fresh, iat, exp, jti: randomUUID() })
      return { token, expiresIn: exp - iat }
    },

    signRefresh (args: { userId: string, sessionId: string, phone: string, generation: number, now: number, sessionExpiresAt: number }): string {
      const iat = Math.floor(args.now / 1000)
      const exp = Math.floor(args.sessionExpiresAt / 1000)
      return sign({ type: 'refresh', sub: args.userId, sid: args.sessionId, phone: args.phone, gen: args.generation, iat, exp, jti: randomUUID() })
    },

    verifyAccess: (token: string) => check<AccessClaims>(token, 'access'),
    verifyRefresh: (token: string) => {
      const claims = check<RefreshClaims>(token, 'refresh')
      if (!Number.isInteger(claims.gen)) throw new TokenInvalidError()
      return claims
    },
  }
}

export type TokenService = ReturnType<typeof createTokenService>
